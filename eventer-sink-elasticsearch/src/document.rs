//! kube-eventer's Elasticsearch document for one event, its daily index, its `_id`, and
//! the bulk lines that write it.

use std::collections::BTreeMap;

use eventer_core::Event;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::config::EsConfig;

/// Turns events into bulk lines.
#[derive(Debug, Clone)]
pub(crate) struct Encoder {
    index: String,
    use_namespace: bool,
    cluster_name: String,
    mapping_type: Option<&'static str>,
}

/// kube-eventer's `EsSinkPoint`, field for field (Go's names, no JSON tags).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Point<'a> {
    count: u32,
    metadata: Part<'a>,
    involved_object: Part<'a>,
    source: Part<'a>,
    first_occurrence_timestamp: GoTime,
    last_occurrence_timestamp: GoTime,
    message: &'a str,
    reason: &'a str,
    #[serde(rename = "Type")]
    kind: &'a str,
    /// Go marshals a map with its keys sorted, as a `BTreeMap` does.
    event_tags: BTreeMap<&'static str, &'a str>,
}

/// A part of the Kubernetes object: as the apiserver sent it when the raw object is
/// kept, else rebuilt from the model with Go's JSON names.
#[derive(Serialize)]
#[serde(untagged)]
enum Part<'a> {
    Raw(&'a RawValue),
    Built(BTreeMap<&'static str, &'a str>),
}

/// The parts of the raw Event that are copied whole (core/v1 names, then events.k8s.io's).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawParts<'a> {
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow)]
    involved_object: Option<&'a RawValue>,
    #[serde(borrow)]
    regarding: Option<&'a RawValue>,
    #[serde(borrow)]
    source: Option<&'a RawValue>,
    #[serde(borrow)]
    deprecated_source: Option<&'a RawValue>,
}

/// A time as Go's `time.Time` marshals it: RFC 3339 in UTC with the fraction only when
/// there is one; the zero time for none.
struct GoTime(Option<Timestamp>);

impl Serialize for GoTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(t) => s.collect_str(&t),
            None => s.serialize_str("0001-01-01T00:00:00Z"),
        }
    }
}

/// Keeps the non-empty fields, as Go's `omitempty` does.
fn built<'a>(fields: &[(&'static str, &'a str)]) -> Part<'a> {
    Part::Built(fields.iter().copied().filter(|(_, v)| !v.is_empty()).collect())
}

impl Encoder {
    pub(crate) fn new(config: &EsConfig) -> Self {
        Encoder {
            index: config.index.clone(),
            use_namespace: config.use_namespace,
            cluster_name: config.cluster_name.clone(),
            mapping_type: config.mapping_type(),
        }
    }

    /// `<index>[-<namespace>]-YYYY.MM.DD`, the day of the event's last occurrence in UTC,
    /// as kube-eventer names it.
    pub(crate) fn index_of(&self, event: &Event) -> String {
        let day = event.last_seen().map_or_else(|| "0001.01.01".to_owned(), |t| t.strftime("%Y.%m.%d").to_string());
        if self.use_namespace && !event.namespace.is_empty() {
            format!("{}-{}-{day}", self.index, event.namespace)
        } else {
            format!("{}-{day}", self.index)
        }
    }

    /// The alias every index gets, kube-eventer's `<index>-events`.
    pub(crate) fn alias(&self) -> String {
        format!("{}-events", self.index)
    }

    /// One occurrence of one Event: its uid (else namespace and name) and its count. A
    /// retried or replayed occurrence gets the same `_id` and overwrites its document.
    pub(crate) fn id_of(event: &Event) -> String {
        if event.uid.is_empty() {
            format!("{}.{}-{}", event.namespace, event.name, event.occurrences())
        } else {
            format!("{}-{}", event.uid, event.occurrences())
        }
    }

