//! Building the policy from the settings, at start-up and at each reload.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use super::Options;
use crate::mail_auth::{Authenticating, MailAuth, MailAuthConfig};
use crate::policy::{AcceptAll, Clock, PasswordFile, Policy, Rules, RulesConfig};
use crate::postgres::Database;
use crate::server::PolicyBuilder;

/// One line each for what a policy has, for the start-up log and reload
/// reports (`built`), or for `config check` (no `built`: then `store`, the
/// database the configuration names, says where greylisting would keep its
/// state).
pub fn policy_summary(rules: &RulesConfig, built: Option<&Rules>, store: Option<&Database>) -> Vec<String> {
    let mut lines = vec![format!("{} domains", rules.domains.iter().count())];
    if let Some(built) = built
        && let Some(path) = &rules.recipients
    {
        lines.push(format!("{} recipients from {}", built.recipients(), path.display()));
    }
    if !rules.relay_networks.is_empty() {
        lines.push(format!("relay networks {:?}", rules.relay_networks));
    }
    if rules.rate_limits.any() {
        lines.push(
            if rules.rate_limits.shared { "rate limits on, shared in PostgreSQL" } else { "rate limits on" }.into(),
        );
    }
    if rules.greylisting.enabled {
        lines.push(match built.and_then(Rules::greylist) {
            Some(greylist) => format!("greylisting on ({})", greylist.location()),
            None => match store {
                Some(database) => format!("greylisting on (PostgreSQL {database})"),
                None => format!("greylisting on ({})", rules.greylisting.database.display()),
            },
        });
    }
    lines
}

fn mail_auth_summary(config: &MailAuthConfig) -> String {
    let resolver = config.dns_server.map_or_else(|| "the system's resolver".to_string(), |addr| addr.to_string());
    format!(
        "mail authentication on (SPF fail: {:?}, DMARC reject: {:?}, DNS errors: {:?}; {resolver})",
        config.spf_fail, config.dmarc_reject, config.temp_error
    )
    .to_lowercase()
}

/// How the policy is built at start-up and at each reload: the flags kept,
/// the file read again. The last policy built hands its rate-limit
/// counters and greylisting database on (see [`Rules::build`]). Only the
/// policy reloads (with the users file it names); a reload that finds
/// other settings changed (listeners, storage, limits, timeouts, the
/// certificate's paths) says they take effect at the next start.
/// `database` is the PostgreSQL database the spool stores into (from
/// [`super::open_database`] at start-up, shared with the spool), if any:
/// greylisting keeps its state there and `[rate_limits] shared` counts
/// there, for the life of the process (`store` is such a setting).
pub fn policy_builder(
    flags: Options,
    config: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    database: Option<Database>,
) -> PolicyBuilder {
    let last: Mutex<Option<Arc<Rules>>> = Mutex::new(None);
    let last_checks: Mutex<Option<Arc<MailAuth>>> = Mutex::new(None);
    let started: Mutex<Option<String>> = Mutex::new(None);
    Arc::new(move || {
        let settings = super::load(&flags, config.as_deref())?;
        let mut lines = Vec::new();
        let fixed = settings.restart_only();
        let mut started = started.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match started.as_deref() {
            None => *started = Some(fixed),
            Some(at_start) if at_start != fixed => {
                lines.push("settings other than the policy changed: they take effect at the next start".into());
            }
            Some(_) => {}
        }
        let users = match &settings.users {
            Some(path) => {
                let users = PasswordFile::open(path).context("loading the users file")?;
                lines.push(format!("{} users from {}", users.count(), path.display()));
                Some(Arc::new(users))
            }
            None => None,
        };
        let relay_networks = settings.rules.as_ref().map(|r| r.relay_networks.clone()).unwrap_or_default();
        let policy: Arc<dyn Policy> = match settings.rules {
            Some(rules_config) => {
                let mut last = last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let rules =
                    Arc::new(Rules::build(rules_config, users, clock.clone(), last.as_deref(), database.as_ref())?);
                lines.extend(policy_summary(rules.config(), Some(&rules), None));
                *last = Some(rules.clone());
                rules
            }
            None => match users {
                Some(users) => users,
                None => Arc::new(AcceptAll),
            },
        };
        let policy: Arc<dyn Policy> = match settings.mail_auth {
            Some(config) => {
                lines.push(mail_auth_summary(&config));
                // Unchanged checks are kept, with their DNS cache and the
                // SPF results of transactions in progress.
                let mut last_checks = last_checks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let checks = match last_checks.take() {
                    Some(kept) if kept.same_as(&config, &relay_networks) => kept,
                    _ => Arc::new(MailAuth::new(config, relay_networks).context("setting up mail authentication")?),
                };
                *last_checks = Some(checks.clone());
                Arc::new(Authenticating::new(policy, checks))
            }
            None => policy,
        };
        Ok((policy, lines))
    })
}
