//! One event as a Kafka message: kube-eventer's value, a key, a timestamp.

use std::fmt::Write as _;

use eventer_core::Event;

use crate::config::{Format, PartitionBy};

/// Append `s` to `out` as a JSON string, escaped as Go's `json.Marshal` escapes it: `<`,
/// `>`, `&`, U+2028 and U+2029 as `\u` sequences, so kube-eventer's consumers see the
/// same bytes.
pub(crate) fn go_string(s: &str, out: &mut String) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escaped = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\0'..='\u{1f}' => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escaped.is_empty() {
            write!(out, "\\u{:04x}", c as u32).expect("writing to a String cannot fail");
        } else {
            out.push_str(escaped);
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Append the JSON text `json` (one valid value) to `out` as Go's `json.MarshalIndent(v,
/// "", " ")` prints it: one space per level, `": "` after keys, `{}` and `[]` for empty
/// ones, strings escaped as [`go_string`] does.
pub(crate) fn go_indent(json: &str, out: &mut String) {
    let bytes = json.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', depth));
    };
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let mut end = i + 1;
                while bytes[end] != b'"' {
                    end += if bytes[end] == b'\\' { 2 } else { 1 };
                }
                let token = &json[i..=end];
                // Most strings need no decoding and no escaping Go would add: copied as they are.
                if !token.bytes().any(|b| matches!(b, b'\\' | b'<' | b'>' | b'&' | 0xE2)) {
                    out.push_str(token);
                    i = end + 1;
                    continue;
                }
                match serde_json::from_str::<std::borrow::Cow<'_, str>>(token) {
                    Ok(s) => go_string(&s, out),
                    Err(_) => out.push_str(token),
                }
                i = end;
            }
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                let next = bytes[i + 1..].iter().position(|b| !b.is_ascii_whitespace()).map(|n| i + 1 + n);
                if next.is_some_and(|n| bytes[n] == close) {
                    out.push(open as char);
                    out.push(close as char);
                    i = next.unwrap_or(i);
                } else {
                    out.push(open as char);
                    depth += 1;
                    newline(out, depth);
                }
            }
            close @ (b'}' | b']') => {
                depth = depth.saturating_sub(1);
                newline(out, depth);
                out.push(close as char);
            }
            b',' => {
                out.push(',');
                newline(out, depth);
            }
            b':' => out.push_str(": "),
            b if b.is_ascii_whitespace() => {}
            b => out.push(b as char),
        }
        i += 1;
    }
}

/// Turns events into message values and keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Encoder {
    pub(crate) format: Format,
    pub(crate) key: PartitionBy,
}

impl Encoder {
    /// The message value of `event`, appended to `out`.
    pub(crate) fn value(&self, event: &Event, out: &mut String) {
        match self.format {
            Format::Event => out.push_str(&event.raw_json()),
            Format::KubeEventer => {
                // kube-eventer's KafkaSinkPoint: the Event indented as a string, the time of
                // its last occurrence in UTC, and its tags (Go sorts a map's keys).
                let json = event.raw_json();
                let mut indented = String::with_capacity(json.len() * 5 / 4);
                go_indent(&json, &mut indented);
                out.push_str("{\"EventValue\":");
                go_string(&indented, out);
                out.push_str(",\"EventTimestamp\":\"");
                let at = event.last_timestamp.or(event.event_time).or_else(|| event.last_seen());
                write!(out, "{}", at.unwrap_or_else(jiff::Timestamp::now)).expect("writing to a String cannot fail");
                out.push_str("\",\"EventTags\":{\"eventID\":");
                go_string(&event.uid, out);
                out.push_str(",\"hostname\":");
                go_string(&event.source.host, out);
                let object = &event.involved_object;
                if object.kind == "Pod" {
                    out.push_str(",\"pod_id\":");
                    go_string(&object.uid, out);
                    out.push_str(",\"pod_name\":");
                    go_string(&object.name, out);
                }
                out.push_str("}}");
            }
        }
    }

    /// The message key of `event`, `None` for round-robin.
    pub(crate) fn key(&self, event: &Event) -> Option<String> {
        let object = &event.involved_object;
        match self.key {
            PartitionBy::None => None,
            PartitionBy::Object if !object.uid.is_empty() => Some(object.uid.to_string()),
            PartitionBy::Object => Some(format!("{}/{}/{}", object.kind, object.namespace, object.name)),
            PartitionBy::Event if !event.uid.is_empty() => Some(event.uid.to_string()),
            PartitionBy::Event => Some(format!("{}/{}", event.namespace, event.name)),
        }
    }

