//! The settings in force: the flags over the configuration file over the
//! defaults, checked as a whole.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use smtp_core::Config as SessionConfig;

use super::file::ConfigFile;
use super::options::Options;
use crate::mail_auth::MailAuthConfig;
use crate::policy::{Domains, GreylistingConfig, Networks, RulesConfig};
use crate::server::ServerConfig;
use crate::tls::TlsFiles;

/// Where accepted mail is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct StoragePaths {
    /// The one Maildir of the embedded default; with a configuration, mail
    /// for local domains that have no recipients table.
    pub maildir: PathBuf,
    /// The root of per-user Maildirs (`ROOT/domain/user/`).
    pub mailboxes: Option<PathBuf>,
    /// The Maildir relayed mail waits in for a delivery agent.
    pub outgoing: Option<PathBuf>,
    /// `store`: the PostgreSQL database that replaces every Maildir above
    /// (checked by [`crate::postgres::Database::open`]); `None`: Maildirs.
    pub store: Option<String>,
}

impl std::fmt::Debug for StoragePaths {
    /// Without the store URL's password (the settings are logged and
    /// compared as text).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = self.store.as_deref().map(|url| match crate::postgres::Target::parse(url) {
            Ok(target) => target.to_string(),
            Err(_) => "(invalid)".to_string(),
        });
        f.debug_struct("StoragePaths")
            .field("maildir", &self.maildir)
            .field("mailboxes", &self.mailboxes)
            .field("outgoing", &self.outgoing)
            .field("store", &store)
            .finish()
    }
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
    /// SPF, DKIM, ARC and DMARC; `None` when turned off. Without a
    /// configuration file the results are only tagged.
    pub mail_auth: Option<MailAuthConfig>,
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
            store: pick!(store),
        };
        if let Some(url) = &storage.store {
            crate::postgres::Target::parse(url).map_err(|e| err("store", &format!("{e:#}")))?;
        }
        if let (Some(rules), Some(file)) = (&rules, file)
            && rules.recipients.is_some()
            && storage.mailboxes.is_none()
            && storage.store.is_none()
        {
            bail!(file.error("recipients", "needs mailboxes (the root of the per-user Maildirs)"));
        }
        if let (Some(rules), Some(file)) = (&rules, file) {
            shared_policy_state(rules, &storage, file)?;
        }
        let mail_auth_keys = f.mail_auth.clone().unwrap_or_default();
        let enabled = !flags.no_mail_auth && !f.no_mail_auth && mail_auth_keys.enabled != Some(false);
        let dns_server = pick!(dns_server);
        let mail_auth = match (enabled, file) {
            (false, _) => None,
            (true, Some(_)) => Some(MailAuthConfig::configured(&server.hostname, dns_server, &mail_auth_keys)),
            (true, None) => Some(MailAuthConfig::tag_only(&server.hostname, dns_server)),
        };
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
            mail_auth,
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

/// What a PostgreSQL `store` changes for the policy: `[rate_limits]
/// shared` needs one (the counters live there), and `[greylisting]
/// database`, a redb file, is refused with one (greylisting then keeps its
/// state in the store, so that every host sees the same triplets; a file
/// named but not used would mislead).
fn shared_policy_state(rules: &RulesConfig, storage: &StoragePaths, file: &ConfigFile) -> Result<()> {
    if rules.rate_limits.shared && storage.store.is_none() {
        bail!(file.error(
            "rate_limits.shared",
            "needs a PostgreSQL store (store = \"postgres://...\"), where shared counters live"
        ));
    }
    if storage.store.is_some()
        && rules.greylisting.enabled
        && rules.greylisting.database != GreylistingConfig::default().database
    {
        bail!(file.error(
            "greylisting.database",
            "not used with a PostgreSQL store, where greylisting keeps its state: remove the key"
        ));
    }
    Ok(())
}

