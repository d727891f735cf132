//! The wit-bindgen adapter: converts between the `smtp:session` WIT types and
//! smtp-core's Rust types. No protocol logic lives here, so the component
//! behaves exactly like the core that the native tests exercise.
//!
//! `no_std`, like the core: the component then imports nothing (no WASI),
//! so it runs in any component host as is and instantiates with no shims.
//! The fault-injection build alone links std, because its probes reach for
//! files, variables and sockets to show that the host grants none of them.

#![cfg_attr(not(feature = "fault-injection"), no_std)]

extern crate alloc;

#[cfg(not(feature = "fault-injection"))]
mod bare;
#[cfg(any(feature = "testbed-v2", feature = "fault-injection", feature = "wrong-replies"))]
mod testbed;

use alloc::string::ToString;
use alloc::vec::Vec;
use core::cell::RefCell;

use exports::smtp::session::receiver as wit;
use wit::GuestSession;

wit_bindgen::generate!({
    path: "../../wit",
    world: "smtp-receiver",
});

struct Component;

export!(Component);

impl wit::Guest for Component {
    type Session = Session;

    fn info() -> wit::ComponentInfo {
        let info = smtp_core::info();
        wit::ComponentInfo {
            name: info.name.to_string(),
            #[cfg(not(feature = "testbed-v2"))]
            version: info.version.to_string(),
            #[cfg(feature = "testbed-v2")]
            version: testbed::VERSION.to_string(),
            contract: info.contract.to_string(),
            capabilities: info.capabilities.iter().map(|c| c.to_string()).collect(),
        }
    }
}

/// Exported resource methods take `&self`, so the core session sits in a
/// RefCell. Calls never re-enter, so the borrow cannot fail.
struct Session(RefCell<smtp_core::Session>);

impl Session {
    fn with(&self, f: impl FnOnce(&mut smtp_core::Session) -> Vec<smtp_core::Action>) -> Vec<wit::Action> {
        let actions = f(&mut self.0.borrow_mut());
        #[cfg(feature = "wrong-replies")]
        let actions = testbed::replies(actions);
        actions.into_iter().map(action).collect()
    }
}

impl GuestSession for Session {
    fn new(config: wit::Config, peer: wit::PeerInfo) -> Self {
        let peer = smtp_core::PeerInfo { ip: peer.ip, port: peer.port };
        Session(RefCell::new(smtp_core::Session::new(core_config(config), peer)))
    }

    fn greeting(&self) -> Vec<wit::Action> {
        #[cfg(feature = "testbed-v2")]
        return self.with(|s| testbed::greeting(s.greeting()));
        #[cfg(not(feature = "testbed-v2"))]
        self.with(|s| s.greeting())
    }

    fn feed(&self, input: Vec<u8>) -> Vec<wit::Action> {
        #[cfg(feature = "fault-injection")]
        if let Some(actions) = testbed::fault(&input) {
            return actions.into_iter().map(action).collect();
        }
        self.with(|s| s.feed(&input))
    }

    fn answer(&self, decision: wit::Answer) -> Vec<wit::Action> {
        let answer = match decision {
            wit::Answer::Accept(text) => smtp_core::Answer::Accept(text),
            wit::Answer::Refuse(r) => smtp_core::Answer::Refuse(smtp_core::Refusal {
                reason: reason(r.reason),
                permanent: r.permanent,
                text: r.text,
                disconnect: r.disconnect,
            }),
        };
        self.with(|s| s.answer(answer))
    }

    fn tls_started(&self, tls: wit::TlsInfo) -> Vec<wit::Action> {
        let tls = smtp_core::TlsInfo { version: tls.version, cipher: tls.cipher };
        self.with(|s| s.tls_started(tls))
    }

    fn timeout(&self) -> Vec<wit::Action> {
        self.with(|s| s.timeout())
    }

    fn shutdown(&self) -> Vec<wit::Action> {
        self.with(|s| s.shutdown())
    }
}

