//! Metrics and health, shared by every part of a running eventer.
//!
//! The program creates one [`Telemetry`] and hands it to the components through the
//! [`BuildContext`](crate::BuildContext) and to the [`Pipeline`](crate::Pipeline); it then
//! serves [`Metrics::encode`] and [`Health::report`] (the CLI does so on `/metrics`,
//! `/healthz` and `/readyz`).
//!
//! ```
//! use eventer_core::telemetry::{Check, Telemetry};
//! let telemetry = Telemetry::default();
//! // A sink counts something of its own; the registry labels it with the sink's name.
//! let sent = telemetry.metrics.with_label("sink", "alerts").counter("messages_sent", "Messages sent");
//! sent.inc();
//! // A component reports whether it is ready.
//! let source = telemetry.health.component("source");
//! assert!(!telemetry.health.is_ready());
//! source.set(Check::Ready);
//! assert!(telemetry.health.is_ready());
//! assert!(telemetry.metrics.encode().contains("eventer_messages_sent_total{sink=\"alerts\"} 1"));
//! ```
//!
//! Labels are bounded by design: only the names of configured components (sinks) are
//! label values, never anything taken from an event.

use std::{
    any::Any,
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet},
    metrics::{MetricType, counter::ConstCounter, family::Family, gauge::ConstGauge},
    registry::Registry,
};

use crate::pipeline::{LATENCY_BUCKETS, Stats};

mod process;

/// The metric types [`Metrics`] hands out (prometheus-client's), so components need no
/// direct dependency.
pub use prometheus_client::metrics::{counter::Counter, gauge::Gauge};

/// Metric name prefix.
const PREFIX: &str = "eventer";

/// The metrics and health of one eventer instance; clones share them.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Telemetry {
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Liveness and readiness.
    pub health: Health,
}

type Labels = Vec<(Cow<'static, str>, String)>;

/// A handle to the metrics registry, possibly carrying labels (`sink="alerts"`) that every
/// metric created through it gets. Metric names are prefixed with `eventer_`.
#[derive(Clone, Default)]
pub struct Metrics {
    shared: Arc<MetricsShared>,
    labels: Labels,
}

struct MetricsShared {
    registry: Mutex<Registry>,
    /// `process_*`, outside eventer's prefix.
    process: Registry,
    /// Families by name, so that two sinks share one family (one HELP/TYPE) and differ by label.
    families: Mutex<HashMap<String, Box<dyn Any + Send + Sync>>>,
}

impl Default for MetricsShared {
    fn default() -> Self {
        let mut process = Registry::default();
        process.register_collector(Box::new(process::ProcessCollector));
        MetricsShared { registry: Mutex::new(Registry::with_prefix(PREFIX)), process, families: Mutex::default() }
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").field("labels", &self.labels).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Metric state stays consistent even if a holder panicked (plain registrations).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// This handle with one more label on every metric it creates.
    #[must_use]
    pub fn with_label(&self, key: &'static str, value: impl Into<String>) -> Metrics {
        let mut labels = self.labels.clone();
        labels.push((Cow::Borrowed(key), value.into()));
        Metrics { shared: self.shared.clone(), labels }
    }

    /// A counter `eventer_<name>_total` with this handle's labels. Asking twice for the same
    /// name and labels returns the same counter.
    pub fn counter(&self, name: &str, help: &str) -> Counter {
        self.family::<Counter>(name, help).get_or_create(&self.labels).clone()
    }

    /// A gauge `eventer_<name>` with this handle's labels.
    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        self.family::<Gauge>(name, help).get_or_create(&self.labels).clone()
    }

    fn family<M>(&self, name: &str, help: &str) -> Family<Labels, M>
    where
        M: prometheus_client::metrics::TypedMetric
            + EncodeMetric
            + Default
            + Clone
            + Send
            + Sync
            + fmt::Debug
            + 'static,
    {
        let mut families = lock(&self.shared.families);
        if let Some(existing) = families.get(name).and_then(|f| f.downcast_ref::<Family<Labels, M>>()) {
            return existing.clone();
        }
        let family = Family::<Labels, M>::default();
        lock(&self.shared.registry).register(name, help, family.clone());
        families.insert(name.to_owned(), Box::new(family.clone()));
        family
    }

    /// Add a collector, called on each scrape (for values kept elsewhere).
    pub fn register_collector(&self, collector: impl Collector) {
        lock(&self.shared.registry).register_collector(Box::new(collector));
    }

    /// Everything in the Prometheus/OpenMetrics text format.
    pub fn encode(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        let registry = lock(&self.shared.registry);
        // Writing to a String cannot fail.
        let encoded = encode_registry(&mut out, &registry)
            .and_then(|()| encode_registry(&mut out, &self.shared.process))
            .and_then(|()| encode_eof(&mut out));
        if encoded.is_err() {
            out.clear();
        }
        out
    }
}

/// What a component says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Not ready yet (starting, syncing); the reason is shown on `/readyz`.
    NotReady(String),
    /// Working.
    Ready,
    /// Failing in a way that needs a person (a refused token, a missing logstore).
    Failing(String),
}

/// Readiness of the components of one eventer instance, and its liveness.
#[derive(Debug, Clone, Default)]
pub struct Health {
    components: Arc<Mutex<BTreeMap<String, Check>>>,
    probes: Arc<Mutex<Vec<Probe>>>,
}

/// A liveness check: why the process is wedged, or `None`.
struct Probe(Box<dyn Fn() -> Option<String> + Send + Sync>);

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Probe")
    }
}

