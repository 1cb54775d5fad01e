//! The event model: a Kubernetes Event, independent of any Kubernetes client crate.

use std::{cmp::Ordering, fmt, sync::Arc};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A string of the event model: short ones (most names, kinds, reasons) are kept inline,
/// without an allocation each.
pub type Text = compact_str::CompactString;

/// An event shared by every sink it is routed to.
pub type SharedEvent = Arc<Event>;

/// A Kubernetes Event (core/v1 or events.k8s.io/v1), normalised.
///
/// Field names follow core/v1; events.k8s.io/v1 objects map `regarding` to
/// [`Event::involved_object`], `note` to [`Event::message`], `reportingController` to
/// [`Event::reporting_controller`] and the `deprecated*` fields to their core/v1 twins.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct Event {
    /// `metadata.uid` of the Event object.
    pub uid: Text,
    /// `metadata.name` of the Event object (usually `<object>.<hex>`).
    pub name: Text,
    /// `metadata.namespace` of the Event object.
    pub namespace: Text,
    /// `metadata.resourceVersion`: changes on every update of the object.
    pub resource_version: Text,
    /// The object the event is about.
    pub involved_object: ObjectRef,
    /// Short machine-readable reason, e.g. `BackOff`.
    pub reason: Text,
    /// Human-readable description.
    pub message: Text,
    /// `type`: Normal, Warning or another string.
    #[serde(rename = "type")]
    pub level: Level,
    /// `count` (core/v1) or `deprecatedCount`; 0 when the object does not say.
    pub count: u32,
    /// First occurrence (`firstTimestamp`).
    pub first_timestamp: Option<Timestamp>,
    /// Most recent occurrence (`lastTimestamp`).
    pub last_timestamp: Option<Timestamp>,
    /// `eventTime` (microsecond precision, new-style events).
    pub event_time: Option<Timestamp>,
    /// Repeats recorded by the events.k8s.io recorder.
    pub series: Option<Series>,
    /// `source` (or `deprecatedSource`): component and host.
    pub source: EventSource,
    /// `reportingComponent` (core/v1) or `reportingController` (events.k8s.io/v1).
    pub reporting_controller: Text,
    /// `reportingInstance`.
    pub reporting_instance: Text,
    /// `action`.
    pub action: Text,
    /// The original object as JSON, for sinks that archive it whole.
    #[serde(skip)]
    pub raw: Option<RawJson>,
}

/// One JSON value as received, shared by every clone of the event.
///
/// ```
/// let raw = eventer_core::event::RawJson::new(r#" {"reason": "BackOff"} "#)?;
/// assert_eq!(raw.get(), r#"{"reason": "BackOff"}"#);
/// assert!(eventer_core::event::RawJson::new("{oops").is_err());
/// # Ok::<(), eventer_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RawJson(Arc<str>);

impl RawJson {
    /// Check that `json` is one JSON value and keep it, without surrounding whitespace.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Decode`] when it is not.
    pub fn new(json: &str) -> crate::Result<RawJson> {
        serde_json::from_str::<serde::de::IgnoredAny>(json)
            .map_err(|e| crate::Error::new(crate::ErrorKind::Decode, "invalid raw JSON").with_source(e))?;
        Ok(RawJson::validated(json))
    }

    /// Keep `json`, which the caller has just parsed successfully as one JSON value:
    /// decoding checks it once, not twice.
    pub(crate) fn validated(json: &str) -> RawJson {
        RawJson(Arc::from(json.trim_matches([' ', '\t', '\n', '\r'])))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reference to the object an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct ObjectRef {
    /// Kind, e.g. `Pod`, `Node`.
    pub kind: Text,
    /// Namespace of the object (empty for cluster-scoped objects such as Nodes).
    pub namespace: Text,
    /// Name of the object.
    pub name: Text,
    /// UID of the object.
    pub uid: Text,
    /// API version, e.g. `v1`, `apps/v1`.
    pub api_version: Text,
    /// Field path within the object, e.g. `spec.containers{app}`.
    pub field_path: Text,
}

/// `series` of an events.k8s.io Event (or a core/v1 Event written by the new recorder).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Series {
    /// Number of occurrences in the series.
    pub count: u32,
    /// Time of the last occurrence.
    pub last_observed_time: Option<Timestamp>,
}

/// `source` of an Event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventSource {
    /// Component that reported the event, e.g. `kubelet`.
    pub component: Text,
    /// Node the component ran on.
    pub host: Text,
}

/// The event `type`, ordered for level thresholds: other < Normal < Warning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Level {
    /// `Normal`.
    #[default]
    Normal,
    /// `Warning`.
    Warning,
    /// Any other type string (ranked below Normal, as kube-eventer does).
    Other(String),
}