fn core_config(config: wit::Config) -> smtp_core::Config {
    let ext = config.extensions;
    let questions = config.questions;
    smtp_core::Config {
        hostname: config.hostname,
        max_message_size: config.max_message_size,
        max_recipients: config.max_recipients,
        max_line_length: config.max_line_length,
        extensions: smtp_core::Extensions {
            pipelining: ext.contains(wit::Extensions::PIPELINING),
            size: ext.contains(wit::Extensions::SIZE),
            eightbitmime: ext.contains(wit::Extensions::EIGHTBITMIME),
            enhancedstatuscodes: ext.contains(wit::Extensions::ENHANCEDSTATUSCODES),
            smtputf8: ext.contains(wit::Extensions::SMTPUTF8),
            chunking: ext.contains(wit::Extensions::CHUNKING),
            binarymime: ext.contains(wit::Extensions::BINARYMIME),
            dsn: ext.contains(wit::Extensions::DSN),
            help: ext.contains(wit::Extensions::HELP),
            starttls: ext.contains(wit::Extensions::STARTTLS),
        },
        questions: smtp_core::Questions {
            connect: questions.contains(wit::Questions::CONNECT),
            helo: questions.contains(wit::Questions::HELO),
            mail: questions.contains(wit::Questions::MAIL),
            rcpt: questions.contains(wit::Questions::RCPT),
        },
        auth_mechanisms: smtp_core::AuthMechanisms {
            plain: config.auth_mechanisms.contains(wit::AuthMechanisms::PLAIN),
            login: config.auth_mechanisms.contains(wit::AuthMechanisms::LOGIN),
        },
        auth_without_tls: config.auth_without_tls,
        require_tls: config.require_tls,
        max_auth_failures: config.max_auth_failures,
    }
}

fn reason(reason: wit::Reason) -> smtp_core::Reason {
    use smtp_core::Reason as R;
    use wit::Reason as W;
    match reason {
        W::RelayDenied => R::RelayDenied,
        W::NoSuchUser => R::NoSuchUser,
        W::MailboxFull => R::MailboxFull,
        W::SenderRefused => R::SenderRefused,
        W::Policy => R::Policy,
        W::Greylisted => R::Greylisted,
        W::RateLimited => R::RateLimited,
        W::AuthFailed => R::AuthFailed,
        W::AuthRequired => R::AuthRequired,
        W::EncryptionRequired => R::EncryptionRequired,
        W::StorageFull => R::StorageFull,
        W::LocalError => R::LocalError,
    }
}

fn action(action: smtp_core::Action) -> wit::Action {
    use smtp_core::Action as A;
    match action {
        A::Send(bytes) => wit::Action::Send(bytes),
        A::Ask(question) => wit::Action::Ask(wit_question(question)),
        A::MessageBegin(envelope) => wit::Action::MessageBegin(wit_envelope(envelope)),
        A::MessageData(bytes) => wit::Action::MessageData(bytes),
        A::MessageAbort => wit::Action::MessageAbort,
        A::StartTls => wit::Action::StartTls,
        A::Close => wit::Action::Close,
    }
}

fn wit_question(question: smtp_core::Question) -> wit::Question {
    use smtp_core::Question as Q;
    match question {
        Q::Connect => wit::Question::Connect,
        Q::Helo(h) => wit::Question::Helo(wit::Hello { domain: h.domain, extended: h.extended }),
        Q::Mail(m) => wit::Question::Mail(wit::MailRequest {
            helo: m.helo,
            reverse_path: m.reverse_path,
            body: body(m.body),
            smtputf8: m.smtputf8,
            declared_size: m.declared_size,
            dsn_return: m.dsn_return.map(dsn_return),
            dsn_envid: m.dsn_envid,
        }),
        Q::Rcpt(r) => wit::Question::Rcpt(wit::RcptRequest {
            reverse_path: r.reverse_path,
            recipient: recipient(r.recipient),
            accepted: r.accepted,
        }),
        Q::Auth(c) => wit::Question::Auth(wit::Credentials {
            mechanism: c.mechanism,
            authorization_id: c.authorization_id,
            authentication_id: c.authentication_id,
            secret: c.secret,
        }),
        Q::MessageEnd => wit::Question::MessageEnd,
    }
}

fn body(body: smtp_core::BodyType) -> wit::BodyType {
    match body {
        smtp_core::BodyType::SevenBit => wit::BodyType::SevenBit,
        smtp_core::BodyType::EightBitMime => wit::BodyType::EightBitMime,
        smtp_core::BodyType::BinaryMime => wit::BodyType::BinaryMime,
    }
}

fn dsn_return(ret: smtp_core::DsnReturn) -> wit::DsnReturn {
    match ret {
        smtp_core::DsnReturn::Full => wit::DsnReturn::Full,
        smtp_core::DsnReturn::Headers => wit::DsnReturn::Headers,
    }
}

fn recipient(r: smtp_core::Recipient) -> wit::Recipient {
    wit::Recipient { address: r.address, notify: r.notify, orcpt: r.orcpt }
}

fn wit_envelope(e: smtp_core::Envelope) -> wit::Envelope {
    wit::Envelope {
        helo: e.helo,
        reverse_path: e.reverse_path,
        recipients: e.recipients.into_iter().map(recipient).collect(),
        protocol: e.protocol,
        body: body(e.body),
        smtputf8: e.smtputf8,
        declared_size: e.declared_size,
        dsn_return: e.dsn_return.map(dsn_return),
        dsn_envid: e.dsn_envid,
        tls: e.tls.map(|t| wit::TlsInfo { version: t.version, cipher: t.cipher }),
        authenticated: e.authenticated,
    }
}
