//! What the host knows about the client when it decides, beyond what each
//! question carries (the HELO domain comes with MAIL and with the
//! envelope): kept by the connection driver as the session goes on.

use std::net::IpAddr;

use smtp_core::TlsInfo;

/// The service the listener a client reached provides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Mail exchange (RFC 5321; the port-25 role): anyone may connect, AUTH
    /// is optional.
    Mx,
    /// Message submission (RFC 6409; port 587): TLS by STARTTLS, then AUTH,
    /// before any MAIL.
    Submission,
    /// Message submission over implicit TLS (RFC 8314 section 3; port 465).
    Submissions,
}

impl Role {
    /// Every role, in the order listeners are reported.
    pub const ALL: [Role; 3] = [Role::Mx, Role::Submission, Role::Submissions];

    /// Whether MAIL needs an authenticated client (RFC 6409 section 4.3:
    /// a submission server authenticates its clients).
    pub fn requires_auth(self) -> bool {
        self != Role::Mx
    }

    /// The name in logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Role::Mx => "mx",
            Role::Submission => "submission",
            Role::Submissions => "submissions",
        }
    }
}

/// The client of one connection, as far as the session has got.
#[derive(Clone, Debug)]
pub struct Client {
    /// The listener it reached.
    pub role: Role,
    /// The client's address (IPv4-mapped IPv6 addresses as IPv4).
    pub ip: IpAddr,
    pub port: u16,
    /// The TLS session, once started.
    pub tls: Option<TlsInfo>,
    /// The identity accepted at AUTH (RFC 4954), once authenticated: the
    /// same string the guest records for the envelope
    /// (`Credentials::authenticated_as`).
    pub authenticated: Option<String>,
    /// Recipients refused in this session for not existing or for relay
    /// (550 5.1.1, 550 5.7.1): what a directory harvest piles up.
    pub refused_recipients: u32,
}

impl Client {
    /// A client that has just connected to a listener of `role`.
    pub fn connected(role: Role, ip: IpAddr, port: u16) -> Client {
        Client { role, ip: ip.to_canonical(), port, tls: None, authenticated: None, refused_recipients: 0 }
    }
}
