//! The host's decisions (wit/session.wit, `question` and `answer`): the
//! session asks at the steps the configuration names (and always at AUTH
//! and at the end of a message), parks with whatever input it already has,
//! and resumes when the host answers. The session renders every answer
//! into protocol text itself (`refusal.rs`), so the host never writes a
//! reply.

use crate::envelope::{BodyType, DsnReturn, Recipient};
use crate::limits::MAX_IDENTITY;
use crate::prelude::*;
use crate::refusal::sanitise;
use core::fmt;

/// A step the host decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Question {
    /// Before the greeting: may this client talk to us?
    Connect,
    /// HELO or EHLO, syntax checked.
    Helo(Hello),
    /// MAIL, syntax and parameters checked.
    Mail(MailRequest),
    /// One RCPT, syntax, parameters and the recipient limit checked.
    Rcpt(RcptRequest),
    /// AUTH with the decoded credentials (RFC 4954).
    Auth(Credentials),
    /// The content announced by `MessageBegin` is complete: make it durable
    /// and accept with the queue id, or refuse.
    MessageEnd,
}

impl Question {
    /// The step's name, as wit/session.wit spells the case.
    pub fn name(&self) -> &'static str {
        match self {
            Question::Connect => "connect",
            Question::Helo(_) => "helo",
            Question::Mail(_) => "mail",
            Question::Rcpt(_) => "rcpt",
            Question::Auth(_) => "auth",
            Question::MessageEnd => "message-end",
        }
    }
}

/// What HELO or EHLO said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The domain or address literal, as sent (visible ASCII, at most 255).
    pub domain: String,
    /// EHLO rather than HELO.
    pub extended: bool,
}

/// MAIL: the reverse-path and every parameter (RFC 5321 section 4.1.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailRequest {
    /// This session's HELO/EHLO domain (SPF's HELO identity, RFC 7208 2.3).
    pub helo: String,
    /// Without angle brackets; empty for `<>`.
    pub reverse_path: String,
    pub body: BodyType,
    pub smtputf8: bool,
    pub declared_size: Option<u64>,
    pub dsn_return: Option<DsnReturn>,
    pub dsn_envid: Option<String>,
}

/// RCPT: one recipient of the transaction being built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptRequest {
    /// The transaction's reverse-path (empty for `<>`).
    pub reverse_path: String,
    pub recipient: Recipient,
    /// Recipients already accepted in this transaction.
    pub accepted: u32,
}

/// The decoded credentials of one SASL exchange. `Debug` never shows the
/// secret: a log line of a question must not leak a password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `PLAIN` or `LOGIN`.
    pub mechanism: String,
    /// RFC 4616 authzid; empty when the client gave none.
    pub authorization_id: String,
    /// RFC 4616 authcid.
    pub authentication_id: String,
    /// The password.
    pub secret: String,
}

impl Credentials {
    /// The identity the session acts as once these are accepted (RFC 4954
    /// section 4): the authorization identity when one was given, else the
    /// authentication identity.
    pub fn identity(&self) -> &str {
        if self.authorization_id.is_empty() { &self.authentication_id } else { &self.authorization_id }
    }

    /// The identity recorded when the host accepts these with `text`
    /// (wit/session.wit, `answer`): the host's text reduced to printable
    /// ASCII (at most 200 octets) when anything is left of it, else
    /// [`Credentials::identity`]; either way at most 255 octets. The
    /// session records this, and a host that keeps its own view of the
    /// client uses the same rule.
    pub fn authenticated_as(&self, text: Option<&str>) -> String {
        recorded_identity(text, self.identity())
    }
}

/// [`Credentials::authenticated_as`] for a session that kept only the
/// client's identity, not the secret, while the host decided.
pub(crate) fn recorded_identity(text: Option<&str>, client: &str) -> String {
    let named = text.map(sanitise).filter(|t| !t.is_empty());
    let mut identity = named.unwrap_or_else(|| client.to_string());
    identity.truncate(identity.floor_char_boundary(MAX_IDENTITY));
    identity
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("mechanism", &self.mechanism)
            .field("authorization_id", &self.authorization_id)
            .field("authentication_id", &self.authentication_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The host's decision on the pending question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Go ahead. At `MessageEnd` the text is the queue id; at `Auth` the
    /// identity to record; elsewhere it is ignored.
    Accept(Option<String>),
    Refuse(Refusal),
}

impl Answer {
    /// Accept without text.
    pub const ACCEPT: Answer = Answer::Accept(None);

    /// Refuse for `reason`, temporarily or for good, with no host text.
    pub fn refuse(reason: Reason, permanent: bool) -> Answer {
        Answer::Refuse(Refusal { reason, permanent, text: None, disconnect: false })
    }
}

/// A refusal: why, for how long, and an optional short explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    /// 5xx rather than 4xx (ignored by reasons that are only ever one).
    pub permanent: bool,
    /// Appended to the reply text once sanitised (printable ASCII, at most
    /// [`crate::limits::MAX_HOST_TEXT`] octets).
    pub text: Option<String>,
    /// End the session: 421 with the reason's temporary enhanced code and
    /// the server's name, then close (RFC 5321 section 3.8).
    pub disconnect: bool,
}

/// Why the host refuses (wit/session.wit, `reason`). The reply each gets
/// at each step is in `refusal.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    RelayDenied,
    NoSuchUser,
    MailboxFull,
    SenderRefused,
    Policy,
    Greylisted,
    RateLimited,
    AuthFailed,
    AuthRequired,
    EncryptionRequired,
    StorageFull,
    LocalError,
}

impl Reason {
    /// Every reason, in the order of the WIT enum.
    pub const ALL: [Reason; 12] = [
        Reason::RelayDenied,
        Reason::NoSuchUser,
        Reason::MailboxFull,
        Reason::SenderRefused,
        Reason::Policy,
        Reason::Greylisted,
        Reason::RateLimited,
        Reason::AuthFailed,
        Reason::AuthRequired,
        Reason::EncryptionRequired,
        Reason::StorageFull,
        Reason::LocalError,
    ];

    /// The WIT name (`relay-denied`, ...), for transcripts and logs.
    pub fn name(self) -> &'static str {
        match self {
            Reason::RelayDenied => "relay-denied",
            Reason::NoSuchUser => "no-such-user",
            Reason::MailboxFull => "mailbox-full",
            Reason::SenderRefused => "sender-refused",
            Reason::Policy => "policy",
            Reason::Greylisted => "greylisted",
            Reason::RateLimited => "rate-limited",
            Reason::AuthFailed => "auth-failed",
            Reason::AuthRequired => "auth-required",
            Reason::EncryptionRequired => "encryption-required",
            Reason::StorageFull => "storage-full",
            Reason::LocalError => "local-error",
        }
    }

    /// The reason named `name` (the inverse of [`Reason::name`]).
    pub fn from_name(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.name() == name)
    }
}
