//! [`AlertSink`]: grouping, repeats, the message budget, pauses and per-event outcomes,
//! around a [`ChatService`] that renders and posts.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    ops::Range,
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use eventer_core::{
    Batching, Error, Event, Outcome, Result, SharedEvent, Sink, Text,
    telemetry::{self, Counter, Gauge},
};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::{AlertConfig, render::Alert};

/// Events per batch: a burst this large still becomes a few digest messages.
const MAX_BATCH: usize = 1000;
/// Objects whose last notification is remembered for `repeat_interval`.
const REPEAT_MEMORY: usize = 4096;
/// Room left in a digest for what a size estimate may miss.
const SLACK_BYTES: usize = 64;

/// A chat service: how one alert and a digest look, how large a message may be, and
/// what the service's answer to a post means. The [`AlertSink`] around it decides what
/// to send and when.
#[async_trait]
pub trait ChatService: Send + Sync + 'static {
    /// Names the service in metrics and logs: `dingtalk` gives
    /// `eventer_dingtalk_messages_sent_total`.
    const NAME: &'static str;

    /// The `errcode` label value counting [`Answer::TooFast`] in `<NAME>_errors`.
    const TOO_FAST_CODE: &'static str = "too_fast";

    /// The service's size limits.
    fn limits(&self) -> Limits;

    /// The request body for one alert, in at most `max_bytes`: cut the event's message,
    /// never the alert.
    fn render_one(&self, alert: Alert<'_>, max_bytes: usize) -> String;

    /// One line of a digest for `alert` (a line should fit in far less than
    /// [`Limits::max_bytes`]).
    fn digest_line(&self, alert: Alert<'_>) -> String;

    /// The request body of a digest listing `digest.lines`.
    fn render_digest(&self, digest: Digest<'_>) -> String;

    /// How many bytes `line` adds to a digest's body. The default counts it as part of a
    /// JSON string, followed by an escaped newline.
    fn line_cost(&self, line: &str) -> usize {
        crate::json_len(line) + 2
    }

    /// Post one body and classify the answer. Do not retry or sleep here: the engine
    /// holds what cannot go now and the pipeline offers it again. Log here what the user
    /// must act on (a refused token, a throttled robot), in the service's words: the
    /// engine logs its decisions at debug level only.
    async fn post(&self, body: String) -> Answer;
}

/// A service's size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest request body, in bytes.
    pub max_bytes: usize,
    /// A lone alert the service finds too large is cut down to no less than this.
    pub min_single_bytes: usize,
}

impl Limits {
    /// Bodies of at most `max_bytes`; single alerts are cut down to 1000 bytes at least.
    pub fn new(max_bytes: usize) -> Self {
        Limits { max_bytes, min_single_bytes: 1000 }
    }

    /// Cut single alerts down to no less than `bytes` when the service finds them too large.
    #[must_use]
    pub fn min_single_bytes(mut self, bytes: usize) -> Self {
        self.min_single_bytes = bytes;
        self
    }
}

/// A digest to render: some of the alerts pending, one line each.
#[derive(Debug, Clone, Copy)]
pub struct Digest<'a> {
    /// The lines of this message, from [`ChatService::digest_line`].
    pub lines: &'a [String],
    /// The position of the first line among all pending alerts, from 1.
    pub first: usize,
    /// How many alerts are pending in all (across every part of the digest).
    pub total: usize,
}

impl Digest<'_> {
    /// What the digest lists: `12 Kubernetes events`, or `Kubernetes events 1-10 of 12`
    /// when it is one part of them.
    ///
    /// ```
    /// let lines = ["a".to_owned(), "b".to_owned()];
    /// let digest = |first, total| eventer_alert::Digest { lines: &lines, first, total };
    /// assert_eq!(digest(1, 2).span(), "2 Kubernetes events");
    /// assert_eq!(digest(3, 7).span(), "Kubernetes events 3-4 of 7");
    /// ```
    pub fn span(&self) -> String {
        let Digest { lines, first, total } = *self;
        if lines.len() == total {
            format!("{total} Kubernetes events")
        } else {
            format!("Kubernetes events {first}-{} of {total}", first + lines.len().saturating_sub(1))
        }
    }
}

