//! The [`Source`] implementation and its readiness handle.

use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use eventer_core::{
    Error, ErrorKind, Position, Result, Source, SourceItem,
    telemetry::{Check, Counter, Health, HealthComponent, Metrics},
};
use jiff::Timestamp;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::info;

use crate::{
    config::{SourceConfig, StartFrom},
    cursor::{Cursor, Cursors},
    stream::{Emit, Item, Msg, Stream},
};

/// Messages buffered between the watch tasks and the pipeline: a message is a list page
/// (up to 500 events) or a watch line, so this bounds memory while a list runs.
const BUFFER: usize = 1;

/// Whether the source finished its initial sync (listed or found its starting point,
/// and is watching), for a health endpoint; clones share the state.
#[derive(Debug, Clone)]
pub struct Readiness {
    inner: Arc<ReadinessInner>,
}

#[derive(Debug)]
struct ReadinessInner {
    /// Streams that have not synced yet; ready at 0.
    pending: tokio::sync::watch::Sender<Option<usize>>,
    last_error: Mutex<Option<String>>,
    report: OnceLock<Report>,
}

/// Where the state is also reported: the program's health (component `source`) and metrics.
#[derive(Debug)]
struct Report {
    health: Health,
    component: Mutex<Option<HealthComponent>>,
    restarts: Counter,
    relists: Counter,
    skipped: Counter,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            inner: Arc::new(ReadinessInner {
                pending: tokio::sync::watch::channel(None).0,
                last_error: Mutex::new(None),
                report: OnceLock::new(),
            }),
        }
    }
}

impl Readiness {
    /// A handle for a source not started yet.
    pub fn new() -> Self {
        Readiness::default()
    }

    /// Whether every stream has synced and is watching.
    pub fn is_ready(&self) -> bool {
        *self.inner.pending.borrow() == Some(0)
    }

    /// Wait until ready.
    pub async fn wait(&self) {
        let mut rx = self.inner.pending.subscribe();
        // The sender lives in `self`, so this cannot fail.
        rx.wait_for(|p| *p == Some(0)).await.ok();
    }

