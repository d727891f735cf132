//! The Prometheus side of the events: one registry of counters, gauges and
//! histograms, each updated from an [`Event`] (never from anywhere else),
//! and its exposition in the OpenMetrics text format.
//!
//! Connection events are labelled by `listener` (`mx`, `submission`,
//! `submissions`) and `component` (the version that served the
//! connection); a connection looks its series up once, when it opens
//! ([`ConnectionMetrics`]), so that each later event is an atomic add.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::Event;

/// The labels of every connection series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub listener: &'static str,
    pub component: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    listener: &'static str,
    component: Arc<str>,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Refusal {
    listener: &'static str,
    component: Arc<str>,
    stage: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Fault {
    listener: &'static str,
    component: Arc<str>,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Turnaway {
    listener: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RateLimit {
    listener: &'static str,
    stage: &'static str,
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Greylisting {
    listener: &'static str,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reload {
    result: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Message sizes, 1 KiB to 64 MiB by powers of four (octets).
fn size_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1024.0, 4.0, 9))
}

/// Commit latency and batch duration, 0.5 ms to about 16 s by doubling.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Session duration, 10 ms to about 10 min by powers of two-and-a-half.
fn session_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.5, 16))
}

/// Messages per commit batch, 1 to 1,024 by doubling.
fn batch_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 11))
}