/// What the service's answer to a post means.
#[derive(Debug)]
pub enum Answer {
    /// The service accepted the message.
    Sent,
    /// The service says "too fast": nothing is sent for `pause`; this message's alerts and
    /// the rest are retried after it.
    TooFast {
        /// How long the service blocks; no probing meanwhile.
        pause: Duration,
        /// What the service said.
        error: Error,
    },
    /// The message is too large: the engine sends it again smaller (a digest in halves,
    /// one alert with its message cut), and rejects the alert with this error when it
    /// cannot be made smaller.
    TooLarge(Error),
    /// The service refuses the sink's configuration (token, signature, allow-list): the
    /// alerts are rejected (or retried, if the error is temporary) and nothing more is sent.
    Config(Error),
    /// The service refuses this message's content for good; the other messages still go.
    Content(Error),
    /// Any other failure (unreachable, timeout, an HTTP error): nothing more is sent now;
    /// the alerts are retried when the error is temporary, rejected otherwise.
    Failed(Error),
}

/// A [`Sink`] for chat services, built on a [`ChatService`]:
///
/// - alerts are grouped for `group_wait` after the first arrives, and events about the
///   same object with the same reason collapse into one alert with the highest count;
/// - a batch goes out as one message per alert while that uses at most half of the
///   remaining budget, otherwise as digests listing every alert, each under
///   [`Limits::max_bytes`];
/// - at most `budget` messages per rolling `budget_window`, and at least `group_interval`
///   between sends: what cannot go now is deferred ([`Outcome::Defer`]) and comes back
///   merged with what arrived meanwhile;
/// - an object and reason already notified is quiet for `repeat_interval`; such repeats
///   count as delivered, and the next notification shows the new count;
/// - after [`Answer::TooFast`] nothing is sent for the pause the service asked for;
/// - outcomes are per event: what the service accepted is never sent again.
pub struct AlertSink<S> {
    service: S,
    limits: Limits,
    config: AlertConfig,
    budget: Budget,
    repeats: Repeats,
    paused_until: Option<Instant>,
    last_send: Option<Instant>,
    metrics: Metrics,
}

/// The engine's metrics (the pipeline counts events; these count messages).
#[derive(Debug, Clone, Default)]
struct Metrics {
    sent: Counter,
    in_use: Gauge,
    too_fast: Counter,
    refused: Counter,
    rejected: Counter,
}

