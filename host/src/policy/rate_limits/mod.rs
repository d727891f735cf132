//! Rate limits per client address, per network, per authenticated user and
//! per reverse-path (issue 14, "Rate limits"): connections per minute and
//! at once, messages and recipients per minute, failed AUTH per hour,
//! messages per hour. Each is off until configured, and an unconfigured
//! limit costs nothing. The host refuses with 421 4.7.0 at connect and
//! 451 4.7.1 at MAIL/RCPT (RFC 5321 section 4.2.3: transient, the client
//! may retry later).
//!
//! A request refused by one limit counts against none, so that one client
//! over its own limit does not use up its network's: each limit counts
//! the request as it passes it ([`keyed::KeyedLimit::take`], one map
//! lookup), and a refusal by a later one gives the earlier counts back.
//! Requests in flight at once make the limits approximate by their
//! number: two racing may both pass the last count, or one may be refused
//! on a count the other then gives back.
//!
//! Time is read only through the injected [`Clock`] (its monotonic
//! reading), so tests advance a [`FakeClock`](crate::policy::FakeClock).

mod concurrency;
mod config;
mod keyed;
mod postgres_cells;
mod shared;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

pub use concurrency::ConnectionSlot;
pub use config::RateLimitsConfig;
pub use postgres_cells::{CellRequest, PostgresCells, Take};

use crate::policy::Networks;
use crate::policy::client_network::NetworkPrefixes;
use crate::policy::clock::Clock;
use concurrency::Concurrency;
use keyed::{GovernorClock, KeyedLimit, allows, give_back, take};
use shared::SharedLimits;

/// Which limit refused: [`Limited::name`] names it for logs,
/// [`Limited::reason`] says it to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limited {
    ClientConnectionsPerMinute,
    NetworkConnectionsPerMinute,
    ClientConcurrentConnections,
    NetworkConcurrentConnections,
    ClientMessagesPerMinute,
    NetworkMessagesPerMinute,
    ClientRecipientsPerMinute,
    NetworkRecipientsPerMinute,
    ClientAuthFailuresPerHour,
    NetworkAuthFailuresPerHour,
    UserMessagesPerHour,
    SenderMessagesPerHour,
}

impl Limited {
    /// The limit's key in `[rate_limits]`, e.g. `client_messages_per_minute`.
    pub fn name(self) -> &'static str {
        match self {
            Limited::ClientConnectionsPerMinute => "client_connections_per_minute",
            Limited::NetworkConnectionsPerMinute => "network_connections_per_minute",
            Limited::ClientConcurrentConnections => "client_concurrent_connections",
            Limited::NetworkConcurrentConnections => "network_concurrent_connections",
            Limited::ClientMessagesPerMinute => "client_messages_per_minute",
            Limited::NetworkMessagesPerMinute => "network_messages_per_minute",
            Limited::ClientRecipientsPerMinute => "client_recipients_per_minute",
            Limited::NetworkRecipientsPerMinute => "network_recipients_per_minute",
            Limited::ClientAuthFailuresPerHour => "client_auth_failures_per_hour",
            Limited::NetworkAuthFailuresPerHour => "network_auth_failures_per_hour",
            Limited::UserMessagesPerHour => "user_messages_per_hour",
            Limited::SenderMessagesPerHour => "sender_messages_per_hour",
        }
    }

    /// The reply text, ASCII without CR or LF, e.g. `too many connections
    /// from your network`.
    pub fn reason(self) -> &'static str {
        match self {
            Limited::ClientConnectionsPerMinute => "too many connections from your address",
            Limited::NetworkConnectionsPerMinute => "too many connections from your network",
            Limited::ClientConcurrentConnections => "too many concurrent connections from your address",
            Limited::NetworkConcurrentConnections => "too many concurrent connections from your network",
            Limited::ClientMessagesPerMinute => "too many messages from your address",
            Limited::NetworkMessagesPerMinute => "too many messages from your network",
            Limited::ClientRecipientsPerMinute => "too many recipients from your address",
            Limited::NetworkRecipientsPerMinute => "too many recipients from your network",
            Limited::ClientAuthFailuresPerHour => "too many failed authentications from your address",
            Limited::NetworkAuthFailuresPerHour => "too many failed authentications from your network",
            Limited::UserMessagesPerHour => "too many messages from this user",
            Limited::SenderMessagesPerHour => "too many messages from this sender",
        }
    }
}

/// A pair of limits on one event, per client address and per network.
struct PerClient {
    client: Option<KeyedLimit<IpAddr>>,
    network: Option<KeyedLimit<IpNet>>,
}

impl PerClient {
    fn allows(&self, key: &ClientKey) -> Result<(), Limited> {
        allows(&self.client, &key.client)?;
        allows(&self.network, &key.network)
    }

    fn count(&self, key: &ClientKey) {
        // Each on its own: a failure counts against the client even when
        // its network's count is full.
        let _ = take(&self.client, &key.client);
        let _ = take(&self.network, &key.network);
    }

