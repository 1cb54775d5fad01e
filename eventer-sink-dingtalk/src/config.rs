//! [`DingTalkConfig`]: the sink's settings, from serde or from kube-eventer's URI options.

use std::{fmt, path::PathBuf, time::Duration};

use eventer_core::{Result, uri::Options};
use serde::{Deserialize, Serialize};

use crate::error::DingTalkError;

/// DingTalk's robot endpoint, used when the URI gives none.
pub const DEFAULT_WEBHOOK: &str = "https://oapi.dingtalk.com/robot/send";

/// The message type of single-alert messages and digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MsgType {
    /// Plain text (kube-eventer's default).
    #[default]
    Text,
    /// DingTalk markdown, with ACK console links when `cluster_id` and `region` are set.
    Markdown,
}

/// Settings of the DingTalk sink.
///
/// From a kube-eventer URI (`--sink=dingtalk:<webhook>?access_token=…&label=…`), see
/// [`DingTalkConfig::from_options`]; from a config file, deserialize it (unknown fields
/// are refused). `Debug` never shows the token or the signing secret.
///
/// ```
/// use eventer_sink_dingtalk::{DingTalkConfig, MsgType};
/// let config: DingTalkConfig = serde_json::from_str(r#"{
///     "access_token": "t0k", "sign": "SECxyz", "msg_type": "markdown", "labels": ["prod"]
/// }"#)?;
/// assert_eq!(config.msg_type, MsgType::Markdown);
/// assert_eq!(config.budget, 18);
/// assert!(!format!("{config:?}").contains("t0k"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DingTalkConfig {
    /// Robot endpoint without query, used as given (http or https; the URI form makes
    /// it https unless on loopback, as kube-eventer does). Default
    /// `https://oapi.dingtalk.com/robot/send`.
    #[serde(default = "default_webhook")]
    pub webhook: String,
    /// The robot's `access_token` (required). A secret.
    pub access_token: String,
    /// The `加签` secret (`SEC…`); when set every request is signed. A secret.
    #[serde(default)]
    pub sign: Option<String>,
    /// Lines put at the top of every message (`label=`, repeatable), e.g. the cluster name.
    #[serde(default)]
    pub labels: Vec<String>,
    /// `text` (default) or `markdown`.
    #[serde(default)]
    pub msg_type: MsgType,
    /// ACK cluster id: the markdown title, and with `region` the console links.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// Alibaba Cloud region of the cluster, for the console links.
    #[serde(default)]
    pub region: Option<String>,
    /// Mobile numbers to @ (`at_mobiles=`); `@<mobile>` is added to the body.
    #[serde(default)]
    pub at_mobiles: Vec<String>,
    /// DingTalk user ids to @ (`at_user_ids=`); `@<id>` is added to the body.
    #[serde(default)]
    pub at_user_ids: Vec<String>,
    /// @ everyone in the group (`at_all=true`); `@all` is added to the body.
    #[serde(default)]
    pub at_all: bool,
    /// A minijinja template for the body of single-alert messages (`template=`); see the
    /// crate docs for the variables. Default: kube-eventer's layout.
    #[serde(default)]
    pub template: Option<String>,
    /// Read the template from this file instead (`template_file=`).
    #[serde(default)]
    pub template_file: Option<PathBuf>,
    /// IANA time zone for the times shown (`timezone=Asia/Shanghai`). Default: the `TZ`
    /// environment variable, else UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// After the first alert arrives, wait this long for more to send with it. Default 1s.
    #[serde(default = "default_group_wait", with = "eventer_core::duration")]
    pub group_wait: Duration,
    /// Least time between two sends; alerts arriving sooner are held and sent together.
    /// Default 2s.
    #[serde(default = "default_group_interval", with = "eventer_core::duration")]
    pub group_interval: Duration,
    /// The same object and reason alerts again at most this often; repeats in between are
    /// counted into the next notification. Default 1h.
    #[serde(default = "default_repeat_interval", with = "eventer_core::duration")]
    pub repeat_interval: Duration,
    /// Messages allowed per `budget_window` (DingTalk allows 20 per minute). Default 18.
    #[serde(default = "default_budget")]
    pub budget: u32,
    /// The rolling window of the budget. Default 1m, DingTalk's.
    #[serde(default = "default_budget_window", with = "eventer_core::duration")]
    pub budget_window: Duration,
    /// Largest request body in bytes (DingTalk refuses messages over 20000). Default 20000.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Timeout of one request. Default 10s.
    #[serde(default = "default_timeout", with = "eventer_core::duration")]
    pub timeout: Duration,
}