impl Metrics {
    fn new<S: ChatService>(m: &telemetry::Metrics, budget: u32) -> Self {
        let name = S::NAME;
        m.gauge(&format!("{name}_budget_messages"), "Messages the sink allows itself per budget window")
            .set(budget.into());
        let errors = |class: &str| {
            m.with_label("errcode", class)
                .counter(&format!("{name}_errors"), &format!("Errors {name} answered, by errcode class"))
        };
        Metrics {
            sent: m.counter(&format!("{name}_messages_sent"), &format!("Messages {name} accepted")),
            in_use: m.gauge(
                &format!("{name}_budget_in_use"),
                "Messages counted against the rolling budget, as of the last send or hold",
            ),
            too_fast: errors(S::TOO_FAST_CODE),
            refused: errors("config"),
            rejected: errors("content"),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for AlertSink<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertSink")
            .field("service", &self.service)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: ChatService> AlertSink<S> {
    /// A sink sending through `service` with `config`'s timing.
    ///
    /// # Errors
    /// An invalid `config` ([`AlertConfig::validate`]).
    pub fn new(service: S, config: AlertConfig) -> Result<Self> {
        config.validate()?;
        Ok(AlertSink {
            limits: service.limits(),
            service,
            budget: Budget::new(config.budget as usize, config.budget_window),
            repeats: Repeats::new(config.repeat_interval),
            config,
            paused_until: None,
            last_send: None,
            metrics: Metrics::default(),
        })
    }

    /// Report message counts and the budget to `metrics` (labelled with the sink's name):
    /// `<NAME>_messages_sent`, `<NAME>_errors{errcode=…}`, `<NAME>_budget_messages` and
    /// `<NAME>_budget_in_use`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: &telemetry::Metrics) -> Self {
        self.metrics = Metrics::new::<S>(metrics, self.config.budget);
        self
    }

    /// The service.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// The timing.
    pub fn config(&self) -> &AlertConfig {
        &self.config
    }

    /// How long nothing can be sent, when that is so now: a pause after "too fast", or a
    /// spent budget.
    fn hold(&mut self, now: Instant, alerts: usize) -> Option<Duration> {
        if let Some(until) = self.paused_until.filter(|until| *until > now) {
            debug!(service = S::NAME, alerts, "Holding alerts: the service asked to slow down.");
            return Some(until - now);
        }
        let budget = self.config.budget as usize;
        let free = self.budget.free(now);
        self.metrics.in_use.set((budget - free.min(budget)) as i64);
        if free == 0 {
            debug!(service = S::NAME, alerts, budget, window = ?self.config.budget_window, "Holding alerts: the budget is spent.");
            return Some(self.budget.next_free(now));
        }
        None
    }

    /// How long to hold alerts for `group_interval`. The pipeline gathers for `group_wait`
    /// before it offers them again, so that much less, unless that would be no wait at all.
    fn interval_wait(&self, now: Instant) -> Option<Duration> {
        let ready = self.last_send? + self.config.group_interval;
        let wait = ready.checked_duration_since(now).filter(|w| !w.is_zero())?;
        Some(if wait > self.config.group_wait { wait - self.config.group_wait } else { wait })
    }

    /// Messages for `alerts` given `free` budget: one per alert, or digests.
    fn plan(&self, alerts: &[Alert<'_>], free: usize) -> (Vec<Planned>, Vec<String>) {
        let n = alerts.len();
        if n == 1 || 2 * n <= free {
            let singles = (0..n).map(|i| Planned { alerts: i..i + 1, form: Form::Single(self.limits.max_bytes) });
            return (singles.collect(), Vec::new());
        }
        let lines: Vec<String> = alerts.iter().map(|a| self.service.digest_line(*a)).collect();
        let parts = self.pack(&lines).into_iter().map(|r| Planned { alerts: r, form: Form::Digest });
        (parts.collect(), lines)
    }

    /// Split digest lines into messages under the size limit, in order; every line lands
    /// in exactly one part.
    fn pack(&self, lines: &[String]) -> Vec<Range<usize>> {
        let total = lines.len();
        let empty = Digest { lines: &[], first: total.max(1), total };
        let overhead = self.service.render_digest(empty).len() + SLACK_BYTES;
        let room = self.limits.max_bytes.saturating_sub(overhead);
        let mut parts = Vec::new();
        let (mut start, mut used) = (0, 0);
        for (i, line) in lines.iter().enumerate() {
            let cost = self.service.line_cost(line);
            if i > start && used + cost > room {
                parts.push(start..i);
                (start, used) = (i, 0);
            }
            used += cost;
        }
        if start < total {
            parts.push(start..total);
        }
        parts
    }

    fn render(&self, planned: &Planned, alerts: &[Alert<'_>], lines: &[String]) -> String {
        match planned.form {
            Form::Single(max_bytes) => self.service.render_one(alerts[planned.alerts.start], max_bytes),
            Form::Digest => {
                let r = planned.alerts.clone();
                self.service.render_digest(Digest { lines: &lines[r.clone()], first: r.start + 1, total: alerts.len() })
            }
        }
    }

    /// What to send instead of a message the service found too large: a digest splits its
    /// alerts in two; a single alert gets half the room for its message, down to a floor.
    fn split(&self, planned: &Planned) -> Option<Vec<Planned>> {
        let r = planned.alerts.clone();
        let floor = self.limits.min_single_bytes;
        match planned.form {
            Form::Digest if r.len() > 1 => {
                let mid = r.start + r.len() / 2;
                Some(vec![
                    Planned { alerts: r.start..mid, form: Form::Digest },
                    Planned { alerts: mid..r.end, form: Form::Digest },
                ])
            }
            // A lone digest line too large: the alert in its own layout, with room to spare.
            Form::Digest => Some(vec![Planned { alerts: r, form: Form::Single(floor * 8) }]),
            Form::Single(max) if max / 2 >= floor => Some(vec![Planned { alerts: r, form: Form::Single(max / 2) }]),
            Form::Single(_) => None,
        }
    }
}

/// Alerts of one batch: events grouped by object and reason, repeats left out.
struct Grouped<'a> {
    alerts: Vec<Alert<'a>>,
    keys: Vec<Key>,
    /// Indices into the batch of each alert's events.
    members: Vec<Vec<usize>>,
}

impl Grouped<'_> {
    fn mark(&self, outcomes: &mut [Outcome], alerts: Range<usize>, outcome: &Outcome) {
        for i in alerts.flat_map(|a| self.members[a].iter().copied()) {
            outcomes[i] = outcome.clone();
        }
    }
}

/// Group `batch` by object and reason; drop groups notified within `repeat_interval`.
fn group<'a>(batch: &'a [SharedEvent], repeats: &Repeats, now: Instant) -> Grouped<'a> {
    let mut index: HashMap<Key, usize> = HashMap::new();
    let mut grouped = Grouped { alerts: Vec::new(), keys: Vec::new(), members: Vec::new() };
    for (i, ev) in batch.iter().enumerate() {
        let key = Key::of(ev);
        let count = ev.occurrences();
        match index.get(&key) {
            Some(&g) => {
                grouped.members[g].push(i);
                let alert = &mut grouped.alerts[g];
                // Show the latest update: the highest count, later wins a tie.
                if count >= alert.count {
                    *alert = Alert { event: ev, count };
                }
            }
            None => {
                index.insert(key.clone(), grouped.alerts.len());
                grouped.alerts.push(Alert { event: ev, count });
                grouped.keys.push(key);
                grouped.members.push(vec![i]);
            }
        }
    }
    let mut kept = Grouped { alerts: Vec::new(), keys: Vec::new(), members: Vec::new() };
    for ((alert, key), members) in grouped.alerts.into_iter().zip(grouped.keys).zip(grouped.members) {
        if repeats.suppressed(&key, now) {
            debug!(kind = %key.kind, name = %key.name, reason = %key.reason, count = alert.count, "Repeat within repeat_interval; not notified.");
        } else {
            kept.alerts.push(alert);
            kept.keys.push(key);
            kept.members.push(members);
        }
    }
    kept
}

