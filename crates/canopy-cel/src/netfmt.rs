//! kube's CEL `ip()` / `cidr()` library and `format` library.
//!
//! * `ip(s)`, `isIP(s)`, `ip.isCanonical(s)`, and on IPs `family()`,
//!   `isUnspecified()`, `isLoopback()`, `isLinkLocalMulticast()`,
//!   `isLinkLocalUnicast()`, `isGlobalUnicast()`, `string(ip)`;
//! * `cidr(s)`, `isCIDR(s)`, and on CIDRs `containsIP(ip|string)`,
//!   `containsCIDR(cidr|string)`, `ip()`, `masked()`, `prefixLength()`,
//!   `string(cidr)`;
//! * `format.dns1123Label()` (and the other named formats) /
//!   `format.named(name)`, with `validate(s)` returning `optional.none()` for
//!   a valid string or `optional.of([errors])`, worded as apimachinery's
//!   validators word them.

use cel::objects::Opaque;
use std::net::IpAddr;

/// CEL type name of `ip()` values.
pub const IP_TYPE: &str = "net.IP";
/// CEL type name of `cidr()` values.
pub const CIDR_TYPE: &str = "net.CIDR";
/// CEL type name of `format.*()` values.
pub const FORMAT_TYPE: &str = "kubernetes.NamedFormat";

/// An IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ip(pub IpAddr);

impl Opaque for Ip {
    fn runtime_type_name(&self) -> &str {
        IP_TYPE
    }
}

/// A CIDR: an address and a prefix length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    /// The address as written.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Opaque for Cidr {
    fn runtime_type_name(&self) -> &str {
        CIDR_TYPE
    }
}

/// Parses an IP as kube's CEL library does: no IPv4-mapped IPv6, no zones.
pub fn parse_ip(s: &str) -> Result<IpAddr, String> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() && s.contains('.') => Err(format!(
            "IP Address {s:?} parse error during conversion from string: IPv4-mapped IPv6 address is not allowed"
        )),
        Ok(ip) => Ok(ip),
        Err(_) => Err(format!(
            "IP Address {s:?} parse error during conversion from string: ParseAddr({s:?}): unable to parse IP"
        )),
    }
}

/// Parses a CIDR.
pub fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let bad = || {
        format!("network address parse error during conversion from string: network address parse error: netip.ParsePrefix({s:?}): bad prefix")
    };
    let (ip, bits) = s.split_once('/').ok_or_else(bad)?;
    let addr = parse_ip(ip).map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if bits.is_empty() || !bits.chars().all(|c| c.is_ascii_digit()) || bits.len() > 3 {
        return Err(bad());
    }
    let prefix: u8 = bits.parse().map_err(|_| bad())?;
    if prefix > max {
        return Err(bad());
    }
    Ok(Cidr { addr, prefix })
}

fn to_bits(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(*v4) as u128,
        IpAddr::V6(v6) => u128::from(*v6),
    }
}

fn width(ip: &IpAddr) -> u32 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn mask(ip: &IpAddr, prefix: u8) -> u128 {
    let w = width(ip);
    if prefix == 0 {
        0
    } else {
        let all: u128 = if w == 128 {
            u128::MAX
        } else {
            (1u128 << w) - 1
        };
        all & !((1u128 << (w - prefix as u32)) - 1)
    }
}

fn from_bits(v4: bool, bits: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(std::net::Ipv4Addr::from(bits as u32))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(bits))
    }
}

impl Cidr {
    /// The network address (host bits cleared).
    pub fn masked(&self) -> Cidr {
        let m = mask(&self.addr, self.prefix);
        Cidr {
            addr: from_bits(self.addr.is_ipv4(), to_bits(&self.addr) & m),
            prefix: self.prefix,
        }
    }

    /// Whether `ip` is in the network.
    pub fn contains_ip(&self, ip: &IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let m = mask(&self.addr, self.prefix);
        to_bits(ip) & m == to_bits(&self.addr) & m
    }

    /// Whether `other` is within the network.
    pub fn contains_cidr(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains_ip(&other.addr)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Whether an IP is a global unicast address (Go's `IsGlobalUnicast`).
pub fn is_global_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_multicast()
                || v4.is_link_local()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Whether an IP is a link-local unicast address.
pub fn is_link_local_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Whether an IP is a link-local multicast address.
pub fn is_link_local_multicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 224 && v4.octets()[1] == 0 && v4.octets()[2] == 0,
        IpAddr::V6(v6) => (v6.segments()[0] & 0xff0f) == 0xff02,
    }
}

/// A named string format of kube's `format` library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedFormat(pub &'static str);

impl Opaque for NamedFormat {
    fn runtime_type_name(&self) -> &str {
        FORMAT_TYPE
    }
}

/// The formats of kube's `format` library.
pub const FORMATS: &[&str] = &[
    "dns1123Label",
    "dns1123Subdomain",
    "dns1035Label",
    "qualifiedName",
    "dns1123LabelPrefix",
    "dns1123SubdomainPrefix",
    "dns1035LabelPrefix",
    "labelValue",
    "uri",
    "uuid",
    "byte",
    "date",
    "datetime",
];

fn is_label(s: &str, first_alpha: bool) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && (if first_alpha {
            b[0].is_ascii_lowercase()
        } else {
            b[0] != b'-'
        })
        && b[b.len() - 1] != b'-'
}

