//! The envelope of one message transaction (RFC 5321 section 2.3.1), as
//! handed to the host with `Action::MessageBegin`.

use crate::prelude::*;

/// Content type declared with BODY= on MAIL (RFC 6152, RFC 3030).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyType {
    #[default]
    SevenBit,
    EightBitMime,
    BinaryMime,
}

/// RFC 3461 RET parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DsnReturn {
    Full,
    Headers,
}

/// One accepted forward-path with its RFC 3461 parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// Without angle brackets, exactly as written by the client.
    pub address: String,
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

/// Everything the host needs to store a message and write its trace headers.
/// Every string is free of CR, LF and NUL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The HELO/EHLO argument.
    pub helo: String,
    /// Without angle brackets; empty for the null reverse-path `<>`.
    pub reverse_path: String,
    pub recipients: Vec<Recipient>,
    /// RFC 3848 protocol name for the Received header.
    pub protocol: String,
    pub body: BodyType,
    pub smtputf8: bool,
    pub declared_size: Option<u64>,
    pub dsn_return: Option<DsnReturn>,
    pub dsn_envid: Option<String>,
    /// The TLS session the message came over, if any.
    pub tls: Option<TlsInfo>,
    /// The identity the client authenticated as (RFC 4954), if any.
    pub authenticated: Option<String>,
}

/// The TLS session the host established (wit/session.wit, `tls-info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3`, `TLSv1.2`.
    pub version: String,
    /// IANA cipher suite name, `TLS_AES_256_GCM_SHA384`.
    pub cipher: String,
}
