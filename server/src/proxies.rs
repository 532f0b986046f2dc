//! Which reverse proxies the relay trusts to name a client's address.
//!
//! `X-Forwarded-For` is a list that every proxy on the way appends to, so
//! only its right end can be trusted: each entry was written by the hop
//! before it. The client's address is the rightmost entry that is not one
//! of the operator's own proxies, and the header counts at all only when
//! the TCP peer is one of them; anyone else could write anything into it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address or a network of them, such as `10.0.0.0/8` or `::1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V4(ip)) => {
                // An IPv4 peer on a dual-stack socket may be written either way.
                net.to_ipv4_mapped().is_some_and(|net| {
                    let prefix = self.prefix.saturating_sub(96);
                    IpNet { addr: IpAddr::V4(net), prefix }.contains(IpAddr::V4(ip))
                })
            }
            (IpAddr::V4(_), IpAddr::V6(ip)) => {
                ip.to_ipv4_mapped().is_some_and(|ip| self.contains(IpAddr::V4(ip)))
            }
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not an IP address or network such as 10.0.0.0/8");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> serde::Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether `ip` is one of `trusted`.
pub fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    trusted.iter().any(|net| net.contains(ip))
}

/// The client's address: the TCP `peer`, or, when the peer is a trusted
/// proxy, the rightmost `X-Forwarded-For` entry that is not (the peer
/// itself if every entry is, or the header is missing or malformed).
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(trusted, peer) {
        return peer;
    }
    let Some(header) = forwarded_for else { return peer };
    let mut client = peer;
    for entry in header.rsplit(',') {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else {
            // Not an address: nothing to its left can be trusted either.
            return client;
        };
        client = ip;
        if !is_trusted(trusted, ip) {
            return ip;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_contain() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.200.1.2")));
        assert!(!net.contains(ip("11.0.0.1")));
        let one: IpNet = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        assert!(one.contains(ip("::ffff:127.0.0.1")), "an IPv4 peer written as IPv6");
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("192.0.2.7")));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client_and_only_from_the_right() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        // Not from a proxy: the header is whatever the peer wanted it to be.
        assert_eq!(
            client_address(ip("198.51.100.9"), Some("1.2.3.4"), &trusted),
            ip("198.51.100.9")
        );
        // From the proxy: the rightmost entry it did not write itself.
        assert_eq!(
            client_address(ip("127.0.0.1"), Some("6.6.6.6, 203.0.113.5"), &trusted),
            ip("203.0.113.5"),
            "the leftmost entry is the client's own claim"
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), Some("203.0.113.5, 10.1.2.3"), &trusted),
            ip("203.0.113.5"),
            "a second, inner proxy is skipped"
        );
        assert_eq!(client_address(ip("127.0.0.1"), None, &trusted), ip("127.0.0.1"));
        assert_eq!(
            client_address(ip("127.0.0.1"), Some("junk, 10.0.0.1"), &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(client_address(ip("127.0.0.1"), Some("1.1.1.1"), &[]), ip("127.0.0.1"));
    }
}
