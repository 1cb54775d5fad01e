//! [`DingTalkSink`]: grouping, repeats, the message budget, and per-event outcomes.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    ops::Range,
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use eventer_core::{
    Batching, BoxSink, BuildContext, Error, ErrorKind, Event, Level, Outcome, Registry, Result, SharedEvent, Sink,
    SinkFactory,
    telemetry::{Counter, Gauge},
    uri::Options,
};
use tokio::time::Instant;
use tracing::{debug, error, warn};

use crate::{
    client::Client,
    config::DingTalkConfig,
    error::DingTalkError,
    message::{Alert, Renderer},
};

/// The URI scheme: `--sink=dingtalk:<webhook>?access_token=…`.
pub const SCHEME: &str = "dingtalk";

/// Events per batch: a burst this large still becomes a few digest messages.
const MAX_BATCH: usize = 1000;
/// Objects whose last notification is remembered for `repeat_interval`.
const REPEAT_MEMORY: usize = 4096;
/// A single alert that DingTalk still finds too long is cut down to no less than this.
const MIN_SINGLE_BYTES: usize = 1000;

/// Sends Kubernetes events to a DingTalk group robot.
///
/// - Alerts are grouped for `group_wait` (1 s) after the first arrives, and the same object
///   and reason appears once, with its count.
/// - A batch goes out as one message per alert (kube-eventer's layout) while that uses at
///   most half of the remaining budget; otherwise as digest messages listing every alert,
///   each under `max_bytes`.
/// - At most `budget` (18) messages per rolling `budget_window` (1 min); what cannot go
///   now is retried when the budget frees, merged with what arrived meanwhile.
/// - An object and reason already notified is not notified again for `repeat_interval`
///   (1 h); such repeats count as delivered.
/// - Outcomes are per event: what DingTalk accepted is never sent again.
pub struct DingTalkSink {
    config: DingTalkConfig,
    renderer: Renderer,
    client: Client,
    budget: Budget,
    repeats: Repeats,
    paused_until: Option<Instant>,
    last_send: Option<Instant>,
    metrics: Metrics,
}

/// The sink's own metrics (the pipeline counts events; these count messages).
#[derive(Debug, Clone, Default)]
struct Metrics {
    sent: Counter,
    in_use: Gauge,
    throttled: Counter,
    refused: Counter,
    rejected: Counter,
}

impl Metrics {
    fn new(m: &eventer_core::telemetry::Metrics, budget: u32) -> Self {
        m.gauge("dingtalk_budget_messages", "Messages the sink allows itself per budget window").set(budget.into());
        let errors = |kind| {
            m.with_label("errcode", kind).counter("dingtalk_errors", "Errors DingTalk answered, by errcode class")
        };
        Metrics {
            sent: m.counter("dingtalk_messages_sent", "Messages DingTalk accepted"),
            in_use: m.gauge(
                "dingtalk_budget_in_use",
                "Messages counted against the rolling budget, as of the last send or hold",
            ),
            throttled: errors("130101"),
            refused: errors("config"),
            rejected: errors("content"),
        }
    }
}

impl fmt::Debug for DingTalkSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DingTalkSink").field("config", &self.config).finish_non_exhaustive()
    }
}

impl DingTalkSink {
    /// A sink for `config`. Reads `template_file`; performs no network I/O.
    ///
    /// # Errors
    /// An invalid configuration, time zone or template.
    pub fn new(config: DingTalkConfig) -> Result<Self> {
        config.validate()?;
        let renderer = Renderer::new(&config)?;
        let client = Client::new(&config.webhook, &config.access_token, config.sign.as_deref(), config.timeout)?;
        Ok(DingTalkSink {
            budget: Budget::new(config.budget as usize, config.budget_window),
            metrics: Metrics::default(),
            repeats: Repeats::new(config.repeat_interval),
            renderer,
            client,
            config,
            paused_until: None,
            last_send: None,
        })
    }

    /// Report message counts and the budget to `metrics` (labelled with the sink's name).
    #[must_use]
    pub fn with_metrics(mut self, metrics: &eventer_core::telemetry::Metrics) -> Self {
        self.metrics = Metrics::new(metrics, self.config.budget);
        self
    }

    /// The zone times are shown in (`timezone`, else `TZ`, else UTC).
    pub fn timezone(&self) -> &str {
        self.renderer.tz_name()
    }

    /// Why nothing can be sent now, as a retryable error carrying when to try again.
    fn hold(&mut self, now: Instant, alerts: usize) -> Option<Error> {
        if let Some(until) = self.paused_until.filter(|until| *until > now) {
            let message = format!("holding {alerts} alerts: the dingtalk robot is throttling after errcode 130101");
            return Some(Error::new(ErrorKind::RateLimited, message).with_retry_after(until - now));
        }
        let free = self.budget.free(now);
        self.metrics.in_use.set((self.config.budget as usize - free.min(self.config.budget as usize)) as i64);
        if free == 0 {
            let message = format!(
                "holding {alerts} alerts: the budget of {} messages per {:?} is spent",
                self.config.budget, self.config.budget_window
            );
            return Some(Error::new(ErrorKind::RateLimited, message).with_retry_after(self.budget.next_free(now)));
        }
        None
    }

