//! The users file for SMTP AUTH, in Dovecot's passwd-file format
//! (<https://doc.dovecot.org/>, "passwd-file"):
//!
//! ```text
//! # comment
//! user:{SCHEME}hash:uid:gid:(gecos):home:shell:extra_fields
//! ```
//!
//! Only the first two fields are read; the rest (uid, gid, home,
//! `userdb_...` extra fields) may be present and is ignored, so a file
//! shared with Dovecot works unchanged. The password field is a crypt(3)
//! hash with an optional Dovecot `{SCHEME}` prefix; accepted are `{ARGON2ID}`,
//! `{ARGON2I}`, `{BLF-CRYPT}`, `{SHA512-CRYPT}`, `{SHA256-CRYPT}` and
//! `{CRYPT}` (or no prefix) over one of those hashes. Plaintext, unsalted
//! and weak crypt(3) schemes are refused when the file is loaded.
//!
//! [`set_password`] and [`read_new_password`] are what `smtpcell passwd`
//! is made of.

mod atomic;
mod edit;
mod passwd;
mod scheme;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use anyhow::{Result, anyhow, bail};

pub use passwd::{hash_password, read_new_password, set_password};

use scheme::Credential;

/// The longest password accepted, in bytes: by [`Users::verify`] (longer
/// ones never match) and when setting one. SHA-crypt's work grows with the
/// square of the password's length, so an unbounded one would let a client
/// buy seconds of CPU per attempt; this is far beyond any real password.
pub const MAX_PASSWORD_LEN: usize = 4096;

/// What an unknown user's password is checked against, so that the answer
/// takes as long as for a user whose hash `smtpcell passwd` wrote (same
/// argon2 defaults). Its password is irrelevant: the result is discarded.
/// Made by `echo -n dummy-unknown-user | argon2 <random> -id -t 2 -k 19456 -p 1 -e`.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c0FPT1VWUTA1SkxtTHo$EqT2k0wYmBs2LA0zUy8DApFcs+N9ZbJCC931sWByUzI";

/// The parsed users file: user name → password hash. User names are
/// compared exactly (case-sensitive, as Dovecot does by default).
pub struct Users {
    users: HashMap<String, Credential>,
    dummy: Credential,
}

impl Users {
    /// Reads and parses the users file at `path`.
    ///
    /// # Errors
    /// The file cannot be read, is not UTF-8, or [`Users::parse`] refuses it;
    /// every message starts with the path (and names the line where there is
    /// one). No message contains a hash or a password.
    pub fn load(path: &Path) -> Result<Users> {
        let bytes =
            std::fs::read(path).map_err(|err| anyhow!("{}: cannot read the users file: {err}", path.display()))?;
        let text = std::str::from_utf8(&bytes).map_err(|err| {
            let line = 1 + bytes[..err.valid_up_to()].iter().filter(|b| **b == b'\n').count();
            anyhow!("{}: line {line}: not valid UTF-8", path.display())
        })?;
        Users::parse(text).map_err(|err| anyhow!("{}: {err}", path.display()))
    }

    /// Parses users file text. Blank lines and lines starting with `#` are
    /// skipped; a trailing `\r` on a line is ignored.
    ///
    /// # Errors
    /// `line N: ...` for the first of: a line without `:`, an empty user
    /// name, an unknown or unsupported scheme (plaintext and unsalted ones
    /// included), a hash that does not parse, a user already defined on an
    /// earlier line. No message contains a hash or a password.
    pub fn parse(text: &str) -> Result<Users> {
        let mut users = HashMap::new();
        let mut first_line = HashMap::new();
        for (index, line) in text.split('\n').enumerate() {
            let number = index + 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // The line is not echoed: a line without ':' may be a password
            // pasted into the wrong place.
            let Some((user, rest)) = line.split_once(':') else {
                bail!("line {number}: no ':' after the user name (expected user:{{SCHEME}}hash[:...])");
            };
            if user.is_empty() {
                bail!("line {number}: empty user name");
            }
            if let Some(earlier) = first_line.get(user) {
                bail!("line {number}: user {user:?} is already defined on line {earlier}");
            }
            let password = rest.split_once(':').map_or(rest, |(password, _)| password);
            let credential =
                Credential::parse(password).map_err(|err| anyhow!("line {number}: user {user:?}: {err}"))?;
            first_line.insert(user.to_owned(), number);
            users.insert(user.to_owned(), credential);
        }
        let dummy = Credential::parse(DUMMY_HASH)?;
        Ok(Users { users, dummy })
    }

