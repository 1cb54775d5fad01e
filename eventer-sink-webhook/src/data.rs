//! An event as kube-eventer's templates see it: a core/v1 `*v1.Event` under Go's field
//! names, with `"` removed from `.Message` and `.LastTimestamp` falling back to
//! `eventTime`, then to now, as kube-eventer does before rendering.

use std::{collections::BTreeMap, sync::Arc};

use eventer_core::Event;
use jiff::{Timestamp, tz::TimeZone};
use serde_json::Value as Json;

use crate::gotmpl::{Field, Struct, Value};

/// A `metav1.Time` as kube-eventer's client decodes it: in the local zone (`TZ`), the
/// zero time in UTC.
fn time(t: Option<Timestamp>, zone: &TimeZone) -> Value {
    Value::Time(t.map(|t| t.to_zoned(zone.clone())), "v1.Time")
}

fn micro_time(t: Option<Timestamp>, zone: &TimeZone) -> Value {
    Value::Time(t.map(|t| t.to_zoned(zone.clone())), "v1.MicroTime")
}

fn json_str(v: &Json, key: &str) -> String {
    v.get(key).and_then(Json::as_str).unwrap_or_default().to_owned()
}

fn json_time(v: &Json, key: &str) -> Option<Timestamp> {
    v.get(key).and_then(Json::as_str).and_then(|s| s.parse().ok())
}

fn string_map(v: Option<&Json>) -> Value {
    let map: BTreeMap<String, Value> = v
        .and_then(Json::as_object)
        .map(|o| o.iter().map(|(k, v)| (k.clone(), Value::str(v.as_str().unwrap_or_default()))).collect())
        .unwrap_or_default();
    Value::Map(map)
}

fn object_reference(r: &Json) -> Vec<Field> {
    vec![
        Field::new("Kind", Value::str(json_str(r, "kind"))),
        Field::new("Namespace", Value::str(json_str(r, "namespace"))),
        Field::new("Name", Value::str(json_str(r, "name"))),
        Field::new("UID", Value::str(json_str(r, "uid"))),
        Field::new("APIVersion", Value::str(json_str(r, "apiVersion"))),
        Field::new("ResourceVersion", Value::str(json_str(r, "resourceVersion"))),
        Field::new("FieldPath", Value::str(json_str(r, "fieldPath"))),
    ]
}