/// kube-eventer sends to `https://<host><path>` whatever the URI's scheme, so the token
/// never crosses the network in clear: likewise here, but for a loopback `http://` robot
/// (a local relay or stand-in), which is used as given.
fn webhook_of(target: &str) -> String {
    if target.is_empty() {
        return default_webhook();
    }
    let Some(rest) = target.strip_prefix("http://") else {
        return if target.contains("://") { target.to_owned() } else { format!("https://{target}") };
    };
    let loopback = url::Url::parse(target).is_ok_and(|u| match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    });
    if loopback { target.to_owned() } else { format!("https://{rest}") }
}

fn default_webhook() -> String {
    DEFAULT_WEBHOOK.to_owned()
}
fn default_group_wait() -> Duration {
    Duration::from_secs(1)
}
fn default_group_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_repeat_interval() -> Duration {
    Duration::from_secs(3600)
}
fn default_budget() -> u32 {
    18
}
fn default_budget_window() -> Duration {
    Duration::from_secs(60)
}
fn default_max_bytes() -> usize {
    20_000
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// The smallest body limit that still fits one alert with a useful message.
const MIN_MAX_BYTES: usize = 2_000;

impl DingTalkConfig {
    /// A config for the robot at `webhook` with `access_token`, everything else default.
    pub fn new(webhook: impl Into<String>, access_token: impl Into<String>) -> Self {
        DingTalkConfig {
            webhook: webhook.into(),
            access_token: access_token.into(),
            sign: None,
            labels: Vec::new(),
            msg_type: MsgType::Text,
            cluster_id: None,
            region: None,
            at_mobiles: Vec::new(),
            at_user_ids: Vec::new(),
            at_all: false,
            template: None,
            template_file: None,
            timezone: None,
            group_wait: default_group_wait(),
            group_interval: default_group_interval(),
            repeat_interval: default_repeat_interval(),
            budget: default_budget(),
            budget_window: default_budget_window(),
            max_bytes: default_max_bytes(),
            timeout: default_timeout(),
        }
    }

    /// Sign requests with this `SEC…` secret.
    #[must_use]
    pub fn sign(mut self, secret: impl Into<String>) -> Self {
        self.sign = Some(secret.into());
        self
    }

    /// Send `msg_type` messages.
    #[must_use]
    pub fn msg_type(mut self, msg_type: MsgType) -> Self {
        self.msg_type = msg_type;
        self
    }

    /// Add a label line.
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.labels.push(label.into());
        self
    }

    /// Show times in this IANA time zone.
    #[must_use]
    pub fn timezone(mut self, timezone: impl Into<String>) -> Self {
        self.timezone = Some(timezone.into());
        self
    }

    /// Set `group_wait`, `group_interval` and `repeat_interval`.
    #[must_use]
    pub fn timing(mut self, group_wait: Duration, group_interval: Duration, repeat_interval: Duration) -> Self {
        self.group_wait = group_wait;
        self.group_interval = group_interval;
        self.repeat_interval = repeat_interval;
        self
    }

    /// Allow `budget` messages per rolling `window`.
    #[must_use]
    pub fn budget(mut self, budget: u32, window: Duration) -> Self {
        self.budget = budget;
        self.budget_window = window;
        self
    }

    /// The options this sink reads from a URI.
    pub const OPTIONS: &'static [&'static str] = &[
        "access_token",
        "sign",
        "label",
        "msg_type",
        "cluster_id",
        "region",
        "at_mobiles",
        "at_user_ids",
        "at_all",
        "template",
        "template_file",
        "timezone",
        "group_wait",
        "group_interval",
        "repeat_interval",
        "budget",
        "budget_window",
        "max_bytes",
        "timeout",
    ];

    /// Read kube-eventer's URI: `target` is the webhook (empty: DingTalk's), `options` the
    /// query (`access_token` required). The common filter options (`level`, `namespaces`,
    /// `kinds`, ...) are the registry's and must already be taken out.
    ///
    /// ```
    /// use eventer_core::uri::ComponentUri;
    /// use eventer_sink_dingtalk::DingTalkConfig;
    /// let uri: ComponentUri = "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=t0k&label=a&label=b&at_all=true".parse()?;
    /// let config = DingTalkConfig::from_options(uri.target(), &mut uri.options())?;
    /// assert_eq!(config.labels, ["a", "b"]);
    /// assert!(config.at_all);
    /// # Ok::<(), eventer_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// A configuration error naming the option: `access_token` missing, a value that does
    /// not parse.
    pub fn from_options(target: &str, options: &mut Options) -> Result<Self> {
        let mut config = DingTalkConfig::new(webhook_of(target), options.required("access_token")?);
        config.sign = options.one("sign")?.filter(|s| !s.is_empty());
        config.labels = options.all("label");
        if let Some(t) = options.one("msg_type")? {
            config.msg_type = match t.to_ascii_lowercase().as_str() {
                "text" => MsgType::Text,
                "markdown" => MsgType::Markdown,
                _ => {
                    return Err(DingTalkError::config(format!("option msg_type: `{t}` is not text or markdown")).into());
                }
            };
        }
        config.cluster_id = options.one("cluster_id")?.filter(|s| !s.is_empty());
        config.region = options.one("region")?.filter(|s| !s.is_empty());
        config.at_mobiles = options.list("at_mobiles")?;
        config.at_user_ids = options.list("at_user_ids")?;
        config.at_all = options.bool("at_all")?.unwrap_or(false);
        config.template = options.one("template")?;
        config.template_file = options.one("template_file")?.map(PathBuf::from);
        config.timezone = options.one("timezone")?;
        let durations = [
            ("group_wait", &mut config.group_wait),
            ("group_interval", &mut config.group_interval),
            ("repeat_interval", &mut config.repeat_interval),
            ("budget_window", &mut config.budget_window),
            ("timeout", &mut config.timeout),
        ];
        for (key, field) in durations {
            if let Some(d) = options.duration(key)? {
                *field = d;
            }
        }
        if let Some(b) = options.number("budget")? {
            config.budget = b;
        }
        if let Some(m) = options.number("max_bytes")? {
            config.max_bytes = m;
        }
        config.validate()?;
        Ok(config)
    }

    /// Check values that serde or the URI parser cannot.
    ///
    /// # Errors
    /// A configuration error naming the field.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: &str| Err(DingTalkError::config(m.to_owned()).into());
        if self.access_token.is_empty() {
            return fail("missing required option access_token");
        }
        if url::Url::parse(&self.webhook).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
            return fail("the webhook must be an http(s) URL such as https://oapi.dingtalk.com/robot/send");
        }
        if self.budget == 0 {
            return fail("option budget: must be at least 1");
        }
        if self.budget_window.is_zero() {
            return fail("option budget_window: must be more than 0");
        }
        if self.max_bytes < MIN_MAX_BYTES {
            return fail(&format!("option max_bytes: must be at least {MIN_MAX_BYTES}"));
        }
        if self.timeout.is_zero() {
            return fail("option timeout: must be more than 0");
        }
        if self.template.is_some() && self.template_file.is_some() {
            return fail("options template and template_file: give one, not both");
        }
        Ok(())
    }
}

