//! Kubernetes resource quantities (`500m`, `1.5Gi`, `2e3`), for kube's CEL
//! `quantity()` library.
//!
//! A quantity is held exactly as `mantissa × 10^exp` (binary suffixes are
//! folded into the mantissa), normalized so equal quantities compare equal.

use cel::objects::Opaque;
use std::cmp::Ordering;

/// A parsed quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exp: i32,
}

impl Opaque for Quantity {
    fn runtime_type_name(&self) -> &str {
        crate::library::QUANTITY_TYPE
    }
}

const PARSE_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

fn pow10(e: u32) -> Option<i128> {
    10i128.checked_pow(e)
}

impl Quantity {
    /// An integer quantity.
    pub fn from_int(i: i64) -> Self {
        Quantity {
            mantissa: i as i128,
            exp: 0,
        }
        .normalized()
    }

    fn normalized(mut self) -> Self {
        if self.mantissa == 0 {
            self.exp = 0;
            return self;
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.exp += 1;
        }
        self
    }

    /// Parses the canonical and non-canonical forms kube accepts.
    pub fn parse(s: &str) -> Result<Quantity, String> {
        let err = || PARSE_ERROR.to_string();
        let (neg, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, suffix) = rest.split_at(num_len);
        if num.is_empty() || num.matches('.').count() > 1 || num == "." {
            return Err(err());
        }
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        let mut exp: i32 = -(frac_part.len() as i32);
        // keep at most 30 significant digits
        let (digits, dropped) = if digits.len() > 30 {
            (&digits[..30], digits.len() - 30)
        } else {
            (digits, 0)
        };
        exp += dropped as i32;
        let mut mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| err())?
        };
        let binary = |k: u32| -> Option<i128> { 1024i128.checked_pow(k) };
        let mul = match suffix {
            "" => None,
            "Ki" => binary(1),
            "Mi" => binary(2),
            "Gi" => binary(3),
            "Ti" => binary(4),
            "Pi" => binary(5),
            "Ei" => binary(6),
            "n" => {
                exp -= 9;
                None
            }
            "u" => {
                exp -= 6;
                None
            }
            "m" => {
                exp -= 3;
                None
            }
            "k" => {
                exp += 3;
                None
            }
            "M" => {
                exp += 6;
                None
            }
            "G" => {
                exp += 9;
                None
            }
            "T" => {
                exp += 12;
                None
            }
            "P" => {
                exp += 15;
                None
            }
            "E" => {
                exp += 18;
                None
            }
            s if s.starts_with('e') || s.starts_with('E') => {
                let e: i32 = s[1..].parse().map_err(|_| err())?;
                if !(-1000..=1000).contains(&e) {
                    return Err(err());
                }
                exp += e;
                None
            }
            _ => return Err(err()),
        };
        if let Some(m) = mul {
            mantissa = mantissa.checked_mul(m).ok_or_else(err)?;
        }
        if neg {
            mantissa = -mantissa;
        }
        Ok(Quantity { mantissa, exp }.normalized())
    }

    /// -1, 0 or 1.
    pub fn sign(&self) -> i64 {
        self.mantissa.signum() as i64
    }

    /// The value as an `i64`, when it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        if self.exp >= 0 {
            let v = self.mantissa.checked_mul(pow10(self.exp as u32)?)?;
            i64::try_from(v).ok()
        } else {
            let d = pow10((-self.exp) as u32)?;
            if self.mantissa % d == 0 {
                i64::try_from(self.mantissa / d).ok()
            } else {
                None
            }
        }
    }

    /// The value as an `f64`.
    pub fn as_f64(&self) -> f64 {
        self.mantissa as f64 * 10f64.powi(self.exp)
    }

    /// Both mantissas at the smaller exponent, if that fits.
    fn aligned(&self, other: &Quantity) -> Option<(i128, i128, i32)> {
        let e = self.exp.min(other.exp);
        let a = self.mantissa.checked_mul(pow10((self.exp - e) as u32)?)?;
        let b = other.mantissa.checked_mul(pow10((other.exp - e) as u32)?)?;
        Some((a, b, e))
    }

    /// Numeric ordering.
    pub fn cmp_q(&self, other: &Quantity) -> Ordering {
        match self.aligned(other) {
            Some((a, b, _)) => a.cmp(&b),
            None => self
                .as_f64()
                .partial_cmp(&other.as_f64())
                .unwrap_or(Ordering::Equal),
        }
    }

    /// The sum.
    pub fn add(&self, other: &Quantity) -> Quantity {
        match self
            .aligned(other)
            .and_then(|(a, b, e)| a.checked_add(b).map(|m| (m, e)))
        {
            Some((mantissa, exp)) => Quantity { mantissa, exp }.normalized(),
            None => self.clone(),
        }
    }

    /// The negation.
    pub fn neg(&self) -> Quantity {
        Quantity {
            mantissa: -self.mantissa,
            exp: self.exp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        assert_eq!(Quantity::parse("1Ki").unwrap().as_i64(), Some(1024));
        assert_eq!(Quantity::parse("1.5Gi").unwrap().as_i64(), Some(1610612736));
        assert_eq!(Quantity::parse("500m").unwrap().as_f64(), 0.5);
        assert_eq!(Quantity::parse("2e3").unwrap().as_i64(), Some(2000));
        assert_eq!(Quantity::parse("-1k").unwrap().as_i64(), Some(-1000));
        assert_eq!(Quantity::parse("1000"), Quantity::parse("1k"));
        assert!(Quantity::parse("abc").is_err());
        assert!(Quantity::parse("1Qi").is_err());
        assert!(Quantity::parse("").is_err());
        assert!(Quantity::parse("1.2.3").is_err());
    }

    #[test]
    fn compares_and_adds() {
        let a = Quantity::parse("1Gi").unwrap();
        let b = Quantity::parse("1G").unwrap();
        assert_eq!(a.cmp_q(&b), Ordering::Greater);
        assert_eq!(a.add(&b.neg()).as_i64(), Some(73741824));
        assert_eq!(
            Quantity::parse("100m")
                .unwrap()
                .add(&Quantity::parse("900m").unwrap())
                .as_i64(),
            Some(1)
        );
    }
}
