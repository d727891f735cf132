//! The checks around any policy: [`Authenticating`] asks its inner policy
//! first and checks what it accepted, so the embedded default, a users
//! file alone and a configuration's [`crate::policy::Rules`] are checked
//! alike.

use std::sync::Arc;

use smtp_core::{Answer, AuthMechanisms, Credentials, Envelope, Hello, MailRequest, Question, Questions, RcptRequest};

use super::checks::MailAuth;
use super::content::MessageContent;
use crate::policy::{Admission, Client, Decision, EndOfDataDecision, MessageChecks, Policy, Turnaway};
use crate::spool::Destination;

/// A policy with SPF at MAIL and DKIM, ARC and DMARC at the end of data,
/// for clients that are neither authenticated nor in the relay networks.
pub struct Authenticating {
    inner: Arc<dyn Policy>,
    checks: Arc<MailAuth>,
}

impl Authenticating {
    pub fn new(inner: Arc<dyn Policy>, checks: Arc<MailAuth>) -> Authenticating {
        Authenticating { inner, checks }
    }
}

impl Policy for Authenticating {
    fn questions(&self) -> Questions {
        Questions { mail: true, ..self.inner.questions() }
    }

    fn admit(&self, client: &Client) -> Result<Option<Admission>, Turnaway> {
        self.inner.admit(client)
    }

    fn connect<'a>(&'a self, client: &'a Client) -> Decision<'a> {
        self.inner.connect(client)
    }

    fn helo<'a>(&'a self, client: &'a Client, hello: &'a Hello) -> Decision<'a> {
        self.inner.helo(client, hello)
    }

    fn mail<'a>(&'a self, client: &'a Client, mail: &'a MailRequest) -> Decision<'a> {
        Box::pin(async move {
            // The inner policy only when it asks (its default accepts).
            if self.inner.questions().mail {
                let answer = self.inner.mail(client, mail).await;
                if answer != Answer::ACCEPT {
                    return answer;
                }
            }
            if self.checks.exempt(client) {
                return Answer::ACCEPT;
            }
            self.checks.mail(client.ip, &mail.helo, &mail.reverse_path).await
        })
    }

    fn rcpt<'a>(&'a self, client: &'a Client, rcpt: &'a RcptRequest) -> Decision<'a> {
        self.inner.rcpt(client, rcpt)
    }

    /// The inner policy's, but MAIL's SPF check waits on the DNS, so MAIL
    /// is always decided by [`Policy::mail`].
    fn decide_now(&self, client: &Client, question: &Question) -> Option<Answer> {
        match question {
            Question::Mail(_) => None,
            _ => self.inner.decide_now(client, question),
        }
    }

    fn destinations(&self, client: &Client, forward_path: &str) -> Vec<Destination> {
        self.inner.destinations(client, forward_path)
    }

    fn auth_mechanisms(&self) -> AuthMechanisms {
        self.inner.auth_mechanisms()
    }

    fn auth<'a>(&'a self, client: &'a Client, credentials: &'a Credentials) -> Decision<'a> {
        self.inner.auth(client, credentials)
    }

    /// Ours for clients that are checked (an inner policy's own content
    /// checks would be passed over: none has any yet), the inner policy's
    /// otherwise.
    fn message_checks(&self, client: &Client, envelope: &Envelope) -> Option<Box<dyn MessageChecks>> {
        if self.checks.exempt(client) {
            return self.inner.message_checks(client, envelope);
        }
        let content = MessageContent::new(&self.checks.config().authserv_id);
        Some(Box::new(Checking { content, checks: self.checks.clone() }))
    }

    fn end_of_data<'a>(
        &'a self,
        client: &'a Client,
        envelope: &'a Envelope,
        content_size: u64,
    ) -> EndOfDataDecision<'a> {
        self.inner.end_of_data(client, envelope, content_size)
    }
}

/// One message's checks.
struct Checking {
    content: MessageContent,
    checks: Arc<MailAuth>,
}

impl MessageChecks for Checking {
    fn write(&mut self, bytes: &[u8], store: &mut dyn FnMut(&[u8])) {
        self.content.write(bytes, store);
    }

    fn finish(&mut self, store: &mut dyn FnMut(&[u8])) {
        self.content.finish(store);
    }

    fn decide<'a>(self: Box<Self>, client: &'a Client, envelope: &'a Envelope) -> EndOfDataDecision<'a> {
        Box::pin(async move { self.checks.end_of_data(client, envelope, &self.content).await })
    }
}
