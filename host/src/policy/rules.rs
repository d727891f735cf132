//! The policy of a configuration file: who may send what to whom (issue
//! 14). Every decision is taken at the SMTP stage RFC 5321 puts it at:
//!
//! - a new connection ([`Policy::admit`]): rate limits on connections, per
//!   client address and per network; refused with the host's 421 4.7.0
//!   before a sandbox is created.
//! - MAIL: messages per minute per client and network, per hour per
//!   authenticated user and per reverse-path (451 4.7.1).
//! - RCPT, in this order: a session that has had its fill of refused
//!   recipients ends (421 4.7.0: directory harvesting); a recipient at a
//!   local domain must be in the recipients table (550 5.1.1); one at
//!   another domain is relayed only for an authenticated client or a
//!   relay network (550 5.7.1, RFC 5321 section 4.3.2 lists 550 for
//!   RCPT); greylisting for unauthenticated mail to local recipients
//!   (451 4.7.1); recipients per minute (451 4.7.1). Greylisted attempts do
//!   not count against the rate limits.
//! - AUTH: a client or network past its failed-AUTH rate is cut off (421
//!   4.7.0) without its password being checked; the users file decides.
//!
//! Closed by default: with a configuration file and no `domains` or
//! `relay_networks`, only authenticated clients can have a recipient
//! accepted.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use smtp_core::{Answer, AuthMechanisms, Credentials, MailRequest, Question, Questions, RcptRequest, Reason, Refusal};
use tracing::info;

use crate::events::{self, Event};

use super::address::split;
use super::client::Client;
use super::clock::Clock;
use super::decide::{Admission, Decision, Policy, Turnaway};
use super::greylist::{Greylist, GreylistingConfig, Verdict};
use super::networks::Networks;
use super::password_file::PasswordFile;
use super::rate_limits::{PostgresCells, RateLimits, RateLimitsConfig};
use super::recipients::{Domains, Lookup, RecipientTable};
use crate::postgres::Database;
use crate::spool::Destination;

/// The policy keys of a configuration file, checked.
#[derive(Clone, Debug, Default)]
pub struct RulesConfig {
    /// `domains`: the domains we receive mail for.
    pub domains: Domains,
    /// `recipients`: the recipients table; without one every user at a
    /// local domain exists, and their mail goes to the one Maildir.
    pub recipients: Option<PathBuf>,
    /// `recipient_delimiter` (default `+`).
    pub recipient_delimiter: String,
    /// `relay_networks`: clients that may relay without AUTH.
    pub relay_networks: Networks,
    /// `max_refused_recipients`: 0 is no limit.
    pub max_refused_recipients: u32,
    pub rate_limits: RateLimitsConfig,
    pub greylisting: GreylistingConfig,
}

/// Where one forward-path goes, or why it may not.
enum Route<'a> {
    Local(&'a [Destination]),
    /// At a local domain, without a recipients table: the one Maildir.
    Inbox,
    Relay,
    Refused(Reason),
}

/// The configured policy (see the module documentation).
pub struct Rules {
    config: RulesConfig,
    table: Option<RecipientTable>,
    users: Option<Arc<PasswordFile>>,
    rate_limits: Option<Arc<RateLimits>>,
    greylist: Option<Arc<Greylist>>,
}

impl Rules {
    /// Builds the policy of `config`: reads the recipients table, and opens
    /// the greylisting database. `previous` is the policy in force, if any:
    /// its rate-limit counters and its greylisting database are kept when
    /// their configuration did not change (a reload must not forgive every
    /// client its rate, and the database is open only once). `shared` is
    /// the PostgreSQL database the server stores its mail in, if it does:
    /// greylisting then keeps its state there, and `rate_limits.shared`
    /// counts there (the same for the life of the process: `store` takes
    /// effect at a restart). Errors name the file at fault.
    pub fn build(
        config: RulesConfig,
        users: Option<Arc<PasswordFile>>,
        clock: Arc<dyn Clock>,
        previous: Option<&Rules>,
        shared: Option<&Database>,
    ) -> Result<Rules> {
        let table = match &config.recipients {
            Some(path) => Some(
                RecipientTable::load(path, &config.domains, &config.recipient_delimiter)
                    .with_context(|| format!("loading the recipients table {}", path.display()))?,
            ),
            None => None,
        };
        let rate_limits = match previous.and_then(|p| p.rate_limits.clone()) {
            Some(kept) if previous.is_some_and(|p| p.config.rate_limits == config.rate_limits) => Some(kept),
            _ if config.rate_limits.any() => {
                let cells = shared.map(|database| PostgresCells::new(database.clone()));
                Some(Arc::new(RateLimits::new(&config.rate_limits, clock.clone(), cells)))
            }
            _ => None,
        };
        let greylist = match previous.and_then(|p| p.greylist.clone()) {
            Some(kept) if previous.is_some_and(|p| p.config.greylisting == config.greylisting) => Some(kept),
            // The database file is locked while open: keep it, with the new timings.
            Some(open) if config.greylisting.enabled => Some(Arc::new(open.reconfigured(&config.greylisting)?)),
            _ if config.greylisting.enabled => Some(Arc::new(match shared {
                Some(database) => Greylist::in_postgres(&config.greylisting, database.clone(), clock)?,
                None => Greylist::open(&config.greylisting, clock)?,
            })),
            _ => None,
        };
        Ok(Rules { config, table, users, rate_limits, greylist })
    }

