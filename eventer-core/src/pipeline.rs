//! The delivery pipeline: source → per-sink filter → bounded queue → batch → send →
//! retry → acknowledgement → checkpoint.
//!
//! Guarantees, each covered by a test in this module:
//! - every routed event ends as delivered, rejected (logged and counted), or — only with
//!   `overflow=drop` — dropped (logged and counted); nothing disappears silently;
//! - retryable outcomes are retried with exponential backoff and jitter, honouring
//!   retry-after, for as long as it takes (or until the shutdown deadline);
//! - a full queue back-pressures the source: memory stays bounded, and a slow sink does not
//!   hold up the events already queued for the others;
//! - the checkpoint never passes an event that some sink has not finished with.

use std::{
    collections::VecDeque,
    fmt,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::{
    sync::{Notify, mpsc},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::{
    Error, Result,
    checkpoint::{BoxCheckpointStore, CheckpointStore},
    event::SharedEvent,
    filter::{BoxFilter, Filter},
    sink::{BoxSink, Outcome},
    source::{BoxSource, Position, SourceItem},
    telemetry::{Check, HealthComponent, StatsCollector, Telemetry},
};

/// What to do when a sink's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Wait for room: the source is back-pressured (default; nothing is lost).
    #[default]
    Block,
    /// Drop the new event for this sink, counting and logging it.
    Drop,
}

/// Per-sink routing options (`queue_size`, `overflow` in a sink URI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteOptions {
    /// Events waiting for this sink before the source is back-pressured.
    pub queue_size: usize,
    /// Policy when the queue is full.
    pub overflow: Overflow,
}

impl Default for RouteOptions {
    fn default() -> Self {
        RouteOptions { queue_size: 2048, overflow: Overflow::Block }
    }
}

/// Exponential backoff with jitter for retryable outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_millis(500), max: Duration::from_secs(60) }
    }
}

impl Backoff {
    /// A backoff policy.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max: max.max(initial) }
    }

    /// The delay before retry number `attempt` (1-based): doubling from `initial`, capped
    /// at `max`, with "equal jitter" (between half and all of it) so that sinks recovering
    /// together do not retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let full = exp.min(self.max);
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Pipeline-wide settings. How often the checkpoint is saved is the store's to say
/// ([`CheckpointStore::min_interval`](crate::checkpoint::CheckpointStore::min_interval)).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PipelineConfig {
    /// After a shutdown signal, how long queued events may take to drain.
    pub shutdown_timeout: Duration,
    /// Events read but not yet finished by every sink; the source waits beyond this.
    pub max_in_flight: usize,
    /// Retry policy of sinks, and of checkpoint writes (then at most 10 s apart, and never
    /// sooner than the store's minimum interval).
    pub backoff: Backoff,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig { shutdown_timeout: Duration::from_secs(30), max_in_flight: 65_536, backoff: Backoff::default() }
    }
}

/// Counters of one sink.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct SinkStats {
    /// Events routed to the sink's queue.
    pub routed: AtomicU64,
    /// Events its filter turned away.
    pub filtered: AtomicU64,
    /// Events delivered.
    pub delivered: AtomicU64,
    /// Retry attempts scheduled.
    pub retried: AtomicU64,
    /// Events a sink held back on purpose (rate budget) to be offered again.
    pub deferred: AtomicU64,
    /// Events permanently rejected.
    pub failed: AtomicU64,
    /// Events dropped by `overflow=drop`.
    pub dropped: AtomicU64,
    /// Events queued or being retried right now.
    pub in_flight: AtomicI64,
}

/// Counters of a running pipeline, readable while it runs (metrics, health).
#[derive(Debug)]
#[non_exhaustive]
pub struct Stats {
    /// Events read from the source.
    pub received: AtomicU64,
    /// Unix seconds of the last event read (0 before the first).
    pub last_event_unix: AtomicI64,
    /// Checkpoints written.
    pub checkpoints_saved: AtomicU64,
    /// Checkpoint writes that failed (retried with backoff).
    pub checkpoint_failures: AtomicU64,
    /// Events read but not yet finished by every sink (checkpoint lag, in events).
    pub checkpoint_lag: AtomicI64,
    /// Per-sink counters, by sink name.
    pub sinks: Vec<(String, Arc<SinkStats>)>,
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Events read from the source.
    pub received: u64,
    /// Per sink: name, delivered, rejected, dropped.
    pub sinks: Vec<SinkReport>,
    /// Events still unfinished when the shutdown deadline passed (re-read after a restart).
    pub unfinished: u64,
    /// The last safe position, as saved.
    pub checkpoint: Option<Position>,
}

