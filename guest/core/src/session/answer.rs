//! What the host's answer to each question leads to: the reply (the
//! session's, never the host's: refusals are rendered by `refusal.rs`) and
//! the phase the session goes on in.

use super::Session;
use crate::prelude::*;

use crate::outbox::Outbox;
use crate::phase::{Pending, Phase};
use crate::question::{Answer, recorded_identity};
use crate::refusal;
use crate::reply::Reply;

impl Session {
    pub(super) fn resolve(&mut self, pending: Pending, answer: Answer, out: &mut Outbox) {
        let refusal = match answer {
            Answer::Accept(text) => return self.accepted(pending, text, out),
            Answer::Refuse(refusal) => refusal,
        };
        let reply = refusal::reply(pending.step(), &refusal, &self.config.hostname);
        if refusal.disconnect {
            return self.close(&reply, out);
        }
        self.phase = match pending {
            Pending::Connect => return self.refused_connection(&reply, out),
            Pending::Hello(_) => Phase::ExpectHello,
            Pending::Mail(txn) => Phase::ExpectMail(txn.hello),
            Pending::Rcpt(txn, _) => Self::with_recipients(txn),
            Pending::Auth(hello, _) => {
                // A refused AUTH is a failed one (`max_auth_failures`).
                self.phase = Phase::ExpectMail(hello);
                return self.auth_failed(&reply, out);
            }
            Pending::MessageEnd(hello) => Phase::ExpectMail(hello),
        };
        out.reply(&reply);
    }

    fn accepted(&mut self, pending: Pending, text: Option<String>, out: &mut Outbox) {
        match pending {
            Pending::Connect => {
                out.reply(&Reply::greeting(&self.config.hostname));
                self.phase = Phase::ExpectHello;
            }
            Pending::Hello(hello) => self.greet(hello, out),
            Pending::Mail(txn) => {
                out.reply(&Reply::MAIL_OK);
                self.phase = Phase::ExpectRcpt(txn);
            }
            Pending::Rcpt(mut txn, recipient) => {
                txn.envelope.recipients.push(recipient);
                out.reply(&Reply::RCPT_OK);
                self.phase = Phase::ExpectContent(txn);
            }
            Pending::Auth(hello, asked) => {
                // The host may name the identity itself (a canonical
                // account name); it goes into trace headers, so it is kept
                // to printable ASCII like any host text.
                self.authenticated = Some(recorded_identity(text.as_deref(), &asked));
                out.reply(&Reply::AUTH_OK);
                self.phase = Phase::ExpectMail(hello);
            }
            Pending::MessageEnd(hello) => {
                out.reply(&Reply::queued(text.as_deref().unwrap_or_default()));
                self.phase = Phase::ExpectMail(hello);
            }
        }
    }

    /// A refused connection: 421 and close when temporary; 554 and only
    /// QUIT served from then on when permanent (RFC 5321 section 3.1).
    fn refused_connection(&mut self, reply: &Reply, out: &mut Outbox) {
        if reply.code == 421 {
            self.close(reply, out);
        } else {
            out.reply(reply);
            self.phase = Phase::Refused;
        }
    }
}
