//! Message bodies: mrkdwn for one alert, digests listing many, Block Kit sections under
//! Slack's limits, and the user template.

use std::fmt::Write as _;

use eventer_alert::{Alert, Digest, Look, truncate, with_message_cut};
use eventer_core::Result;
use serde_json::{Value, json};

use crate::config::{MsgType, SlackConfig, mention};

/// Room left for what a size estimate may miss.
const SLACK_BYTES: usize = 64;
/// Slack refuses a section whose text exceeds 3000 characters; bytes bound characters.
pub(crate) const SECTION_BYTES: usize = 3000;
/// What a section adds around its text, spread over the lines it holds (several: a
/// digest line is at most a few hundred bytes).
pub(crate) const SECTION_COST_PER_LINE: usize = 12;
/// The notification text of a message with blocks.
const FALLBACK_BYTES: usize = 150;

/// Renders message bodies (the JSON sent to the webhook).
pub(crate) struct Renderer {
    msg_type: MsgType,
    /// `<!here> <@U…>`, put at the top of every message.
    mentions: String,
    look: Look,
}

/// Slack's mrkdwn escapes: `&`, `<` and `>` start entities, links and mentions.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Renderer {
    /// A renderer for `config`; reads `template_file` and compiles the template.
    pub(crate) fn new(config: &SlackConfig) -> Result<Self> {
        let mentions: Vec<String> = config.mention.iter().filter_map(|m| mention(m)).collect();
        Ok(Renderer { msg_type: config.msg_type, mentions: mentions.join(" "), look: config.chat.look(&[])? })
    }

    /// The zone times are shown in.
    pub(crate) fn tz_name(&self) -> &str {
        self.look.zone.name()
    }

    /// Labels (bold) and mentions, each on a line, to open a message.
    fn head(&self) -> String {
        let mut head = String::new();
        for label in self.look.labels.iter().filter(|l| !l.trim().is_empty()) {
            writeln!(head, "*{}*", escape(label)).expect("writing to a String");
        }
        if !self.mentions.is_empty() {
            writeln!(head, "{}", self.mentions).expect("writing to a String");
        }
        head
    }

    /// The body of a message about one alert within `max_bytes`, its section within
    /// Slack's limit (the event's message is cut, never the alert).
    pub(crate) fn single(&self, alert: Alert<'_>, max_bytes: usize) -> String {
        let mut limit = alert.event.message.len();
        loop {
            let (text, body) = with_message_cut(alert, limit, |alert| self.single_body(alert));
            let over = (body.len() > max_bytes).then_some((body.len(), max_bytes)).or_else(|| {
                (self.msg_type == MsgType::Blocks && text.len() > SECTION_BYTES).then_some((text.len(), SECTION_BYTES))
            });
            let Some((size, max)) = over.filter(|_| limit > 0) else { return body };
            // Shrink in proportion: escaping makes the body grow faster than the message.
            let scaled = limit * max.saturating_sub(SLACK_BYTES) / size;
            limit = scaled.min(limit - 1);
        }
    }

    fn single_body(&self, alert: Alert<'_>) -> (String, String) {
        let text = self.look.text(alert, &[], "Slack", |alert| self.layout(alert));
        let ev = alert.event;
        let obj = &ev.involved_object;
        let fallback = format!("{} {} {}: {}", ev.level, obj.kind, obj.name, ev.reason);
        let body = self.body(&fallback, std::slice::from_ref(&text));
        (text, body)
    }

    /// `*Warning* Pod `shop/web-1`: *BackOff*`, the message quoted, then count, time and node.
    fn layout(&self, Alert { event: ev, count }: Alert<'_>) -> String {
        let obj = &ev.involved_object;
        let mut out = self.head();
        let w = &mut out;
        write!(w, "*{}* {} `", ev.level, escape(&obj.kind)).expect("writing to a String");
        if !obj.namespace.is_empty() {
            write!(w, "{}/", escape(&obj.namespace)).expect("writing to a String");
        }
        writeln!(w, "{}`: *{}*", escape(&obj.name), escape(&ev.reason)).expect("writing to a String");
        for line in ev.message.trim().lines() {
            writeln!(w, "> {}", escape(line)).expect("writing to a String");
        }
        let mut facts = vec![self.look.zone.long(ev)];
        if count > 1 {
            facts.insert(0, format!("Count: {count}"));
        }
        if !ev.source.host.is_empty() {
            facts.push(format!("Node: {}", escape(&ev.source.host)));
        }
        write!(w, "{}", facts.join(" · ")).expect("writing to a String");
        out
    }

    /// One line of a digest: level, kind, namespace/name, reason, count, time, message.
    pub(crate) fn digest_line(&self, alert: Alert<'_>) -> String {
        let Alert { event: ev, count } = alert;
        let obj = &ev.involved_object;
        let message = alert.line_message();
        let mut line = format!("• *{}* {} ", ev.level, escape(&obj.kind));
        if !obj.namespace.is_empty() {
            write!(line, "{}/", escape(&obj.namespace)).expect("writing to a String");
        }
        write!(
            line,
            "{} *{}* (x{count}, {}): {}",
            escape(&obj.name),
            escape(&ev.reason),
            self.look.zone.short(ev),
            escape(&message)
        )
        .expect("writing to a String");
        line
    }

    /// A digest message listing `digest.lines`, in sections under Slack's limit.
    pub(crate) fn digest(&self, digest: Digest<'_>) -> String {
        let lines = digest.lines;
        let span = digest.span();
        let mut sections = vec![format!("{}*{span}* (times in {})", self.head(), self.look.zone.name())];
        let mut current = String::new();
        for line in lines {
            if !current.is_empty() && current.len() + 1 + line.len() > SECTION_BYTES {
                sections.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(line);
        }
        if !current.is_empty() {
            sections.push(current);
        }
        self.body(&span, &sections)
    }

    fn body(&self, fallback: &str, sections: &[String]) -> String {
        let body = match self.msg_type {
            MsgType::Text => json!({ "text": sections.join("\n") }),
            MsgType::Blocks => {
                let blocks: Vec<Value> = sections
                    .iter()
                    .map(|text| json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } }))
                    .collect();
                json!({ "text": truncate(fallback, FALLBACK_BYTES), "blocks": blocks })
            }
        };
        body.to_string()
    }
}