#[derive(Debug, Clone)]
struct Planned {
    /// Indices into the batch's alerts.
    alerts: Range<usize>,
    form: Form,
}

#[derive(Debug, Clone, Copy)]
enum Form {
    /// One alert, in at most this many bytes.
    Single(usize),
    /// A digest of several alerts.
    Digest,
}

#[async_trait]
impl<S: ChatService> Sink for AlertSink<S> {
    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        // Repeats left out of `grouped` count as delivered: they were notified already.
        let mut outcomes = vec![Outcome::Delivered; batch.len()];
        let grouped = group(batch, &self.repeats, Instant::now());
        if grouped.alerts.is_empty() {
            return outcomes;
        }
        let all = 0..grouped.alerts.len();
        // Holding is not failing: deferred alerts come back merged with what arrives
        // meanwhile, which is how a burst becomes one digest.
        let now = Instant::now();
        if let Some(wait) = self.interval_wait(now).or_else(|| self.hold(now, grouped.alerts.len())) {
            grouped.mark(&mut outcomes, all, &Outcome::Defer(wait));
            return outcomes;
        }
        let free = self.budget.free(Instant::now());
        let (plan, lines) = self.plan(&grouped.alerts, free);
        let mut queue = VecDeque::from(plan);
        while let Some(planned) = queue.front().cloned() {
            if let Some(wait) = self.hold(Instant::now(), grouped.alerts.len() - planned.alerts.start) {
                for rest in queue.drain(..) {
                    grouped.mark(&mut outcomes, rest.alerts, &Outcome::Defer(wait));
                }
                break;
            }
            queue.pop_front();
            let body = self.render(&planned, &grouped.alerts, &lines);
            let answer = self.service.post(body).await;
            let done = Instant::now();
            self.budget.record(done);
            self.last_send = Some(done);
            let (err, stop) = match answer {
                Answer::Sent => {
                    self.metrics.sent.inc();
                    for key in &grouped.keys[planned.alerts.clone()] {
                        self.repeats.record(key, done);
                    }
                    continue;
                }
                Answer::TooLarge(err) => match self.split(&planned) {
                    Some(smaller) => {
                        debug!(service = S::NAME, alerts = planned.alerts.len(), "Message too large; splitting it.");
                        for part in smaller.into_iter().rev() {
                            queue.push_front(part);
                        }
                        continue;
                    }
                    None => {
                        // The service's own refusals are logged by `post`; this one is the engine's.
                        warn!(service = S::NAME, error = %err, "A message is too large even cut down; its events are rejected.");
                        (err, false)
                    }
                },
                Answer::Content(err) => (err, false),
                Answer::TooFast { pause, error } => {
                    self.metrics.too_fast.inc();
                    self.paused_until = Some(done + pause);
                    debug!(service = S::NAME, pause = ?pause, error = %error, "Too fast; holding alerts until the pause ends.");
                    (error.with_retry_after(pause), true)
                }
                Answer::Config(err) => {
                    self.metrics.refused.inc();
                    debug!(service = S::NAME, error = %err, "Configuration refused; stopping this batch.");
                    (err, true)
                }
                Answer::Failed(err) => (err, true),
            };
            let outcome = Outcome::from_error(Arc::new(err));
            grouped.mark(&mut outcomes, planned.alerts.clone(), &outcome);
            if !stop {
                // Only this message's content is at fault: the others may still go.
                self.metrics.rejected.inc();
                continue;
            }
            // The service is down, throttling or misconfigured: same outcome for the rest.
            for rest in queue.drain(..) {
                grouped.mark(&mut outcomes, rest.alerts, &outcome);
            }
        }
        outcomes
    }

    fn batching(&self) -> Batching {
        Batching::new(MAX_BATCH, self.config.group_wait)
    }

    fn preview(&mut self, batch: &[SharedEvent]) -> Option<Vec<String>> {
        let now = Instant::now();
        let grouped = group(batch, &self.repeats, now);
        let free = self.budget.free(now).max(1);
        let (plan, lines) = self.plan(&grouped.alerts, free);
        Some(plan.iter().map(|p| self.render(p, &grouped.alerts, &lines)).collect())
    }
}

