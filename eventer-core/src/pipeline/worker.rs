//! A sink's worker: batch, send, retry, acknowledge.

use std::{
    collections::VecDeque,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::{
    config::Backoff,
    stats::{SinkStats, Stats},
    tracker::Tracker,
};
use crate::{
    Error,
    event::SharedEvent,
    sink::{BoxSink, Outcome},
    telemetry::{Check, HealthComponent},
};

/// An event on its way to one sink, with its place in the source's order.
pub(super) struct Envelope {
    pub(super) seq: u64,
    pub(super) event: SharedEvent,
    /// When the source handed the event over: the start of its delivery latency.
    pub(super) seen: Instant,
}

struct Pending {
    envelope: Envelope,
    attempt: u32,
    not_before: Instant,
    /// Its weight, for batches limited in bytes ([`Sink::weigh`](crate::Sink::weigh)).
    size: usize,
}

/// A batch's weight while it is filled.
struct Fill {
    bytes: usize,
    max_bytes: usize,
    /// An event did not fit: the batch goes as it is.
    full: bool,
}

impl Fill {
    /// Whether an event of `size` fits; the first of a batch always does.
    fn fits(&self, batch: &[Pending], size: usize) -> bool {
        batch.is_empty() || self.bytes.saturating_add(size) <= self.max_bytes
    }

    fn add(&mut self, batch: &mut Vec<Pending>, pending: Pending) {
        self.bytes = self.bytes.saturating_add(pending.size);
        batch.push(pending);
    }

    /// Add an event taken from the queue, or, when it does not fit, keep it in `carry`
    /// for the next batch and close this one.
    fn admit(&mut self, batch: &mut Vec<Pending>, pending: Pending, carry: &mut Option<Pending>) {
        if self.fits(batch, pending.size) {
            self.add(batch, pending);
        } else {
            *carry = Some(pending);
            self.full = true;
        }
    }
}

/// One sink's task: drains its queue into batches, sends them, retries, acknowledges.
pub(super) struct Worker {
    pub(super) name: String,
    pub(super) sink: BoxSink,
    pub(super) rx: mpsc::Receiver<Envelope>,
    pub(super) tracker: Arc<Tracker>,
    pub(super) stats: Arc<SinkStats>,
    /// The pipeline's counters, for their clock.
    pub(super) pipeline: Arc<Stats>,
    pub(super) hard_stop: CancellationToken,
    pub(super) backoff: Backoff,
    pub(super) max_pending: usize,
    pub(super) health: Option<HealthComponent>,
}

impl Worker {
    pub(super) async fn run(mut self) {
        let batching = self.sink.batching();
        let weighed = batching.max_bytes != usize::MAX;
        // Events awaiting a retry, in source order.
        let mut retries: VecDeque<Pending> = VecDeque::new();
        let mut open = true;
        let mut batch: Vec<Pending> = Vec::with_capacity(batching.max_events);
        let mut events: Vec<SharedEvent> = Vec::with_capacity(batching.max_events);
        // An event taken from the queue that the batch had no bytes left for: it begins the next.
        let mut carry: Option<Pending> = None;
        // Events taken from the queue and not yet subtracted from `queued`: one update per
        // batch, not per event, keeps the counter's cache line from bouncing between the
        // dispatcher's thread and this one.
        let mut taken = 0;
        loop {
            if !open && retries.is_empty() && carry.is_none() {
                break;
            }
            let mut fill = Fill { bytes: 0, max_bytes: batching.max_bytes, full: false };
            // Wait for a new event or the earliest retry.
            let next_retry = retries.iter().map(|p| p.not_before).min();
            let retry_ready = next_retry.is_some_and(|t| t <= Instant::now());
            if let Some(first) = carry.take() {
                fill.admit(&mut batch, first, &mut carry);
            } else if !retry_ready {
                let room = open && retries.len() < self.max_pending;
                if !room && let Some(wake) = next_retry {
                    // The queue waits for retries this worker scheduled: not wedged before then.
                    self.stats.progress_at.fetch_max(self.pipeline.millis(wake), Relaxed);
                }
                tokio::select! {
                    biased;
                    () = self.hard_stop.cancelled() => break,
                    msg = self.rx.recv(), if room => match msg {
                        Some(envelope) => {
                            taken += 1;
                            fill.admit(&mut batch, self.first_attempt(envelope, Instant::now(), weighed), &mut carry);
                        }
                        None => { open = false; continue; }
                    },
                    () = sleep_until_opt(next_retry) => {}
                }
            }
            // Retries that are due go first (they are older), then new events.
            let now = Instant::now();
            let mut i = 0;
            while i < retries.len() && batch.len() < batching.max_events && !fill.full {
                if retries[i].not_before > now {
                    i += 1;
                } else if fill.fits(&batch, retries[i].size) {
                    fill.add(&mut batch, retries.remove(i).expect("index checked"));
                } else {
                    fill.full = true;
                }
            }
            batch.sort_by_key(|p| p.envelope.seq);
            // Fill the batch within the window.
            let window_end = now + batching.window;
            while open && !fill.full && batch.len() < batching.max_events && retries.len() < self.max_pending {
                match self.rx.try_recv() {
                    Ok(envelope) => {
                        taken += 1;
                        fill.admit(&mut batch, self.first_attempt(envelope, now, weighed), &mut carry);
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => open = false,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if batching.window.is_zero() || Instant::now() >= window_end {
                            break;
                        }
                        self.took(&mut taken, Instant::now());
                        tokio::select! {
                            biased;
                            () = self.hard_stop.cancelled() => break,
                            msg = self.rx.recv() => match msg {
                                Some(envelope) => {
                                    taken += 1;
                                    fill.admit(&mut batch, self.first_attempt(envelope, now, weighed), &mut carry);
                                }
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
            let started = Instant::now();
            self.took(&mut taken, started);
            self.stats.sending_since.store(self.pipeline.millis(started) + 1, Relaxed);
            let outcomes = tokio::select! {
                biased;
                () = self.hard_stop.cancelled() => break,
                outcomes = self.sink.send(&events) => outcomes,
            };
            let now = Instant::now();
            self.stats.sending_since.store(0, Relaxed);
            self.stats.progress_at.store(self.pipeline.millis(now), Relaxed);
            self.settle(&mut batch, outcomes, &mut retries, now);
        }
        let closed = tokio::time::timeout(Duration::from_secs(10), self.sink.close()).await;
        if let Ok(Err(e)) = closed {
            warn!(sink = %self.name, error = %e.chain(), "Sink failed to close cleanly.");
        }
        debug!(sink = %self.name, "Sink worker stopped.");
    }

    /// An event taken from the queue, weighed when batches are limited in bytes.
    fn first_attempt(&self, envelope: Envelope, now: Instant, weighed: bool) -> Pending {
        let size = if weighed { self.sink.weigh(&envelope.event) } else { 0 };
        Pending { envelope, attempt: 0, not_before: now, size }
    }

    /// Record events taken from the queue: they are no longer queued, and taking them is
    /// progress.
    fn took(&self, taken: &mut i64, now: Instant) {
        self.stats.progress_at.store(self.pipeline.millis(now), Relaxed);
        if *taken > 0 {
            self.stats.queued.fetch_sub(std::mem::take(taken), Relaxed);
        }
    }

    /// Apply the outcomes of one send, returned at `now`: acknowledge finished events,
    /// schedule retries.
    fn settle(
        &self,
        batch: &mut Vec<Pending>,
        mut outcomes: Vec<Outcome>,
        retries: &mut VecDeque<Pending>,
        now: Instant,
    ) {
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
        for (mut pending, outcome) in batch.drain(..).zip(outcomes) {
            match outcome {
                Outcome::Delivered => {
                    delivered += 1;
                    self.stats.latency.observe(now.saturating_duration_since(pending.envelope.seen));
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
