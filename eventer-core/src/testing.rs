//! Test doubles for sink and source authors (feature `test-util`): [`MemorySink`],
//! [`VecSource`], [`sample_events`] and [`assert_sink_conformance`].

use std::{
    collections::VecDeque,
    fmt,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use tokio::sync::{Notify, watch};

use crate::{
    Result,
    event::{Event, Level, SharedEvent},
    sink::{Batching, Outcome, Sink},
    source::{Position, Source, SourceItem},
};

type Script = Box<dyn FnMut(&Event) -> Outcome + Send>;

/// A sink that records what it delivers. Clones share the record, so a test keeps a
/// clone while the pipeline owns the sink.
#[derive(Clone)]
pub struct MemorySink {
    inner: Arc<Inner>,
    batching: Batching,
}

struct Inner {
    delivered: Mutex<Vec<SharedEvent>>,
    attempts: Mutex<usize>,
    batches: Mutex<Vec<usize>>,
    script: Mutex<Option<Script>>,
    open: watch::Sender<bool>,
    sent: Notify,
}

impl fmt::Debug for MemorySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySink").field("delivered", &self.len()).finish_non_exhaustive()
    }
}

impl Default for MemorySink {
    fn default() -> Self {
        MemorySink::new()
    }
}

impl MemorySink {
    /// A sink that delivers everything.
    pub fn new() -> Self {
        MemorySink {
            inner: Arc::new(Inner {
                delivered: Mutex::new(Vec::new()),
                attempts: Mutex::new(0),
                batches: Mutex::new(Vec::new()),
                script: Mutex::new(None),
                open: watch::channel(true).0,
                sent: Notify::new(),
            }),
            batching: Batching::default(),
        }
    }

    /// Decide each event's outcome with `script` (called once per attempt).
    #[must_use]
    pub fn scripted(self, script: impl FnMut(&Event) -> Outcome + Send + 'static) -> Self {
        *self.inner.script.lock().expect("lock") = Some(Box::new(script));
        self
    }

    /// Ask the pipeline for this batching.
    #[must_use]
    pub fn with_batching(mut self, batching: Batching) -> Self {
        self.batching = batching;
        self
    }

    /// Hold every `send` until [`MemorySink::resume`] (a stalled destination).
    pub fn pause(&self) {
        self.inner.open.send_replace(false);
    }

    /// Release held sends.
    pub fn resume(&self) {
        self.inner.open.send_replace(true);
    }

    /// Events delivered so far, in delivery order.
    pub fn events(&self) -> Vec<SharedEvent> {
        self.inner.delivered.lock().expect("lock").clone()
    }

    /// Reasons of the delivered events.
    pub fn reasons(&self) -> Vec<String> {
        self.events().iter().map(|e| e.reason.to_string()).collect()
    }

    /// Number of delivered events.
    pub fn len(&self) -> usize {
        self.inner.delivered.lock().expect("lock").len()
    }

    /// Whether nothing was delivered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sizes of the batches `send` was called with.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.inner.batches.lock().expect("lock").clone()
    }

    /// Delivery attempts (events passed to `send`, retries included).
    pub fn attempts(&self) -> usize {
        *self.inner.attempts.lock().expect("lock")
    }

    /// Wait until at least `n` events are delivered.
    pub async fn wait_for(&self, n: usize) {
        self.wait_until(|sink| sink.len() >= n).await;
    }

    /// Wait until `send` was called with at least `n` events in all.
    pub async fn wait_for_attempts(&self, n: usize) {
        self.wait_until(|sink| sink.attempts() >= n).await;
    }

    async fn wait_until(&self, done: impl Fn(&Self) -> bool) {
        loop {
            // Register before checking, so a send between the check and the await is seen.
            let notified = self.inner.sent.notified();
            if done(self) {
                return;
            }
            notified.await;
        }
    }
}

#[async_trait]
impl Sink for MemorySink {
    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        let mut open = self.inner.open.subscribe();
        // The sender lives in `inner`, so the channel cannot close while we wait.
        drop(open.wait_for(|open| *open).await);
        let outcomes: Vec<Outcome> = {
            let mut script = self.inner.script.lock().expect("lock");
            batch.iter().map(|e| script.as_mut().map_or(Outcome::Delivered, |s| s(e))).collect()
        };
        {
            let mut delivered = self.inner.delivered.lock().expect("lock");
            for (e, o) in batch.iter().zip(&outcomes) {
                if matches!(o, Outcome::Delivered) {
                    delivered.push(e.clone());
                }
            }
        }
        *self.inner.attempts.lock().expect("lock") += batch.len();
        self.inner.batches.lock().expect("lock").push(batch.len());
        self.inner.sent.notify_waiters();
        outcomes
    }

    fn batching(&self) -> Batching {
        self.batching
    }
}

/// A source yielding a fixed list, then ending (or staying open, like a watch).
#[derive(Debug, Default)]
pub struct VecSource {
    items: VecDeque<SourceItem>,
    hold_open: bool,
    resumed_from: Option<Position>,
}

