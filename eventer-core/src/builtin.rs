//! Built-in components: the `stdout` (alias `log`) sink and the `file` source.

use std::{fmt::Write as _, path::Path};

use async_trait::async_trait;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::{
    Error, ErrorKind, Result,
    config::names,
    decode::events_from_document,
    event::{Event, SharedEvent},
    registry::{BuildContext, SinkFactory, SourceFactory},
    sink::{Batching, BoxSink, Outcome, Sink},
    source::{BoxSource, Source, SourceItem},
    uri::Options,
};

/// Output format of [`StdoutSink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StdoutFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line (the normalised model).
    Json,
}

/// Writes events to standard output.
///
/// ```
/// use eventer_core::{Event, builtin::text_line};
/// let ev = Event::builder().kind("Pod").object("prod", "web-0").reason("BackOff")
///     .message("Back-off restarting failed container").warning().count(5).build();
/// assert_eq!(text_line(&ev), "- Warning prod Pod/web-0 BackOff: Back-off restarting failed container (x5)");
/// ```
#[derive(Debug, Default)]
pub struct StdoutSink {
    format: StdoutFormat,
    buf: String,
}

impl StdoutSink {
    /// A sink writing `format`.
    pub fn new(format: StdoutFormat) -> Self {
        StdoutSink { format, buf: String::new() }
    }

    fn render(&mut self, batch: &[SharedEvent]) {
        self.buf.clear();
        for ev in batch {
            match self.format {
                StdoutFormat::Text => self.buf.push_str(&text_line(ev)),
                StdoutFormat::Json => {
                    // The model always serialises; a failure would be a bug worth seeing.
                    let json = serde_json::to_string(&**ev).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
                    self.buf.push_str(&json);
                }
            }
            self.buf.push('\n');
        }
    }
}

/// The text layout of [`StdoutSink`]: time, type, namespace, kind/name, reason, message, count.
pub fn text_line(ev: &Event) -> String {
    let mut line = String::with_capacity(96 + ev.message.len());
    match ev.last_seen() {
        Some(t) => write!(line, "{t}"),
        None => write!(line, "-"),
    }
    .expect("writing to a String");
    let ns = if ev.namespace.is_empty() { "-" } else { &ev.namespace };
    let message = ev.message.trim_end().replace('\n', " ");
    write!(
        line,
        " {} {ns} {}/{} {}: {message} (x{})",
        ev.level,
        ev.involved_object.kind,
        ev.involved_object.name,
        ev.reason,
        ev.occurrences()
    )
    .expect("writing to a String");
    line
}

#[async_trait]
impl Sink for StdoutSink {
    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        self.render(batch);
        let mut out = tokio::io::stdout();
        let result = async {
            out.write_all(self.buf.as_bytes()).await?;
            out.flush().await
        }
        .await;
        // A closed stdout does not come back: retrying would only wedge the queue.
        Outcome::all(
            batch.len(),
            result.map_err(|e| Error::new(ErrorKind::Io, "cannot write to stdout").with_source(e)),
        )
    }

    fn batching(&self) -> Batching {
        Batching::new(1000, std::time::Duration::ZERO)
    }

    fn preview(&mut self, batch: &[SharedEvent]) -> Option<Vec<String>> {
        self.render(batch);
        Some(self.buf.lines().map(str::to_owned).collect())
    }
}

/// The `stdout` sink's options.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StdoutSettings {
    /// `text` (default) or `json`.
    format: Option<StdoutFormat>,
}

pub(crate) struct StdoutFactory;

impl SinkFactory for StdoutFactory {
    fn options(&self) -> Vec<&'static str> {
        names::<StdoutSettings>().to_vec()
    }

    fn build(&self, target: &str, options: &mut Options, _cx: &BuildContext) -> Result<BoxSink> {
        if !target.is_empty() {
            return Err(Error::config(format!("stdout takes no target, got `{target}`")));
        }
        let StdoutSettings { format } = options.take()?;
        Ok(Box::new(StdoutSink::new(format.unwrap_or_default())))
    }
}

/// Reads events from a file as `kubectl get events -A -o json` writes it, or JSON lines,
/// then ends. See [`crate::decode::events_from_document`] for the accepted shapes.
#[derive(Debug)]
pub struct FileSource {
    events: std::vec::IntoIter<Event>,
}

impl FileSource {
    /// Read and decode the whole file now, so a bad file fails at startup.
    ///
    /// # Errors
    /// A configuration error when the file cannot be read or decoded, naming the path.
    pub fn open(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("cannot read event file {}", path.display())).with_source(e))?;
        let events = events_from_document(&text)
            .map_err(|e| Error::config(format!("event file {}: {}", path.display(), e.chain())))?;
        Ok(FileSource { events: events.into_iter() })
    }

    /// Events from memory (for previews and tests).
    pub fn from_events(events: Vec<Event>) -> Self {
        FileSource { events: events.into_iter() }
    }
}

#[async_trait]
impl Source for FileSource {
    async fn next(&mut self) -> Result<Option<SourceItem>> {
        Ok(self.events.next().map(SourceItem::event))
    }
}

pub(crate) struct FileSourceFactory;

impl SourceFactory for FileSourceFactory {
    fn options(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn build(&self, target: &str, _options: &mut Options, _cx: &BuildContext) -> Result<BoxSource> {
        if target.is_empty() {
            return Err(Error::config("file source needs a path: file:<path>"));
        }
        Ok(Box::new(FileSource::open(Path::new(target))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_layout_without_times_or_namespace() {
        let ev =
            Event::builder().kind("Node").object("", "node-1").reason("KernelOops").message("oops\nline2\n").build();
        let mut ev = ev;
        ev.namespace.clear();
        assert_eq!(text_line(&ev), "- Normal - Node/node-1 KernelOops: oops line2 (x1)");
    }

    #[test]
    fn previews_render_both_formats() {
        let ev: SharedEvent = std::sync::Arc::new(Event::builder().kind("Pod").object("a", "p").reason("R").build());
        let mut text = StdoutSink::new(StdoutFormat::Text);
        assert_eq!(text.preview(std::slice::from_ref(&ev)).unwrap(), ["- Normal a Pod/p R:  (x1)"]);
        let mut json = StdoutSink::new(StdoutFormat::Json);
        let line = &json.preview(&[ev]).unwrap()[0];
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["involvedObject"]["name"], "p");
        assert_eq!(value["type"], "Normal");
    }

    #[test]
    fn file_source_errors_name_the_path() {
        let err = FileSource::open(Path::new("/no/such/events.json")).unwrap_err();
        assert_eq!(err.to_string(), "cannot read event file /no/such/events.json");
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\"items\": [").unwrap();
        let err = FileSource::open(&bad).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!("event file {}: invalid event JSON at line 1", bad.display())),
            "{err}"
        );
    }
}
