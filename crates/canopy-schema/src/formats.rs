//! The string formats kube-apiserver checks in custom resources.
//!
//! kube-apiserver validates a `format` only if it is in its list of
//! supported CRD formats (apiextensions-apiserver `pkg/apiserver/validation/
//! formats.go`); every other format is silently ignored. Format names are
//! normalized by removing `-`, so `date-time` and `datetime` are the same.
//! The checks follow go-openapi's `strfmt` registry as vendored by
//! k8s.io/kube-openapi: `uri` is Go's `url.ParseRequestURI`, `email` is
//! `net/mail.ParseAddress`, `ipv4` accepts leading zeros (`ParseIPSloppy`),
//! `duration` is Go's `time.ParseDuration` or the Scala-like `5 days`, and so on.
//!
//! Integer formats (`int32`, `int64`) and number formats (`float`, `double`)
//! are not string formats: they become range checks in the validator.

use std::net::Ipv6Addr;
use std::sync::OnceLock;

use regex::Regex;

/// A string format that kube-apiserver validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringFormat {
    /// `bsonobjectid`: 24 hexadecimal digits.
    BsonObjectId,
    /// `uri`: Go's `url.ParseRequestURI`.
    Uri,
    /// `email`: Go's `mail.ParseAddress`.
    Email,
    /// `hostname`: RFC 1034 host name.
    Hostname,
    /// `ipv4`.
    Ipv4,
    /// `ipv6`.
    Ipv6,
    /// `cidr`.
    Cidr,
    /// `mac`: Go's `net.ParseMAC`.
    Mac,
    /// `uuid`.
    Uuid,
    /// `uuid3`.
    Uuid3,
    /// `uuid4`.
    Uuid4,
    /// `uuid5`.
    Uuid5,
    /// `isbn`: ISBN-10 or ISBN-13.
    Isbn,
    /// `isbn10`.
    Isbn10,
    /// `isbn13`.
    Isbn13,
    /// `creditcard`.
    CreditCard,
    /// `ssn`: U.S. social security number.
    Ssn,
    /// `hexcolor`.
    HexColor,
    /// `rgbcolor`.
    RgbColor,
    /// `byte`: standard base64.
    Byte,
    /// `password`: anything.
    Password,
    /// `date`: RFC 3339 full-date.
    Date,
    /// `duration`.
    Duration,
    /// `date-time` / `datetime`.
    DateTime,
    /// `k8s-short-name` (kube 1.34+): an RFC 1123 label.
    K8sShortName,
    /// `k8s-long-name` (kube 1.34+): an RFC 1123 subdomain.
    K8sLongName,
}

impl StringFormat {
    /// Looks up a format name the way kube does (dashes removed). `None`
    /// means kube ignores the format.
    pub fn lookup(name: &str) -> Option<StringFormat> {
        let n: String = name.chars().filter(|c| *c != '-').collect();
        Some(match n.as_str() {
            "bsonobjectid" => StringFormat::BsonObjectId,
            "uri" => StringFormat::Uri,
            "email" => StringFormat::Email,
            "hostname" => StringFormat::Hostname,
            "ipv4" => StringFormat::Ipv4,
            "ipv6" => StringFormat::Ipv6,
            "cidr" => StringFormat::Cidr,
            "mac" => StringFormat::Mac,
            "uuid" => StringFormat::Uuid,
            "uuid3" => StringFormat::Uuid3,
            "uuid4" => StringFormat::Uuid4,
            "uuid5" => StringFormat::Uuid5,
            "isbn" => StringFormat::Isbn,
            "isbn10" => StringFormat::Isbn10,
            "isbn13" => StringFormat::Isbn13,
            "creditcard" => StringFormat::CreditCard,
            "ssn" => StringFormat::Ssn,
            "hexcolor" => StringFormat::HexColor,
            "rgbcolor" => StringFormat::RgbColor,
            "byte" => StringFormat::Byte,
            "password" => StringFormat::Password,
            "date" => StringFormat::Date,
            "duration" => StringFormat::Duration,
            "datetime" => StringFormat::DateTime,
            "k8sshortname" => StringFormat::K8sShortName,
            "k8slongname" => StringFormat::K8sLongName,
            _ => return None,
        })
    }