/// One sink's totals in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkReport {
    /// Sink name.
    pub name: String,
    /// Delivered events.
    pub delivered: u64,
    /// Rejected events.
    pub failed: u64,
    /// Dropped events.
    pub dropped: u64,
    /// Retry attempts.
    pub retried: u64,
}

/// A sink with its name, filter and routing options.
pub struct Route {
    name: String,
    sink: BoxSink,
    filter: Option<BoxFilter>,
    options: RouteOptions,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route").field("name", &self.name).field("options", &self.options).finish_non_exhaustive()
    }
}

impl Route {
    /// A route to `sink` with default options and no filter.
    pub fn new(name: impl Into<String>, sink: BoxSink) -> Self {
        Route { name: name.into(), sink, filter: None, options: RouteOptions::default() }
    }

    /// Only events matching `filter` reach the sink.
    #[must_use]
    pub fn filter(mut self, filter: BoxFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Routing options.
    #[must_use]
    pub fn options(mut self, options: RouteOptions) -> Self {
        self.options = options;
        self
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A source wired to sinks. Build with [`Pipeline::new`], add [`Route`]s, then
/// [`Pipeline::run`].
///
/// ```
/// use eventer_core::{Event, Pipeline, Route, filter::{Filter, filter_fn}};
/// use eventer_core::testing::{MemorySink, VecSource};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let source = VecSource::new(vec![
///     Event::builder().kind("Pod").reason("BackOff").warning().build(),
///     Event::builder().kind("Pod").reason("Pulled").build(),
/// ]);
/// let alerts = MemorySink::new();
/// let pipeline = Pipeline::new(Box::new(source))
///     .route(Route::new("alerts", Box::new(alerts.clone())).filter(std::sync::Arc::new(filter_fn(|e: &Event| e.reason == "BackOff"))));
/// let report = pipeline.run(std::future::pending()).await?;
/// assert_eq!(report.received, 2);
/// assert_eq!(alerts.reasons(), ["BackOff"]);
/// # Ok::<(), eventer_core::Error>(())
/// # }).unwrap();
/// ```
pub struct Pipeline {
    source: BoxSource,
    routes: Vec<Route>,
    checkpoint: Option<BoxCheckpointStore>,
    config: PipelineConfig,
    stats: Arc<Stats>,
    telemetry: Option<Telemetry>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("routes", &self.routes)
            .field("checkpoint", &self.checkpoint.is_some())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline reading from `source`.
    pub fn new(source: BoxSource) -> Self {
        Pipeline {
            source,
            routes: Vec::new(),
            checkpoint: None,
            config: PipelineConfig::default(),
            stats: Arc::new(Stats::new(&[])),
            telemetry: None,
        }
    }

    /// Add a sink.
    #[must_use]
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        let names: Vec<&str> = self.routes.iter().map(|r| r.name.as_str()).collect();
        self.stats = Arc::new(Stats::new(&names));
        self
    }

    /// Persist the safe position in `store`, and resume from it on start.
    #[must_use]
    pub fn checkpoint(mut self, store: BoxCheckpointStore) -> Self {
        self.checkpoint = Some(store);
        self
    }

    /// Pipeline-wide settings.
    #[must_use]
    pub fn config(mut self, config: PipelineConfig) -> Self {
        self.config = config;
        self
    }

    /// Export the counters as metrics and report each sink's health (`sink/<name>`: ready
    /// once started; failing while whole batches are rejected, until one is delivered).
    #[must_use]
    pub fn telemetry(mut self, telemetry: &Telemetry) -> Self {
        self.telemetry = Some(telemetry.clone());
        self
    }

    /// Live counters; take the handle before [`Pipeline::run`].
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Run until the source ends (then drain everything) or `shutdown` resolves (then
    /// drain within [`PipelineConfig::shutdown_timeout`]).
    ///
    /// # Errors
    /// When the checkpoint cannot be loaded, a sink or the source fails to start, or the
    /// source fails for good. Queued events are drained before a source error is returned.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<Report> {
        let Pipeline { mut source, routes, checkpoint, config, stats, telemetry } = self;
        if let Some(t) = &telemetry {
            t.metrics.register_collector(StatsCollector(stats.clone()));
        }

        let resume = match &checkpoint {
            Some(store) => store.load().await.map_err(|e| e.in_component("checkpoint"))?,
            None => None,
        };
        if let Some(pos) = &resume {
            info!(position = %pos, "Resuming from checkpoint.");
        }

        let tracker = Arc::new(Tracker::new(config.max_in_flight, resume.clone()));
        let hard_stop = CancellationToken::new();
        let mut senders = Vec::with_capacity(routes.len());
        let mut filters = Vec::with_capacity(routes.len());
        let mut workers = Vec::with_capacity(routes.len());
        for (i, route) in routes.into_iter().enumerate() {
            let Route { name, mut sink, filter, options } = route;
            let health = telemetry.as_ref().map(|t| t.health.component(format!("sink/{name}")));
            sink.start().await.map_err(|e| {
                Error::new(e.kind(), format!("sink {name} failed to start: {}", e.chain()))
                    .in_component(format!("sink/{name}"))
            })?;
            if let Some(h) = &health {
                h.set(Check::Ready);
            }
            let (tx, rx) = mpsc::channel(options.queue_size.max(1));
            senders.push((tx, options.overflow));
            filters.push(filter);
            let worker = Worker {
                name,
                sink,
                rx,
                tracker: tracker.clone(),
                stats: stats.sinks[i].1.clone(),
                hard_stop: hard_stop.clone(),
                backoff: config.backoff,
                max_pending: options.queue_size.max(1),
                health,
            };
            workers.push(tokio::spawn(worker.run()));
        }
        source.start(resume).await.map_err(|e| e.in_component("source"))?;

        let checkpointer = checkpoint.map(|store| {
            let store = Arc::new(store);
            let tracker = tracker.clone();
            let stats = stats.clone();
            let stop = CancellationToken::new();
            let task = tokio::spawn(checkpoint_loop(store.clone(), tracker, stats, config.backoff, stop.clone()));
            (store, task, stop)
        });

        // Dispatch until the source ends, fails, or shutdown is requested.
        let mut shutdown = std::pin::pin!(shutdown);
        let mut signalled = false;
        let mut failure = None;
        let mut targets = Vec::with_capacity(senders.len());
        'dispatch: loop {
            let item = tokio::select! {
                biased;
                () = &mut shutdown => { signalled = true; break; }
                // The trait object's own method: through `Box`'s impl it would box each future twice.
                item = source.as_mut().next() => item,
            };
            let (event, position) = match item {
                Ok(Some(SourceItem::Event { event, position })) => (event, position),
                Ok(Some(SourceItem::Progress(position))) => {
                    tokio::select! {
                        biased;
                        _ = tracker.register(0, Some(position)) => {}
                        () = &mut shutdown => { signalled = true; break; }
                    }
                    continue;
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e.in_component("source"));
                    break;
                }
            };
            stats.received.fetch_add(1, Relaxed);
            if let Some(t) = event.last_seen() {
                stats.last_event_unix.store(t.as_second(), Relaxed);
            }
            let event: SharedEvent = Arc::new(event);
            targets.clear();
            for (i, filter) in filters.iter().enumerate() {
                if filter.as_ref().is_none_or(|f| f.matches(&event)) {
                    targets.push(i);
                } else {
                    stats.sinks[i].1.filtered.fetch_add(1, Relaxed);
                }
            }
            let (seq, in_flight) = tokio::select! {
                biased;
                registered = tracker.register(targets.len(), position) => registered,
                () = &mut shutdown => { signalled = true; break; }
            };
            for &i in &targets {
                let (tx, overflow) = &senders[i];
                let sink_stats = &stats.sinks[i].1;
                let envelope = Envelope { seq, event: event.clone() };
                match overflow {
                    // A full queue blocks here: this is the back-pressure on the source.
                    Overflow::Block => tokio::select! {
                        biased;
                        sent = tx.send(envelope) => if sent.is_err() { failure = Some(worker_gone(&stats.sinks[i].0)); break 'dispatch; },
                        () = &mut shutdown => { signalled = true; break 'dispatch; }
                    },
                    Overflow::Drop => match tx.try_send(envelope) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            let dropped = sink_stats.dropped.fetch_add(1, Relaxed) + 1;
                            if dropped.is_power_of_two() {
                                warn!(sink = %stats.sinks[i].0, dropped, "Queue full, dropping events (overflow=drop).");
                            }
                            tracker.complete(&[seq]);
                            continue;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            failure = Some(worker_gone(&stats.sinks[i].0));
                            break 'dispatch;
                        }
                    },
                }
                sink_stats.routed.fetch_add(1, Relaxed);
                sink_stats.in_flight.fetch_add(1, Relaxed);
            }
            stats.checkpoint_lag.store(in_flight as i64, Relaxed);
        }
        drop(source);
        drop(senders);

        // Drain: the workers finish what is queued; a signal (now or later) sets a deadline.
        let deadline = async {
            if !signalled {
                shutdown.await;
            }
            info!(timeout = ?config.shutdown_timeout, "Shutting down, draining queues.");
            tokio::time::sleep(config.shutdown_timeout).await;
            warn!("Shutdown deadline passed; undelivered events stay after the checkpoint.");
            hard_stop.cancel();
        };
        let mut join_all = std::pin::pin!(futures::future::join_all(workers));
        let joined = tokio::select! {
            joined = &mut join_all => joined,
            // After the deadline the workers stop at their next await point.
            () = deadline => join_all.await,
        };
        if failure.is_none()
            && let Some(i) = joined.iter().position(Result::is_err)
        {
            failure = Some(worker_gone(&stats.sinks[i].0));
        }
        let unfinished = tracker.len() as u64;
        stats.checkpoint_lag.store(unfinished as i64, Relaxed);

        let saved = match checkpointer {
            Some((store, task, stop)) => {
                stop.cancel();
                if let Err(e) = task.await {
                    error!(error = %e, "Checkpoint task failed.");
                }
                save_checkpoint(&**store, &tracker, &stats).await;
                tracker.saved()
            }
            None => None,
        };

        let report = Report {
            received: stats.received.load(Relaxed),
            sinks: stats
                .sinks
                .iter()
                .map(|(name, s)| SinkReport {
                    name: name.clone(),
                    delivered: s.delivered.load(Relaxed),
                    failed: s.failed.load(Relaxed),
                    dropped: s.dropped.load(Relaxed),
                    retried: s.retried.load(Relaxed),
                })
                .collect(),
            unfinished,
            checkpoint: saved,
        };
        match failure {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

impl Stats {
    fn new(names: &[&str]) -> Self {
        Stats {
            received: AtomicU64::new(0),
            last_event_unix: AtomicI64::new(0),
            checkpoints_saved: AtomicU64::new(0),
            checkpoint_failures: AtomicU64::new(0),
            checkpoint_lag: AtomicI64::new(0),
            sinks: names.iter().map(|n| ((*n).to_owned(), Arc::new(SinkStats::default()))).collect(),
        }
    }
}

/// The longest wait before retrying a failed checkpoint write: once the store is back,
/// the position is saved within seconds, not after a sink-sized backoff of a minute.
const CHECKPOINT_RETRY_MAX: Duration = Duration::from_secs(10);

/// Save as soon as the safe position moves, then no sooner than the store's minimum
/// interval: a crash repeats only what was delivered since the last save (a process that
/// dies within seconds of starting has still saved its first batch), and the store sees
/// at most one write per interval however fast events flow.
async fn checkpoint_loop(
    store: Arc<BoxCheckpointStore>,
    tracker: Arc<Tracker>,
    stats: Arc<Stats>,
    backoff: Backoff,
    stop: CancellationToken,
) {
    let min_interval = store.min_interval();
    let mut failures = 0;
    loop {
        while !tracker.has_unsaved() {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tracker.moved.notified() => {}
            }
        }
        let started = Instant::now();
        let wait = if save_checkpoint(&**store, &tracker, &stats).await {
            failures = 0;
            min_interval
        } else {
            failures += 1;
            backoff.delay(failures).min(CHECKPOINT_RETRY_MAX).max(min_interval)
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(started + wait) => {}
        }
    }
}

/// A sink's worker ended early (its task panicked): its queue is closed, and its events
/// would hold the checkpoint back for ever. Stop, keeping them after the checkpoint.
fn worker_gone(name: &str) -> Error {
    Error::new(
        crate::ErrorKind::Unexpected,
        format!("sink {name} stopped unexpectedly; undelivered events stay after the checkpoint"),
    )
    .in_component(format!("sink/{name}"))
}

/// Save the safe position if it moved; returns false when the write failed.
async fn save_checkpoint(store: &dyn CheckpointStore, tracker: &Tracker, stats: &Stats) -> bool {
    let Some(position) = tracker.unsaved() else { return true };
    match store.save(&position).await {
        Ok(()) => {
            stats.checkpoints_saved.fetch_add(1, Relaxed);
            tracker.mark_saved(position);
            true
        }
        Err(e) => {
            stats.checkpoint_failures.fetch_add(1, Relaxed);
            warn!(error = %e.chain(), "Checkpoint write failed; will retry.");
            false
        }
    }
}

struct Envelope {
    seq: u64,
    event: SharedEvent,
}

struct Pending {
    envelope: Envelope,
    attempt: u32,
    not_before: Instant,
}

struct Worker {
    name: String,
    sink: BoxSink,
    rx: mpsc::Receiver<Envelope>,
    tracker: Arc<Tracker>,
    stats: Arc<SinkStats>,
    hard_stop: CancellationToken,
    backoff: Backoff,
    max_pending: usize,
    health: Option<HealthComponent>,
}

impl Worker {
    async fn run(mut self) {
        let batching = self.sink.batching();
        // Events awaiting a retry, in source order.
        let mut retries: VecDeque<Pending> = VecDeque::new();
        let mut open = true;
        let mut batch: Vec<Pending> = Vec::with_capacity(batching.max_events);
        let mut events: Vec<SharedEvent> = Vec::with_capacity(batching.max_events);
        loop {
            if !open && retries.is_empty() {
                break;
            }
            // Wait for a new event or the earliest retry.
            let next_retry = retries.iter().map(|p| p.not_before).min();
            let retry_ready = next_retry.is_some_and(|t| t <= Instant::now());
            if !retry_ready {
                let room = open && retries.len() < self.max_pending;
                tokio::select! {
                    biased;
                    () = self.hard_stop.cancelled() => break,
                    msg = self.rx.recv(), if room => match msg {
                        Some(envelope) => batch.push(Pending { envelope, attempt: 0, not_before: Instant::now() }),
                        None => { open = false; continue; }
                    },
                    () = sleep_until_opt(next_retry) => {}
                }
            }
            // Retries that are due go first (they are older), then new events.
            let now = Instant::now();
            let mut i = 0;
            while i < retries.len() && batch.len() < batching.max_events {
                if retries[i].not_before <= now {
                    batch.push(retries.remove(i).expect("index checked"));
                } else {
                    i += 1;
                }
            }
            batch.sort_by_key(|p| p.envelope.seq);
            // Fill the batch within the window.
            let window_end = now + batching.window;
            while open && batch.len() < batching.max_events && retries.len() < self.max_pending {
                match self.rx.try_recv() {
                    Ok(envelope) => batch.push(Pending { envelope, attempt: 0, not_before: now }),
                    Err(mpsc::error::TryRecvError::Disconnected) => open = false,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if batching.window.is_zero() || Instant::now() >= window_end {
                            break;
                        }
                        tokio::select! {
                            biased;
                            () = self.hard_stop.cancelled() => break,
                            msg = self.rx.recv() => match msg {
                                Some(envelope) => batch.push(Pending { envelope, attempt: 0, not_before: now }),
                                None => open = false,
                            },
                            () = tokio::time::sleep_until(window_end) => break,
                        }
                    }
                }
            }
            if batch.is_empty() {
                continue;
            }
            events.clear();
            events.extend(batch.iter().map(|p| p.envelope.event.clone()));
            let outcomes = tokio::select! {
                biased;
                () = self.hard_stop.cancelled() => break,
                outcomes = self.sink.send(&events) => outcomes,
            };
            self.settle(&mut batch, outcomes, &mut retries);
        }
        let closed = tokio::time::timeout(Duration::from_secs(10), self.sink.close()).await;
        if let Ok(Err(e)) = closed {
            warn!(sink = %self.name, error = %e.chain(), "Sink failed to close cleanly.");
        }
        debug!(sink = %self.name, "Sink worker stopped.");
    }

    /// Apply the outcomes of one send: acknowledge finished events, schedule retries.
    fn settle(&self, batch: &mut Vec<Pending>, mut outcomes: Vec<Outcome>, retries: &mut VecDeque<Pending>) {
        if outcomes.len() != batch.len() {
            error!(
                sink = %self.name,
                expected = batch.len(),
                got = outcomes.len(),
                "Sink returned the wrong number of outcomes; retrying the batch."
            );
            let err = Arc::new(Error::new(crate::ErrorKind::Unexpected, "sink returned the wrong number of outcomes"));
            outcomes = vec![Outcome::Retry(err); batch.len()];
        }
        let mut finished = Vec::with_capacity(batch.len());
        let (mut delivered, mut failed, mut retried, mut deferred) = (0u64, 0u64, 0u64, 0u64);
        let mut first_retry: Option<(Arc<Error>, Duration)> = None;
        let mut last_rejection: Option<Arc<Error>> = None;
        let total = batch.len();
        let now = Instant::now();
        for (mut pending, outcome) in batch.drain(..).zip(outcomes) {
            match outcome {
                Outcome::Delivered => {
                    delivered += 1;
                    finished.push(pending.envelope.seq);
                }
                Outcome::Rejected(err) => {
                    failed += 1;
                    let ev = &pending.envelope.event;
                    error!(
                        sink = %self.name,
                        namespace = %ev.namespace,
                        object = %format_args!("{}/{}", ev.involved_object.kind, ev.involved_object.name),
                        reason = %ev.reason,
                        error = %err.chain(),
                        "Event rejected permanently."
                    );
                    finished.push(pending.envelope.seq);
                    last_rejection = Some(err);
                }
                Outcome::Retry(err) => {
                    retried += 1;
                    pending.attempt += 1;
                    let delay = err.retry_after().unwrap_or_else(|| self.backoff.delay(pending.attempt));
                    pending.not_before = now + delay;
                    if first_retry.is_none() {
                        first_retry = Some((err, delay));
                    }
                    retries.push_back(pending);
                }
                Outcome::Defer(delay) => {
                    deferred += 1;
                    pending.not_before = now + delay;
                    retries.push_back(pending);
                }
            }
        }
        if deferred > 0 {
            debug!(sink = %self.name, events = deferred, "Sink deferred events.");
            self.stats.deferred.fetch_add(deferred, Relaxed);
        }
        if let Some((err, delay)) = first_retry {
            warn!(sink = %self.name, events = retried, retry_in = ?delay, error = %err.chain(), "Delivery failed; will retry.");
        }
        if let Some(health) = &self.health {
            // A whole batch refused means the sink itself is misconfigured (a bad token, a
            // missing logstore), not one odd event.
            match last_rejection {
                Some(err) if failed as usize == total => health.set(Check::Failing(err.chain())),
                _ if delivered > 0 => health.set(Check::Ready),
                _ => {}
            }
        }
        self.stats.delivered.fetch_add(delivered, Relaxed);
        self.stats.failed.fetch_add(failed, Relaxed);
        self.stats.retried.fetch_add(retried, Relaxed);
        self.stats.in_flight.fetch_sub((delivered + failed) as i64, Relaxed);
        self.tracker.complete(&finished);
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Tracks which events each sink still holds, to find the safe checkpoint position.
struct Tracker {
    inner: Mutex<TrackerInner>,
    space: Notify,
    /// Signalled when the safe position moves (one waiter: the checkpoint loop).
    moved: Notify,
    max: usize,
}

struct TrackerInner {
    /// Sequence number of `entries[0]`.
    base: u64,
    /// Sinks still holding each in-flight event, in source order.
    entries: VecDeque<Entry>,
    /// Latest position at or before which every event is finished.
    safe: Option<Position>,
    saved: Option<Position>,
}

struct Entry {
    remaining: u32,
    position: Option<Position>,
}

/// While more events than this are in flight (a sink is stuck or batching), an event's
/// position is kept only if its sequence number is a multiple of [`KEEP_EVERY`] or it is
/// the newest: a position can be large (one cursor per watched namespace) and a stuck
/// sink must not multiply it by `max_in_flight`. The checkpoint then trails the finished
/// events by fewer than `KEEP_EVERY` events (repeated after a crash, never lost); once
/// everything is finished it is exact again, since the newest keeps its position.
const THIN_AFTER: usize = 1024;
const KEEP_EVERY: u64 = 64;

impl Tracker {
    fn new(max: usize, resume: Option<Position>) -> Self {
        Tracker {
            inner: Mutex::new(TrackerInner { base: 0, entries: VecDeque::new(), safe: resume.clone(), saved: resume }),
            space: Notify::new(),
            moved: Notify::new(),
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerInner> {
        // A panic while holding the lock leaves consistent data (plain counters).
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Register an event held by `sinks` sinks; waits while `max` events are in flight.
    /// Returns its sequence number and the number of events in flight.
    async fn register(&self, sinks: usize, position: Option<Position>) -> (u64, usize) {
        let remaining = u32::try_from(sinks).unwrap_or(u32::MAX);
        let mut position = Some(position);
        loop {
            let notified = self.space.notified();
            {
                let mut inner = self.lock();
                if inner.entries.len() < self.max {
                    let seq = inner.base + inner.entries.len() as u64;
                    let position = position.take().flatten();
                    if position.is_some()
                        && inner.entries.len() > THIN_AFTER
                        && !(seq - 1).is_multiple_of(KEEP_EVERY)
                        && let Some(newest) = inner.entries.back_mut()
                    {
                        newest.position = None;
                    }
                    inner.entries.push_back(Entry { remaining, position });
                    if inner.advance().1 {
                        self.moved.notify_one();
                    }
                    return (seq, inner.entries.len());
                }
            }
            notified.await;
        }
    }

    /// One sink finished these events.
    fn complete(&self, seqs: &[u64]) {
        if seqs.is_empty() {
            return;
        }
        let (freed, moved) = {
            let mut inner = self.lock();
            let base = inner.base;
            for &seq in seqs {
                if let Some(entry) = seq.checked_sub(base).and_then(|i| inner.entries.get_mut(i as usize)) {
                    entry.remaining = entry.remaining.saturating_sub(1);
                }
            }
            inner.advance()
        };
        if freed {
            self.space.notify_waiters();
        }
        if moved {
            self.moved.notify_one();
        }
    }

    fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn unsaved(&self) -> Option<Position> {
        let inner = self.lock();
        (inner.safe != inner.saved).then(|| inner.safe.clone()).flatten()
    }

    fn has_unsaved(&self) -> bool {
        let inner = self.lock();
        inner.safe.is_some() && inner.safe != inner.saved
    }

    fn mark_saved(&self, position: Position) {
        self.lock().saved = Some(position);
    }

    fn saved(&self) -> Option<Position> {
        self.lock().saved.clone()
    }
}

impl TrackerInner {
    /// Pop finished events from the front; returns whether any was popped, and whether
    /// the safe position moved.
    fn advance(&mut self) -> (bool, bool) {
        let (mut popped, mut moved) = (false, false);
        while self.entries.front().is_some_and(|e| e.remaining == 0) {
            let entry = self.entries.pop_front().expect("front checked");
            self.base += 1;
            if entry.position.is_some() {
                self.safe = entry.position;
                moved = true;
            }
            popped = true;
        }
        (popped, moved)
    }
}

#[cfg(all(test, feature = "test-util"))]
mod tests;
