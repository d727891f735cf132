//! The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2):
//! behind a load balancer, each connection starts with a header naming the
//! client the balancer accepted it from, so that the policy, the Received
//! header and the logs see that client rather than the balancer.
//!
//! Only peers inside [`ServerConfig::proxy_networks`] are proxies, and they
//! must send a header; anyone else speaks SMTP from the first octet (a
//! header from them is just a bad command the guest answers). The header is
//! framed here, octet-exact, and parsed by the `ppp` crate: v1 is one text
//! line of at most 107 octets ending in CRLF, v2 a 16-octet fixed part and
//! the length it gives. Nothing after the header is read: those octets
//! belong to the session (on the implicit-TLS listener, to the TLS
//! handshake, which HAProxy sends right after the header).
//!
//! [`ServerConfig::proxy_networks`]: super::ServerConfig::proxy_networks

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ppp::v2::{self, Command, Protocol};
use ppp::{HeaderResult, v1};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tracing::{Span, debug, field, info};

use super::listener::{TOO_MANY_FROM_ADDRESS, refuse};
use super::per_ip::{IpSlot, PerIpLimit};
use crate::events::{self, Event};
use crate::policy::Role;

/// The longest v1 header, CRLF included (proxy-protocol.txt section 2.1).
const V1_MAX_LEN: usize = 107;
/// The fixed part of a v2 header: the signature, version and command,
/// family and protocol, and the length of what follows (section 2.2).
const V2_FIXED_LEN: usize = 16;

/// What a PROXY header says about the connection it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client the proxy accepted a TCP connection from (v1 `TCP4` or
    /// `TCP6`, v2 `PROXY` over a TCP/IPv4 or TCP/IPv6 stream): its address
    /// (IPv4-mapped IPv6 addresses as IPv4) and port.
    Client(SocketAddr),
    /// A connection of the proxy's own, typically a health check (v1
    /// `UNKNOWN`, v2 `LOCAL`), or a v2 `PROXY` for a family without an IP
    /// address (`AF_UNSPEC`, `AF_UNIX`): the specification has the
    /// receiver use the connection's own endpoints, so the client is the
    /// proxy.
    Proxy,
}

/// Why a connection from a proxy did not start with a usable header.
#[derive(Debug)]
pub enum HeaderError {
    /// No complete header within [`ServerConfig::proxy_header_timeout`](super::ServerConfig::proxy_header_timeout).
    Timeout,
    /// The proxy closed the connection before the header's end.
    Closed,
    /// Reading from the proxy failed.
    Io(io::Error),
    /// The octets are not a PROXY header (or one for something other than
    /// a TCP connection); the text says what is wrong.
    Malformed(String),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Timeout => f.write_str("no complete PROXY header in time"),
            HeaderError::Closed => f.write_str("closed before the end of the PROXY header"),
            HeaderError::Io(err) => write!(f, "reading the PROXY header: {err}"),
            HeaderError::Malformed(why) => write!(f, "malformed PROXY header: {why}"),
        }
    }
}

impl From<io::Error> for HeaderError {
    fn from(err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::UnexpectedEof { HeaderError::Closed } else { HeaderError::Io(err) }
    }
}

fn malformed(why: impl fmt::Display) -> HeaderError {
    HeaderError::Malformed(why.to_string())
}

/// Reads the PROXY header a connection from a proxy starts with, v1 or
/// v2, and not one octet more, within `timeout`. Errors: the timeout, the
/// connection closed or failing first, octets that are not a header.
pub async fn read_header(tcp: &mut TcpStream, timeout: Duration) -> Result<Origin, HeaderError> {
    let header = match tokio::time::timeout(timeout, take_header(tcp)).await {
        Ok(header) => header?,
        Err(_elapsed) => return Err(HeaderError::Timeout),
    };
    parse(&header)
}

/// The octets of one header, taken off the stream exactly: the version is
/// told by the first octet (v1 starts `PROXY`, v2 with its CR LF
/// signature), and v1 is read through its LF by peeking first, so that
/// what follows the header stays unread.
async fn take_header(tcp: &mut TcpStream) -> Result<Vec<u8>, HeaderError> {
    let mut first = [0; 1];
    if tcp.peek(&mut first).await? == 0 {
        return Err(HeaderError::Closed);
    }
    match first[0] {
        b'P' => take_v1(tcp).await,
        b'\r' => take_v2(tcp).await,
        _ => Err(malformed("neither a v1 nor a v2 header")),
    }
}

