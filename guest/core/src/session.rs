//! One SMTP server session: bytes in, [`Action`]s out (sans-IO).
//!
//! # Determinism
//!
//! Every decision is a function of the bytes seen so far, never of how they
//! were split between `feed` calls: the line reader, the DATA decoder and
//! the BDAT reader all carry their state across calls. Replies never name
//! the client; the configured hostname is the only host-supplied text in
//! them.
//!
//! # Memory bound
//!
//! Whatever the client sends, a session holds at most:
//! - 1047 bytes of an unfinished command line (`line.rs`: the longest
//!   command line, RCPT with DSN parameters, minus one octet);
//! - the stash: input that arrived after `MessageEnd` in the same `feed`
//!   call, so at most one call's input (the host must not feed while a
//!   verdict is pending; `complete` only ever re-stashes a suffix of it);
//! - `max_recipients` recipients, each from one command line of at most
//!   1048 bytes, plus one envelope from a line of at most 680 bytes;
//! - a few integers of DATA/BDAT state: content is never buffered, it
//!   leaves as `MessageData` in the call that delivered it.
//!
//! # Reply bound
//!
//! The `Send` bytes of one call total at most
//! [`MAX_REPLY_OCTETS_PER_INPUT_OCTET`] (64) times the octets of input the
//! call processes plus [`MAX_REPLY_OCTETS_PER_CALL_FIXED`] (4096): for
//! `feed` its input, for `complete` the input kept behind the message
//! (never more than the input of the `feed` that returned `MessageEnd`),
//! for the other calls none. Every command line, DATA end or BDAT chunk
//! gets exactly one reply (RFC 2920: in order, none skipped); see
//! `limits.rs` for why the figures hold. A client that keeps getting its
//! commands wrong is closed after [`MAX_PROTOCOL_ERRORS`] errors.
//!
//! # Failed messages
//!
//! `MessageAbort` comes when the client's content is over, not when the
//! message fails: with the failure reply at the real end of DATA, after
//! the failed BDAT chunk has been skipped. Between `MessageBegin` and
//! `MessageEnd`/`MessageAbort` the client is sending content, which is
//! the span the host applies its data timeout to. No `MessageData` follows
//! a failure. RSET, QUIT, HELO/EHLO, `timeout` and `shutdown` (and the
//! error limit) abort an open message at once.

use crate::prelude::*;
use core::mem;

use crate::action::{Action, Verdict};
use crate::address::{ForwardPath, ReversePath};
use crate::bdat::ChunkReader;
use crate::command::{self, Command};
use crate::config::{Config, PeerInfo};
use crate::dot::{Decoded, DotDecoder};
use crate::ehlo;
use crate::envelope::{BodyType, Envelope, Recipient};
use crate::limits::{self, MAX_HOSTNAME, MAX_PROTOCOL_ERRORS};
#[cfg(doc)]
use crate::limits::{MAX_REPLY_OCTETS_PER_CALL_FIXED, MAX_REPLY_OCTETS_PER_INPUT_OCTET};
use crate::line::{LineEvent, LineReader};
use crate::outbox::Outbox;
use crate::params;
use crate::phase::{Chunking, Hello, Phase, Transaction};
use crate::reply::Reply;

#[cfg(test)]
mod bounds;

