//! The password field of a users file line: Dovecot's `{SCHEME}` prefix
//! over a crypt(3)-style hash string, parsed once at load and verified by the
//! crate that implements the scheme (argon2, bcrypt, sha-crypt).
//!
//! Every error message here is written so that it never contains the field:
//! a mistyped line may hold a plaintext password, so even the text of an
//! unknown `{SCHEME}` name is not echoed.

use std::fmt;

use anyhow::{Result, anyhow, bail};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use sha_crypt::{PasswordHashRef, ShaCrypt};

/// What the error for an unsupported scheme or hash tells the operator to use.
const SUPPORTED: &str = "supported: {ARGON2ID}, {ARGON2I}, {BLF-CRYPT}, {SHA512-CRYPT}, {SHA256-CRYPT}, \
                         or {CRYPT} / no prefix with a $argon2id$, $argon2i$, $2y$, $2b$, $2a$, $6$ or $5$ hash; \
                         set the password with `smtpcell passwd`";

/// Dovecot schemes that store the password itself, or an unsalted (or
/// plaintext-equivalent) digest of it: anyone who reads the file can log in
/// or brute-force it at GPU speed.
const PLAINTEXT_SCHEMES: &[&str] = &[
    "PLAIN",
    "CLEAR",
    "CLEARTEXT",
    "PLAIN-TRUNC",
    "PLAIN-MD4",
    "PLAIN-MD5",
    "LDAP-MD5",
    "SHA",
    "SHA1",
    "SHA256",
    "SHA512",
    "CRAM-MD5",
    "HMAC-MD5",
    "DIGEST-MD5",
    "NTLM",
    "LANMAN",
    "RPA",
];

/// Other Dovecot schemes, named in the error so the operator knows the line
/// was understood but is not accepted here.
const OTHER_KNOWN_SCHEMES: &[&str] = &[
    "MD5",
    "MD5-CRYPT",
    "DES-CRYPT",
    "SMD5",
    "SSHA",
    "SSHA256",
    "SSHA512",
    "PBKDF2",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "OTP",
    "SKEY",
];

/// Argon2 memory costs above this (KiB) are refused at load: every login
/// allocates that much, so a mistyped `m=` would take the server's memory
/// (the allocator may well succeed and the OOM killer act later). 2 GiB is
/// RFC 9106's largest recommended setting; OWASP's is 19 MiB.
pub(super) const ARGON2_MAX_M_COST: u32 = 2 * 1024 * 1024;

/// A parsed password hash, ready to verify against. Holds no plaintext, but
/// the hash is still secret-ish (offline guessing), hence the hand-written
/// `Debug`.
pub(super) enum Credential {
    Argon2(Box<PasswordHash>),
    /// A bcrypt string the bcrypt crate has parsed, with an allowed cost.
    Bcrypt(String),
    /// A `$5$` or `$6$` string whose fields have been checked as sha-crypt's
    /// verifier reads them.
    ShaCrypt(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self {
            Credential::Argon2(hash) => hash.algorithm.as_str(),
            Credential::Bcrypt(_) => "bcrypt",
            Credential::ShaCrypt(hash) if hash.starts_with("$5$") => "sha256-crypt",
            Credential::ShaCrypt(_) => "sha512-crypt",
        };
        write!(f, "Credential({scheme})")
    }
}

/// Which hash family a `{SCHEME}` prefix (or its absence) allows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Argon2id,
    Argon2i,
    Bcrypt,
    Sha512,
    Sha256,
    /// `{CRYPT}` or no prefix: whatever crypt(3) prefix the hash has.
    Crypt,
}

impl Credential {
    /// Parses a users file password field: `{SCHEME}hash`, or a bare crypt
    /// hash (Dovecot's default scheme is CRYPT). Scheme names are
    /// case-insensitive, as in Dovecot.
    pub(super) fn parse(field: &str) -> Result<Credential> {
        if field.is_empty() {
            bail!("the password field is empty; {SUPPORTED}");
        }
        let (expect, hash) = match scheme_prefix(field) {
            None => (Expect::Crypt, field),
            Some((name, hash)) => (expect_for(name)?, hash),
        };
        parse_hash(expect, hash)
    }