    /// The last error the source is retrying after, if it has not recovered since.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.inner.last_error).clone()
    }

    /// Also report to `health` (as component `source`, from [`Source::start`] on, so that a
    /// standby replica that never starts its source stays ready) and count watch restarts
    /// and relists in `metrics`. Only the first call counts.
    pub fn report_to(&self, health: &Health, metrics: &Metrics) {
        self.inner.report.get_or_init(|| Report {
            health: health.clone(),
            component: Mutex::new(None),
            restarts: metrics.counter("source_watch_restarts", "Watches or lists that failed and were retried"),
            relists: metrics.counter("source_relists", "Relists after the resume point expired (410 Gone)"),
            skipped: metrics.counter("source_undecodable_events", "Listed or watched Events skipped as undecodable"),
        });
    }

    pub(crate) fn expect(&self, streams: usize) {
        self.inner.pending.send_replace(Some(streams));
        if let Some(report) = self.inner.report.get() {
            *lock(&report.component) = Some(report.health.component("source"));
        }
        self.update();
    }

    pub(crate) fn synced(&self) {
        self.inner.pending.send_modify(|p| *p = p.map(|n| n.saturating_sub(1)));
        self.update();
    }

    pub(crate) fn set_error(&self, e: &Error) {
        *lock(&self.inner.last_error) = Some(e.chain());
        self.update();
    }

    pub(crate) fn clear_error(&self) {
        if lock(&self.inner.last_error).take().is_some() {
            self.update();
        }
    }

    /// A list or watch failed and will be retried.
    pub(crate) fn restarted(&self) {
        if let Some(report) = self.inner.report.get() {
            report.restarts.inc();
        }
    }

    /// An Event could not be decoded and was skipped.
    pub(crate) fn skipped(&self) {
        if let Some(report) = self.inner.report.get() {
            report.skipped.inc();
        }
    }

    pub(crate) fn relisted(&self) {
        if let Some(report) = self.inner.report.get() {
            report.relists.inc();
        }
    }

    fn update(&self) {
        let Some(report) = self.inner.report.get() else { return };
        let check = match (self.is_ready(), self.last_error()) {
            (_, Some(e)) => Check::NotReady(format!("retrying: {e}")),
            (true, None) => Check::Ready,
            (false, None) => Check::NotReady("listing or finding the starting point".into()),
        };
        if let Some(component) = lock(&report.component).as_ref() {
            component.set(check);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain values: consistent even if a holder panicked.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Kubernetes Events as a [`Source`]: one list/watch loop per namespace (or one for all).
///
/// Positions record, per namespace, the resourceVersion up to which everything was
/// emitted, plus the progress of an interrupted list (see the crate docs), so a restart
/// emits exactly what changed since the checkpoint.
pub struct KubernetesSource {
    config: SourceConfig,
    readiness: Readiness,
    client: Option<kube::Client>,
    rx: Option<mpsc::Receiver<Msg>>,
    /// Namespace of each stream, by index.
    namespaces: Vec<String>,
    cursors: Cursors,
    /// Items received and not yet yielded, from the stream of index `pending_stream`.
    pending: std::vec::IntoIter<Item>,
    pending_stream: usize,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for KubernetesSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesSource")
            .field("config", &self.config)
            .field("cursors", &self.cursors)
            .finish_non_exhaustive()
    }
}

impl Drop for KubernetesSource {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl KubernetesSource {
    /// A source for `config`; connects in [`Source::start`].
    pub fn new(config: SourceConfig) -> Self {
        KubernetesSource::with_readiness(config, Readiness::new())
    }

    /// A source reporting to a readiness handle made beforehand (by the program that
    /// serves health checks).
    pub fn with_readiness(config: SourceConfig, readiness: Readiness) -> Self {
        KubernetesSource {
            config,
            readiness,
            client: None,
            rx: None,
            namespaces: Vec::new(),
            cursors: Cursors::new(),
            pending: Vec::new().into_iter(),
            pending_stream: 0,
            tasks: Vec::new(),
        }
    }

    /// Use this client instead of building one from the config's connection settings.
    #[must_use]
    pub fn with_client(mut self, client: kube::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The readiness handle.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }
}

#[async_trait]
impl Source for KubernetesSource {
    async fn start(&mut self, resume: Option<Position>) -> Result<()> {
        let resumed = resume.as_ref().map(Cursors::parse).transpose()?;
        let client = match self.client.take() {
            Some(c) => c,
            None => self.config.client().await?,
        };
        let namespaces: Vec<Option<String>> = if self.config.namespaces.is_empty() {
            vec![None]
        } else {
            self.config.namespaces.iter().cloned().map(Some).collect()
        };
        let (tx, rx) = mpsc::channel(BUFFER);
        self.readiness.expect(namespaces.len());
        for (index, ns) in namespaces.into_iter().enumerate() {
            let key = ns.clone().unwrap_or_default();
            let (cursor, from_now) = match resumed.as_ref().and_then(|c| c.get(&key)) {
                Some(c) => (c.clone(), false),
                None => match self.config.start_from {
                    StartFrom::Now => (Cursor::default(), true),
                    StartFrom::All => (Cursor::default(), false),
                    StartFrom::Since(d) => {
                        let since = Timestamp::now()
                            .checked_sub(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX));
                        (Cursor { since: Some(since.unwrap_or(Timestamp::MIN)), ..Cursor::default() }, false)
                    }
                },
            };
            info!(namespace = %if key.is_empty() { "*" } else { &key }, resume = %cursor.rv, "Kubernetes source starting.");
            self.cursors.set(&key, cursor.clone());
            self.namespaces.push(key);
            let stream = Stream {
                index,
                client: client.clone(),
                path: self.config.path(ns.as_deref()),
                field_selector: self.config.field_selector.clone(),
                cursor,
                from_now,
                watch_timeout: self.config.watch_timeout,
                tx: tx.clone(),
                readiness: self.readiness.clone(),
                key_order: true,
            };
            self.tasks.push(tokio::spawn(stream.run()));
        }
        self.rx = Some(rx);
        Ok(())
    }

    async fn next(&mut self) -> Result<Option<SourceItem>> {
        loop {
            // Only `recv` awaits, and it is cancel safe: an item not returned stays queued.
            for Item { change, emit } in self.pending.by_ref() {
                if let Some(change) = &change {
                    self.cursors.apply(&self.namespaces[self.pending_stream], change);
                }
                match emit {
                    Emit::Event(event) => {
                        return Ok(Some(SourceItem::Event { event, position: Some(self.cursors.position()) }));
                    }
                    Emit::Progress => return Ok(Some(SourceItem::Progress(self.cursors.position()))),
                    Emit::Silent => {}
                }
            }
            let rx =
                self.rx.as_mut().ok_or_else(|| Error::new(ErrorKind::Unexpected, "kubernetes source not started"))?;
            match rx.recv().await {
                Some(Msg::Items { stream, items }) => {
                    self.pending = items.into_iter();
                    self.pending_stream = stream;
                }
                Some(Msg::Failed(e)) => return Err(e),
                None => return Err(Error::new(ErrorKind::Unexpected, "kubernetes watch tasks stopped")),
            }
        }
    }
}