    /// Whether `s` is a valid value of this format.
    pub fn is_valid(self, s: &str) -> bool {
        match self {
            StringFormat::BsonObjectId => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
            StringFormat::Uri => is_request_uri(s),
            StringFormat::Email => is_email(s),
            StringFormat::Hostname => is_hostname(s),
            StringFormat::Ipv4 => parse_ip_sloppy(s) && s.contains('.'),
            StringFormat::Ipv6 => s.contains(':') && parse_ip_strict(s),
            StringFormat::Cidr => is_cidr(s),
            StringFormat::Mac => is_mac(s),
            StringFormat::Uuid => re(&UUID, r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$").is_match(s),
            StringFormat::Uuid3 => re(&UUID3, r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$").is_match(s),
            StringFormat::Uuid4 => {
                re(&UUID4, r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$").is_match(s)
            }
            StringFormat::Uuid5 => {
                re(&UUID5, r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$").is_match(s)
            }
            StringFormat::Isbn => is_isbn(s, 10) || is_isbn(s, 13),
            StringFormat::Isbn10 => is_isbn(s, 10),
            StringFormat::Isbn13 => is_isbn(s, 13),
            StringFormat::CreditCard => is_credit_card(s),
            StringFormat::Ssn => re(&SSN, r"^[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}$").is_match(s),
            StringFormat::HexColor => re(&HEXCOLOR, r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$").is_match(s),
            StringFormat::RgbColor => re(
                &RGBCOLOR,
                r"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$",
            )
            .is_match(s),
            StringFormat::Byte => re(
                &BASE64,
                r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$",
            )
            .is_match(s),
            StringFormat::Password => true,
            StringFormat::Date => is_date(s),
            StringFormat::Duration => is_duration(s),
            StringFormat::DateTime => is_date_time(s),
            StringFormat::K8sShortName => s.len() <= 63 && re(&SHORTNAME, r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").is_match(s),
            StringFormat::K8sLongName => {
                s.len() <= 253
                    && re(&LONGNAME, r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").is_match(s)
            }
        }
    }
}

static UUID: OnceLock<Regex> = OnceLock::new();
static UUID3: OnceLock<Regex> = OnceLock::new();
static UUID4: OnceLock<Regex> = OnceLock::new();
static UUID5: OnceLock<Regex> = OnceLock::new();
static SSN: OnceLock<Regex> = OnceLock::new();
static HEXCOLOR: OnceLock<Regex> = OnceLock::new();
static RGBCOLOR: OnceLock<Regex> = OnceLock::new();
static BASE64: OnceLock<Regex> = OnceLock::new();
static SHORTNAME: OnceLock<Regex> = OnceLock::new();
static LONGNAME: OnceLock<Regex> = OnceLock::new();
static HOSTNAME: OnceLock<Regex> = OnceLock::new();
static DATETIME: OnceLock<Regex> = OnceLock::new();
static DURATION_PART: OnceLock<Regex> = OnceLock::new();

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| crate::goregex::compile(pattern).expect("built-in format regex"))
}

fn is_hostname(s: &str) -> bool {
    let rx = re(
        &HOSTNAME,
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9\-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    );
    rx.is_match(s) && s.len() <= 255 && s.split('.').all(|p| p.len() <= 63)
}

/// Go's (sloppy) IPv4 parser: four decimal parts, each at most 255, leading
/// zeros allowed.
fn parse_ipv4_sloppy(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().map(|n| n <= 255).unwrap_or(false)
        })
}

fn parse_ipv4_strict(s: &str) -> bool {
    parse_ipv4_sloppy(s) && s.split('.').all(|p| p == "0" || !p.starts_with('0'))
}

fn parse_ipv6(s: &str) -> bool {
    s.parse::<Ipv6Addr>().is_ok()
}

/// `netutils.ParseIPSloppy(s) != nil`.
fn parse_ip_sloppy(s: &str) -> bool {
    parse_ipv4_sloppy(s) || parse_ipv6(s)
}

/// `net.ParseIP(s) != nil`.
fn parse_ip_strict(s: &str) -> bool {
    parse_ipv4_strict(s) || parse_ipv6(s)
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let max = if parse_ipv4_sloppy(ip) {
        32
    } else if parse_ipv6(ip) {
        128
    } else {
        return false;
    };
    !bits.is_empty()
        && bits.len() <= 4
        && bits.bytes().all(|b| b.is_ascii_digit())
        && bits.parse::<u32>().map(|n| n <= max).unwrap_or(false)
}

fn xtoi2(s: &[u8], sep: Option<u8>) -> bool {
    if s.len() < 2 {
        return false;
    }
    if s.len() > 2 && Some(s[2]) != sep {
        return false;
    }
    s[0].is_ascii_hexdigit() && s[1].is_ascii_hexdigit()
}

/// Go's `net.ParseMAC`.
fn is_mac(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 14 {
        return false;
    }
    if b[2] == b':' || b[2] == b'-' {
        if (b.len() + 1) % 3 != 0 {
            return false;
        }
        let n = (b.len() + 1) / 3;
        if n != 6 && n != 8 && n != 20 {
            return false;
        }
        (0..n).all(|i| xtoi2(&b[i * 3..], Some(b[2])))
    } else if b[4] == b'.' {
        if (b.len() + 1) % 5 != 0 {
            return false;
        }
        let n = 2 * (b.len() + 1) / 5;
        if n != 6 && n != 8 && n != 20 {
            return false;
        }
        (0..n / 2).all(|i| {
            let x = i * 5;
            xtoi2(&b[x..x + 2], None) && xtoi2(&b[x + 2..], Some(b[4]))
        })
    } else {
        false
    }
}

fn is_isbn(s: &str, version: u32) -> bool {
    let sanitized: Vec<u8> = s
        .bytes()
        .filter(|b| !(b.is_ascii_whitespace() || *b == b'-'))
        .collect();
    let d = |b: u8| (b - b'0') as u32;
    match version {
        10 => {
            if sanitized.len() != 10
                || !sanitized[..9].iter().all(|b| b.is_ascii_digit())
                || !(sanitized[9].is_ascii_digit() || sanitized[9] == b'X')
            {
                return false;
            }
            let mut sum: u32 = (0..9).map(|i| (i as u32 + 1) * d(sanitized[i])).sum();
            sum += if sanitized[9] == b'X' {
                100
            } else {
                10 * d(sanitized[9])
            };
            sum % 11 == 0
        }
        13 => {
            if sanitized.len() != 13 || !sanitized.iter().all(|b| b.is_ascii_digit()) {
                return false;
            }
            let sum: u32 = (0..12)
                .map(|i| if i % 2 == 0 { 1 } else { 3 } * d(sanitized[i]))
                .sum();
            d(sanitized[12]) == (10 - sum % 10) % 10
        }
        _ => false,
    }
}

fn is_credit_card(s: &str) -> bool {
    static CC: OnceLock<Regex> = OnceLock::new();
    let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    let rx = re(
        &CC,
        r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35\d{3})\d{11})$",
    );
    if !rx.is_match(&digits) {
        return false;
    }
    let mut sum = 0u32;
    let mut double = false;
    for b in digits.bytes().rev() {
        let mut n = (b - b'0') as u32;
        if double {
            n *= 2;
            sum += if n >= 10 { n % 10 + 1 } else { n };
        } else {
            sum += n;
        }
        double = !double;
    }
    sum % 10 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// Go's `time.Parse("2006-01-02", s)`.
pub(crate) fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let p = &s[r];
        if p.bytes().all(|c| c.is_ascii_digit()) {
            p.parse().ok()
        } else {
            None
        }
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y as i64, m)
}

