//! Lists of IP networks in CIDR notation (`192.0.2.0/24`, `2001:db8::/32`),
//! as the configuration names them: relay networks, proxy networks, and
//! the networks exempt from rate limits.

use std::fmt;
use std::net::IpAddr;

use anyhow::{Context, Result};
use ipnet::IpNet;

/// A set of networks; a client is inside when any of them contains its
/// address. IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are matched
/// as the IPv4 address they carry, as the server sees its clients.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    /// Parses each entry as a network in CIDR notation, or a single address
    /// (a /32 or /128). Errors name the entry that does not parse.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Networks> {
        let mut nets = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry = entry.as_ref().trim();
            let net =
                match entry.parse::<IpNet>() {
                    Ok(net) => net,
                    Err(_) => IpNet::from(entry.parse::<IpAddr>().with_context(|| {
                        format!("{entry:?} is not a network (CIDR, like 192.0.2.0/24) or an address")
                    })?),
                };
            // 192.0.2.1/24 means the network 192.0.2.0/24.
            nets.push(net.trunc());
        }
        Ok(Networks(nets))
    }

    /// Whether `ip` is inside any of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|n| n.to_string())).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_single_addresses_match_as_cidr_says() {
        let nets = Networks::parse(&["192.0.2.7/24", "2001:db8::/32", "198.51.100.9"]).unwrap();
        for inside in ["192.0.2.1", "192.0.2.255", "2001:db8:1::5", "198.51.100.9", "::ffff:192.0.2.3"] {
            assert!(nets.contains(inside.parse().unwrap()), "{inside}");
        }
        for outside in ["192.0.3.1", "2001:db9::1", "198.51.100.10", "::1", "127.0.0.1"] {
            assert!(!nets.contains(outside.parse().unwrap()), "{outside}");
        }
        assert!(Networks::default().is_empty());
        assert!(!Networks::default().contains("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn a_bad_entry_is_named() {
        let err = Networks::parse(&["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err();
        assert!(format!("{err:#}").contains("\"10.0.0.0/33\""), "{err:#}");
        assert!(Networks::parse(&["example.org"]).is_err());
    }
}
