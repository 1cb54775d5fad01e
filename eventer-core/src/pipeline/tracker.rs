//! Which events each sink still holds, the safe position that follows from it, and the
//! task that saves that position.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, atomic::Ordering::Relaxed},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{config::Backoff, stats::Stats};
use crate::{
    checkpoint::{BoxCheckpointStore, CheckpointStore},
    source::Position,
};

/// Tracks which events each sink still holds, to find the safe checkpoint position.
pub(super) struct Tracker {
    inner: Mutex<TrackerInner>,
    space: Notify,
    /// Signalled when the safe position moves (one waiter: the checkpoint loop).
    moved: Notify,
    max: usize,
}

pub(super) struct TrackerInner {
    /// Sequence number of `entries[0]`.
    base: u64,
    /// Sinks still holding each in-flight event, in source order.
    pub(super) entries: VecDeque<Entry>,
    /// Latest position at or before which every event is finished.
    safe: Option<Position>,
    saved: Option<Position>,
}

pub(super) struct Entry {
    remaining: u32,
    pub(super) position: Option<Position>,
}

/// While more events than this are in flight (a sink is stuck or batching), an event's
/// position is kept only if its sequence number is a multiple of [`KEEP_EVERY`] or it is
/// the newest: a position can be large (one cursor per watched namespace) and a stuck
/// sink must not multiply it by `max_in_flight`. The checkpoint then trails the finished
/// events by fewer than `KEEP_EVERY` events (repeated after a crash, never lost); once
/// everything is finished it is exact again, since the newest keeps its position.
pub(super) const THIN_AFTER: usize = 1024;
pub(super) const KEEP_EVERY: u64 = 64;

impl Tracker {
    pub(super) fn new(max: usize, resume: Option<Position>) -> Self {
        Tracker {
            inner: Mutex::new(TrackerInner { base: 0, entries: VecDeque::new(), safe: resume.clone(), saved: resume }),
            space: Notify::new(),
            moved: Notify::new(),
            max: max.max(1),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, TrackerInner> {
        // A panic while holding the lock leaves consistent data (plain counters).
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Register an event held by `sinks` sinks; waits while `max` events are in flight.
    /// Returns its sequence number and the number of events in flight.
    pub(super) async fn register(&self, sinks: usize, position: Option<Position>) -> (u64, usize) {
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
    pub(super) fn complete(&self, seqs: &[u64]) {
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

    pub(super) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub(super) fn unsaved(&self) -> Option<Position> {
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

    pub(super) fn saved(&self) -> Option<Position> {
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

/// The longest wait before retrying a failed checkpoint write: once the store is back,
/// the position is saved within seconds, not after a sink-sized backoff of a minute.
const CHECKPOINT_RETRY_MAX: Duration = Duration::from_secs(10);

/// Save as soon as the safe position moves, then no sooner than the store's minimum
/// interval: a crash repeats only what was delivered since the last save (a process that
/// dies within seconds of starting has still saved its first batch), and the store sees
/// at most one write per interval however fast events flow.
pub(super) async fn checkpoint_loop(
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

/// Save the safe position if it moved; returns false when the write failed.
pub(super) async fn save_checkpoint(store: &dyn CheckpointStore, tracker: &Tracker, stats: &Stats) -> bool {
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