    /// The greylist, when greylisting is on.
    pub fn greylist(&self) -> Option<&Greylist> {
        self.greylist.as_deref()
    }

    /// How many entries the recipients table has (0 without one).
    pub fn recipients(&self) -> usize {
        self.table.as_ref().map_or(0, |t| t.len())
    }

    pub fn config(&self) -> &RulesConfig {
        &self.config
    }

    fn may_relay(&self, client: &Client) -> bool {
        client.authenticated.is_some() || self.config.relay_networks.contains(client.ip)
    }

    /// RCPT's refusals that need no waiting, in [`Policy::rcpt`]'s order:
    /// the session's bound on refused recipients (421, ending it), then
    /// the route (an unknown local user, relay denied).
    fn rcpt_refused(&self, client: &Client, forward_path: &str) -> Option<Answer> {
        let max = self.config.max_refused_recipients;
        if max > 0 && client.refused_recipients >= max {
            return Some(Answer::Refuse(Refusal {
                reason: Reason::Policy,
                permanent: false,
                text: Some("too many refused recipients".into()),
                disconnect: true,
            }));
        }
        match self.route(client, forward_path) {
            Route::Refused(reason) => Some(refuse(reason, true, false)),
            _ => None,
        }
    }

    /// The greylist that applies to `client`'s recipients, if any: relayed
    /// mail comes only from clients that may relay, which greylisting
    /// skips.
    fn greylisting(&self, client: &Client) -> Option<&Greylist> {
        self.greylist.as_deref().filter(|_| !self.may_relay(client))
    }

    fn route<'a>(&'a self, client: &Client, forward_path: &str) -> Route<'a> {
        let local = match &self.table {
            Some(table) => match table.lookup(forward_path) {
                Lookup::Found(destinations) => return Route::Local(destinations),
                Lookup::Unknown => return Route::Refused(Reason::NoSuchUser),
                Lookup::NotLocal => false,
            },
            // RFC 5321 section 4.5.1: `postmaster` without a domain is
            // always ours.
            None => match split(forward_path).1 {
                Some(domain) => self.config.domains.contains(domain),
                None => true,
            },
        };
        if local {
            Route::Inbox
        } else if self.may_relay(client) {
            Route::Relay
        } else {
            Route::Refused(Reason::RelayDenied)
        }
    }
}

fn refuse(reason: Reason, permanent: bool, disconnect: bool) -> Answer {
    Answer::Refuse(Refusal { reason, permanent, text: None, disconnect })
}

/// Reports the rate limit `limit` reached at `stage`, and refuses.
fn limited(client: &Client, stage: &'static str, limit: &'static str) -> Answer {
    report_limit(client, stage, limit);
    refuse(Reason::RateLimited, false, false)
}

fn report_limit(client: &Client, stage: &'static str, limit: &'static str) {
    events::emit(Event::RateLimited { listener: client.role, client: client.ip, stage, limit });
}

impl Policy for Rules {
    fn questions(&self) -> Questions {
        // MAIL crosses into the host only for a limit on messages.
        let mail = self.rate_limits.as_ref().is_some_and(|limits| limits.counts_messages());
        Questions { mail, rcpt: true, ..Questions::default() }
    }

