//! DKIM body hashes computed as the content streams in (RFC 6376 section
//! 3.4.3 simple and 3.4.4 relaxed body canonicalization, section 3.7 the
//! hash, `l=` counting canonicalized octets), so that verifying a message
//! never needs its body in memory.
//!
//! Ours rather than mail-auth's: mail-auth 0.13 computes body hashes over
//! the whole message in memory, and its relaxed canonicalization keeps a
//! whitespace-only line at the end of the body as an empty line, which
//! RFC 6376 section 3.4.4 says to drop (fixed upstream in 0.15, which
//! needs a newer Rust; docs/decisions.md, "Mail authentication").

use mail_auth::common::crypto::{HashAlgorithm, HashContext, HashImpl, Sha1, Sha256};
use mail_auth::common::headers::Writer;
use mail_auth::dkim::Canonicalization;
use memchr::{memchr, memchr3};

type Context = <Sha256 as HashImpl>::Context;

/// Canonical octets are gathered up to this many before they are hashed:
/// relaxed canonicalization emits a word at a time, and one hash update
/// per word costs several times the hashing itself.
const PENDING_MAX: usize = 8 * 1024;

/// What one body hash is over: the signature's `c=` body part, `a=` hash
/// and `l=` (0: the whole body), as mail-auth keys its `body_hashes`.
pub type BodyHashKey = (Canonicalization, HashAlgorithm, u64);

/// One body hash in progress.
pub struct BodyHasher {
    key: BodyHashKey,
    hash: Context,
    /// Canonical octets not yet hashed (at most [`PENDING_MAX`]).
    pending: Vec<u8>,
    /// Canonical octets hashed so far (what `l=` counts).
    hashed: u64,
    /// A CR seen last, not yet known to start a CRLF.
    cr: bool,
    /// Line breaks seen but not yet hashed: only hashed once something
    /// follows them, so that empty lines at the end are dropped.
    breaks: u64,
    /// Relaxed: whitespace seen in the line, hashed as one SP only if
    /// something other than a line break follows it.
    space: bool,
    /// Something other than line breaks has been hashed.
    content: bool,
}

impl BodyHasher {
    pub fn new(key: BodyHashKey) -> BodyHasher {
        let hash = match key.1 {
            HashAlgorithm::Sha1 => Sha1::hasher(),
            HashAlgorithm::Sha256 => Sha256::hasher(),
        };
        BodyHasher {
            key,
            hash,
            pending: Vec::with_capacity(PENDING_MAX),
            hashed: 0,
            cr: false,
            breaks: 0,
            space: false,
            content: false,
        }
    }

    pub fn key(&self) -> BodyHashKey {
        self.key
    }

    /// Body octets, in order, in chunks of any size.
    pub fn write(&mut self, mut bytes: &[u8]) {
        let relaxed = self.key.0 == Canonicalization::Relaxed;
        while !bytes.is_empty() {
            if self.cr {
                self.cr = false;
                if bytes[0] == b'\n' {
                    self.breaks += 1;
                    self.space = false;
                    bytes = &bytes[1..];
                    continue;
                }
                self.text(b"\r");
            }
            let run = run_end(bytes, relaxed);
            if run > 0 {
                self.text(&bytes[..run]);
                bytes = &bytes[run..];
                continue;
            }
            match bytes[0] {
                b'\r' => self.cr = true,
                _ => self.space = true,
            }
            bytes = &bytes[1..];
        }
    }

    /// The hash (RFC 6376 section 3.7, `bh=`).
    pub fn finish(mut self) -> Vec<u8> {
        if self.cr {
            self.cr = false;
            self.text(b"\r");
        }
        // The last line's CRLF. An empty body is one CRLF in simple, and
        // nothing in relaxed.
        if self.content || self.key.0 == Canonicalization::Simple {
            self.breaks = 0;
            self.hash_limited(b"\r\n");
        }
        self.hash.write(&self.pending);
        self.hash.complete().as_ref().to_vec()
    }

    /// Octets other than line breaks (and, in relaxed, whitespace).
    fn text(&mut self, bytes: &[u8]) {
        while self.breaks > 0 {
            self.breaks -= 1;
            self.hash_limited(b"\r\n");
        }
        if self.space {
            self.space = false;
            self.hash_limited(b" ");
        }
        self.content = true;
        self.hash_limited(bytes);
    }

    fn hash_limited(&mut self, bytes: &[u8]) {
        let limit = self.key.2;
        let bytes = if limit == 0 {
            bytes
        } else {
            let left = limit.saturating_sub(self.hashed);
            &bytes[..bytes.len().min(usize::try_from(left).unwrap_or(usize::MAX))]
        };
        self.hashed += bytes.len() as u64;
        if self.pending.len() + bytes.len() > PENDING_MAX {
            self.hash.write(&self.pending);
            self.pending.clear();
        }
        if bytes.len() > PENDING_MAX {
            self.hash.write(bytes);
        } else {
            self.pending.extend_from_slice(bytes);
        }
    }
}