impl fmt::Debug for DingTalkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DingTalkConfig")
            .field("webhook", &eventer_core::uri::redact(&self.webhook))
            .field("access_token", &"***")
            .field("sign", &self.sign.as_ref().map(|_| "***"))
            .field("labels", &self.labels)
            .field("msg_type", &self.msg_type)
            .field("cluster_id", &self.cluster_id)
            .field("region", &self.region)
            .field("at_mobiles", &self.at_mobiles)
            .field("at_user_ids", &self.at_user_ids)
            .field("at_all", &self.at_all)
            .field("template", &self.template)
            .field("template_file", &self.template_file)
            .field("timezone", &self.timezone)
            .field("group_wait", &self.group_wait)
            .field("group_interval", &self.group_interval)
            .field("repeat_interval", &self.repeat_interval)
            .field("budget", &self.budget)
            .field("budget_window", &self.budget_window)
            .field("max_bytes", &self.max_bytes)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(c.webhook, "https://oapi.dingtalk.com/robot/send");
        assert_eq!(c.access_token, "t0k");
        assert_eq!(c.sign.as_deref(), Some("SECabc"));
        assert_eq!(c.labels, ["c1", "c%d"]);
        assert_eq!(c.msg_type, MsgType::Markdown);
        assert_eq!((c.cluster_id.as_deref(), c.region.as_deref()), (Some("c123"), Some("cn-hangzhou")));
        assert_eq!(c.at_mobiles, ["138", "139"]);
        assert_eq!(c.at_user_ids, ["u1"]);
        assert_eq!(c.group_wait, Duration::from_millis(500));
        assert_eq!(c.group_interval, Duration::from_secs(2));
        assert_eq!(c.repeat_interval, Duration::from_secs(1800));
        assert_eq!(c.budget, 10);
        // Defaults.
        let c = parse("dingtalk:?access_token=x").unwrap();
        assert_eq!(c.webhook, DEFAULT_WEBHOOK);
        assert_eq!((c.msg_type, c.budget, c.max_bytes), (MsgType::Text, 18, 20_000));
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
        let webhook = |u: &str| parse(u).unwrap().webhook;
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
    fn serde_round_trip_and_secret_free_debug() {
        let c =
            DingTalkConfig::new("http://127.0.0.1:1/robot/send", "tok-SECRET").sign("SECsecret-value").label("prod");
        let json = serde_json::to_string(&c).unwrap();
        let back: DingTalkConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert!(json.contains("\"group_wait\":\"1s\""), "{json}");
        let debug = format!("{c:?}");
        assert!(!debug.contains("tok-SECRET") && !debug.contains("SECsecret-value"), "{debug}");
        assert!(debug.contains("prod"));
        let err = serde_json::from_str::<DingTalkConfig>(r#"{"access_token":"x","lable":"typo"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `lable`"), "{err}");
    }
}
