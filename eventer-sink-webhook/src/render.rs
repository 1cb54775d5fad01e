//! Request bodies: kube-eventer's template language over kube-eventer's view of an event,
//! or the event's own JSON.

use eventer_core::Event;
use jiff::{Timestamp, tz::TimeZone};

use crate::{data::event_value, gotmpl::Template};

/// kube-eventer's body when no template is configured, byte for byte.
pub const DEFAULT_TEMPLATE: &str = "\n{\n\t\"EventType\": \"{{ .Type }}\",\n\t\"EventKind\": \"{{ .InvolvedObject.Kind }}\",\n\t\"EventReason\": \"{{ .Reason }}\",\n\t\"EventTime\": \"{{ .LastTimestamp }}\",\n\t\"EventMessage\": \"{{ .Message }}\"\n}";

/// A parsed body template.
#[derive(Debug, Clone)]
pub(crate) struct BodyTemplate(Template);

impl BodyTemplate {
    /// Parse `text`, then render it once for a sample event, so that a field the event
    /// type lacks (`.Nope`) fails now rather than on every event.
    pub(crate) fn parse(text: &str) -> Result<BodyTemplate, String> {
        let template = BodyTemplate(Template::parse(text).map_err(|e| e.to_string())?);
        let sample = Event::builder()
            .meta("default", "web-0.1", "uid")
            .kind("Pod")
            .object("default", "web-0")
            .reason("BackOff")
            .message("sample")
            .warning()
            .count(1)
            .source("kubelet", "node-1")
            .build();
        template.render(&sample, Timestamp::UNIX_EPOCH, &TimeZone::UTC)?;
        Ok(template)
    }

    /// The body for `event`, its times in `zone`; `now` stands in for a missing last
    /// timestamp, as kube-eventer.
    pub(crate) fn render(&self, event: &Event, now: Timestamp, zone: &TimeZone) -> Result<String, String> {
        self.0.execute(&event_value(event, now, zone)).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// The table's bodies and errors are Go's own output (`tests/go-oracle/check.sh`
    /// renders it with Go's text/template and fails on any difference).
    #[test]
    fn renders_the_table_as_go_does() {
        let table: Value = serde_json::from_str(include_str!("../tests/data/templates.json")).unwrap();
        let mut failures = Vec::new();
        for case in table["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let event_json = table["events"][case["event"].as_str().unwrap()].to_string();
            let event = eventer_core::decode::event_from_json(&event_json).unwrap();
            // The process's zone, as Go's time.Local: `TZ` in the table's case, else UTC.
            let zone = case.get("tz").and_then(Value::as_str).map_or(TimeZone::UTC, |tz| TimeZone::get(tz).unwrap());
            let result = Template::parse(case["template"].as_str().unwrap())
                .and_then(|t| t.execute(&event_value(&event, Timestamp::UNIX_EPOCH, &zone)))
                .map_err(|e| e.to_string());
            match (case.get("body").and_then(Value::as_str), case.get("error").and_then(Value::as_str), &result) {
                (Some(want), _, Ok(got)) if want == got => {}
                // Go names the failing node's column; the message after it must match.
                (_, Some(want), Err(got)) if message(want) == message(got) => {}
                _ => failures.push(format!("{name}: want {case}, got {result:?}")),
            }
        }
        assert!(failures.is_empty(), "{} cases differ:\n{}", failures.len(), failures.join("\n"));
    }

    /// Hostile templates (every prefix of the table's, and each with a delimiter or quote
    /// spliced in) parse or fail, and render or fail, without a panic or a runaway.
    #[test]
    fn broken_templates_never_panic() {
        let table: Value = serde_json::from_str(include_str!("../tests/data/templates.json")).unwrap();
        let event = eventer_core::decode::event_from_json(&table["events"]["pod"].to_string()).unwrap();
        let data = event_value(&event, Timestamp::UNIX_EPOCH, &TimeZone::UTC);
        let mut tried = 0;
        for case in table["cases"].as_array().unwrap() {
            let text = case["template"].as_str().unwrap();
            for (i, _) in text.char_indices().chain([(text.len(), ' ')]) {
                for splice in ["", "{{", "}}", "-", "\"", "`", "'", "(", ")", "$", ".", "|", "é", "{{range .}}", "%"] {
                    let candidate = format!("{}{splice}{}", &text[..i], &text[i..]);
                    if let Ok(t) = Template::parse(&candidate) {
                        drop(t.execute(&data));
                    }
                    drop(Template::parse(&text[..i]).map(|t| t.execute(&data)));
                    tried += 1;
                }
            }
        }
        assert!(tried > 10_000, "{tried}");
        for huge in ["{{printf \"%100000000d\" 1}}", "{{printf \"%*d\" 99999999 1}}", "{{printf \"%.*f\" -1 1.0}}"] {
            let out = Template::parse(huge).unwrap().execute(&data).unwrap();
            assert!(out.len() < 100, "{huge}: {out}");
        }
    }

    fn message(error: &str) -> &str {
        error.rsplit_once(">: ").map_or(error, |(_, m)| m)
    }

    #[test]
    fn default_template_is_kube_eventers() {
        let event = Event::builder().kind("Node").reason("KernelOops").message("say \"hi\"").warning().build();
        let body = BodyTemplate::parse(DEFAULT_TEMPLATE)
            .unwrap()
            .render(&event, Timestamp::UNIX_EPOCH, &TimeZone::UTC)
            .unwrap();
        assert_eq!(
            body,
            "\n{\n\t\"EventType\": \"Warning\",\n\t\"EventKind\": \"Node\",\n\t\"EventReason\": \"KernelOops\",\n\t\
             \"EventTime\": \"1970-01-01 00:00:00 +0000 UTC\",\n\t\"EventMessage\": \"say hi\"\n}"
        );
    }

    #[test]
    fn unknown_fields_fail_at_parse_time() {
        let err = BodyTemplate::parse("{{if .Type}}{{.Nope}}{{end}}").unwrap_err();
        assert!(err.ends_with("can't evaluate field Nope in type *v1.Event"), "{err}");
        assert!(BodyTemplate::parse("{{ .Reason ").unwrap_err().contains("unclosed action"));
    }
}
