//! [`DingTalkConfig`]: the sink's settings, from serde or from kube-eventer's URI options.

use eventer_alert::{AlertConfig, ChatConfig, ChatSettings};
use eventer_core::{Result, config::Secret};
use serde::{Deserialize, Serialize};

use crate::{error::DingTalkError, sink::Robot};

/// DingTalk's robot endpoint, used when the URI gives none.
pub const DEFAULT_WEBHOOK: &str = "https://oapi.dingtalk.com/robot/send";

/// The message type of single-alert messages and digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MsgType {
    /// Plain text (kube-eventer's default).
    #[default]
    Text,
    /// DingTalk markdown, with ACK console links when `cluster_id` and `region` are set.
    Markdown,
}

/// Case-insensitive, as kube-eventer reads `msg_type`.
impl std::str::FromStr for MsgType {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(MsgType::Text),
            "markdown" => Ok(MsgType::Markdown),
            _ => Err(format!("`{s}` is not text or markdown")),
        }
    }
}

eventer_core::impl_deserialize_from_str!(MsgType);

/// Settings of the DingTalk sink.
///
/// From a kube-eventer URI (`--sink=dingtalk:<webhook>?access_token=…&label=…`) or a
/// config file's options, see [`ChatConfig::from_options`]: the URI's target is the webhook
/// (made https unless on loopback, as kube-eventer does), else the `webhook` option, else
/// DingTalk's; `access_token` is required. Or deserialize the sink's own fields (unknown
/// fields are refused). The token and the signing secret are [`Secret`]s, which no `Debug`
/// shows. What every chat sink shares (labels, template, time zone, timeout) is in `chat`,
/// the alert engine's settings in `alert`; the builder methods of [`ChatConfig`] set them.
///
/// ```
/// use eventer_sink_dingtalk::{DingTalkConfig, MsgType};
/// let config: DingTalkConfig = serde_json::from_str(r#"{
///     "access_token": "t0k", "sign": "SECxyz", "msg_type": "markdown"
/// }"#)?;
/// assert_eq!(config.msg_type, MsgType::Markdown);
/// assert_eq!(config.alert.budget, 18);
/// assert!(!format!("{config:?}").contains("t0k"));
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// ```
/// use eventer_core::uri::ComponentUri;
/// use eventer_sink_dingtalk::{ChatConfig, DingTalkConfig};
/// let uri: ComponentUri = "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=t0k&label=a&label=b&at_all=true&budget=10".parse()?;
/// let config = DingTalkConfig::from_options(uri.target(), &mut uri.options())?;
/// assert_eq!(config.chat.labels, ["a", "b"]);
/// assert!(config.at_all);
/// assert_eq!(config.alert.budget, 10);
/// # Ok::<(), eventer_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DingTalkConfig {
    /// Robot endpoint without query, used as given (http or https; the URI's target is
    /// made https unless on loopback, as kube-eventer does). Default
    /// `https://oapi.dingtalk.com/robot/send`.
    #[serde(default)]
    pub webhook: Option<String>,
    /// The robot's `access_token` (required).
    pub access_token: Secret,
    /// The `加签` secret (`SEC…`); when set every request is signed.
    #[serde(default)]
    pub sign: Option<Secret>,
    /// `text` (default) or `markdown`.
    #[serde(default)]
    pub msg_type: MsgType,
    /// ACK cluster id: the markdown title, and with `region` the console links.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// Alibaba Cloud region of the cluster, for the console links.
    #[serde(default)]
    pub region: Option<String>,
    /// Mobile numbers to @ (`at_mobiles=138…,139…`); `@<mobile>` is added to the body.
    #[serde(default, deserialize_with = "eventer_core::config::comma_list")]
    pub at_mobiles: Vec<String>,
    /// DingTalk user ids to @ (`at_user_ids=`); `@<id>` is added to the body.
    #[serde(default, deserialize_with = "eventer_core::config::comma_list")]
    pub at_user_ids: Vec<String>,
    /// @ everyone in the group (`at_all=true`); `@all` is added to the body.
    #[serde(default)]
    pub at_all: bool,
    /// Largest request body in bytes (DingTalk refuses messages over 20000). Default 20000.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Labels, the template for the body of single-alert messages (see the crate docs for
    /// the variables; default kube-eventer's layout), time zone, timeout.
    #[serde(skip)]
    pub chat: ChatSettings,
    /// Grouping, repeats and the message budget: the alert engine's options
    /// (`group_wait`, `group_interval`, `repeat_interval`, `budget`, `budget_window`),
    /// whose defaults suit DingTalk's 20 messages a minute.
    #[serde(skip)]
    pub alert: AlertConfig,
}