async fn take_v1(tcp: &mut TcpStream) -> Result<Vec<u8>, HeaderError> {
    let mut header = Vec::with_capacity(V1_MAX_LEN);
    let mut buf = [0; V1_MAX_LEN];
    loop {
        let room = V1_MAX_LEN - header.len();
        let peeked = tcp.peek(&mut buf[..room]).await?;
        if peeked == 0 {
            return Err(HeaderError::Closed);
        }
        // Every octet up to the first LF is the header's.
        let take = buf[..peeked].iter().position(|&b| b == b'\n').map_or(peeked, |lf| lf + 1);
        tcp.read_exact(&mut buf[..take]).await?;
        header.extend_from_slice(&buf[..take]);
        if header.ends_with(b"\n") {
            return Ok(header);
        }
        if header.len() == V1_MAX_LEN {
            return Err(malformed(format_args!("no CRLF in the first {V1_MAX_LEN} octets of a v1 header")));
        }
    }
}

/// A v2 header: its length field bounds it at 16 + 65,535 octets.
async fn take_v2(tcp: &mut TcpStream) -> Result<Vec<u8>, HeaderError> {
    let mut header = vec![0; V2_FIXED_LEN];
    tcp.read_exact(&mut header).await?;
    if !header.starts_with(v2::PROTOCOL_PREFIX) {
        return Err(malformed("no v2 signature"));
    }
    let len = usize::from(u16::from_be_bytes([header[14], header[15]]));
    header.resize(V2_FIXED_LEN + len, 0);
    tcp.read_exact(&mut header[V2_FIXED_LEN..]).await?;
    Ok(header)
}

/// What a whole header says, by `ppp`'s reading of it.
fn parse(header: &[u8]) -> Result<Origin, HeaderError> {
    match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(parsed)) => {
            // ppp stops at the first CR: a CR inside the line leaves octets over.
            if parsed.header.len() != header.len() {
                return Err(malformed("a CR before the end of the v1 line"));
            }
            Ok(match parsed.addresses {
                v1::Addresses::Tcp4(a) => client(IpAddr::V4(a.source_address), a.source_port),
                v1::Addresses::Tcp6(a) => client(IpAddr::V6(a.source_address), a.source_port),
                v1::Addresses::Unknown => Origin::Proxy,
            })
        }
        HeaderResult::V1(Err(err)) => Err(malformed(format_args!("v1: {err}"))),
        HeaderResult::V2(Ok(parsed)) => {
            if parsed.command == Command::Local {
                return Ok(Origin::Proxy);
            }
            let source = match parsed.addresses {
                v2::Addresses::IPv4(a) => (IpAddr::V4(a.source_address), a.source_port),
                v2::Addresses::IPv6(a) => (IpAddr::V6(a.source_address), a.source_port),
                v2::Addresses::Unspecified | v2::Addresses::Unix(_) => return Ok(Origin::Proxy),
            };
            if parsed.protocol != Protocol::Stream {
                return Err(malformed(format_args!("v2: {:?} is not a TCP connection", parsed.protocol)));
            }
            Ok(client(source.0, source.1))
        }
        HeaderResult::V2(Err(err)) => Err(malformed(format_args!("v2: {err}"))),
    }
}

fn client(ip: IpAddr, port: u16) -> Origin {
    Origin::Client(SocketAddr::new(ip.to_canonical(), port))
}

/// A connection from a proxy, once its header is read: the client to
/// serve, and its slot under the per-IP limit.
pub struct Admitted {
    pub tcp: TcpStream,
    /// The client the header names, or the proxy ([`Origin::Proxy`]).
    pub client: SocketAddr,
    pub slot: IpSlot,
}

