//! One SMTP server session: bytes in, [`Action`]s out (sans-IO).
//!
//! # Questions
//!
//! At the steps the host asked for in [`Config::questions`], and always at
//! AUTH and at the end of a message, the session emits [`Action::Ask`] as
//! the last action of the call and parks: input it already has (a
//! pipelining client's next commands) is kept, nothing more is read or
//! replied, and [`Session::answer`] resumes it with the reply the host's
//! decision leads to. A step not asked is accepted inside the session,
//! exactly as if the host had answered accept.
//!
//! # Determinism
//!
//! Every decision is a function of the bytes seen so far and the host's
//! answers, never of how the bytes were split between `feed` calls: the
//! line reader, the DATA decoder and the BDAT reader all carry their state
//! across calls. Replies never name the client; the configured hostname
//! and a host's sanitised refusal text are the only host-supplied text in
//! them.
//!
//! # Memory bound
//!
//! Whatever the client sends, a session holds at most:
//! - one unfinished line: 1047 bytes of a command line (`line.rs`: the
//!   longest command line without AUTH, RCPT with DSN parameters, minus
//!   one octet), or 12,287 of a SASL response line when AUTH mechanisms
//!   are configured (RFC 4954), which also covers MAIL's 1180;
//! - the stash: input that arrived behind a question in the same `feed`
//!   call, so at most one call's input (the host must not feed while a
//!   question is pending; `answer` consumes the stash from its front);
//! - `max_recipients` recipients, each from one RCPT line of at most
//!   1048 bytes, plus one envelope from a MAIL line of at most 680 bytes
//!   (1180 when AUTH is offered: RFC 4954 section 5 adds 500);
//! - a few integers of DATA/BDAT state: content is never buffered, it
//!   leaves as `MessageData` in the call that delivered it.
//!
//! # Reply bound
//!
//! The `Send` bytes of one call total at most
//! [`MAX_REPLY_OCTETS_PER_INPUT_OCTET`] (64) times the octets of input the
//! call processes plus [`MAX_REPLY_OCTETS_PER_CALL_FIXED`] (4096): for
//! `feed` its input, for `answer` the input kept behind the question
//! (never more than the input of the `feed` that asked), for the other
//! calls none. Every command line, DATA end or BDAT chunk gets exactly one
//! reply (RFC 2920: in order, none skipped); see `limits.rs` for why the
//! figures hold. A client that keeps getting its commands wrong is closed
//! after [`MAX_PROTOCOL_ERRORS`] errors.
//!
//! # Failed messages
//!
//! `MessageAbort` comes when the client's content is over, not when the
//! message fails: with the failure reply at the real end of DATA, after
//! the failed BDAT chunk has been skipped. Between `MessageBegin` and
//! `Ask(MessageEnd)`/`MessageAbort` the client is sending content, which
//! is the span the host applies its data timeout to. No `MessageData`
//! follows a failure. RSET, QUIT, HELO/EHLO, `timeout` and `shutdown` (and
//! the error limit) abort an open message at once.

use crate::prelude::*;
use core::mem;

use crate::action::Action;
use crate::command;
use crate::config::{Config, PeerInfo};
use crate::dot::Decoded;
use crate::envelope::TlsInfo;
use crate::limits::{self, MAX_HOSTNAME, MAX_PROTOCOL_ERRORS, MAX_TLS_NAME};
#[cfg(doc)]
use crate::limits::{MAX_REPLY_OCTETS_PER_CALL_FIXED, MAX_REPLY_OCTETS_PER_INPUT_OCTET};
use crate::line::{LineEvent, LineReader};
use crate::outbox::Outbox;
use crate::phase::{Pending, Phase};
use crate::question::{Answer, Question};
use crate::reply::Reply;

mod answer;
#[cfg(test)]
mod bounds;
mod commands;

