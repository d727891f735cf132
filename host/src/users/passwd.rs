//! What `smtpcell passwd` does: read a new password, hash it with argon2id,
//! and set it in the users file.

use std::io::{self, IsTerminal, Read};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use argon2::{Argon2, PasswordHasher};

use super::{MAX_PASSWORD_LEN, atomic, edit};

/// An argon2id hash of `password` in the users file's form,
/// `{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`: the argon2
/// crate's defaults (OWASP's m=19456 KiB, t=2, p=1) with a 16-byte salt
/// from the OS's random source. Dovecot verifies it too (scheme ARGON2ID).
///
/// # Errors
/// The password is empty or longer than [`MAX_PASSWORD_LEN`] bytes, or the
/// OS gives no random bytes.
pub fn hash_password(password: &[u8]) -> Result<String> {
    hash_with(&Argon2::default(), password)
}

fn hash_with(argon2: &Argon2<'_>, password: &[u8]) -> Result<String> {
    check_password(password)?;
    let hash = argon2.hash_password(password).map_err(|err| anyhow!("cannot hash the password: {err}"))?;
    Ok(format!("{{ARGON2ID}}{hash}"))
}

/// Adds `user` to the users file at `path` with an argon2id hash of
/// `password` (see [`hash_password`]), or replaces the hash in its line.
/// Returns whether the user existed.
///
/// Every other byte of the file is kept: comments, blank lines, other
/// users' lines, and the user's own fields after the hash (uid, gid, home,
/// Dovecot extra fields). A missing file is created with mode 0600; an
/// existing one keeps its mode and owner. The file is replaced atomically
/// (temporary file in the same directory, fsync, rename, fsync of the
/// directory), so a server reading it sees the old or the new version.
///
/// # Errors
/// `user` is empty, starts with `#`, or contains `:`, whitespace or control
/// characters (the file could not represent it); the password is refused by
/// [`hash_password`]; `path` is a symbolic link, a directory or another
/// non-regular file; the user appears on more than one line; or reading,
/// writing, giving the new file the old owner, or renaming fails.
pub fn set_password(path: &Path, user: &str, password: &[u8]) -> Result<bool> {
    check_user_name(user)?;
    check_password(password)?;
    // Read first: a wrong path fails before the (deliberately slow) hash.
    let existing = atomic::read(path)?;
    let field = hash_password(password)?;
    set_field(path, user, &field, existing)
}

fn set_field(path: &Path, user: &str, field: &str, existing: Option<atomic::Existing>) -> Result<bool> {
    let old: &[u8] = existing.as_ref().map_or(&[], |existing| &existing.contents);
    let (contents, existed) =
        edit::with_password(old, user, field).map_err(|err| anyhow!("{}: {err}", path.display()))?;
    atomic::write(path, &contents, existing.as_ref())?;
    Ok(existed)
}

/// The new password for `smtpcell passwd`. When stdin is a terminal, it is
/// read from the terminal without echo, twice, and both must match;
/// otherwise all of stdin is the password, less ONE trailing `\n` or
/// `\r\n` (so `echo pw |` and a file with a final newline both work, and a
/// password may hold any other bytes).
///
/// # Errors
/// The password is empty or longer than [`MAX_PASSWORD_LEN`] bytes, the two
/// entries differ, or reading fails.
pub fn read_new_password() -> Result<Vec<u8>> {
    let stdin = io::stdin();
    let password = if stdin.is_terminal() {
        let first = rpassword::prompt_password("New password: ").context("cannot read the password")?;
        check_password(first.as_bytes())?;
        let again = rpassword::prompt_password("Retype new password: ").context("cannot read the password")?;
        if first != again {
            bail!("the passwords do not match");
        }
        first.into_bytes()
    } else {
        read_password_from(stdin.lock()).context("cannot read the password from stdin")?
    };
    check_password(&password)?;
    Ok(password)
}

/// Everything `reader` gives, less one trailing `\n` or `\r\n`. Reads at
/// most a few bytes past the limit, so a huge input is refused without
/// being held in memory.
fn read_password_from(reader: impl Read) -> io::Result<Vec<u8>> {
    let mut password = Vec::new();
    reader.take(MAX_PASSWORD_LEN as u64 + 3).read_to_end(&mut password)?;
    let end = if password.ends_with(b"\r\n") {
        password.len() - 2
    } else if password.ends_with(b"\n") {
        password.len() - 1
    } else {
        password.len()
    };
    password.truncate(end);
    Ok(password)
}

fn check_password(password: &[u8]) -> Result<()> {
    if password.is_empty() {
        bail!("empty passwords are refused");
    }
    if password.len() > MAX_PASSWORD_LEN {
        bail!("the password is longer than {MAX_PASSWORD_LEN} bytes");
    }
    Ok(())
}