#[cfg(test)]
mod tests {
    use eventer_alert::ChatConfig;
    use eventer_core::Event;

    use super::*;

    fn event(message: &str) -> Event {
        let t = "2024-01-01T00:00:00Z".parse().unwrap();
        Event::builder()
            .warning()
            .kind("Pod")
            .object("shop", "web-1")
            .reason("BackOff")
            .message(message)
            .at(t, t)
            .build()
    }

    fn renderer(msg_type: MsgType) -> Renderer {
        let mut config = SlackConfig::new("https://h/services/x").msg_type(msg_type).label("prod").timezone("UTC");
        config.mention = vec!["here".into()];
        Renderer::new(&config).unwrap()
    }

    #[test]
    fn one_alert_is_one_section_of_escaped_mrkdwn() {
        let ev = event("probe <failed> & restarting");
        let body: Value =
            serde_json::from_str(&renderer(MsgType::Blocks).single(Alert { event: &ev, count: 3 }, 12_000)).unwrap();
        assert_eq!(body["text"], "Warning Pod web-1: BackOff");
        let text = body["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(
            text,
            "*prod*\n<!here>\n*Warning* Pod `shop/web-1`: *BackOff*\n> probe &lt;failed&gt; &amp; restarting\n\
             Count: 3 · 2024-01-01 00:00:00 +0000 UTC"
        );
        let body: Value =
            serde_json::from_str(&renderer(MsgType::Text).single(Alert { event: &ev, count: 1 }, 12_000)).unwrap();
        assert!(body.get("blocks").is_none() && body["text"].as_str().unwrap().contains("*BackOff*"));
    }

    #[test]
    fn a_long_message_is_cut_to_fit_a_section() {
        let ev = event(&"x".repeat(10_000));
        let body: Value =
            serde_json::from_str(&renderer(MsgType::Blocks).single(Alert { event: &ev, count: 1 }, 12_000)).unwrap();
        let text = body["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(text.len() <= SECTION_BYTES && text.contains("*BackOff*"), "{}", text.len());
    }

    #[test]
    fn digests_split_into_sections_under_the_limit() {
        let ev = event("Back-off restarting failed container");
        let r = renderer(MsgType::Blocks);
        let line = r.digest_line(Alert { event: &ev, count: 2 });
        assert_eq!(
            line,
            "• *Warning* Pod shop/web-1 *BackOff* (x2, 2024-01-01 00:00:00): Back-off restarting failed container"
        );
        let lines = vec![line; 100];
        let body: Value = serde_json::from_str(&r.digest(Digest { lines: &lines, first: 1, total: 100 })).unwrap();
        let blocks = body["blocks"].as_array().unwrap();
        assert!(blocks.len() > 2);
        assert!(blocks.iter().all(|b| b["text"]["text"].as_str().unwrap().len() <= SECTION_BYTES));
        let listed: usize = blocks.iter().map(|b| b["text"]["text"].as_str().unwrap().matches("• ").count()).sum();
        assert_eq!(listed, 100);
        assert_eq!(body["text"], "100 Kubernetes events");
    }
}
