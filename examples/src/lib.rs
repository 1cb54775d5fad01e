//! Third-party sinks, written the way any crate outside eventer would write them:
//!
//! - `jsonl:<path>` appends each event as one JSON line to a file. It depends on
//!   `eventer-core` only, and implements [`Sink`] itself.
//! - `chat:<url>` ([`chat`]) posts alerts to a chat webhook. It is a
//!   [`ChatService`](eventer_alert::ChatService) on `eventer-alert`'s engine, which does
//!   the grouping, digests, repeats and rate limiting.
//!
//! Both plug into the CLI's registry with [`register`]:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let mut registry = eventer_cli::default_registry();
//!     eventer_examples::register(&mut registry);
//!     eventer_cli::main_with(registry)
//! }
//! ```
//!
//! Then `eventer --source=file:events.json --sink='jsonl:/tmp/out.jsonl?level=Warning'`.

pub mod chat;

use std::{path::PathBuf, sync::Arc};

use async_trait::async_trait;
use eventer_core::{
    BoxSink, BuildContext, Error, ErrorKind, Outcome, Registry, Result, SharedEvent, Sink, SinkFactory, config::names,
    uri::Options,
};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

/// The URI scheme.
pub const SCHEME: &str = "jsonl";

/// Appends events as JSON lines (the original Kubernetes object when known).
#[derive(Debug)]
pub struct JsonlSink {
    path: PathBuf,
    raw: bool,
    file: Option<tokio::fs::File>,
}

impl JsonlSink {
    /// A sink appending to `path`; `raw` writes the original Kubernetes JSON instead of
    /// eventer's normalised model.
    pub fn new(path: impl Into<PathBuf>, raw: bool) -> Self {
        JsonlSink { path: path.into(), raw, file: None }
    }
}

#[async_trait]
impl Sink for JsonlSink {
    async fn start(&mut self) -> Result<()> {
        let file =
            tokio::fs::OpenOptions::new().create(true).append(true).open(&self.path).await.map_err(|e| {
                Error::new(ErrorKind::Io, format!("cannot open {}", self.path.display())).with_source(e)
            })?;
        self.file = Some(file);
        Ok(())
    }

    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        let mut buf = String::new();
        for ev in batch {
            if self.raw {
                buf.push_str(&ev.raw_json());
            } else {
                match serde_json::to_string(&**ev) {
                    Ok(json) => buf.push_str(&json),
                    Err(e) => {
                        return Outcome::all(
                            batch.len(),
                            Err(Error::new(ErrorKind::Unexpected, "encode").with_source(e)),
                        );
                    }
                }
            }
            buf.push('\n');
        }
        let Some(file) = self.file.as_mut() else {
            return Outcome::all(batch.len(), Err(Error::new(ErrorKind::Unexpected, "send before start")));
        };
        // One write per batch: a failed write is retried whole (a full disk may recover).
        let written = async {
            file.write_all(buf.as_bytes()).await?;
            file.flush().await
        }
        .await;
        Outcome::all(
            batch.len(),
            written.map_err(|e| Error::new(ErrorKind::Io, "write failed").with_source(e).temporary()),
        )
    }
}

/// The `jsonl` sink's options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlSettings {
    /// Write the original Kubernetes JSON instead of eventer's model.
    #[serde(default)]
    pub raw: bool,
}

/// Builds [`JsonlSink`] from `jsonl:<path>?raw=true`.
#[derive(Debug)]
pub struct JsonlFactory;

impl SinkFactory for JsonlFactory {
    fn options(&self) -> Vec<&'static str> {
        names::<JsonlSettings>().to_vec()
    }

    fn build(&self, target: &str, options: &mut Options, _cx: &BuildContext) -> Result<BoxSink> {
        if target.is_empty() {
            return Err(Error::config("jsonl needs a path: jsonl:<path>"));
        }
        let JsonlSettings { raw } = options.take()?;
        Ok(Box::new(JsonlSink::new(target, raw)))
    }
}

/// Register the `jsonl` and `chat` schemes.
pub fn register(registry: &mut Registry) {
    registry.register_sink(SCHEME, Arc::new(JsonlFactory));
    chat::register(registry);
}
