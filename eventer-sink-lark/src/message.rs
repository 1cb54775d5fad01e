//! Message bodies: the text layout (kube-eventer's, as its DingTalk sink writes it), the
//! card layout, the user template, and digests listing many alerts in one message.

use std::fmt::Write as _;

use eventer_alert::{Alert, Digest, Look, fit_one};
use eventer_core::{Level, Result};
use serde_json::json;

use crate::config::{LarkConfig, MsgType};

/// Renders message bodies (the JSON sent to the bot, before signing).
pub(crate) struct Renderer {
    msg_type: MsgType,
    look: Look,
}

impl Renderer {
    /// A renderer for `config`; reads `template_file` and compiles the template.
    pub(crate) fn new(config: &LarkConfig) -> Result<Self> {
        Ok(Renderer { msg_type: config.msg_type, look: config.chat.look(&[])? })
    }

    /// The zone times are shown in.
    pub(crate) fn tz_name(&self) -> &str {
        self.look.zone.name()
    }

    /// The body of a message about one alert within `max_bytes` (the event's message is
    /// cut, never the alert).
    pub(crate) fn single(&self, alert: Alert<'_>, max_bytes: usize) -> String {
        fit_one(alert, max_bytes, |alert| self.single_body(alert))
    }

    fn single_body(&self, alert: Alert<'_>) -> String {
        let text = self.look.text(alert, &[], "Lark", |alert| self.layout(alert));
        let ev = alert.event;
        let title = format!("{} {}: {}", ev.level, ev.involved_object.kind, ev.reason);
        self.body(&title, colour(&ev.level), &text)
    }

    fn layout(&self, alert: Alert<'_>) -> String {
        match self.msg_type {
            MsgType::Text => self.look.kube_eventer_text(alert),
            MsgType::Interactive => self.card_layout(alert),
        }
    }

    fn card_layout(&self, Alert { event: ev, count }: Alert<'_>) -> String {
        let mut out = String::with_capacity(256 + ev.message.len());
        let w = &mut out;
        self.card_labels(w);
        let obj = &ev.involved_object;
        write!(w, "**Kind:** {}\n**Namespace:** {}\n**Name:** {}\n", obj.kind, ev.namespace, ev.name)
            .expect("writing to a String");
        writeln!(w, "**Reason:** {}", ev.reason).expect("writing to a String");
        if count > 1 {
            writeln!(w, "**Count:** {count}").expect("writing to a String");
        }
        if !ev.source.host.is_empty() {
            writeln!(w, "**Node:** {}", ev.source.host).expect("writing to a String");
        }
        write!(w, "**Timestamp:** {}\n**Message:** {}", self.look.zone.long(ev), ev.message)
            .expect("writing to a String");
        out
    }

    fn card_labels(&self, w: &mut String) {
        for label in self.look.labels.iter().filter(|l| !l.trim().is_empty()) {
            writeln!(w, "**{label}**").expect("writing to a String");
        }
    }

    /// One line of a digest: level, kind, namespace/name, reason, count, time, message.
    pub(crate) fn digest_line(&self, alert: Alert<'_>) -> String {
        let Alert { event: ev, count } = alert;
        let obj = &ev.involved_object;
        let message = alert.line_message();
        let time = self.look.zone.short(ev);
        let mut line = String::with_capacity(96 + message.len());
        let w = &mut line;
        let strong = if self.msg_type == MsgType::Interactive { "**" } else { "" };
        write!(w, "- {strong}{}{strong} {} ", ev.level, obj.kind).expect("writing to a String");
        if !obj.namespace.is_empty() {
            write!(w, "{}/", obj.namespace).expect("writing to a String");
        }
        write!(w, "{} {strong}{}{strong} (x{count}, {time}): {message}", obj.name, ev.reason)
            .expect("writing to a String");
        line
    }