    fn admit(&self, client: &Client) -> Result<Option<Admission>, Turnaway> {
        match &self.rate_limits {
            Some(limits) => match limits.admit(client.ip) {
                Ok(slot) => Ok(Some(Box::new(slot))),
                Err(limited) => {
                    report_limit(client, "connect", limited.name());
                    Err(Turnaway { why: limited.reason() })
                }
            },
            None => Ok(None),
        }
    }

    fn mail<'a>(&'a self, client: &'a Client, mail: &'a MailRequest) -> Decision<'a> {
        Box::pin(async move {
            match &self.rate_limits {
                Some(limits) => {
                    match limits.message(client.ip, client.authenticated.as_deref(), &mail.reverse_path).await {
                        Ok(()) => Answer::ACCEPT,
                        Err(limit) => limited(client, "mail", limit.name()),
                    }
                }
                None => Answer::ACCEPT,
            }
        })
    }

    fn rcpt<'a>(&'a self, client: &'a Client, rcpt: &'a RcptRequest) -> Decision<'a> {
        Box::pin(async move {
            if let Some(refusal) = self.rcpt_refused(client, &rcpt.recipient.address) {
                if let Answer::Refuse(Refusal { disconnect: true, .. }) = refusal {
                    info!(client = %client.ip, refused = client.refused_recipients, "too many refused recipients: ending the session");
                }
                return refusal;
            }
            if let Some(greylist) = self.greylisting(client) {
                let verdict = greylist.check(client.ip, &rcpt.reverse_path, &rcpt.recipient.address).await;
                let name = if verdict == Verdict::Defer { "defer" } else { "pass" };
                events::emit(Event::Greylisting { listener: client.role, client: client.ip, verdict: name });
                if verdict == Verdict::Defer {
                    return refuse(Reason::Greylisted, false, false);
                }
            }
            if let Some(limits) = &self.rate_limits
                && let Err(limit) = limits.recipient(client.ip).await
            {
                return limited(client, "rcpt", limit.name());
            }
            Answer::ACCEPT
        })
    }

    /// MAIL and RCPT when every check they make is in memory (no
    /// greylisting, no shared rate limits) and accepts; the rest, refusals
    /// included, is left to [`Policy::mail`] and [`Policy::rcpt`].
    fn decide_now(&self, client: &Client, question: &Question) -> Option<Answer> {
        match question {
            Question::Mail(mail) => {
                if let Some(limits) = &self.rate_limits {
                    let reverse_path = &mail.reverse_path;
                    limits.message_now(client.ip, client.authenticated.as_deref(), reverse_path)?.ok()?;
                }
                Some(Answer::ACCEPT)
            }
            Question::Rcpt(rcpt) => {
                if self.rcpt_refused(client, &rcpt.recipient.address).is_some() || self.greylisting(client).is_some() {
                    return None;
                }
                if let Some(limits) = &self.rate_limits {
                    limits.recipient_now(client.ip)?.ok()?;
                }
                Some(Answer::ACCEPT)
            }
            _ => None,
        }
    }

    fn destinations(&self, client: &Client, forward_path: &str) -> Vec<Destination> {
        match self.route(client, forward_path) {
            Route::Local(destinations) => destinations.to_vec(),
            Route::Inbox => vec![Destination::Inbox],
            Route::Relay => vec![Destination::Outgoing(forward_path.to_string())],
            // Only recipients this policy accepted are asked about, so
            // this cannot happen; were it to, no destination fails the
            // message (451) rather than relay it.
            Route::Refused(_) => Vec::new(),
        }
    }

    fn auth_mechanisms(&self) -> AuthMechanisms {
        self.users.as_ref().map_or_else(AuthMechanisms::default, |users| users.auth_mechanisms())
    }

    fn auth<'a>(&'a self, client: &'a Client, credentials: &'a Credentials) -> Decision<'a> {
        Box::pin(async move {
            let Some(users) = &self.users else {
                return refuse(Reason::AuthFailed, true, false);
            };
            if let Some(limits) = &self.rate_limits
                && !limits.auth_allowed(client.ip).await
            {
                report_limit(client, "auth", "auth_failures_per_hour");
                return refuse(Reason::AuthFailed, false, true);
            }
            let answer = users.auth(client, credentials).await;
            if let (Answer::Refuse(_), Some(limits)) = (&answer, &self.rate_limits) {
                limits.auth_failed(client.ip).await;
            }
            answer
        })
    }
}
