//! The settings in force: the flags over the configuration file over the
//! defaults, checked as a whole.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use smtp_core::Config as SessionConfig;

use super::file::ConfigFile;
use super::options::Options;
use crate::policy::{Domains, Networks, RulesConfig};
use crate::server::ServerConfig;
use crate::tls::TlsFiles;

/// Where accepted mail is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoragePaths {
    /// The one Maildir of the embedded default; with a configuration, mail
    /// for local domains that have no recipients table.
    pub maildir: PathBuf,
    /// The root of per-user Maildirs (`ROOT/domain/user/`).
    pub mailboxes: Option<PathBuf>,
    /// The Maildir relayed mail waits in for a delivery agent.
    pub outgoing: Option<PathBuf>,
}

/// Everything `smtpcell serve` runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub server: ServerConfig,
    pub storage: StoragePaths,
    pub component: Option<PathBuf>,
    pub watch: bool,
    pub control: PathBuf,
    pub cache_dir: Option<PathBuf>,
    pub no_cache: bool,
    /// Linear memory per guest instance, in MiB.
    pub guest_memory_mib: usize,
    /// CPU time per guest call.
    pub guest_call_budget: Duration,
    pub users: Option<PathBuf>,
    /// The policy of a configuration file; `None` without one: the
    /// embedded default accepts every recipient (local use only).
    pub rules: Option<RulesConfig>,
    /// Where `/metrics` is served; `None`: no metrics are collected.
    pub metrics: Option<std::net::SocketAddr>,
    pub log_format: crate::events::LogFormat,
}

impl Settings {
    pub const DEFAULT_MAILDIR: &'static str = "./mail";
    pub const DEFAULT_OUTGOING: &'static str = "./outgoing";
    pub const DEFAULT_CONTROL: &'static str = "./smtpcell.sock";
    /// Refused recipients before a session's next RCPT ends it (Postfix's
    /// smtpd_hard_error_limit is 20 errors of any kind; 10 refusals of
    /// recipients alone is already more than a sender with a typo makes).
    pub const DEFAULT_MAX_REFUSED_RECIPIENTS: u32 = 10;

