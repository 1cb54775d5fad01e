//! The settings of the two sinks: [`WeComConfig`] (the group robot) and [`WeChatConfig`]
//! (kube-eventer's WeCom app), and what they share.

use eventer_alert::{AlertConfig, ChatConfig, ChatSettings, https_unless_loopback, target_or_option};
use eventer_core::{Result, config::Secret};
use serde::Deserialize;

use crate::{
    error::WeComError,
    sink::{App, Robot},
};

/// WeCom's API origin, used when `wechat:` names no `endpoint`.
pub const DEFAULT_ENDPOINT: &str = "https://qyapi.weixin.qq.com";
/// The group robot's endpoint, used when `wecom:` names no webhook.
pub const DEFAULT_WEBHOOK: &str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send";

/// The message type of single-alert messages and digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MsgType {
    /// Plain text, at most 2048 bytes (kube-eventer's layout).
    #[default]
    Text,
    /// WeCom markdown, at most 4096 bytes.
    Markdown,
}

impl MsgType {
    /// WeCom's limit on the message's content, in bytes.
    pub fn max_bytes(self) -> usize {
        match self {
            MsgType::Text => 2048,
            MsgType::Markdown => 4096,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MsgType::Text => "text",
            MsgType::Markdown => "markdown",
        }
    }
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

/// Settings of the `wecom:` group-robot sink.
///
/// ```
/// use eventer_core::uri::ComponentUri;
/// use eventer_sink_wecom::{ChatConfig, MsgType, WeComConfig};
/// let uri: ComponentUri = "wecom:https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K3Y\
///     &msg_type=markdown&mentioned_list=ops,@all&label=prod".parse()?;
/// let config = WeComConfig::from_options(uri.target(), &mut uri.options())?;
/// assert_eq!(config.msg_type, MsgType::Markdown);
/// assert_eq!(config.mentioned_list, ["ops", "@all"]);
/// assert!(!format!("{config:?}").contains("K3Y"));
/// # Ok::<(), eventer_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WeComConfig {
    /// Robot endpoint without query (the URI's target); default WeCom's.
    #[serde(default)]
    pub webhook: Option<String>,
    /// The robot's `key` (required): the only credential of a WeCom robot.
    pub key: Secret,
    /// WeCom user ids to @ (`mentioned_list=ops,@all`).
    #[serde(default, deserialize_with = "eventer_core::config::comma_list")]
    pub mentioned_list: Vec<String>,
    /// Mobile numbers to @ (`mentioned_mobile_list=138…`); text messages only.
    #[serde(default, deserialize_with = "eventer_core::config::comma_list")]
    pub mentioned_mobile_list: Vec<String>,
    /// `text` (default) or `markdown`.
    #[serde(default)]
    pub msg_type: MsgType,
    /// Labels, the template for the content of single-alert messages, time zone, timeout.
    #[serde(skip)]
    pub chat: ChatSettings,
    /// Grouping, repeats and the message budget (the alert engine's options); the
    /// defaults (18 a minute) suit the robot's 20.
    #[serde(skip)]
    pub alert: AlertConfig,
}

/// Settings of the `wechat:` sink: kube-eventer's WeCom app.
///
/// ```
/// use eventer_core::uri::ComponentUri;
/// use eventer_sink_wecom::{ChatConfig, WeChatConfig};
/// let uri: ComponentUri = "wechat:?corp_id=ww1&corp_secret=S3CRET&agent_id=1000002&to_user=ops,dev".parse()?;
/// let config = WeChatConfig::from_options(uri.target(), &mut uri.options())?;
/// assert_eq!((config.agent_id, config.to_user.join("|")), (1000002, "ops|dev".to_owned()));
/// assert_eq!(config.endpoint(), "https://qyapi.weixin.qq.com");
/// assert!(!format!("{config:?}").contains("S3CRET"));
/// # Ok::<(), eventer_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WeChatConfig {
    /// WeCom's API origin, for private deployments. Default `https://qyapi.weixin.qq.com`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The corp id (`ww…`), required.
    pub corp_id: String,
    /// The app's secret, required.
    pub corp_secret: Secret,
    /// The app's agent id, required.
    pub agent_id: i64,
    /// Receivers' user ids (`to_user=a,b`); default `@all`.
    #[serde(default, deserialize_with = "eventer_core::config::comma_list")]
    pub to_user: Vec<String>,
    /// Receiving departments' ids (`to_party=1,2`).
    #[serde(default, deserialize_with = "eventer_core::config::comma_list")]
    pub to_party: Vec<String>,
    /// Receiving tags' ids (`to_tag=1,2`).
    #[serde(default, deserialize_with = "eventer_core::config::comma_list")]
    pub to_tag: Vec<String>,
    /// `text` (default) or `markdown`.
    #[serde(default)]
    pub msg_type: MsgType,
    /// Labels, the template for the content of single-alert messages, time zone, timeout.
    #[serde(skip)]
    pub chat: ChatSettings,
    /// Grouping, repeats and the message budget (the alert engine's options).
    #[serde(skip)]
    pub alert: AlertConfig,
}