/// The template data for `event`, its times in `zone`; `now` stands in for a
/// `.LastTimestamp` the event lacks.
pub(crate) fn event_value(event: &Event, now: Timestamp, zone: &TimeZone) -> Value {
    // Fields the model does not keep (labels, annotations, creationTimestamp...) come from
    // the object as received, when there is one.
    let raw: Json = event.raw.as_ref().and_then(|r| serde_json::from_str(r.get()).ok()).unwrap_or(Json::Null);
    let meta = raw.get("metadata").unwrap_or(&Json::Null);
    let involved = raw.get("involvedObject").or_else(|| raw.get("regarding")).unwrap_or(&Json::Null);
    let o = &event.involved_object;

    let object_meta = Value::structure(
        "v1.ObjectMeta",
        vec![
            Field::new("Name", Value::str(event.name.as_str())),
            Field::new("GenerateName", Value::str(json_str(meta, "generateName"))),
            Field::new("Namespace", Value::str(event.namespace.as_str())),
            Field::new("SelfLink", Value::str(json_str(meta, "selfLink"))),
            Field::new("UID", Value::str(event.uid.as_str())),
            Field::new("ResourceVersion", Value::str(event.resource_version.as_str())),
            Field::new("Generation", Value::Int(meta.get("generation").and_then(Json::as_i64).unwrap_or(0), "int64")),
            Field::new("CreationTimestamp", time(json_time(meta, "creationTimestamp"), zone)),
            Field::new(
                "DeletionTimestamp",
                match json_time(meta, "deletionTimestamp") {
                    Some(t) => time(Some(t), zone),
                    None => Value::NilPtr("*v1.Time"),
                },
            ),
            Field::new(
                "DeletionGracePeriodSeconds",
                meta.get("deletionGracePeriodSeconds")
                    .and_then(Json::as_i64)
                    .map_or(Value::NilPtr("*int64"), |n| Value::Int(n, "int64")),
            ),
            Field::new("Labels", string_map(meta.get("labels"))),
            Field::new("Annotations", string_map(meta.get("annotations"))),
            Field::new("OwnerReferences", Value::List(Vec::new())),
            Field::new(
                "Finalizers",
                Value::List(
                    meta.get("finalizers")
                        .and_then(Json::as_array)
                        .map(|a| a.iter().map(|f| Value::str(f.as_str().unwrap_or_default())).collect())
                        .unwrap_or_default(),
                ),
            ),
            Field::new("ManagedFields", Value::List(Vec::new())),
        ],
    );

    let series = match &event.series {
        Some(s) => Value::Struct(Arc::new(Struct {
            type_name: "v1.EventSeries",
            pointer: true,
            fields: vec![
                Field::new("Count", Value::Int(i64::from(s.count), "int32")),
                Field::new("LastObservedTime", micro_time(s.last_observed_time, zone)),
            ],
        })),
        None => Value::NilPtr("*v1.EventSeries"),
    };
    let related = match raw.get("related").filter(|r| r.is_object()) {
        Some(r) => Value::Struct(Arc::new(Struct {
            type_name: "v1.ObjectReference",
            pointer: true,
            fields: object_reference(r),
        })),
        None => Value::NilPtr("*v1.ObjectReference"),
    };

    let fields = vec![
        Field::embedded(
            "TypeMeta",
            Value::structure(
                "v1.TypeMeta",
                vec![
                    Field::new("Kind", Value::str(json_str(&raw, "kind"))),
                    Field::new("APIVersion", Value::str(json_str(&raw, "apiVersion"))),
                ],
            ),
        ),
        Field::embedded("ObjectMeta", object_meta),
        Field::new(
            "InvolvedObject",
            Value::structure(
                "v1.ObjectReference",
                vec![
                    Field::new("Kind", Value::str(o.kind.as_str())),
                    Field::new("Namespace", Value::str(o.namespace.as_str())),
                    Field::new("Name", Value::str(o.name.as_str())),
                    Field::new("UID", Value::str(o.uid.as_str())),
                    Field::new("APIVersion", Value::str(o.api_version.as_str())),
                    Field::new("ResourceVersion", Value::str(json_str(involved, "resourceVersion"))),
                    Field::new("FieldPath", Value::str(o.field_path.as_str())),
                ],
            ),
        ),
        Field::new("Reason", Value::str(event.reason.as_str())),
        // kube-eventer removes every `"`, so that a message cannot break a JSON body's quotes.
        Field::new("Message", Value::str(event.message.replace('"', ""))),
        Field::new(
            "Source",
            Value::structure(
                "v1.EventSource",
                vec![
                    Field::new("Component", Value::str(event.source.component.as_str())),
                    Field::new("Host", Value::str(event.source.host.as_str())),
                ],
            ),
        ),
        Field::new("FirstTimestamp", time(event.first_timestamp, zone)),
        Field::new("LastTimestamp", time(Some(event.last_timestamp.or(event.event_time).unwrap_or(now)), zone)),
        Field::new("Count", Value::Int(i64::from(event.count), "int32")),
        Field::new("Type", Value::str(event.level.as_str())),
        Field::new("EventTime", micro_time(event.event_time, zone)),
        Field::new("Series", series),
        Field::new("Action", Value::str(event.action.as_str())),
        Field::new("Related", related),
        Field::new("ReportingController", Value::str(event.reporting_controller.as_str())),
        Field::new("ReportingInstance", Value::str(event.reporting_instance.as_str())),
    ];
    Value::Struct(Arc::new(Struct { type_name: "v1.Event", pointer: true, fields }))
}
