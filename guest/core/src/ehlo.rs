//! What the server says about itself: the EHLO reply (RFC 5321 section
//! 4.1.1.1), the HELP text and the capability list reported by `info()`.
//!
//! The EHLO keywords come in a fixed order so that the reply is the same
//! bytes in every host. A keyword appears only when its extension is
//! enabled; BINARYMIME also needs CHUNKING (RFC 3030 section 3), and
//! STARTTLS disappears once TLS is active (RFC 3207 section 4.2).

use crate::config::Config;
use crate::prelude::*;

/// Whether a keyword is on, given the configuration and whether TLS is active.
type Switch = fn(&Config, bool) -> bool;

/// Every extension keyword this build implements, in EHLO order, with the
/// switch that turns it on.
const KEYWORDS: [(&str, Switch); 11] = [
    ("PIPELINING", |c, _| c.extensions.pipelining),
    ("SIZE", |c, _| c.extensions.size),
    ("8BITMIME", |c, _| c.extensions.eightbitmime),
    ("SMTPUTF8", |c, _| c.extensions.smtputf8),
    ("ENHANCEDSTATUSCODES", |c, _| c.extensions.enhancedstatuscodes),
    ("CHUNKING", |c, _| c.extensions.chunking),
    ("BINARYMIME", |c, _| c.extensions.binarymime && c.extensions.chunking),
    ("DSN", |c, _| c.extensions.dsn),
    ("AUTH", auth_offered),
    ("HELP", |c, _| c.extensions.help),
    ("STARTTLS", |c, tls_active| c.extensions.starttls && !tls_active),
];

/// RFC 4954 section 4: AUTH with plaintext mechanisms is offered only once
/// TLS protects the password, unless the host says otherwise.
pub(crate) fn auth_offered(config: &Config, tls_active: bool) -> bool {
    config.auth_mechanisms.any() && (tls_active || config.auth_without_tls)
}

/// The keywords `info()` reports: everything this build can advertise.
pub(crate) fn capabilities() -> Vec<&'static str> {
    KEYWORDS.iter().map(|(keyword, _)| *keyword).collect()
}

/// The lines of the EHLO reply: the hostname, then one keyword per line.
/// The client's address is never echoed (replies must not vary by host).
pub(crate) fn ehlo_lines(config: &Config, tls_active: bool) -> Vec<String> {
    let mut lines = vec![config.hostname.clone()];
    for (keyword, enabled) in KEYWORDS {
        if enabled(config, tls_active) {
            lines.push(match keyword {
                "SIZE" => format!("SIZE {}", config.max_message_size),
                "AUTH" => auth_keyword(config),
                _ => keyword.to_string(),
            });
        }
    }
    lines
}

/// `AUTH PLAIN LOGIN`: the keyword and the offered mechanisms.
fn auth_keyword(config: &Config) -> String {
    let mut keyword = "AUTH".to_string();
    for (name, offered) in [("PLAIN", config.auth_mechanisms.plain), ("LOGIN", config.auth_mechanisms.login)] {
        if offered {
            keyword.push(' ');
            keyword.push_str(name);
        }
    }
    keyword
}

/// The commands HELP lists: the RFC 5321 set plus the enabled extensions'.
pub(crate) fn help_commands(config: &Config, tls_active: bool) -> String {
    let mut commands = vec!["HELO", "EHLO", "MAIL", "RCPT", "DATA"];
    if config.extensions.chunking {
        commands.push("BDAT");
    }
    commands.extend(["RSET", "NOOP", "QUIT", "HELP", "VRFY"]);
    if auth_offered(config, tls_active) {
        commands.push("AUTH");
    }
    if config.extensions.starttls && !tls_active {
        commands.push("STARTTLS");
    }
    commands.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ehlo_lists_every_extension_but_starttls() {
        let config = Config { hostname: "mx.example".to_string(), ..Config::default() };
        assert_eq!(
            ehlo_lines(&config, false),
            [
                "mx.example",
                "PIPELINING",
                "SIZE 10240000",
                "8BITMIME",
                "SMTPUTF8",
                "ENHANCEDSTATUSCODES",
                "CHUNKING",
                "BINARYMIME",
                "DSN",
                "HELP"
            ]
        );
    }

    #[test]
    fn starttls_only_before_tls_and_binarymime_only_with_chunking() {
        let mut config = Config::default();
        config.extensions.starttls = true;
        config.extensions.chunking = false;
        let lines = ehlo_lines(&config, false);
        assert_eq!(lines.last().unwrap(), "STARTTLS");
        assert!(!lines.iter().any(|l| l == "BINARYMIME" || l == "CHUNKING"));
        assert!(!ehlo_lines(&config, true).iter().any(|l| l == "STARTTLS"));
        assert!(help_commands(&config, false).ends_with("STARTTLS"));
        assert!(!help_commands(&config, false).contains("BDAT"));
    }

    #[test]
    fn auth_only_over_tls_unless_allowed() {
        let mut config = Config::default();
        config.auth_mechanisms.plain = true;
        assert!(!ehlo_lines(&config, false).iter().any(|l| l.starts_with("AUTH")));
        assert!(ehlo_lines(&config, true).iter().any(|l| l == "AUTH PLAIN"));
        config.auth_without_tls = true;
        config.auth_mechanisms.login = true;
        assert!(ehlo_lines(&config, false).iter().any(|l| l == "AUTH PLAIN LOGIN"));
        assert!(help_commands(&config, false).ends_with("VRFY AUTH"));
    }
}
