//! The server certificate and key, loaded from PEM files and reloadable.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result, bail};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Where the certificate chain and its private key live (`--tls-cert`,
/// `--tls-key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM: the private key of the first certificate (PKCS#8, PKCS#1 or
    /// SEC1).
    pub key: PathBuf,
}

/// The TLS server configuration new handshakes use. A reload builds a
/// whole new configuration and swaps it in only if it is valid; a
/// handshake in progress keeps the configuration it started with, so no
/// connection is dropped and a bad pair leaves the old one serving.
pub struct Certificates {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl Certificates {
    /// Loads `files`. Errors: a file that cannot be read, no certificate,
    /// no key, or a key that does not match the first certificate.
    pub fn load(files: TlsFiles) -> Result<Certificates> {
        let config = server_config(&files)?;
        Ok(Certificates { files, current: RwLock::new(config) })
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// An acceptor for one handshake, on the configuration current now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }

    /// Reads the files again, without using them yet (a reload checks
    /// every part before it installs any). Errors as [`Certificates::load`].
    pub fn prepare(&self) -> Result<PreparedCertificate> {
        Ok(PreparedCertificate(server_config(&self.files)?))
    }

    /// Handshakes from now on use `prepared`.
    pub fn install(&self, prepared: PreparedCertificate) {
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = prepared.0;
    }
}

/// A certificate and key read and checked by [`Certificates::prepare`].
pub struct PreparedCertificate(Arc<ServerConfig>);

/// TLS 1.2 and 1.3 only (RFC 8996 deprecates 1.0 and 1.1; rustls has
/// neither), with rustls's default cipher suites, all AEAD with forward
/// secrecy. No ALPN: SMTP negotiates none.
fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>> {
    let chain = read_chain(&files.cert)?;
    let key = match PrivateKeyDer::from_pem_file(&files.key) {
        Err(rustls::pki_types::pem::Error::NoItemsFound) => bail!("no PEM private key in {}", files.key.display()),
        key => key.with_context(|| format!("reading a private key from {}", files.key.display()))?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("selecting TLS 1.2 and 1.3")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!("the key in {} does not fit the certificate in {}", files.key.display(), files.cert.display())
        })?;
    Ok(Arc::new(config))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading certificates from {}", path.display()))?;
    if chain.is_empty() {
        bail!("no PEM certificate in {}", path.display());
    }
    Ok(chain)
}