/// The server side of one SMTP connection.
#[derive(Debug)]
pub struct Session {
    config: Config,
    /// The TLS session, once `tls_started` (RFC 3207).
    tls: Option<TlsInfo>,
    /// The identity the host accepted at AUTH (RFC 4954).
    authenticated: Option<String>,
    /// `greeting` was called: TLS can no longer start implicitly.
    greeted: bool,
    phase: Phase,
    lines: LineReader,
    /// Input received behind a question, processed by `answer` from
    /// `stash_at` on.
    stash: Vec<u8>,
    stash_at: usize,
    /// Protocol errors so far (see [`MAX_PROTOCOL_ERRORS`]).
    errors: u32,
    /// AUTH commands answered other than 235 so far (see
    /// [`Config::max_auth_failures`]).
    auth_failures: u32,
}

impl Session {
    /// A session for a freshly accepted connection. The peer is accepted
    /// for the contract's sake but never used: replies must not depend on
    /// it, and the host writes it into trace headers itself.
    ///
    /// The configuration is made safe rather than trusted: a hostname is
    /// reduced to visible ASCII and cut to 255 octets (it is written into
    /// replies, whose length must stay bounded), and the line limit is
    /// raised to RFC 5321's 1000 octets if set lower.
    pub fn new(mut config: Config, _peer: PeerInfo) -> Session {
        config.hostname.retain(|c| c.is_ascii_graphic());
        config.hostname.truncate(MAX_HOSTNAME);
        if config.hostname.is_empty() {
            config.hostname = Config::DEFAULT_HOSTNAME.to_string();
        }
        config.max_line_length = config.max_line_length.max(Config::MIN_LINE_LENGTH);
        let lines = LineReader::new(limits::longest_line(&config));
        Session {
            config,
            tls: None,
            authenticated: None,
            greeted: false,
            phase: Phase::ExpectHello,
            lines,
            stash: Vec::new(),
            stash_at: 0,
            errors: 0,
            auth_failures: 0,
        }
    }

    /// `220 <hostname> ESMTP smtpcell` (no enhanced code, RFC 2034), or
    /// `Ask(Connect)` when the host decides it. Only the first call does
    /// anything.
    pub fn greeting(&mut self) -> Vec<Action> {
        let mut out = self.outbox();
        if !self.greeted && matches!(self.phase, Phase::ExpectHello) {
            self.greeted = true;
            if self.config.questions.connect {
                self.ask(Pending::Connect, Question::Connect, &mut out);
            } else {
                out.reply(&Reply::greeting(&self.config.hostname));
            }
        }
        out.finish()
    }

    /// Bytes from the client, split anywhere.
    pub fn feed(&mut self, input: &[u8]) -> Vec<Action> {
        let mut out = self.outbox();
        if let Phase::Asking(_) = self.phase {
            // The host broke the contract by feeding now; the input is
            // kept for `answer`, which grows the stash only by what it fed.
            self.stash.extend_from_slice(input);
            return out.finish();
        }
        let used = self.process(input, &mut out);
        if let Phase::Asking(_) = self.phase {
            self.stash = input[used..].to_vec();
            self.stash_at = 0;
        }
        out.finish()
    }