/// The length of the longest start of `bytes` that is hashed as it is:
/// up to the first CR (or, relaxed, whitespace) whose fate depends on what
/// follows it, except a CRLF or (relaxed) a single SP found between two
/// octets of content, which stay as they are.
fn run_end(bytes: &[u8], relaxed: bool) -> usize {
    let mut from = 0;
    loop {
        let found = if relaxed { memchr3(b'\r', b' ', b'\t', &bytes[from..]) } else { memchr(b'\r', &bytes[from..]) };
        let Some(at) = found.map(|i| from + i) else {
            return bytes.len();
        };
        let content = |b: u8| b != b'\r' && !(relaxed && (b == b' ' || b == b'\t'));
        match bytes[at..] {
            [b' ', next, ..] if at > 0 && content(next) => from = at + 2,
            [b'\r', b'\n', next, ..] if at > 0 && content(next) => from = at + 3,
            _ => return at,
        }
    }
}

#[cfg(test)]
mod tests {
    use mail_auth::common::crypto::{HashAlgorithm, HashImpl, Sha256};
    use mail_auth::common::headers::Writer;
    use mail_auth::dkim::Canonicalization::{self, Relaxed, Simple};

    use super::BodyHasher;

    fn sha256(bytes: &[u8]) -> Vec<u8> {
        let mut hash = Sha256::hasher();
        hash.write(bytes);
        mail_auth::common::crypto::HashContext::complete(hash).as_ref().to_vec()
    }

    /// The hash of `body` fed in every two-piece split, against the hash
    /// of `canonical`.
    fn assert_canonical(c: Canonicalization, limit: u64, body: &[u8], canonical: &[u8]) {
        let want = sha256(canonical);
        for split in 0..=body.len() {
            let mut hasher = BodyHasher::new((c, HashAlgorithm::Sha256, limit));
            hasher.write(&body[..split]);
            hasher.write(&body[split..]);
            assert_eq!(
                hasher.finish(),
                want,
                "{c:?} {:?} split at {split} should be {:?}",
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(canonical)
            );
        }
    }

    #[test]
    fn simple_drops_empty_lines_at_the_end_only() {
        for (body, canonical) in [
            ("", "\r\n"),
            ("\r\n\r\n", "\r\n"),
            ("abc", "abc\r\n"),
            ("abc\r\n", "abc\r\n"),
            ("a \t b  \r\n\r\n\r\n", "a \t b  \r\n"),
            ("a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n"),
            ("a\r\n  \r\n", "a\r\n  \r\n"),
            ("bare\rcr\r", "bare\rcr\r\r\n"),
        ] {
            assert_canonical(Simple, 0, body.as_bytes(), canonical.as_bytes());
        }
    }

    /// RFC 6376 section 3.4.4, with the cases upstream's 0.15 fix added to
    /// its tests (a whitespace-only line at the end is an empty line).
    #[test]
    fn relaxed_reduces_whitespace_and_drops_blank_lines_at_the_end() {
        for (body, canonical) in [
            ("", ""),
            ("\r\n\r\n", ""),
            (" C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n"),
            ("</html>\r\n    \r\n", "</html>\r\n"),
            ("</html>\r\n\t\r\n", "</html>\r\n"),
            ("a\r\n  \r\n\t\r\n \t \r\n", "a\r\n"),
            ("a \t \r\n \r\n", "a\r\n"),
            ("a\r\n  b \r\n  \r\n", "a\r\n b\r\n"),
            ("a\r\n  ", "a\r\n"),
            ("   \r\n", ""),
            ("a\r\n  \r\nb\r\n", "a\r\n\r\nb\r\n"),
            ("\r\n  \r\nX", "\r\n\r\nX\r\n"),
        ] {
            assert_canonical(Relaxed, 0, body.as_bytes(), canonical.as_bytes());
        }
    }

    /// The evidence for docs/decisions.md: mail-auth 0.13's own body
    /// canonicalization agrees with ours except on whitespace-only lines at
    /// the end of a relaxed body, the case upstream fixed in 0.15.
    #[test]
    fn mail_auth_0_13_differs_only_on_whitespace_only_lines_at_the_end() {
        let theirs =
            |c: Canonicalization, body: &[u8]| HashAlgorithm::Sha256.hash(c.canonical_body(body, 0)).as_ref().to_vec();
        let ours = |c: Canonicalization, body: &[u8]| {
            let mut hasher = BodyHasher::new((c, HashAlgorithm::Sha256, 0));
            hasher.write(body);
            hasher.finish()
        };
        for body in [&b""[..], b"\r\n", b"a  b \t\r\n\r\n", b" x\r\n\r\ny", b"a\r\n \r\nb\r\n", b"no end"] {
            for c in [Relaxed, Simple] {
                assert_eq!(ours(c, body), theirs(c, body), "{c:?} {:?}", String::from_utf8_lossy(body));
            }
        }
        for body in [&b"</html>\r\n    \r\n"[..], b"a\r\n\t\r\n"] {
            assert_eq!(ours(Simple, body), theirs(Simple, body));
            assert_ne!(ours(Relaxed, body), theirs(Relaxed, body), "0.13 keeps the whitespace-only line");
        }
    }

    #[test]
    fn a_length_counts_canonical_octets() {
        assert_canonical(Relaxed, 6, b"a  b\r\nappended\r\n", b"a b\r\na");
        assert_canonical(Simple, 5, b"text\r\nmore\r\n", b"text\r");
        assert_canonical(Simple, 100, b"short\r\n", b"short\r\n");
    }
}
