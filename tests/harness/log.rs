//! What a [`crate::server::TestServer`]'s `tracing` events say, captured
//! in memory so that tests can assert on the server's log.

use std::io;
use std::sync::{Arc, Mutex};

/// A shared buffer the server's log is formatted into (no ANSI colours).
#[derive(Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// A dispatcher writing every event at debug level or above into this
    /// buffer (debug: a test that no secret is logged must see every level
    /// the server uses in operation).
    pub fn dispatch(&self) -> tracing::Dispatch {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        tracing::Dispatch::new(subscriber)
    }
}

impl io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
