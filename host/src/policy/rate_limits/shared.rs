//! Rate limits whose counts every host of a PostgreSQL cluster shares
//! (`[rate_limits] shared = true`, issue 17): messages, recipients, failed
//! AUTH, per-user and per-sender messages, each one round trip per
//! request ([`PostgresCells::take`]). Connections (per minute and at once)
//! stay per host: they are admitted before a sandbox exists, and a flood
//! of connections must not become a flood of queries.
//!
//! Time is the injected [`Clock`]'s wall-clock reading, the one reading
//! every host has in common (monotonic clocks start with each process).
//! Hosts whose clocks differ by `d` disagree about a key's window by `d`:
//! with NTP, milliseconds against limits counted per minute or hour.
//!
//! When the database fails the request passes, and the failure is logged
//! at most every 5 minutes: greylisting's rule, so that an outage of the
//! shared store does not turn away all mail.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use tracing::{debug, warn};

use super::postgres_cells::{CellRequest, PostgresCells, Take};
use super::{ClientKey, Limited, RateLimitsConfig};
use crate::policy::clock::Clock;
use crate::policy::due::take_due;

/// How often idle cells are swept, in microseconds (an hour).
const SWEEP_INTERVAL_US: u64 = 3_600_000_000;

/// How often a failing database is logged, in microseconds (5 minutes).
const WARNING_INTERVAL_US: u64 = 300_000_000;

/// One configured limit: its name and quota.
#[derive(Clone, Copy)]
struct Quota {
    limit: Limited,
    interval_us: i64,
    window_us: i64,
}

impl Quota {
    /// `count` per `window`, or `None` when the limit is off.
    fn new(limit: Limited, count: Option<NonZeroU32>, window: Duration) -> Option<Quota> {
        let count = count?;
        let window_us = i64::try_from(window.as_micros()).expect("a window of a minute or an hour");
        // At least 1 µs: a limit of more than 60 million a minute would
        // otherwise have no interval at all.
        let interval_us = (window_us / i64::from(count.get())).max(1);
        Some(Quota { limit, interval_us, window_us: interval_us * i64::from(count.get()) })
    }

    fn request(&self, key: String) -> CellRequest {
        CellRequest { limit: self.limit, key, interval_us: self.interval_us, window_us: self.window_us }
    }
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// The shared limits of one configuration.
pub(super) struct SharedLimits {
    cells: PostgresCells,
    clock: Arc<dyn Clock>,
    client_messages: Option<Quota>,
    network_messages: Option<Quota>,
    client_recipients: Option<Quota>,
    network_recipients: Option<Quota>,
    client_auth_failures: Option<Quota>,
    network_auth_failures: Option<Quota>,
    user_messages: Option<Quota>,
    sender_messages: Option<Quota>,
    /// µs since the epoch from which the next request sweeps.
    next_sweep: AtomicU64,
    /// µs since the epoch from which the next failure is logged.
    next_warning: AtomicU64,
}

impl SharedLimits {
    /// The shared limits `config` sets, counted in `cells`.
    pub(super) fn new(config: &RateLimitsConfig, cells: PostgresCells, clock: Arc<dyn Clock>) -> SharedLimits {
        let c = config;
        SharedLimits {
            cells,
            clock,
            client_messages: Quota::new(Limited::ClientMessagesPerMinute, c.client_messages_per_minute, MINUTE),
            network_messages: Quota::new(Limited::NetworkMessagesPerMinute, c.network_messages_per_minute, MINUTE),
            client_recipients: Quota::new(Limited::ClientRecipientsPerMinute, c.client_recipients_per_minute, MINUTE),
            network_recipients: Quota::new(
                Limited::NetworkRecipientsPerMinute,
                c.network_recipients_per_minute,
                MINUTE,
            ),
            client_auth_failures: Quota::new(Limited::ClientAuthFailuresPerHour, c.client_auth_failures_per_hour, HOUR),
            network_auth_failures: Quota::new(
                Limited::NetworkAuthFailuresPerHour,
                c.network_auth_failures_per_hour,
                HOUR,
            ),
            user_messages: Quota::new(Limited::UserMessagesPerHour, c.user_messages_per_hour, HOUR),
            sender_messages: Quota::new(Limited::SenderMessagesPerHour, c.sender_messages_per_hour, HOUR),
            next_sweep: AtomicU64::new(0),
            next_warning: AtomicU64::new(0),
        }
    }