/// Every series smtpcell exports. Names, units and help texts are stable:
/// the README lists them.
pub struct Metrics {
    registry: Registry,
    connections_opened: Family<ConnectionLabels, Counter>,
    connections: Family<ConnectionLabels, Gauge>,
    guest_instances: Family<ConnectionLabels, Gauge>,
    session_duration: Histograms<ConnectionLabels>,
    tls_handshakes: Family<Outcome, Counter>,
    auth: Family<Outcome, Counter>,
    refusals: Family<Refusal, Counter>,
    messages_stored: Family<ConnectionLabels, Counter>,
    message_size: Histograms<ConnectionLabels>,
    commit_latency: Histograms<ConnectionLabels>,
    guest_faults: Family<Fault, Counter>,
    turnaways: Family<Turnaway, Counter>,
    rate_limited: Family<RateLimit, Counter>,
    greylisting: Family<Greylisting, Counter>,
    reloads: Family<Reload, Counter>,
    component_swaps: Counter,
    commit_batch_size: Histogram,
    commit_batch_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every series registered under the `smtpcell_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("smtpcell");
        let m = Metrics {
            registry: Registry::default(),
            connections_opened: Family::default(),
            connections: Family::default(),
            guest_instances: Family::default(),
            session_duration: Family::new_with_constructor(session_buckets),
            tls_handshakes: Family::default(),
            auth: Family::default(),
            refusals: Family::default(),
            messages_stored: Family::default(),
            message_size: Family::new_with_constructor(size_buckets),
            commit_latency: Family::new_with_constructor(latency_buckets),
            guest_faults: Family::default(),
            turnaways: Family::default(),
            rate_limited: Family::default(),
            greylisting: Family::default(),
            reloads: Family::default(),
            component_swaps: Counter::default(),
            commit_batch_size: batch_buckets(),
            commit_batch_duration: latency_buckets(),
        };
        let r = &mut registry;
        r.register("connections_opened", "Connections accepted and admitted", m.connections_opened.clone());
        r.register("connections", "Connections open now", m.connections.clone());
        r.register("guest_instances", "Guest component instances in use now", m.guest_instances.clone());
        let seconds = Unit::Seconds;
        r.register_with_unit("session_duration", "Connection lifetimes", seconds.clone(), m.session_duration.clone());
        r.register("tls_handshakes", "TLS handshakes by result", m.tls_handshakes.clone());
        r.register("auth", "AUTH decisions by result", m.auth.clone());
        r.register("refusals", "Refused SMTP steps by stage and reason", m.refusals.clone());
        r.register("messages_stored", "Messages made durable and acknowledged", m.messages_stored.clone());
        r.register_with_unit("message_size", "Sizes of stored messages", Unit::Bytes, m.message_size.clone());
        let latency = "From end of data to durable, per stored message";
        r.register_with_unit("commit_latency", latency, seconds.clone(), m.commit_latency.clone());
        r.register("guest_faults", "Connections ended by a guest fault, by kind", m.guest_faults.clone());
        r.register("turnaways", "Clients refused before a session", m.turnaways.clone());
        r.register("rate_limited", "Rate limits reached, by stage and limit", m.rate_limited.clone());
        r.register("greylisting", "Greylisting verdicts", m.greylisting.clone());
        r.register("reloads", "Component and configuration reloads by result", m.reloads.clone());
        r.register("component_swaps", "Component versions swapped in", m.component_swaps.clone());
        r.register("commit_batch_size", "Messages per storage commit batch", m.commit_batch_size.clone());
        let batch = "Storage commit batch durations";
        r.register_with_unit("commit_batch_duration", batch, seconds, m.commit_batch_duration.clone());
        Metrics { registry, ..m }
    }

    /// The series one connection updates, looked up once.
    pub fn connection(&self, labels: &ConnectionLabels) -> ConnectionMetrics {
        let outcome = |result| Outcome { listener: labels.listener, component: labels.component.clone(), result };
        ConnectionMetrics {
            labels: labels.clone(),
            opened: self.connections_opened.get_or_create_owned(labels),
            open: self.connections.get_or_create_owned(labels),
            instances: self.guest_instances.get_or_create_owned(labels),
            duration: self.session_duration.get_or_create_owned(labels),
            stored: self.messages_stored.get_or_create_owned(labels),
            size: self.message_size.get_or_create_owned(labels),
            commit: self.commit_latency.get_or_create_owned(labels),
            tls_ok: self.tls_handshakes.get_or_create_owned(&outcome("ok")),
            tls_failed: self.tls_handshakes.get_or_create_owned(&outcome("failed")),
            auth_ok: self.auth.get_or_create_owned(&outcome("ok")),
            auth_failed: self.auth.get_or_create_owned(&outcome("failed")),
        }
    }

    /// Updates the series of a server event (connection events go through
    /// [`ConnectionMetrics::observe`]).
    pub fn observe(&self, event: &Event) {
        match event {
            Event::Turnaway { listener, reason } => {
                self.turnaways.get_or_create(&Turnaway { listener: listener.name(), reason }).inc();
            }
            Event::RateLimited { listener, stage, limit, .. } => {
                self.rate_limited.get_or_create(&RateLimit { listener: listener.name(), stage, limit }).inc();
            }
            Event::Greylisting { listener, verdict, .. } => {
                self.greylisting.get_or_create(&Greylisting { listener: listener.name(), verdict }).inc();
            }
            Event::ComponentSwapped { .. } => {
                self.component_swaps.inc();
            }
            Event::Reloaded { .. } => {
                self.reloads.get_or_create(&Reload { result: "applied" }).inc();
            }
            Event::ReloadRefused { .. } => {
                self.reloads.get_or_create(&Reload { result: "refused" }).inc();
            }
            Event::CommitBatch { messages, duration } => {
                self.commit_batch_size.observe(*messages as f64);
                self.commit_batch_duration.observe(duration.as_secs_f64());
            }
            _ => {}
        }
    }

    /// Counts a connection event whose labels vary (stage, reason, kind).
    fn observe_labelled(&self, labels: &ConnectionLabels, event: &Event) {
        match event {
            Event::Refused { stage, reason } => {
                let component = labels.component.clone();
                self.refusals.get_or_create(&Refusal { listener: labels.listener, component, stage, reason }).inc();
            }
            Event::GuestFault(fault) => {
                let component = labels.component.clone();
                let kind = fault.kind();
                self.guest_faults.get_or_create(&Fault { listener: labels.listener, component, kind }).inc();
            }
            _ => {}
        }
    }

    /// The OpenMetrics text exposition of every series.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// One connection's series.
pub struct ConnectionMetrics {
    labels: ConnectionLabels,
    opened: Counter,
    open: Gauge,
    instances: Gauge,
    duration: Histogram,
    stored: Counter,
    size: Histogram,
    commit: Histogram,
    tls_ok: Counter,
    tls_failed: Counter,
    auth_ok: Counter,
    auth_failed: Counter,
}

impl ConnectionMetrics {
    /// Updates the series `event` moves.
    pub fn observe(&self, metrics: &Metrics, event: &Event) {
        match event {
            Event::ConnectionOpened => {
                self.opened.inc();
                self.open.inc();
            }
            Event::ConnectionClosed(summary) => {
                self.open.dec();
                self.duration.observe(summary.duration.as_secs_f64());
            }
            Event::GuestStarted => {
                self.instances.inc();
            }
            Event::GuestEnded => {
                self.instances.dec();
            }
            Event::TlsStarted(_) => {
                self.tls_ok.inc();
            }
            Event::TlsFailed(_) => {
                self.tls_failed.inc();
            }
            Event::Authenticated { .. } => {
                self.auth_ok.inc();
            }
            Event::AuthRefused { .. } => {
                self.auth_failed.inc();
            }
            Event::MessageStored { size, commit, .. } => {
                self.stored.inc();
                self.size.observe(*size as f64);
                self.commit.observe(commit.as_secs_f64());
            }
            _ => metrics.observe_labelled(&self.labels, event),
        }
    }
}
