//! The log written for each event, and the grouping of a batch into PutLogs requests.
//! The schema, the time rules and truncation are described in the crate docs
//! ("Log schema").

use std::{collections::BTreeMap, fmt::Write as _, ops::Range, sync::Mutex};

use eventer_core::{Event, SharedEvent};
use jiff::{SignedDuration, Timestamp};
use prost::Message as _;

use crate::proto::{
    Log, LogContent, LogGroup, LogTag, content_size, framed, group_trailer, log_len, put_content, put_log_end,
    put_log_start,
};

/// kube-eventer's key holding the event as JSON.
pub(crate) const EVENT_ID: &str = "eventId";

/// Keys the sink writes itself; labels may not use them.
pub(crate) const RESERVED_KEYS: &[&str] = &[
    EVENT_ID,
    "hostname",
    "level",
    "pod_id",
    "pod_name",
    "namespace",
    "kind",
    "name",
    "reason",
    "message",
    "count",
    "first_timestamp",
    "last_timestamp",
    "event_name",
    "event_uid",
    "source_component",
    "reporting_controller",
];

/// How old a log time SLS accepts (7 days), less a margin for time spent retrying.
const MAX_AGE: SignedDuration = SignedDuration::from_hours(7 * 24 - 1);
/// How far ahead SLS accepts a log time (15 minutes), less a margin for clock skew.
const MAX_AHEAD: SignedDuration = SignedDuration::from_mins(10);
/// Room for a log's own field tag and length prefix inside the group.
const LOG_FRAMING: usize = 1 + 5;

/// Buffers of sent groups kept for the next batch: a fresh multi-megabyte buffer per
/// request costs more in page faults than encoding its logs.
const SPARE_BUFFERS: usize = 2;

/// Turns events into logs and batches into log groups.
pub struct Schema {
    layout: Layout,
    spare: Vec<Vec<u8>>,
    /// [`Schema::weigh`]'s formatted values: it is called with `&self`, from the pipeline.
    weighing: Mutex<Scratch>,
}

/// What every log and group of a sink carries.
#[derive(Clone)]
struct Layout {
    topic: Option<String>,
    labels: Vec<(String, String)>,
    hostname: String,
    /// The group's own fields (topic, source, tags), encoded once: every group has the same.
    trailer: Vec<u8>,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema")
            .field("topic", &self.layout.topic)
            .field("labels", &self.layout.labels)
            .field("hostname", &self.layout.hostname)
            .finish_non_exhaustive()
    }
}

/// One PutLogs request's worth of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedGroup {
    /// The encoded [`LogGroup`] (uncompressed protobuf).
    pub raw: Vec<u8>,
    /// Which events of the batch (indices) it carries, in order.
    pub(crate) events: Vec<usize>,
    /// Where each log ends in `raw`; the group's own fields follow the last.
    ends: Vec<usize>,
}

impl PlannedGroup {
    /// The group of only the logs at `range` of [`PlannedGroup::events`], encoded: for a
    /// request that has to be split. Copies bytes; nothing is encoded again.
    pub(crate) fn subset(&self, range: Range<usize>) -> Vec<u8> {
        let start = range.start.checked_sub(1).map_or(0, |i| self.ends[i]);
        let end = self.ends[range.end - 1];
        let trailer = self.ends.last().map_or(0, |&i| i);
        [&self.raw[start..end], &self.raw[trailer..]].concat()
    }
}

/// Values formatted per event, kept across a batch so their buffers are reused.
#[derive(Default)]
struct Scratch {
    count: String,
    first: Stamp,
    last: Stamp,
}

/// A formatted timestamp and the time it shows: events of a burst share their
/// (second-precision) timestamps, so most are formatted once per batch, not once per event.
#[derive(Default)]
struct Stamp {
    at: Option<Timestamp>,
    text: String,
}

impl Stamp {
    fn set(&mut self, at: Option<Timestamp>) {
        if self.at != at {
            self.text.clear();
            if let Some(t) = at {
                write!(self.text, "{t}").expect("writing to a String cannot fail");
            }
            self.at = at;
        }
    }
}