    /// The host's decision on the pending question: the reply it leads to,
    /// then whatever input had arrived behind it (which may ask again).
    /// Without a pending question this does nothing.
    pub fn answer(&mut self, answer: Answer) -> Vec<Action> {
        let mut out = self.outbox();
        let pending = match mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Asking(pending) => pending,
            other => {
                self.phase = other;
                return out.finish();
            }
        };
        self.resolve(pending, answer, &mut out);
        let stash = mem::take(&mut self.stash);
        let at = mem::take(&mut self.stash_at);
        let used = self.process(&stash[at..], &mut out);
        if let Phase::Asking(_) = self.phase
            && at + used < stash.len()
        {
            self.stash = stash;
            self.stash_at = at + used;
        }
        out.finish()
    }

    /// The host finished the TLS handshake asked for with `StartTls`, or,
    /// for implicit TLS (RFC 8314), before `greeting`. The session forgets
    /// the HELO name and any AUTH and starts over (RFC 3207 section 4.2);
    /// there is no new greeting.
    pub fn tls_started(&mut self, tls: TlsInfo) -> Vec<Action> {
        let implicit = !self.greeted && matches!(self.phase, Phase::ExpectHello);
        if matches!(self.phase, Phase::AwaitTls) || implicit {
            // They go into the envelope, whose strings are promised free of
            // CR, LF and NUL and bounded: kept to visible ASCII and cut.
            let name = |mut s: String| {
                s.retain(|c| c.is_ascii_graphic());
                s.truncate(MAX_TLS_NAME);
                s
            };
            self.tls = Some(TlsInfo { version: name(tls.version), cipher: name(tls.cipher) });
            self.authenticated = None;
            self.phase = Phase::ExpectHello;
            self.lines.clear();
        }
        Vec::new()
    }

    /// The client was silent too long: 421 4.4.2, close.
    pub fn timeout(&mut self) -> Vec<Action> {
        let reply = Reply::timeout(&self.config.hostname);
        self.close_with(&reply)
    }

    /// The host is shutting down: 421 4.3.2, close; an open message is
    /// aborted, a pending question dropped.
    pub fn shutdown(&mut self) -> Vec<Action> {
        let reply = Reply::shutting_down(&self.config.hostname);
        self.close_with(&reply)
    }

    fn outbox(&self) -> Outbox {
        Outbox::new(self.config.extensions.enhancedstatuscodes, self.errors)
    }

    /// Parks on `pending` and asks `question`: the call's last action.
    fn ask(&mut self, pending: Pending, question: Question, out: &mut Outbox) {
        self.phase = Phase::Asking(pending);
        out.push(Action::Ask(question));
    }

    /// Answers an AUTH command that ends without 235 (refused, cancelled,
    /// malformed, out of sequence): its own reply, or, when it is the
    /// failure that reaches `max_auth_failures`, 421 4.7.0 and close. The
    /// caller has left the session in the phase it goes on in.
    fn auth_failed(&mut self, reply: &Reply, out: &mut Outbox) {
        self.auth_failures = self.auth_failures.saturating_add(1);
        let max = self.config.max_auth_failures;
        if max != 0 && self.auth_failures >= max {
            let reply = Reply::too_many_auth_failures(&self.config.hostname);
            self.close(&reply, out);
        } else {
            out.reply(reply);
        }
    }

    fn close_with(&mut self, reply: &Reply) -> Vec<Action> {
        let mut out = self.outbox();
        if !matches!(self.phase, Phase::Closed) {
            self.close(reply, &mut out);
        }
        out.finish()
    }

    fn close(&mut self, reply: &Reply, out: &mut Outbox) {
        if self.phase.message_open() {
            out.abort_message();
        }
        out.reply(reply);
        out.push(Action::Close);
        self.phase = Phase::Closed;
        self.stash = Vec::new();
        self.stash_at = 0;
        self.lines.clear();
    }

    /// Runs input through whichever reader the phase calls for, then closes
    /// the session if the client has made too many errors. Returns the
    /// octets used: all of them, unless a question parked the session.
    fn process(&mut self, input: &[u8], out: &mut Outbox) -> usize {
        let used = self.read(input, out);
        self.errors = out.errors();
        used
    }

    fn read(&mut self, input: &[u8], out: &mut Outbox) -> usize {
        let mut rest = input;
        while !rest.is_empty() {
            let consumed = match &mut self.phase {
                // STARTTLS: plaintext pipelined behind it is dropped, never
                // executed after the handshake (CVE-2011-0411).
                Phase::Closed | Phase::AwaitTls => return input.len(),
                // Input behind a question waits for the answer.
                Phase::Asking(_) => return input.len() - rest.len(),
                Phase::ReadingData { .. } => self.read_data(rest, out),
                Phase::ReadingChunk { .. } | Phase::SkippingChunk { .. } => self.read_chunk(rest, out),
                _ => {
                    let (consumed, event) = self.lines.read(rest);
                    if let Some(event) = event {
                        self.line(event, out);
                    }
                    consumed
                }
            };
            rest = &rest[consumed..];
            if out.errors() >= MAX_PROTOCOL_ERRORS && !matches!(self.phase, Phase::Closed) {
                let reply = Reply::too_many_errors(&self.config.hostname);
                self.close(&reply, out);
                return input.len();
            }
        }
        input.len()
    }

    fn read_data(&mut self, input: &[u8], out: &mut Outbox) -> usize {
        let Phase::ReadingData { decoder, .. } = &mut self.phase else {
            return 0;
        };
        let failed_before = decoder.fault().is_some();
        // Content never outgrows its input plus a CR held back from the
        // previous call (see dot.rs): one allocation per call.
        let mut content = Vec::with_capacity(if failed_before { 0 } else { input.len() + 1 });
        let decoded = decoder.decode(input, &mut content);
        out.data(content);
        match decoded {
            Decoded::Partial => input.len(),
            Decoded::End(consumed) => {
                if let Phase::ReadingData { hello, decoder } = mem::replace(&mut self.phase, Phase::Closed) {
                    match decoder.fault() {
                        Some(fault) => {
                            // The client's content is over only now.
                            out.abort_message();
                            out.reply(&fault.reply());
                            self.phase = Phase::ExpectMail(hello);
                        }
                        None => self.ask(Pending::MessageEnd(hello), Question::MessageEnd, out),
                    }
                }
                consumed
            }
        }
    }

    /// Reads (or skips) chunk bytes; finishes the chunk when it is complete,
    /// which an empty input does at once for `BDAT 0`.
    fn read_chunk(&mut self, input: &[u8], out: &mut Outbox) -> usize {
        let (consumed, done) = match &mut self.phase {
            Phase::ReadingChunk { reader, .. } => {
                let bytes = reader.take(input);
                out.data(bytes.to_vec());
                (bytes.len(), reader.is_done())
            }
            Phase::SkippingChunk { reader, .. } => (reader.take(input).len(), reader.is_done()),
            _ => return 0,
        };
        if done {
            match mem::replace(&mut self.phase, Phase::Closed) {
                Phase::ReadingChunk { mut chunking, size, last, .. } => {
                    chunking.received += size;
                    if last {
                        self.ask(Pending::MessageEnd(chunking.hello), Question::MessageEnd, out);
                    } else {
                        out.reply(&Reply::chunk_received(size));
                        self.phase = Phase::ExpectChunk(chunking);
                    }
                }
                Phase::SkippingChunk { reply, then, abort, .. } => {
                    if abort {
                        out.abort_message();
                    }
                    out.reply(&reply);
                    self.phase = *then;
                }
                other => self.phase = other,
            }
        }
        consumed
    }

    fn line(&mut self, event: LineEvent, out: &mut Outbox) {
        if let Phase::AuthResponse { .. } = self.phase {
            return self.auth_response(event, out);
        }
        match event {
            LineEvent::TooLong => out.reply(&Reply::LINE_TOO_LONG),
            LineEvent::BareLf => out.reply(&Reply::BARE_LF_IN_COMMAND),
            LineEvent::Line(line) if line.len() + 2 > limits::command_line(&line, &self.config) => {
                out.reply(&Reply::LINE_TOO_LONG)
            }
            LineEvent::Line(line) => match command::parse(&line) {
                Ok(command) => self.execute(command, out),
                // `AUTH` without a mechanism is a failed AUTH command too.
                Err(reply) if reply == Reply::SYNTAX_AUTH && self.config.auth_mechanisms.any() => {
                    self.auth_failed(&reply, out)
                }
                Err(reply) => out.reply(&reply),
            },
        }
    }
}
