//! What the host knows about the client when it decides, beyond what each
//! question carries (the HELO domain comes with MAIL and with the
//! envelope): kept by the connection driver as the session goes on.

use std::net::IpAddr;

use smtp_core::TlsInfo;

/// The client of one connection, as far as the session has got.
#[derive(Clone, Debug)]
pub struct Client {
    /// The client's address (IPv4-mapped IPv6 addresses as IPv4).
    pub ip: IpAddr,
    pub port: u16,
    /// The TLS session, once started.
    pub tls: Option<TlsInfo>,
    /// The identity accepted at AUTH (RFC 4954), once authenticated: the
    /// same string the guest records for the envelope
    /// (`Credentials::authenticated_as`).
    pub authenticated: Option<String>,
}

impl Client {
    /// A client that has just connected.
    pub fn connected(ip: IpAddr, port: u16) -> Client {
        Client { ip: ip.to_canonical(), port, tls: None, authenticated: None }
    }
}