fn default_max_bytes() -> usize {
    20_000
}

/// The smallest body limit that still fits one alert with a useful message.
const MIN_MAX_BYTES: usize = 2_000;

impl DingTalkConfig {
    /// A config for the robot at `webhook` with `access_token`, everything else default.
    pub fn new(webhook: impl Into<String>, access_token: impl Into<Secret>) -> Self {
        DingTalkConfig {
            webhook: Some(webhook.into()),
            access_token: access_token.into(),
            sign: None,
            msg_type: MsgType::Text,
            cluster_id: None,
            region: None,
            at_mobiles: Vec::new(),
            at_user_ids: Vec::new(),
            at_all: false,
            max_bytes: default_max_bytes(),
            chat: ChatSettings::default(),
            alert: AlertConfig::default(),
        }
    }

    /// Sign requests with this `SEC…` secret.
    #[must_use]
    pub fn sign(mut self, secret: impl Into<Secret>) -> Self {
        self.sign = Some(secret.into());
        self
    }

    /// Send `msg_type` messages.
    #[must_use]
    pub fn msg_type(mut self, msg_type: MsgType) -> Self {
        self.msg_type = msg_type;
        self
    }

    /// The robot endpoint.
    pub fn webhook(&self) -> &str {
        self.webhook.as_deref().unwrap_or(DEFAULT_WEBHOOK)
    }
}

/// The URI's target is the robot endpoint.
impl ChatConfig for DingTalkConfig {
    type Service = Robot;

    fn chat_mut(&mut self) -> &mut ChatSettings {
        &mut self.chat
    }
    fn alert_config(&self) -> &AlertConfig {
        &self.alert
    }
    fn alert_mut(&mut self) -> &mut AlertConfig {
        &mut self.alert
    }

    fn complete(&mut self, target: &str) -> Result<()> {
        // kube-eventer sends to `https://<host><path>` whatever the URI's scheme.
        eventer_alert::target_or_option(target, &mut self.webhook, "webhook", "the robot", |t| {
            Ok(eventer_alert::https_unless_loopback(t))
        })
    }

