//! The database a URL names: parsed by tokio-postgres (URLs and libpq
//! key=value strings, several hosts), with what smtpcell asks of every
//! session, and a form for logs that shows no password.

use std::fmt;
use std::time::Duration;

use anyhow::{Result, bail};
use tokio_postgres::config::{Host, TargetSessionAttrs};

/// A checked connection target. `Display` is the redacted form:
/// `postgres://user@host1:5432,host2:5433/dbname`, never the password, nor
/// any other parameter.
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
    shown: String,
}

impl Target {
    /// How long a connection attempt to one host may take, unless the URL
    /// says (`connect_timeout`): a host that drops packets is then tried
    /// for this long, not for the kernel's minutes.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// Parses `url`, then adds to the session: `synchronous_commit=on`
    /// (set at connection start, so it holds whatever the server's or the
    /// role's default says: a message's 250 waits for its COMMIT to be
    /// flushed, and with a synchronous standby configured, to reach it),
    /// `application_name=smtpcell` unless given, and the default connect
    /// timeout unless given.
    ///
    /// Errors: what tokio-postgres refuses (the message does not repeat the
    /// string), or a target without a host.
    pub fn parse(url: &str) -> Result<Target> {
        let mut config: tokio_postgres::Config = match url.parse() {
            Ok(config) => config,
            // tokio-postgres' message never quotes the string, which may
            // hold a password.
            Err(err) => bail!("not a PostgreSQL URL or connection string: {err}"),
        };
        if config.get_hosts().is_empty() {
            bail!("the PostgreSQL URL names no host");
        }
        let options = match config.get_options() {
            Some(given) if !given.trim().is_empty() => format!("{given} -c synchronous_commit=on"),
            _ => "-c synchronous_commit=on".to_string(),
        };
        config.options(options);
        if config.get_application_name().is_none() {
            config.application_name("smtpcell");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Self::DEFAULT_CONNECT_TIMEOUT);
        }
        let shown = redacted(&config);
        Ok(Target { config, shown })
    }

    /// The parsed configuration, with smtpcell's additions.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The connect timeout per host in force.
    pub fn connect_timeout(&self) -> Duration {
        self.config.get_connect_timeout().copied().unwrap_or(Self::DEFAULT_CONNECT_TIMEOUT)
    }
}

/// `postgres://user@hosts/dbname`, with `?target_session_attrs=...` when
/// one is asked for (so a log shows whether the host follows a failover),
/// from the parsed configuration (not from the string, so no form of the
/// password can slip through). A Unix socket directory is a host written
/// percent-encoded, as libpq's URLs take it.
fn redacted(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]"),
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string().replace('/', "%2F"),
            };
            // One port for all hosts, one per host, or none (5432).
            match ports.get(i).or(if ports.len() == 1 { ports.first() } else { None }) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let db = config.get_dbname().unwrap_or("");
    let attrs = match config.get_target_session_attrs() {
        TargetSessionAttrs::ReadWrite => "?target_session_attrs=read-write",
        TargetSessionAttrs::ReadOnly => "?target_session_attrs=read-only",
        _ => "",
    };
    format!("postgres://{user}{}/{db}{attrs}", hosts.join(","))
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_host_urls_keep_every_host_and_show_no_password() {
        let url = "postgres://mail:s3cret@127.0.0.1:5433,127.0.0.1:5434/smtpcell?target_session_attrs=read-write";
        let target = Target::parse(url).unwrap();
        let shown = "postgres://mail@127.0.0.1:5433,127.0.0.1:5434/smtpcell?target_session_attrs=read-write";
        assert_eq!(target.to_string(), shown);
        assert_eq!(format!("{target:?}"), format!("Target({shown})"));
        let config = target.config();
        assert_eq!(config.get_hosts().len(), 2);
        assert_eq!(config.get_ports(), [5433, 5434]);
        assert_eq!(config.get_target_session_attrs(), TargetSessionAttrs::ReadWrite);
        assert_eq!(config.get_password(), Some(&b"s3cret"[..]));
    }

    #[test]
    fn every_session_commits_synchronously() {
        let target = Target::parse("host=db.example user=mail password=x dbname=smtpcell").unwrap();
        assert_eq!(target.config().get_options(), Some("-c synchronous_commit=on"));
        assert_eq!(target.config().get_application_name(), Some("smtpcell"));
        assert_eq!(target.connect_timeout(), Target::DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(target.to_string(), "postgres://mail@db.example/smtpcell");
        let given = Target::parse("postgres://u@h/d?options=-c%20statement_timeout%3D5000&connect_timeout=2").unwrap();
        assert_eq!(given.config().get_options(), Some("-c statement_timeout=5000 -c synchronous_commit=on"));
        assert_eq!(given.connect_timeout(), Duration::from_secs(2));
    }

    #[test]
    fn bad_strings_are_refused_without_repeating_them() {
        for bad in ["postgres://u:hunter2@h:notaport/d", "mysql://u:hunter2@h/d", "user=u password=hunter2"] {
            let err = format!("{:#}", Target::parse(bad).unwrap_err());
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
