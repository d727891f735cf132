//! Server policy: everything the operator sets, in one place.

use std::net::SocketAddr;
use std::time::Duration;

use smtp_core::{Config as SessionConfig, Extensions, Questions};

/// Timeouts from RFC 5321 section 4.5.3.2, and the server's own limits.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub hostname: String,
    pub max_message_size: u64,
    pub max_recipients: u32,
    pub max_line_length: u32,
    /// Concurrent connections in all; past it new clients get 421 4.7.0.
    pub max_connections: usize,
    /// Concurrent connections from one IP address; past it, 421 4.7.0.
    pub max_connections_per_ip: usize,
    /// Waiting for a command (RFC 5321: 5 minutes).
    pub command_timeout: Duration,
    /// Waiting for the next block of DATA (RFC 5321: 3 minutes).
    pub data_timeout: Duration,
    /// Making a message durable after its end (RFC 5321's 10-minute "DATA
    /// termination" bound, seen from the server): past it the client gets 451
    /// and the message is discarded.
    pub data_end_timeout: Duration,
    /// How long a shutdown waits for sessions in the middle of a message.
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:2525";

    /// How long a write to a client may take before the connection is ended
    /// ("client did not read its replies"). RFC 5321 bounds only the
    /// client's side; the command timeout is used, as Postfix's
    /// smtpd_timeout bounds a server's reads and writes alike: a client
    /// that has not taken a few KiB of replies in 5 minutes is not reading.
    pub fn write_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// The configuration handed to each guest session; `questions` are
    /// the steps the policy decides.
    pub fn session_config(&self, questions: Questions) -> SessionConfig {
        SessionConfig {
            hostname: self.hostname.clone(),
            max_message_size: self.max_message_size,
            max_recipients: self.max_recipients,
            max_line_length: self.max_line_length,
            // STARTTLS and AUTH stay off until the host terminates TLS and
            // checks credentials.
            extensions: Extensions::DEFAULT,
            questions,
            ..SessionConfig::default()
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: Self::DEFAULT_LISTEN.parse().expect("valid default address"),
            hostname: SessionConfig::DEFAULT_HOSTNAME.into(),
            max_message_size: SessionConfig::DEFAULT_MAX_MESSAGE_SIZE,
            max_recipients: SessionConfig::DEFAULT_MAX_RECIPIENTS,
            max_line_length: SessionConfig::MIN_LINE_LENGTH,
            max_connections: 1000,
            max_connections_per_ip: 100,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(180),
            data_end_timeout: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}
