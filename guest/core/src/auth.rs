//! SMTP AUTH (RFC 4954) framing for the PLAIN (RFC 4616) and LOGIN
//! mechanisms: the 334 challenges, base64 (RFC 4648), `*` to cancel, and
//! decoding the credentials the host is then asked to check. The session
//! decides when AUTH is allowed; this module only frames one exchange.

use crate::config::AuthMechanisms;
use crate::prelude::*;
use crate::question::Credentials;
use crate::reply::Reply;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A mechanism this build implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    Login,
}

/// One exchange waiting for the client's next response line.
#[derive(Clone, Debug)]
pub(crate) struct Exchange {
    mechanism: Mechanism,
    /// LOGIN: the user name, once given.
    user: Option<String>,
}

/// Where an exchange stands after a step.
#[derive(Debug)]
pub(crate) enum Progress {
    /// Send this 334 and wait for the next response line.
    Challenge(Exchange, Reply),
    /// The credentials are complete: ask the host.
    Done(Credentials),
}

/// `334 VXNlcm5hbWU6` and `334 UGFzc3dvcmQ6`: "Username:" and "Password:"
/// in base64, the prompts every LOGIN client expects.
const USERNAME: &str = "VXNlcm5hbWU6";
const PASSWORD: &str = "UGFzc3dvcmQ6";

impl Exchange {
    /// `AUTH mechanism [initial-response]`. Errors: 504 for a mechanism not
    /// offered, 501 for an initial response that does not decode.
    pub fn start(mechanism: &str, initial: Option<&str>, offered: AuthMechanisms) -> Result<Progress, Reply> {
        let mechanism = match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" if offered.plain => Mechanism::Plain,
            "LOGIN" if offered.login => Mechanism::Login,
            _ => return Err(Reply::UNKNOWN_MECHANISM),
        };
        let exchange = Exchange { mechanism, user: None };
        match (mechanism, initial) {
            (Mechanism::Plain, None) => Ok(Progress::Challenge(exchange, Reply::challenge(""))),
            (Mechanism::Login, None) => Ok(Progress::Challenge(exchange, Reply::challenge(USERNAME))),
            // RFC 4954 section 4: `=` is an empty initial response.
            (_, Some(initial)) => exchange.respond(initial),
        }
    }

    /// One response line (without CR LF). `*` cancels (501 5.0.0).
    pub fn respond(self, line: &str) -> Result<Progress, Reply> {
        if line == "*" {
            return Err(Reply::AUTH_CANCELLED);
        }
        let decoded = decode(line)?;
        match (self.mechanism, self.user) {
            (Mechanism::Plain, _) => plain(&decoded).map(Progress::Done),
            (Mechanism::Login, None) => {
                let user = text(decoded, false)?;
                Ok(Progress::Challenge(Exchange { user: Some(user), ..self }, Reply::challenge(PASSWORD)))
            }
            (Mechanism::Login, Some(user)) => Ok(Progress::Done(Credentials {
                mechanism: "LOGIN".to_string(),
                authorization_id: String::new(),
                authentication_id: user,
                secret: text(decoded, true)?,
            })),
        }
    }
}

fn decode(line: &str) -> Result<Vec<u8>, Reply> {
    if line == "=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(line.trim_end_matches(' ')).map_err(|_| Reply::CANNOT_DECODE)
}

/// RFC 4616 section 2: `[authzid] NUL authcid NUL passwd`.
fn plain(decoded: &[u8]) -> Result<Credentials, Reply> {
    let mut parts = decoded.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(secret), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reply::CANNOT_DECODE);
    };
    Ok(Credentials {
        mechanism: "PLAIN".to_string(),
        authorization_id: text(authzid.to_vec(), true)?,
        authentication_id: text(authcid.to_vec(), false)?,
        secret: text(secret.to_vec(), false)?,
    })
}

/// UTF-8 without control characters (identities end up in the envelope and
/// in trace headers, where CR, LF or NUL would inject); `empty_ok` for the
/// fields RFC 4616 lets be empty.
fn text(bytes: Vec<u8>, empty_ok: bool) -> Result<String, Reply> {
    let text = String::from_utf8(bytes).map_err(|_| Reply::CANNOT_DECODE)?;
    if (text.is_empty() && !empty_ok) || text.chars().any(char::is_control) {
        return Err(Reply::CANNOT_DECODE);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: AuthMechanisms = AuthMechanisms { plain: true, login: true };

    fn done(progress: Result<Progress, Reply>) -> Credentials {
        match progress {
            Ok(Progress::Done(credentials)) => credentials,
            other => panic!("not done: {other:?}"),
        }
    }

    fn challenge(progress: Result<Progress, Reply>) -> (Exchange, String) {
        match progress {
            Ok(Progress::Challenge(exchange, reply)) => (exchange, reply.text.to_string()),
            other => panic!("no challenge: {other:?}"),
        }
    }

    #[test]
    fn plain_with_and_without_initial_response() {
        // "\0alice\0secret" and "admin\0alice\0secret"
        let creds = done(Exchange::start("plain", Some("AGFsaWNlAHNlY3JldA=="), BOTH));
        assert_eq!((creds.authorization_id.as_str(), creds.authentication_id.as_str()), ("", "alice"));
        assert_eq!(creds.secret, "secret");
        let (exchange, text) = challenge(Exchange::start("PLAIN", None, BOTH));
        assert_eq!(text, "");
        let creds = done(exchange.respond("YWRtaW4AYWxpY2UAc2VjcmV0"));
        assert_eq!(creds.authorization_id, "admin");
        assert!(!format!("{creds:?}").contains("secret\""), "Debug hides the password");
    }

    #[test]
    fn login_prompts_for_user_then_password() {
        let (exchange, text) = challenge(Exchange::start("LOGIN", None, BOTH));
        assert_eq!(text, USERNAME);
        let (exchange, text) = challenge(exchange.respond("YWxpY2U="));
        assert_eq!(text, PASSWORD);
        let creds = done(exchange.respond("c2VjcmV0"));
        assert_eq!((creds.mechanism.as_str(), creds.authentication_id.as_str()), ("LOGIN", "alice"));
        let (exchange, _) = challenge(Exchange::start("LOGIN", Some("YWxpY2U="), BOTH));
        assert_eq!(done(exchange.respond("c2VjcmV0")).secret, "secret");
    }

    #[test]
    fn refusals() {
        let code = |progress: Result<Progress, Reply>| progress.unwrap_err().code;
        assert_eq!(code(Exchange::start("CRAM-MD5", None, BOTH)), 504);
        assert_eq!(code(Exchange::start("LOGIN", None, AuthMechanisms { plain: true, login: false })), 504);
        assert_eq!(code(Exchange::start("PLAIN", Some("not base64!"), BOTH)), 501);
        // Two fields only, a control character in the identity, no password.
        for bad in ["YWxpY2UAc2VjcmV0", "AGFsaQpjZQBzZWNyZXQ=", "AGFsaWNlAA==", "="] {
            assert_eq!(code(Exchange::start("PLAIN", Some(bad), BOTH)), 501, "{bad}");
        }
        let (exchange, _) = challenge(Exchange::start("PLAIN", None, BOTH));
        assert_eq!(exchange.respond("*").unwrap_err(), Reply::AUTH_CANCELLED);
    }
}