    /// Whether `password` hashes to this credential. Any failure inside the
    /// crate (there should be none after `parse`) counts as a mismatch.
    pub(super) fn verify(&self, password: &[u8]) -> bool {
        match self {
            Credential::Argon2(hash) => Argon2::default().verify_password(password, hash.as_ref()).is_ok(),
            Credential::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Credential::ShaCrypt(hash) => ShaCrypt::default().verify_password(password, hash.as_str()).is_ok(),
        }
    }
}

/// `{NAME}rest` → `(NAME, rest)`. Like Dovecot, a field that opens `{`
/// without closing it has no scheme prefix.
fn scheme_prefix(field: &str) -> Option<(&str, &str)> {
    let inner = field.strip_prefix('{')?;
    let end = inner.find('}')?;
    Some((&inner[..end], &inner[end + 1..]))
}

fn expect_for(name: &str) -> Result<Expect> {
    let upper = name.to_ascii_uppercase();
    Ok(match upper.as_str() {
        "ARGON2ID" => Expect::Argon2id,
        "ARGON2I" => Expect::Argon2i,
        "BLF-CRYPT" => Expect::Bcrypt,
        "SHA512-CRYPT" => Expect::Sha512,
        "SHA256-CRYPT" => Expect::Sha256,
        "CRYPT" => Expect::Crypt,
        _ => {
            // Dovecot allows an encoding suffix (`{PLAIN-MD5.hex}`).
            let base = upper.split('.').next().unwrap_or_default();
            if let Some(known) = PLAINTEXT_SCHEMES.iter().find(|s| **s == base) {
                bail!(
                    "scheme {{{known}}}: plaintext/unsalted schemes are not accepted; \
                     set the password with `smtpcell passwd`"
                );
            }
            if let Some(known) = OTHER_KNOWN_SCHEMES.iter().find(|s| **s == base) {
                bail!("scheme {{{known}}} is not supported; {SUPPORTED}");
            }
            bail!("unknown password scheme; {SUPPORTED}");
        }
    })
}

fn parse_hash(expect: Expect, hash: &str) -> Result<Credential> {
    // The crypt(3) prefix decides the family; the scheme only has to agree.
    let found = if hash.starts_with("$argon2id$") {
        Expect::Argon2id
    } else if hash.starts_with("$argon2i$") {
        Expect::Argon2i
    } else if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
        Expect::Bcrypt
    } else if hash.starts_with("$6$") {
        Expect::Sha512
    } else if hash.starts_with("$5$") {
        Expect::Sha256
    } else {
        bail!("{}; {SUPPORTED}", unsupported_crypt(hash));
    };
    if expect != Expect::Crypt && expect != found {
        bail!("the hash does not have the form its {{{}}} scheme prefix names", scheme_name(expect));
    }
    match found {
        Expect::Argon2id | Expect::Argon2i => parse_argon2(hash).map(|hash| Credential::Argon2(Box::new(hash))),
        Expect::Bcrypt => parse_bcrypt(hash),
        Expect::Sha512 | Expect::Sha256 => parse_sha_crypt(hash),
        Expect::Crypt => unreachable!("`found` is always a concrete family"),
    }
}

fn scheme_name(expect: Expect) -> &'static str {
    match expect {
        Expect::Argon2id => "ARGON2ID",
        Expect::Argon2i => "ARGON2I",
        Expect::Bcrypt => "BLF-CRYPT",
        Expect::Sha512 => "SHA512-CRYPT",
        Expect::Sha256 => "SHA256-CRYPT",
        Expect::Crypt => "CRYPT",
    }
}

/// Names the crypt(3) method of a hash we refuse, when it is a known one.
/// Only fixed prefixes are matched, so nothing of the field is echoed.
fn unsupported_crypt(hash: &str) -> &'static str {
    const KNOWN: &[(&str, &str)] = &[
        ("$1$", "MD5-CRYPT ($1$) is not supported"),
        ("$2x$", "bcrypt $2x$ (hashes from the pre-2011 buggy implementation) is not supported"),
        ("$2$", "the original bcrypt $2$ is not supported"),
        ("$argon2d$", "argon2d is not supported (use argon2id)"),
        ("$y$", "yescrypt ($y$) is not supported"),
        ("$gy$", "gost-yescrypt ($gy$) is not supported"),
        ("$7$", "scrypt ($7$) is not supported"),
        ("$sha1$", "SHA1-CRYPT ($sha1$) is not supported"),
        ("$md5", "Sun MD5-CRYPT is not supported"),
        ("$3$", "NT-HASH ($3$) is not supported"),
    ];
    if let Some((_, message)) = KNOWN.iter().find(|(prefix, _)| hash.starts_with(prefix)) {
        return message;
    }
    if hash.starts_with('$') {
        "this crypt(3) hash method is not supported"
    } else {
        // Thirteen characters of [./0-9A-Za-z] is traditional DES crypt, but a
        // plaintext password can look like anything: describe neither.
        "not a supported hash (DES crypt and plaintext passwords are not accepted)"
    }
}

