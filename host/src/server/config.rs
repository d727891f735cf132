//! Server policy: everything the operator sets, in one place.

use std::net::SocketAddr;
use std::time::Duration;

use smtp_core::{AuthMechanisms, Config as SessionConfig, Extensions, Questions};

use crate::policy::{Networks, Role};
use crate::tls::TlsFiles;

/// Timeouts from RFC 5321 section 4.5.3.2, and the server's own limits.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The MX listener ([`Role::Mx`]).
    pub listen: SocketAddr,
    /// A message submission listener, STARTTLS then AUTH ([`Role::Submission`],
    /// RFC 6409's port 587).
    pub listen_submission: Option<SocketAddr>,
    /// A submission listener over implicit TLS ([`Role::Submissions`], RFC
    /// 8314's port 465).
    pub listen_tls: Option<SocketAddr>,
    /// The certificate and key: STARTTLS is offered when they are given.
    pub tls: Option<TlsFiles>,
    /// How long a client may take over its TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// On the MX listener, refuse everything but NOOP, EHLO, STARTTLS and
    /// QUIT before TLS (RFC 3207 section 4: for private servers only; a
    /// publicly referenced MX must not). Submission listeners always do.
    pub require_tls: bool,
    /// Offer AUTH on connections without TLS (RFC 4954 section 4 says a
    /// password must not cross an unencrypted connection: for tests on
    /// loopback).
    pub allow_plaintext_auth: bool,
    /// How long a refused AUTH waits before its 535 (slows a password
    /// guesser down without holding anything but its own connection).
    pub auth_failure_delay: Duration,
    /// Failed AUTH commands one connection may make, handed to the guest
    /// (`max-auth-failures` in wit/session.wit), which counts them: every
    /// AUTH command not answered 235, refused by the policy, cancelled,
    /// malformed or out of sequence. The last one is answered 421 4.7.0
    /// and the connection closed. The default, enough for a user who
    /// mistypes twice and few enough that a guesser must reconnect (and
    /// wait out the delay) every third try, is
    /// [`SessionConfig::DEFAULT_MAX_AUTH_FAILURES`].
    pub max_auth_failures: u32,
    /// Write the authenticated identity into the Received header (RFC 4954
    /// section 7 leaves this to the server; off, as the identity of a
    /// submitter is private to the site by default).
    pub received_auth: bool,
    pub hostname: String,
    pub max_message_size: u64,
    pub max_recipients: u32,
    pub max_line_length: u32,
    /// Concurrent connections in all; past it new clients get 421 4.7.0.
    pub max_connections: usize,
    /// Concurrent connections from one IP address; past it, 421 4.7.0.
    /// Behind a proxy, the address is the client's its PROXY header names.
    pub max_connections_per_ip: usize,
    /// The peers that are proxies (HAProxy, a load balancer) speaking the
    /// PROXY protocol, v1 or v2 (HAProxy's proxy-protocol.txt; config key
    /// `proxy_networks`). A connection from inside must start with a PROXY
    /// header, and the client it names is the one the policy, the
    /// Received header and the logs see (`UNKNOWN` and `LOCAL` headers
    /// leave the proxy as the client); without a valid header the
    /// connection is closed with no reply. A connection from anywhere else
    /// is plain SMTP, a PROXY line from it a bad command. Empty (the
    /// default): PROXY off.
    pub proxy_networks: Networks,
    /// How long a proxy may take to send its PROXY header, from the
    /// connection's accept: a proxy sends it at once, so a few seconds is
    /// plenty; see [`Self::DEFAULT_PROXY_HEADER_TIMEOUT`].
    pub proxy_header_timeout: Duration,
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
    /// Seconds for a TLS handshake: a handshake is a few round trips, so a
    /// minute is generous for any real client and short for one that stalls.
    pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: u64 = 60;
    /// Milliseconds before a 535 (Postfix's smtpd_error_sleep_time is 1 s).
    pub const DEFAULT_AUTH_FAILURE_DELAY_MS: u64 = 1000;
    /// Seconds for a PROXY header (Postfix's smtpd_upstream_proxy_timeout
    /// is 5 s too).
    pub const DEFAULT_PROXY_HEADER_TIMEOUT: u64 = 5;

    /// How long a write to a client may take before the connection is ended
    /// ("client did not read its replies"). RFC 5321 bounds only the
    /// client's side; the command timeout is used, as Postfix's
    /// smtpd_timeout bounds a server's reads and writes alike: a client
    /// that has not taken a few KiB of replies in 5 minutes is not reading.
    pub fn write_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// The configuration handed to each guest session of a listener of
    /// `role`; `questions` are the steps the policy decides, `auth` the SASL
    /// mechanisms it checks credentials for (none: no AUTH).
    ///
    /// STARTTLS is offered when a certificate is configured, except on the
    /// implicit-TLS listener, where TLS is on from the first byte. The
    /// submission roles require TLS (RFC 8314 section 3.3 wants TLS for all
    /// submission) and ask about MAIL, which the host refuses before AUTH
    /// (530 5.7.0, RFC 4954 section 6).
    pub fn session_config(&self, role: Role, questions: Questions, auth: AuthMechanisms) -> SessionConfig {
        SessionConfig {
            hostname: self.hostname.clone(),
            max_message_size: self.max_message_size,
            max_recipients: self.max_recipients,
            max_line_length: self.max_line_length,
            extensions: Extensions { starttls: self.tls.is_some() && role != Role::Submissions, ..Extensions::DEFAULT },
            questions: Questions { mail: questions.mail || role.requires_auth(), ..questions },
            auth_mechanisms: auth,
            auth_without_tls: self.allow_plaintext_auth,
            require_tls: match role {
                Role::Mx => self.require_tls,
                Role::Submission => true,
                Role::Submissions => false,
            },
            max_auth_failures: self.max_auth_failures,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: Self::DEFAULT_LISTEN.parse().expect("valid default address"),
            listen_submission: None,
            listen_tls: None,
            tls: None,
            tls_handshake_timeout: Duration::from_secs(Self::DEFAULT_TLS_HANDSHAKE_TIMEOUT),
            require_tls: false,
            allow_plaintext_auth: false,
            auth_failure_delay: Duration::from_millis(Self::DEFAULT_AUTH_FAILURE_DELAY_MS),
            max_auth_failures: SessionConfig::DEFAULT_MAX_AUTH_FAILURES,
            received_auth: false,
            hostname: SessionConfig::DEFAULT_HOSTNAME.into(),
            max_message_size: SessionConfig::DEFAULT_MAX_MESSAGE_SIZE,
            max_recipients: SessionConfig::DEFAULT_MAX_RECIPIENTS,
            max_line_length: SessionConfig::MIN_LINE_LENGTH,
            max_connections: 1000,
            max_connections_per_ip: 100,
            proxy_networks: Networks::default(),
            proxy_header_timeout: Duration::from_secs(Self::DEFAULT_PROXY_HEADER_TIMEOUT),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(180),
            data_end_timeout: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}