/// What makes two events the same alert: the object and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: Text,
    namespace: Text,
    name: Text,
    reason: Text,
}

impl Key {
    fn of(ev: &Event) -> Key {
        let obj = &ev.involved_object;
        Key {
            kind: obj.kind.clone(),
            namespace: obj.namespace.clone(),
            name: obj.name.clone(),
            reason: ev.reason.clone(),
        }
    }
}

/// Messages sent in the last `window`, against a limit.
struct Budget {
    limit: usize,
    window: Duration,
    sent: VecDeque<Instant>,
}

impl Budget {
    fn new(limit: usize, window: Duration) -> Self {
        Budget { limit, window, sent: VecDeque::with_capacity(limit) }
    }

    fn free(&mut self, now: Instant) -> usize {
        while self.sent.front().is_some_and(|t| now.saturating_duration_since(*t) >= self.window) {
            self.sent.pop_front();
        }
        self.limit.saturating_sub(self.sent.len())
    }

    /// How long until a message may go (call when [`Budget::free`] is 0).
    fn next_free(&self, now: Instant) -> Duration {
        // A little late rather than early: an early wake-up would find no budget again.
        let margin = Duration::from_millis(10);
        self.sent.front().map_or(Duration::ZERO, |t| (*t + self.window).saturating_duration_since(now) + margin)
    }

    /// Count a request; recorded when its answer came, later than the service saw it, so
    /// our window closes after the service's.
    fn record(&mut self, at: Instant) {
        self.sent.push_back(at);
    }
}

/// When each alert was last notified, for `repeat_interval`; bounded.
struct Repeats {
    interval: Duration,
    notified: HashMap<Key, Instant>,
}

impl Repeats {
    fn new(interval: Duration) -> Self {
        Repeats { interval, notified: HashMap::new() }
    }

    fn suppressed(&self, key: &Key, now: Instant) -> bool {
        self.notified.get(key).is_some_and(|t| now.saturating_duration_since(*t) < self.interval)
    }

    fn record(&mut self, key: &Key, now: Instant) {
        if self.interval.is_zero() {
            return;
        }
        self.notified.insert(key.clone(), now);
        if self.notified.len() > REPEAT_MEMORY {
            // Entries older than the interval suppress nothing: forgetting them is free.
            let interval = self.interval;
            self.notified.retain(|_, t| now.saturating_duration_since(*t) < interval);
        }
        if self.notified.len() > REPEAT_MEMORY {
            // Still full of recent alerts: forget the oldest quarter (they may repeat early).
            let excess = self.notified.len() - REPEAT_MEMORY * 3 / 4;
            let mut by_age: Vec<(Instant, Key)> = self.notified.iter().map(|(k, t)| (*t, k.clone())).collect();
            by_age.select_nth_unstable_by_key(excess, |(t, _)| *t);
            for (_, key) in &by_age[..excess] {
                self.notified.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests;