fn file_networks(file: Option<&ConfigFile>, list: &toml::Spanned<Vec<String>>, key: &str) -> Result<Networks> {
    Networks::parse(list.get_ref()).map_err(|e| match file {
        Some(file) => file.error_at(list.span(), key, format!("{e:#}")),
        None => anyhow::anyhow!("{key}: {e:#}"),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::{ConfigFile, Options, ServerConfig, Settings};
    use crate::mail_auth::{Action, MailAuthConfig};

    fn resolve(flags: &Options, text: Option<&str>) -> anyhow::Result<Settings> {
        let file = text.map(|t| ConfigFile::parse(Path::new("smtpcell.toml"), t.to_string())).transpose()?;
        Settings::resolve(flags, file.as_ref())
    }

    #[test]
    fn mail_auth_only_tags_without_a_file_and_follows_the_file_with_one() {
        let none = Options::default();
        let embedded = resolve(&none, None).unwrap().mail_auth.unwrap();
        assert_eq!(embedded, MailAuthConfig::tag_only(&ServerConfig::default().hostname, None));

        let file = resolve(&none, Some("hostname = \"mx.example.org\"\n")).unwrap().mail_auth.unwrap();
        assert_eq!(
            (file.authserv_id.as_str(), file.spf_fail, file.dmarc_reject, file.temp_error, file.timeout),
            ("mx.example.org", Action::Tag, Action::Refuse, Action::Tag, Duration::from_secs(20))
        );

        let text = "dns_server = \"192.0.2.53\"\n[mail_auth]\nspf_fail = \"refuse\"\ntemp_error = \"refuse\"\n\
                    dmarc_reject = \"tag\"\ntimeout_secs = 5\n";
        let keys = resolve(&none, Some(text)).unwrap().mail_auth.unwrap();
        assert_eq!(keys.dns_server, Some("192.0.2.53:53".parse().unwrap()));
        assert_eq!((keys.spf_fail, keys.dmarc_reject, keys.temp_error), (Action::Refuse, Action::Tag, Action::Refuse));
        assert_eq!(keys.timeout, Duration::from_secs(5));

        let flags = Options { dns_server: Some("127.0.0.1:5353".parse().unwrap()), ..Options::default() };
        assert_eq!(resolve(&flags, Some(text)).unwrap().mail_auth.unwrap().dns_server, flags.dns_server);
    }

    #[test]
    fn shared_rate_limits_need_a_postgres_store_and_greylisting_follows_it() {
        let none = Options::default();
        let store = "store = \"postgres://smtpcell@127.0.0.1/smtpcell\"\n";
        let shared = "[rate_limits]\nshared = true\nclient_messages_per_minute = 5\n";
        let err = resolve(&none, Some(shared)).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("smtpcell.toml: rate_limits.shared: needs a PostgreSQL store"),
            "{err:#}"
        );
        let settings = resolve(&none, Some(&format!("{store}{shared}"))).unwrap();
        assert!(settings.rules.unwrap().rate_limits.shared);

        let greylisting = "[greylisting]\nenabled = true\n";
        resolve(&none, Some(&format!("{store}{greylisting}"))).unwrap();
        let file = format!("{store}{greylisting}database = \"/var/lib/smtpcell/greylist.redb\"\n");
        let err = resolve(&none, Some(&file)).unwrap_err();
        assert!(format!("{err:#}").contains("greylisting.database: not used with a PostgreSQL store"), "{err:#}");
        // Without a store, the file is where the state goes.
        resolve(&none, Some(&format!("{greylisting}database = \"/var/lib/smtpcell/greylist.redb\"\n"))).unwrap();
    }

    #[test]
    fn mail_auth_is_turned_off_by_the_flag_or_the_file() {
        let off = Options { no_mail_auth: true, ..Options::default() };
        assert!(resolve(&off, None).unwrap().mail_auth.is_none());
        assert!(resolve(&Options::default(), Some("[mail_auth]\nenabled = false\n")).unwrap().mail_auth.is_none());
        assert!(resolve(&Options::default(), Some("no_mail_auth = true\n")).unwrap().mail_auth.is_none());
        let err = resolve(&Options::default(), Some("[mail_auth]\nspf_fail = \"drop\"\n")).unwrap_err();
        assert!(format!("{err:#}").starts_with("smtpcell.toml:2: unknown variant `drop`"), "{err:#}");
    }
}
