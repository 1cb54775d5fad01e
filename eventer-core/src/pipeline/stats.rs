//! Counters: live while the pipeline runs, and its final report.

use std::sync::{
    Arc,
    atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
};

use jiff::Timestamp;

use crate::source::Position;

/// Counters of one sink, bumped by the dispatcher and the sink's worker.
#[derive(Debug, Default)]
pub(crate) struct SinkStats {
    /// Events routed to the sink's queue.
    pub(crate) routed: AtomicU64,
    /// Events its filter turned away.
    pub(crate) filtered: AtomicU64,
    /// Events delivered.
    pub(crate) delivered: AtomicU64,
    /// Retry attempts scheduled.
    pub(crate) retried: AtomicU64,
    /// Events a sink held back on purpose (rate budget) to be offered again.
    pub(crate) deferred: AtomicU64,
    /// Events permanently rejected.
    pub(crate) failed: AtomicU64,
    /// Events dropped by `overflow=drop`.
    pub(crate) dropped: AtomicU64,
    /// Events queued or being retried right now.
    pub(crate) in_flight: AtomicI64,
}

/// Counters of a running pipeline, readable while it runs (metrics, health): take the
/// handle with [`Pipeline::stats`](super::Pipeline::stats) before running it.
///
/// ```
/// use eventer_core::{Pipeline, Route};
/// use eventer_core::testing::{MemorySink, VecSource, sample_events};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let pipeline = Pipeline::new(Box::new(VecSource::new(sample_events())))
///     .route(Route::new("archive", Box::new(MemorySink::new())));
/// let stats = pipeline.stats();
/// pipeline.run(std::future::pending()).await?;
/// assert_eq!(stats.received(), 4);
/// let archive = stats.sink("archive").expect("a route of that name");
/// assert_eq!((archive.delivered, archive.in_flight), (4, 0));
/// # Ok::<(), eventer_core::Error>(())
/// # }).unwrap();
/// ```
// The fields are the pipeline's: atomics bumped on the hot path, read here and by the
// metrics collector.
#[derive(Debug)]
pub struct Stats {
    pub(crate) received: AtomicU64,
    /// Unix seconds of the last event read (0 before the first).
    pub(crate) last_event_unix: AtomicI64,
    pub(crate) checkpoints_saved: AtomicU64,
    pub(crate) checkpoint_failures: AtomicU64,
    /// Events read but not yet finished by every sink.
    pub(crate) checkpoint_lag: AtomicI64,
    /// Per-sink counters, by sink name, in route order.
    pub(crate) sinks: Vec<(String, Arc<SinkStats>)>,
}

/// One sink's counters at one moment (see [`Stats::sinks`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkCounts {
    /// The route's name.
    pub name: String,
    /// Events routed to the sink's queue.
    pub routed: u64,
    /// Events its filter turned away.
    pub filtered: u64,
    /// Events delivered.
    pub delivered: u64,
    /// Retry attempts scheduled.
    pub retried: u64,
    /// Events the sink held back on purpose (rate budget) to be offered again, each time.
    pub deferred: u64,
    /// Events rejected permanently.
    pub failed: u64,
    /// Events dropped by `overflow=drop`.
    pub dropped: u64,
    /// Events queued for the sink or awaiting a retry.
    pub in_flight: u64,
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

impl Stats {
    pub(super) fn new(names: &[&str]) -> Self {
        Stats {
            received: AtomicU64::new(0),
            last_event_unix: AtomicI64::new(0),
            checkpoints_saved: AtomicU64::new(0),
            checkpoint_failures: AtomicU64::new(0),
            checkpoint_lag: AtomicI64::new(0),
            sinks: names.iter().map(|n| ((*n).to_owned(), Arc::new(SinkStats::default()))).collect(),
        }
    }

    /// Events read from the source.
    pub fn received(&self) -> u64 {
        self.received.load(Relaxed)
    }

    /// When the last event read last occurred; `None` before the first.
    pub fn last_event(&self) -> Option<Timestamp> {
        match self.last_event_unix.load(Relaxed) {
            0 => None,
            secs => Timestamp::from_second(secs).ok(),
        }
    }

    /// Checkpoints written.
    pub fn checkpoints_saved(&self) -> u64 {
        self.checkpoints_saved.load(Relaxed)
    }

    /// Checkpoint writes that failed (each retried with backoff).
    pub fn checkpoint_failures(&self) -> u64 {
        self.checkpoint_failures.load(Relaxed)
    }

    /// Events read but not yet finished by every sink: how far the checkpoint trails the
    /// source, in events.
    pub fn checkpoint_lag(&self) -> u64 {
        self.checkpoint_lag.load(Relaxed).max(0).unsigned_abs()
    }

    /// Every sink's counters, in the order the routes were added.
    pub fn sinks(&self) -> Vec<SinkCounts> {
        self.sinks.iter().map(|(name, s)| s.counts(name)).collect()
    }

    /// The counters of the route named `name`.
    pub fn sink(&self, name: &str) -> Option<SinkCounts> {
        self.sinks.iter().find(|(n, _)| n == name).map(|(name, s)| s.counts(name))
    }
}

impl SinkStats {
    fn counts(&self, name: &str) -> SinkCounts {
        SinkCounts {
            name: name.to_owned(),
            routed: self.routed.load(Relaxed),
            filtered: self.filtered.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            retried: self.retried.load(Relaxed),
            deferred: self.deferred.load(Relaxed),
            failed: self.failed.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed).max(0).unsigned_abs(),
        }
    }
}