fn http_url(option: &str, value: &str) -> Result<url::Url> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
        _ => Err(WeComError::config(format!("option {option}: `{value}` is not an http(s) URL")).into()),
    }
}

impl WeComConfig {
    /// The robot endpoint.
    pub fn webhook(&self) -> &str {
        self.webhook.as_deref().unwrap_or(DEFAULT_WEBHOOK)
    }
}

impl WeChatConfig {
    /// WeCom's API origin.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT).trim_end_matches('/')
    }
}

/// A `wecom:` URI's target is the webhook (else the `webhook` option, else WeCom's); `key`
/// is required.
impl ChatConfig for WeComConfig {
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
        target_or_option(target, &mut self.webhook, "webhook", "the robot", |t| Ok(https_unless_loopback(t)))
    }

    fn validate(&self) -> Result<()> {
        if self.key.is_empty() {
            return Err(WeComError::config("missing required option key").into());
        }
        http_url("webhook", self.webhook())?;
        self.chat.validate()?;
        self.alert.validate()
    }

    fn service(&self) -> Result<Robot> {
        Robot::new(self)
    }

    fn zone_name(robot: &Robot) -> &str {
        robot.zone_name()
    }
}

/// kube-eventer's `wechat:` URI: `corp_id`, `corp_secret` and `agent_id` required, the
/// receivers `@all` unless given. kube-eventer ignores a URI target; here one such as
/// `wechat:https://wecom.example.com?…` names the `endpoint`.
impl ChatConfig for WeChatConfig {
    type Service = App;

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
        target_or_option(target, &mut self.endpoint, "endpoint", "the endpoint", |t| {
            Ok(http_url("endpoint", &https_unless_loopback(t))?.origin().ascii_serialization())
        })?;
        if self.to_user.is_empty() && self.to_party.is_empty() && self.to_tag.is_empty() {
            self.to_user.push("@all".to_owned());
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        if self.corp_id.trim().is_empty() {
            return Err(WeComError::config("missing required option corp_id").into());
        }
        if self.corp_secret.is_empty() {
            return Err(WeComError::config("missing required option corp_secret").into());
        }
        http_url("endpoint", self.endpoint())?;
        self.chat.validate()?;
        self.alert.validate()
    }

    fn service(&self) -> Result<App> {
        App::new(self)
    }

    fn zone_name(app: &App) -> &str {
        app.zone_name()
    }
}

#[cfg(test)]
mod tests {
    use eventer_core::uri::ComponentUri;

    use super::*;

    fn robot(uri: &str) -> Result<WeComConfig> {
        let uri: ComponentUri = uri.parse()?;
        WeComConfig::from_options(uri.target(), &mut uri.options())
    }

    fn app(uri: &str) -> Result<WeChatConfig> {
        let uri: ComponentUri = uri.parse()?;
        WeChatConfig::from_options(uri.target(), &mut uri.options())
    }

