//! A deliberately dumb raw SMTP client for socket tests: it sends exactly
//! the bytes it is given, so tests can pipeline, split and misbehave; over
//! plaintext or TLS (rustls), and from one to the other at STARTTLS.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use tokio::net::TcpSocket;

use crate::tls::server_name;

/// The socket, in plaintext or in TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

pub struct RawClient {
    reader: BufReader<Stream>,
    /// For `abort`: the socket under any TLS.
    socket: TcpStream,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> Result<RawClient> {
        RawClient::plain(TcpStream::connect(addr)?)
    }

    /// Connects from the local address `source` (another loopback address,
    /// so that the server sees a client other than 127.0.0.1).
    pub fn connect_from(source: IpAddr, addr: SocketAddr) -> Result<RawClient> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
        let stream = rt
            .block_on(async {
                let socket = if source.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
                socket.bind(SocketAddr::new(source, 0))?;
                socket.connect(addr).await
            })
            .with_context(|| format!("connecting to {addr} from {source}"))?;
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        RawClient::plain(stream)
    }

    fn plain(stream: TcpStream) -> Result<RawClient> {
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(RawClient { socket: stream.try_clone()?, reader: BufReader::new(Stream::Plain(stream)) })
    }

    /// Connects and does the TLS handshake at once (implicit TLS, RFC 8314).
    pub fn connect_tls(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<RawClient> {
        RawClient::connect(addr)?.start_tls(config)
    }

    /// The TLS handshake on this connection (after `220` to STARTTLS).
    /// Errors if the server sent anything the client has not read: a
    /// server must not send plaintext after its 220 (RFC 3207 section 4.2).
    pub fn start_tls(self, config: Arc<ClientConfig>) -> Result<RawClient> {
        ensure!(self.reader.buffer().is_empty(), "plaintext after the 220: {:?}", self.reader.buffer());
        let Stream::Plain(tcp) = self.reader.into_inner() else { bail!("TLS is already on") };
        let mut tls = StreamOwned::new(ClientConnection::new(config, server_name())?, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).context("TLS handshake")?;
        }
        Ok(RawClient { reader: BufReader::new(Stream::Tls(Box::new(tls))), socket: self.socket })
    }

    /// The negotiated protocol version, once TLS is on (`TLSv1_3`).
    pub fn tls_version(&self) -> Option<String> {
        match self.reader.get_ref() {
            Stream::Tls(s) => s.conn.protocol_version().and_then(|v| v.as_str()).map(String::from),
            Stream::Plain(_) => None,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes)?;
        stream.flush()?;
        Ok(())
    }

    /// One whole reply (all lines of a multi-line reply), with CRLFs.
    pub fn reply(&mut self) -> Result<String> {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("connection closed; got so far: {reply:?}");
            }
            reply.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Ok(reply);
            }
        }
    }

    /// Sends a command line (CRLF added) and returns the reply.
    pub fn command(&mut self, line: &str) -> Result<String> {
        self.send(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// The reply code of the next reply.
    pub fn code(&mut self) -> Result<u16> {
        let reply = self.reply()?;
        reply.get(..3).and_then(|c| c.parse().ok()).with_context(|| format!("no reply code in {reply:?}"))
    }

    /// Reads until the server closes; returns what it sent.
    pub fn read_to_close(&mut self) -> Result<String> {
        let mut rest = String::new();
        self.reader.read_to_string(&mut rest)?;
        Ok(rest)
    }

    /// Closes the socket abruptly.
    pub fn abort(self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}
