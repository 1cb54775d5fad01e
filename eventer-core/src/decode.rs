//! Decoding Kubernetes Event JSON (core/v1 and events.k8s.io/v1) into [`Event`].
//!
//! Lives in core, without k8s-openapi, so the file source, the Kubernetes source and
//! third-party tools share one fast decoder that also keeps the original JSON.

use std::borrow::Cow;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::{
    Error, ErrorKind, Result,
    event::{Event, EventSource, Level, ObjectRef, RawJson, Series, Text},
};

/// Decode one Event object, keeping its JSON as [`Event::raw`].
///
/// ```
/// let json = r#"{"apiVersion":"v1","kind":"Event","metadata":{"name":"web-0.17a","namespace":"default",
///   "uid":"u1","resourceVersion":"42"},"involvedObject":{"kind":"Pod","namespace":"default","name":"web-0"},
///   "reason":"BackOff","message":"Back-off restarting failed container","type":"Warning","count":3,
///   "lastTimestamp":"2024-01-01T00:00:00Z"}"#;
/// let ev = eventer_core::decode::event_from_json(json)?;
/// assert_eq!(ev.involved_object.name, "web-0");
/// assert_eq!(ev.count, 3);
/// assert_eq!(ev.raw.as_ref().map(|r| r.get()), Some(json));
/// # Ok::<(), eventer_core::Error>(())
/// ```
///
/// # Errors
/// [`ErrorKind::Decode`] when the text is not a JSON object of Event shape.
pub fn event_from_json(json: &str) -> Result<Event> {
    // One pass: a successful parse also proves the text is one JSON value, so it is
    // kept as the raw JSON without a second, validating scan.
    let wire: Wire<'_> = serde_json::from_str(json).map_err(decode_error)?;
    let mut event = wire.into_event();
    event.raw = Some(RawJson::validated(json));
    Ok(event)
}

/// Decode the Event object at the start of `text` (after any whitespace), keeping its JSON
/// as [`Event::raw`], and return it with the number of bytes it took: a list's items are
/// decoded where they stand, in one pass each, rather than delimited first.
///
/// ```
/// let items = r#" {"reason":"Pulled","count":2} , {"reason":"Started"}]"#;
/// let (ev, len) = eventer_core::decode::event_from_json_prefix(items)?;
/// assert_eq!((ev.reason.as_str(), ev.count), ("Pulled", 2));
/// assert_eq!(&items[len..], r#" , {"reason":"Started"}]"#);
/// assert_eq!(ev.raw.unwrap().get(), r#"{"reason":"Pulled","count":2}"#);
/// # Ok::<(), eventer_core::Error>(())
/// ```
///
/// # Errors
/// [`ErrorKind::Decode`] when the text does not start with a JSON object of Event shape.
pub fn event_from_json_prefix(text: &str) -> Result<(Event, usize)> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Wire<'_>>();
    let wire = match stream.next() {
        Some(wire) => wire.map_err(decode_error)?,
        None => return Err(Error::new(ErrorKind::Decode, "invalid event JSON: nothing but whitespace")),
    };
    let len = stream.byte_offset();
    let mut event = wire.into_event();
    event.raw = Some(RawJson::validated(&text[..len]));
    Ok((event, len))
}

/// Decode one Event object given as a borrowed raw JSON value.
///
/// # Errors
/// [`ErrorKind::Decode`] when the value is not of Event shape.
pub fn event_from_raw(raw: &RawValue) -> Result<Event> {
    event_from_json(raw.get())
}

/// Decode a file of events as `kubectl get events -o json` writes it (a `List` or
/// `EventList` of core/v1 or events.k8s.io/v1 Events), a JSON array, a single Event, or
/// JSON lines (one Event, or one watch line `{"type":..,"object":..}`, per line).
///
/// # Errors
/// [`ErrorKind::Decode`] naming the line and column of the first malformed value.
pub fn events_from_document(text: &str) -> Result<Vec<Event>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(text).map_err(decode_error)?;
        return items.into_iter().map(event_from_raw).collect();
    }
    let mut out = Vec::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<&RawValue>() {
        let value = value.map_err(decode_error)?;
        let shape: Shape<'_> = serde_json::from_str(value.get()).map_err(decode_error)?;
        match shape {
            Shape { items: Some(items), .. } => {
                for item in items {
                    out.push(event_from_raw(item)?);
                }
            }
            Shape { object: Some(object), .. } => out.push(event_from_raw(object)?),
            _ => out.push(event_from_raw(value)?),
        }
    }
    Ok(out)
}

