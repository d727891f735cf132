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
        keep_every_callsite_alive();
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

/// Installs, once per test process, a global subscriber that records
/// nothing but answers "sometimes" for every callsite.
///
/// tracing caches each callsite's interest, computed from the dispatchers
/// alive when the callsite is first hit; a callsite first hit by a test
/// without a captured log, while another test's capture is being set up,
/// can be cached as "never" and then drop that capture's events (seen as
/// a flaky assertion on the log). With a global subscriber that is always
/// "sometimes" interested no callsite is ever cached as "never", and each
/// dispatcher decides per event.
fn keep_every_callsite_alive() {
    use tracing::subscriber::{Interest, Subscriber};
    use tracing::{Event, Metadata, span};

    struct Sometimes;
    impl Subscriber for Sometimes {
        fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
            Interest::sometimes()
        }
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            false
        }
        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }
        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
        fn event(&self, _: &Event<'_>) {}
        fn enter(&self, _: &span::Id) {}
        fn exit(&self, _: &span::Id) {}
    }

    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only if a test installed another global subscriber, which
        // then decides interest itself.
        let _ = tracing::subscriber::set_global_default(Sometimes);
    });
}
