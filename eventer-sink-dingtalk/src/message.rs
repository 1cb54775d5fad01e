//! Message bodies: kube-eventer's text and markdown layouts, the user template, and
//! digests that list many alerts in one message.

use std::fmt::Write as _;

use eventer_alert::{Alert, Digest, Look, fit_one};
use eventer_core::{Event, Result};
use serde::Serialize;

use crate::config::{DingTalkConfig, MsgType};

const ACK_CONSOLE: &str = "https://cs.console.aliyun.com/#/k8s";

/// Renders message bodies (the JSON sent to the robot).
pub(crate) struct Renderer {
    msg_type: MsgType,
    cluster_id: Option<String>,
    region: Option<String>,
    at_mobiles: Vec<String>,
    at_user_ids: Vec<String>,
    at_all: bool,
    /// `@…` text DingTalk needs in the body for the `at` list to notify.
    at_text: String,
    look: Look,
}

#[derive(Serialize)]
struct Body<'a> {
    msgtype: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<Text<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    markdown: Option<Markdown<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<At<'a>>,
}

#[derive(Serialize)]
struct Text<'a> {
    content: &'a str,
}

#[derive(Serialize)]
struct Markdown<'a> {
    title: &'a str,
    text: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct At<'a> {
    at_mobiles: &'a [String],
    at_user_ids: &'a [String],
    is_at_all: bool,
}

impl Renderer {
    /// A renderer for `config`; reads `template_file` and compiles the template.
    pub(crate) fn new(config: &DingTalkConfig) -> Result<Self> {
        let vars = template_vars(config.cluster_id.as_deref(), config.region.as_deref());
        let look = config.chat.look(&vars)?;
        let mut at_text = String::new();
        for who in config.at_mobiles.iter().chain(&config.at_user_ids) {
            write!(at_text, "@{who} ").expect("writing to a String");
        }
        if config.at_all {
            at_text.push_str("@all");
        }
        Ok(Renderer {
            msg_type: config.msg_type,
            cluster_id: config.cluster_id.clone(),
            region: config.region.clone(),
            at_mobiles: config.at_mobiles.clone(),
            at_user_ids: config.at_user_ids.clone(),
            at_all: config.at_all,
            at_text: at_text.trim_end().to_owned(),
            look,
        })
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
        let vars = template_vars(self.cluster_id.as_deref(), self.region.as_deref());
        let text = self.look.text(alert, &vars, "DingTalk", |alert| self.layout(alert));
        let title = self.title("Event");
        self.body(&title, text)
    }

    fn layout(&self, alert: Alert<'_>) -> String {
        match self.msg_type {
            MsgType::Text => self.look.kube_eventer_text(alert),
            MsgType::Markdown => self.markdown_layout(alert),
        }
    }

    /// kube-eventer's markdown layout, with ACK console links only when both `cluster_id`
    /// and `region` are known (kube-eventer linked even without them).
    fn markdown_layout(&self, Alert { event: ev, count }: Alert<'_>) -> String {
        let mut out = String::with_capacity(512 + ev.message.len());
        let w = &mut out;
        for (i, label) in self.look.labels.iter().enumerate() {
            if !label.trim().is_empty() {
                write!(w, "label[{i}]: **{label}**\n\n").expect("writing to a String");
            }
        }
        let console = self.cluster_id.as_deref().zip(self.region.as_deref());
        let host = &ev.source.host;
        if !host.is_empty() {
            match (console, ecs_instance(host)) {
                (Some(_), Some((region, instance))) => write!(
                    w,
                    "Node: [{host}](https://ecs.console.aliyun.com/#/server/{instance}/detail?regionId={region}) \n\n"
                ),
                _ => write!(w, "Node: **{host}** \n\n"),
            }
            .expect("writing to a String");
        }
        write!(w, "Level: **{}** \n\nKind: **{}** \n\n", ev.level, ev.involved_object.kind)
            .expect("writing to a String");
        match console {
            Some(_) => write!(w, "Namespace: [{}]({ACK_CONSOLE}/namespace) \n\n", ev.namespace),
            None => write!(w, "Namespace: {} \n\n", ev.namespace),
        }
        .expect("writing to a String");
        match console.and_then(|(cluster, region)| console_link(ev, cluster, region)) {
            Some(link) => write!(w, "Name: [{}]({link}) \n\n", ev.name),
            None => write!(w, "Name: {} \n\n", ev.name),
        }
        .expect("writing to a String");
        write!(w, "Reason: **{}** \n\n", ev.reason).expect("writing to a String");
        if count > 1 {
            write!(w, "Count: **{count}** \n\n").expect("writing to a String");
        }
        write!(w, "Timestamp: **{}** \n\nMessage: **{}**", self.time(ev), ev.message).expect("writing to a String");
        out
    }

