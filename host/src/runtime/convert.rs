//! The one place the host converts between the contract's generated types
//! and smtp-core's: configuration and answers going in, actions coming out.
//! Everything past the sandbox boundary (the connection driver, the guard,
//! the policy, the spool, the transcript runner) speaks smtp-core's types,
//! so a rule stated once in smtp-core (`contract::Checker`, extension
//! names, defaults) holds for every driver.

use smtp_core as core;

use super::bindings as wit;

/// The session configuration in the contract's shape.
pub fn guest_config(config: &core::Config) -> wit::GuestConfig {
    let e = &config.extensions;
    let mut extensions = wit::Extensions::empty();
    for (on, flag) in [
        (e.pipelining, wit::Extensions::PIPELINING),
        (e.size, wit::Extensions::SIZE),
        (e.eightbitmime, wit::Extensions::EIGHTBITMIME),
        (e.enhancedstatuscodes, wit::Extensions::ENHANCEDSTATUSCODES),
        (e.smtputf8, wit::Extensions::SMTPUTF8),
        (e.chunking, wit::Extensions::CHUNKING),
        (e.binarymime, wit::Extensions::BINARYMIME),
        (e.dsn, wit::Extensions::DSN),
        (e.help, wit::Extensions::HELP),
        (e.starttls, wit::Extensions::STARTTLS),
    ] {
        if on {
            extensions |= flag;
        }
    }
    let q = &config.questions;
    let mut questions = wit::Questions::empty();
    for (on, flag) in [
        (q.connect, wit::Questions::CONNECT),
        (q.helo, wit::Questions::HELO),
        (q.mail, wit::Questions::MAIL),
        (q.rcpt, wit::Questions::RCPT),
    ] {
        if on {
            questions |= flag;
        }
    }
    let mut auth_mechanisms = wit::AuthMechanisms::empty();
    if config.auth_mechanisms.plain {
        auth_mechanisms |= wit::AuthMechanisms::PLAIN;
    }
    if config.auth_mechanisms.login {
        auth_mechanisms |= wit::AuthMechanisms::LOGIN;
    }
    wit::GuestConfig {
        hostname: config.hostname.clone(),
        max_message_size: config.max_message_size,
        max_recipients: config.max_recipients,
        max_line_length: config.max_line_length,
        extensions,
        questions,
        auth_mechanisms,
        auth_without_tls: config.auth_without_tls,
        require_tls: config.require_tls,
        max_auth_failures: config.max_auth_failures,
    }
}

pub fn answer(answer: &core::Answer) -> wit::Answer {
    match answer {
        core::Answer::Accept(text) => wit::Answer::Accept(text.clone()),
        core::Answer::Refuse(r) => wit::Answer::Refuse(wit::Refusal {
            reason: reason(r.reason),
            permanent: r.permanent,
            text: r.text.clone(),
            disconnect: r.disconnect,
        }),
    }
}

fn reason(reason: core::Reason) -> wit::Reason {
    use core::Reason as R;
    use wit::Reason as W;
    match reason {
        R::RelayDenied => W::RelayDenied,
        R::NoSuchUser => W::NoSuchUser,
        R::MailboxFull => W::MailboxFull,
        R::SenderRefused => W::SenderRefused,
        R::Policy => W::Policy,
        R::Greylisted => W::Greylisted,
        R::RateLimited => W::RateLimited,
        R::AuthFailed => W::AuthFailed,
        R::AuthRequired => W::AuthRequired,
        R::EncryptionRequired => W::EncryptionRequired,
        R::StorageFull => W::StorageFull,
        R::LocalError => W::LocalError,
    }
}

pub fn tls_info(tls: &core::TlsInfo) -> wit::TlsInfo {
    wit::TlsInfo { version: tls.version.clone(), cipher: tls.cipher.clone() }
}

pub fn action(action: wit::Action) -> core::Action {
    match action {
        wit::Action::Send(bytes) => core::Action::Send(bytes),
        wit::Action::Ask(question) => core::Action::Ask(self::question(question)),
        wit::Action::MessageBegin(envelope) => core::Action::MessageBegin(self::envelope(envelope)),
        wit::Action::MessageData(bytes) => core::Action::MessageData(bytes),
        wit::Action::MessageAbort => core::Action::MessageAbort,
        wit::Action::StartTls => core::Action::StartTls,
        wit::Action::Close => core::Action::Close,
    }
}

fn question(question: wit::Question) -> core::Question {
    match question {
        wit::Question::Connect => core::Question::Connect,
        wit::Question::Helo(h) => core::Question::Helo(core::Hello { domain: h.domain, extended: h.extended }),
        wit::Question::Mail(m) => core::Question::Mail(core::MailRequest {
            helo: m.helo,
            reverse_path: m.reverse_path,
            body: body(m.body),
            smtputf8: m.smtputf8,
            declared_size: m.declared_size,
            dsn_return: m.dsn_return.map(dsn_return),
            dsn_envid: m.dsn_envid,
        }),
        wit::Question::Rcpt(r) => core::Question::Rcpt(core::RcptRequest {
            reverse_path: r.reverse_path,
            recipient: recipient(r.recipient),
            accepted: r.accepted,
        }),
        wit::Question::Auth(c) => core::Question::Auth(core::Credentials {
            mechanism: c.mechanism,
            authorization_id: c.authorization_id,
            authentication_id: c.authentication_id,
            secret: c.secret,
        }),
        wit::Question::MessageEnd => core::Question::MessageEnd,
    }
}

fn body(body: wit::BodyType) -> core::BodyType {
    match body {
        wit::BodyType::SevenBit => core::BodyType::SevenBit,
        wit::BodyType::EightBitMime => core::BodyType::EightBitMime,
        wit::BodyType::BinaryMime => core::BodyType::BinaryMime,
    }
}

fn dsn_return(ret: wit::DsnReturn) -> core::DsnReturn {
    match ret {
        wit::DsnReturn::Full => core::DsnReturn::Full,
        wit::DsnReturn::Headers => core::DsnReturn::Headers,
    }
}

fn recipient(r: wit::Recipient) -> core::Recipient {
    core::Recipient { address: r.address, notify: r.notify, orcpt: r.orcpt }
}

fn envelope(e: wit::Envelope) -> core::Envelope {
    core::Envelope {
        helo: e.helo,
        reverse_path: e.reverse_path,
        recipients: e.recipients.into_iter().map(recipient).collect(),
        protocol: e.protocol,
        body: body(e.body),
        smtputf8: e.smtputf8,
        declared_size: e.declared_size,
        dsn_return: e.dsn_return.map(dsn_return),
        dsn_envid: e.dsn_envid,
        tls: e.tls.map(|t| core::TlsInfo { version: t.version, cipher: t.cipher }),
        authenticated: e.authenticated,
    }
}
