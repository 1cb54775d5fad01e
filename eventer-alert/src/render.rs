//! What chat sinks share when rendering: the alert, the time zone, user templates, and
//! size helpers.

use std::collections::BTreeMap;

use eventer_core::{Error, Event, Result};
use jiff::{Timestamp, tz::TimeZone};
use minijinja::{Environment, UndefinedBehavior, Value};

const TEMPLATE_NAME: &str = "body";

/// One alert: the latest update of an object and reason, with its occurrence count (the
/// highest seen among the events it stands for).
#[derive(Debug, Clone, Copy)]
pub struct Alert<'a> {
    /// The latest event of the alert.
    pub event: &'a Event,
    /// How often it happened.
    pub count: u32,
}

impl Alert<'_> {
    /// The event's message as a digest line shows it: trimmed, at most 300 bytes, on one
    /// line (a multi-line message would break the list).
    ///
    /// ```
    /// use eventer_alert::Alert;
    /// let ev = eventer_core::Event::builder().message(&format!(" a\nb\t{}", "x".repeat(400))).build();
    /// let line = Alert { event: &ev, count: 1 }.line_message();
    /// assert!(line.starts_with("a b x") && line.len() <= 300 && line.ends_with('…'), "{line}");
    /// ```
    pub fn line_message(&self) -> String {
        /// Enough to recognise the problem; the single-alert message has the rest.
        const LINE_MESSAGE_BYTES: usize = 300;
        truncate(self.event.message.trim(), LINE_MESSAGE_BYTES)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    }
}

/// The zone times are shown in: the `timezone` option, else `TZ`, else UTC.
///
/// ```
/// use eventer_alert::Zone;
/// use eventer_core::Event;
/// let zone = Zone::new(Some("Asia/Shanghai"))?;
/// let t = "2024-01-01T00:00:00Z".parse().unwrap();
/// let ev = Event::builder().at(t, t).build();
/// assert_eq!(zone.long(&ev), "2024-01-01 08:00:00 +0800 CST");
/// assert_eq!(zone.short(&ev), "2024-01-01 08:00:00");
/// assert_eq!(zone.name(), "Asia/Shanghai");
/// # Ok::<(), eventer_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Zone {
    tz: TimeZone,
    name: String,
}

impl Zone {
    /// The zone named by `option` (an IANA name), else by `TZ`, else UTC. A `TZ` that names
    /// no zone is logged and UTC used: the environment is not the user's option.
    ///
    /// # Errors
    /// A configuration error when `option` names no known zone.
    pub fn new(option: Option<&str>) -> Result<Zone> {
        if let Some(name) = option {
            let tz = TimeZone::get(name)
                .map_err(|e| Error::config(format!("option timezone: unknown time zone `{name}`: {e}")))?;
            return Ok(Zone { tz, name: name.to_owned() });
        }
        let utc = || Zone { tz: TimeZone::UTC, name: "UTC".to_owned() };
        match std::env::var("TZ") {
            Ok(tz) if !tz.trim().is_empty() => {
                let name = tz.trim().trim_start_matches(':');
                match TimeZone::get(name).or_else(|_| TimeZone::posix(name)) {
                    Ok(tz) => Ok(Zone { tz, name: name.to_owned() }),
                    Err(e) => {
                        tracing::warn!(tz = %name, error = %e, "TZ is not a known time zone; showing times in UTC.");
                        Ok(utc())
                    }
                }
            }
            _ => Ok(utc()),
        }
    }

    /// The zone's name as shown in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When `ev` last happened as `2006-01-02 15:04:05 -0700 MST` (Go's `Time.String`, as
    /// kube-eventer shows it); now when the event has no time.
    pub fn long(&self, ev: &Event) -> String {
        let at = ev.last_seen().unwrap_or_else(Timestamp::now);
        at.to_zoned(self.tz.clone()).strftime("%Y-%m-%d %H:%M:%S %z %Z").to_string()
    }

    /// When `ev` last happened as `2006-01-02 15:04:05`, for digest lines that name the
    /// zone once.
    pub fn short(&self, ev: &Event) -> String {
        let at = ev.last_seen().unwrap_or_else(Timestamp::now);
        at.to_zoned(self.tz.clone()).strftime("%Y-%m-%d %H:%M:%S").to_string()
    }
}

