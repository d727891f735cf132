//! Session policy handed in by the host. The core applies it; it never
//! decides it (DESIGN.md: policy is the host's, grammar is the guest's).

use crate::prelude::*;

/// ESMTP extensions a session advertises and accepts. A disabled extension is
/// neither listed in the EHLO reply nor accepted as a command or parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extensions {
    pub pipelining: bool,
    pub size: bool,
    pub eightbitmime: bool,
    pub enhancedstatuscodes: bool,
    pub smtputf8: bool,
    pub chunking: bool,
    pub binarymime: bool,
    pub dsn: bool,
    pub help: bool,
    pub starttls: bool,
}

impl Extensions {
    /// Every extension the core implements, except STARTTLS, which only the
    /// host can switch on (it needs a certificate).
    pub const DEFAULT: Extensions = Extensions {
        pipelining: true,
        size: true,
        eightbitmime: true,
        enhancedstatuscodes: true,
        smtputf8: true,
        chunking: true,
        binarymime: true,
        dsn: true,
        help: true,
        starttls: false,
    };
}

impl Extensions {
    /// No extension at all: plain RFC 5321 SMTP.
    pub const NONE: Extensions = Extensions {
        pipelining: false,
        size: false,
        eightbitmime: false,
        enhancedstatuscodes: false,
        smtputf8: false,
        chunking: false,
        binarymime: false,
        dsn: false,
        help: false,
        starttls: false,
    };
}

impl Default for Extensions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Extensions {
    /// Every extension with its name in transcripts, configuration files
    /// and the host's command line (the EHLO keyword, lower case), in the
    /// order of the WIT flags: the one list every driver maps names with.
    pub const NAMES: [&'static str; 10] = [
        "pipelining",
        "size",
        "8bitmime",
        "enhancedstatuscodes",
        "smtputf8",
        "chunking",
        "binarymime",
        "dsn",
        "help",
        "starttls",
    ];

    /// The switch for the extension named `name` (see [`Extensions::NAMES`]).
    pub fn flag_mut(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "pipelining" => &mut self.pipelining,
            "size" => &mut self.size,
            "8bitmime" => &mut self.eightbitmime,
            "enhancedstatuscodes" => &mut self.enhancedstatuscodes,
            "smtputf8" => &mut self.smtputf8,
            "chunking" => &mut self.chunking,
            "binarymime" => &mut self.binarymime,
            "dsn" => &mut self.dsn,
            "help" => &mut self.help,
            "starttls" => &mut self.starttls,
            _ => return None,
        })
    }
}

/// The steps at which the session asks the host before replying
/// (wit/session.wit, `questions`). A step not asked is accepted inside the
/// session. AUTH and the end of a message are always asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Questions {
    pub connect: bool,
    pub helo: bool,
    pub mail: bool,
    pub rcpt: bool,
}

impl Questions {
    /// Names as in wit/session.wit, for transcripts and configuration.
    pub const NAMES: [&'static str; 4] = ["connect", "helo", "mail", "rcpt"];

    /// The switch for the step named `name` (see [`Questions::NAMES`]).
    pub fn flag_mut(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "connect" => &mut self.connect,
            "helo" => &mut self.helo,
            "mail" => &mut self.mail,
            "rcpt" => &mut self.rcpt,
            _ => return None,
        })
    }
}

/// SASL mechanisms offered with AUTH (RFC 4954); none: no AUTH.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthMechanisms {
    /// RFC 4616.
    pub plain: bool,
    /// draft-murchison-sasl-login.
    pub login: bool,
}

impl AuthMechanisms {
    /// Whether AUTH is offered at all.
    pub fn any(self) -> bool {
        self.plain || self.login
    }
}

/// Everything a session needs to know about the server's policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Announced in the greeting and the EHLO reply.
    pub hostname: String,
    /// Largest message content accepted, in octets after dot-unstuffing.
    pub max_message_size: u64,
    /// Most recipients per transaction (452 past it).
    pub max_recipients: u32,
    /// Longest DATA text line, in octets including CRLF (never below 1000).
    pub max_line_length: u32,
    pub extensions: Extensions,
    /// Where to ask the host.
    pub questions: Questions,
    /// Mechanisms offered with AUTH.
    pub auth_mechanisms: AuthMechanisms,
    /// Offer AUTH before TLS (off: only after `tls_started`, RFC 4954
    /// section 4).
    pub auth_without_tls: bool,
    /// Until `tls_started`, every command but NOOP, EHLO, STARTTLS and
    /// QUIT gets 530 5.7.0 (RFC 3207 section 4).
    pub require_tls: bool,
    /// Failed AUTH commands a session allows: every AUTH command not
    /// answered 235 counts (refused, cancelled, malformed, mechanism not
    /// offered, out of sequence, before TLS), and the one that reaches the
    /// limit is answered `421 4.7.0` and the session closes. 0: no limit.
    pub max_auth_failures: u32,
}

impl Config {
    /// RFC 5321 section 4.5.3.1.6: a text line is at most 1000 octets with CRLF.
    pub const MIN_LINE_LENGTH: u32 = 1000;
    /// The documented default size limit (`--max-message-size`).
    pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 10_240_000;
    /// RFC 5321 section 4.5.3.1.8 asks servers to take at least 100.
    pub const DEFAULT_MAX_RECIPIENTS: u32 = 100;
    /// The hostname when none is configured.
    pub const DEFAULT_HOSTNAME: &'static str = "localhost";
    /// Failed AUTH commands before the session ends (`--max-auth-failures`).
    pub const DEFAULT_MAX_AUTH_FAILURES: u32 = 3;
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: Self::DEFAULT_HOSTNAME.to_string(),
            max_message_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
            max_recipients: Self::DEFAULT_MAX_RECIPIENTS,
            max_line_length: Self::MIN_LINE_LENGTH,
            extensions: Extensions::DEFAULT,
            questions: Questions::default(),
            auth_mechanisms: AuthMechanisms::default(),
            auth_without_tls: false,
            require_tls: false,
            max_auth_failures: Self::DEFAULT_MAX_AUTH_FAILURES,
        }
    }
}

/// The connecting client as the host sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub ip: String,
    pub port: u16,
}
