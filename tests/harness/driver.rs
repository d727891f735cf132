//! Drivers that exist only in tests: the core natively, and loaders for
//! the built components. The generic runner lives in `smtpcell::transcript`.

use std::sync::{Arc, OnceLock};

use anyhow::Result;
use smtpcell::runtime::{LoadedComponent, Runtime, SandboxLimits};
use smtpcell::transcript::{Driver, Event, TranscriptConfig, TranscriptVerdict, check_config, render_envelope};

/// smtp-core, natively.
pub struct CoreDriver(smtp_core::Session);

impl CoreDriver {
    pub fn new(config: &TranscriptConfig) -> Result<Self> {
        check_config(config)?;
        let on = |name| config.enabled(name);
        let core = smtp_core::Config {
            hostname: config.hostname.clone(),
            max_message_size: config.max_message_size,
            max_recipients: config.max_recipients,
            max_line_length: config.max_line_length,
            extensions: smtp_core::Extensions {
                pipelining: on("pipelining"),
                size: on("size"),
                eightbitmime: on("8bitmime"),
                enhancedstatuscodes: on("enhancedstatuscodes"),
                smtputf8: on("smtputf8"),
                chunking: on("chunking"),
                binarymime: on("binarymime"),
                dsn: on("dsn"),
                help: on("help"),
                starttls: false,
            },
        };
        let peer = smtp_core::PeerInfo { ip: config.peer_ip.clone(), port: 40000 };
        Ok(CoreDriver(smtp_core::Session::new(core, peer)))
    }

    fn events(actions: Vec<smtp_core::Action>) -> Vec<Event> {
        use smtp_core::Action as A;
        actions
            .into_iter()
            .map(|a| match a {
                A::Send(b) => Event::Send(b),
                A::MessageBegin(e) => Event::Begin(render_envelope(
                    &e.helo,
                    &e.reverse_path,
                    e.recipients.iter().map(|r| (r.address.as_str(), r.notify.as_deref(), r.orcpt.as_deref())),
                    &e.protocol,
                    &format!("{:?}", e.body),
                    e.smtputf8,
                    e.declared_size,
                    e.dsn_return.map(|r| format!("{r:?}")),
                    e.dsn_envid.as_deref(),
                )),
                A::MessageData(b) => Event::Data(b),
                A::MessageEnd => Event::End,
                A::MessageAbort => Event::Abort,
                A::StartTls => Event::StartTls,
                A::Close => Event::Close,
            })
            .collect()
    }
}

impl Driver for CoreDriver {
    async fn greeting(&mut self) -> Result<Vec<Event>> {
        Ok(Self::events(self.0.greeting()))
    }

    async fn feed(&mut self, input: &[u8]) -> Result<Vec<Event>> {
        Ok(Self::events(self.0.feed(input)))
    }

    async fn complete(&mut self, verdict: &TranscriptVerdict) -> Result<Vec<Event>> {
        let verdict = match verdict {
            TranscriptVerdict::Accepted(id) => smtp_core::Verdict::Accepted(id.clone()),
            TranscriptVerdict::InsufficientStorage => smtp_core::Verdict::InsufficientStorage,
            TranscriptVerdict::TemporaryFailure => smtp_core::Verdict::TemporaryFailure,
            TranscriptVerdict::PermanentFailure => smtp_core::Verdict::PermanentFailure,
        };
        Ok(Self::events(self.0.complete(verdict)))
    }
}

/// The embedded component, compiled once per test process.
pub fn embedded_component() -> Arc<LoadedComponent> {
    static LOADED: OnceLock<Arc<LoadedComponent>> = OnceLock::new();
    LOADED.get_or_init(|| load_component(smtpcell::EMBEDDED_COMPONENT).expect("the embedded component loads")).clone()
}

/// Compiles a component on its own thread and runtime, so this works from
/// inside or outside an async test.
pub fn load_component(bytes: &[u8]) -> Result<Arc<LoadedComponent>> {
    let bytes = bytes.to_vec();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async { Ok(Runtime::new(SandboxLimits::default(), None)?.validate(bytes).await?.component) })
    })
    .join()
    .expect("the loader thread does not panic")
}