impl Scratch {
    fn prepare(&mut self, event: &Event) {
        self.count.clear();
        push_decimal(&mut self.count, u64::from(event.occurrences()));
        self.first.set(event.first_timestamp);
        self.last.set(event.last_seen());
    }
}

/// Append `n` in decimal: done twice per event (weighed, then encoded), where `write!`'s
/// formatting machinery costs more than the digits.
fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

/// A group being filled.
struct Open {
    body: Vec<u8>,
    events: Vec<usize>,
    ends: Vec<usize>,
}

impl Open {
    fn new(body: Vec<u8>) -> Self {
        Open { body, events: Vec::new(), ends: Vec::new() }
    }

    fn finish(mut self, trailer: &[u8]) -> PlannedGroup {
        self.body.extend_from_slice(trailer);
        PlannedGroup { raw: self.body, events: self.events, ends: self.ends }
    }
}

impl Schema {
    /// A schema writing `topic` (none when empty) and `labels`; `hostname` is the log source
    /// (`__source__`) of every group. An event's node stays in its log's `hostname` field:
    /// a group per node would make a request per node, most holding one log.
    pub fn new(topic: &str, labels: &BTreeMap<String, String>, hostname: impl Into<String>) -> Self {
        let topic = (!topic.is_empty()).then(|| topic.to_owned());
        let labels: Vec<_> = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let hostname = hostname.into();
        let trailer = group_trailer(topic.as_deref(), &hostname, &labels);
        Schema { layout: Layout { topic, labels, hostname, trailer }, spare: Vec::new(), weighing: Mutex::default() }
    }

    /// The bytes `event`'s log takes in a group, at most: logs weighing no more than
    /// `max_bytes` less [`Schema::trailer_len`] in all make one group of [`Schema::plan`].
    /// Exact but for `__time__`, counted at its largest.
    pub fn weigh(&self, event: &Event) -> usize {
        // Only the sink's worker weighs: the lock is never contended.
        let mut scratch = self.weighing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        scratch.prepare(event);
        let json = event.raw_json();
        let mut contents = 0;
        self.layout.each_field(event, &json, &scratch, |k, v| contents += content_size(k, v));
        framed(log_len(u32::MAX, contents))
    }

    /// The bytes every group holds besides its logs (topic, source, tags).
    pub fn trailer_len(&self) -> usize {
        self.layout.trailer.len()
    }

    /// The log of one event, sent at `now`.
    pub(crate) fn log(&self, event: &Event, now: Timestamp) -> Log {
        self.layout.log(event, now)
    }

    /// An empty log group, with the topic, source and tags.
    pub(crate) fn group(&self) -> LogGroup {
        LogGroup {
            logs: Vec::new(),
            topic: self.layout.topic.clone(),
            source: Some(self.layout.hostname.clone()),
            log_tags: self.layout.labels.iter().map(|(k, v)| LogTag { key: k.clone(), value: v.clone() }).collect(),
        }
    }

    /// Encode `batch` as log groups of at most `max_logs` logs and `max_bytes` bytes; a log
    /// too large even alone is truncated to fit. Groups are encoded as they are taken, so
    /// one is in memory at a time; give each back with [`Plan::recycle`] once it is sent.
    pub fn plan<'a>(
        &'a mut self,
        batch: &'a [SharedEvent],
        now: Timestamp,
        max_logs: usize,
        max_bytes: usize,
    ) -> Plan<'a> {
        Plan {
            layout: &self.layout,
            spare: &mut self.spare,
            batch,
            next: 0,
            now,
            max_logs,
            max_bytes,
            scratch: Scratch::default(),
            open: None,
        }
    }
}

/// The groups of one batch, encoded one by one ([`Schema::plan`]).
pub struct Plan<'a> {
    layout: &'a Layout,
    spare: &'a mut Vec<Vec<u8>>,
    batch: &'a [SharedEvent],
    /// The next event to encode.
    next: usize,
    now: Timestamp,
    max_logs: usize,
    max_bytes: usize,
    scratch: Scratch,
    open: Option<Open>,
}

