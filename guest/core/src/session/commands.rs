//! What each command does to the session (RFC 5321 section 4.1, RFC 3030,
//! RFC 3207, RFC 4954). A command the host decides ends in a question
//! (`Session::ask`); its reply is written when the answer comes
//! (`answer.rs`).

use super::Session;
use crate::prelude::*;
use core::mem;

use crate::action::Action;
use crate::address::{ForwardPath, ReversePath};
use crate::auth::{Exchange, Progress};
use crate::bdat::ChunkReader;
use crate::command::Command;
use crate::dot::DotDecoder;
use crate::ehlo;
use crate::envelope::{BodyType, Envelope, Recipient};
use crate::line::LineEvent;
use crate::outbox::Outbox;
use crate::params;
use crate::phase::{Chunking, Pending, Phase, Transaction};
use crate::question::{Hello, MailRequest, Question, RcptRequest};
use crate::reply::Reply;

impl Session {
    pub(super) fn execute(&mut self, command: Command<'_>, out: &mut Outbox) {
        // An AUTH command refused before it starts still counts as a
        // failed one when the session offers AUTH at all.
        let auth = matches!(command, Command::Auth { .. }) && self.config.auth_mechanisms.any();
        if let Phase::Refused = self.phase {
            // RFC 5321 section 3.1: after a 554 greeting, only QUIT.
            return match command {
                Command::Quit => self.close(&Reply::BYE, out),
                _ if auth => self.auth_failed(&Reply::ONLY_QUIT, out),
                _ => out.reply(&Reply::ONLY_QUIT),
            };
        }
        if self.config.require_tls
            && self.tls.is_none()
            && !matches!(command, Command::Noop | Command::Ehlo(_) | Command::StartTls | Command::Quit)
        {
            // RFC 3207 section 4.
            return if auth {
                self.auth_failed(&Reply::ENCRYPTION_REQUIRED, out)
            } else {
                out.reply(&Reply::ENCRYPTION_REQUIRED)
            };
        }
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
                out.reply(&Reply::help(&ehlo::help_commands(&self.config, self.tls.is_some())));
            }
            Command::Vrfy => out.reply(&Reply::CANNOT_VRFY),
            Command::StartTls if ext.starttls => self.starttls(out),
            Command::Auth { mechanism, initial } if self.config.auth_mechanisms.any() => {
                self.auth(mechanism, initial, out)
            }
            Command::Bdat { .. }
            | Command::Help
            | Command::StartTls
            | Command::Auth { .. }
            | Command::Expn
            | Command::NotImplemented => out.reply(&Reply::NOT_IMPLEMENTED),
        }
    }

    /// HELO/EHLO: always allowed; resets any transaction (RFC 5321 4.1.4).
    fn hello(&mut self, name: &str, extended: bool, out: &mut Outbox) {
        if self.phase.message_open() {
            out.abort_message();
        }
        let hello = Hello { domain: name.to_string(), extended };
        if self.config.questions.helo {
            self.ask(Pending::Hello(hello.clone()), Question::Helo(hello), out);
        } else {
            self.greet(hello, out);
        }
    }

    /// The 250 to an accepted HELO/EHLO.
    pub(super) fn greet(&mut self, hello: Hello, out: &mut Outbox) {
        if hello.extended {
            out.multiline(250, &ehlo::ehlo_lines(&self.config, self.tls.is_some()));
        } else {
            out.reply(&Reply::helo(&self.config.hostname));
        }
        self.phase = Phase::ExpectMail(hello);
    }

    fn mail(&mut self, path: ReversePath, params: &str, out: &mut Outbox) {
        match mem::replace(&mut self.phase, Phase::Closed) {
            Phase::ExpectMail(hello) => match self.envelope(&hello, path, params) {
                Ok(envelope) if self.config.questions.mail => {
                    let request = MailRequest {
                        helo: hello.domain.clone(),
                        reverse_path: envelope.reverse_path.clone(),
                        body: envelope.body,
                        smtputf8: envelope.smtputf8,
                        declared_size: envelope.declared_size,
                        dsn_return: envelope.dsn_return,
                        dsn_envid: envelope.dsn_envid.clone(),
                    };
                    self.ask(Pending::Mail(Transaction { hello, envelope }), Question::Mail(request), out);
                }
                Ok(envelope) => {
                    out.reply(&Reply::MAIL_OK);
                    self.phase = Phase::ExpectRcpt(Transaction { hello, envelope });
                }
                Err(reply) => {
                    out.reply(&reply);
                    self.phase = Phase::ExpectMail(hello);
                }
            },
            Phase::ExpectHello => {
                out.reply(&Reply::NEED_HELO);
                self.phase = Phase::ExpectHello;
            }
            other => {
                out.reply(&Reply::NESTED_MAIL);
                self.phase = other;
            }
        }
    }

    /// Everything MAIL decides: the envelope minus its recipients.
    fn envelope(&self, hello: &Hello, path: ReversePath, params: &str) -> Result<Envelope, Reply> {
        let params = params::mail(params, &self.config)?;
        let reverse_path = match path {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(mailbox) if mailbox.is_ascii() || params.smtputf8 => mailbox.as_str().to_string(),
            ReversePath::Mailbox(_) => return Err(Reply::NON_ASCII_ADDRESS),
        };
        Ok(Envelope {
            helo: hello.domain.clone(),
            reverse_path,
            recipients: Vec::new(),
            protocol: self.protocol(hello, params.smtputf8),
            body: params.body.unwrap_or_default(),
            smtputf8: params.smtputf8,
            declared_size: params.size,
            dsn_return: params.ret,
            dsn_envid: params.envid,
            tls: self.tls.clone(),
            authenticated: self.authenticated.clone(),
        })
    }

    /// RFC 3848 and RFC 6531 section 3.7.3 protocol names: `ESMTP` or
    /// `UTF8SMTP`, then `S` with TLS and `A` after AUTH. HELO gives plain
    /// `SMTP` (there is no registered name for HELO over TLS).
    fn protocol(&self, hello: &Hello, smtputf8: bool) -> String {
        if !hello.extended && !smtputf8 {
            return "SMTP".to_string();
        }
        let mut name = String::from(if smtputf8 { "UTF8SMTP" } else { "ESMTP" });
        if self.tls.is_some() {
            name.push('S');
        }
        if self.authenticated.is_some() {
            name.push('A');
        }
        name
    }

    fn rcpt(&mut self, path: ForwardPath, params: &str, out: &mut Outbox) {
        let (reply, phase) = match mem::replace(&mut self.phase, Phase::Closed) {
            Phase::ExpectRcpt(mut txn) | Phase::ExpectContent(mut txn) => {
                match self.recipient(&txn.envelope, path, params) {
                    Ok(recipient) if self.config.questions.rcpt => {
                        let request = RcptRequest {
                            reverse_path: txn.envelope.reverse_path.clone(),
                            recipient: recipient.clone(),
                            accepted: txn.envelope.recipients.len() as u32,
                        };
                        return self.ask(Pending::Rcpt(txn, recipient), Question::Rcpt(request), out);
                    }
                    Ok(recipient) => {
                        txn.envelope.recipients.push(recipient);
                        (Reply::RCPT_OK, Phase::ExpectContent(txn))
                    }
                    Err(reply) => (reply, Self::with_recipients(txn)),
                }
            }
            Phase::ExpectHello => (Reply::NEED_HELO, Phase::ExpectHello),
            Phase::ExpectMail(hello) => (Reply::NEED_MAIL, Phase::ExpectMail(hello)),
            other => (Reply::RCPT_AFTER_BDAT, other),
        };
        out.reply(&reply);
        self.phase = phase;
    }

    /// The phase of a transaction: recipients yet or not.
    pub(super) fn with_recipients(txn: Transaction) -> Phase {
        if txn.envelope.recipients.is_empty() { Phase::ExpectRcpt(txn) } else { Phase::ExpectContent(txn) }
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
    /// pipelined behind it is discarded (see `read`).
    fn starttls(&mut self, out: &mut Outbox) {
        if self.tls.is_some() {
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

    /// AUTH (RFC 4954 section 4): once per session, after HELO/EHLO, outside a
    /// transaction, and over TLS unless the host allows plaintext. Every
    /// AUTH command that ends without 235 counts towards
    /// `max_auth_failures` (see `auth_failed`).
    fn auth(&mut self, mechanism: &str, initial: Option<&str>, out: &mut Outbox) {
        let hello = match mem::replace(&mut self.phase, Phase::Closed) {
            Phase::ExpectMail(hello) if self.authenticated.is_none() => hello,
            other => {
                let reply = match other {
                    Phase::ExpectHello => Reply::NEED_HELO,
                    Phase::ExpectMail(_) => Reply::ALREADY_AUTHENTICATED,
                    _ => Reply::TRANSACTION_IN_PROGRESS,
                };
                self.phase = other;
                return self.auth_failed(&reply, out);
            }
        };
        if !ehlo::auth_offered(&self.config, self.tls.is_some()) {
            self.phase = Phase::ExpectMail(hello);
            return self.auth_failed(&Reply::AUTH_NEEDS_TLS, out);
        }
        self.sasl_step(hello, Exchange::start(mechanism, initial, self.config.auth_mechanisms), out);
    }

    /// A line answering a 334 challenge. A line too long or ended by a bare
    /// LF ends the exchange like any malformed response.
    pub(super) fn auth_response(&mut self, event: LineEvent, out: &mut Outbox) {
        let Phase::AuthResponse { hello, exchange } = mem::replace(&mut self.phase, Phase::Closed) else {
            return;
        };
        let progress = match event {
            LineEvent::TooLong => Err(Reply::LINE_TOO_LONG),
            LineEvent::BareLf => Err(Reply::BARE_LF_IN_COMMAND),
            LineEvent::Line(line) => match core::str::from_utf8(&line) {
                Ok(line) => exchange.respond(line),
                Err(_) => Err(Reply::CANNOT_DECODE),
            },
        };
        self.sasl_step(hello, progress, out);
    }

    fn sasl_step(&mut self, hello: Hello, progress: Result<Progress, Reply>, out: &mut Outbox) {
        match progress {
            Err(reply) => {
                self.phase = Phase::ExpectMail(hello);
                self.auth_failed(&reply, out);
            }
            Ok(Progress::Challenge(exchange, reply)) => {
                out.reply(&reply);
                self.phase = Phase::AuthResponse { hello, exchange };
            }
            Ok(Progress::Done(credentials)) => {
                let identity = credentials.identity().to_string();
                self.ask(Pending::Auth(hello, identity), Question::Auth(credentials), out);
            }
        }
    }
}
