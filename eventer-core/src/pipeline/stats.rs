//! Counters: live while the pipeline runs, and its final report.

use std::{
    sync::{
        Arc, LazyLock,
        atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use jiff::Timestamp;
use tokio::time::Instant;

use crate::{Event, event::Level, source::Position};

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
    /// Events in the queue, not yet taken by the worker (briefly -1: the worker may take
    /// an event before the dispatcher counts it).
    pub(crate) queued: AtomicI64,
    /// Milliseconds since [`Stats::epoch`] at which a send began, plus one; 0 when none is
    /// in flight.
    pub(crate) sending_since: AtomicU64,
    /// Milliseconds since [`Stats::epoch`] of the worker's last sign of progress (a batch
    /// taken or settled), or of the retry it sleeps until while its queue waits.
    pub(crate) progress_at: AtomicU64,
    /// From the source handing an event over to its delivery.
    pub(crate) latency: Latency,
}

/// Upper bounds of the delivery latency buckets, in seconds: from a stdout write to an
/// alert held for its group interval or retried through an outage.
pub(crate) const LATENCY_BUCKETS: [f64; 16] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// A histogram of atomics, so that the workers never take a lock to observe. Only the
/// sink's worker writes it: on a cache line of its own, apart from the counters the
/// dispatcher bumps for every event.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Latency {
    /// Per bucket (not cumulative), the last one for `+Inf`.
    pub(crate) buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Sum in microseconds: an integer adds without a compare-and-swap loop.
    pub(crate) sum_micros: AtomicU64,
}

impl Latency {
    pub(crate) fn observe(&self, latency: Duration) {
        let secs = latency.as_secs_f64();
        let bucket = LATENCY_BUCKETS.iter().position(|&le| secs <= le).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        let micros = latency.as_secs().saturating_mul(1_000_000) + u64::from(latency.subsec_micros());
        self.sum_micros.fetch_add(micros, Relaxed);
    }
}

/// The reasons `eventer_kubernetes_events_total` counts by name; any other counts as
/// `other`, so that the metric's series stay bounded whatever the cluster emits. They are
/// the reasons of the kubelet, the controllers and node-problem-detector that users alert
/// on or chart, sorted (a binary search finds them).
pub const EVENT_REASONS: &[&str] = &[
    "AUFSUmountHung",
    "BackOff",
    "BackoffLimitExceeded",
    "ContainerGCFailed",
    "ContainerRuntimeUnhealthy",
    "ContainerdHung",
    "CorruptDockerImage",
    "Created",
    "DeadlineExceeded",
    "DockerHung",
    "ErrImageNeverPull",
    "ErrImagePull",
    "Evicted",
    "EvictionThresholdMet",
    "ExceededGracePeriod",
    "Failed",
    "FailedAttachVolume",
    "FailedBinding",
    "FailedCreate",
    "FailedCreatePodContainer",
    "FailedCreatePodSandBox",
    "FailedDelete",
    "FailedKillPod",
    "FailedMount",
    "FailedPostStartHook",
    "FailedPreStopHook",
    "FailedScheduling",
    "FailedSync",
    "FilesystemIsReadOnly",
    "FreeDiskSpaceFailed",
    "ImageGCFailed",
    "ImagePullBackOff",
    "InspectFailed",
    "KernelDeadlock",
    "KernelOops",
    "Killing",
    "KubeletUnhealthy",
    "NetworkNotReady",
    "NodeHasDiskPressure",
    "NodeHasInsufficientMemory",
    "NodeHasInsufficientPID",
    "NodeNotReady",
    "NodeNotSchedulable",
    "NodeReady",
    "OOMKilling",
    "Preempting",
    "ProbeWarning",
    "ProvisioningFailed",
    "Pulled",
    "Pulling",
    "ReadonlyFilesystem",
    "Rebooted",
    "ScalingReplicaSet",
    "Scheduled",
    "Started",
    "SuccessfulCreate",
    "SuccessfulDelete",
    "SyncLoadBalancerFailed",
    "SystemOOM",
    "TaskHung",
    "Unhealthy",
    "UnregisterNetDevice",
    "VolumeResizeFailed",
];