    /// Counts the request against both if both pass; else counts nothing
    /// and says which refused.
    fn take(&self, key: &ClientKey) -> Result<(), Limited> {
        take(&self.client, &key.client)?;
        take(&self.network, &key.network).inspect_err(|_| give_back(&self.client, &key.client))
    }

    fn give_back(&self, key: &ClientKey) {
        give_back(&self.client, &key.client);
        give_back(&self.network, &key.network);
    }
}

/// A client's address (IPv4-mapped IPv6 as IPv4) and its network.
struct ClientKey {
    client: IpAddr,
    network: IpNet,
}

/// The configured rate limits, shared by every connection (`Arc`); every
/// method is synchronous and takes no lock longer than a map access.
pub struct RateLimits {
    prefixes: NetworkPrefixes,
    exempt: Networks,
    connections: PerClient,
    concurrency: Option<Arc<Concurrency>>,
    messages: PerClient,
    recipients: PerClient,
    auth_failures: PerClient,
    /// Keyed by `Arc<str>`: a request clones its key for the check and the
    /// count, which must not copy the string.
    user_messages: Option<KeyedLimit<Arc<str>>>,
    sender_messages: Option<KeyedLimit<Arc<str>>>,
    /// With `shared = true`: the limits on messages, recipients and failed
    /// AUTH, counted in PostgreSQL (the in-memory ones above are then off).
    shared: Option<SharedLimits>,
}

impl RateLimits {
    /// The limits `config` sets, with empty counts, reading time from
    /// `clock`. With `config.shared` and `cells`, the limits on messages,
    /// recipients and failed AUTH are counted in `cells`; without `cells`
    /// (the settings refuse `shared` without a PostgreSQL store) every
    /// limit is counted here. Cannot fail: the config's types hold only
    /// valid values.
    pub fn new(config: &RateLimitsConfig, clock: Arc<dyn Clock>, cells: Option<PostgresCells>) -> RateLimits {
        let shared = cells.filter(|_| config.shared).map(|cells| SharedLimits::new(config, cells, clock.clone()));
        let local = RateLimits::local(config, clock);
        match shared {
            Some(shared) => RateLimits {
                messages: PerClient { client: None, network: None },
                recipients: PerClient { client: None, network: None },
                auth_failures: PerClient { client: None, network: None },
                user_messages: None,
                sender_messages: None,
                shared: Some(shared),
                ..local
            },
            None => local,
        }
    }

    /// Every limit `config` sets, counted in memory.
    fn local(config: &RateLimitsConfig, clock: Arc<dyn Clock>) -> RateLimits {
        let clock = &GovernorClock(clock);
        let c = config;
        RateLimits {
            prefixes: c.prefixes(),
            exempt: c.exempt_networks.clone(),
            connections: PerClient {
                client: KeyedLimit::per_minute(
                    c.client_connections_per_minute,
                    clock,
                    Limited::ClientConnectionsPerMinute,
                ),
                network: KeyedLimit::per_minute(
                    c.network_connections_per_minute,
                    clock,
                    Limited::NetworkConnectionsPerMinute,
                ),
            },
            concurrency: Concurrency::new(c.client_concurrent_connections, c.network_concurrent_connections),
            messages: PerClient {
                client: KeyedLimit::per_minute(c.client_messages_per_minute, clock, Limited::ClientMessagesPerMinute),
                network: KeyedLimit::per_minute(
                    c.network_messages_per_minute,
                    clock,
                    Limited::NetworkMessagesPerMinute,
                ),
            },
            recipients: PerClient {
                client: KeyedLimit::per_minute(
                    c.client_recipients_per_minute,
                    clock,
                    Limited::ClientRecipientsPerMinute,
                ),
                network: KeyedLimit::per_minute(
                    c.network_recipients_per_minute,
                    clock,
                    Limited::NetworkRecipientsPerMinute,
                ),
            },
            auth_failures: PerClient {
                client: KeyedLimit::per_hour(
                    c.client_auth_failures_per_hour,
                    clock,
                    Limited::ClientAuthFailuresPerHour,
                ),
                network: KeyedLimit::per_hour(
                    c.network_auth_failures_per_hour,
                    clock,
                    Limited::NetworkAuthFailuresPerHour,
                ),
            },
            user_messages: KeyedLimit::per_hour(c.user_messages_per_hour, clock, Limited::UserMessagesPerHour),
            sender_messages: KeyedLimit::per_hour(c.sender_messages_per_hour, clock, Limited::SenderMessagesPerHour),
            shared: None,
        }
    }

    /// Whether any limit counts messages (so MAIL must be asked).
    pub fn counts_messages(&self) -> bool {
        let m = &self.messages;
        m.client.is_some()
            || m.network.is_some()
            || self.user_messages.is_some()
            || self.sender_messages.is_some()
            || self.shared.as_ref().is_some_and(SharedLimits::counts_messages)
    }

