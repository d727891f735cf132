//! A client's network: its address cut to a prefix length, the unit that
//! rate limits and greylisting count by, because one sender holds many
//! addresses of one network (a mail provider's pool, an IPv6 /64 handed
//! to one customer).

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

/// The prefix length of an IPv4 client's network, 0 to 32 bits; 24 by
/// default. Deserializing a larger value fails, naming the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u8")]
pub struct Ipv4Prefix(u8);

/// The prefix length of an IPv6 client's network, 0 to 128 bits; 64 by
/// default (RFC 6177: the size of one site's allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u8")]
pub struct Ipv6Prefix(u8);

/// A prefix length beyond the address's bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadPrefix {
    bits: u8,
    max: u8,
}

impl fmt::Display for BadPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a prefix length is 0 to {} bits, not {}", self.max, self.bits)
    }
}

impl std::error::Error for BadPrefix {}

macro_rules! prefix {
    ($name:ident, $max:expr, $default:expr) => {
        impl $name {
            /// The prefix length, in bits.
            pub fn bits(self) -> u8 {
                self.0
            }
        }

        impl TryFrom<u8> for $name {
            type Error = BadPrefix;

            fn try_from(bits: u8) -> Result<Self, BadPrefix> {
                if bits <= $max { Ok($name(bits)) } else { Err(BadPrefix { bits, max: $max }) }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name($default)
            }
        }
    };
}

prefix!(Ipv4Prefix, 32, 24);
prefix!(Ipv6Prefix, 128, 64);

/// The prefix lengths that cut a client's address to its network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkPrefixes {
    pub ipv4: Ipv4Prefix,
    pub ipv6: Ipv6Prefix,
}

impl NetworkPrefixes {
    /// The network of `ip`: `192.0.2.77` is in `192.0.2.0/24`,
    /// `2001:db8:1:2:3::4` in `2001:db8:1:2::/64` (by default). An
    /// IPv4-mapped IPv6 address is cut as the IPv4 address it carries.
    pub fn network(self, ip: IpAddr) -> IpNet {
        let ip = ip.to_canonical();
        let bits = match ip {
            IpAddr::V4(_) => self.ipv4.bits(),
            IpAddr::V6(_) => self.ipv6.bits(),
        };
        IpNet::new(ip, bits).expect("prefix lengths are checked when made").trunc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_cut_to_the_prefix_and_mapped_addresses_count_as_ipv4() {
        let prefixes = NetworkPrefixes::default();
        let net = |ip: &str| prefixes.network(ip.parse().unwrap()).to_string();
        assert_eq!(net("192.0.2.77"), "192.0.2.0/24");
        assert_eq!(net("::ffff:192.0.2.77"), "192.0.2.0/24");
        assert_eq!(net("2001:db8:1:2:3::4"), "2001:db8:1:2::/64");
        let wide = NetworkPrefixes { ipv4: 16.try_into().unwrap(), ipv6: 48.try_into().unwrap() };
        assert_eq!(wide.network("192.0.2.77".parse().unwrap()).to_string(), "192.0.0.0/16");
        assert_eq!(wide.network("2001:db8:1:2::4".parse().unwrap()).to_string(), "2001:db8:1::/48");
    }

    #[test]
    fn prefixes_beyond_the_address_are_refused() {
        assert!(Ipv4Prefix::try_from(32).is_ok());
        assert_eq!(Ipv4Prefix::try_from(33).unwrap_err().to_string(), "a prefix length is 0 to 32 bits, not 33");
        assert!(Ipv6Prefix::try_from(128).is_ok());
        assert!(Ipv6Prefix::try_from(129).is_err());
    }
}