/// One component's slot in [`Health`]; starts as not ready.
#[derive(Debug, Clone)]
pub struct HealthComponent {
    name: String,
    health: Health,
}

impl Health {
    /// Register a component (or take over its slot); it starts not ready.
    pub fn component(&self, name: impl Into<String>) -> HealthComponent {
        let name = name.into();
        lock(&self.components).insert(name.clone(), Check::NotReady("starting".into()));
        HealthComponent { name, health: self.clone() }
    }

    /// Whether every component is ready.
    pub fn is_ready(&self) -> bool {
        lock(&self.components).values().all(|c| *c == Check::Ready)
    }

    /// Every component and its state, by name.
    pub fn report(&self) -> Vec<(String, Check)> {
        lock(&self.components).iter().map(|(n, c)| (n.clone(), c.clone())).collect()
    }

    /// Add a liveness check, asked on each [`Health::liveness`]: it returns why the
    /// process is wedged (work waiting and nothing moving), or `None`. A wedged process is
    /// one a restart would cure; not being ready is not being wedged.
    pub fn watch(&self, probe: impl Fn() -> Option<String> + Send + Sync + 'static) {
        lock(&self.probes).push(Probe(Box::new(probe)));
    }

    /// Why the process is wedged, one reason per failing check; empty while it is alive.
    ///
    /// ```
    /// use eventer_core::telemetry::Health;
    /// let health = Health::default();
    /// assert!(health.liveness().is_empty());
    /// health.watch(|| Some("sink alerts: a send in flight for 6m".into()));
    /// assert_eq!(health.liveness(), ["sink alerts: a send in flight for 6m"]);
    /// ```
    pub fn liveness(&self) -> Vec<String> {
        lock(&self.probes).iter().filter_map(|p| (p.0)()).collect()
    }
}

impl HealthComponent {
    /// Record the component's state.
    pub fn set(&self, check: Check) {
        if let Some(slot) = lock(&self.health.components).get_mut(&self.name) {
            *slot = check;
        }
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Exposes a pipeline's [`Stats`] on each scrape, so the hot path only bumps atomics.
#[derive(Debug)]
pub(crate) struct StatsCollector(pub(crate) Arc<Stats>);

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let s = &self.0;
        counter(&mut encoder, "events_received", "Events read from the source", &s.received)?;
        gauge(
            &mut encoder,
            "last_event_timestamp_seconds",
            "Unix time of the last occurrence of the last event read",
            s.last_event_unix.load(Relaxed),
        )?;
        gauge(
            &mut encoder,
            "checkpoint_lag_events",
            "Events read but not yet finished by every sink",
            s.checkpoint_lag.load(Relaxed),
        )?;
        counter(&mut encoder, "checkpoints_saved", "Checkpoints written", &s.checkpoints_saved)?;
        counter(&mut encoder, "checkpoint_failures", "Checkpoint writes that failed", &s.checkpoint_failures)?;
        type Field = fn(&crate::pipeline::SinkStats) -> u64;
        let per_sink: [(&str, &str, Field); 7] = [
            ("sink_events_routed", "Events queued for the sink", |s| s.routed.load(Relaxed)),
            ("sink_events_filtered", "Events the sink's filter turned away", |s| s.filtered.load(Relaxed)),
            ("sink_events_delivered", "Events delivered", |s| s.delivered.load(Relaxed)),
            ("sink_events_retried", "Retry attempts scheduled", |s| s.retried.load(Relaxed)),
            ("sink_events_deferred", "Events held back by the sink (rate budget)", |s| s.deferred.load(Relaxed)),
            ("sink_events_failed", "Events rejected permanently", |s| s.failed.load(Relaxed)),
            ("sink_events_dropped", "Events dropped by overflow=drop", |s| s.dropped.load(Relaxed)),
        ];
        for (name, help, field) in per_sink {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (sink, stats) in &s.sinks {
                let labels = [("sink", sink.as_str())];
                ConstCounter::new(field(stats)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "kubernetes_events",
            "Events read from the source, by type and reason (reasons beyond a fixed set count as other)",
            None,
            MetricType::Counter,
        )?;
        for (kind, reason, n) in s.events.seen() {
            let labels = [("type", kind), ("reason", reason)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "sink_delivery_latency_seconds",
            "From the source handing an event over to its delivery by the sink",
            None,
            MetricType::Histogram,
        )?;
        for (sink, stats) in &s.sinks {
            let latency = &stats.latency;
            let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(latency.buckets.iter().map(|b| b.load(Relaxed)))
                .collect();
            // The count is the buckets' total, so that a scrape racing an observation
            // stays consistent with its +Inf bucket.
            let count = buckets.iter().map(|(_, n)| n).sum();
            let sum = Duration::from_micros(latency.sum_micros.load(Relaxed)).as_secs_f64();
            let labels = [("sink", sink.as_str())];
            family.encode_family(&labels)?.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        let mut family = encoder.encode_descriptor(
            "sink_queue_depth",
            "Events queued for the sink or awaiting a retry",
            None,
            MetricType::Gauge,
        )?;
        for (sink, stats) in &s.sinks {
            let labels = [("sink", sink.as_str())];
            ConstGauge::new(stats.in_flight.load(Relaxed)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: &AtomicU64) -> Result<(), fmt::Error> {
    let metric = ConstCounter::new(value.load(Relaxed));
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: i64) -> Result<(), fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}