    /// Check values that serde or the URI parser cannot.
    ///
    /// # Errors
    /// A configuration error naming the field.
    fn validate(&self) -> Result<()> {
        let fail = |m: &str| Err(DingTalkError::config(m.to_owned()).into());
        if self.access_token.is_empty() {
            return fail("missing required option access_token");
        }
        if url::Url::parse(self.webhook()).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
            return fail("the webhook must be an http(s) URL such as https://oapi.dingtalk.com/robot/send");
        }
        self.alert.validate()?;
        if self.max_bytes < MIN_MAX_BYTES {
            return fail(&format!("option max_bytes: must be at least {MIN_MAX_BYTES}"));
        }
        self.chat.validate()
    }

    fn service(&self) -> Result<Robot> {
        Robot::new(self)
    }

    fn zone_name(robot: &Robot) -> &str {
        robot.zone_name()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use eventer_core::uri::ComponentUri;

    use super::*;

    fn parse(uri: &str) -> Result<DingTalkConfig> {
        let uri: ComponentUri = uri.parse()?;
        DingTalkConfig::from_options(uri.target(), &mut uri.options())
    }

    #[test]
    fn kube_eventer_uri() {
        let c = parse(
            "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=t0k&label=c1&label=c%25d&sign=SECabc\
             &msg_type=markdown&cluster_id=c123&region=cn-hangzhou&at_mobiles=138,139&at_user_ids=u1\
             &timezone=Asia/Shanghai&group_wait=500ms&repeat_interval=30m&budget=10",
        )
        .unwrap();
        assert_eq!(c.webhook(), "https://oapi.dingtalk.com/robot/send");
        assert_eq!(c.access_token.expose(), "t0k");
        assert_eq!(c.sign.as_ref().map(Secret::expose), Some("SECabc"));
        assert_eq!(c.chat.labels, ["c1", "c%d"]);
        assert_eq!(c.msg_type, MsgType::Markdown);
        assert_eq!((c.cluster_id.as_deref(), c.region.as_deref()), (Some("c123"), Some("cn-hangzhou")));
        assert_eq!(c.at_mobiles, ["138", "139"]);
        assert_eq!(c.at_user_ids, ["u1"]);
        assert_eq!(c.alert.group_wait, Duration::from_millis(500));
        assert_eq!(c.alert.group_interval, Duration::from_secs(2));
        assert_eq!(c.alert.repeat_interval, Duration::from_secs(1800));
        assert_eq!(c.alert.budget, 10);
        // Defaults.
        let c = parse("dingtalk:?access_token=x").unwrap();
        assert_eq!(c.webhook(), DEFAULT_WEBHOOK);
        assert_eq!((c.msg_type, c.alert.budget, c.max_bytes), (MsgType::Text, 18, 20_000));
    }

    #[test]
    fn errors_name_the_option() {
        let err = |u: &str| parse(u).unwrap_err().to_string();
        assert_eq!(err("dingtalk:https://h/robot/send?label=x"), "missing required option access_token");
        assert_eq!(
            err("dingtalk:https://h/r?access_token=x&msg_type=card"),
            "option msg_type: `card` is not text or markdown"
        );
        assert_eq!(err("dingtalk:https://h/r?access_token=x&budget=0"), "option budget: must be at least 1");
        assert_eq!(err("dingtalk:https://h/r?access_token=x&at_all=maybe"), "option at_all: invalid boolean `maybe`");
        assert_eq!(err("dingtalk:https://h/r?access_token=x&max_bytes=10"), "option max_bytes: must be at least 2000");
        assert!(err("dingtalk:ftp://h/r?access_token=x").starts_with("the webhook must be an http(s) URL"));
        assert!(
            err("dingtalk:https://h/r?access_token=x&group_wait=soon")
                .starts_with("option group_wait: invalid duration")
        );
    }

    #[test]
    fn webhooks_are_https_as_in_kube_eventer_but_on_loopback() {
        let webhook = |u: &str| parse(u).unwrap().webhook().to_owned();
        assert_eq!(webhook("dingtalk:oapi.dingtalk.com/robot/send?access_token=x"), DEFAULT_WEBHOOK);
        assert_eq!(webhook("dingtalk:http://oapi.dingtalk.com/robot/send?access_token=x"), DEFAULT_WEBHOOK);
        assert_eq!(
            webhook("dingtalk:http://127.0.0.1:8080/robot/send?access_token=x"),
            "http://127.0.0.1:8080/robot/send"
        );
        assert_eq!(webhook("dingtalk:http://localhost/r?access_token=x"), "http://localhost/r");
        assert_eq!(webhook("dingtalk:http://[::1]:9/r?access_token=x"), "http://[::1]:9/r");
    }

    #[test]
    fn typed_values_and_secret_free_debug() {
        let c: DingTalkConfig = serde_json::from_str(
            r#"{"webhook":"http://127.0.0.1:1/robot/send","access_token":"tok-SECRET","sign":"SECsecret-value",
                "at_all":true,"max_bytes":4000}"#,
        )
        .unwrap();
        let c = c.label("prod").timeout(Duration::from_secs(3));
        assert_eq!((c.webhook(), c.at_all, c.max_bytes), ("http://127.0.0.1:1/robot/send", true, 4000));
        let debug = format!("{c:?}");
        assert!(!debug.contains("tok-SECRET") && !debug.contains("SECsecret-value"), "{debug}");
        assert!(debug.contains("prod"));
        let err = serde_json::from_str::<DingTalkConfig>(r#"{"access_token":"x","lable":"typo"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `lable`"), "{err}");
        assert!(
            parse("dingtalk:https://h/r?access_token=x&webhook=https://other/r")
                .unwrap_err()
                .to_string()
                .starts_with("option webhook: the URI already names the robot")
        );
    }
}
