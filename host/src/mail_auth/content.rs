//! One message's content on its way to storage: the header section is
//! held until it is complete (at most [`HEADER_SECTION_MAX`] octets and
//! the chunk that crossed it), then
//! stored without forged Authentication-Results fields; the body is
//! stored as it arrives and hashed on the way for each DKIM signature and
//! ARC message signature (`body_hash`), so verification at the end needs
//! the header section only.

use mail_auth::AuthenticatedMessage;
use memchr::memmem;

use super::body_hash::{BodyHashKey, BodyHasher};
use super::forged::remove_forged;

/// The largest header section authenticated, in octets: Postfix's
/// `header_size_limit` (102400). Real header sections are a few KiB; one
/// past this is not held, so neither verified nor cleaned of forged
/// fields, and the message is refused (see [`MessageContent::too_large`]).
pub const HEADER_SECTION_MAX: usize = 102_400;

enum State {
    /// Before the empty line that ends the header section.
    Header {
        held: Vec<u8>,
    },
    Body {
        header: Vec<u8>,
        hashers: Vec<BodyHasher>,
    },
    /// The whole content is known; the body hashes are final.
    Done {
        header: Vec<u8>,
        hashes: Vec<(BodyHashKey, Vec<u8>)>,
    },
    /// The header section outgrew [`HEADER_SECTION_MAX`]: stored as it
    /// came, not authenticated.
    TooLarge,
}

/// See the module documentation.
pub struct MessageContent {
    authserv_id: String,
    state: State,
    /// Forged Authentication-Results fields removed.
    removed: usize,
}

impl MessageContent {
    /// Content whose Authentication-Results fields naming `authserv_id`
    /// are removed.
    pub fn new(authserv_id: &str) -> MessageContent {
        MessageContent { authserv_id: authserv_id.to_string(), state: State::Header { held: Vec::new() }, removed: 0 }
    }

    /// Content octets (dot-unstuffed), in order; `store` gets the octets
    /// to store, in order.
    pub fn write(&mut self, bytes: &[u8], store: &mut dyn FnMut(&[u8])) {
        match &mut self.state {
            State::Header { held } => {
                let scan_from = held.len().saturating_sub(3);
                held.extend_from_slice(bytes);
                let end = if held.starts_with(b"\r\n") {
                    Some(2)
                } else {
                    memmem::find(&held[scan_from..], b"\r\n\r\n").map(|at| scan_from + at + 4)
                };
                match end {
                    Some(end) if end <= HEADER_SECTION_MAX => {
                        let mut header = std::mem::take(held);
                        let body = header.split_off(end);
                        self.start_body(header, store);
                        self.write(&body, store);
                    }
                    // Past the bound, whether or not it ends in this chunk
                    // (held: at most the bound and one chunk).
                    Some(_) => {
                        store(held);
                        self.state = State::TooLarge;
                    }
                    None if held.len() > HEADER_SECTION_MAX => {
                        store(held);
                        self.state = State::TooLarge;
                    }
                    None => {}
                }
            }
            State::Body { hashers, .. } => {
                for hasher in hashers {
                    hasher.write(bytes);
                }
                store(bytes);
            }
            State::Done { .. } => {}
            State::TooLarge => store(bytes),
        }
    }

    /// The end of the content: what is still held goes to `store` (a
    /// message without a body is all header section), and the body hashes
    /// are finished.
    pub fn finish(&mut self, store: &mut dyn FnMut(&[u8])) {
        if let State::Header { held } = &mut self.state {
            let header = std::mem::take(held);
            self.start_body(header, store);
        }
        if let State::Body { header, hashers } = &mut self.state {
            let header = std::mem::take(header);
            let hashes = std::mem::take(hashers).into_iter().map(|h| (h.key(), h.finish())).collect();
            self.state = State::Done { header, hashes };
        }
    }

    /// Whether the header section was too large to authenticate.
    pub fn too_large(&self) -> bool {
        matches!(self.state, State::TooLarge)
    }

    /// Forged Authentication-Results fields removed.
    pub fn removed(&self) -> usize {
        self.removed
    }

    /// The message as mail-auth verifies it (after [`MessageContent::finish`]):
    /// the header section as received, with the body hashes computed on
    /// the way. `None` when there is no header field to verify.
    pub fn authenticated(&self) -> Option<AuthenticatedMessage<'_>> {
        let State::Done { header, hashes } = &self.state else {
            return None;
        };
        let mut message = parse(header)?;
        for (c, h, l, hash) in &mut message.body_hashes {
            if let Some((_, computed)) = hashes.iter().find(|(key, _)| *key == (*c, *h, *l)) {
                hash.clone_from(computed);
            }
        }
        Some(message)
    }

    fn start_body(&mut self, header: Vec<u8>, store: &mut dyn FnMut(&[u8])) {
        let hashers = match parse(&header) {
            Some(message) => message.body_hashes.iter().map(|(c, h, l, _)| BodyHasher::new((*c, *h, *l))).collect(),
            None => Vec::new(),
        };
        let (kept, removed) = remove_forged(&header, &self.authserv_id);
        self.removed = removed;
        store(&kept);
        self.state = State::Body { header, hashers };
    }
}

/// The header section parsed by mail-auth, `l=` allowed (RFC 6376 section
/// 3.5; mail-auth's strict mode refuses such signatures). Its body hashes
/// are those of an empty body until replaced.
fn parse(header: &[u8]) -> Option<AuthenticatedMessage<'_>> {
    AuthenticatedMessage::parse_with_opts(header, None, false)
}

#[cfg(test)]
mod tests {
    use super::{HEADER_SECTION_MAX, MessageContent};

    fn stored(content: &mut MessageContent, chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks {
            content.write(chunk, &mut |b| out.extend_from_slice(b));
        }
        content.finish(&mut |b| out.extend_from_slice(b));
        out
    }

    #[test]
    fn the_header_section_is_held_until_complete_then_cleaned() {
        let message = b"Authentication-Results: mx.test; dkim=pass\r\nSubject: s\r\n\r\nbody\r\n";
        for split in 0..message.len() {
            let mut content = MessageContent::new("mx.test");
            let out = stored(&mut content, &[&message[..split], &message[split..]]);
            assert_eq!(out, b"Subject: s\r\n\r\nbody\r\n", "split at {split}");
            assert_eq!(content.removed(), 1);
            let parsed = content.authenticated().unwrap();
            assert_eq!(parsed.raw_headers().len(), message.len() - 6, "verified as received");
        }
    }

    #[test]
    fn a_message_without_body_or_headers_is_stored_as_it_came() {
        for message in [&b"Subject: only\r\n"[..], b"\r\nbody without header\r\n", b""] {
            let mut content = MessageContent::new("mx.test");
            assert_eq!(stored(&mut content, &[message]), message);
        }
    }

    #[test]
    fn an_oversized_header_section_is_passed_through_unauthenticated() {
        let field = format!("X-Long: {}\r\n", "a".repeat(990));
        let header = field.repeat(HEADER_SECTION_MAX / field.len() + 1);
        let whole = format!("{header}\r\nbody\r\n");
        // Its end in a later chunk, and in the chunk that crosses the bound.
        for chunks in [vec![header.as_bytes(), b"\r\nbody\r\n"], vec![whole.as_bytes()]] {
            let mut content = MessageContent::new("mx.test");
            assert_eq!(stored(&mut content, &chunks), whole.as_bytes());
            assert!(content.too_large());
            assert!(content.authenticated().is_none());
        }
    }
}