    /// Whether any shared limit counts messages.
    pub(super) fn counts_messages(&self) -> bool {
        [self.client_messages, self.network_messages, self.user_messages, self.sender_messages]
            .iter()
            .any(Option::is_some)
    }

    /// A MAIL command (see `RateLimits::message`).
    pub(super) async fn message(
        &self,
        key: &ClientKey,
        authenticated: Option<&str>,
        reverse_path: &str,
    ) -> Result<(), Limited> {
        let mut requests = per_client(self.client_messages, self.network_messages, key);
        requests.extend(self.user_messages.zip(authenticated).map(|(q, user)| q.request(user.to_string())));
        if !reverse_path.is_empty() {
            requests.extend(self.sender_messages.map(|q| q.request(reverse_path.to_lowercase())));
        }
        self.take(&requests, Take::CheckAndCount).await
    }

    /// A RCPT command.
    pub(super) async fn recipient(&self, key: &ClientKey) -> Result<(), Limited> {
        self.take(&per_client(self.client_recipients, self.network_recipients, key), Take::CheckAndCount).await
    }

    /// A failed AUTH.
    pub(super) async fn auth_failed(&self, key: &ClientKey) {
        let requests = per_client(self.client_auth_failures, self.network_auth_failures, key);
        let _ = self.take(&requests, Take::Count).await;
    }

    /// Whether the client may try AUTH.
    pub(super) async fn auth_allowed(&self, key: &ClientKey) -> bool {
        let requests = per_client(self.client_auth_failures, self.network_auth_failures, key);
        self.take(&requests, Take::Check).await.is_ok()
    }

    /// One round trip; passes when the database fails.
    async fn take(&self, requests: &[CellRequest], take: Take) -> Result<(), Limited> {
        if requests.is_empty() {
            return Ok(());
        }
        let now = self.now_us();
        self.sweep_if_due(now);
        match self.cells.take(requests, now as i64, take).await {
            Ok(None) => Ok(()),
            Ok(Some(limit)) => Err(limit),
            Err(err) => {
                if take_due(&self.next_warning, now, WARNING_INTERVAL_US) {
                    warn!(
                        err = format!("{err:#}"),
                        "shared rate limits failed: requests pass unlimited until the database works again"
                    );
                }
                Ok(())
            }
        }
    }

    /// Microseconds since the epoch; below 2^63 until the year 294,000.
    fn now_us(&self) -> u64 {
        let since = self.clock.now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        u64::try_from(since.as_micros()).unwrap_or(i64::MAX as u64).min(i64::MAX as u64)
    }

    /// Starts the hourly sweep of idle cells, in a task of its own: no
    /// request waits for it.
    fn sweep_if_due(&self, now: u64) {
        if take_due(&self.next_sweep, now, SWEEP_INTERVAL_US) {
            let cells = self.cells.clone();
            tokio::spawn(async move {
                match cells.sweep(now as i64).await {
                    Ok(removed) => debug!(removed, "shared rate limits: idle cells removed"),
                    Err(err) => debug!(err = format!("{err:#}"), "shared rate limits: sweeping idle cells failed"),
                }
            });
        }
    }
}

/// The requests of a pair of per-client and per-network limits.
fn per_client(client: Option<Quota>, network: Option<Quota>, key: &ClientKey) -> Vec<CellRequest> {
    let mut requests = Vec::with_capacity(4);
    requests.extend(client.map(|q| q.request(key.client.to_string())));
    requests.extend(network.map(|q| q.request(key.network.to_string())));
    requests
}
