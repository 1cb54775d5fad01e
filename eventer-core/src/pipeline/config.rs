//! How a pipeline is set up: its settings, and a route per sink.

use std::{fmt, time::Duration};

use crate::{filter::BoxFilter, sink::BoxSink};

/// What to do when a sink's queue is full (`overflow=block|drop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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
    /// How long a sink may hold events (queued, or a batch being sent) without any
    /// progress before the pipeline reports itself wedged ([`Health::liveness`]), so that
    /// the process is restarted and resumes from its checkpoint. Sleeping until a retry
    /// or deferral the sink scheduled is not counted.
    ///
    /// [`Health::liveness`]: crate::telemetry::Health::liveness
    pub liveness_timeout: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            shutdown_timeout: Duration::from_secs(30),
            max_in_flight: 65_536,
            backoff: Backoff::default(),
            liveness_timeout: Duration::from_secs(300),
        }
    }
}

/// A sink with its name, filter and routing options.
pub struct Route {
    pub(super) name: String,
    pub(super) sink: BoxSink,
    pub(super) filter: Option<BoxFilter>,
    pub(super) options: RouteOptions,
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