    /// Append the action and document lines of `event` to `out`.
    pub(crate) fn encode(&self, event: &Event, index: &str, out: &mut String) {
        let id = Self::id_of(event);
        let mut action = BTreeMap::from([("_index", index), ("_id", id.as_str())]);
        if let Some(kind) = self.mapping_type {
            action.insert("_type", kind);
        }
        // Serializing maps and strings to a String cannot fail.
        if let Ok(line) = serde_json::to_string(&BTreeMap::from([("index", action)])) {
            out.push_str(&line);
        }
        out.push('\n');
        let raw = event.raw.as_ref().map(|r| r.get());
        let parts = raw.and_then(|r| serde_json::from_str::<RawParts<'_>>(r).ok());
        let parts = parts.as_ref();
        let object = &event.involved_object;
        let mut tags = BTreeMap::from([
            ("eventID", event.uid.as_str()),
            ("cluster_name", self.cluster_name.as_str()),
            ("hostname", event.source.host.as_str()),
        ]);
        if object.kind == "Pod" {
            tags.insert("pod_id", object.uid.as_str());
            tags.insert("pod_name", object.name.as_str());
        }
        let point = Point {
            count: event.count,
            metadata: parts.and_then(|p| p.metadata).map_or_else(
                || {
                    built(&[
                        ("name", event.name.as_str()),
                        ("namespace", event.namespace.as_str()),
                        ("uid", event.uid.as_str()),
                        ("resourceVersion", event.resource_version.as_str()),
                    ])
                },
                Part::Raw,
            ),
            involved_object: parts.and_then(|p| p.involved_object.or(p.regarding)).map_or_else(
                || {
                    built(&[
                        ("kind", object.kind.as_str()),
                        ("namespace", object.namespace.as_str()),
                        ("name", object.name.as_str()),
                        ("uid", object.uid.as_str()),
                        ("apiVersion", object.api_version.as_str()),
                        ("fieldPath", object.field_path.as_str()),
                    ])
                },
                Part::Raw,
            ),
            source: parts.and_then(|p| p.source.or(p.deprecated_source)).map_or_else(
                || built(&[("component", event.source.component.as_str()), ("host", event.source.host.as_str())]),
                Part::Raw,
            ),
            first_occurrence_timestamp: GoTime(event.first_timestamp),
            last_occurrence_timestamp: GoTime(event.last_seen()),
            message: &event.message,
            reason: &event.reason,
            kind: event.level.as_str(),
            event_tags: tags,
        };
        if let Ok(line) = serde_json::to_string(&point) {
            out.push_str(&line);
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use eventer_core::decode::event_from_json;

    use super::*;

    fn encoder(uri: &str) -> Encoder {
        let uri: eventer_core::uri::ComponentUri = uri.parse().unwrap();
        Encoder::new(&EsConfig::from_options(uri.target(), &mut uri.options()).unwrap())
    }

    const POD_EVENT: &str = r#"{"kind":"Event","apiVersion":"v1","metadata":{"name":"web-0.17d5","namespace":"shop","uid":"e-uid","resourceVersion":"480311","creationTimestamp":"2026-11-30T08:14:30Z"},"involvedObject":{"kind":"Pod","namespace":"shop","name":"web-0","uid":"pod-uid","apiVersion":"v1","resourceVersion":"12","fieldPath":"spec.containers{web}"},"reason":"BackOff","message":"Back-off \"restarting\" failed container","source":{"component":"kubelet","host":"node-1"},"firstTimestamp":"2026-11-30T08:10:00Z","lastTimestamp":"2026-11-30T08:14:30Z","count":27,"type":"Warning"}"#;

    #[test]
    fn kube_eventers_document_and_daily_index() {
        let event = event_from_json(POD_EVENT).unwrap();
        let e = encoder("elasticsearch:http://h:9200?cluster_name=prod");
        let index = e.index_of(&event);
        assert_eq!(index, "heapster-2026.11.30");
        let mut out = String::new();
        e.encode(&event, &index, &mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], r#"{"index":{"_id":"e-uid-27","_index":"heapster-2026.11.30"}}"#);
        // Field for field what kube-eventer's Go client writes for this event.
        assert_eq!(
            lines[1],
            concat!(
                r#"{"Count":27,"Metadata":{"name":"web-0.17d5","namespace":"shop","uid":"e-uid","resourceVersion":"480311","creationTimestamp":"2026-11-30T08:14:30Z"},"#,
                r#""InvolvedObject":{"kind":"Pod","namespace":"shop","name":"web-0","uid":"pod-uid","apiVersion":"v1","resourceVersion":"12","fieldPath":"spec.containers{web}"},"#,
                r#""Source":{"component":"kubelet","host":"node-1"},"FirstOccurrenceTimestamp":"2026-11-30T08:10:00Z","#,
                r#""LastOccurrenceTimestamp":"2026-11-30T08:14:30Z","Message":"Back-off \"restarting\" failed container","#,
                r#""Reason":"BackOff","Type":"Warning","#,
                r#""EventTags":{"cluster_name":"prod","eventID":"e-uid","hostname":"node-1","pod_id":"pod-uid","pod_name":"web-0"}}"#
            )
        );
        assert_eq!(out.matches('\n').count(), 2, "each line ends with a newline");
        // Namespaced indices and the mapping type of older servers.
        let e = encoder("elasticsearch:http://h:9200?use_namespace=true&ver=6&index=k8s");
        assert_eq!(e.index_of(&event), "k8s-shop-2026.11.30");
        let mut out = String::new();
        e.encode(&event, "k8s-shop-2026.11.30", &mut out);
        assert!(out.starts_with(r#"{"index":{"_id":"e-uid-27","_index":"k8s-shop-2026.11.30","_type":"events"}}"#));
    }

    #[test]
    fn events_without_the_raw_object_are_rebuilt() {
        let event = Event::builder()
            .meta("ns", "n1", "")
            .kind("Node")
            .object("", "node-1")
            .reason("NodeNotReady")
            .warning()
            .count(2)
            .build();
        let e = encoder("elasticsearch:http://h:9200");
        let mut out = String::new();
        e.encode(&event, "i", &mut out);
        let doc: serde_json::Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
        assert_eq!(doc["InvolvedObject"], serde_json::json!({"kind": "Node", "name": "node-1"}));
        assert_eq!(doc["FirstOccurrenceTimestamp"], "0001-01-01T00:00:00Z", "Go's zero time");
        assert_eq!(Encoder::id_of(&event), "ns.n1-2", "without a uid: namespace, name and count");
        assert!(doc["EventTags"].get("pod_id").is_none());
    }
}
