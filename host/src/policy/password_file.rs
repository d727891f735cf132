//! AUTH against a users file (Dovecot's passwd-file format, [`Users`]),
//! mail accepted as [`super::AcceptAll`] accepts it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Result;
use smtp_core::{Answer, AuthMechanisms, Credentials, Reason};
use tracing::warn;

use super::client::Client;
use super::decide::{Decision, Policy};
use crate::users::Users;

/// Checks AUTH PLAIN and LOGIN credentials against the users file; a
/// reload replaces the whole file at once, and a file that does not load
/// leaves the users in force.
pub struct PasswordFile {
    path: PathBuf,
    users: RwLock<Arc<Users>>,
}

impl PasswordFile {
    /// Loads `path` (errors: see [`Users::load`]).
    pub fn open(path: &Path) -> Result<PasswordFile> {
        let users = Users::load(path)?;
        Ok(PasswordFile { path: path.to_path_buf(), users: RwLock::new(Arc::new(users)) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many users the file in force has.
    pub fn count(&self) -> usize {
        self.current().len()
    }

    /// Reads the file again; returns how many users it has.
    pub fn reload(&self) -> Result<usize> {
        let users = Users::load(&self.path)?;
        let count = users.len();
        *self.users.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(users);
        Ok(count)
    }

    fn current(&self) -> Arc<Users> {
        self.users.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

impl Policy for PasswordFile {
    fn auth_mechanisms(&self) -> AuthMechanisms {
        AuthMechanisms { plain: true, login: true }
    }

    /// The password check runs on tokio's blocking pool: argon2 and bcrypt
    /// are built to take milliseconds of CPU. An authorization id other
    /// than the authentication id (RFC 4616 proxy authorization) is refused:
    /// the file grants no one the right to act as another.
    fn auth<'a>(&'a self, _client: &'a Client, credentials: &'a Credentials) -> Decision<'a> {
        Box::pin(async move {
            let user = credentials.authentication_id.clone();
            if !credentials.authorization_id.is_empty() && credentials.authorization_id != user {
                return Answer::refuse(Reason::AuthFailed, true);
            }
            let users = self.current();
            let secret = credentials.secret.clone().into_bytes();
            match tokio::task::spawn_blocking(move || users.verify(&user, &secret)).await {
                Ok(true) => Answer::ACCEPT,
                Ok(false) => Answer::refuse(Reason::AuthFailed, true),
                Err(err) => {
                    warn!(%err, "the password check failed");
                    Answer::refuse(Reason::AuthFailed, false)
                }
            }
        })
    }
}
