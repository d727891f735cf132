//! Certificates made at run time (nothing secret is committed) and the
//! rustls client side for raw TLS tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use smtpcell::tls::TlsFiles;

/// A self-signed certificate for `localhost`, `smtpcell.test` and
/// 127.0.0.1, written as PEM files into a temporary directory.
pub struct TestCert {
    dir: tempfile::TempDir,
    /// The certificate in PEM, for clients that must trust it.
    pub pem: String,
}

impl TestCert {
    pub fn generate() -> Result<TestCert> {
        let names = ["localhost", "smtpcell.test", "127.0.0.1"].map(String::from).to_vec();
        let certified = rcgen::generate_simple_self_signed(names)?;
        let dir = tempfile::tempdir()?;
        let pem = certified.cert.pem();
        std::fs::write(dir.path().join("cert.pem"), &pem)?;
        std::fs::write(dir.path().join("key.pem"), certified.signing_key.serialize_pem())?;
        Ok(TestCert { dir, pem })
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// The directory holding cert.pem and key.pem.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn files(&self) -> TlsFiles {
        TlsFiles { cert: self.cert_path(), key: self.key_path() }
    }

    /// A client configuration that trusts this certificate only.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(cert.expect("our own PEM parses")).expect("a valid root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// The name clients verify the test certificate against.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("a valid DNS name")
}
