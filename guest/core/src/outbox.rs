//! Collects the actions of one call, coalescing as the contract asks:
//! consecutive replies become one `Send` (one write, one boundary crossing
//! for a pipelining client) and consecutive content one `MessageData`.

use crate::action::Action;
use crate::prelude::*;
use crate::reply::{self, Reply};

pub(crate) struct Outbox {
    actions: Vec<Action>,
    enhanced_codes: bool,
    /// Protocol errors of the session so far, this call's replies included.
    errors: u32,
}

impl Outbox {
    /// `errors`: the protocol errors the session counted before this call.
    pub fn new(enhanced_codes: bool, errors: u32) -> Outbox {
        Outbox { actions: Vec::new(), enhanced_codes, errors }
    }

    /// Protocol errors so far (see `Reply::is_protocol_error`).
    pub fn errors(&self) -> u32 {
        self.errors
    }

    pub fn reply(&mut self, reply: &Reply) {
        if reply.is_protocol_error() {
            self.errors += 1;
        }
        let enhanced_codes = self.enhanced_codes;
        reply.write_to(self.send_buffer(), enhanced_codes);
    }

    pub fn multiline(&mut self, code: u16, lines: &[String]) {
        reply::write_multiline(self.send_buffer(), code, lines);
    }

    /// Message content; empty content adds nothing.
    pub fn data(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        match self.actions.last_mut() {
            Some(Action::MessageData(data)) => data.extend_from_slice(&bytes),
            _ => self.actions.push(Action::MessageData(bytes)),
        }
    }

    /// Aborts the open message. Content produced for it in this call is
    /// dropped rather than handed to the host only to be discarded.
    pub fn abort_message(&mut self) {
        if let Some(Action::MessageData(_)) = self.actions.last() {
            self.actions.pop();
        }
        self.actions.push(Action::MessageAbort);
    }

    pub fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    pub fn finish(self) -> Vec<Action> {
        self.actions
    }

    fn send_buffer(&mut self) -> &mut Vec<u8> {
        if !matches!(self.actions.last(), Some(Action::Send(_))) {
            self.actions.push(Action::Send(Vec::new()));
        }
        match self.actions.last_mut() {
            Some(Action::Send(bytes)) => bytes,
            _ => unreachable!("a Send was just pushed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_replies_and_data() {
        let mut out = Outbox::new(true, 0);
        out.reply(&Reply::OK);
        out.reply(&Reply::BYE);
        out.data(b"ab".to_vec());
        out.data(Vec::new());
        out.data(b"c".to_vec());
        out.push(Action::MessageAbort);
        out.reply(&Reply::OK);
        assert_eq!(
            out.finish(),
            vec![
                Action::Send(b"250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n".to_vec()),
                Action::MessageData(b"abc".to_vec()),
                Action::MessageAbort,
                Action::Send(b"250 2.0.0 Ok\r\n".to_vec()),
            ]
        );
    }

    #[test]
    fn abort_drops_this_calls_content() {
        let mut out = Outbox::new(false, 0);
        out.data(b"x".to_vec());
        out.abort_message();
        out.reply(&Reply::OK);
        assert_eq!(out.finish(), vec![Action::MessageAbort, Action::Send(b"250 Ok\r\n".to_vec())]);
    }
}