    /// One line of a digest: level, kind, namespace/name, reason, count, time, message.
    pub(crate) fn digest_line(&self, alert: Alert<'_>) -> String {
        let Alert { event: ev, count } = alert;
        let obj = &ev.involved_object;
        let namespace = if obj.namespace.is_empty() { &ev.namespace } else { &obj.namespace };
        let message = alert.line_message();
        let time = self.look.zone.short(ev);
        let mut line = String::with_capacity(96 + message.len());
        let w = &mut line;
        match self.msg_type {
            MsgType::Text => write!(w, "- {} {} ", ev.level, obj.kind),
            MsgType::Markdown => write!(w, "- **{}** {} ", ev.level, obj.kind),
        }
        .expect("writing to a String");
        if !namespace.is_empty() && !obj.namespace.is_empty() {
            write!(w, "{namespace}/").expect("writing to a String");
        }
        match self.msg_type {
            MsgType::Text => write!(w, "{} {} (x{count}, {time}): {message}", obj.name, ev.reason),
            MsgType::Markdown => write!(w, "{} **{}** (x{count}, {time}): {message}", obj.name, ev.reason),
        }
        .expect("writing to a String");
        line
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
                for (i, label) in self.look.labels.iter().enumerate() {
                    if !label.trim().is_empty() {
                        write!(text, "label[{i}]: **{label}**\n\n").expect("writing to a String");
                    }
                }
                write!(text, "#### {span}\n\n").expect("writing to a String");
            }
        }
        for line in shown {
            text.push_str(line);
            text.push('\n');
        }
        if self.msg_type == MsgType::Markdown {
            write!(text, "\nTimes in {}.", self.look.zone.name()).expect("writing to a String");
        }
        let title = self.title(&span);
        self.body(&title, text.trim_end().to_owned())
    }

    fn title(&self, what: &str) -> String {
        match &self.cluster_id {
            Some(id) if what == "Event" => format!("Kubernetes(ID:{id}) Event"),
            Some(id) => format!("Kubernetes(ID:{id}): {what}"),
            None if what == "Event" => "Kubernetes Event".to_owned(),
            None => what.to_owned(),
        }
    }

    /// The JSON body around `text`, with the `at` list and its `@` text.
    fn body(&self, title: &str, mut text: String) -> String {
        if !self.at_text.is_empty() {
            text.push_str(if self.msg_type == MsgType::Markdown { "\n\n" } else { "\n" });
            text.push_str(&self.at_text);
        }
        let at = (!self.at_text.is_empty()).then_some(At {
            at_mobiles: &self.at_mobiles,
            at_user_ids: &self.at_user_ids,
            is_at_all: self.at_all,
        });
        let body = match self.msg_type {
            MsgType::Text => Body { msgtype: "text", text: Some(Text { content: &text }), markdown: None, at },
            MsgType::Markdown => {
                Body { msgtype: "markdown", text: None, markdown: Some(Markdown { title, text: &text }), at }
            }
        };
        // Strings and flags only: serialisation cannot fail.
        serde_json::to_string(&body).expect("message bodies serialise")
    }

    /// `2006-01-02 15:04:05 -0700 MST`, as kube-eventer's markdown (Go's `Time.String`).
    fn time(&self, ev: &Event) -> String {
        self.look.zone.long(ev)
    }
}

/// The template variables of this sink, beyond the engine's.
fn template_vars<'a>(cluster_id: Option<&'a str>, region: Option<&'a str>) -> [(&'static str, &'a str); 2] {
    [("cluster_id", cluster_id.unwrap_or_default()), ("region", region.unwrap_or_default())]
}

/// `cn-hangzhou.i-bp1…` → (`cn-hangzhou`, `i-bp1…`): ACK's node names for ECS instances.
fn ecs_instance(host: &str) -> Option<(&str, &str)> {
    let (region, instance) = host.split_once('.')?;
    (instance.starts_with("i-") && !instance.contains('.') && region.contains('-')).then_some((region, instance))
}

/// The ACK console page of the involved object, for the kinds kube-eventer links.
fn console_link(ev: &Event, cluster: &str, region: &str) -> Option<String> {
    let obj = &ev.involved_object;
    // kube-eventer cut the Event's name at the first dot; the object's own name is exact.
    let name = if obj.name.is_empty() { ev.name.split('.').next().unwrap_or_default() } else { &obj.name };
    let ns = &ev.namespace;
    Some(match obj.kind.as_str() {
        "Deployment" | "StatefulSet" | "DaemonSet" => {
            format!("{ACK_CONSOLE}/{}/detail/{region}/{cluster}/{ns}/{name}/pods", obj.kind.to_ascii_lowercase())
        }
        "Pod" => format!("{ACK_CONSOLE}/pod/{cluster}/{ns}/{name}/container"),
        "CronJob" => format!("{ACK_CONSOLE}/cronjob/detail/{region}/{cluster}/{ns}/{name}/jobs"),
        "Service" => format!("{ACK_CONSOLE}/service/detail/{region}/{cluster}/{ns}/{name}"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecs_links_only_for_instance_names() {
        assert_eq!(ecs_instance("cn-shenzhen.i-wz9abc"), Some(("cn-shenzhen", "i-wz9abc")));
        assert_eq!(ecs_instance("10.0.0.1"), None);
        assert_eq!(ecs_instance("node-1"), None);
    }
}