/// go-openapi's `IsDateTime`.
fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || !is_date(parts[0]) {
        return false;
    }
    let rx = re(
        &DATETIME,
        r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$",
    );
    let Some(c) = rx.captures(parts[1]) else {
        return false;
    };
    &c[1] <= "23" && &c[2] <= "59" && &c[3] <= "59"
}

/// Go's `time.ParseDuration`.
fn go_parse_duration(s: &str) -> bool {
    let mut rest = s;
    if let Some(r) = rest.strip_prefix('-').or_else(|| rest.strip_prefix('+')) {
        rest = r;
    }
    if rest == "0" {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_len = 0;
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
            frac_len = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
            rest = &rest[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return false;
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return false,
        };
        let v: f64 = int_part.parse::<f64>().unwrap_or(0.0);
        total += v * mult;
        if total > 9.223_372_036_854_776e18 {
            return false;
        }
    }
    true
}

/// go-openapi's `ParseDuration`: Go syntax, or Scala-like `3 days`.
fn is_duration(s: &str) -> bool {
    if go_parse_duration(s) {
        return true;
    }
    let rx = re(&DURATION_PART, r"((\d+)\s*([A-Za-zµ]+))");
    const UNITS: &[&[&str]] = &[
        &["ns", "nano"],
        &["us", "µs", "micro"],
        &["ms", "milli"],
        &["s", "sec"],
        &["m", "min"],
        &["h", "hr", "hour"],
        &["d", "day"],
        &["w", "wk", "week"],
    ];
    let mut ok = false;
    for c in rx.captures_iter(s) {
        if c[2].parse::<i64>().is_err() {
            return false;
        }
        let unit = c[3].trim().to_lowercase();
        for variants in UNITS {
            let last = variants.len() - 1;
            for (i, v) in variants.iter().enumerate() {
                if (i == last && unit.starts_with(v)) || v.eq_ignore_ascii_case(&unit) {
                    ok = true;
                }
            }
        }
    }
    ok
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || (c as u32) >= 0x80
}

fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.chars().all(is_atext))
}

fn is_quoted_string(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return false;
    };
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.next().is_none() => return false,
            '"' => return false,
            c if (c as u32) < 0x20 && c != '\t' => return false,
            _ => {}
        }
    }
    true
}

fn is_addr_spec(s: &str) -> bool {
    let Some(at) = s.rfind('@') else {
        return false;
    };
    let (local, domain) = (&s[..at], &s[at + 1..]);
    let local_ok = is_dot_atom(local) || is_quoted_string(local);
    let domain_ok = is_dot_atom(domain)
        || (domain.starts_with('[')
            && domain.ends_with(']')
            && domain.len() >= 2
            && !domain[1..domain.len() - 1].contains(['[', ']', '\\']));
    local_ok && domain_ok
}

/// An approximation of Go's `mail.ParseAddress`: `local@domain`, optionally
/// as `Display Name <local@domain>`.
fn is_email(s: &str) -> bool {
    let t = s.trim_matches([' ', '\t']);
    if let Some(open) = t.rfind('<') {
        let Some(inner) = t[open + 1..].strip_suffix('>') else {
            return false;
        };
        let name = t[..open].trim();
        let name_ok = name.is_empty()
            || is_quoted_string(name)
            || name
                .split([' ', '\t'])
                .filter(|w| !w.is_empty())
                .all(|w| w.chars().all(|c| is_atext(c) || c == '.'));
        return name_ok && is_addr_spec(inner.trim());
    }
    is_addr_spec(t)
}

/// Go's `url.ParseRequestURI(s)` succeeding.
fn is_request_uri(s: &str) -> bool {
    if s.is_empty() || s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return false;
    }
    if s == "*" {
        return true;
    }
    // scheme
    let mut scheme_end = None;
    for (i, c) in s.char_indices() {
        if c.is_ascii_alphabetic() {
            continue;
        }
        if c.is_ascii_digit() || c == '+' || c == '-' || c == '.' {
            if i == 0 {
                break;
            }
            continue;
        }
        if c == ':' {
            if i == 0 {
                return false; // missing protocol scheme
            }
            scheme_end = Some(i);
        }
        break;
    }
    let rest = match scheme_end {
        Some(i) => &s[i + 1..],
        None => s,
    };
    let (rest, _query) = match rest.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    if !rest.starts_with('/') {
        return scheme_end.is_some(); // opaque URI, or "invalid URI for request"
    }
    let path = if scheme_end.is_some() && rest.starts_with("//") {
        let auth_end = rest[2..].find('/').map(|i| i + 2).unwrap_or(rest.len());
        let authority = &rest[2..auth_end];
        if !valid_authority(authority) {
            return false;
        }
        &rest[auth_end..]
    } else {
        rest
    };
    valid_escapes(path)
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !b[i + 1].is_ascii_hexdigit() || !b[i + 2].is_ascii_hexdigit() {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn valid_authority(a: &str) -> bool {
    let host = match a.rfind('@') {
        Some(i) => {
            let user = &a[..i];
            if !user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c))
            {
                return false;
            }
            &a[i + 1..]
        }
        None => a,
    };
    if let Some(r) = host.strip_prefix('[') {
        let Some(close) = r.find(']') else {
            return false;
        };
        let after = &r[close + 1..];
        return after.is_empty() || valid_port(after);
    }
    let hostname = match host.rfind(':') {
        Some(i) => {
            if !valid_port(&host[i..]) {
                return false;
            }
            &host[..i]
        }
        None => host,
    };
    valid_escapes(hostname)
        && hostname.chars().all(|c| {
            c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:[]<>\"%".contains(c) || (c as u32) >= 0x80
        })
}

