//! [`LarkConfig`]: the sink's settings, from serde or from URI options.

use std::time::Duration;

use eventer_alert::{AlertConfig, ChatConfig, ChatSettings};
use eventer_core::{Result, config::Secret};
use serde::{Deserialize, Serialize};

use crate::{error::LarkError, sink::Bot};

/// The message type of single-alert messages and digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MsgType {
    /// Plain text, in kube-eventer's DingTalk text layout.
    #[default]
    Text,
    /// A message card (`interactive`): a coloured header and `lark_md` content.
    Interactive,
}

/// Case-insensitive; `card` is `interactive`.
impl std::str::FromStr for MsgType {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(MsgType::Text),
            "interactive" | "card" => Ok(MsgType::Interactive),
            _ => Err(format!("`{s}` is not text or interactive")),
        }
    }
}

eventer_core::impl_deserialize_from_str!(MsgType);

/// Settings of the Lark/Feishu sink.
///
/// From a URI (`--sink=lark:https://open.feishu.cn/open-apis/bot/v2/hook/<token>?sign=…`)
/// or a config file's options, see [`ChatConfig::from_options`] (the URI's target is the
/// webhook, else the `webhook` option); or deserialize the sink's own fields (unknown
/// fields are refused). The webhook (its path holds the token) and the signing secret are
/// [`Secret`]s, which no `Debug` shows. What every chat sink shares (labels, template,
/// time zone, timeout) is in `chat`, the alert engine's settings in `alert`; the builder
/// methods of [`ChatConfig`] set them.
///
/// ```
/// use eventer_sink_lark::{LarkConfig, MsgType};
/// let config: LarkConfig = serde_json::from_str(r#"{
///     "webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/t0k", "sign": "s3cret",
///     "msg_type": "interactive"
/// }"#)?;
/// assert_eq!(config.msg_type, MsgType::Interactive);
/// assert!(!format!("{config:?}").contains("t0k"));
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// ```
/// use eventer_core::uri::ComponentUri;
/// use eventer_sink_lark::{ChatConfig, LarkConfig};
/// let uri: ComponentUri = "lark:https://open.feishu.cn/open-apis/bot/v2/hook/t0k?sign=s3c&label=a&label=b&budget=2".parse()?;
/// let config = LarkConfig::from_options(uri.target(), &mut uri.options())?;
/// assert_eq!(config.chat.labels, ["a", "b"]);
/// assert_eq!((config.alert.budget, config.alert.budget_window.as_secs()), (2, 3));
/// # Ok::<(), eventer_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LarkConfig {
    /// The bot's whole webhook URL, `https://open.feishu.cn/open-apis/bot/v2/hook/<token>`
    /// (Lark: `open.larksuite.com`); the URI's target when given there.
    #[serde(default)]
    pub webhook: Option<Secret>,
    /// The bot's signing secret; when set every request is signed.
    #[serde(default)]
    pub sign: Option<Secret>,
    /// `text` (default) or `interactive` (alias `card`).
    #[serde(default)]
    pub msg_type: MsgType,
    /// Largest request body in bytes (Lark refuses bodies over 20 KB). Default 20000.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Labels, the template for the text of single-alert messages, time zone, timeout.
    #[serde(skip)]
    pub chat: ChatSettings,
    /// Grouping, repeats and the message budget: the alert engine's options. The budget
    /// defaults to 4 messages per rolling 3 s: under Lark's 5 a second and 100 a minute.
    #[serde(skip)]
    pub alert: AlertConfig,
}

/// Lark's default budget: at most 4 in any second, at most 80 in any minute.
pub const DEFAULT_BUDGET: (u32, Duration) = (4, Duration::from_secs(3));

fn default_max_bytes() -> usize {
    20_000
}

/// The smallest body limit that still fits one alert with a useful message.
const MIN_MAX_BYTES: usize = 2_000;

impl LarkConfig {
    /// A config for the bot at `webhook`, everything else default.
    pub fn new(webhook: impl Into<Secret>) -> Self {
        LarkConfig {
            webhook: Some(webhook.into()),
            sign: None,
            msg_type: MsgType::Text,
            max_bytes: default_max_bytes(),
            chat: ChatSettings::default(),
            alert: LarkConfig::default_alert(),
        }
    }

    /// Sign requests with this secret.
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
}

/// The URI's target is the webhook; the budget defaults to Lark's.
impl ChatConfig for LarkConfig {
    type Service = Bot;

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
        eventer_alert::target_or_option(target, &mut self.webhook, "webhook", "the bot", |t| Ok(Secret::new(t)))
    }

    /// Check values that serde or the URI parser cannot.
    ///
    /// # Errors
    /// A configuration error naming the field; never showing the webhook.
    fn validate(&self) -> Result<()> {
        let fail = |m: &str| Err(LarkError::Config(m.to_owned()).into());
        let Some(webhook) = self.webhook.as_ref().filter(|w| !w.is_empty()) else {
            return fail("missing the webhook: lark:https://open.feishu.cn/open-apis/bot/v2/hook/<token>");
        };
        check_webhook(webhook.expose()).or_else(|m| fail(&m))?;
        if self.sign.as_ref().is_some_and(Secret::is_empty) {
            return fail("option sign: empty; give the bot's signing secret, or leave the option out");
        }
        self.alert.validate()?;
        if self.max_bytes < MIN_MAX_BYTES {
            return fail(&format!("option max_bytes: must be at least {MIN_MAX_BYTES}"));
        }
        self.chat.validate()
    }

    fn service(&self) -> Result<Bot> {
        Bot::new(self)
    }

    fn zone_name(bot: &Bot) -> &str {
        bot.zone_name()
    }
}