/// A user's [minijinja] template for the text of one alert.
///
/// Variables: `level`, `kind`, `namespace`, `name` (the Event's), `object` and
/// `object_namespace` (the involved object's), `reason`, `message`, `count`, `timestamp`
/// (with zone), `timezone`, `host`, `component`, `uid`, `labels` (a list), and those the
/// sink adds. A variable that does not exist is an error, not an empty string.
///
/// ```
/// use eventer_alert::{Alert, Template, Zone};
/// use eventer_core::Event;
/// let template = Template::compile("{{ level }} {{ kind }} {{ object }}: {{ reason }} x{{ count }} in {{ cluster }}")?;
/// let ev = Event::builder().warning().kind("Pod").object("shop", "web-1").reason("BackOff").build();
/// let text = template.render(Alert { event: &ev, count: 3 }, &Zone::new(Some("UTC"))?, &[], &[("cluster", "prod")])?;
/// assert_eq!(text, "Warning Pod web-1: BackOff x3 in prod");
/// assert!(template.check(&Zone::new(None)?, &[], &[]).is_err(), "`cluster` is not defined");
/// # Ok::<(), eventer_core::Error>(())
/// ```
///
/// [minijinja]: https://docs.rs/minijinja
#[derive(Debug)]
pub struct Template {
    env: Environment<'static>,
}

impl Template {
    /// Compile `source`.
    ///
    /// # Errors
    /// A configuration error `invalid template: …` when it does not parse.
    pub fn compile(source: impl Into<String>) -> Result<Template> {
        let mut env = Environment::new();
        // A misspelt variable should fail at startup, not print nothing in every alert.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_template_owned(TEMPLATE_NAME, source.into()).map_err(invalid)?;
        Ok(Template { env })
    }

    /// The text of `alert`, with times in `zone`, the sink's `labels` and `extra`
    /// variables.
    ///
    /// # Errors
    /// A configuration error `invalid template: …` (an unknown variable, a failed filter).
    pub fn render(&self, alert: Alert<'_>, zone: &Zone, labels: &[String], extra: &[(&str, &str)]) -> Result<String> {
        let Alert { event: ev, count } = alert;
        let labels: Vec<Value> = labels.iter().map(|l| Value::from(l.as_str())).collect();
        let extra: BTreeMap<String, Value> = extra.iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect();
        let ctx = minijinja::context! {
            level => ev.level.as_str(),
            kind => ev.involved_object.kind.as_str(),
            namespace => ev.namespace.as_str(),
            name => ev.name.as_str(),
            object => ev.involved_object.name.as_str(),
            object_namespace => ev.involved_object.namespace.as_str(),
            reason => ev.reason.as_str(),
            message => ev.message.as_str(),
            count => count,
            timestamp => zone.long(ev),
            timezone => zone.name(),
            host => ev.source.host.as_str(),
            component => ev.source.component.as_str(),
            uid => ev.uid.as_str(),
            labels => labels,
            ..Value::from(extra)
        };
        self.env.get_template(TEMPLATE_NAME).and_then(|t| t.render(ctx)).map_err(invalid)
    }

    /// Render a sample alert, so that a template naming an unknown variable fails at
    /// startup rather than at the first alert.
    ///
    /// # Errors
    /// As [`Template::render`].
    pub fn check(&self, zone: &Zone, labels: &[String], extra: &[(&str, &str)]) -> Result<()> {
        let sample = Event::builder().kind("Pod").object("default", "sample").reason("Sample").build();
        self.render(Alert { event: &sample, count: 1 }, zone, labels, extra).map(drop)
    }
}

fn invalid(e: minijinja::Error) -> Error {
    Error::config(format!("invalid template: {e}"))
}

/// At most `max` bytes of `s`, cut at a character boundary, with `…` when cut.
///
/// ```
/// assert_eq!(eventer_alert::truncate("abcdef", 5), "ab…");
/// ```
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The length of `s` as the body of a JSON string (without the quotes): what a line costs
/// in a JSON request.
///
/// ```
/// assert_eq!(eventer_alert::json_len("a\"b\n"), 6);
/// ```
pub fn json_len(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if c.is_control() && (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_len_matches_serde() {
        for s in ["plain", "quote \" and \\ slash", "tab\tnew\nline\r", "\u{1} ctl", "中文 ✓", ""] {
            assert_eq!(json_len(s), serde_json::to_string(s).unwrap().len() - 2, "{s:?}");
        }
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcdef", 5), "ab…");
        let cut = truncate("中文中文", 7);
        assert!(cut.len() <= 7 && cut.ends_with('…'), "{cut}");
    }

    #[test]
    fn templates_fail_on_unknown_variables_and_bad_syntax() {
        let zone = Zone::new(Some("UTC")).unwrap();
        let err = Template::compile("{{ level ").unwrap_err();
        assert!(err.to_string().starts_with("invalid template: "), "{err}");
        let t = Template::compile("{{ labels | join(',') }} {{ nope }}").unwrap();
        assert!(t.check(&zone, &["a".into()], &[]).unwrap_err().to_string().contains("undefined"));
        let t = Template::compile("{{ labels | join(',') }} {{ timezone }}").unwrap();
        t.check(&zone, &["a".into()], &[]).unwrap();
        let err = Zone::new(Some("Mars/Olympus")).unwrap_err().to_string();
        assert!(err.starts_with("option timezone: unknown time zone `Mars/Olympus`"), "{err}");
    }
}
