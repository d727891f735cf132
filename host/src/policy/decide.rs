//! The `Policy` trait: one async decision per question of wit/session.wit.
//!
//! Decisions are futures because the real ones wait on the world (a DNS
//! lookup for SPF, a database for recipients, a rate-limit store); they
//! are boxed so that one server can hold any policy as `Arc<dyn Policy>`.
//! A question the policy does not list in [`Policy::questions`] is never
//! asked (the guest accepts it itself, at no cost), so the defaults of
//! `connect`, `helo`, `mail` and `rcpt` only matter for a policy that asks
//! and then does not override. `end_of_data` is called for every message,
//! and `auth` whenever AUTH is offered (when [`Policy::auth_mechanisms`]
//! names any).

use std::future::{Future, ready};
use std::pin::Pin;

use smtp_core::{
    Answer, AuthMechanisms, Credentials, Envelope, Hello, MailRequest, Question, Questions, RcptRequest, Reason,
};

use super::client::Client;
use crate::spool::Destination;

/// A decision in progress.
pub type Decision<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

/// The decision at the end of a message, before it is stored: refuse it
/// (nothing is stored), or accept it with the header fields decided now
/// (RFC 8601 Authentication-Results, RFC 7208 Received-SPF: each ending in
/// CRLF, written above our Received field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndOfData {
    Accept { headers: Vec<u8> },
    Refuse(smtp_core::Refusal),
}

/// What a connection holds for as long as it lasts once admitted (a
/// concurrency slot, released when dropped).
pub type Admission = Box<dyn Send + Sync>;

/// Why a new connection is turned away before its session starts: the
/// host answers `421 4.7.0 <hostname> <why>, try again later` and closes,
/// as for its own connection limits (no sandbox is created for a client
/// refused at the door).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Turnaway {
    /// Lower case, without a full stop: `too many connections from your network`.
    pub why: &'static str,
}

/// An end-of-data decision in progress.
pub type EndOfDataDecision<'a> = Pin<Box<dyn Future<Output = EndOfData> + Send + 'a>>;

/// Checks of one message's content (DKIM and what builds on it), made at
/// `message-begin` by [`Policy::message_checks`]: the content passes
/// through on its way to storage, and the checks decide the end of data
/// before the policy's [`Policy::end_of_data`] does.
pub trait MessageChecks: Send {
    /// Content octets (dot-unstuffed), in order; `store` gets the octets to
    /// store, in order (the checks may hold some back, and may drop header
    /// fields).
    fn write(&mut self, bytes: &[u8], store: &mut dyn FnMut(&[u8]));

    /// The end of the content: `store` gets whatever is still held.
    fn finish(&mut self, store: &mut dyn FnMut(&[u8]));

    /// Refuse the message, or accept it with header fields for the top of
    /// the stored message (as [`EndOfData::Accept`]'s).
    fn decide<'a>(self: Box<Self>, client: &'a Client, envelope: &'a Envelope) -> EndOfDataDecision<'a>;
}

fn decided<'a>(answer: Answer) -> Decision<'a> {
    Box::pin(ready(answer))
}

/// The host's decisions. Every method has a default: accept, except AUTH,
/// which is refused until a policy checks credentials (closed by default).
pub trait Policy: Send + Sync + 'static {
    /// The steps the guest asks about (wit/session.wit `questions`); AUTH
    /// and the end of a message are always asked.
    fn questions(&self) -> Questions {
        Questions::default()
    }

    /// A client's connection, before its session starts (after a PROXY
    /// header, so `client` is the real client): rate limits on connections.
    /// The admission is held until the connection ends.
    fn admit(&self, client: &Client) -> Result<Option<Admission>, Turnaway> {
        let _ = client;
        Ok(None)
    }

    /// A client connected; refusing gives it 554 (only QUIT is served) or,
    /// temporarily, 421 and close.
    fn connect<'a>(&'a self, client: &'a Client) -> Decision<'a> {
        let _ = client;
        decided(Answer::ACCEPT)
    }

    /// HELO/EHLO.
    fn helo<'a>(&'a self, client: &'a Client, hello: &'a Hello) -> Decision<'a> {
        let _ = (client, hello);
        decided(Answer::ACCEPT)
    }

    /// MAIL: the reverse-path and its parameters.
    fn mail<'a>(&'a self, client: &'a Client, mail: &'a MailRequest) -> Decision<'a> {
        let _ = (client, mail);
        decided(Answer::ACCEPT)
    }

    /// One RCPT.
    fn rcpt<'a>(&'a self, client: &'a Client, rcpt: &'a RcptRequest) -> Decision<'a> {
        let _ = (client, rcpt);
        decided(Answer::ACCEPT)
    }

    /// The decision on `question` when it can be taken now, without
    /// waiting (no I/O, no timer, no lock held for long): the connection
    /// then answers with it at once, without boxing a decision future or
    /// arming the decision's timeout. Asked before [`Policy::mail`] and
    /// [`Policy::rcpt`], for MAIL and RCPT only. Only acceptances, and only
    /// with every effect the asynchronous method would have (a rate limit
    /// counted): `None` (the default) leaves the question to the
    /// asynchronous method, so a refusal, and the host's bookkeeping of it,
    /// stays in one place. `None` must have changed nothing.
    fn decide_now(&self, client: &Client, question: &Question) -> Option<Answer> {
        let _ = (client, question);
        None
    }

    /// Where an accepted recipient's copies go (asked at `message-begin`,
    /// for each forward-path of the envelope, of the policy that accepted
    /// it): the one Maildir unless the policy has a recipients table.
    fn destinations(&self, client: &Client, forward_path: &str) -> Vec<Destination> {
        let _ = (client, forward_path);
        vec![Destination::Inbox]
    }

    /// The SASL mechanisms whose credentials [`Policy::auth`] checks; none
    /// (the default) means AUTH is not offered.
    fn auth_mechanisms(&self) -> AuthMechanisms {
        AuthMechanisms::default()
    }

    /// AUTH with decoded credentials. Never log `credentials.secret`.
    fn auth<'a>(&'a self, client: &'a Client, credentials: &'a Credentials) -> Decision<'a> {
        let _ = (client, credentials);
        decided(Answer::refuse(Reason::AuthFailed, true))
    }

    /// The checks of a message's content, if any (the default: none, the
    /// content goes straight to storage).
    fn message_checks(&self, client: &Client, envelope: &Envelope) -> Option<Box<dyn MessageChecks>> {
        let _ = (client, envelope);
        None
    }

    /// The message's content is complete (`content_size` octets); it is
    /// stored after an accept.
    fn end_of_data<'a>(
        &'a self,
        client: &'a Client,
        envelope: &'a Envelope,
        content_size: u64,
    ) -> EndOfDataDecision<'a> {
        let _ = (client, envelope, content_size);
        Box::pin(ready(EndOfData::Accept { headers: Vec::new() }))
    }
}