/// Reads the header of a connection from the proxy at `proxy` and admits
/// the client it names under the per-IP limit, which the accept loop left
/// to this point (applied to the proxy it would lump every client behind
/// it together). Records the client as the `peer` field of the current
/// (`conn`) span, beside `via`, the proxy. `None` when the connection is
/// over: a missing or malformed header ends it without a reply (the peer
/// is a proxy, not an SMTP client), logged at info with the reason; a
/// client past the per-IP limit hears the accept loop's 421 4.7.0 (a
/// turnaway on the listener of `role`).
pub async fn admit(
    mut tcp: TcpStream,
    proxy: SocketAddr,
    timeout: Duration,
    per_ip: &Arc<PerIpLimit>,
    hostname: &str,
    role: Role,
) -> Option<Admitted> {
    let client = match read_header(&mut tcp, timeout).await {
        Ok(Origin::Client(client)) => client,
        Ok(Origin::Proxy) => {
            debug!("the PROXY header names no client (LOCAL, UNKNOWN or no IP address): serving the proxy itself");
            proxy
        }
        Err(err) => {
            info!(reason = %err, "closing a connection from a proxy");
            return None;
        }
    };
    Span::current().record("peer", field::display(client));
    debug!("PROXY header read");
    match per_ip.try_acquire(client.ip()) {
        Some(slot) => Some(Admitted { tcp, client, slot }),
        None => {
            events::emit(Event::Turnaway { listener: role, reason: "too-many-from-address" });
            refuse(tcp, hostname, TOO_MANY_FROM_ADDRESS, per_ip.refused(Instant::now()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// The server's end of a loopback connection whose client sends each
    /// of `parts` as its own segment, a pause between (so that the header
    /// arrives in pieces), then closes, or with `hold` keeps the connection
    /// open until the test's runtime ends.
    async fn connection(parts: Vec<Vec<u8>>, hold: bool) -> TcpStream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            for part in parts {
                stream.write_all(&part).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if hold {
                std::future::pending::<()>().await;
            }
        });
        listener.accept().await.unwrap().0
    }

    /// Reads the header, then everything the client sent after it.
    async fn header_then_rest(parts: Vec<Vec<u8>>) -> (Result<Origin, HeaderError>, Vec<u8>) {
        let mut server = connection(parts, false).await;
        let origin = read_header(&mut server, SECOND * 5).await;
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        (origin, rest)
    }

    fn v2_header(command: u8, family_protocol: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut header = v2::PROTOCOL_PREFIX.to_vec();
        header.push(0x20 | command);
        header.push(family_protocol);
        header.extend(u16::try_from(addresses.len() + tlvs.len()).unwrap().to_be_bytes());
        header.extend(addresses);
        header.extend(tlvs);
        header
    }

    fn ipv4_addresses() -> Vec<u8> {
        [192, 0, 2, 7, 198, 51, 100, 1].into_iter().chain(40000u16.to_be_bytes()).chain(25u16.to_be_bytes()).collect()
    }

    fn addr(s: &str) -> Origin {
        Origin::Client(s.parse().unwrap())
    }

    #[tokio::test]
    async fn v1_header_and_nothing_after_it() {
        let (origin, rest) =
            header_then_rest(vec![b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\nEHLO client.example\r\n".to_vec()])
                .await;
        assert_eq!(origin.unwrap(), addr("192.0.2.7:40000"));
        assert_eq!(rest, b"EHLO client.example\r\n");
    }

    #[tokio::test]
    async fn v1_header_split_across_segments() {
        let parts = ["PROXY TCP6 2001:db8::7 2001", ":db8::1 40000 ", "25\r", "\nEHLO x\r\n"];
        let (origin, rest) = header_then_rest(parts.iter().map(|p| p.as_bytes().to_vec()).collect()).await;
        assert_eq!(origin.unwrap(), addr("[2001:db8::7]:40000"));
        assert_eq!(rest, b"EHLO x\r\n");
    }

    #[tokio::test]
    async fn v1_unknown_and_v2_local_name_the_proxy() {
        let (origin, rest) = header_then_rest(vec![b"PROXY UNKNOWN\r\nQUIT\r\n".to_vec()]).await;
        assert_eq!(origin.unwrap(), Origin::Proxy);
        assert_eq!(rest, b"QUIT\r\n");
        // LOCAL with addresses: they are ignored.
        let (origin, rest) = header_then_rest(vec![v2_header(0, 0x11, &ipv4_addresses(), &[]), b"Q".to_vec()]).await;
        assert_eq!(origin.unwrap(), Origin::Proxy);
        assert_eq!(rest, b"Q");
        let (origin, _) = header_then_rest(vec![v2_header(1, 0x00, &[], &[])]).await;
        assert_eq!(origin.unwrap(), Origin::Proxy);
    }

    #[tokio::test]
    async fn v2_header_with_tlvs_and_nothing_after_it() {
        // A NOOP TLV (type 4) and an authority (type 2), as HAProxy may add.
        let tlvs = [4, 0, 1, 42, 2, 0, 3, b'm', b'x', b'1'];
        let header = v2_header(1, 0x11, &ipv4_addresses(), &tlvs);
        let (first, second) = header.split_at(9);
        let mut tail = second.to_vec();
        tail.extend_from_slice(b"\x16\x03\x01 TLS");
        let (origin, rest) = header_then_rest(vec![first.to_vec(), tail]).await;
        assert_eq!(origin.unwrap(), addr("192.0.2.7:40000"));
        assert_eq!(rest, b"\x16\x03\x01 TLS");
    }

    #[tokio::test]
    async fn v2_ipv6_and_mapped_ipv4() {
        let mut addresses = Vec::new();
        addresses.extend("::ffff:192.0.2.9".parse::<std::net::Ipv6Addr>().unwrap().octets());
        addresses.extend("2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        addresses.extend(1234u16.to_be_bytes());
        addresses.extend(25u16.to_be_bytes());
        let (origin, _) = header_then_rest(vec![v2_header(1, 0x21, &addresses, &[])]).await;
        assert_eq!(origin.unwrap(), addr("192.0.2.9:1234"));
    }

    #[tokio::test]
    async fn not_headers_are_refused() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("plain SMTP", b"EHLO client.example\r\n".to_vec()),
            ("a bad v1 protocol", b"PROXY TCP5 192.0.2.7 198.51.100.1 1 25\r\n".to_vec()),
            ("v1 with the wrong family", b"PROXY TCP4 2001:db8::1 198.51.100.1 1 25\r\n".to_vec()),
            ("v1 with a bare LF", b"PROXY TCP4 192.0.2.7 198.51.100.1 1 25\n".to_vec()),
            ("v1 with a CR inside", b"PROXY UNKNOWN\rx\r\n".to_vec()),
            ("v1 with a bad port", b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 25\r\n".to_vec()),
            ("v1 too long", [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 200], b"\r\n"].concat()),
            ("v2 with a bad signature", b"\r\n\r\n\0\r\nQUIX\n\x21\x11\0\x0c123456789012".to_vec()),
            ("v2 for a datagram", v2_header(1, 0x12, &ipv4_addresses(), &[])),
            ("v2 shorter than its addresses", v2_header(1, 0x11, &[192, 0, 2, 7], &[])),
            ("v2 of another version", [v2::PROTOCOL_PREFIX, &[0x31, 0x11, 0, 12], &ipv4_addresses()].concat()),
        ];
        for (what, bytes) in cases {
            let (origin, _) = header_then_rest(vec![bytes]).await;
            assert!(matches!(origin, Err(HeaderError::Malformed(_))), "{what}: {origin:?}");
        }
    }

    #[tokio::test]
    async fn a_proxy_that_closes_early_or_stalls() {
        let (origin, _) = header_then_rest(vec![b"PROXY TCP4 192.0.2.7".to_vec()]).await;
        assert!(matches!(origin, Err(HeaderError::Closed)), "{origin:?}");
        let (origin, _) = header_then_rest(vec![v2_header(1, 0x11, &ipv4_addresses(), &[])[..20].to_vec()]).await;
        assert!(matches!(origin, Err(HeaderError::Closed)), "{origin:?}");
        let (origin, _) = header_then_rest(vec![]).await;
        assert!(matches!(origin, Err(HeaderError::Closed)), "{origin:?}");

        let mut server = connection(vec![b"PROXY TCP4 ".to_vec()], true).await;
        let origin = read_header(&mut server, Duration::from_millis(100)).await;
        assert!(matches!(origin, Err(HeaderError::Timeout)), "{origin:?}");
    }
}