impl std::fmt::Debug for Plan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan").field("next", &self.next).field("events", &self.batch.len()).finish_non_exhaustive()
    }
}

impl Plan<'_> {
    /// The event `index` of the batch alone, as a group of at most `max_bytes` (its log
    /// truncated to fit, as far as truncation goes): for an event that the server finds
    /// too large even in a request of its own.
    pub(crate) fn alone(&self, index: usize, max_bytes: usize) -> PlannedGroup {
        let layout = self.layout;
        let event = &self.batch[index];
        let trailer = &layout.trailer;
        let mut log = layout.log(event, self.now);
        truncate(&mut log, max_bytes.saturating_sub(trailer.len() + LOG_FRAMING));
        let mut raw = Vec::new();
        prost::encoding::message::encode(1, &log, &mut raw);
        let ends = vec![raw.len()];
        raw.extend_from_slice(trailer);
        PlannedGroup { raw, events: vec![index], ends }
    }

    /// Give back the buffer of a group that was sent, for the next group. Returns whether
    /// the group was at least half full: when it was not, requests are no longer coming
    /// back to back, and the buffers kept for them are freed rather than left resident
    /// while idle.
    pub fn recycle(&mut self, group: PlannedGroup) -> bool {
        let busy = group.raw.len().saturating_mul(2) >= self.max_bytes || group.events.len() >= self.max_logs;
        if !busy {
            self.spare.clear();
        } else if self.spare.len() < SPARE_BUFFERS {
            let mut raw = group.raw;
            raw.clear();
            self.spare.push(raw);
        }
        busy
    }
}

impl Iterator for Plan<'_> {
    type Item = PlannedGroup;

    fn next(&mut self) -> Option<PlannedGroup> {
        let layout = self.layout;
        let (max_logs, max_bytes) = (self.max_logs, self.max_bytes);
        let trailer = layout.trailer.len();
        while let Some(event) = self.batch.get(self.next) {
            let i = self.next;
            self.next += 1;
            let (time, time_ns) = Layout::time(event, self.now);
            // Borrowed from the event, unless it was built in code and has no original JSON.
            let json = event.raw_json();
            let scratch = &mut self.scratch;
            scratch.prepare(event);
            let mut contents = 0;
            layout.each_field(event, &json, scratch, |k, v| contents += content_size(k, v));
            let len = log_len(time, contents);
            let oversized = (trailer + framed(len) > max_bytes).then(|| {
                let mut log = Log { time, contents: layout.contents(event, &json, scratch), time_ns: Some(time_ns) };
                truncate(&mut log, max_bytes.saturating_sub(trailer + LOG_FRAMING));
                log
            });
            let size = oversized.as_ref().map_or(framed(len), |log| framed(log.encoded_len()));
            let spare = &mut *self.spare;
            let g = self.open.get_or_insert_with(|| Open::new(spare.pop().unwrap_or_default()));
            let full =
                !g.events.is_empty() && (g.events.len() >= max_logs || g.body.len() + size + trailer > max_bytes);
            let done =
                full.then(|| std::mem::replace(g, Open::new(spare.pop().unwrap_or_default())).finish(&layout.trailer));
            if g.events.is_empty() {
                // Guess the group's size from its first log, sparing the copies of repeated growth.
                let remaining = (self.batch.len() - i).min(max_logs);
                make_room(&mut g.body, (size * remaining + size / 8 * remaining).min(max_bytes), max_bytes);
            }
            make_room(&mut g.body, size + trailer, max_bytes);
            match &oversized {
                Some(log) => prost::encoding::message::encode(1, log, &mut g.body),
                None => {
                    put_log_start(&mut g.body, time, len);
                    layout.each_field(event, &json, scratch, |k, v| put_content(&mut g.body, k, v));
                    put_log_end(&mut g.body, time_ns);
                }
            }
            g.events.push(i);
            g.ends.push(g.body.len());
            if done.is_some() {
                return done;
            }
        }
        // The batch is encoded: the group still open.
        self.open.take().map(|g| g.finish(&layout.trailer))
    }
}