    /// How many users the file defines.
    #[must_use]
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file defines no user.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `password` is the password of `user`.
    ///
    /// Blocking and CPU-heavy (argon2, bcrypt): run it on tokio's blocking
    /// pool. An unknown user is checked against a fixed dummy argon2id hash,
    /// so the time taken does not tell whether the user exists (a user whose
    /// hash is of a cheaper scheme still answers faster). Never panics;
    /// a password longer than [`MAX_PASSWORD_LEN`] is false at once.
    #[must_use]
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        if password.len() > MAX_PASSWORD_LEN {
            return false;
        }
        let (credential, known) = self.credential(user);
        let matches = credential.verify(password);
        known && matches
    }

    /// The credential to check `user` against, and whether `user` exists.
    fn credential(&self, user: &str) -> (&Credential, bool) {
        match self.users.get(user) {
            Some(credential) => (credential, true),
            None => (&self.dummy, false),
        }
    }
}

/// Shows the user names and their count, never a hash.
impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.users.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Users").field("count", &names.len()).field("users", &names).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `openssl passwd -6 -salt Zs2kQvN0oRt8 'correct horse 512'`
    const ALICE_HASH: &str =
        "$6$Zs2kQvN0oRt8$xHQYk9TXTDVocNdS/2N/KZJ4tRPq5w2ttmnOvdraH/66ui/ZH1mdyU/QEWcU5YSS1jWjpELaul9WsTbBZ1faE0";
    // `htpasswd -nbB -C 5 alice 'blowfish 2y'`
    const BOB_HASH: &str = "$2y$05$ItSdP8qyb224fZ12y8E9leAAAZc8jDuk1gu2oWJQFW3qo6Sg3fzj2";
    // `openssl passwd -5 -salt pL9xWq3Ea7Ym 'correct horse 256'`
    const CAROL_HASH: &str = "$5$pL9xWq3Ea7Ym$u8hF9bFWJoZsgiBBIguXElbtQoClx1AzrQpWVazQNzA";

    fn dovecot_file() -> String {
        format!(
            "# Dovecot passwd-file\n\
             alice:{{SHA512-CRYPT}}{ALICE_HASH}:1000:1000::/home/alice::userdb_quota_rule=*:storage=1G\n\
             \n\
             # bob has no extra fields\n\
             bob:{{BLF-CRYPT}}{BOB_HASH}\r\n\
             carol:{CAROL_HASH}:::\n"
        )
    }

    #[test]
    fn parses_a_dovecot_style_file() {
        let users = Users::parse(&dovecot_file()).unwrap();
        assert_eq!(users.len(), 3);
        assert!(!users.is_empty());
        assert!(users.verify("alice", b"correct horse 512"));
        assert!(!users.verify("alice", b"correct horse 256"));
        assert!(users.verify("bob", b"blowfish 2y"));
        assert!(!users.verify("bob", b"blowfish 2Y"));
        assert!(users.verify("carol", b"correct horse 256"));
        // Names are compared exactly.
        assert!(!users.verify("Alice", b"correct horse 512"));
        assert!(!users.verify("alice ", b"correct horse 512"));
    }

    #[test]
    fn an_empty_file_has_no_users() {
        let users = Users::parse("# nobody yet\n\n").unwrap();
        assert!(users.is_empty());
        assert!(!users.verify("", b""));
    }

    #[test]
    fn an_unknown_user_is_checked_against_the_dummy_hash() {
        let users = Users::parse(&dovecot_file()).unwrap();
        let (credential, known) = users.credential("mallory");
        assert!(!known);
        assert!(std::ptr::eq(credential, &users.dummy));
        assert_eq!(format!("{credential:?}"), "Credential(argon2id)");
        // Even the dummy's own password does not log an unknown user in.
        assert!(users.dummy.verify(b"dummy-unknown-user"));
        assert!(!users.verify("mallory", b"dummy-unknown-user"));
        assert!(!users.verify("mallory", b"correct horse 512"));
        let (credential, known) = users.credential("alice");
        assert!(known && !std::ptr::eq(credential, &users.dummy));
    }

    #[test]
    fn verify_takes_any_input_without_panicking() {
        let users = Users::parse(&dovecot_file()).unwrap();
        for password in [&b""[..], b"\0", b"\xff\xfe", &[b'a'; MAX_PASSWORD_LEN + 1]] {
            assert!(!users.verify("bob", password));
            assert!(!users.verify("", password));
        }
        assert!(!users.verify("bob\0", b"blowfish 2y"));
    }

    /// The error for `text`, which must name `line` and echo none of `secrets`.
    fn refused(text: &str, line: usize, secrets: &[&str]) -> String {
        let err = Users::parse(text).expect_err(text).to_string();
        assert!(err.starts_with(&format!("line {line}: ")), "{err}");
        for secret in secrets {
            assert!(!err.contains(secret), "{err:?} echoes {secret:?}");
        }
        err
    }

    #[test]
    fn load_errors_name_the_line_and_not_the_hash() {
        let hash_part = &ALICE_HASH[ALICE_HASH.len() - 20..];
        refused("# ok\nhunter2\n", 2, &["hunter2"]);
        refused(&format!(":{{SHA512-CRYPT}}{ALICE_HASH}\n"), 1, &[hash_part]);
        refused("alice:{PLAIN}hunter2\n", 1, &["hunter2"]);
        refused("alice:{CLEAR}hunter2:1000\n", 1, &["hunter2"]);
        refused("alice:{PLAIN-MD5}5f4dcc3b5aa765d61d8327deb882cf99\n", 1, &["5f4dcc3b"]);
        refused("\n\nalice:{NOSUCH}whatever\n", 3, &["whatever", "NOSUCH"]);
        refused("alice:$1$saltsalt$/jkPlMLBgXfPMvVeXb86N0\n", 1, &["/jkPlMLBgXfPMvVeXb86N0"]);
        refused("alice:hunter2\n", 1, &["hunter2"]);
        refused("alice::1000:1000\n", 1, &[]);
        let truncated = &ALICE_HASH[..ALICE_HASH.len() - 2];
        refused(&format!("alice:{{SHA512-CRYPT}}{truncated}\n"), 1, &[&truncated[20..]]);
        let err = refused(
            &format!("bob:{BOB_HASH}\nalice:{ALICE_HASH}\nbob:{CAROL_HASH}\n"),
            3,
            &[&BOB_HASH[10..], &CAROL_HASH[10..]],
        );
        assert!(err.contains("\"bob\"") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn load_prefixes_errors_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "alice:{PLAIN}hunter2\n").unwrap();
        let err = Users::load(&path).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: line 1: ", path.display())), "{err}");
        assert!(!err.contains("hunter2"));

        std::fs::write(&path, [format!("alice:{ALICE_HASH}\n").as_bytes(), b"b\xffb:x\n"].concat()).unwrap();
        let err = Users::load(&path).unwrap_err().to_string();
        assert_eq!(err, format!("{}: line 2: not valid UTF-8", path.display()));

        let err = Users::load(&dir.path().join("missing")).unwrap_err().to_string();
        assert!(err.contains("missing") && err.contains("cannot read"), "{err}");

        std::fs::write(&path, dovecot_file()).unwrap();
        assert_eq!(Users::load(&path).unwrap().len(), 3);
    }

    #[test]
    fn debug_shows_names_not_hashes() {
        let users = Users::parse(&dovecot_file()).unwrap();
        let shown = format!("{users:?}");
        assert_eq!(shown, r#"Users { count: 3, users: ["alice", "bob", "carol"], .. }"#);
    }
}
