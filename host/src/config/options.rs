//! Every setting of `smtpcell serve`, once: each is a command-line flag
//! (`--max-recipients`) and a key of the configuration file
//! (`max_recipients`), except the policy keys, which only the file has (a
//! recipients table or a rate-limit table does not fit on a command line).
//! A flag given overrides the file's key; a setting given by neither takes
//! its default ([`super::Settings::resolve`]).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;
use toml::Spanned;

use crate::events::LogFormat;
use crate::mail_auth::MailAuthKeys;
use crate::policy::{GreylistingConfig, RateLimitsConfig};

/// The settings as given, before defaults: `None` (or `false`) is "not
/// given". Field names are the file's keys; the flags are the same names
/// with `-` for `_`.
#[derive(Args, Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Address and port of the MX listener (port 25's role: mail from
    /// anyone, AUTH optional) [default: 127.0.0.1:2525].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Also listen for message submission (port 587's role, RFC 6409):
    /// STARTTLS, then AUTH before MAIL. Needs tls_cert and users.
    #[arg(long, value_name = "ADDR")]
    pub listen_submission: Option<SocketAddr>,
    /// Also listen for submission over implicit TLS (port 465's role, RFC
    /// 8314): TLS from the first byte, then AUTH before MAIL. Needs
    /// tls_cert and users.
    #[arg(long, value_name = "ADDR")]
    pub listen_tls: Option<SocketAddr>,
    /// PEM certificate chain (server certificate first): with tls_key,
    /// STARTTLS is offered (RFC 3207). Reloaded with the configuration.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the tls_cert certificate.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Seconds a client may take over its TLS handshake [default: 60].
    #[arg(long, value_name = "SECS")]
    pub tls_handshake_timeout: Option<u64>,
    /// On the MX listener, answer every command but NOOP, EHLO, STARTTLS
    /// and QUIT with 530 until TLS is started. For private servers only:
    /// RFC 3207 section 4 forbids it on a publicly referenced MX.
    #[arg(long)]
    #[serde(default)]
    pub require_tls: bool,
    /// Users allowed to AUTH (RFC 4954), in Dovecot's passwd-file format:
    /// `user:{SCHEME}hash[:extra fields]`. AUTH PLAIN and LOGIN are offered
    /// after TLS when given. Reloaded with the configuration.
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,
    /// Offer AUTH without TLS too (for tests on loopback: a password must
    /// not otherwise cross an unencrypted connection).
    #[arg(long)]
    #[serde(default)]
    pub allow_plaintext_auth: bool,
    /// Milliseconds before the reply to a refused AUTH [default: 1000].
    #[arg(long, value_name = "MS")]
    pub auth_failure_delay_ms: Option<u64>,
    /// Failed AUTH commands per connection, counted by the session: every
    /// AUTH not answered 235, malformed and cancelled ones included; the
    /// last is answered 421 4.7.0 and the connection closed [default: 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_auth_failures: Option<u32>,
    /// Write the authenticated identity into the Received header.
    #[arg(long)]
    #[serde(default)]
    pub received_auth: bool,
    /// Maildir to store accepted mail in (tmp/, new/ and cur/ are created)
    /// [default: ./mail]. With a recipients table, only mail for local
    /// domains without one goes here.
    #[arg(long, value_name = "DIR")]
    pub maildir: Option<PathBuf>,
    /// Store accepted mail in PostgreSQL instead of Maildirs: a
    /// `postgres://user:password@host:port/dbname` URL (or a libpq
    /// key=value string); several `host:port` pairs with
    /// `?target_session_attrs=read-write` follow a failover. Every host
    /// pointed at one database shares its spool. No TLS to the database yet.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Name announced in the greeting and written into Received headers
    /// [default: smtpcell.localhost].
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Serve with this protocol component instead of the one built in;
    /// `smtpcell reload` and SIGHUP reload it from this path.
    #[arg(long, value_name = "FILE.wasm")]
    pub component: Option<PathBuf>,
    /// Reload the component file whenever it changes.
    #[arg(long)]
    #[serde(default)]
    pub watch: bool,
    /// Control socket for `smtpcell reload` and `smtpcell status`
    /// [default: ./smtpcell.sock].
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Where compiled components are cached [default: $XDG_CACHE_HOME/smtpcell or ~/.cache/smtpcell].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile every component afresh.
    #[arg(long)]
    #[serde(default)]
    pub no_cache: bool,
    /// Largest message accepted, in octets (advertised as SIZE) [default: 10240000].
    #[arg(long, value_name = "BYTES")]
    pub max_message_size: Option<u64>,
    /// Most recipients per message [default: 100].
    #[arg(long, value_name = "N")]
    pub max_recipients: Option<u32>,
    /// Longest text line accepted in DATA, in octets including CRLF, at
    /// least 1000 [default: 1000].
    #[arg(long, value_name = "BYTES")]
    pub max_line_length: Option<u32>,
    /// Most concurrent connections; more are answered 421 and closed.
    /// Lowered at start-up, with a warning, to what the open-file limit
    /// (raised to its hard limit first) and vm.max_map_count allow
    /// [default: 1000].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most concurrent connections from one IP address [default: 100].
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Seconds to wait for a command, and for the client to take a reply
    /// (RFC 5321: 5 minutes) [default: 300].
    #[arg(long, value_name = "SECS")]
    pub command_timeout: Option<u64>,
    /// Seconds to wait for the next block of message data, from the 354 (or
    /// the first BDAT) to the end of the content (RFC 5321: 3 minutes)
    /// [default: 180].
    #[arg(long, value_name = "SECS")]
    pub data_timeout: Option<u64>,
    /// Seconds storage may take to make a message durable (RFC 5321: 10
    /// minutes) [default: 600].
    #[arg(long, value_name = "SECS")]
    pub data_end_timeout: Option<u64>,
    /// Seconds a shutdown waits for messages in flight [default: 30].
    #[arg(long, value_name = "SECS")]
    pub shutdown_grace: Option<u64>,
    /// Linear memory cap per connection's component instance, in MiB
    /// [default: 16].
    #[arg(long, value_name = "MIB")]
    pub guest_memory_mib: Option<usize>,
    /// CPU time one guest call may use before the connection is ended, in
    /// ms [default: 200].
    #[arg(long, value_name = "MS")]
    pub guest_call_budget_ms: Option<u64>,
    /// Do not check SPF, DKIM, ARC and DMARC (checked by default; see
    /// the `[mail_auth]` table).
    #[arg(long)]
    #[serde(default)]
    pub no_mail_auth: bool,
    /// DNS resolver for the mail authentication checks, `IP` or `IP:PORT`
    /// [default: the system's, from /etc/resolv.conf].
    #[arg(long, value_name = "ADDR", value_parser = parse_dns_server)]
    #[serde(default, deserialize_with = "dns_server")]
    pub dns_server: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics (OpenMetrics text
    /// format) on a listener of their own; without it no metric is
    /// collected [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Log lines as `text` or `json` (one object per line, stable field
    /// names) [default: text].
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    // The policy: file keys only.
    /// The domains smtpcell receives mail for (case-insensitive).
    #[arg(skip)]
    pub domains: Option<Spanned<Vec<String>>>,
    /// The recipients table (virtual(5) format): who exists at `domains`.
    #[arg(skip)]
    pub recipients: Option<Spanned<PathBuf>>,
    /// The characters that start a subaddress (`user+tag@domain` finds
    /// `user@domain`); empty turns subaddressing off [default: "+"].
    #[arg(skip)]
    pub recipient_delimiter: Option<String>,
    /// The root of the per-user Maildirs (`ROOT/domain/user/`), needed
    /// with `recipients`.
    #[arg(skip)]
    pub mailboxes: Option<PathBuf>,
    /// Networks (CIDR) whose clients may relay without AUTH.
    #[arg(skip)]
    pub relay_networks: Option<Spanned<Vec<String>>>,
    /// The Maildir relayed mail is handed to a delivery agent in
    /// [default: ./outgoing].
    #[arg(skip)]
    pub outgoing: Option<PathBuf>,
    /// Networks (CIDR) of load balancers that send a PROXY protocol header.
    #[arg(skip)]
    pub proxy_networks: Option<Spanned<Vec<String>>>,
    /// Seconds a peer in `proxy_networks` may take to send its PROXY
    /// header [default: 5].
    #[arg(skip)]
    pub proxy_header_timeout: Option<u64>,
    /// Refused recipients (unknown users, relay refusals) a session may
    /// have before its next RCPT ends it with 421 [default: 10].
    #[arg(skip)]
    pub max_refused_recipients: Option<u32>,
    #[arg(skip)]
    pub rate_limits: Option<RateLimitsConfig>,
    #[arg(skip)]
    pub greylisting: Option<GreylistingConfig>,
    /// What SPF, DKIM and DMARC results lead to (see [`MailAuthKeys`]).
    #[arg(skip)]
    pub mail_auth: Option<MailAuthKeys>,
}

/// `IP` (port 53) or `IP:PORT`.
fn parse_dns_server(text: &str) -> Result<SocketAddr, String> {
    match text.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, 53)),
        Err(_) => text.parse::<SocketAddr>().map_err(|_| format!("{text:?} is not IP or IP:PORT")),
    }
}

fn dns_server<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_dns_server(&text).map(Some).map_err(serde::de::Error::custom)
}