    #[test]
    fn robot_uri_as_wecom_gives_it() {
        let c = robot(
            "wecom:https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a-KEY&level=Warning&label=prod\
             &msg_type=text&mentioned_list=a,@all&mentioned_mobile_list=13800000000&budget=10&timezone=Asia/Shanghai",
        )
        .unwrap();
        assert_eq!(c.webhook(), DEFAULT_WEBHOOK);
        assert_eq!(c.key.expose(), "693a-KEY");
        assert_eq!(c.mentioned_list, ["a", "@all"]);
        assert_eq!(c.mentioned_mobile_list, ["13800000000"]);
        assert_eq!(c.chat.labels, ["prod"]);
        assert_eq!(c.chat.timezone.as_deref(), Some("Asia/Shanghai"));
        assert_eq!(c.alert.budget, 10);
        assert_eq!(robot("wecom:?key=k").unwrap().webhook(), DEFAULT_WEBHOOK);
        assert_eq!(
            robot("wecom:http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k").unwrap().webhook(),
            DEFAULT_WEBHOOK
        );
        assert_eq!(robot("wecom:http://127.0.0.1:9/w?key=k").unwrap().webhook(), "http://127.0.0.1:9/w");
        for name in ["key", "mentioned_list", "label", "msg_type", "timeout", "budget", "group_wait"] {
            assert!(WeComConfig::option_names().contains(&name), "{name}");
        }
    }

    #[test]
    fn app_uri_as_kube_eventer_gives_it() {
        let c = app("wechat:?corp_id=ww1&corp_secret=s&agent_id=1000002&to_user=a,b&label=x&label=y").unwrap();
        assert_eq!((c.corp_id.as_str(), c.corp_secret.expose(), c.agent_id), ("ww1", "s", 1_000_002));
        assert_eq!(c.to_user, ["a", "b"]);
        assert_eq!(c.chat.labels, ["x", "y"]);
        assert_eq!(app("wechat:?corp_id=ww1&corp_secret=s&agent_id=1&to_user=").unwrap().to_user, ["@all"]);
        assert!(app("wechat:?corp_id=ww1&corp_secret=s&agent_id=1&to_party=2").unwrap().to_user.is_empty());
        let private = app("wechat:?corp_id=ww1&corp_secret=s&agent_id=1&endpoint=https://wecom.corp.example/").unwrap();
        assert_eq!(private.endpoint(), "https://wecom.corp.example");
        let target =
            app("wechat:https://qyapi.weixin.qq.com/cgi-bin/message/send?corp_id=ww1&corp_secret=s&agent_id=1");
        assert_eq!(target.unwrap().endpoint(), DEFAULT_ENDPOINT);
        assert!(WeChatConfig::option_names().contains(&"corp_secret"));
    }

    /// An option that looks like a secret but is not one would vanish from errors and
    /// `eventer check`; a secret that does not look like one would show.
    #[test]
    fn only_secrets_look_secret() {
        use eventer_core::uri::{is_secret_key, looks_secret};
        for option in WeComConfig::option_names().into_iter().chain(WeChatConfig::option_names()) {
            assert_eq!(looks_secret(option), is_secret_key(option), "{option}");
        }
        assert!(is_secret_key("key") && is_secret_key("corp_secret"));
    }

    #[test]
    fn errors_name_the_option() {
        let robot_err = |u: &str| robot(u).unwrap_err().to_string();
        let app_err = |u: &str| app(u).unwrap_err().to_string();
        assert_eq!(robot_err("wecom:https://h/w?label=x"), "missing required option key");
        assert_eq!(robot_err("wecom:https://h/w?key="), "missing required option key");
        assert_eq!(
            robot_err("wecom:https://h/w?key=k&msg_type=news"),
            "option msg_type: `news` is not text or markdown"
        );
        assert_eq!(robot_err("wecom:https://h/w?key=k&budget=0"), "option budget: must be at least 1");
        assert_eq!(robot_err("wecom:https://h/w?key=k&timeout=0s"), "option timeout: must be more than 0");
        assert!(robot_err("wecom:ftp://h/w?key=k").starts_with("option webhook: `ftp://h/w` is not an http(s) URL"));
        assert_eq!(app_err("wechat:?corp_secret=s&agent_id=1"), "missing required option corp_id");
        assert_eq!(app_err("wechat:?corp_id=c&agent_id=1"), "missing required option corp_secret");
        assert_eq!(app_err("wechat:?corp_id=c&corp_secret=s"), "missing required option agent_id");
        assert!(app_err("wechat:?corp_id=c&corp_secret=s&agent_id=x").starts_with("option agent_id: invalid number"));
        assert!(app_err("wechat:?corp_id=c&corp_secret=s&agent_id=1&endpoint=nope").starts_with("option endpoint:"));
        assert!(!app_err("wechat:?corp_id=c&corp_secret=HIDDEN&agent_id=x").contains("HIDDEN"));
    }
}
