//! Host principals (the names and addresses a host certificate is valid for) and the
//! patterns of `[host_ca] allowed_principals` that say which ones join tokens may name.
//!
//! A host principal is exact: a lower-case DNS name or an IP address. `ssh` compares
//! the name the user typed (lower-cased) with the certificate's principals, and OpenSSH
//! also accepts wildcards there, so a principal with `*` or `?` would let one host
//! answer for many: refused. A name has the shape of a DNS name (labels of letters,
//! digits and `-`), so nothing in it can reach a shell, a log line or a pattern.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Serialize, Serializer};

use super::InvalidName;

/// Longest host name (DNS's limit).
const MAX_NAME: usize = 253;

/// Most principals one host certificate carries.
pub const MAX_HOST_PRINCIPALS: usize = 32;

/// A name or address a host certificate is valid for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostPrincipal {
    /// A DNS name, lower case, e.g. `web1` or `web1.example.com`.
    Name(String),
    /// An IP address, as `ssh` writes it when the user connects by address.
    Ip(IpAddr),
}

impl HostPrincipal {
    /// Parses one principal: an IP address, or a lower-case DNS name.
    pub fn parse(s: &str) -> Result<HostPrincipal, InvalidName> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(HostPrincipal::Ip(ip));
        }
        check_dns_name(s)?;
        Ok(HostPrincipal::Name(s.to_owned()))
    }

    /// Parses a comma-separated list (`web1,web1.example.com,10.0.0.5`): at least one,
    /// at most [`MAX_HOST_PRINCIPALS`], no repeats; kept in the order given.
    pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Vec<HostPrincipal>, InvalidName> {
        let mut out: Vec<HostPrincipal> = Vec::new();
        for item in items {
            let p = HostPrincipal::parse(item.as_ref().trim())?;
            if out.contains(&p) {
                return Err(InvalidName(format!("principal {p} is named twice")));
            }
            out.push(p);
        }
        if out.is_empty() {
            return Err(InvalidName("name at least one host principal".into()));
        }
        if out.len() > MAX_HOST_PRINCIPALS {
            return Err(InvalidName(format!(
                "at most {MAX_HOST_PRINCIPALS} principals per host certificate"
            )));
        }
        Ok(out)
    }
}

impl fmt::Display for HostPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPrincipal::Name(n) => f.write_str(n),
            HostPrincipal::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl Serialize for HostPrincipal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One entry of `allowed_principals`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this name.
    Exact(String),
    /// `*.domain`: any name ending in `.domain` (one label or more before it), stored as
    /// `.domain`.
    Suffix(String),
    /// Any IP address in this network (a bare address is a /32 or /128).
    Net(IpNet),
}

impl HostPattern {
    /// Parses `web1`, `*.example.com`, `10.0.0.0/8` or `10.0.0.5`.
    pub fn parse(s: &str) -> Result<HostPattern, InvalidName> {
        if let Some(domain) = s.strip_prefix("*.") {
            check_dns_name(domain).map_err(|e| InvalidName(format!("{s:?}: {e}")))?;
            check_not_address_like(domain)?;
            return Ok(HostPattern::Suffix(format!(".{domain}")));
        }
        if let Ok(net) = s.parse::<IpNet>() {
            if net.trunc() != net {
                return Err(InvalidName(format!(
                    "{s:?}: host bits are set; the network is {}",
                    net.trunc()
                )));
            }
            return Ok(HostPattern::Net(net));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(HostPattern::Net(IpNet::from(ip)));
        }
        if s.contains(['*', '?']) {
            return Err(InvalidName(format!(
                "{s:?}: the only wildcard is a leading \"*.\" (e.g. \"*.example.com\")"
            )));
        }
        check_dns_name(s).map_err(|e| InvalidName(format!("{s:?}: {e}")))?;
        check_not_address_like(s)?;
        Ok(HostPattern::Exact(s.to_owned()))
    }

