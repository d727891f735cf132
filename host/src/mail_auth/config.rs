//! What to do with the results: the `[mail_auth]` table of a configuration
//! file, and the defaults with and without one.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// What a result leads to at the SMTP stage that decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Refuse (permanently, or for DNS errors temporarily).
    Refuse,
    /// Accept, and only say it in Authentication-Results.
    Tag,
}

/// The `[mail_auth]` table as written (every key optional).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailAuthKeys {
    /// Check at all [default: true]; `--no-mail-auth` turns it off.
    pub enabled: Option<bool>,
    /// SPF `fail` of the MAIL FROM identity: `refuse` (550 5.7.23 at MAIL)
    /// or `tag` [default: tag].
    pub spf_fail: Option<Action>,
    /// DMARC `p=reject` failed: `refuse` (550 5.7.1 at the end of data) or
    /// `tag` (treated as quarantine) [default: refuse].
    pub dmarc_reject: Option<Action>,
    /// A DNS temporary error decided a result (SPF at MAIL, DMARC at the
    /// end of data): `refuse` (451 4.7.24 at MAIL, 451 4.7.1 at the end of
    /// data) or `tag` [default: tag].
    pub temp_error: Option<Action>,
    /// Seconds all the lookups of one check may take together (SPF at
    /// MAIL; DKIM, ARC and DMARC at the end of data); past it the check's
    /// result is `temperror` [default: 20, RFC 7208 section 4.6.4's
    /// minimum for SPF].
    pub timeout_secs: Option<u64>,
}

/// The checks' settings, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailAuthConfig {
    /// The name written as authserv-id (RFC 8601 section 2.5) and as
    /// SPF's receiving host: the server's hostname.
    pub authserv_id: String,
    /// The resolver to ask; `None`: the system's (/etc/resolv.conf).
    pub dns_server: Option<SocketAddr>,
    pub spf_fail: Action,
    pub dmarc_reject: Action,
    pub temp_error: Action,
    pub timeout: Duration,
}

impl MailAuthConfig {
    pub const DEFAULT_TIMEOUT_SECS: u64 = 20;

    /// The embedded default, without a configuration file: every result is
    /// only tagged.
    pub fn tag_only(authserv_id: &str, dns_server: Option<SocketAddr>) -> MailAuthConfig {
        MailAuthConfig {
            authserv_id: authserv_id.to_string(),
            dns_server,
            spf_fail: Action::Tag,
            dmarc_reject: Action::Tag,
            temp_error: Action::Tag,
            timeout: Duration::from_secs(Self::DEFAULT_TIMEOUT_SECS),
        }
    }

    /// With a configuration file: `keys` over the defaults, which are what
    /// the large mailbox providers do (README, "Mail authentication"):
    /// DMARC `p=reject` is refused, SPF `fail` alone and DNS errors are
    /// tagged.
    pub fn configured(authserv_id: &str, dns_server: Option<SocketAddr>, keys: &MailAuthKeys) -> MailAuthConfig {
        MailAuthConfig {
            spf_fail: keys.spf_fail.unwrap_or(Action::Tag),
            dmarc_reject: keys.dmarc_reject.unwrap_or(Action::Refuse),
            temp_error: keys.temp_error.unwrap_or(Action::Tag),
            timeout: Duration::from_secs(keys.timeout_secs.unwrap_or(Self::DEFAULT_TIMEOUT_SECS)),
            ..MailAuthConfig::tag_only(authserv_id, dns_server)
        }
    }
}
