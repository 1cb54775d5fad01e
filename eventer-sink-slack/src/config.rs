//! [`SlackConfig`]: the sink's settings, from serde or from URI options.

use std::time::Duration;

use eventer_alert::{AlertConfig, ChatConfig, ChatSettings};
use eventer_core::{Result, config::Secret};
use serde::{Deserialize, Serialize};

use crate::{error::SlackError, sink::Webhook};

/// How messages are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MsgType {
    /// Block Kit sections of mrkdwn, with a plain `text` for notifications.
    #[default]
    Blocks,
    /// One mrkdwn `text`, no blocks.
    Text,
}

/// Case-insensitive; `mrkdwn` is `text`.
impl std::str::FromStr for MsgType {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "blocks" => Ok(MsgType::Blocks),
            "text" | "mrkdwn" => Ok(MsgType::Text),
            _ => Err(format!("`{s}` is not blocks or text")),
        }
    }
}

eventer_core::impl_deserialize_from_str!(MsgType);

/// Settings of the Slack sink.
///
/// From a URI (`--sink=slack:https://hooks.slack.com/services/T…/B…/X…?label=…`) or a
/// config file's options, see [`ChatConfig::from_options`] (the URI's target is the
/// webhook, else the `webhook` option); or deserialize the sink's own fields (unknown
/// fields are refused). The webhook is a [`Secret`] (its path is the credential), which no
/// `Debug` shows. What every chat sink shares (labels, template, time zone, timeout) is in
/// `chat`, the alert engine's settings in `alert`; the builder methods of [`ChatConfig`]
/// set them.
///
/// ```
/// use eventer_sink_slack::{MsgType, SlackConfig};
/// let config: SlackConfig = serde_json::from_str(r#"{
///     "webhook": "https://hooks.slack.com/services/T0/B0/s3cret", "msg_type": "text",
///     "mention": "here"
/// }"#)?;
/// assert_eq!((config.msg_type, config.mention.as_slice()), (MsgType::Text, ["here".to_owned()].as_slice()));
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// ```
/// use eventer_core::uri::ComponentUri;
/// use eventer_sink_slack::{ChatConfig, SlackConfig};
/// let uri: ComponentUri = "slack:https://hooks.slack.com/services/T0/B0/X0?label=prod&mention=here".parse()?;
/// let config = SlackConfig::from_options(uri.target(), &mut uri.options())?;
/// assert_eq!(config.chat.labels, ["prod"]);
/// assert_eq!((config.alert.budget, config.alert.budget_window.as_secs()), (3, 3));
/// # Ok::<(), eventer_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SlackConfig {
    /// The incoming webhook's URL, `https://hooks.slack.com/services/T…/B…/X…`; the URI's
    /// target when given there.
    #[serde(default)]
    pub webhook: Option<Secret>,
    /// `blocks` (default) or `text` (one mrkdwn text).
    #[serde(default)]
    pub msg_type: MsgType,
    /// Whom to notify in every message (`mention=here,U0123ABC`): `here`, `channel`,
    /// `everyone`, user ids (`U…`, `W…`) or user-group ids (`S…`).
    #[serde(default, deserialize_with = "eventer_core::config::comma_list")]
    pub mention: Vec<String>,
    /// Largest request body in bytes. Default 12000: a digest of about 60 alerts.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Labels, the template for the mrkdwn of single-alert messages, time zone, timeout.
    #[serde(skip)]
    pub chat: ChatSettings,
    /// Grouping, repeats and the message budget: the alert engine's options. The budget
    /// defaults to 3 messages per rolling 3 s: Slack's one a second, with short bursts.
    #[serde(skip)]
    pub alert: AlertConfig,
}

/// Slack's default budget: about one message a second, at most 3 at once.
pub const DEFAULT_BUDGET: (u32, Duration) = (3, Duration::from_secs(3));

fn default_max_bytes() -> usize {
    12_000
}

/// The smallest body limit that still fits one alert with a useful message.
const MIN_MAX_BYTES: usize = 2_000;
/// Slack cuts a message's text at 40000 characters.
const MAX_MAX_BYTES: usize = 40_000;

impl SlackConfig {
    /// A config for the webhook at `webhook`, everything else default.
    pub fn new(webhook: impl Into<Secret>) -> Self {
        SlackConfig {
            webhook: Some(webhook.into()),
            msg_type: MsgType::Blocks,
            mention: Vec::new(),
            max_bytes: default_max_bytes(),
            chat: ChatSettings::default(),
            alert: SlackConfig::default_alert(),
        }
    }

    /// Send `msg_type` messages.
    #[must_use]
    pub fn msg_type(mut self, msg_type: MsgType) -> Self {
        self.msg_type = msg_type;
        self
    }
}

/// The URI's target is the webhook; the budget defaults to Slack's.
impl ChatConfig for SlackConfig {
    type Service = Webhook;

    fn chat_mut(&mut self) -> &mut ChatSettings {
        &mut self.chat
    }
    fn alert_config(&self) -> &AlertConfig {
        &self.alert
    }
    fn alert_mut(&mut self) -> &mut AlertConfig {
        &mut self.alert
    }
    fn default_alert() -> AlertConfig {
        AlertConfig::default().budget(DEFAULT_BUDGET.0, DEFAULT_BUDGET.1)
    }

    fn complete(&mut self, target: &str) -> Result<()> {
        eventer_alert::target_or_option(target, &mut self.webhook, "webhook", "the webhook", |t| Ok(Secret::new(t)))
    }

