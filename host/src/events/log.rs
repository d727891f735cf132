//! The log side of the events: each event's line (its level, message and
//! fields, the same in both formats), and the log's set-up.
//!
//! Field names are stable, in text (`key=value`) and in JSON lines alike;
//! the README lists them.

use tracing::{debug, info, warn};

use super::Event;

/// How log lines are written to standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-12-01T07:00:00.000000Z  INFO conn{id=1 peer=...}: message stored queue_id=...`
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `message`, the
    /// event's fields, `target`, and `span` (the connection's `id`, `peer`,
    /// `role`, `component`) for connection events.
    Json,
}

/// Installs the process's log subscriber: `format`, to standard error,
/// filtered by `SMTPCELL_LOG` (an `EnvFilter` directive; default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SMTPCELL_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(true).with_span_list(false).with_ansi(false).init()
        }
    }
}

/// Client text in a log line: at most 64 characters, escaped as Rust
/// escapes them in `Debug` (no CR or LF can forge a line), without quotes.
fn client_text(text: &str) -> String {
    text.chars().take(64).flat_map(char::escape_debug).collect()
}

/// Writes `event`'s log line.
pub(super) fn log(event: &Event) {
    match event {
        Event::ConnectionOpened => debug!("accepted"),
        Event::ConnectionClosed(s) => info!(
            commands = %s.commands,
            commands_total = s.commands.total(),
            replies_2xx = s.replies[0],
            replies_3xx = s.replies[1],
            replies_4xx = s.replies[2],
            replies_5xx = s.replies[3],
            messages = s.messages,
            bytes = s.bytes,
            tls = s.tls.as_deref().unwrap_or("no"),
            user = s.user.as_deref().map(client_text),
            duration_ms = s.duration.as_millis() as u64,
            "disconnect"
        ),
        // Counted, not logged: every connection has them.
        Event::GuestStarted | Event::GuestEnded => {}
        Event::TlsStarted(tls) => debug!(version = %tls.version, cipher = %tls.cipher, "TLS started"),
        Event::TlsFailed(err) => info!(%err, "TLS handshake failed"),
        Event::Authenticated { identity, mechanism } => {
            info!(identity = %client_text(identity), %mechanism, "client authenticated")
        }
        Event::AuthRefused { user } => info!(user = %client_text(user), "AUTH refused"),
        Event::Refused { stage, reason } => info!(stage, reason, "refused"),
        Event::MessageStored { queue_id, size, commit } => {
            info!(%queue_id, size, commit_us = commit.as_micros() as u64, "message stored")
        }
        Event::GuestFault(fault) => warn!(%fault, kind = fault.kind(), "guest fault: ending this connection"),
        Event::Turnaway { listener, reason } => debug!(listener = listener.name(), reason, "client turned away"),
        Event::RateLimited { client, stage, limit, .. } => info!(%client, stage, limit, "rate limit reached"),
        Event::Greylisting { client, verdict, .. } => debug!(%client, verdict, "greylisting"),
        Event::ComponentSwapped { trigger, swapped } => info!(trigger, %swapped, "component reloaded"),
        Event::Reloaded { trigger, parts } => {
            for part in *parts {
                info!(trigger, what = %part, "reloaded");
            }
        }
        Event::ReloadRefused { trigger, reasons } => {
            for reason in *reasons {
                warn!(trigger, %reason, "reload refused: nothing changed");
            }
        }
        Event::CommitBatch { messages, duration } => {
            debug!(messages, duration_us = duration.as_micros() as u64, "commit batch")
        }
    }
}