    /// The `eventer-event-id` header: the Event's uid and resourceVersion, the same for
    /// every copy of one update, so a consumer can drop a copy replayed after a restart.
    pub(crate) fn id(event: &Event) -> String {
        format!("{}.{}", event.uid, event.resource_version)
    }
}

#[cfg(test)]
mod tests {
    use eventer_core::event::RawJson;

    use super::*;

    #[test]
    fn indents_and_escapes_as_go() {
        let mut out = String::new();
        go_indent(r#"{"a":{"b":[1,2],"c":{},"d":[]},"e":"x<y>&z\u2028\"\\\n\u00e9\/","f":null}"#, &mut out);
        // What Go's json.MarshalIndent(v, "", " ") prints for the same value.
        let go = "{\n \"a\": {\n  \"b\": [\n   1,\n   2\n  ],\n  \"c\": {},\n  \"d\": []\n },\n \
                  \"e\": \"x\\u003cy\\u003e\\u0026z\\u2028\\\"\\\\\\né/\",\n \"f\": null\n}";
        assert_eq!(out, go);
        let mut s = String::new();
        go_string("\u{1}\u{8}\u{c}\u{1f}", &mut s);
        assert_eq!(s, r#""\u0001\b\f\u001f""#);
    }

    #[test]
    fn kube_eventers_value() {
        let raw = r#"{"metadata":{"name":"web.1","namespace":"default","uid":"e-1","resourceVersion":"7"},"involvedObject":{"kind":"Pod","namespace":"default","name":"web","uid":"p-1"},"reason":"BackOff","message":"a <b>","source":{"component":"kubelet","host":"node-1"},"lastTimestamp":"2024-01-01T00:05:00Z","count":2,"type":"Warning"}"#;
        let mut event = Event::builder()
            .meta("default", "web.1", "e-1")
            .kind("Pod")
            .object("default", "web")
            .source("kubelet", "node-1")
            .at("2024-01-01T00:00:00Z".parse().unwrap(), "2024-01-01T00:05:00Z".parse().unwrap())
            .build();
        event.involved_object.uid = "p-1".into();
        event.raw = Some(RawJson::new(raw).unwrap());
        let encoder = Encoder { format: Format::KubeEventer, key: PartitionBy::Object };
        let mut value = String::new();
        encoder.value(&event, &mut value);
        // json.Marshal(KafkaSinkPoint{…}) in kube-eventer, for this Event.
        let expected = concat!(
            r#"{"EventValue":"{\n \"metadata\": {\n  \"name\": \"web.1\",\n  \"namespace\": \"default\",\n  \"uid\": \"e-1\",\n  \"resourceVersion\": \"7\"\n },\n"#,
            r#" \"involvedObject\": {\n  \"kind\": \"Pod\",\n  \"namespace\": \"default\",\n  \"name\": \"web\",\n  \"uid\": \"p-1\"\n },\n"#,
            r#" \"reason\": \"BackOff\",\n \"message\": \"a \\u003cb\\u003e\",\n \"source\": {\n  \"component\": \"kubelet\",\n  \"host\": \"node-1\"\n },\n"#,
            r#" \"lastTimestamp\": \"2024-01-01T00:05:00Z\",\n \"count\": 2,\n \"type\": \"Warning\"\n}","#,
            r#""EventTimestamp":"2024-01-01T00:05:00Z","EventTags":{"eventID":"e-1","hostname":"node-1","pod_id":"p-1","pod_name":"web"}}"#
        );
        assert_eq!(value, expected);
        let parsed: serde_json::Value = serde_json::from_str(&value).unwrap();
        let inner: serde_json::Value = serde_json::from_str(parsed["EventValue"].as_str().unwrap()).unwrap();
        assert_eq!(inner, serde_json::from_str::<serde_json::Value>(raw).unwrap(), "the same Event, re-indented");
        assert_eq!(encoder.key(&event).as_deref(), Some("p-1"));
        assert_eq!(Encoder::id(&event), "e-1.");

        let mut value = String::new();
        Encoder { format: Format::Event, key: PartitionBy::Event }.value(&event, &mut value);
        assert_eq!(value, raw);
    }
}