/// The server side of one SMTP connection.
#[derive(Debug)]
pub struct Session {
    config: Config,
    /// TLS is active (after `tls_started`, RFC 3207).
    tls: bool,
    phase: Phase,
    lines: LineReader,
    /// Input received after `MessageEnd`, processed by `complete`.
    stash: Vec<u8>,
    /// Protocol errors so far (see [`MAX_PROTOCOL_ERRORS`]).
    errors: u32,
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
            config.hostname = "localhost".to_string();
        }
        config.max_line_length = config.max_line_length.max(Config::MIN_LINE_LENGTH);
        let lines = LineReader::new(limits::longest_command_line(&config.extensions));
        Session { config, tls: false, phase: Phase::ExpectHello, lines, stash: Vec::new(), errors: 0 }
    }

    /// `220 <hostname> ESMTP smtpcell`, without enhanced code (RFC 2034).
    pub fn greeting(&mut self) -> Vec<Action> {
        let mut out = self.outbox();
        if !matches!(self.phase, Phase::Closed) {
            out.reply(&Reply::greeting(&self.config.hostname));
        }
        out.finish()
    }

    /// Bytes from the client, split anywhere.
    pub fn feed(&mut self, input: &[u8]) -> Vec<Action> {
        let mut out = self.outbox();
        self.process(input, &mut out);
        out.finish()
    }

    /// The host's verdict on the message it was handed with `MessageEnd`:
    /// the final reply, then whatever input had arrived behind the message.
    /// Without a pending message this does nothing.
    pub fn complete(&mut self, verdict: Verdict) -> Vec<Action> {
        let mut out = self.outbox();
        let hello = match mem::replace(&mut self.phase, Phase::Closed) {
            Phase::AwaitVerdict(hello) => hello,
            other => {
                self.phase = other;
                return out.finish();
            }
        };
        self.phase = Phase::ExpectMail(hello);
        out.reply(&match verdict {
            Verdict::Accepted(id) => Reply::queued(&id),
            Verdict::InsufficientStorage => Reply::INSUFFICIENT_STORAGE,
            Verdict::TemporaryFailure => Reply::TEMPORARY_FAILURE,
            Verdict::PermanentFailure => Reply::PERMANENT_FAILURE,
        });
        let stash = mem::take(&mut self.stash);
        self.process(&stash, &mut out);
        out.finish()
    }

    /// The host finished the TLS handshake asked for with `StartTls`. The
    /// session forgets the HELO name and starts over (RFC 3207 section 4.2);
    /// there is no new greeting.
    pub fn tls_started(&mut self) -> Vec<Action> {
        if matches!(self.phase, Phase::AwaitTls) {
            self.tls = true;
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
    /// aborted.
    pub fn shutdown(&mut self) -> Vec<Action> {
        let reply = Reply::shutting_down(&self.config.hostname);
        self.close_with(&reply)
    }

    fn outbox(&self) -> Outbox {
        Outbox::new(self.config.extensions.enhancedstatuscodes, self.errors)
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
        self.lines.clear();
    }

    /// Runs input through whichever reader the phase calls for, then closes
    /// the session if the client has made too many errors.
    fn process(&mut self, input: &[u8], out: &mut Outbox) {
        self.read(input, out);
        self.errors = out.errors();
    }

    fn read(&mut self, mut input: &[u8], out: &mut Outbox) {
        while !input.is_empty() {
            let consumed = match &mut self.phase {
                // STARTTLS: plaintext pipelined behind it is dropped, never
                // executed after the handshake (CVE-2011-0411).
                Phase::Closed | Phase::AwaitTls => return,
                // Input behind a message waits for its verdict. (A host that
                // breaks the contract and feeds now only grows this by what
                // it feeds.)
                Phase::AwaitVerdict(_) => {
                    self.stash.extend_from_slice(input);
                    return;
                }
                Phase::ReadingData { .. } => self.read_data(input, out),
                Phase::ReadingChunk { .. } | Phase::SkippingChunk { .. } => self.read_chunk(input, out),
                _ => {
                    let (consumed, event) = self.lines.read(input);
                    if let Some(event) = event {
                        self.line(event, out);
                    }
                    consumed
                }
            };
            input = &input[consumed..];
            if out.errors() >= MAX_PROTOCOL_ERRORS && !matches!(self.phase, Phase::Closed) {
                let reply = Reply::too_many_errors(&self.config.hostname);
                self.close(&reply, out);
                return;
            }
        }
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
                    self.phase = match decoder.fault() {
                        Some(fault) => {
                            // The client's content is over only now.
                            out.abort_message();
                            out.reply(&fault.reply());
                            Phase::ExpectMail(hello)
                        }
                        None => {
                            out.push(Action::MessageEnd);
                            Phase::AwaitVerdict(hello)
                        }
                    };
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
            self.phase = match mem::replace(&mut self.phase, Phase::Closed) {
                Phase::ReadingChunk { mut chunking, size, last, .. } => {
                    chunking.received += size;
                    if last {
                        out.push(Action::MessageEnd);
                        Phase::AwaitVerdict(chunking.hello)
                    } else {
                        out.reply(&Reply::chunk_received(size));
                        Phase::ExpectChunk(chunking)
                    }
                }
                Phase::SkippingChunk { reply, then, abort, .. } => {
                    if abort {
                        out.abort_message();
                    }
                    out.reply(&reply);
                    *then
                }
                other => other,
            };
        }
        consumed
    }

    fn line(&mut self, event: LineEvent, out: &mut Outbox) {
        match event {
            LineEvent::TooLong => out.reply(&Reply::LINE_TOO_LONG),
            LineEvent::BareLf => out.reply(&Reply::BARE_LF_IN_COMMAND),
            LineEvent::Line(line) if line.len() + 2 > limits::command_line(&line, &self.config.extensions) => {
                out.reply(&Reply::LINE_TOO_LONG)
            }
            LineEvent::Line(line) => match command::parse(&line) {
                Ok(command) => self.execute(command, out),
                Err(reply) => out.reply(&reply),
            },
        }
    }

    fn execute(&mut self, command: Command<'_>, out: &mut Outbox) {
        let ext = self.config.extensions;
        match command {
            Command::Helo(name) => self.hello(name, false, out),
            Command::Ehlo(name) => self.hello(name, true, out),
            Command::Mail { path, params } => self.mail(path, params, out),
            Command::Rcpt { path, params } => self.rcpt(path, params, out),
            Command::Data => self.data(out),
            Command::Bdat { size, last } if ext.chunking => self.bdat(size, last, out),
            Command::Rset => self.rset(out),
            Command::Noop => out.reply(&Reply::OK),
            Command::Quit => self.close(&Reply::BYE, out),
            Command::Help if ext.help => {
                out.reply(&Reply::help(&ehlo::help_commands(&self.config, self.tls)));
            }
            Command::Vrfy => out.reply(&Reply::CANNOT_VRFY),
            Command::StartTls if ext.starttls => self.starttls(out),
            Command::Bdat { .. } | Command::Help | Command::StartTls | Command::Expn | Command::NotImplemented => {
                out.reply(&Reply::NOT_IMPLEMENTED)
            }
        }
    }

    /// HELO/EHLO: always allowed; resets any transaction (RFC 5321 4.1.4).
    fn hello(&mut self, name: &str, extended: bool, out: &mut Outbox) {
        if self.phase.message_open() {
            out.abort_message();
        }
        self.phase = Phase::ExpectMail(Hello { name: name.to_string(), extended });
        if extended {
            out.multiline(250, &ehlo::ehlo_lines(&self.config, self.tls));
        } else {
            out.reply(&Reply::helo(&self.config.hostname));
        }
    }

    fn mail(&mut self, path: ReversePath, params: &str, out: &mut Outbox) {
        self.phase = match mem::replace(&mut self.phase, Phase::Closed) {
            Phase::ExpectMail(hello) => match self.envelope(&hello, path, params) {
                Ok(envelope) => {
                    out.reply(&Reply::MAIL_OK);
                    Phase::ExpectRcpt(Transaction { hello, envelope })
                }
                Err(reply) => {
                    out.reply(&reply);
                    Phase::ExpectMail(hello)
                }
            },
            Phase::ExpectHello => {
                out.reply(&Reply::NEED_HELO);
                Phase::ExpectHello
            }
            other => {
                out.reply(&Reply::NESTED_MAIL);
                other
            }
        };
    }

    /// Everything MAIL decides: the envelope minus its recipients.
    fn envelope(&self, hello: &Hello, path: ReversePath, params: &str) -> Result<Envelope, Reply> {
        let ext = &self.config.extensions;
        let params = params::mail(params, ext, self.config.max_message_size)?;
        let reverse_path = match path {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(mailbox) if mailbox.is_ascii() || params.smtputf8 => mailbox.as_str().to_string(),
            ReversePath::Mailbox(_) => return Err(Reply::NON_ASCII_ADDRESS),
        };
        Ok(Envelope {
            helo: hello.name.clone(),
            reverse_path,
            recipients: Vec::new(),
            protocol: self.protocol(hello, params.smtputf8),
            body: params.body.unwrap_or_default(),
            smtputf8: params.smtputf8,
            declared_size: params.size,
            dsn_return: params.ret,
            dsn_envid: params.envid,
        })
    }

    /// RFC 3848 and RFC 6531 section 3.7.3 protocol names. HELO gives
    /// plain `SMTP` (there is no registered name for HELO over TLS).
    fn protocol(&self, hello: &Hello, smtputf8: bool) -> String {
        let tls = if self.tls { "S" } else { "" };
        match (smtputf8, hello.extended) {
            (true, _) => format!("UTF8SMTP{tls}"),
            (false, true) => format!("ESMTP{tls}"),
            (false, false) => "SMTP".to_string(),
        }
    }

    fn rcpt(&mut self, path: ForwardPath, params: &str, out: &mut Outbox) {
        let (reply, phase) = match mem::replace(&mut self.phase, Phase::Closed) {
            Phase::ExpectRcpt(mut txn) | Phase::ExpectContent(mut txn) => {
                match self.recipient(&txn.envelope, path, params) {
                    Ok(recipient) => {
                        txn.envelope.recipients.push(recipient);
                        (Reply::RCPT_OK, Phase::ExpectContent(txn))
                    }
                    Err(reply) if txn.envelope.recipients.is_empty() => (reply, Phase::ExpectRcpt(txn)),
                    Err(reply) => (reply, Phase::ExpectContent(txn)),
                }
            }
            Phase::ExpectHello => (Reply::NEED_HELO, Phase::ExpectHello),
            Phase::ExpectMail(hello) => (Reply::NEED_MAIL, Phase::ExpectMail(hello)),
            other => (Reply::RCPT_AFTER_BDAT, other),
        };
        out.reply(&reply);
        self.phase = phase;
    }

    fn recipient(&self, envelope: &Envelope, path: ForwardPath, params: &str) -> Result<Recipient, Reply> {
        if envelope.recipients.len() >= self.config.max_recipients as usize {
            return Err(Reply::TOO_MANY_RECIPIENTS);
        }
        let params = params::rcpt(params, &self.config.extensions)?;
        if !path.is_ascii() && !envelope.smtputf8 {
            return Err(Reply::NON_ASCII_ADDRESS);
        }
        Ok(Recipient { address: path.as_str().to_string(), notify: params.notify, orcpt: params.orcpt })
    }

    fn data(&mut self, out: &mut Outbox) {
        let (reply, phase) = match mem::replace(&mut self.phase, Phase::Closed) {
            Phase::ExpectContent(txn) if txn.envelope.body == BodyType::BinaryMime => {
                (Reply::BINARYMIME_NEEDS_BDAT, Phase::ExpectContent(txn))
            }
            Phase::ExpectContent(Transaction { hello, envelope }) => {
                out.reply(&Reply::START_DATA);
                out.push(Action::MessageBegin(envelope));
                let decoder = DotDecoder::new(self.config.max_line_length, self.config.max_message_size);
                self.phase = Phase::ReadingData { hello, decoder };
                return;
            }
            other => (Self::out_of_sequence(&other), other),
        };
        out.reply(&reply);
        self.phase = phase;
    }

    /// BDAT (RFC 3030). See `bdat.rs` for what happens when it fails.
    fn bdat(&mut self, size: u64, last: bool, out: &mut Outbox) {
        let max = self.config.max_message_size;
        let skip = |reply: Reply, then: Phase, abort: bool| Phase::SkippingChunk {
            reader: ChunkReader::new(size),
            reply,
            then: Box::new(then),
            abort,
        };
        let read = |chunking: Chunking| Phase::ReadingChunk { chunking, reader: ChunkReader::new(size), size, last };
        self.phase = match mem::replace(&mut self.phase, Phase::Closed) {
            Phase::ExpectContent(Transaction { hello, .. }) if size > max => {
                skip(Reply::SIZE_EXCEEDED, Phase::ExpectMail(hello), false)
            }
            Phase::ExpectContent(Transaction { hello, envelope }) => {
                out.push(Action::MessageBegin(envelope));
                read(Chunking { hello, received: 0 })
            }
            Phase::ExpectChunk(chunking) if size > max - chunking.received => {
                skip(Reply::SIZE_EXCEEDED, Phase::ExpectMail(chunking.hello), true)
            }
            Phase::ExpectChunk(chunking) => read(chunking),
            other => skip(Self::out_of_sequence(&other), other, false),
        };
        self.read_chunk(&[], out);
    }

    /// The 503 for DATA or BDAT in a phase that does not take content. The
    /// only other command phase left is between BDAT chunks, where only
    /// DATA can get here (RFC 3030: no DATA in a BDAT transaction).
    fn out_of_sequence(phase: &Phase) -> Reply {
        match phase {
            Phase::ExpectHello => Reply::NEED_HELO,
            Phase::ExpectMail(_) => Reply::NEED_MAIL,
            Phase::ExpectRcpt(_) => Reply::NEED_RCPT,
            _ => Reply::DATA_AFTER_BDAT,
        }
    }

    fn rset(&mut self, out: &mut Outbox) {
        if self.phase.message_open() {
            out.abort_message();
        }
        self.phase = match mem::replace(&mut self.phase, Phase::Closed) {
            Phase::ExpectMail(hello)
            | Phase::ExpectRcpt(Transaction { hello, .. })
            | Phase::ExpectContent(Transaction { hello, .. })
            | Phase::ExpectChunk(Chunking { hello, .. }) => Phase::ExpectMail(hello),
            other => other,
        };
        out.reply(&Reply::OK);
    }

    /// STARTTLS (RFC 3207), outside a transaction only. Anything the client
    /// pipelined behind it is discarded (see `process`).
    fn starttls(&mut self, out: &mut Outbox) {
        if self.tls {
            out.reply(&Reply::TLS_ALREADY_ACTIVE);
        } else if matches!(self.phase, Phase::ExpectHello | Phase::ExpectMail(_)) {
            out.reply(&Reply::READY_FOR_TLS);
            out.push(Action::StartTls);
            self.phase = Phase::AwaitTls;
            self.lines.clear();
        } else {
            out.reply(&Reply::TRANSACTION_IN_PROGRESS);
        }
    }
}
