//! The [`Sink`] trait: where events go.

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;

use crate::{
    Error, Result,
    event::{Event, SharedEvent},
};

mod split;

pub use split::{Split, Verdict};

/// The result of delivering one event.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The destination has the event.
    Delivered,
    /// Delivery failed transiently; the pipeline retries with backoff, after
    /// [`Error::retry_after`] when the error carries one.
    Retry(Arc<Error>),
    /// The destination refused the event for good (bad credentials, invalid data);
    /// the pipeline counts and logs it, and does not retry.
    Rejected(Arc<Error>),
    /// Nothing failed: the sink holds the event on purpose (a rate budget is spent) and
    /// wants it again, merged with what arrives meanwhile, after this delay.
    Defer(Duration),
}

impl Outcome {
    /// `Retry` for a temporary error, `Rejected` otherwise.
    pub fn from_error(error: impl Into<Arc<Error>>) -> Outcome {
        let error = error.into();
        if error.is_temporary() { Outcome::Retry(error) } else { Outcome::Rejected(error) }
    }

    /// The same outcome for `n` events: `Delivered` on `Ok`, else [`Outcome::from_error`].
    pub fn all(n: usize, result: Result<()>) -> Vec<Outcome> {
        match result {
            Ok(()) => vec![Outcome::Delivered; n],
            Err(e) => vec![Outcome::from_error(e); n],
        }
    }
}

/// How the pipeline batches events for a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Batching {
    /// At most this many events per [`Sink::send`] call.
    pub max_events: usize,
    /// At most this many bytes per [`Sink::send`] call, as [`Sink::weigh`] counts them
    /// (`usize::MAX`: no limit). An event heavier than this alone is a batch of its own.
    pub max_bytes: usize,
    /// After the first event of a batch arrives, wait at most this long for more.
    pub window: Duration,
}

impl Batching {
    /// A batching policy, with no limit in bytes.
    pub fn new(max_events: usize, window: Duration) -> Self {
        Batching { max_events: max_events.max(1), max_bytes: usize::MAX, window }
    }

    /// Also cut batches at `max_bytes`, as [`Sink::weigh`] counts them: for a destination
    /// that limits requests in bytes, so that a full batch makes one full request rather
    /// than a full one and a small remainder.
    #[must_use]
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.max(1);
        self
    }
}

impl Default for Batching {
    /// 500 events, no waiting: whatever is queued goes out at once.
    fn default() -> Self {
        Batching::new(500, Duration::ZERO)
    }
}

/// A destination for events. Implement [`Sink::send`]; the pipeline owns queueing,
/// batching, retries, back-pressure and checkpointing.
///
/// ```
/// use async_trait::async_trait;
/// use eventer_core::{Outcome, SharedEvent, Sink};
///
/// struct Counter(usize);
///
/// #[async_trait]
/// impl Sink for Counter {
///     async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
///         self.0 += batch.len();
///         vec![Outcome::Delivered; batch.len()]
///     }
/// }
/// ```
#[async_trait]
pub trait Sink: Send + 'static {
    /// Prepare before the first batch (resolve credentials, check reachability).
    ///
    /// # Errors
    /// An error here stops the pipeline before any event is read.
    async fn start(&mut self) -> Result<()> {
        Ok(())
    }

    /// Deliver a batch. Return exactly one [`Outcome`] per event, in order: a batch may be
    /// partly delivered and partly retried, and nothing is duplicated or lost. A sink that
    /// sends several events per request should send its requests as a [`Split`] directs, so
    /// that one bad event refused by the destination does not take the others with it.
    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome>;

    /// The batching this sink wants.
    fn batching(&self) -> Batching {
        Batching::default()
    }

    /// The bytes `event` adds to what `send` transmits, counted against
    /// [`Batching::max_bytes`]. Called once per event, before its first batch, and only
    /// when [`Sink::batching`] sets a limit in bytes.
    fn weigh(&self, event: &Event) -> usize {
        let _ = event;
        0
    }

    /// What `send` would transmit for this batch, rendered for people (`eventer preview`).
    /// `None` when the sink has no preview.
    fn preview(&mut self, batch: &[SharedEvent]) -> Option<Vec<String>> {
        let _ = batch;
        None
    }

    /// Flush and release resources at shutdown.
    ///
    /// # Errors
    /// Reported in the logs; it does not change what was delivered.
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A type-erased sink.
pub type BoxSink = Box<dyn Sink>;

#[async_trait]
impl<S: Sink + ?Sized> Sink for Box<S> {
    async fn start(&mut self) -> Result<()> {
        (**self).start().await
    }
    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        (**self).send(batch).await
    }
    fn batching(&self) -> Batching {
        (**self).batching()
    }
    fn weigh(&self, event: &Event) -> usize {
        (**self).weigh(event)
    }
    fn preview(&mut self, batch: &[SharedEvent]) -> Option<Vec<String>> {
        (**self).preview(batch)
    }
    async fn close(&mut self) -> Result<()> {
        (**self).close().await
    }
}

impl fmt::Debug for dyn Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn Sink")
    }
}
