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
}

impl Config {
    /// RFC 5321 section 4.5.3.1.6: a text line is at most 1000 octets with CRLF.
    pub const MIN_LINE_LENGTH: u32 = 1000;
    /// The documented default size limit (`--max-message-size`).
    pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 10_240_000;
    /// RFC 5321 section 4.5.3.1.8 asks servers to take at least 100.
    pub const DEFAULT_MAX_RECIPIENTS: u32 = 100;
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: "localhost".to_string(),
            max_message_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
            max_recipients: Self::DEFAULT_MAX_RECIPIENTS,
            max_line_length: Self::MIN_LINE_LENGTH,
            extensions: Extensions::DEFAULT,
        }
    }
}

/// The connecting client as the host sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub ip: String,
    pub port: u16,
}