fn parse_argon2(hash: &str) -> Result<PasswordHash> {
    let parsed = PasswordHash::new(hash).map_err(|err| anyhow!("the argon2 hash does not parse: {err}"))?;
    argon2::Algorithm::try_from(parsed.algorithm.as_str())
        .map_err(|err| anyhow!("the argon2 hash does not parse: {err}"))?;
    if let Some(version) = parsed.version {
        argon2::Version::try_from(version).map_err(|err| anyhow!("the argon2 hash's version: {err}"))?;
    }
    // What `verify_password` will build from the hash, checked now.
    let params = argon2::Params::try_from(&parsed).map_err(|err| anyhow!("the argon2 hash's parameters: {err}"))?;
    match (&parsed.salt, &parsed.hash) {
        (Some(salt), Some(_)) if salt.len() >= argon2::MIN_SALT_LEN => {}
        (Some(_), Some(_)) => bail!("the argon2 hash's salt is shorter than {} bytes", argon2::MIN_SALT_LEN),
        _ => bail!("the argon2 hash lacks its salt or its hash output"),
    }
    if params.m_cost() > ARGON2_MAX_M_COST {
        bail!(
            "the argon2 hash's memory cost m={} KiB is above the {ARGON2_MAX_M_COST} KiB this server allows \
             (every login would allocate it)",
            params.m_cost()
        );
    }
    Ok(parsed)
}

fn parse_bcrypt(hash: &str) -> Result<Credential> {
    let parts: bcrypt::HashParts = hash.parse().map_err(|err| anyhow!("the bcrypt hash does not parse: {err}"))?;
    // The parser takes any two-digit cost; hashing refuses outside 4..=31.
    if !(4..=31).contains(&parts.get_cost()) {
        bail!("the bcrypt hash's cost {} is outside 4..=31", parts.get_cost());
    }
    Ok(Credential::Bcrypt(hash.to_owned()))
}

