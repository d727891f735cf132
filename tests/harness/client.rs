//! A deliberately dumb raw SMTP client for socket tests: it sends exactly
//! the bytes it is given, so tests can pipeline, split and misbehave.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

pub struct RawClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> Result<RawClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(RawClient { writer: stream.try_clone()?, reader: BufReader::new(stream) })
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes)?;
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
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
    }
}