/// The event types `eventer_kubernetes_events_total` tells apart; any other is `other`.
const EVENT_TYPES: [&str; 3] = ["Normal", "Warning", "other"];

/// [`EVENT_REASONS`] ordered by [`key`], with their index.
static BY_KEY: LazyLock<Vec<(&str, usize)>> = LazyLock::new(|| {
    let mut by_key: Vec<(&str, usize)> = EVENT_REASONS.iter().copied().zip(0..).collect();
    by_key.sort_unstable_by_key(|(r, _)| key(r));
    by_key
});

/// Length, first and last byte, then the text: a search compares the text of the match
/// alone, where a search of the alphabetical list compared text at every step (5% of the
/// pipeline bench's CPU time).
fn key(reason: &str) -> (usize, u8, u8, &str) {
    let bytes = reason.as_bytes();
    (bytes.len(), bytes.first().copied().unwrap_or(0), bytes.last().copied().unwrap_or(0), reason)
}

/// The index of `reason` in [`EVENT_REASONS`], or its length for `other`.
pub(super) fn reason_index(reason: &str) -> usize {
    let wanted = key(reason);
    BY_KEY.binary_search_by(|(r, _)| key(r).cmp(&wanted)).map_or(EVENT_REASONS.len(), |found| BY_KEY[found].1)
}

/// Events read, by type and reason (see [`EVENT_REASONS`]): one counter per pair.
#[derive(Debug)]
pub(crate) struct EventCounts(Box<[AtomicU64]>);

impl Default for EventCounts {
    fn default() -> Self {
        EventCounts((0..EVENT_TYPES.len() * (EVENT_REASONS.len() + 1)).map(|_| AtomicU64::new(0)).collect())
    }
}

impl EventCounts {
    pub(crate) fn count(&self, event: &Event) {
        let kind = match event.level {
            Level::Normal => 0,
            Level::Warning => 1,
            Level::Other(_) => 2,
        };
        let reason = reason_index(&event.reason);
        self.0[kind * (EVENT_REASONS.len() + 1) + reason].fetch_add(1, Relaxed);
    }

    /// `(type, reason, count)` of every pair counted at least once.
    pub(crate) fn seen(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        self.0.iter().enumerate().filter_map(|(i, n)| {
            let n = n.load(Relaxed);
            let (kind, reason) = (i / (EVENT_REASONS.len() + 1), i % (EVENT_REASONS.len() + 1));
            (n > 0).then(|| (EVENT_TYPES[kind], EVENT_REASONS.get(reason).copied().unwrap_or("other"), n))
        })
    }
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
    /// Events read, by type and reason.
    pub(crate) events: EventCounts,
    /// The origin of the workers' millisecond clocks.
    pub(crate) epoch: Instant,
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
            events: EventCounts::default(),
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since the epoch, for the workers' progress marks.
    pub(crate) fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Why the pipeline is wedged, if it is: a sink with events waiting for it (queued,
    /// or a batch being sent) that showed no progress for `timeout`. A sink sleeping until
    /// a retry or a deferral it scheduled is waiting, not wedged.
    pub fn wedged(&self, timeout: Duration) -> Option<String> {
        let now = self.millis(Instant::now());
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let mut reasons = Vec::new();
        for (name, s) in &self.sinks {
            let sending_since = s.sending_since.load(Relaxed);
            let queued = s.queued.load(Relaxed).max(0);
            if sending_since == 0 && queued == 0 {
                continue;
            }
            let idle = now.saturating_sub(s.progress_at.load(Relaxed));
            if idle <= timeout_ms {
                continue;
            }
            let idle = humantime::format_duration(Duration::from_secs(idle / 1000));
            reasons.push(match sending_since {
                0 => format!("sink {name}: {queued} events queued and none taken for {idle}"),
                since => format!(
                    "sink {name}: a send in flight for {}, {queued} events queued behind it, no progress for {idle}",
                    humantime::format_duration(Duration::from_secs(now.saturating_sub(since - 1) / 1000))
                ),
            });
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
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