impl Layout {
    /// `__time__` and its nanoseconds: the last occurrence, or `now` when SLS would refuse that.
    fn time(event: &Event, now: Timestamp) -> (u32, u32) {
        let time = event.last_seen().filter(|t| *t >= now - MAX_AGE && *t <= now + MAX_AHEAD).unwrap_or(now);
        (u32::try_from(time.as_second()).unwrap_or(0), time.subsec_nanosecond().unsigned_abs())
    }

    /// Call `f` with each field of an event's log, in order; `json` is its `eventId` and
    /// `scratch` was prepared for it. A visitor rather than a list: the encoder walks the
    /// fields twice (sizes, then bytes) and a list would be an allocation per event.
    fn each_field<'a>(
        &'a self,
        event: &'a Event,
        json: &'a str,
        scratch: &'a Scratch,
        mut f: impl FnMut(&'a str, &'a str),
    ) {
        let obj = &event.involved_object;
        f(EVENT_ID, json);
        f("hostname", &event.source.host);
        f("level", event.level.as_str());
        if obj.kind == "Pod" {
            f("pod_id", &obj.uid);
            f("pod_name", &obj.name);
        }
        for (k, v) in &self.labels {
            f(k, v);
        }
        let namespace = if obj.namespace.is_empty() { &event.namespace } else { &obj.namespace };
        let flat = [
            ("namespace", namespace.as_str()),
            ("kind", &obj.kind),
            ("name", &obj.name),
            ("reason", &event.reason),
            ("message", &event.message),
            ("count", &scratch.count),
            ("first_timestamp", &scratch.first.text),
            ("last_timestamp", &scratch.last.text),
            ("event_name", &event.name),
            ("event_uid", &event.uid),
            ("source_component", &event.source.component),
            ("reporting_controller", &event.reporting_controller),
        ];
        for (k, v) in flat {
            if !v.is_empty() {
                f(k, v);
            }
        }
    }

    fn contents(&self, event: &Event, json: &str, scratch: &Scratch) -> Vec<LogContent> {
        let mut contents = Vec::new();
        self.each_field(event, json, scratch, |k, v| contents.push(LogContent { key: k.into(), value: v.into() }));
        contents
    }

    fn log(&self, event: &Event, now: Timestamp) -> Log {
        let (time, time_ns) = Self::time(event, now);
        let mut scratch = Scratch::default();
        scratch.prepare(event);
        Log { time, contents: self.contents(event, &event.raw_json(), &scratch), time_ns: Some(time_ns) }
    }
}

/// Make room for `extra` more bytes, growing to at most `limit` when that is enough: the
/// usual doubling would make a buffer of up to twice the group limit.
fn make_room(body: &mut Vec<u8>, extra: usize, limit: usize) {
    if body.capacity() - body.len() < extra {
        let want = (body.capacity() * 2).min(limit).max(body.len() + extra);
        body.reserve_exact(want - body.len());
    }
}

