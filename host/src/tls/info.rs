//! The negotiated TLS parameters, named as mail servers write them.

use rustls::ServerConnection;
use smtp_core::TlsInfo;

/// The version in OpenSSL's spelling (`TLSv1.3`) and the cipher suite's
/// IANA name (`TLS_AES_256_GCM_SHA384`), as Postfix writes them into
/// Received headers. rustls names TLS 1.3 suites `TLS13_…`; the IANA
/// registry (RFC 8446 appendix B.4) names them `TLS_…`.
pub fn tls_info(connection: &ServerConnection) -> TlsInfo {
    let version = connection
        .protocol_version()
        .and_then(|v| v.as_str())
        .map(|v| v.replacen("TLSv1_", "TLSv1.", 1))
        .unwrap_or_else(|| "TLS".into());
    let cipher = connection
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .map(|s| match s.strip_prefix("TLS13_") {
            Some(rest) => format!("TLS_{rest}"),
            None => s.to_string(),
        })
        .unwrap_or_else(|| "unknown".into());
    TlsInfo { version, cipher }
}