    /// A digest message listing `digest.lines`.
    pub(crate) fn digest(&self, digest: Digest<'_>) -> String {
        let lines = digest.lines;
        let span = digest.span();
        let mut text = String::with_capacity(128 + lines.iter().map(|l| l.len() + 1).sum::<usize>());
        match self.msg_type {
            MsgType::Text => {
                for label in self.look.labels.iter().rev() {
                    writeln!(text, "{label}").expect("writing to a String");
                }
                writeln!(text, "{span} (times in {}):", self.look.zone.name()).expect("writing to a String");
            }
            MsgType::Interactive => self.card_labels(&mut text),
        }
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        if self.msg_type == MsgType::Interactive {
            write!(text, "Times in {}.", self.look.zone.name()).expect("writing to a String");
        }
        self.body(&span, "orange", text.trim_end())
    }

    fn body(&self, title: &str, colour: &str, text: &str) -> String {
        let body = match self.msg_type {
            MsgType::Text => json!({ "msg_type": "text", "content": { "text": text } }),
            MsgType::Interactive => json!({
                "msg_type": "interactive",
                "card": {
                    "config": { "wide_screen_mode": true },
                    "header": { "template": colour, "title": { "tag": "plain_text", "content": title } },
                    "elements": [{ "tag": "div", "text": { "tag": "lark_md", "content": text } }],
                },
            }),
        };
        body.to_string()
    }
}

/// The card header's colour: red for Warnings.
fn colour(level: &Level) -> &'static str {
    if *level == Level::Warning { "red" } else { "blue" }
}

#[cfg(test)]
mod tests {
    use eventer_alert::ChatConfig;
    use eventer_core::Event;
    use serde_json::Value;

    use super::*;

    fn event() -> Event {
        let t = "2024-01-01T00:00:00Z".parse().unwrap();
        Event::builder()
            .warning()
            .kind("Pod")
            .object("shop", "web-1")
            .reason("BackOff")
            .message("Back-off \"x\"")
            .at(t, t)
            .build()
    }

    fn renderer(msg_type: MsgType) -> Renderer {
        let config = LarkConfig::new("https://h/hook/t").msg_type(msg_type).label("prod").timezone("Asia/Shanghai");
        Renderer::new(&config).unwrap()
    }

    #[test]
    fn text_layout_is_kube_eventers() {
        let ev = event();
        let body: Value =
            serde_json::from_str(&renderer(MsgType::Text).single(Alert { event: &ev, count: 3 }, 20_000)).unwrap();
        assert_eq!(body["msg_type"], "text");
        let text = body["content"]["text"].as_str().unwrap();
        assert!(text.starts_with("prod\nLevel:Warning \nKind:Pod \nNamespace:shop \n"), "{text}");
        assert!(
            text.contains(
                "Reason:BackOff \nCount:3 \nTimestamp:2024-01-01 08:00:00 +0800 CST \nMessage:Back-off \"x\""
            ),
            "{text}"
        );
    }

    #[test]
    fn cards_have_a_header_and_lark_md() {
        let ev = event();
        let r = renderer(MsgType::Interactive);
        let body: Value = serde_json::from_str(&r.single(Alert { event: &ev, count: 1 }, 20_000)).unwrap();
        assert_eq!(body["msg_type"], "interactive");
        assert_eq!(body["card"]["header"]["template"], "red");
        assert_eq!(body["card"]["header"]["title"]["content"], "Warning Pod: BackOff");
        let content = body["card"]["elements"][0]["text"]["content"].as_str().unwrap();
        assert!(content.starts_with("**prod**\n**Kind:** Pod\n"), "{content}");
        let lines = vec![r.digest_line(Alert { event: &ev, count: 2 })];
        assert_eq!(lines[0], "- **Warning** Pod shop/web-1 **BackOff** (x2, 2024-01-01 08:00:00): Back-off \"x\"");
        let digest: Value = serde_json::from_str(&r.digest(Digest { lines: &lines, first: 1, total: 1 })).unwrap();
        assert_eq!(digest["card"]["header"]["title"]["content"], "1 Kubernetes events");
    }

    #[test]
    fn single_alerts_fit_the_limit_by_cutting_the_message() {
        let mut ev = event();
        ev.message = "x".repeat(50_000).into();
        let body = renderer(MsgType::Text).single(Alert { event: &ev, count: 1 }, 5_000);
        assert!(body.len() <= 5_000 && body.contains("Reason:BackOff"), "{}", body.len());
    }
}