    /// The client's keys, or `None` when it is exempt.
    fn key(&self, ip: IpAddr) -> Option<ClientKey> {
        let client = ip.to_canonical();
        (!self.exempt.contains(client)).then(|| ClientKey { client, network: self.prefixes.network(client) })
    }

    /// A new connection from `ip`: counts it against the connections per
    /// minute and takes a concurrency slot, held until the returned slot
    /// is dropped. Refused (421 4.7.0) when any of the four limits is
    /// reached; a refused connection is not counted.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnectionSlot, Limited> {
        let Some(key) = self.key(ip) else { return Ok(ConnectionSlot::none()) };
        let Some(concurrency) = &self.concurrency else {
            self.connections.take(&key)?;
            return Ok(ConnectionSlot::none());
        };
        let admission = concurrency.lock();
        admission.allows(key.client, key.network)?;
        self.connections.take(&key)?;
        Ok(admission.take(key.client, key.network))
    }

    /// A MAIL command from `ip`, by the user `authenticated` (RFC 4954
    /// identity) if any, with `reverse_path` (without angle brackets,
    /// empty for the null path, which the per-sender limit exempts:
    /// bounces must get through). Counts one message against each limit
    /// that applies, or refuses (451 4.7.1) and counts nothing.
    pub async fn message(&self, ip: IpAddr, authenticated: Option<&str>, reverse_path: &str) -> Result<(), Limited> {
        let Some(key) = self.key(ip) else { return Ok(()) };
        match &self.shared {
            Some(shared) => shared.message(&key, authenticated, reverse_path).await,
            None => self.local_message(&key, authenticated, reverse_path),
        }
    }

    /// [`RateLimits::message`] when it is decided without waiting: `None`
    /// (nothing counted) when the limits are shared, which asks PostgreSQL.
    pub fn message_now(
        &self,
        ip: IpAddr,
        authenticated: Option<&str>,
        reverse_path: &str,
    ) -> Option<Result<(), Limited>> {
        let Some(key) = self.key(ip) else { return Some(Ok(())) };
        match &self.shared {
            Some(_) => None,
            None => Some(self.local_message(&key, authenticated, reverse_path)),
        }
    }

    fn local_message(&self, key: &ClientKey, authenticated: Option<&str>, reverse_path: &str) -> Result<(), Limited> {
        let user = self.user_messages.as_ref().zip(authenticated).map(|(limit, user)| (limit, Arc::from(user)));
        let sender = self
            .sender_messages
            .as_ref()
            .filter(|_| !reverse_path.is_empty())
            .map(|limit| (limit, Arc::from(reverse_path.to_lowercase())));
        self.messages.take(key)?;
        let (user, sender) = (user.as_ref(), sender.as_ref());
        if let Some((limit, name)) = user
            && let Err(limited) = limit.take(name)
        {
            self.messages.give_back(key);
            return Err(limited);
        }
        if let Some((limit, name)) = sender
            && let Err(limited) = limit.take(name)
        {
            self.messages.give_back(key);
            if let Some((limit, name)) = user {
                limit.give_back(name);
            }
            return Err(limited);
        }
        Ok(())
    }

    /// A RCPT command from `ip`: counts one recipient, or refuses (451
    /// 4.7.1) and counts nothing.
    pub async fn recipient(&self, ip: IpAddr) -> Result<(), Limited> {
        let Some(key) = self.key(ip) else { return Ok(()) };
        match &self.shared {
            Some(shared) => shared.recipient(&key).await,
            None => self.local_recipient(&key),
        }
    }

    /// [`RateLimits::recipient`] when it is decided without waiting: `None`
    /// (nothing counted) when the limits are shared.
    pub fn recipient_now(&self, ip: IpAddr) -> Option<Result<(), Limited>> {
        let Some(key) = self.key(ip) else { return Some(Ok(())) };
        match &self.shared {
            Some(_) => None,
            None => Some(self.local_recipient(&key)),
        }
    }

    fn local_recipient(&self, key: &ClientKey) -> Result<(), Limited> {
        self.recipients.take(key)
    }

    /// Records a failed AUTH from `ip` (RFC 4954 535 5.7.8).
    pub async fn auth_failed(&self, ip: IpAddr) {
        match (self.key(ip), &self.shared) {
            (Some(key), Some(shared)) => shared.auth_failed(&key).await,
            (Some(key), None) => self.auth_failures.count(&key),
            (None, _) => {}
        }
    }

    /// Whether `ip` may try AUTH: false once the client or its network
    /// has reached its failed-AUTH-per-hour limit, until the window lets
    /// one more failure in. Counts nothing; the host then refuses AUTH
    /// without checking the password, so a password guesser learns
    /// nothing more.
    pub async fn auth_allowed(&self, ip: IpAddr) -> bool {
        match (self.key(ip), &self.shared) {
            (Some(key), Some(shared)) => shared.auth_allowed(&key).await,
            (Some(key), None) => self.auth_failures.allows(&key).is_ok(),
            (None, _) => true,
        }
    }
}