impl VecSource {
    /// Events without positions.
    pub fn new(events: Vec<Event>) -> Self {
        VecSource { items: events.into_iter().map(SourceItem::event).collect(), ..Default::default() }
    }

    /// Events with positions `"1"`, `"2"`, ... in order.
    pub fn with_positions(events: Vec<Event>) -> Self {
        let items = events
            .into_iter()
            .enumerate()
            .map(|(i, event)| SourceItem::Event {
                event: Arc::new(event),
                position: Some(Position((i + 1).to_string())),
            })
            .collect();
        VecSource { items, ..Default::default() }
    }

    /// Once the items are out, wait forever instead of ending.
    #[must_use]
    pub fn hold_open(mut self) -> Self {
        self.hold_open = true;
        self
    }

    /// The position `start` was called with.
    pub fn resumed_from(&self) -> Option<&Position> {
        self.resumed_from.as_ref()
    }
}

#[async_trait]
impl Source for VecSource {
    async fn start(&mut self, resume: Option<Position>) -> Result<()> {
        self.resumed_from = resume;
        Ok(())
    }

    async fn next(&mut self) -> Result<Option<SourceItem>> {
        match self.items.pop_front() {
            Some(item) => Ok(Some(item)),
            None if self.hold_open => std::future::pending().await,
            None => Ok(None),
        }
    }
}

/// A realistic mix: Warnings (BackOff, FailedScheduling, node problems) and Normals.
pub fn sample_events() -> Vec<Event> {
    let ts = |s: &str| s.parse::<jiff::Timestamp>().expect("valid time");
    let t0 = ts("2024-01-01T00:00:00Z");
    let t1 = ts("2024-01-01T00:05:00Z");
    vec![
        Event::builder()
            .meta("prod", "web-0.17b2c3d4e5f6a7b8", "uid-1")
            .resource_version("101")
            .kind("Pod")
            .object("prod", "web-0")
            .reason("BackOff")
            .message("Back-off restarting failed container app in pod web-0")
            .warning()
            .count(12)
            .at(t0, t1)
            .source("kubelet", "node-1")
            .build(),
        Event::builder()
            .meta("prod", "api-5d8f.17b2c3d4e5f6a7c1", "uid-2")
            .resource_version("102")
            .kind("Pod")
            .object("prod", "api-5d8f")
            .reason("FailedScheduling")
            .message("0/3 nodes are available: 3 Insufficient cpu.")
            .warning()
            .count(1)
            .at(t0, t0)
            .source("default-scheduler", "")
            .build(),
        Event::builder()
            .meta("default", "node-1.17b2c3d4e5f6a7d2", "uid-3")
            .resource_version("103")
            .kind("Node")
            .object("", "node-1")
            .reason("KernelOops")
            .message("kernel: BUG: unable to handle kernel NULL pointer dereference")
            .warning()
            .count(1)
            .at(t1, t1)
            .source("kernel-monitor", "node-1")
            .build(),
        Event::builder()
            .meta("prod", "web-0.17b2c3d4e5f6a7e3", "uid-4")
            .resource_version("104")
            .kind("Pod")
            .object("prod", "web-0")
            .reason("Pulled")
            .message("Container image \"nginx:1.27\" already present on machine")
            .level(Level::Normal)
            .count(1)
            .at(t1, t1)
            .source("kubelet", "node-1")
            .build(),
    ]
}

/// Exercise a sink the way the pipeline will, panicking on a contract violation:
/// `start` succeeds, `batching` is sane, an empty batch yields no outcomes, every batch
/// yields exactly one outcome per event, a preview (if any) renders, and `close` succeeds.
/// Returns the outcomes of every event, in order, for the caller's own assertions.
///
/// ```
/// use eventer_core::testing::{MemorySink, assert_sink_conformance, sample_events};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut sink = MemorySink::new();
/// let outcomes = assert_sink_conformance(&mut sink, sample_events()).await;
/// assert_eq!(outcomes.len(), 4);
/// assert_eq!(sink.len(), 4);
/// # });
/// ```
///
/// # Panics
/// On any contract violation, with a message saying which.
pub async fn assert_sink_conformance<S: Sink + ?Sized>(sink: &mut S, events: Vec<Event>) -> Vec<Outcome> {
    if let Err(e) = sink.start().await {
        panic!("sink start failed: {}", e.chain());
    }
    let batching = sink.batching();
    assert!(batching.max_events >= 1, "batching.max_events must be at least 1");
    assert!(sink.send(&[]).await.is_empty(), "an empty batch must yield no outcomes");
    let events: Vec<SharedEvent> = events.into_iter().map(Arc::new).collect();
    if let Some(lines) = sink.preview(&events) {
        assert!(events.is_empty() || !lines.is_empty(), "a preview of events must not be empty");
    }
    let mut outcomes = Vec::with_capacity(events.len());
    for chunk in events.chunks(batching.max_events) {
        let got = sink.send(chunk).await;
        assert_eq!(got.len(), chunk.len(), "send must return exactly one outcome per event");
        outcomes.extend(got);
    }
    if let Err(e) = sink.close().await {
        panic!("sink close failed: {}", e.chain());
    }
    outcomes
}