    /// `flags` over `file` (when given) over the defaults. Errors name the
    /// key (and, for a file's value, the file and line): a value out of
    /// range, a setting that needs another (`tls_key` without `tls_cert`,
    /// a submission listener without both a certificate and `users`), a
    /// recipients table without `mailboxes`, a bad domain or network.
    pub fn resolve(flags: &Options, file: Option<&ConfigFile>) -> Result<Settings> {
        let empty = Options::default();
        let f = file.map_or(&empty, |file| &file.options);
        macro_rules! pick {
            ($key:ident) => {
                flags.$key.clone().or_else(|| f.$key.clone())
            };
        }
        let err = |key: &str, what: &str| match file {
            Some(file) => file.error(key, what),
            None => anyhow::anyhow!("--{}: {what}", key.replace('_', "-")),
        };
        let tls = match (pick!(tls_cert), pick!(tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err(err("tls_cert", "needs tls_key too")),
            (None, Some(_)) => return Err(err("tls_key", "needs tls_cert too")),
        };
        let users = pick!(users);
        let listen_submission = pick!(listen_submission);
        let listen_tls = pick!(listen_tls);
        for (key, given) in [("listen_submission", listen_submission.is_some()), ("listen_tls", listen_tls.is_some())] {
            if given && (tls.is_none() || users.is_none()) {
                return Err(err(key, "needs tls_cert, tls_key and users"));
            }
        }
        let allow_plaintext_auth = flags.allow_plaintext_auth || f.allow_plaintext_auth;
        if allow_plaintext_auth && users.is_none() {
            return Err(err("allow_plaintext_auth", "needs users"));
        }
        let require_tls = flags.require_tls || f.require_tls;
        if require_tls && tls.is_none() {
            return Err(err("require_tls", "needs tls_cert and tls_key"));
        }
        let max_line_length = pick!(max_line_length).unwrap_or(SessionConfig::MIN_LINE_LENGTH);
        if max_line_length < SessionConfig::MIN_LINE_LENGTH {
            return Err(err("max_line_length", "must be at least 1000 (RFC 5321 section 4.5.3.1.6)"));
        }
        let max_auth_failures = pick!(max_auth_failures).unwrap_or(SessionConfig::DEFAULT_MAX_AUTH_FAILURES);
        if max_auth_failures == 0 {
            return Err(err("max_auth_failures", "must be at least 1"));
        }
        let component = pick!(component);
        let watch = flags.watch || f.watch;
        if watch && component.is_none() {
            return Err(err("watch", "needs component"));
        }
        let no_cache = flags.no_cache || f.no_cache;
        let cache_dir = pick!(cache_dir);
        if no_cache && cache_dir.is_some() {
            return Err(err("no_cache", "and cache_dir contradict each other"));
        }
        let secs = |v: Option<u64>, default: u64| Duration::from_secs(v.unwrap_or(default));
        let defaults = ServerConfig::default();
        let proxy_networks = match &f.proxy_networks {
            Some(list) => file_networks(file, list, "proxy_networks")?,
            None => Networks::default(),
        };
        let server = ServerConfig {
            listen: pick!(listen).unwrap_or(defaults.listen),
            listen_submission,
            listen_tls,
            tls,
            tls_handshake_timeout: secs(pick!(tls_handshake_timeout), ServerConfig::DEFAULT_TLS_HANDSHAKE_TIMEOUT),
            require_tls,
            allow_plaintext_auth,
            auth_failure_delay: Duration::from_millis(
                pick!(auth_failure_delay_ms).unwrap_or(ServerConfig::DEFAULT_AUTH_FAILURE_DELAY_MS),
            ),
            max_auth_failures,
            received_auth: flags.received_auth || f.received_auth,
            hostname: pick!(hostname).unwrap_or(defaults.hostname),
            max_message_size: pick!(max_message_size).unwrap_or(defaults.max_message_size),
            max_recipients: pick!(max_recipients).unwrap_or(defaults.max_recipients),
            max_line_length,
            max_connections: pick!(max_connections).unwrap_or(defaults.max_connections),
            max_connections_per_ip: pick!(max_connections_per_ip).unwrap_or(defaults.max_connections_per_ip),
            command_timeout: pick!(command_timeout).map_or(defaults.command_timeout, Duration::from_secs),
            data_timeout: pick!(data_timeout).map_or(defaults.data_timeout, Duration::from_secs),
            data_end_timeout: pick!(data_end_timeout).map_or(defaults.data_end_timeout, Duration::from_secs),
            shutdown_grace: pick!(shutdown_grace).map_or(defaults.shutdown_grace, Duration::from_secs),
            proxy_networks,
            proxy_header_timeout: secs(f.proxy_header_timeout, ServerConfig::DEFAULT_PROXY_HEADER_TIMEOUT),
        };
        let rules = match file {
            Some(file) => Some(rules(file)?),
            None => None,
        };
        let storage = StoragePaths {
            maildir: pick!(maildir).unwrap_or_else(|| Self::DEFAULT_MAILDIR.into()),
            mailboxes: f.mailboxes.clone(),
            outgoing: rules.as_ref().map(|_| f.outgoing.clone().unwrap_or_else(|| Self::DEFAULT_OUTGOING.into())),
        };
        if let (Some(rules), Some(file)) = (&rules, file)
            && rules.recipients.is_some()
            && storage.mailboxes.is_none()
        {
            bail!(file.error("recipients", "needs mailboxes (the root of the per-user Maildirs)"));
        }
        Ok(Settings {
            server,
            storage,
            component,
            watch,
            control: pick!(control).unwrap_or_else(|| Self::DEFAULT_CONTROL.into()),
            cache_dir,
            no_cache,
            guest_memory_mib: pick!(guest_memory_mib).unwrap_or(16),
            guest_call_budget: Duration::from_millis(pick!(guest_call_budget_ms).unwrap_or(200)),
            users,
            rules,
            metrics: pick!(metrics),
            log_format: pick!(log_format).unwrap_or_default(),
        })
    }
}

impl Settings {
    /// The settings a reload does not apply (all but the policy and the
    /// users file), in a form to compare.
    pub fn restart_only(&self) -> String {
        let Settings {
            server,
            storage,
            component,
            watch,
            control,
            cache_dir,
            no_cache,
            guest_memory_mib,
            guest_call_budget,
            metrics,
            log_format,
            ..
        } = self;
        format!(
            "{server:?} {storage:?} {component:?} {watch} {control:?} {cache_dir:?} {no_cache} {guest_memory_mib} {guest_call_budget:?} {metrics:?} {log_format:?}"
        )
    }
}

/// The policy keys of `file`.
fn rules(file: &ConfigFile) -> Result<RulesConfig> {
    let o = &file.options;
    let domains = match &o.domains {
        Some(list) => {
            Domains::parse(list.get_ref()).map_err(|e| file.error_at(list.span(), "domains", format!("{e:#}")))?
        }
        None => Domains::default(),
    };
    let relay_networks = match &o.relay_networks {
        Some(list) => file_networks(Some(file), list, "relay_networks")?,
        None => Networks::default(),
    };
    let greylisting = o.greylisting.clone().unwrap_or_default();
    greylisting.validate().map_err(|e| file.error("greylisting", format!("{e:#}")))?;
    Ok(RulesConfig {
        domains,
        recipients: o.recipients.as_ref().map(|path| path.get_ref().clone()),
        recipient_delimiter: o.recipient_delimiter.clone().unwrap_or_else(|| "+".into()),
        relay_networks,
        max_refused_recipients: o.max_refused_recipients.unwrap_or(Settings::DEFAULT_MAX_REFUSED_RECIPIENTS),
        rate_limits: o.rate_limits.clone().unwrap_or_default(),
        greylisting,
    })
}

fn file_networks(file: Option<&ConfigFile>, list: &toml::Spanned<Vec<String>>, key: &str) -> Result<Networks> {
    Networks::parse(list.get_ref()).map_err(|e| match file {
        Some(file) => file.error_at(list.span(), key, format!("{e:#}")),
        None => anyhow::anyhow!("{key}: {e:#}"),
    })
}