fn decode_error(e: serde_json::Error) -> Error {
    Error::new(ErrorKind::Decode, format!("invalid event JSON at line {} column {}", e.line(), e.column()))
        .with_source(e)
}

/// Distinguishes a list, a watch line and a bare object without decoding items twice.
#[derive(Deserialize)]
struct Shape<'a> {
    #[serde(borrow, default)]
    items: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Meta {
    #[serde(deserialize_with = "nullable")]
    name: Text,
    #[serde(deserialize_with = "nullable")]
    namespace: Text,
    #[serde(deserialize_with = "nullable")]
    uid: Text,
    #[serde(deserialize_with = "nullable")]
    resource_version: Text,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Wire<'a> {
    #[serde(deserialize_with = "nullable")]
    metadata: Meta,
    #[serde(alias = "regarding", deserialize_with = "nullable")]
    involved_object: ObjectRef,
    #[serde(deserialize_with = "nullable")]
    reason: Text,
    #[serde(alias = "note", deserialize_with = "nullable")]
    message: Text,
    /// Borrowed: `Normal` and `Warning` need no allocation.
    #[serde(rename = "type", borrow, deserialize_with = "nullable_str")]
    level: Cow<'a, str>,
    #[serde(alias = "deprecatedCount", deserialize_with = "nullable")]
    count: i64,
    #[serde(alias = "deprecatedFirstTimestamp", deserialize_with = "timestamp")]
    first_timestamp: Option<Timestamp>,
    #[serde(alias = "deprecatedLastTimestamp", deserialize_with = "timestamp")]
    last_timestamp: Option<Timestamp>,
    #[serde(deserialize_with = "timestamp")]
    event_time: Option<Timestamp>,
    #[serde(deserialize_with = "nullable")]
    series: Option<WireSeries>,
    #[serde(alias = "deprecatedSource", deserialize_with = "nullable")]
    source: EventSource,
    #[serde(alias = "reportingController", deserialize_with = "nullable")]
    reporting_component: Text,
    #[serde(deserialize_with = "nullable")]
    reporting_instance: Text,
    #[serde(deserialize_with = "nullable")]
    action: Text,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct WireSeries {
    #[serde(deserialize_with = "nullable")]
    count: i64,
    #[serde(deserialize_with = "timestamp")]
    last_observed_time: Option<Timestamp>,
}

impl Wire<'_> {
    fn into_event(self) -> Event {
        Event {
            uid: self.metadata.uid,
            name: self.metadata.name,
            namespace: self.metadata.namespace,
            resource_version: self.metadata.resource_version,
            involved_object: self.involved_object,
            reason: self.reason,
            message: self.message,
            level: Level::from_type(&self.level),
            count: clamp_count(self.count),
            first_timestamp: self.first_timestamp,
            last_timestamp: self.last_timestamp,
            event_time: self.event_time,
            series: self
                .series
                .map(|s| Series { count: clamp_count(s.count), last_observed_time: s.last_observed_time }),
            source: self.source,
            reporting_controller: self.reporting_component,
            reporting_instance: self.reporting_instance,
            action: self.action,
            raw: None,
        }
    }
}

fn clamp_count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// `null` decodes as the default value, as Go's encoder writes it for empty fields.
pub(crate) fn nullable<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A string borrowed from the input when it has no escapes (`Cow`'s own `Deserialize`
/// always copies).
#[derive(Deserialize)]
struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);

/// [`Borrowed`]; `null` is empty.
fn nullable_str<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Cow<'de, str>, D::Error> {
    Ok(Option::<Borrowed<'de>>::deserialize(d)?.map(|b| b.0).unwrap_or_default())
}

/// RFC 3339 time; `null` and `""` are absent.
fn timestamp<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Timestamp>, D::Error> {
    let s = Option::<Borrowed<'de>>::deserialize(d)?;
    match s.as_ref().map(|b| &*b.0) {
        None | Some("") => Ok(None),
        Some(s) => match utc_time(s) {
            Some(t) => Ok(Some(t)),
            None => s.parse::<Timestamp>().map(Some).map_err(serde::de::Error::custom),
        },
    }
}