/// An https URL whose path ends in a token (plain http only to a loopback stand-in: the
/// path is the credential). Messages never show the URL.
pub(crate) fn check_webhook(webhook: &str) -> std::result::Result<(), String> {
    let example = "such as https://open.feishu.cn/open-apis/bot/v2/hook/<token>";
    let url = url::Url::parse(webhook)
        .map_err(|e| format!("the webhook is not a URL ({e}); give the bot's whole URL, {example}"))?;
    match url.scheme() {
        "https" => {}
        "http" if eventer_alert::is_loopback(&url) => {}
        "http" => return Err("the webhook must be https: its path is the bot's token".to_owned()),
        _ => return Err(format!("the webhook must be an https URL, {example}")),
    }
    let token = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or_default();
    if token.is_empty() {
        return Err(format!("the webhook has no token at the end of its path; give the bot's whole URL, {example}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use eventer_core::uri::ComponentUri;

    use super::*;

    fn parse(uri: &str) -> Result<LarkConfig> {
        let uri: ComponentUri = uri.parse()?;
        LarkConfig::from_options(uri.target(), &mut uri.options())
    }

    #[test]
    fn uri_options_and_defaults() {
        let c = parse(
            "lark:https://open.feishu.cn/open-apis/bot/v2/hook/t0k?sign=s3c&label=c1&label=c2&msg_type=card\
             &timezone=Asia/Shanghai&group_wait=500ms&budget_window=10s",
        )
        .unwrap();
        assert_eq!(c.webhook.as_ref().map(Secret::expose), Some("https://open.feishu.cn/open-apis/bot/v2/hook/t0k"));
        assert_eq!(c.sign.as_ref().map(Secret::expose), Some("s3c"));
        assert_eq!(c.chat.labels, ["c1", "c2"]);
        assert_eq!(c.msg_type, MsgType::Interactive);
        assert_eq!(c.alert.group_wait, Duration::from_millis(500));
        // budget_window given, budget Lark's.
        assert_eq!((c.alert.budget, c.alert.budget_window), (4, Duration::from_secs(10)));
        let c = parse("lark:https://open.larksuite.com/open-apis/bot/v2/hook/x").unwrap();
        assert_eq!((c.msg_type, c.max_bytes), (MsgType::Text, 20_000));
        assert_eq!((c.alert.budget, c.alert.budget_window), DEFAULT_BUDGET);
        assert_eq!(c.alert.repeat_interval, Duration::from_secs(3600));
    }

    #[test]
    fn errors_name_the_option_and_hide_the_webhook() {
        let err = |u: &str| parse(u).unwrap_err().to_string();
        assert!(err("lark:?label=x").starts_with("missing the webhook"));
        assert_eq!(
            err("lark:https://open.feishu.cn/open-apis/bot/v2/hook/t0k?msg_type=post"),
            "option msg_type: `post` is not text or interactive"
        );
        assert_eq!(err("lark:https://h/hook/t0k?budget=0"), "option budget: must be at least 1");
        assert_eq!(err("lark:https://h/hook/t0k?max_bytes=10"), "option max_bytes: must be at least 2000");
        let plain = err("lark:http://open.feishu.cn/open-apis/bot/v2/hook/SECRET-TOKEN");
        assert!(plain.starts_with("the webhook must be https") && !plain.contains("SECRET"), "{plain}");
        assert!(err("lark:https://open.feishu.cn/").starts_with("the webhook has no token"));
        assert!(err("lark:SECRET-TOKEN").starts_with("the webhook is not a URL"));
        assert!(parse("lark:http://127.0.0.1:9/open-apis/bot/v2/hook/t").is_ok());
    }

    #[test]
    fn typed_values_and_secret_free_debug() {
        let c: LarkConfig = serde_json::from_str(
            r#"{"webhook":"https://open.feishu.cn/open-apis/bot/v2/hook/tok-SECRET","sign":"sign-SECRET",
                "max_bytes":4000}"#,
        )
        .unwrap();
        let c = c.label("prod").timeout(Duration::from_secs(3));
        assert_eq!((c.max_bytes, c.chat.timeout), (4000, Duration::from_secs(3)));
        let debug = format!("{c:?}");
        assert!(!debug.contains("SECRET") && debug.contains("prod"), "{debug}");
        let empty: LarkConfig = serde_json::from_str(r#"{"webhook":"https://h/hook/t","sign":""}"#).unwrap();
        assert!(empty.validate().unwrap_err().to_string().starts_with("option sign: empty"));
        let err = serde_json::from_str::<LarkConfig>(r#"{"lable":"typo"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `lable`"), "{err}");
    }
}