const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_ERR: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn max_len(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn dns1123_label(s: &str) -> Vec<String> {
    let mut e = Vec::new();
    if s.len() > 63 {
        e.push(max_len(63));
    }
    if !is_label(s, false) {
        e.push(DNS1123_LABEL_ERR.to_string());
    }
    e
}

fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut e = Vec::new();
    if s.len() > 253 {
        e.push(max_len(253));
    }
    if s.is_empty() || !s.split('.').all(|l| is_label(l, false)) {
        e.push(DNS1123_SUBDOMAIN_ERR.to_string());
    }
    e
}

fn dns1035_label(s: &str) -> Vec<String> {
    let mut e = Vec::new();
    if s.len() > 63 {
        e.push(max_len(63));
    }
    if !is_label(s, true) {
        e.push(DNS1035_LABEL_ERR.to_string());
    }
    e
}

fn name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

fn label_value(s: &str) -> Vec<String> {
    let mut e = Vec::new();
    if s.len() > 63 {
        e.push(max_len(63));
    }
    if !s.is_empty() && !name_part_ok(s) {
        e.push(LABEL_VALUE_ERR.to_string());
    }
    e
}

fn qualified_name(s: &str) -> Vec<String> {
    let mut e = Vec::new();
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            e.push("prefix part must be non-empty".to_string());
        } else {
            for m in dns1123_subdomain(p) {
                e.push(format!("prefix part {m}"));
            }
        }
    }
    if name.is_empty() {
        e.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            e.push(format!("name part {}", max_len(63)));
        }
        if !name_part_ok(name) {
            e.push(QUALIFIED_NAME_ERR.to_string());
        }
    }
    e
}

/// Validates `s` against the named format: the error messages, empty when
/// valid.
pub fn validate_format(name: &str, s: &str) -> Vec<String> {
    let prefix = |f: fn(&str) -> Vec<String>| -> Vec<String> {
        // a prefix may end with '-' (a generateName)
        let t = s.strip_suffix('-').unwrap_or(s);
        f(t)
    };
    match name {
        "dns1123Label" => dns1123_label(s),
        "dns1123Subdomain" => dns1123_subdomain(s),
        "dns1035Label" => dns1035_label(s),
        "qualifiedName" => qualified_name(s),
        "dns1123LabelPrefix" => prefix(dns1123_label),
        "dns1123SubdomainPrefix" => prefix(dns1123_subdomain),
        "dns1035LabelPrefix" => prefix(dns1035_label),
        "labelValue" => label_value(s),
        "uri" => match crate::library::Url::parse(s) {
            Some(_) => vec![],
            None => vec!["invalid URI".to_string()],
        },
        "uuid" => {
            let ok = s.len() == 36
                && s.char_indices().all(|(i, c)| {
                    if [8, 13, 18, 23].contains(&i) {
                        c == '-'
                    } else {
                        c.is_ascii_hexdigit()
                    }
                });
            if ok {
                vec![]
            } else {
                vec!["does not match the UUID format".to_string()]
            }
        }
        "byte" => {
            let ok = s.len() % 4 == 0
                && s.trim_end_matches('=')
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/');
            if ok {
                vec![]
            } else {
                vec!["invalid base64".to_string()]
            }
        }
        "date" => match chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(_) => vec![],
            Err(_) => vec!["invalid date".to_string()],
        },
        "datetime" => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(_) => vec![],
            Err(_) => vec!["invalid datetime".to_string()],
        },
        _ => vec![format!("unknown format {name}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = parse_cidr("10.0.0.0/8").unwrap();
        assert!(c.contains_ip(&"10.1.2.3".parse().unwrap()));
        assert!(!c.contains_ip(&"11.1.2.3".parse().unwrap()));
        assert!(c.contains_cidr(&parse_cidr("10.1.0.0/16").unwrap()));
        assert!(!c.contains_cidr(&parse_cidr("10.0.0.0/7").unwrap()));
        assert_eq!(
            parse_cidr("10.1.2.3/8").unwrap().masked().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_cidr("2001:db8::1/32").unwrap().masked().to_string(),
            "2001:db8::/32"
        );
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0.0").is_err());
        assert!(parse_cidr("::/0")
            .unwrap()
            .contains_ip(&"::1".parse().unwrap()));
    }

    #[test]
    fn formats() {
        assert!(validate_format("dns1123Label", "my-name").is_empty());
        assert_eq!(
            validate_format("dns1123Label", "My_Name"),
            vec![DNS1123_LABEL_ERR.to_string()]
        );
        assert!(validate_format("dns1123Subdomain", "a.b-c.d").is_empty());
        assert!(!validate_format("dns1035Label", "1abc").is_empty());
        assert!(validate_format("qualifiedName", "example.com/My.Name").is_empty());
        assert!(validate_format("labelValue", "").is_empty());
        assert!(validate_format("uuid", "123e4567-e89b-12d3-a456-426614174000").is_empty());
        assert!(validate_format("dns1123LabelPrefix", "abc-").is_empty());
        assert_eq!(
            validate_format("dns1123Label", &"a".repeat(64)),
            vec![max_len(63)]
        );
    }
}
