//! What both fakes share: the request log, injected failures, waiting on conditions.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::Router;
use tokio::{sync::Notify, task::JoinHandle};

/// A failure to inject instead of handling a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Handle the request normally (to script a sequence: pass one, fail the next).
    Pass,
    /// Answer with this HTTP status and a plain-text body.
    Status(u16),
    /// Answer HTTP 200 with an HTML page (what a proxy may send).
    NotJson,
    /// Answer as the service does with this code and message: Lark's JSON `code` and
    /// `msg` (HTTP 200); for Slack the code is the HTTP status and the message its
    /// plain-text body.
    Code(i64, String),
}

/// One request and how the fake answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// When it arrived.
    pub received: Instant,
    /// The HTTP status of the reply.
    pub status: u16,
    /// Lark's `code`; `None` for Slack and for replies without Lark's JSON.
    pub code: Option<i64>,
    /// Lark's `msg`, or Slack's plain-text body.
    pub reply: String,
}

/// The request log and the failures to inject, behind one lock.
pub(crate) struct Log<M> {
    state: Mutex<State<M>>,
    pub(crate) changed: Notify,
}

pub(crate) struct State<M> {
    pub(crate) messages: Vec<M>,
    pub(crate) attempts: Vec<Attempt>,
    failures: VecDeque<Failure>,
    /// Until when every request fails, and how.
    outage: Option<(Instant, Failure)>,
    /// Arrival times of accepted-for-rating requests, for the rate limits.
    pub(crate) recent: VecDeque<Instant>,
}

impl<M> Default for Log<M> {
    fn default() -> Self {
        let state = State {
            messages: Vec::new(),
            attempts: Vec::new(),
            failures: VecDeque::new(),
            outage: None,
            recent: VecDeque::new(),
        };
        Log { state: Mutex::new(state), changed: Notify::new() }
    }
}

impl<M: Clone> Log<M> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State<M>> {
        // Plain records: a panicking test thread leaves them consistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The failure to inject for a request arriving at `now`, if any.
    pub(crate) fn injected(&self, now: Instant) -> Option<Failure> {
        let mut state = self.lock();
        let outage = state.outage.clone().filter(|(until, _)| now < *until).map(|(_, failure)| failure);
        state.failures.pop_front().or(outage)
    }

    pub(crate) fn record(&self, attempt: Attempt) {
        self.lock().attempts.push(attempt);
        self.changed.notify_waiters();
    }

    pub(crate) fn fail_next(&self, times: usize, failure: Failure) {
        self.lock().failures.extend(std::iter::repeat_n(failure, times));
    }

    pub(crate) fn fail_for(&self, duration: Duration, failure: Failure) {
        self.lock().outage = Some((Instant::now() + duration, failure));
    }

    pub(crate) fn peak_rate(&self, window: Duration) -> usize {
        peak_rate(self.lock().attempts.iter().map(|a| a.received).collect(), window)
    }
}

/// The most of `times` within any `window`: what a rate limit of that window saw at its
/// busiest.
pub fn peak_rate(mut times: Vec<Instant>, window: Duration) -> usize {
    // Concurrent requests are recorded when answered, not quite in arrival order.
    times.sort_unstable();
    let mut start = 0;
    let mut peak = 0;
    for (end, t) in times.iter().enumerate() {
        while start < end && t.duration_since(times[start]) >= window {
            start += 1;
        }
        peak = peak.max(end + 1 - start);
    }
    peak
}

/// Wait until `condition` holds of `it` (checked whenever `notify` wakes, after every
/// request), or `timeout` passes. Returns whether it holds.
pub async fn wait_until<T>(notify: &Notify, timeout: Duration, it: &T, condition: impl Fn(&T) -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let changed = notify.notified();
        if condition(it) {
            return true;
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return condition(it);
        }
    }
}

/// Serve `app` on a free loopback port until the returned task is aborted.
///
/// # Panics
/// When no loopback port can be bound (the test cannot run anyway).
pub async fn serve(app: Router, name: &'static str) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound address");
    let task = tokio::spawn(async move {
        // Serving ends only when the task is aborted on drop, or the listener fails.
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("fake {name} stopped serving: {e}");
        }
    });
    (addr, task)
}

/// How many of `recent` arrived within `window` before `now`.
pub(crate) fn in_window(recent: &VecDeque<Instant>, window: Duration, now: Instant) -> usize {
    recent.iter().filter(|t| now.duration_since(**t) < window).count()
}
