//! Event objects: what tests create, and the events.k8s.io/v1 view of them.

use serde_json::{Map, Value, json};

/// An Event for a test to create, as the legacy recorder (kubelet) writes it.
///
/// ```
/// use eventer_fake_apiserver::NewEvent;
/// let ev = NewEvent::new("default", "web-0").reason("BackOff").warning();
/// assert_eq!(ev.object, "web-0");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewEvent {
    /// Namespace of the Event (and of the involved object).
    pub namespace: String,
    /// Event name; `<object>.<hex>` when `None`.
    pub name: Option<String>,
    /// Involved object kind.
    pub kind: String,
    /// Involved object name.
    pub object: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// `Normal` or `Warning`.
    pub type_: String,
    /// Reporting component (`source.component`).
    pub component: String,
    /// Node (`source.host`).
    pub host: String,
    /// Top-level fields set over the recorder's, e.g. a value of a type eventer cannot read.
    pub fields: Map<String, Value>,
}

impl NewEvent {
    /// A Normal `Started` event about Pod `object`.
    pub fn new(namespace: &str, object: &str) -> Self {
        NewEvent {
            namespace: namespace.to_owned(),
            name: None,
            kind: "Pod".into(),
            object: object.to_owned(),
            reason: "Started".into(),
            message: format!("Started container {object}"),
            type_: "Normal".into(),
            component: "kubelet".into(),
            host: "node-1".into(),
            fields: Map::new(),
        }
    }

    /// The Event's name.
    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Involved object kind.
    #[must_use]
    pub fn kind(mut self, kind: &str) -> Self {
        self.kind = kind.to_owned();
        self
    }

    /// Reason.
    #[must_use]
    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = reason.to_owned();
        self
    }

    /// Message.
    #[must_use]
    pub fn message(mut self, message: &str) -> Self {
        self.message = message.to_owned();
        self
    }

    /// Type `Warning`.
    #[must_use]
    pub fn warning(mut self) -> Self {
        self.type_ = "Warning".into();
        self
    }

    /// Set a top-level field of the object over what the recorder writes.
    #[must_use]
    pub fn field(mut self, key: &str, value: Value) -> Self {
        self.fields.insert(key.to_owned(), value);
        self
    }

    /// The core/v1 object, without uid and resourceVersion.
    pub(crate) fn to_value(&self, name: String, now: &str) -> Value {
        let mut value = json!({
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": self.namespace, "creationTimestamp": now},
            "involvedObject": {
                "kind": self.kind,
                "namespace": self.namespace,
                "name": self.object,
                "uid": format!("{:016x}", fastrand::u64(..)),
                "apiVersion": "v1",
                "resourceVersion": "1",
                "fieldPath": format!("spec.containers{{{}}}", self.object),
            },
            "reason": self.reason,
            "message": self.message,
            "source": {"component": self.component, "host": self.host},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": self.type_,
            "eventTime": null,
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        });
        for (k, v) in &self.fields {
            value[k] = v.clone();
        }
        value
    }
}

/// The events.k8s.io/v1 view of a stored core/v1 Event, as the apiserver converts it.
pub(crate) fn to_events_v1(core: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), "Event".into());
    out.insert("apiVersion".into(), "events.k8s.io/v1".into());
    let get = |k: &str| core.get(k).cloned().unwrap_or(Value::Null);
    out.insert("metadata".into(), get("metadata"));
    for (from, to) in [
        ("eventTime", "eventTime"),
        ("series", "series"),
        ("reportingComponent", "reportingController"),
        ("reportingInstance", "reportingInstance"),
        ("action", "action"),
        ("reason", "reason"),
        ("involvedObject", "regarding"),
        ("related", "related"),
        ("message", "note"),
        ("type", "type"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
    ] {
        match core.get(from) {
            Some(Value::Null) | None if to != "eventTime" => {}
            Some(v) => {
                out.insert(to.into(), v.clone());
            }
            None => {
                out.insert(to.into(), Value::Null);
            }
        }
    }
    Value::Object(out)
}

/// events.k8s.io/v1 field labels in core/v1 terms, for field selectors.
pub(crate) fn events_v1_field(label: &str) -> &str {
    match label {
        "reportingController" => "reportingComponent",
        "deprecatedSource" => "source",
        other => match other.strip_prefix("regarding.") {
            Some(rest) => match rest {
                "kind" => "involvedObject.kind",
                "namespace" => "involvedObject.namespace",
                "name" => "involvedObject.name",
                "uid" => "involvedObject.uid",
                "apiVersion" => "involvedObject.apiVersion",
                "resourceVersion" => "involvedObject.resourceVersion",
                "fieldPath" => "involvedObject.fieldPath",
                _ => other,
            },
            None => other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_v1_renames_fields() {
        let core = NewEvent::new("ns", "web-0").warning().to_value("web-0.1".into(), "2024-01-01T00:00:00Z");
        let v1 = to_events_v1(&core);
        assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
        assert_eq!(v1["regarding"]["name"], "web-0");
        assert_eq!(v1["note"], "Started container web-0");
        assert_eq!(v1["deprecatedCount"], 1);
        assert_eq!(v1["reportingController"], "kubelet");
        assert_eq!(v1["deprecatedSource"]["host"], "node-1");
        assert_eq!(v1["eventTime"], Value::Null);
        assert!(v1.get("involvedObject").is_none() && v1.get("series").is_none());
        assert_eq!(events_v1_field("regarding.kind"), "involvedObject.kind");
        assert_eq!(events_v1_field("type"), "type");
    }
}