impl Level {
    /// Parse a type string exactly as Kubernetes writes it.
    pub fn from_type(s: &str) -> Level {
        match s {
            "Normal" => Level::Normal,
            "Warning" => Level::Warning,
            other => Level::Other(other.to_owned()),
        }
    }

    /// Parse a user-given threshold, case-insensitively (`warning`, `Normal`).
    pub fn parse_threshold(s: &str) -> Option<Level> {
        if s.eq_ignore_ascii_case("normal") {
            Some(Level::Normal)
        } else if s.eq_ignore_ascii_case("warning") {
            Some(Level::Warning)
        } else {
            None
        }
    }

    /// The type string.
    pub fn as_str(&self) -> &str {
        match self {
            Level::Normal => "Normal",
            Level::Warning => "Warning",
            Level::Other(s) => s,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Level::Other(_) => 0,
            Level::Normal => 1,
            Level::Warning => 2,
        }
    }
}

impl PartialOrd for Level {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.rank().cmp(&other.rank()))
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Level {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Level::from_type(&s))
    }
}

impl Event {
    /// The time of the most recent occurrence: `series.lastObservedTime`, else
    /// `lastTimestamp`, else `eventTime`, else `firstTimestamp`.
    pub fn last_seen(&self) -> Option<Timestamp> {
        self.series
            .as_ref()
            .and_then(|s| s.last_observed_time)
            .or(self.last_timestamp)
            .or(self.event_time)
            .or(self.first_timestamp)
    }

    /// How many times the event has occurred so far (at least 1).
    pub fn occurrences(&self) -> u32 {
        match &self.series {
            Some(s) if s.count > 0 => s.count.max(self.count),
            _ => self.count.max(1),
        }
    }

    /// The original JSON, or this model serialised when the event was built in code.
    pub fn raw_json(&self) -> std::borrow::Cow<'_, str> {
        match &self.raw {
            Some(raw) => std::borrow::Cow::Borrowed(raw.get()),
            None => std::borrow::Cow::Owned(serde_json::to_string(self).unwrap_or_default()),
        }
    }

    /// A builder for events made in code (tests, examples, synthetic sources).
    pub fn builder() -> EventBuilder {
        EventBuilder::default()
    }
}

/// Builds an [`Event`] in code.
///
/// ```
/// use eventer_core::{Event, Level};
/// let ev = Event::builder().kind("Pod").object("default", "web-0").reason("BackOff").warning().count(3).build();
/// assert_eq!(ev.level, Level::Warning);
/// assert_eq!(ev.involved_object.name, "web-0");
/// assert_eq!(ev.occurrences(), 3);
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct EventBuilder {
    event: Event,
}

impl EventBuilder {
    /// Event object name, namespace and uid.
    pub fn meta(mut self, namespace: &str, name: &str, uid: &str) -> Self {
        self.event.namespace = namespace.into();
        self.event.name = name.into();
        self.event.uid = uid.into();
        self
    }
    /// `metadata.resourceVersion`.
    pub fn resource_version(mut self, rv: &str) -> Self {
        self.event.resource_version = rv.into();
        self
    }
    /// Involved object kind.
    pub fn kind(mut self, kind: &str) -> Self {
        self.event.involved_object.kind = kind.into();
        self
    }
    /// Involved object namespace and name; also the Event's namespace when unset.
    pub fn object(mut self, namespace: &str, name: &str) -> Self {
        self.event.involved_object.namespace = namespace.into();
        self.event.involved_object.name = name.into();
        if self.event.namespace.is_empty() {
            self.event.namespace = if namespace.is_empty() { "default".into() } else { namespace.into() };
        }
        self
    }
    /// Reason.
    pub fn reason(mut self, reason: &str) -> Self {
        self.event.reason = reason.into();
        self
    }
    /// Message.
    pub fn message(mut self, message: &str) -> Self {
        self.event.message = message.into();
        self
    }
    /// Type Warning.
    pub fn warning(mut self) -> Self {
        self.event.level = Level::Warning;
        self
    }
    /// Any type.
    pub fn level(mut self, level: Level) -> Self {
        self.event.level = level;
        self
    }
    /// Count.
    pub fn count(mut self, count: u32) -> Self {
        self.event.count = count;
        self
    }
    /// First and last timestamps.
    pub fn at(mut self, first: Timestamp, last: Timestamp) -> Self {
        self.event.first_timestamp = Some(first);
        self.event.last_timestamp = Some(last);
        self
    }
    /// Source component and host.
    pub fn source(mut self, component: &str, host: &str) -> Self {
        self.event.source = EventSource { component: component.into(), host: host.into() };
        self
    }
    /// The event.
    pub fn build(self) -> Event {
        self.event
    }
}