/// The two layouts Kubernetes writes, `2024-05-01T10:05:00Z` (`metav1.Time`) and
/// `2024-05-01T10:05:00.123456Z` (`MicroTime`), parsed directly: a general RFC 3339
/// parse costs more than the rest of a field. `None` for anything else (offsets, leap
/// seconds, invalid dates), which the general parser then accepts or rejects.
fn utc_time(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num =
        |digits: &[u8]| digits.iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')));
    let (year, month, day) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (hour, minute, second) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    let nanos = match &b[19..] {
        b"Z" => 0,
        [b'.', frac @ .., b'Z'] if (1..=9).contains(&frac.len()) => {
            num(frac)? * 10i64.pow(9 - u32::try_from(frac.len()).ok()?)
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&month) || day < 1 || day > month_days[usize::try_from(month - 1).ok()?] {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Timestamp::new(seconds, i32::try_from(nanos).ok()?).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORE: &str = r#"{"apiVersion":"v1","kind":"Event","metadata":{"name":"web-0.17b2c3d4e5f6a7b8","namespace":"prod","uid":"7c1a","resourceVersion":"1001","creationTimestamp":"2024-01-01T00:00:00Z"},
      "involvedObject":{"kind":"Pod","namespace":"prod","name":"web-0","uid":"p-1","apiVersion":"v1","fieldPath":"spec.containers{app}"},
      "reason":"BackOff","message":"Back-off restarting failed container","type":"Warning","count":7,
      "firstTimestamp":"2024-01-01T00:00:00Z","lastTimestamp":"2024-01-01T00:05:00Z","eventTime":null,
      "source":{"component":"kubelet","host":"node-1"},"reportingComponent":"kubelet","reportingInstance":"node-1"}"#;

    const EVENTS_V1: &str = r#"{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"n1.abc","namespace":"default","uid":"e2","resourceVersion":"77"},
      "eventTime":"2024-01-01T00:00:00.123456Z","series":{"count":4,"lastObservedTime":"2024-01-01T00:09:00.000001Z"},
      "reportingController":"kubernetes.io/kubelet","reportingInstance":"kubelet-node-1","action":"Restart",
      "reason":"KernelOops","regarding":{"kind":"Node","name":"node-1","uid":"node-1"},"note":"kernel: BUG: unable to handle",
      "type":"Warning","deprecatedSource":{"component":"kernel-monitor","host":"node-1"},"deprecatedCount":2}"#;

    #[test]
    fn prefix_decodes_one_object_and_reports_its_length() {
        let text = format!("\n {CORE},{{\"reason\":\"Next\"}}");
        let (event, len) = event_from_json_prefix(&text).unwrap();
        assert_eq!(format!("{event:?}"), format!("{:?}", event_from_json(CORE).unwrap()));
        assert_eq!(&text[len..], r#",{"reason":"Next"}"#);
        assert!(event_from_json_prefix("  ").is_err());
        assert!(event_from_json_prefix("[1]").is_err());
        assert!(event_from_json_prefix(r#"{"reason":"A""#).is_err(), "unterminated");
    }

    #[test]
    fn core_v1_fields() {
        let ev = event_from_json(CORE).unwrap();
        assert_eq!(ev.name, "web-0.17b2c3d4e5f6a7b8");
        assert_eq!(ev.namespace, "prod");
        assert_eq!(ev.uid, "7c1a");
        assert_eq!(ev.resource_version, "1001");
        assert_eq!(ev.involved_object.field_path, "spec.containers{app}");
        assert_eq!(ev.involved_object.api_version, "v1");
        assert_eq!(ev.level, Level::Warning);
        assert_eq!(ev.count, 7);
        assert_eq!(ev.source.host, "node-1");
        assert_eq!(ev.reporting_controller, "kubelet");
        assert_eq!(ev.event_time, None);
        assert_eq!(ev.last_seen().unwrap().to_string(), "2024-01-01T00:05:00Z");
        assert_eq!(ev.raw.unwrap().get(), CORE);
    }

    #[test]
    fn events_k8s_io_v1_fields_map_onto_core_names() {
        let ev = event_from_json(EVENTS_V1).unwrap();
        assert_eq!(ev.involved_object.kind, "Node");
        assert_eq!(ev.message, "kernel: BUG: unable to handle");
        assert_eq!(ev.reporting_controller, "kubernetes.io/kubelet");
        assert_eq!(ev.source.component, "kernel-monitor");
        assert_eq!(ev.count, 2);
        assert_eq!(ev.occurrences(), 4);
        assert_eq!(ev.last_seen().unwrap().to_string(), "2024-01-01T00:09:00.000001Z");
        assert_eq!(ev.event_time.unwrap().to_string(), "2024-01-01T00:00:00.123456Z");
    }

    #[test]
    fn documents_in_every_shape() {
        let list = format!(r#"{{"apiVersion":"v1","kind":"List","items":[{CORE},{EVENTS_V1}],"metadata":{{}}}}"#);
        assert_eq!(events_from_document(&list).unwrap().len(), 2);
        let array = format!("[{CORE}, {EVENTS_V1}]");
        assert_eq!(events_from_document(&array).unwrap().len(), 2);
        let lines = format!(
            "{}\n{}\n{{\"type\":\"ADDED\",\"object\":{}}}\n",
            CORE.replace('\n', " "),
            EVENTS_V1.replace('\n', " "),
            CORE.replace('\n', " ")
        );
        let evs = events_from_document(&lines).unwrap();
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[2].reason, "BackOff");
        assert!(events_from_document("").unwrap().is_empty());
    }

    #[test]
    fn malformed_input_names_the_position() {
        let err = events_from_document("{\"items\": [\n{\"metadata\": 3}]}").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        let err = events_from_document("{\"items\": [ {\"reason\": \"x\"},\n oops ]}").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn kubernetes_time_layouts_parse_as_the_general_parser_does() {
        let general = |s: &str| s.parse::<Timestamp>().ok();
        let mut t: Timestamp = "1899-12-31T23:59:59Z".parse().unwrap();
        // Every day for 120 years, at varying times and precisions: leap years, month ends.
        for i in 0..120 * 366 {
            let micros = (i * 7919) % 1_000_000;
            for s in [
                t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                format!("{}.{micros:06}Z", t.strftime("%Y-%m-%dT%H:%M:%S")),
                format!("{}.{}Z", t.strftime("%Y-%m-%dT%H:%M:%S"), micros % 10),
            ] {
                assert_eq!(utc_time(&s), general(&s), "{s}");
            }
            t = t.checked_add(jiff::SignedDuration::from_secs(86_400 + 3_601)).unwrap();
        }
        for s in [
            "2024-02-29T00:00:00.123456789Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.5Z",
        ] {
            assert_eq!(utc_time(s), general(s), "{s}");
        }
        // Left to the general parser: offsets, leap seconds, lowercase; rejected by both:
        // impossible dates, too many digits, junk.
        for s in [
            "2024-05-01T10:05:00+08:00",
            "2016-12-31T23:59:60Z",
            "2024-05-01t10:05:00z",
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T10:05:00.1234567890Z",
            "2024-05-01T10:05:00.Z",
            "2024-05-01T10:05:00",
            "+024-05-01T10:05:00Z",
            "2024-05-01T1a:05:00Z",
        ] {
            assert_eq!(utc_time(s), None, "{s}");
        }
        let ev = event_from_json(r#"{"lastTimestamp":"2024-05-01T18:05:00+08:00"}"#).unwrap();
        assert_eq!(ev.last_timestamp.unwrap().to_string(), "2024-05-01T10:05:00Z");
        assert_eq!(
            event_from_json(r#"{"lastTimestamp":"2023-02-29T00:00:00Z"}"#).unwrap_err().kind(),
            ErrorKind::Decode
        );
    }

    #[test]
    fn strings_with_escapes_and_the_raw_text() {
        let json =
            " {\"type\":\"Warn\\u0069ng\",\"reason\":\"a\\\"b\",\"lastTimestamp\":\"2024-05-01T10:05:00\\u005a\"}\n";
        let ev = event_from_json(json).unwrap();
        assert_eq!(ev.level, Level::Warning);
        assert_eq!(ev.reason, "a\"b");
        assert_eq!(ev.last_timestamp.unwrap().to_string(), "2024-05-01T10:05:00Z");
        assert_eq!(ev.raw.as_ref().unwrap().get(), json.trim());
        assert!(event_from_json(r#"{"reason":"x"} {"reason":"y"}"#).is_err());
        let missing = event_from_json("{}").unwrap();
        assert_eq!(missing.level, Level::Other(String::new()));
    }

    #[test]
    fn nulls_are_empty() {
        let ev = event_from_json(
            r#"{"metadata":{"name":null},"involvedObject":null,"message":null,"count":null,"firstTimestamp":"","series":null,"type":"Custom"}"#,
        )
        .unwrap();
        assert_eq!(ev.name, "");
        assert_eq!(ev.count, 0);
        assert_eq!(ev.occurrences(), 1);
        assert_eq!(ev.level, Level::Other("Custom".into()));
    }
}
