//! Setting one user's password field in the users file's bytes. Everything
//! else, down to line endings, comments, other users' lines (whatever they
//! hold, even lines this server would refuse) and the user's own fields
//! after the password, is copied unchanged.

use anyhow::{Result, bail};

/// `contents` with `user`'s password field set to `field`, a line
/// `user:field` appended if the user had none; and whether it had one.
///
/// # Errors
/// The user has more than one line (which one is meant is for a person to
/// decide, and the file would not load anyway).
pub(super) fn with_password(contents: &[u8], user: &str, field: &str) -> Result<(Vec<u8>, bool)> {
    let mut out = Vec::with_capacity(contents.len() + user.len() + field.len() + 3);
    let mut found_on = None;
    let mut crlf = false;
    for (index, line) in contents.split_inclusive(|b| *b == b'\n').enumerate() {
        let (body, ending) = split_ending(line);
        if !ending.is_empty() {
            crlf = ending == b"\r\n";
        }
        if user_name(body) != Some(user.as_bytes()) {
            out.extend_from_slice(line);
            continue;
        }
        if let Some(earlier) = found_on {
            bail!("line {}: user {user:?} is already defined on line {earlier}; fix the file by hand", index + 1);
        }
        found_on = Some(index + 1);
        let rest = &body[user.len() + 1..];
        out.extend_from_slice(user.as_bytes());
        out.push(b':');
        out.extend_from_slice(field.as_bytes());
        // The uid, gid, home and extra fields stay as they were.
        if let Some(end) = rest.iter().position(|b| *b == b':') {
            out.extend_from_slice(&rest[end..]);
        }
        out.extend_from_slice(ending);
    }
    let newline: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    if found_on.is_none() {
        if !contents.is_empty() && !contents.ends_with(b"\n") {
            out.extend_from_slice(newline);
        }
        out.extend_from_slice(user.as_bytes());
        out.push(b':');
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(newline);
    }
    Ok((out, found_on.is_some()))
}

/// A line without its `\n` or `\r\n` (or, at the end of the file, `\r`),
/// and that ending.
fn split_ending(line: &[u8]) -> (&[u8], &[u8]) {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    line.split_at(body.len())
}

/// The user name of a line, as `Users::parse` reads it: none for blank and
/// comment lines and lines without ':'.
fn user_name(body: &[u8]) -> Option<&[u8]> {
    if body.first().is_none_or(|b| *b == b'#') {
        return None;
    }
    let end = body.iter().position(|b| *b == b':')?;
    Some(&body[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(contents: &str, user: &str) -> (String, bool) {
        let (out, existed) = with_password(contents.as_bytes(), user, "{ARGON2ID}NEW").unwrap();
        (String::from_utf8(out).unwrap(), existed)
    }

    #[test]
    fn replaces_only_the_password_field() {
        let file = "# users\n\
                    alice:{SHA512-CRYPT}$6$old:1000:1000::/home/alice::userdb_quota_rule=*:storage=1G\n\
                    \n\
                    bob:{PLAIN}whatever\n\
                    # bob:commented out\n\
                    garbage line\n\
                    carol:$2y$old\n";
        let (out, existed) = set(file, "alice");
        assert!(existed);
        assert_eq!(out, file.replace("{SHA512-CRYPT}$6$old", "{ARGON2ID}NEW"));

        let (out, existed) = set(file, "bob");
        assert!(existed);
        assert_eq!(out, file.replace("bob:{PLAIN}whatever", "bob:{ARGON2ID}NEW"));

        let (out, _) = set(file, "carol");
        assert_eq!(out, file.replace("carol:$2y$old", "carol:{ARGON2ID}NEW"));
    }

    #[test]
    fn keeps_line_endings() {
        let (out, existed) = set("a:x\r\nbob:old:1:2\r\nc:y", "bob");
        assert!(existed);
        assert_eq!(out, "a:x\r\nbob:{ARGON2ID}NEW:1:2\r\nc:y");
        let (out, _) = set("a:x\nbob:old", "bob");
        assert_eq!(out, "a:x\nbob:{ARGON2ID}NEW");
        let (out, _) = set("a:x\nbob:old\r", "bob");
        assert_eq!(out, "a:x\nbob:{ARGON2ID}NEW\r");
    }

    #[test]
    fn appends_a_new_user() {
        assert_eq!(set("", "dave"), ("dave:{ARGON2ID}NEW\n".to_owned(), false));
        assert_eq!(set("# only a comment\n", "dave"), ("# only a comment\ndave:{ARGON2ID}NEW\n".to_owned(), false));
        assert_eq!(set("a:x", "dave"), ("a:x\ndave:{ARGON2ID}NEW\n".to_owned(), false));
        assert_eq!(set("a:x\r\nb:y", "dave"), ("a:x\r\nb:y\r\ndave:{ARGON2ID}NEW\r\n".to_owned(), false));
        // Names are exact: neither a prefix nor a differently-cased name matches.
        assert!(!set("davey:x\nDave:y\n", "dave").1);
        assert!(!set("#dave:x\n", "dave").1);
    }

    #[test]
    fn other_bytes_need_not_be_utf8() {
        let file = b"\xff\xfe:junk\nbob:old\n# \x80\n";
        let (out, existed) = with_password(file, "bob", "{ARGON2ID}NEW").unwrap();
        assert!(existed);
        assert_eq!(out, b"\xff\xfe:junk\nbob:{ARGON2ID}NEW\n# \x80\n");
    }

    #[test]
    fn refuses_a_user_defined_twice() {
        let err = with_password(b"bob:a\nalice:b\nbob:c\n", "bob", "{ARGON2ID}NEW").unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("line 1"), "{err}");
    }
}
