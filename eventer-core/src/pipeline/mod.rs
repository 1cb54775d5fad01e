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

mod config;
mod dispatch;
mod stats;
mod tracker;
mod worker;

pub use config::{Backoff, Overflow, PipelineConfig, Route, RouteOptions};
pub use dispatch::Pipeline;
pub use stats::{EVENT_REASONS, Report, SinkCounts, SinkReport, Stats};
pub(crate) use stats::{LATENCY_BUCKETS, SinkStats};

#[cfg(all(test, feature = "test-util"))]
mod tests;
// The tests see the parts through `super::*`, as when the pipeline was one file.
#[cfg(all(test, feature = "test-util"))]
use {
    crate::{
        Error, Result,
        event::SharedEvent,
        sink::Outcome,
        source::{Position, SourceItem},
        telemetry::{Check, Telemetry},
    },
    dispatch::SHUTDOWN_EVERY,
    std::{
        sync::{Arc, Mutex, atomic::Ordering::Relaxed},
        time::Duration,
    },
    tokio::time::Instant,
    tracker::{KEEP_EVERY, THIN_AFTER, Tracker},
};