    /// Check values that serde or the URI parser cannot.
    ///
    /// # Errors
    /// A configuration error naming the field; never showing the webhook.
    fn validate(&self) -> Result<()> {
        let fail = |m: &str| Err(SlackError::Config(m.to_owned()).into());
        let Some(webhook) = self.webhook.as_ref().filter(|w| !w.is_empty()) else {
            return fail("missing the webhook: slack:https://hooks.slack.com/services/T…/B…/X…");
        };
        check_webhook(webhook.expose()).or_else(|m| fail(&m))?;
        self.alert.validate()?;
        if !(MIN_MAX_BYTES..=MAX_MAX_BYTES).contains(&self.max_bytes) {
            return fail(&format!("option max_bytes: must be from {MIN_MAX_BYTES} to {MAX_MAX_BYTES}"));
        }
        self.chat.validate()?;
        if let Some(who) = self.mention.iter().find(|m| mention(m).is_none()) {
            return fail(&format!(
                "option mention: `{who}` is not here, channel, everyone, a user id (U…, W…) or a user-group id (S…)"
            ));
        }
        Ok(())
    }

    fn service(&self) -> Result<Webhook> {
        Webhook::new(self)
    }

    fn zone_name(hook: &Webhook) -> &str {
        hook.zone_name()
    }
}

/// The mrkdwn that notifies `who`: `<!here>`, `<@U…>`, `<!subteam^S…>`.
pub(crate) fn mention(who: &str) -> Option<String> {
    let who = who.trim_start_matches('@');
    let id = |s: &str| s.len() > 1 && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    match who {
        "here" | "channel" | "everyone" => Some(format!("<!{who}>")),
        _ if id(who) && (who.starts_with('U') || who.starts_with('W')) => Some(format!("<@{who}>")),
        _ if id(who) && who.starts_with('S') => Some(format!("<!subteam^{who}>")),
        _ => None,
    }
}

/// An https URL with a path (plain http only to a loopback stand-in: the path is the
/// credential). Messages never show the URL.
fn check_webhook(webhook: &str) -> std::result::Result<(), String> {
    let example = "such as https://hooks.slack.com/services/T…/B…/X…";
    let url = url::Url::parse(webhook)
        .map_err(|e| format!("the webhook is not a URL ({e}); give the whole webhook URL, {example}"))?;
    match url.scheme() {
        "https" => {}
        "http" if eventer_alert::is_loopback(&url) => {}
        "http" => return Err("the webhook must be https: its path is the credential".to_owned()),
        _ => return Err(format!("the webhook must be an https URL, {example}")),
    }
    if url.path().trim_matches('/').is_empty() {
        return Err(format!("the webhook has no path; give the whole webhook URL, {example}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use eventer_core::uri::ComponentUri;

    use super::*;

    fn parse(uri: &str) -> Result<SlackConfig> {
        let uri: ComponentUri = uri.parse()?;
        SlackConfig::from_options(uri.target(), &mut uri.options())
    }

    #[test]
    fn uri_options_and_defaults() {
        let c = parse(
            "slack:https://hooks.slack.com/services/T0/B0/X0?label=c1&label=c2&msg_type=mrkdwn&mention=here,U01ABC\
             &timezone=Asia/Shanghai&budget=1&repeat_interval=30m",
        )
        .unwrap();
        assert_eq!(c.webhook.as_ref().map(Secret::expose), Some("https://hooks.slack.com/services/T0/B0/X0"));
        assert_eq!(
            (c.chat.labels.as_slice(), c.msg_type),
            (["c1".to_owned(), "c2".to_owned()].as_slice(), MsgType::Text)
        );
        assert_eq!(c.mention, ["here", "U01ABC"]);
        assert_eq!((c.alert.budget, c.alert.budget_window), (1, Duration::from_secs(3)));
        assert_eq!(c.alert.repeat_interval, Duration::from_secs(1800));
        let c = parse("slack:https://hooks.slack.com/services/T0/B0/X0").unwrap();
        assert_eq!((c.msg_type, c.max_bytes), (MsgType::Blocks, 12_000));
        assert_eq!((c.alert.budget, c.alert.budget_window), DEFAULT_BUDGET);
    }

    #[test]
    fn errors_name_the_option_and_hide_the_webhook() {
        let err = |u: &str| parse(u).unwrap_err().to_string();
        assert!(err("slack:?label=x").starts_with("missing the webhook"));
        assert_eq!(err("slack:https://h/services/x?msg_type=card"), "option msg_type: `card` is not blocks or text");
        assert_eq!(err("slack:https://h/services/x?max_bytes=90000"), "option max_bytes: must be from 2000 to 40000");
        assert!(err("slack:https://h/services/x?mention=bob").starts_with("option mention: `bob` is not"));
        let plain = err("slack:http://hooks.slack.com/services/T0/B0/SECRET");
        assert!(plain.starts_with("the webhook must be https") && !plain.contains("SECRET"), "{plain}");
        assert!(err("slack:https://hooks.slack.com").starts_with("the webhook has no path"));
        assert!(parse("slack:http://[::1]:9/services/T/B/X").is_ok());
    }

    #[test]
    fn mentions() {
        assert_eq!(mention("here").as_deref(), Some("<!here>"));
        assert_eq!(mention("@channel").as_deref(), Some("<!channel>"));
        assert_eq!(mention("U01ABC").as_deref(), Some("<@U01ABC>"));
        assert_eq!(mention("S0GROUP").as_deref(), Some("<!subteam^S0GROUP>"));
        assert_eq!(mention("alice"), None);
    }
}