fn valid_port(p: &str) -> bool {
    match p.strip_prefix(':') {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
        None => p.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(f: &str, s: &str) -> bool {
        StringFormat::lookup(f).unwrap().is_valid(s)
    }

    #[test]
    fn lookup_normalizes() {
        assert_eq!(
            StringFormat::lookup("date-time"),
            Some(StringFormat::DateTime)
        );
        assert_eq!(
            StringFormat::lookup("k8s-short-name"),
            Some(StringFormat::K8sShortName)
        );
        assert_eq!(StringFormat::lookup("int-or-string"), None);
        assert_eq!(StringFormat::lookup("quantity"), None);
    }

    #[test]
    fn formats() {
        assert!(ok("email", "a@b.c"));
        assert!(ok("email", "John Doe <john@example.com>"));
        assert!(!ok("email", "x"));
        assert!(!ok("email", "a@"));
        assert!(ok("hostname", "example.com"));
        assert!(ok("hostname", "localhost"));
        assert!(!ok("hostname", "-bad"));
        assert!(!ok("hostname", "a..b"));
        assert!(ok("ipv4", "10.0.0.1"));
        assert!(ok("ipv4", "010.0.0.1"));
        assert!(!ok("ipv4", "256.0.0.1"));
        assert!(!ok("ipv4", "::1"));
        assert!(ok("ipv6", "::1"));
        assert!(ok("ipv6", "fe80::1"));
        assert!(!ok("ipv6", "1.2.3.4"));
        assert!(ok("cidr", "10.0.0.0/8"));
        assert!(ok("cidr", "fd00::/64"));
        assert!(!ok("cidr", "10.0.0.0/33"));
        assert!(!ok("cidr", "10.0.0.0"));
        assert!(ok("mac", "01:23:45:67:89:ab"));
        assert!(ok("mac", "01-23-45-67-89-AB"));
        assert!(ok("mac", "0123.4567.89ab"));
        assert!(!ok("mac", "01:23:45:67:89"));
        assert!(ok("uuid", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(ok("uuid", "123E4567E89B12D3A456426614174000"));
        assert!(!ok("uuid", "123e4567"));
        assert!(ok("uuid4", "123e4567-e89b-42d3-a456-426614174000"));
        assert!(!ok("uuid4", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(ok("uri", "https://example.com/a?b=c"));
        assert!(ok("uri", "/absolute/path"));
        assert!(ok("uri", "mailto:a@b.c"));
        assert!(!ok("uri", "relative/path"));
        assert!(!ok("uri", ""));
        assert!(!ok("uri", "http://host:port/"));
        assert!(ok("byte", "aGVsbG8="));
        assert!(!ok("byte", "aGVsbG8"));
        assert!(!ok("byte", "!!!!"));
        assert!(ok("date", "2024-02-29"));
        assert!(!ok("date", "2023-02-29"));
        assert!(!ok("date", "2023-1-01"));
        assert!(ok("date-time", "2024-01-02T15:04:05Z"));
        assert!(ok("date-time", "2024-01-02T15:04:05.123+01:00"));
        assert!(!ok("date-time", "2024-01-02T25:04:05Z"));
        assert!(!ok("date-time", "2024-01-02"));
        assert!(ok("duration", "1h30m"));
        assert!(ok("duration", "-1.5s"));
        assert!(ok("duration", "0"));
        assert!(ok("duration", "3 days"));
        assert!(ok("duration", "10min"));
        assert!(!ok("duration", "abc"));
        assert!(!ok("duration", ""));
        assert!(!ok("duration", "1x"));
        assert!(ok("isbn10", "0321751043"));
        assert!(ok("isbn13", "978-0321751041"));
        assert!(!ok("isbn13", "978-0321751042"));
        assert!(ok("creditcard", "4111 1111 1111 1111"));
        assert!(!ok("creditcard", "4111 1111 1111 1112"));
        assert!(ok("ssn", "123-45-6789"));
        assert!(ok("hexcolor", "#fff"));
        assert!(ok("rgbcolor", "rgb(255, 0, 10)"));
        assert!(!ok("rgbcolor", "rgb(256,0,0)"));
        assert!(ok("bsonobjectid", "507f1f77bcf86cd799439011"));
        assert!(ok("k8s-short-name", "my-name"));
        assert!(!ok("k8s-short-name", "My-name"));
        assert!(ok("k8s-long-name", "a.b-c.d"));
        assert!(ok("password", "anything"));
    }
}