    /// Whether `p` is inside this pattern.
    pub fn allows(&self, p: &HostPrincipal) -> bool {
        match (self, p) {
            (HostPattern::Exact(n), HostPrincipal::Name(m)) => n == m,
            (HostPattern::Suffix(d), HostPrincipal::Name(m)) => {
                m.len() > d.len() && m.ends_with(d.as_str())
            }
            (HostPattern::Net(net), HostPrincipal::Ip(ip)) => net.contains(ip),
            _ => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(n) => f.write_str(n),
            HostPattern::Suffix(d) => write!(f, "*{d}"),
            HostPattern::Net(n) => write!(f, "{n}"),
        }
    }
}

/// A lower-case DNS name: labels of `a-z`, `0-9` and `-` (not first or last), 1 to 63
/// characters each, at most 253 in all; not all digits (that would read as an address).
fn check_dns_name(s: &str) -> Result<(), InvalidName> {
    if s.is_empty() || s.len() > MAX_NAME {
        return Err(InvalidName(format!(
            "a host name has 1 to {MAX_NAME} characters"
        )));
    }
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(InvalidName(format!(
            "host name {s:?} must be lower case (ssh compares lower-cased names)"
        )));
    }
    for label in s.split('.') {
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(InvalidName(format!(
                "{:?} is not a host name or IP address (labels of a-z, 0-9 and '-', \
                 separated by dots; no wildcards)",
                s.chars().take(80).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// A pattern of digits and dots alone would read as an address (`10.0.0` is 10.0.0.0 to
/// `inet_aton`), never as a name: refused, so no name principal of that shape is ever
/// allowed (a principal is only ever certified inside a pattern).
fn check_not_address_like(s: &str) -> Result<(), InvalidName> {
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(InvalidName(format!(
            "{s:?} is neither an IP address nor a name (digits and dots alone)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPrincipal {
        HostPrincipal::parse(s).unwrap()
    }

    #[test]
    fn principals_are_exact_names_or_addresses() {
        assert_eq!(p("web1"), HostPrincipal::Name("web1".into()));
        assert_eq!(
            p("10.0.0.5"),
            HostPrincipal::Ip("10.0.0.5".parse().unwrap())
        );
        assert_eq!(p("::1").to_string(), "::1");
        for bad in [
            "",
            "*.example.com",
            "web?",
            "Web1",
            "-web",
            "web-",
            "a..b",
            "web 1",
            "web1;id",
            "web1.",
            ".web1",
        ] {
            assert!(HostPrincipal::parse(bad).is_err(), "{bad:?} was taken");
        }
        assert!(HostPrincipal::parse(&"a".repeat(64)).is_err());
        assert!(HostPrincipal::parse_list(&["a", "b", "a"]).is_err());
        assert!(HostPrincipal::parse_list::<&str>(&[]).is_err());
    }

    #[test]
    fn patterns_allow_what_they_say() {
        let suffix = HostPattern::parse("*.example.com").unwrap();
        assert!(suffix.allows(&p("web1.example.com")));
        assert!(suffix.allows(&p("a.b.example.com")));
        assert!(!suffix.allows(&p("example.com")));
        assert!(!suffix.allows(&p("web1.example.com.evil.org")));
        assert!(!suffix.allows(&p("webexample.com")));
        let net = HostPattern::parse("10.0.0.0/8").unwrap();
        assert!(net.allows(&p("10.200.0.5")));
        assert!(!net.allows(&p("11.0.0.1")));
        assert!(!net.allows(&p("web1")));
        // Digits and dots alone read as an address: never a name pattern, so a principal
        // such as `10.0.0` (a name to the parser) is never allowed.
        assert!(!net.allows(&p("10.0.0")));
        for bad in ["10.0.0", "*.0.1", "1.2.3.4.5"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} was taken");
        }
        let exact = HostPattern::parse("web1").unwrap();
        assert!(exact.allows(&p("web1")) && !exact.allows(&p("web10")));
        let one = HostPattern::parse("192.168.1.7").unwrap();
        assert!(one.allows(&p("192.168.1.7")) && !one.allows(&p("192.168.1.8")));
        for bad in [
            "*",
            "*example.com",
            "web*",
            "10.0.0.1/8",
            "*.Example.com",
            "a.*.b",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} was taken");
        }
        assert_eq!(suffix.to_string(), "*.example.com");
    }
}