    /// Messages for `alerts` given `free` budget: one per alert, or digests.
    fn plan(&self, alerts: &[Alert<'_>], free: usize) -> (Vec<Planned>, Vec<String>) {
        let n = alerts.len();
        if n == 1 || 2 * n <= free {
            let singles = (0..n).map(|i| Planned { alerts: i..i + 1, form: Form::Single(self.config.max_bytes) });
            return (singles.collect(), Vec::new());
        }
        let lines: Vec<String> = alerts.iter().map(|a| self.renderer.digest_line(*a)).collect();
        let parts = self.renderer.pack(&lines).into_iter().map(|r| Planned { alerts: r, form: Form::Digest });
        (parts.collect(), lines)
    }

    fn render(&self, planned: &Planned, alerts: &[Alert<'_>], lines: &[String]) -> String {
        match planned.form {
            Form::Single(max_bytes) => self.renderer.single(alerts[planned.alerts.start], max_bytes),
            Form::Digest => {
                let r = planned.alerts.clone();
                self.renderer.digest(lines, r.clone(), r.start + 1, alerts.len())
            }
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

/// A hold is not a failure: the pipeline offers the events again once the budget frees.
fn defer(hold: &Error) -> Outcome {
    tracing::debug!(reason = %hold, "Holding DingTalk alerts.");
    Outcome::Defer(hold.retry_after().unwrap_or_default())
}

#[async_trait]
impl Sink for DingTalkSink {
    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        // Repeats left out of `grouped` count as delivered: they were notified already.
        let mut outcomes = vec![Outcome::Delivered; batch.len()];
        let grouped = group(batch, &self.repeats, Instant::now());
        if grouped.alerts.is_empty() {
            return outcomes;
        }
        // group_interval is short: waiting here keeps the pipeline from logging a failed
        // delivery; what arrives meanwhile forms the next batch.
        if let Some(ready) = self.last_send.map(|t| t + self.config.group_interval) {
            tokio::time::sleep_until(ready).await;
        }
        let all = 0..grouped.alerts.len();
        if let Some(err) = self.hold(Instant::now(), grouped.alerts.len()) {
            grouped.mark(&mut outcomes, all, &defer(&err));
            return outcomes;
        }
        let free = self.budget.free(Instant::now());
        let (plan, lines) = self.plan(&grouped.alerts, free);
        let mut queue = VecDeque::from(plan);
        while let Some(planned) = queue.front().cloned() {
            if let Some(err) = self.hold(Instant::now(), grouped.alerts.len() - planned.alerts.start) {
                let outcome = defer(&err);
                for rest in queue.drain(..) {
                    grouped.mark(&mut outcomes, rest.alerts, &outcome);
                }
                break;
            }
            queue.pop_front();
            let body = self.render(&planned, &grouped.alerts, &lines);
            let result = self.client.post(body).await;
            let done = Instant::now();
            self.budget.record(done);
            self.last_send = Some(done);
            let err = match result {
                Ok(()) => {
                    self.metrics.sent.inc();
                    for key in &grouped.keys[planned.alerts.clone()] {
                        self.repeats.record(key, done);
                    }
                    continue;
                }
                Err(DingTalkError::TooLong { .. }) if split(&planned).is_some() => {
                    debug!(alerts = planned.alerts.len(), "DingTalk found a message too long; splitting it.");
                    for smaller in split(&planned).expect("checked").into_iter().rev() {
                        queue.push_front(smaller);
                    }
                    continue;
                }
                Err(e) => e,
            };
            let throttled = match &err {
                DingTalkError::Throttled { pause, .. } => Some(*pause),
                _ => None,
            };
            let content_refused = matches!(err, DingTalkError::Rejected { .. } | DingTalkError::TooLong { .. });
            let config_refused = matches!(err, DingTalkError::Refused { .. });
            let err = Arc::new(Error::from(err));
            let outcome = Outcome::from_error(err.clone());
            grouped.mark(&mut outcomes, planned.alerts.clone(), &outcome);
            if content_refused {
                self.metrics.rejected.inc();
                // Only this message's content is at fault: the others may still go.
                warn!(error = %err.chain(), "DingTalk refused a message; its events are rejected.");
                continue;
            }
            if let Some(pause) = throttled {
                self.metrics.throttled.inc();
                self.paused_until = Some(done + pause);
                error!(pause = ?pause, "DingTalk robot is throttling (errcode 130101); holding alerts until it lifts.");
            }
            if config_refused {
                self.metrics.refused.inc();
                error!(error = %err, "DingTalk robot refused the sink's configuration; fix the URI. Alerts are rejected.");
            }
            // The robot is down, throttling or misconfigured: stop here, same outcome for the rest.
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

/// What to send instead of a message DingTalk found too long: a digest splits its alerts
/// in two; a single alert gets half the room for its message, down to a floor.
fn split(planned: &Planned) -> Option<Vec<Planned>> {
    let r = planned.alerts.clone();
    match planned.form {
        Form::Digest if r.len() > 1 => {
            let mid = r.start + r.len() / 2;
            Some(vec![
                Planned { alerts: r.start..mid, form: Form::Digest },
                Planned { alerts: mid..r.end, form: Form::Digest },
            ])
        }
        Form::Digest => Some(vec![Planned { alerts: r, form: Form::Single(MIN_SINGLE_BYTES * 8) }]),
        Form::Single(max) if max / 2 >= MIN_SINGLE_BYTES => {
            Some(vec![Planned { alerts: r, form: Form::Single(max / 2) }])
        }
        Form::Single(_) => None,
    }
}

/// What makes two events the same alert: the object and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: String,
    namespace: String,
    name: String,
    reason: String,
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

    /// Count a request; recorded when its answer came, later than DingTalk saw it, so
    /// our window closes after DingTalk's.
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

/// Builds [`DingTalkSink`]s from kube-eventer URIs; the default level is Warning.
#[derive(Debug, Clone, Copy, Default)]
pub struct DingTalkFactory;

impl SinkFactory for DingTalkFactory {
    fn options(&self) -> &'static [&'static str] {
        DingTalkConfig::OPTIONS
    }

    fn default_level(&self) -> Option<Level> {
        Some(Level::Warning)
    }

    fn build(&self, target: &str, options: &mut Options, cx: &BuildContext) -> Result<BoxSink> {
        let config = DingTalkConfig::from_options(target, options)?;
        Ok(Box::new(DingTalkSink::new(config)?.with_metrics(&cx.metrics)))
    }
}

/// Register the `dingtalk` scheme.
///
/// ```
/// let mut registry = eventer_core::Registry::new();
/// eventer_sink_dingtalk::register(&mut registry);
/// assert_eq!(registry.sink_schemes(), ["dingtalk"]);
/// ```
pub fn register(registry: &mut Registry) {
    registry.register_sink(SCHEME, Arc::new(DingTalkFactory));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Key {
        Key { kind: "Pod".into(), namespace: "ns".into(), name: format!("p{i}"), reason: "BackOff".into() }
    }

    #[test]
    fn budget_is_a_rolling_window() {
        let t0 = Instant::now();
        let mut b = Budget::new(2, Duration::from_secs(60));
        assert_eq!(b.free(t0), 2);
        b.record(t0);
        b.record(t0 + Duration::from_secs(10));
        assert_eq!(b.free(t0 + Duration::from_secs(30)), 0);
        assert_eq!(b.next_free(t0 + Duration::from_secs(30)), Duration::from_millis(30_010));
        assert_eq!(b.free(t0 + Duration::from_secs(60)), 1);
        assert_eq!(b.free(t0 + Duration::from_secs(70)), 2);
    }

    #[test]
    fn repeats_expire_and_memory_is_bounded() {
        let t0 = Instant::now();
        let mut r = Repeats::new(Duration::from_secs(60));
        r.record(&key(0), t0);
        assert!(r.suppressed(&key(0), t0 + Duration::from_secs(59)));
        assert!(!r.suppressed(&key(0), t0 + Duration::from_secs(60)));
        assert!(!r.suppressed(&key(1), t0));
        for i in 1..=REPEAT_MEMORY + 10 {
            r.record(&key(i), t0 + Duration::from_millis(i as u64));
        }
        assert!(r.notified.len() <= REPEAT_MEMORY, "{}", r.notified.len());
        // The newest are kept, the oldest forgotten.
        assert!(r.suppressed(&key(REPEAT_MEMORY + 10), t0 + Duration::from_secs(1)));
        assert!(!r.suppressed(&key(1), t0 + Duration::from_secs(1)));
        // Expired entries go first, without touching recent ones.
        let later = t0 + Duration::from_secs(120);
        for i in 0..REPEAT_MEMORY {
            r.record(&key(100_000 + i), later);
        }
        let newest = later + Duration::from_millis(1);
        r.record(&key(0), newest);
        assert!(r.suppressed(&key(0), newest));
        assert!(r.notified.len() <= REPEAT_MEMORY && r.notified.len() >= REPEAT_MEMORY / 2);
        let mut off = Repeats::new(Duration::ZERO);
        off.record(&key(0), t0);
        assert!(!off.suppressed(&key(0), t0));
    }

    #[test]
    fn too_long_messages_split_until_a_floor() {
        let halves = split(&Planned { alerts: 4..9, form: Form::Digest }).unwrap();
        assert_eq!(halves.iter().map(|p| p.alerts.clone()).collect::<Vec<_>>(), [4..6, 6..9]);
        let one = split(&Planned { alerts: 3..4, form: Form::Digest }).unwrap();
        assert!(one.len() == 1 && matches!(one[0].form, Form::Single(_)) && one[0].alerts == (3..4));
        let half = split(&Planned { alerts: 0..1, form: Form::Single(20_000) }).unwrap();
        assert!(matches!(half[0].form, Form::Single(10_000)));
        assert!(split(&Planned { alerts: 0..1, form: Form::Single(1_500) }).is_none());
    }
}
