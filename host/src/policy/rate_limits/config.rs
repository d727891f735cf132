//! The `[rate_limits]` table of smtpcell.toml.

use std::num::NonZeroU32;

use serde::{Deserialize, Deserializer};

use crate::policy::Networks;
use crate::policy::client_network::{Ipv4Prefix, Ipv6Prefix, NetworkPrefixes};

/// The `[rate_limits]` table. Every limit is off until configured (absent
/// key), as Postfix's anvil rates are; a limit of 0 does not deserialize
/// (the error names the key), so every configured limit is at least 1.
/// "Client" is one address; "network" is the client's address cut to
/// `ipv4_prefix`/`ipv6_prefix`. Default: every limit off.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// Bits of an IPv4 client's address naming its network (24).
    pub ipv4_prefix: Ipv4Prefix,
    /// Bits of an IPv6 client's address naming its network (64).
    pub ipv6_prefix: Ipv6Prefix,
    /// Whether the per-minute and per-hour limits on messages, recipients
    /// and failed AUTH are counted in the PostgreSQL store, shared by every
    /// host that uses it (false: each host counts its own). Valid only
    /// with `store` a PostgreSQL URL. Connection limits stay per host.
    pub shared: bool,
    /// Networks (CIDR, or single addresses) that no limit applies to and
    /// that are not counted.
    #[serde(deserialize_with = "networks")]
    pub exempt_networks: Networks,
    /// New connections from one address, per minute.
    pub client_connections_per_minute: Option<NonZeroU32>,
    /// New connections from one network, per minute.
    pub network_connections_per_minute: Option<NonZeroU32>,
    /// Connections open at once from one address.
    pub client_concurrent_connections: Option<NonZeroU32>,
    /// Connections open at once from one network.
    pub network_concurrent_connections: Option<NonZeroU32>,
    /// Messages (MAIL commands) from one address, per minute.
    pub client_messages_per_minute: Option<NonZeroU32>,
    /// Messages from one network, per minute.
    pub network_messages_per_minute: Option<NonZeroU32>,
    /// Recipients (RCPT commands) from one address, per minute.
    pub client_recipients_per_minute: Option<NonZeroU32>,
    /// Recipients from one network, per minute.
    pub network_recipients_per_minute: Option<NonZeroU32>,
    /// Failed AUTH attempts from one address, per hour.
    pub client_auth_failures_per_hour: Option<NonZeroU32>,
    /// Failed AUTH attempts from one network, per hour.
    pub network_auth_failures_per_hour: Option<NonZeroU32>,
    /// Messages from one authenticated user (RFC 4954 identity), per hour.
    pub user_messages_per_hour: Option<NonZeroU32>,
    /// Messages with one reverse-path (compared lowercased), per hour; the
    /// null reverse-path `<>` is exempt (bounces, RFC 5321 section 4.5.5).
    pub sender_messages_per_hour: Option<NonZeroU32>,
}

impl RateLimitsConfig {
    /// Whether any limit is configured (exempt networks alone limit
    /// nothing): without one, the host need not build [`RateLimits`].
    ///
    /// [`RateLimits`]: super::RateLimits
    pub fn any(&self) -> bool {
        let RateLimitsConfig {
            ipv4_prefix: _,
            ipv6_prefix: _,
            shared: _,
            exempt_networks: _,
            client_connections_per_minute,
            network_connections_per_minute,
            client_concurrent_connections,
            network_concurrent_connections,
            client_messages_per_minute,
            network_messages_per_minute,
            client_recipients_per_minute,
            network_recipients_per_minute,
            client_auth_failures_per_hour,
            network_auth_failures_per_hour,
            user_messages_per_hour,
            sender_messages_per_hour,
        } = self;
        [
            client_connections_per_minute,
            network_connections_per_minute,
            client_concurrent_connections,
            network_concurrent_connections,
            client_messages_per_minute,
            network_messages_per_minute,
            client_recipients_per_minute,
            network_recipients_per_minute,
            client_auth_failures_per_hour,
            network_auth_failures_per_hour,
            user_messages_per_hour,
            sender_messages_per_hour,
        ]
        .iter()
        .any(|limit| limit.is_some())
    }

    /// The prefix lengths naming a client's network.
    pub fn prefixes(&self) -> NetworkPrefixes {
        NetworkPrefixes { ipv4: self.ipv4_prefix, ipv6: self.ipv6_prefix }
    }
}

/// A list of CIDR strings, parsed as it is read so that a bad entry is
/// reported with the file's line.
fn networks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Networks, D::Error> {
    let entries = Vec::<String>::deserialize(deserializer)?;
    Networks::parse(&entries).map_err(|e| serde::de::Error::custom(format!("{e:#}")))
}
