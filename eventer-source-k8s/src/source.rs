//! The [`Source`] implementation and its readiness handle.

use std::{
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use async_trait::async_trait;
use eventer_core::{
    Error, ErrorKind, Position, Result, Source, SourceItem,
    pipeline::Backoff,
    telemetry::{Check, Counter, Health, HealthComponent, Metrics},
};
use jiff::Timestamp;
use kube::core::Request;
use serde::Deserialize;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{error, info, warn};

use crate::{
    Cluster,
    config::{SourceConfig, StartFrom},
    cursor::{Cursor, Cursors},
    http::{self, Trouble},
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

/// What [`Readiness::count`] counts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tally {
    /// A list or watch failed and will be retried.
    Restart,
    /// The resume point expired (410): relisting.
    Relist,
    /// An Event could not be decoded and was skipped.
    Undecodable,
    /// A request got no response, or a watch went silent, within its timeout.
    Stall,
    /// A watch line longer than the cap was skipped.
    Oversized,
    /// A checkpointed position (or part of it) could not be used.
    Mismatch,
}

/// Where the state is also reported: the program's health (component `source`) and metrics.
#[derive(Debug)]
struct Report {
    health: Health,
    component: Mutex<Option<HealthComponent>>,
    restarts: Counter,
    relists: Counter,
    skipped: Counter,
    stalls: Counter,
    oversized: Counter,
    mismatches: Counter,
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
            stalls: metrics.counter(
                "source_stalls",
                "Requests to the apiserver that got no response, or watches that went silent, within their timeout",
            ),
            oversized: metrics.counter("source_oversized_lines", "Watch lines skipped as longer than maxLineSize"),
            mismatches: metrics.counter(
                "source_checkpoint_mismatches",
                "Checkpointed positions not used: another cluster, ahead of the cluster, other namespaces, or unreadable",
            ),
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

    /// Count something the source went through in its metric.
    pub(crate) fn count(&self, tally: Tally) {
        let Some(report) = self.inner.report.get() else { return };
        match tally {
            Tally::Restart => &report.restarts,
            Tally::Relist => &report.relists,
            Tally::Undecodable => &report.skipped,
            Tally::Stall => &report.stalls,
            Tally::Oversized => &report.oversized,
            Tally::Mismatch => &report.mismatches,
        }
        .inc();
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
    cluster: Cluster,
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
            cluster: Cluster::connect(config.clone()),
            config,
            readiness,
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
    pub fn with_client(self, client: kube::Client) -> Self {
        self.with_cluster(Cluster::from_client(client))
    }

    /// Use this connection, shared with other parts of the pipeline, instead of building
    /// one from the config's connection settings.
    #[must_use]
    pub fn with_cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = cluster;
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
        let client = self.cluster.client().await?;
        let namespaces: Vec<Option<String>> = if self.config.namespaces.is_empty() {
            vec![None]
        } else {
            self.config.namespaces.iter().cloned().map(Some).collect()
        };
        self.namespaces = namespaces.iter().map(|ns| ns.clone().unwrap_or_default()).collect();
        let (tx, rx) = mpsc::channel(BUFFER);
        self.readiness.expect(namespaces.len());
        let setup = Setup { config: self.config.clone(), client, readiness: self.readiness.clone(), tx, namespaces };
        self.tasks.push(tokio::spawn(setup.run(resume)));
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
                Some(Msg::Started(cursors)) => self.cursors = cursors,
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

/// A fresh cursor for `start_from`, and whether it starts from now.
pub(crate) fn fresh(start_from: StartFrom) -> (Cursor, bool) {
    match start_from {
        StartFrom::Now => (Cursor::default(), true),
        StartFrom::All => (Cursor::default(), false),
        StartFrom::Since(d) => {
            let since =
                Timestamp::now().checked_sub(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX));
            (Cursor { since: Some(since.unwrap_or(Timestamp::MIN)), ..Cursor::default() }, false)
        }
    }
}

/// What `metadata.uid` of a Namespace is read as.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Namespace {
    metadata: NamespaceMeta,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NamespaceMeta {
    uid: String,
}

/// Decides where each stream starts, then runs the streams: a task of its own, so that
/// [`Source::start`] does no network I/O and an unreachable apiserver is retried.
struct Setup {
    config: SourceConfig,
    client: kube::Client,
    readiness: Readiness,
    tx: mpsc::Sender<Msg>,
    namespaces: Vec<Option<String>>,
}

impl Setup {
    async fn run(self, resume: Option<Position>) {
        let mut tasks = tokio::task::JoinSet::new();
        let Some(cluster) = self.cluster().await else { return };
        let resumed = self.resumed(resume, cluster.as_deref());
        let mut cursors = Cursors::new();
        cursors.cluster = cluster;
        let mut streams = Vec::with_capacity(self.namespaces.len());
        let config = Arc::new(self.config.clone());
        for (index, ns) in self.namespaces.iter().enumerate() {
            let key = ns.clone().unwrap_or_default();
            let (cursor, resumed) = match resumed.as_ref().and_then(|c| c.get(&key)) {
                Some(c) => (c.clone(), true),
                None => (fresh(self.config.start_from).0, false),
            };
            info!(namespace = %if key.is_empty() { "*" } else { &key }, resume = %cursor.rv, "Kubernetes source starting.");
            cursors.set(&key, cursor.clone());
            streams.push(Stream {
                index,
                client: self.client.clone(),
                path: self.config.path(ns.as_deref()),
                config: config.clone(),
                cursor,
                resumed,
                tx: self.tx.clone(),
                readiness: self.readiness.clone(),
                key_order: true,
            });
        }
        if self.tx.send(Msg::Started(cursors)).await.is_err() {
            return;
        }
        for stream in streams {
            tasks.spawn(stream.run());
        }
        // Dropping the set (when the source drops this task) aborts the streams.
        while tasks.join_next().await.is_some() {}
    }

    /// The cluster's identity: the uid of its `kube-system` namespace, which lives as long
    /// as the cluster. `Some(None)` when it cannot be read (RBAC); `None` when the source
    /// is gone.
    async fn cluster(&self) -> Option<Option<String>> {
        let backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        let what = "get of namespace kube-system";
        for attempt in 1u32.. {
            let req = Request::new("/api/v1/namespaces").get("kube-system", &Default::default());
            let result = match req {
                Ok(req) => match http::send(&self.client, req, what, self.config.request_timeout).await {
                    Ok(response) => http::text(response, what, self.config.request_timeout).await,
                    Err(t) => Err(t),
                },
                Err(e) => Err(Trouble::Fatal(Error::new(ErrorKind::Unexpected, "invalid request").with_source(e))),
            };
            let trouble = match result {
                Ok(text) => match serde_json::from_str::<Namespace>(&text) {
                    Ok(ns) if !ns.metadata.uid.is_empty() => {
                        self.readiness.clear_error();
                        return Some(Some(ns.metadata.uid));
                    }
                    _ => Trouble::Fatal(Error::new(ErrorKind::Decode, "the namespace has no uid")),
                },
                Err(t) => t,
            };
            let e = match trouble {
                Trouble::Retry(e) | Trouble::Stalled(e) if e.kind() == ErrorKind::Unavailable => e,
                Trouble::Closed => return None,
                Trouble::Gone => Error::new(ErrorKind::Unexpected, "410 Gone"),
                Trouble::Retry(e) | Trouble::Stalled(e) | Trouble::Fatal(e) => e,
            };
            if e.kind() != ErrorKind::Unavailable {
                warn!(
                    error = %e.chain(),
                    "Cannot read the cluster's identity (the uid of namespace kube-system; RBAC: get on namespaces): \
                     checkpoints are not tied to a cluster, only checked against its current resourceVersion."
                );
                return Some(None);
            }
            let delay = e.retry_after().unwrap_or_else(|| backoff.delay(attempt));
            warn!(error = %e.chain(), retry_in = ?delay, "Kubernetes source: will retry.");
            self.readiness.count(Tally::Restart);
            self.readiness.set_error(&e);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.tx.closed() => return None,
            }
        }
        None
    }

    /// The usable part of the checkpoint: none from another cluster, none that is
    /// unreadable, no entry holding a version a watch cannot start from. Each loss is
    /// logged and counted; the streams without a cursor start as configured.
    fn resumed(&self, resume: Option<Position>, cluster: Option<&str>) -> Option<Cursors> {
        let start_from = self.config.start_from;
        let mut cursors = match Cursors::parse(&resume?) {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, start_from = %start_from, "Ignoring the checkpoint; starting over as configured by startFrom.");
                self.readiness.count(Tally::Mismatch);
                return None;
            }
        };
        if let (Some(saved), Some(live)) = (cursors.cluster.as_deref(), cluster)
            && saved != live
        {
            error!(
                checkpoint_cluster = %saved,
                cluster = %live,
                start_from = %start_from,
                "The checkpoint was saved in another cluster (the uid of namespace kube-system differs): \
                 ignoring it and starting over as configured by startFrom."
            );
            self.readiness.count(Tally::Mismatch);
            return None;
        }
        for ns in cursors.drop_unsound() {
            error!(
                namespace = %if ns.is_empty() { "*" } else { &ns },
                start_from = %start_from,
                "The checkpoint holds a resourceVersion that is not a decimal etcd revision: \
                 dropping it and starting over as configured by startFrom."
            );
            self.readiness.count(Tally::Mismatch);
        }
        let saved: Vec<&str> = cursors.namespaces().map(|ns| if ns.is_empty() { "*" } else { ns }).collect();
        for ns in &self.namespaces {
            let key = ns.as_deref().unwrap_or_default();
            if cursors.get(key).is_none() && !saved.is_empty() {
                error!(
                    namespace = %ns.as_deref().unwrap_or("*"),
                    checkpoint_namespaces = %saved.join(","),
                    start_from = %start_from,
                    "The checkpoint was saved for other namespaces than the ones now watched: \
                     starting this one over as configured by startFrom."
                );
                self.readiness.count(Tally::Mismatch);
            }
        }
        Some(cursors)
    }
}
