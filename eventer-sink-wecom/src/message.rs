//! Message bodies: kube-eventer's text layout, a markdown layout, the user template, and
//! digests that list many alerts in one message — each within WeCom's content limit.

use std::fmt::Write as _;

use eventer_alert::{Alert, ChatSettings, Digest, Look, with_message_cut};
use eventer_core::Result;
use serde_json::{Value, json};

use crate::config::MsgType;

/// What surrounds the content in a request body.
pub(crate) enum Envelope {
    /// The group robot: whom to @.
    Robot { mentioned_list: Vec<String>, mentioned_mobile_list: Vec<String> },
    /// The app: receivers and agent id.
    App { to_user: String, to_party: String, to_tag: String, agent_id: i64 },
}

/// Renders request bodies (the JSON sent to WeCom).
pub(crate) struct Renderer {
    msg_type: MsgType,
    look: Look,
    envelope: Envelope,
}

impl Renderer {
    /// A renderer of `msg_type` messages in `envelope`; reads `template_file` and compiles
    /// the template.
    pub(crate) fn new(chat: &ChatSettings, msg_type: MsgType, envelope: Envelope) -> Result<Self> {
        Ok(Renderer { msg_type, look: chat.look(&[])?, envelope })
    }

    /// WeCom's limit on the content of this renderer's messages.
    pub(crate) fn max_bytes(&self) -> usize {
        self.msg_type.max_bytes()
    }

    /// The zone times are shown in.
    pub(crate) fn tz_name(&self) -> &str {
        self.look.zone.name()
    }

    /// The body of a message about one alert, its content within `max_bytes` (the
    /// event's message is cut, never the alert).
    pub(crate) fn single(&self, alert: Alert<'_>, max_bytes: usize) -> String {
        let mut limit = alert.event.message.len();
        loop {
            let content = with_message_cut(alert, limit, |alert| self.single_content(alert));
            if content.len() <= max_bytes || limit == 0 {
                return self.body(content);
            }
            let over = content.len() - max_bytes;
            limit = limit.saturating_sub(over.max(1));
        }
    }

    fn single_content(&self, alert: Alert<'_>) -> String {
        self.look.text(alert, &[], "WeCom", |alert| self.layout(alert))
    }

    fn layout(&self, alert: Alert<'_>) -> String {
        match self.msg_type {
            // kube-eventer's `wechat:` text.
            MsgType::Text => self.look.kube_eventer_text(alert),
            MsgType::Markdown => self.markdown_layout(alert),
        }
    }

    /// The same fields in WeCom markdown, the level coloured.
    fn markdown_layout(&self, Alert { event: ev, count }: Alert<'_>) -> String {
        let mut out = String::with_capacity(512 + ev.message.len());
        let w = &mut out;
        for label in self.look.labels.iter().filter(|l| !l.trim().is_empty()) {
            writeln!(w, "**{label}**").expect("writing to a String");
        }
        let colour = if ev.level.as_str() == "Warning" { "warning" } else { "info" };
        writeln!(w, "Level: <font color=\"{colour}\">{}</font>", ev.level).expect("writing to a String");
        writeln!(w, "Kind: {}\nNamespace: {}\nName: {}", ev.involved_object.kind, ev.namespace, ev.name)
            .expect("writing to a String");
        writeln!(w, "Reason: **{}**", ev.reason).expect("writing to a String");
        if count > 1 {
            writeln!(w, "Count: **{count}**").expect("writing to a String");
        }
        write!(w, "Timestamp: {}\nMessage: {}", self.look.zone.long(ev), ev.message).expect("writing to a String");
        out
    }

    /// One line of a digest: level, kind, namespace/name, reason, count, time, message.
    pub(crate) fn digest_line(&self, alert: Alert<'_>) -> String {
        let Alert { event: ev, count } = alert;
        let obj = &ev.involved_object;
        let message = alert.line_message();
        let time = self.look.zone.short(ev);
        let object =
            if obj.namespace.is_empty() { obj.name.to_string() } else { format!("{}/{}", obj.namespace, obj.name) };
        match self.msg_type {
            MsgType::Text => {
                format!("- {} {} {object} {} (x{count}, {time}): {message}", ev.level, obj.kind, ev.reason)
            }
            MsgType::Markdown => {
                format!("- **{}** {} {object} **{}** (x{count}, {time}): {message}", ev.level, obj.kind, ev.reason)
            }
        }
    }

    /// A digest message listing `digest.lines`; `first` numbers its first line within the
    /// `total` alerts pending.
    pub(crate) fn digest(&self, digest: Digest<'_>) -> String {
        let shown = digest.lines;
        let span = digest.span();
        let mut text = String::with_capacity(128 + shown.iter().map(|l| l.len() + 1).sum::<usize>());
        match self.msg_type {
            MsgType::Text => {
                for label in self.look.labels.iter().rev() {
                    text.push_str(label);
                    text.push('\n');
                }
                writeln!(text, "{span} (times in {}):", self.look.zone.name()).expect("writing to a String");
            }
            MsgType::Markdown => {
                for label in self.look.labels.iter().filter(|l| !l.trim().is_empty()) {
                    writeln!(text, "**{label}**").expect("writing to a String");
                }
                writeln!(text, "### {span}").expect("writing to a String");
            }
        }
        for line in shown {
            text.push_str(line);
            text.push('\n');
        }
        if self.msg_type == MsgType::Markdown {
            write!(text, "Times in {}.", self.look.zone.name()).expect("writing to a String");
        }
        self.body(text.trim_end().to_owned())
    }

    /// The JSON body around `content`.
    fn body(&self, content: String) -> String {
        let kind = self.msg_type.as_str();
        let mut part = json!({ "content": content });
        let mut body = match &self.envelope {
            Envelope::Robot { mentioned_list, mentioned_mobile_list } => {
                // Robot markdown has no mention lists: WeCom shows none of them.
                if self.msg_type == MsgType::Text {
                    if !mentioned_list.is_empty() {
                        part["mentioned_list"] = json!(mentioned_list);
                    }
                    if !mentioned_mobile_list.is_empty() {
                        part["mentioned_mobile_list"] = json!(mentioned_mobile_list);
                    }
                }
                json!({ "msgtype": kind })
            }
            Envelope::App { to_user, to_party, to_tag, agent_id } => {
                let mut body = json!({ "msgtype": kind, "agentid": agent_id });
                for (key, value) in [("touser", to_user), ("toparty", to_party), ("totag", to_tag)] {
                    if !value.is_empty() {
                        body[key] = Value::from(value.as_str());
                    }
                }
                body
            }
        };
        body[kind] = part;
        body.to_string()
    }
}
