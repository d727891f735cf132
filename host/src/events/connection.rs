//! One connection's events: each is logged (inside the connection's span,
//! so the line carries its id, peer and component) and moves the
//! connection's series, and the connection's summary is kept as they pass.

use std::time::{Duration, Instant};

use super::commands::{CommandCounter, CommandCounts};
use super::metrics::{ConnectionLabels, ConnectionMetrics, Metrics};
use super::{Event, log};
use crate::policy::Role;

/// What one connection did, logged when it closes (the `disconnect` line).
#[derive(Clone, Debug)]
pub struct Summary {
    /// Command lines by verb.
    pub commands: CommandCounts,
    /// Replies by class: `[2xx, 3xx, 4xx, 5xx]`, the greeting included.
    pub replies: [u32; 4],
    /// Messages stored, and their content octets.
    pub messages: u32,
    pub bytes: u64,
    /// The TLS version, once TLS started.
    pub tls: Option<String>,
    /// The identity the client authenticated as, if it did.
    pub user: Option<String>,
    pub duration: Duration,
}

/// The emitter a connection reports through, from its admission to its
/// end: dropping it emits `GuestEnded` (when an instance was started) and
/// `ConnectionClosed` with the summary, however the connection ended.
pub struct ConnectionEvents {
    metrics: Option<(&'static Metrics, ConnectionMetrics)>,
    counter: CommandCounter,
    messages: u32,
    bytes: u64,
    tls: Option<String>,
    user: Option<String>,
    guest: bool,
    opened: Instant,
}

impl ConnectionEvents {
    /// Emits `ConnectionOpened` for a connection on `listener`, served by
    /// the component version labelled `component`.
    pub fn open(listener: Role, component: &str) -> ConnectionEvents {
        let metrics = super::metrics().map(|metrics| {
            let labels = ConnectionLabels { listener: listener.name(), component: component.into() };
            (metrics, metrics.connection(&labels))
        });
        let mut events = ConnectionEvents {
            metrics,
            counter: CommandCounter::default(),
            messages: 0,
            bytes: 0,
            tls: None,
            user: None,
            guest: false,
            opened: Instant::now(),
        };
        events.emit(Event::ConnectionOpened);
        events
    }

    /// Logs `event`, updates the series and the summary.
    pub fn emit(&mut self, event: Event) {
        match &event {
            Event::GuestStarted => self.guest = true,
            Event::GuestEnded => self.guest = false,
            Event::TlsStarted(info) => self.tls = Some(info.version.clone()),
            Event::Authenticated { identity, .. } => self.user = Some(identity.to_string()),
            Event::MessageStored { size, .. } => {
                self.messages += 1;
                self.bytes += size;
            }
            _ => {}
        }
        // Counted before logged: whoever reads the line sees the count.
        if let Some((metrics, series)) = &self.metrics {
            series.observe(metrics, &event);
        }
        log::log(&event);
    }

    /// Octets the client sent (for the command counts).
    pub fn input(&mut self, bytes: &[u8]) {
        self.counter.input(bytes);
    }

    /// Replies written to the client (for the reply counts).
    pub fn output(&mut self, bytes: &[u8]) {
        self.counter.output(bytes);
    }

    fn summary(&self) -> Summary {
        Summary {
            commands: self.counter.commands().clone(),
            replies: self.counter.replies(),
            messages: self.messages,
            bytes: self.bytes,
            tls: self.tls.clone(),
            user: self.user.clone(),
            duration: self.opened.elapsed(),
        }
    }
}

impl Drop for ConnectionEvents {
    fn drop(&mut self) {
        if self.guest {
            self.emit(Event::GuestEnded);
        }
        let summary = self.summary();
        self.emit(Event::ConnectionClosed(&summary));
    }
}