/// Checks a `$5$`/`$6$` string the way sha-crypt's verifier reads it
/// (`$id$[rounds=N$]salt$hash`, nothing after), so that a hash it could never
/// match fails here instead of at every login.
fn parse_sha_crypt(hash: &str) -> Result<Credential> {
    const FORM: &str = "the SHA-crypt hash does not parse (expected $6$[rounds=N$]salt$hash or $5$...)";
    let parsed = PasswordHashRef::new(hash).map_err(|_| anyhow!(FORM))?;
    let output_len = match parsed.id() {
        "5" => sha_crypt::BLOCK_SIZE_SHA256,
        "6" => sha_crypt::BLOCK_SIZE_SHA512,
        _ => bail!(FORM),
    };
    let mut fields = parsed.fields();
    let params_or_salt = fields.next().ok_or_else(|| anyhow!(FORM))?;
    if let Some(rounds) = params_or_salt.as_str().strip_prefix("rounds=") {
        // glibc clamps an out-of-range count; the crate would instead take
        // `rounds=...` for the salt and never match, so refuse it here.
        let ok = rounds.parse::<u32>().ok().and_then(|n| sha_crypt::Params::new(n).ok()).is_some();
        if !ok {
            bail!(
                "the SHA-crypt hash's rounds= must be a number from {} to {}",
                sha_crypt::Params::ROUNDS_MIN,
                sha_crypt::Params::ROUNDS_MAX
            );
        }
        fields.next().ok_or_else(|| anyhow!(FORM))?; // the salt
    }
    let mut buf = [0u8; sha_crypt::BLOCK_SIZE_SHA512];
    let decoded = fields
        .next()
        .ok_or_else(|| anyhow!(FORM))?
        .decode_base64_into(mcf::Base64::Crypt, &mut buf)
        .map_err(|_| anyhow!("the SHA-crypt hash's hash part is not valid crypt base64"))?;
    if decoded.len() != output_len || fields.next().is_some() {
        bail!(FORM);
    }
    Ok(Credential::ShaCrypt(hash.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known vectors from independent implementations (test-only passwords):
    // `openssl passwd -6 -salt Zs2kQvN0oRt8 'correct horse 512'`
    const SHA512: (&str, &str) = (
        "correct horse 512",
        "$6$Zs2kQvN0oRt8$xHQYk9TXTDVocNdS/2N/KZJ4tRPq5w2ttmnOvdraH/66ui/ZH1mdyU/QEWcU5YSS1jWjpELaul9WsTbBZ1faE0",
    );
    // `openssl passwd -5 -salt pL9xWq3Ea7Ym 'correct horse 256'`
    const SHA256: (&str, &str) = ("correct horse 256", "$5$pL9xWq3Ea7Ym$u8hF9bFWJoZsgiBBIguXElbtQoClx1AzrQpWVazQNzA");
    // glibc/libxcrypt crypt(3) through perl: crypt("rounds pass 512", '$6$rounds=10000$Hq7Lr2NvXc$')
    const SHA512_ROUNDS: (&str, &str) = (
        "rounds pass 512",
        "$6$rounds=10000$Hq7Lr2NvXc$uZ0Zk0NK0gnn9RVCVl3/RnSpkqNg.qmNpOARdqQEXoT5oNrsgqC8wYrUIcuZK/4GyS8pB/t0YvJxD9vaJBtpJ1",
    );
    // crypt("rounds pass 256", '$5$rounds=2000$Tb4Kd8MsQe$')
    const SHA256_ROUNDS: (&str, &str) =
        ("rounds pass 256", "$5$rounds=2000$Tb4Kd8MsQe$wZ5l97ZhNXKfxmXcuR4/ahkT8944Wso5gRFHiWrUOH3");
    // `htpasswd -nbB -C 5 alice 'blowfish 2y'`
    const BCRYPT_2Y: (&str, &str) = ("blowfish 2y", "$2y$05$ItSdP8qyb224fZ12y8E9leAAAZc8jDuk1gu2oWJQFW3qo6Sg3fzj2");
    // libxcrypt crypt("blowfish 2b", '$2b$05$abcdefghijklmnopqrstuu')
    const BCRYPT_2B: (&str, &str) = ("blowfish 2b", "$2b$05$abcdefghijklmnopqrstuucuwEzpoGlKsy4uacc2ChdcbDcip7VGW");
    // libxcrypt crypt("blowfish 2a", '$2a$04$0123456789ABCDEFGHIJKu')
    const BCRYPT_2A: (&str, &str) = ("blowfish 2a", "$2a$04$0123456789ABCDEFGHIJKuAL8GGPx2PQ7UTFJ/3F9TlVqLf8Wtlhu");
    // libxcrypt crypt("x" x 80, '$2b$04$abcdefghijklmnopqrstuu'): bcrypt reads 72 bytes.
    const BCRYPT_LONG: &str = "$2b$04$abcdefghijklmnopqrstuubzadhGtS2zEF.gu0yd0opP6cVzb.e0i";
    // `echo -n 'argon two id' | argon2 saltysalt0123 -id -e`
    const ARGON2ID: (&str, &str) = (
        "argon two id",
        "$argon2id$v=19$m=4096,t=3,p=1$c2FsdHlzYWx0MDEyMw$9/apVnHAkVwY/Bm1H7IvXBcmvnaL7SfcgRbwwQ/WoUY",
    );
    // `echo -n 'argon two i' | argon2 pepperless987 -i -e`
    const ARGON2I: (&str, &str) =
        ("argon two i", "$argon2i$v=19$m=4096,t=3,p=1$cGVwcGVybGVzczk4Nw$01mo1U0Nec9wm+4igCvOlRtssYatoGM2bHSuS+2Sc9U");
    // `echo -n 'argon two id v16' | argon2 oldversion42 -id -v 10 -e`
    const ARGON2ID_V16: (&str, &str) = (
        "argon two id v16",
        "$argon2id$v=16$m=4096,t=3,p=1$b2xkdmVyc2lvbjQy$wh2IoKLpqS+z4v9kad6GQ8CiTqpXjMIg0GalXynN0yY",
    );

    /// Parses `field` and checks the right password verifies and wrong ones do not.
    fn check(field: &str, password: &str) {
        let credential = Credential::parse(field).unwrap_or_else(|err| panic!("{field}: {err}"));
        assert!(credential.verify(password.as_bytes()), "{field} with its password");
        assert!(!credential.verify(format!("{password}x").as_bytes()), "{field} with a wrong password");
        assert!(!credential.verify(b""), "{field} with an empty password");
    }

    #[test]
    fn sha_crypt_vectors_with_and_without_prefix() {
        for (password, hash) in [SHA512, SHA512_ROUNDS] {
            check(&format!("{{SHA512-CRYPT}}{hash}"), password);
            check(&format!("{{CRYPT}}{hash}"), password);
            check(hash, password);
        }
        for (password, hash) in [SHA256, SHA256_ROUNDS] {
            check(&format!("{{SHA256-CRYPT}}{hash}"), password);
            check(&format!("{{crypt}}{hash}"), password);
            check(hash, password);
        }
    }

    #[test]
    fn bcrypt_vectors_with_and_without_prefix() {
        for (password, hash) in [BCRYPT_2Y, BCRYPT_2B, BCRYPT_2A] {
            check(&format!("{{BLF-CRYPT}}{hash}"), password);
            check(&format!("{{CRYPT}}{hash}"), password);
            check(hash, password);
        }
    }

    #[test]
    fn bcrypt_reads_72_bytes_like_crypt_blowfish() {
        let credential = Credential::parse(&format!("{{BLF-CRYPT}}{BCRYPT_LONG}")).unwrap();
        assert!(credential.verify(&[b'x'; 80]));
        assert!(credential.verify(&[b'x'; 72]));
        assert!(!credential.verify(&[b'x'; 71]));
    }

    #[test]
    fn argon2_vectors_with_and_without_prefix() {
        for (password, hash) in [ARGON2ID, ARGON2ID_V16] {
            check(&format!("{{ARGON2ID}}{hash}"), password);
            check(&format!("{{CRYPT}}{hash}"), password);
            check(hash, password);
        }
        check(&format!("{{ARGON2I}}{}", ARGON2I.1), ARGON2I.0);
        check(ARGON2I.1, ARGON2I.0);
    }

    #[test]
    fn scheme_names_are_case_insensitive() {
        check(&format!("{{sha512-crypt}}{}", SHA512.1), SHA512.0);
        check(&format!("{{Blf-Crypt}}{}", BCRYPT_2Y.1), BCRYPT_2Y.0);
        check(&format!("{{argon2id}}{}", ARGON2ID.1), ARGON2ID.0);
    }

    #[test]
    fn passwords_may_hold_any_bytes() {
        let params = argon2::Params::new(8, 1, 1, None).unwrap();
        let argon2 = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let password = [0u8, 0xff, b':', b'\n', 0x80, b' '];
        let hash = argon2::PasswordHasher::hash_password(&argon2, &password).unwrap().to_string();
        let credential = Credential::parse(&hash).unwrap();
        assert!(credential.verify(&password));
        assert!(!credential.verify(&password[..5]));
    }

    /// The error for `field`, checked not to echo the hash (or the field).
    fn refused(field: &str) -> String {
        let err = Credential::parse(field).expect_err(field).to_string();
        let hash = field.rsplit('$').next().unwrap_or(field);
        assert!(field.is_empty() || !err.contains(field), "{err:?} echoes {field:?}");
        if hash.len() >= 6 {
            assert!(!err.contains(hash), "{err:?} echoes the hash of {field:?}");
        }
        err
    }

    #[test]
    fn plaintext_and_unsalted_schemes_are_refused() {
        for field in
            ["{PLAIN}hunter2", "{clear}hunter2", "{PLAIN-MD5}5f4dcc3b5aa765d61d8327deb882cf99", "{SHA256.hex}abcd"]
        {
            let err = refused(field);
            assert!(err.contains("plaintext/unsalted schemes are not accepted"), "{err}");
            assert!(err.contains("smtpcell passwd"), "{err}");
        }
    }

    #[test]
    fn unknown_and_unsupported_schemes_are_refused_naming_the_supported_ones() {
        for field in ["{MD5-CRYPT}$1$saltsalt$/jkPlMLBgXfPMvVeXb86N0", "{SSHA}c2VjcmV0c2FsdA==", "{NOSUCH}whatever"] {
            let err = refused(field);
            assert!(err.contains("{ARGON2ID}") && err.contains("{SHA512-CRYPT}"), "{err}");
        }
        // A plaintext password that happens to look like a scheme is not echoed.
        let err = refused("{Secret-Pw}rest");
        assert!(!err.contains("Secret"), "{err}");
    }

    #[test]
    fn crypt_without_a_supported_prefix_is_refused() {
        for field in [
            "ab.mruLNQ7ZWQ",                             // DES crypt("des", "ab")
            "$1$saltsalt$/jkPlMLBgXfPMvVeXb86N0",        // MD5-CRYPT
            "{CRYPT}$1$saltsalt$/jkPlMLBgXfPMvVeXb86N0", // MD5-CRYPT
            "{CRYPT}ab.mruLNQ7ZWQ",                      // DES crypt
            "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o", // yescrypt-shaped
            "plaintext-password",
            "",
        ] {
            let err = refused(field);
            assert!(err.contains("supported"), "{err}");
        }
        assert!(refused("$1$saltsalt$/jkPlMLBgXfPMvVeXb86N0").contains("MD5-CRYPT"));
        assert!(!refused("plaintext-password").contains("plaintext-password"));
    }

    #[test]
    fn a_scheme_must_match_its_hash() {
        refused(&format!("{{SHA256-CRYPT}}{}", SHA512.1));
        refused(&format!("{{SHA512-CRYPT}}{}", BCRYPT_2Y.1));
        refused(&format!("{{BLF-CRYPT}}{}", ARGON2ID.1));
        refused(&format!("{{ARGON2I}}{}", ARGON2ID.1));
        refused(&format!("{{ARGON2ID}}{}", ARGON2I.1));
    }

    #[test]
    fn hashes_that_do_not_parse_are_refused() {
        let truncated_sha = &SHA512.1[..SHA512.1.len() - 3];
        let sha512_as_256 = SHA512.1.replacen("$6$", "$5$", 1);
        let low_rounds = "$6$rounds=10$Hq7Lr2NvXc$uZ0Zk0NK0gnn9RVCVl3/RnSpkqNg.qmNpOARdqQEXoT5oNrsgqC8wYrUIcuZK/4GyS8pB/t0YvJxD9vaJBtpJ1";
        let bad_base64 = SHA256.1.replace('u', "*");
        let trailing = format!("{}$extra", SHA256.1);
        let bcrypt_short = &BCRYPT_2Y.1[..50];
        let bcrypt_cost = BCRYPT_2Y.1.replacen("$05$", "$99$", 1);
        let bcrypt_2x = BCRYPT_2Y.1.replacen("$2y$", "$2x$", 1);
        let argon_no_hash = "$argon2id$v=19$m=4096,t=3,p=1$c2FsdHlzYWx0MDEyMw";
        let argon_bad_param = ARGON2ID.1.replacen("t=3", "t=0", 1);
        let argon_bad_version = ARGON2ID.1.replacen("v=19", "v=20", 1);
        let argon_huge_memory = ARGON2ID.1.replacen("m=4096", "m=4000000000", 1);
        let argon_d = ARGON2ID.1.replacen("argon2id", "argon2d", 1);
        for field in [
            truncated_sha,
            &sha512_as_256,
            low_rounds,
            &bad_base64,
            &trailing,
            bcrypt_short,
            &bcrypt_cost,
            &bcrypt_2x,
            argon_no_hash,
            &argon_bad_param,
            &argon_bad_version,
            &argon_huge_memory,
            &argon_d,
        ] {
            refused(field);
        }
        assert!(refused(low_rounds).contains("rounds="));
        assert!(refused(&argon_huge_memory).contains("memory cost"));
    }

    #[test]
    fn debug_shows_the_scheme_only() {
        let credential = Credential::parse(SHA512.1).unwrap();
        let shown = format!("{credential:?}");
        assert_eq!(shown, "Credential(sha512-crypt)");
    }
}