/// Shorten the longest values until the log encodes to at most `budget` bytes (or no
/// value is longer than the marker any more).
fn truncate(log: &mut Log, budget: usize) {
    /// Longest `…[truncated N bytes]` marker.
    const MARKER_MAX: usize = 40;
    loop {
        let len = log.encoded_len();
        if len <= budget {
            return;
        }
        let Some(longest) = log.contents.iter_mut().max_by_key(|c| c.value.len()) else { return };
        if longest.value.len() <= MARKER_MAX {
            return;
        }
        let mut keep = longest.value.len().saturating_sub(len - budget + MARKER_MAX);
        while !longest.value.is_char_boundary(keep) {
            keep -= 1;
        }
        let removed = longest.value.len() - keep;
        longest.value.truncate(keep);
        longest.value.push_str(&format!("…[truncated {removed} bytes]"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use eventer_core::testing::sample_events;

    use super::*;

    fn now() -> Timestamp {
        "2024-01-01T00:10:00Z".parse().unwrap()
    }

    fn schema() -> Schema {
        Schema::new("k8s-event", &BTreeMap::from([("cluster".to_owned(), "prod".to_owned())]), "eventer-0")
    }

    fn fields(log: &Log) -> BTreeMap<&str, &str> {
        log.contents.iter().map(|c| (c.key.as_str(), c.value.as_str())).collect()
    }

    #[test]
    fn events_weigh_what_their_logs_take_in_a_group() {
        let mut schema = schema();
        let batch: Vec<SharedEvent> = sample_events().into_iter().map(Arc::new).collect();
        let weight: usize = batch.iter().map(|e| schema.weigh(e)).sum();
        let trailer = schema.trailer_len();
        let group = schema.plan(&batch, now(), 4096, 3 << 20).next().unwrap();
        // Times of this century are 5-byte varints, as weighed.
        assert_eq!(weight + trailer, group.raw.len());
        // A byte less and the last event needs a group of its own.
        let groups = schema.plan(&batch, now(), 4096, weight + trailer - 1).count();
        assert_eq!(groups, 2);
    }

    #[test]
    fn the_buffers_of_a_burst_are_freed_once_groups_are_small_again() {
        let mut schema = schema();
        let burst: Vec<SharedEvent> = (0..2000).map(|_| Arc::new(sample_events().remove(0))).collect();
        let mut plan = schema.plan(&burst, now(), 4096, 256 * 1024);
        let full = plan.next().unwrap();
        assert!(full.raw.len() > 192 * 1024, "{}", full.raw.len());
        assert!(plan.recycle(full));
        drop(plan);
        assert!(schema.spare.iter().any(|b| b.capacity() >= 192 * 1024), "a full group's buffer is kept");

        let mut plan = schema.plan(&burst[..1], now(), 4096, 256 * 1024);
        let small = plan.next().unwrap();
        assert!(!plan.recycle(small));
        drop(plan);
        assert!(schema.spare.is_empty(), "a small group frees the buffers");
    }

    #[test]
    fn pod_event_has_kube_eventer_keys_and_flat_fields() {
        let mut event = sample_events().remove(0);
        event.involved_object.uid = "pod-uid-1".into();
        event.reporting_controller = "kubelet".into();
        let log = schema().log(&event, now());
        let f = fields(&log);
        let keys: Vec<&str> = log.contents.iter().map(|c| c.key.as_str()).take(6).collect();
        assert_eq!(keys, ["eventId", "hostname", "level", "pod_id", "pod_name", "cluster"], "kube-eventer's order");
        let json: serde_json::Value = serde_json::from_str(f["eventId"]).unwrap();
        assert_eq!(json["reason"], "BackOff");
        assert_eq!(
            (f["hostname"], f["level"], f["pod_id"], f["pod_name"]),
            ("node-1", "Warning", "pod-uid-1", "web-0")
        );
        assert_eq!(f["cluster"], "prod");
        assert_eq!((f["namespace"], f["kind"], f["name"]), ("prod", "Pod", "web-0"));
        assert_eq!((f["reason"], f["count"]), ("BackOff", "12"));
        assert_eq!(f["message"], "Back-off restarting failed container app in pod web-0");
        assert_eq!((f["first_timestamp"], f["last_timestamp"]), ("2024-01-01T00:00:00Z", "2024-01-01T00:05:00Z"));
        assert_eq!((f["event_name"], f["event_uid"]), ("web-0.17b2c3d4e5f6a7b8", "uid-1"));
        assert_eq!((f["source_component"], f["reporting_controller"]), ("kubelet", "kubelet"));
        let last: Timestamp = "2024-01-01T00:05:00Z".parse().unwrap();
        assert_eq!((log.time, log.time_ns), (u32::try_from(last.as_second()).unwrap(), Some(0)));
    }

    #[test]
    fn node_events_have_the_node_as_hostname_and_no_pod_keys() {
        let events = sample_events();
        let s = schema();
        let log = s.log(&events[2], now());
        let f = fields(&log);
        assert_eq!((f["kind"], f["hostname"]), ("Node", "node-1"));
        assert!(!f.contains_key("pod_id") && !f.contains_key("pod_name") && !f.contains_key("reporting_controller"));
        assert_eq!(fields(&s.log(&events[1], now()))["hostname"], "", "kube-eventer's keys are always there");
    }

    #[test]
    fn time_is_last_occurrence_with_nanos_or_now_when_out_of_window() {
        let mut event = sample_events().remove(0);
        let t: Timestamp = "2024-01-01T00:05:00.123456789Z".parse().unwrap();
        event.last_timestamp = Some(t);
        let log = schema().log(&event, now());
        assert_eq!((i64::from(log.time), log.time_ns), (t.as_second(), Some(123_456_789)));
        let later: Timestamp = "2024-01-09T00:00:00Z".parse().unwrap();
        let log = schema().log(&event, later);
        assert_eq!(i64::from(log.time), later.as_second(), "older than 7 days: sent with the current time");
        assert_eq!(fields(&log)["last_timestamp"], "2024-01-01T00:05:00.123456789Z");
        let early: Timestamp = "2023-12-31T23:50:00Z".parse().unwrap();
        assert_eq!(i64::from(schema().log(&event, early).time), early.as_second(), "more than 10 min ahead");
    }

    /// The groups decoded, with the events each holds.
    fn decoded(plan: &[PlannedGroup]) -> Vec<(LogGroup, Vec<usize>)> {
        plan.iter().map(|g| (LogGroup::decode(g.raw.as_slice()).unwrap(), g.events.clone())).collect()
    }

    #[test]
    fn plan_encodes_as_prost_does() {
        let events: Vec<SharedEvent> = sample_events().into_iter().map(Arc::new).collect();
        let mut s = schema();
        let plan: Vec<_> = s.plan(&events, now(), 4096, 3 << 20).collect();
        assert_eq!(plan.len(), 1, "the Node event goes with the others");
        let mut expected = s.group();
        expected.logs = events.iter().map(|e| s.log(e, now())).collect();
        assert_eq!(plan[0].raw, expected.encode_to_vec(), "byte for byte");
        let groups = decoded(&plan);
        assert_eq!(groups[0].1, [0, 1, 2, 3]);
        assert_eq!(groups[0].0.source.as_deref(), Some("eventer-0"));
        assert_eq!(groups[0].0.topic.as_deref(), Some("k8s-event"));
        assert_eq!(groups[0].0.log_tags, [LogTag { key: "cluster".into(), value: "prod".into() }]);
    }

    #[test]
    fn node_events_of_many_nodes_share_one_group() {
        let events: Vec<SharedEvent> = (0..1000)
            .map(|i| {
                let mut event = sample_events().remove(2);
                event.involved_object.name = format!("node-{i}").into();
                event.source.host = format!("node-{i}").into();
                Arc::new(event)
            })
            .collect();
        let mut s = schema();
        let groups = decoded(&s.plan(&events, now(), 4096, 3 << 20).collect::<Vec<_>>());
        assert_eq!(groups.len(), 1, "one request, whatever the nodes");
        let (group, indices) = &groups[0];
        assert_eq!(group.source.as_deref(), Some("eventer-0"));
        assert_eq!(indices.len(), 1000);
        let hosts: Vec<_> = group.logs.iter().map(|l| fields(l)["hostname"].to_owned()).collect();
        assert_eq!(hosts, (0..1000).map(|i| format!("node-{i}")).collect::<Vec<_>>(), "each log keeps its node");
    }

    #[test]
    fn plan_splits_by_count_and_bytes() {
        let event = Arc::new(sample_events().remove(0));
        let mut s = schema();
        let many: Vec<SharedEvent> = (0..10).map(|_| event.clone()).collect();
        let plan: Vec<_> = s.plan(&many, now(), 4, 3 << 20).collect();
        assert_eq!(plan.iter().map(|g| g.events.len()).collect::<Vec<_>>(), [4, 4, 2]);
        let one = s.plan(&many[..1], now(), 4096, 3 << 20).next().unwrap().raw.len();
        let limit = one * 3;
        let plan: Vec<_> = s.plan(&many, now(), 4096, limit).collect();
        assert!(
            plan.len() >= 4 && plan.iter().all(|g| g.raw.len() <= limit),
            "{:?}",
            plan.iter().map(|g| g.raw.len()).collect::<Vec<_>>()
        );
        let groups = decoded(&plan);
        assert!(groups.iter().all(|(g, events)| g.logs.len() == events.len()));
        assert_eq!(plan.iter().flat_map(|g| g.events.clone()).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn group_buffers_never_grow_past_the_limit() {
        // A small event first, so the first guess of the group's size is far too low; then
        // the buffer must grow, but not by doubling past the limit.
        let events: Vec<SharedEvent> = [10, 19_000, 9_000]
            .into_iter()
            .map(|n| {
                let mut event = sample_events().remove(0);
                event.message = "m".repeat(n).into();
                Arc::new(event)
            })
            .collect();
        let limit = 64 * 1024;
        let mut s = schema();
        let groups: Vec<_> = s.plan(&events, now(), 4096, limit).collect();
        assert_eq!(groups.len(), 1);
        assert!(groups[0].raw.len() > limit * 3 / 4, "{}", groups[0].raw.len());
        assert!(groups[0].raw.capacity() <= limit, "{}", groups[0].raw.capacity());
    }

    #[test]
    fn an_oversized_event_is_truncated_not_dropped() {
        let mut event = sample_events().remove(0);
        event.message = "é".repeat(40_000).into();
        let events = [Arc::new(event)];
        let mut schema = schema();
        let plan: Vec<_> = schema.plan(&events, now(), 4096, 16 * 1024).collect();
        assert_eq!(plan.len(), 1);
        assert!(plan[0].raw.len() <= 16 * 1024, "{}", plan[0].raw.len());
        let group = LogGroup::decode(plan[0].raw.as_slice()).unwrap();
        let f = fields(&group.logs[0]);
        assert!(f["eventId"].contains("…[truncated "), "the longest value is cut first");
        assert!(f["message"].starts_with("éé") && f["message"].ends_with(" bytes]"));
        assert_eq!((f["reason"], f["level"]), ("BackOff", "Warning"), "short fields are kept whole");
    }

    #[test]
    fn a_subset_of_a_group_is_the_group_of_those_events_alone() {
        let events: Vec<SharedEvent> = (0..6)
            .map(|i| {
                let mut event = sample_events().remove(0);
                event.message = format!("message {i} {}", "x".repeat(i * 100)).into();
                Arc::new(event)
            })
            .collect();
        let mut s = schema();
        let group = s.plan(&events, now(), 4096, 3 << 20).next().unwrap();
        assert_eq!(group.events, (0..6).collect::<Vec<_>>());
        for range in [0..1, 2..5, 5..6, 0..6] {
            let alone = s.plan(&events[range.clone()], now(), 4096, 3 << 20).next().unwrap();
            assert_eq!(group.subset(range.clone()), alone.raw, "{range:?}");
        }
        let plan = s.plan(&events, now(), 4096, 3 << 20);
        assert_eq!(plan.alone(3, 3 << 20).raw, group.subset(3..4), "a log that fits is not cut");
    }

    #[test]
    fn an_event_alone_is_cut_to_the_size_asked_for() {
        let mut event = sample_events().remove(0);
        event.message = "m".repeat(50_000).into();
        let events = [Arc::new(event)];
        let mut s = schema();
        let plan = s.plan(&events, now(), 4096, 3 << 20);
        for max in [40_000, 10_000, 4_000] {
            let group = plan.alone(0, max);
            assert!(group.raw.len() <= max, "{} > {max}", group.raw.len());
            let decoded = LogGroup::decode(group.raw.as_slice()).unwrap();
            assert_eq!(decoded.logs.len(), 1);
            assert_eq!(decoded.source.as_deref(), Some("eventer-0"));
            let f = fields(&decoded.logs[0]);
            assert!(f["message"].ends_with(" bytes]"), "{max}");
            assert_eq!(f["reason"], "BackOff");
        }
    }
}