/// A name the file can hold and `Users::parse` reads back as the same name.
fn check_user_name(user: &str) -> Result<()> {
    if user.is_empty() {
        bail!("the user name is empty");
    }
    if user.starts_with('#') {
        bail!("the user name {user:?} starts with '#', which would make its line a comment");
    }
    if user.contains(':') {
        bail!("the user name {user:?} contains ':', the users file's field separator");
    }
    if user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("the user name {user:?} contains whitespace or control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::super::Users;
    use super::*;

    /// A valid `{ARGON2ID}` field, cheap enough to make in every test.
    fn cheap_field(password: &[u8]) -> String {
        let params = argon2::Params::new(8, 1, 1, None).unwrap();
        hash_with(&Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params), password).unwrap()
    }

    /// `set_password` with a cheap hash.
    fn set_cheap(path: &Path, user: &str, password: &[u8]) -> Result<bool> {
        check_user_name(user)?;
        let existing = atomic::read(path)?;
        set_field(path, user, &cheap_field(password), existing)
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn hash_password_uses_the_argon2_defaults() {
        let field = hash_password(b"s3cret").unwrap();
        assert!(field.starts_with("{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$"), "{field}");
        let other = hash_password(b"s3cret").unwrap();
        assert_ne!(field, other, "salts are random");
        let users = Users::parse(&format!("u:{field}\n")).unwrap();
        assert!(users.verify("u", b"s3cret"));
        assert!(!users.verify("u", b"s3cret "));
    }

    #[test]
    fn hash_password_refuses_empty_and_overlong_passwords() {
        assert!(hash_password(b"").is_err());
        assert!(hash_password(&[b'a'; MAX_PASSWORD_LEN + 1]).is_err());
    }

    #[test]
    fn set_password_creates_the_file_with_mode_0600_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        assert!(!set_password(&path, "alice@example.org", b"pw \xff: 1").unwrap());
        assert_eq!(mode(&path), 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("alice@example.org:{ARGON2ID}$argon2id$") && text.ends_with('\n'), "{text}");
        let users = Users::load(&path).unwrap();
        assert_eq!(users.len(), 1);
        assert!(users.verify("alice@example.org", b"pw \xff: 1"));
        assert!(!users.verify("alice@example.org", b"pw"));
        // Nothing but the file is left in the directory.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn set_password_replaces_keeping_other_lines_and_extra_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let before = "# smtpcell users\n\
                      alice:{PLAIN}old:1000:1000::/home/alice::userdb_quota_rule=*:storage=1G\n\
                      \n\
                      bob:$5$pL9xWq3Ea7Ym$u8hF9bFWJoZsgiBBIguXElbtQoClx1AzrQpWVazQNzA\r\n";
        fs::write(&path, before).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();

        assert!(set_cheap(&path, "alice", b"new alice").unwrap());
        let after = fs::read_to_string(&path).unwrap();
        let alice = after.lines().nth(1).unwrap();
        let field = alice.split(':').nth(1).unwrap();
        assert!(field.starts_with("{ARGON2ID}$argon2id$"), "{alice}");
        assert_eq!(after, before.replace("{PLAIN}old", field));
        assert_eq!(mode(&path), 0o640, "an existing file keeps its mode");

        let users = Users::load(&path).unwrap();
        assert!(users.verify("alice", b"new alice"));
        assert!(users.verify("bob", b"correct horse 256"));
    }

    #[test]
    fn set_password_adds_a_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        assert!(!set_cheap(&path, "alice", b"one").unwrap());
        assert!(!set_cheap(&path, "bob", b"two").unwrap());
        assert!(set_cheap(&path, "alice", b"three").unwrap());
        let users = Users::load(&path).unwrap();
        assert_eq!(users.len(), 2);
        assert!(users.verify("alice", b"three"));
        assert!(!users.verify("alice", b"one"));
        assert!(users.verify("bob", b"two"));
        assert_eq!(fs::read_to_string(&path).unwrap().lines().next().unwrap().split(':').next(), Some("alice"));
    }

    #[test]
    fn set_password_refuses_bad_user_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        for user in ["", "a:b", "a b", "a\tb", "a\nb", "a\rb", "a\0b", "a\u{7f}b", "a\u{a0}b", "#a"] {
            let err = set_password(&path, user, b"pw").unwrap_err().to_string();
            assert!(err.contains("user name"), "{user:?}: {err}");
        }
        assert!(!path.exists());
    }

    #[test]
    fn set_password_refuses_an_empty_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        assert!(set_password(&path, "alice", b"").is_err());
        assert!(!path.exists());
    }

    #[test]
    fn set_password_refuses_symlinks_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real");
        fs::write(&target, "alice:{PLAIN}x\n").unwrap();
        let link = dir.path().join("link");
        symlink(&target, &link).unwrap();
        let err = set_password(&link, "alice", b"pw").unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "alice:{PLAIN}x\n");
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());

        let dangling = dir.path().join("dangling");
        symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(set_password(&dangling, "alice", b"pw").is_err());
        assert!(!dir.path().join("nowhere").exists());

        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let err = set_password(&sub, "alice", b"pw").unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(sub.is_dir());

        assert!(set_password(&dir.path().join("no-such-dir/users"), "alice", b"pw").is_err());
    }

    #[test]
    fn set_password_refuses_a_duplicated_user_and_leaves_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        fs::write(&path, "bob:x\nbob:y\n").unwrap();
        let err = set_cheap(&path, "bob", b"pw").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "bob:x\nbob:y\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_password_from_stdin_loses_one_line_ending() {
        let read = |input: &[u8]| read_password_from(input).unwrap();
        assert_eq!(read(b"pw\n"), b"pw");
        assert_eq!(read(b"pw\r\n"), b"pw");
        assert_eq!(read(b"pw"), b"pw");
        assert_eq!(read(b"pw\n\n"), b"pw\n");
        assert_eq!(read(b"pw\r\n\r\n"), b"pw\r\n");
        assert_eq!(read(b"pw\r"), b"pw\r");
        assert_eq!(read(b" a\nb \xff\n"), b" a\nb \xff");
        assert_eq!(read(b"\n"), b"");
        let long = vec![b'a'; 100_000];
        assert!(read(&long).len() > MAX_PASSWORD_LEN);
        let mut max = vec![b'a'; MAX_PASSWORD_LEN];
        max.extend_from_slice(b"\r\n");
        assert_eq!(read(&max).len(), MAX_PASSWORD_LEN);
    }
}
