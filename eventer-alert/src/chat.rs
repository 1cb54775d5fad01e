//! What every chat sink reads and shows besides its own settings: [`ChatSettings`] (labels,
//! template, time zone, timeout), the builder methods of [`ChatConfig`], [`Look`] (the
//! labels, zone and template a renderer uses), and the rules for the webhook a URI names.

use std::{fmt, fmt::Write as _, path::PathBuf, time::Duration};

use eventer_core::{Error, Result, config::names, uri::Options};
use serde::{Deserialize, de::DeserializeOwned};

use crate::{Alert, AlertConfig, ChatService, Template, Zone, truncate};

/// The settings every chat sink shares, read from the options named by its fields beside
/// the sink's own and the engine's [`AlertConfig`].
///
/// ```
/// use std::time::Duration;
/// use eventer_alert::ChatSettings;
/// use eventer_core::uri::ComponentUri;
/// let uri: ComponentUri = "chat:https://chat.example/hook?label=prod&label=eu&timeout=3s".parse()?;
/// let chat = ChatSettings::from_options(&mut uri.options())?;
/// assert_eq!((chat.labels.as_slice(), chat.timeout), (["prod".to_owned(), "eu".to_owned()].as_slice(), Duration::from_secs(3)));
/// chat.validate()?;
/// # Ok::<(), eventer_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ChatSettings {
    /// Lines put at the top of every message (`label=`, repeatable), e.g. the cluster name.
    #[serde(default, rename = "label")]
    pub labels: Vec<String>,
    /// A minijinja template for the text of single-alert messages (`template=`); see
    /// [`Template`] for the variables. Default: the sink's layout.
    #[serde(default)]
    pub template: Option<String>,
    /// Read the template from this file instead (`template_file=`).
    #[serde(default)]
    pub template_file: Option<PathBuf>,
    /// IANA time zone for the times shown (`timezone=Asia/Shanghai`). Default: the `TZ`
    /// environment variable, else UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Timeout of one request. Default 10s.
    #[serde(default = "default_timeout", with = "eventer_core::duration")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            labels: Vec::new(),
            template: None,
            template_file: None,
            timezone: None,
            timeout: default_timeout(),
        }
    }
}

impl ChatSettings {
    /// The options named by its fields, taken out of `options`; not yet validated, so that
    /// a sink reports its own missing settings first.
    ///
    /// # Errors
    /// A configuration error naming the option whose value does not parse.
    pub fn from_options(options: &mut Options) -> Result<Self> {
        options.take()
    }

    /// Check what serde or the URI parser cannot.
    ///
    /// # Errors
    /// A configuration error naming the option.
    pub fn validate(&self) -> Result<()> {
        if self.timeout.is_zero() {
            return Err(Error::config("option timeout: must be more than 0"));
        }
        if self.template.is_some() && self.template_file.is_some() {
            return Err(Error::config("options template and template_file: give one, not both"));
        }
        Ok(())
    }

    /// The labels, zone and compiled template; reads `template_file`. The template is
    /// rendered once with a sample alert and the sink's `vars`, so that one naming an
    /// unknown variable fails at startup rather than at the first alert.
    ///
    /// # Errors
    /// An unknown time zone, an unreadable template file, an invalid template.
    pub fn look(&self, vars: &[(&str, &str)]) -> Result<Look> {
        let zone = Zone::new(self.timezone.as_deref())?;
        let source = match (&self.template, &self.template_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| Error::config(format!("option template_file: cannot read {}: {e}", path.display())))?,
            ),
            (None, None) => None,
        };
        let template = source.map(Template::compile).transpose()?;
        if let Some(template) = &template {
            template.check(&zone, &self.labels, vars)?;
        }
        Ok(Look { labels: self.labels.clone(), zone, template })
    }
}

/// A chat sink's settings: its own (the struct's fields, read from the options they name),
/// the [`ChatSettings`] every chat sink shares and the engine's [`AlertConfig`]. From them
/// come the options the sink reads ([`ChatConfig::option_names`]), the reading of a URI
/// ([`ChatConfig::from_options`]), the sink ([`crate::ChatSink`]) and its factory
/// ([`crate::ChatFactory`]); and the builder methods.
///
/// ```
/// use std::sync::Mutex;
/// use async_trait::async_trait;
/// use eventer_alert::{Alert, AlertConfig, Answer, ChatConfig, ChatService, ChatSettings, ChatSink, Digest, Limits, Look};
/// use eventer_core::{Result, config::Secret, uri::ComponentUri};
///
/// /// `chat:<webhook>?label=…`
/// #[derive(Debug, serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Settings {
///     #[serde(default)]
///     webhook: Option<Secret>,
///     #[serde(skip)]
///     chat: ChatSettings,
///     #[serde(skip)]
///     alert: AlertConfig,
/// }
///
/// /// A chat that keeps its messages; a real one posts them.
/// struct Chat { look: Look, sent: Mutex<Vec<String>> }
///
/// #[async_trait]
/// impl ChatService for Chat {
///     const NAME: &'static str = "chat";
///     fn limits(&self) -> Limits {
///         Limits::new(4000)
///     }
///     fn render_one(&self, a: Alert<'_>, max_bytes: usize) -> String {
///         eventer_alert::fit_one(a, max_bytes, |a| self.look.text(a, &[], "Chat", |a| self.look.kube_eventer_text(a)))
///     }
///     fn digest_line(&self, a: Alert<'_>) -> String {
///         format!("- {} {}", a.event.involved_object.name, a.event.reason)
///     }
///     fn render_digest(&self, d: Digest<'_>) -> String {
///         d.lines.join("\n")
///     }
///     async fn post(&self, body: String) -> Answer {
///         self.sent.lock().unwrap().push(body);
///         Answer::Sent
///     }
/// }
///
/// impl ChatConfig for Settings {
///     type Service = Chat;
///     fn chat_mut(&mut self) -> &mut ChatSettings { &mut self.chat }
///     fn alert_config(&self) -> &AlertConfig { &self.alert }
///     fn alert_mut(&mut self) -> &mut AlertConfig { &mut self.alert }
///     fn complete(&mut self, target: &str) -> Result<()> {
///         eventer_alert::target_or_option(target, &mut self.webhook, "webhook", "the webhook", |t| Ok(Secret::new(t)))
///     }
///     fn validate(&self) -> Result<()> {
///         if self.webhook.is_none() {
///             return Err(eventer_core::Error::config("missing the webhook"));
///         }
///         self.chat.validate()?;
///         self.alert.validate()
///     }
///     fn service(&self) -> Result<Chat> {
///         Ok(Chat { look: self.chat.look(&[])?, sent: Mutex::default() })
///     }
///     fn zone_name(chat: &Chat) -> &str {
///         chat.look.zone.name()
///     }
/// }
///
/// let uri: ComponentUri = "chat:https://chat.example/hook?label=prod&timezone=UTC&budget=5".parse()?;
/// let settings = Settings::from_options(uri.target(), &mut uri.options())?;
/// assert_eq!((settings.chat.labels.as_slice(), settings.alert.budget), (["prod".to_owned()].as_slice(), 5));
/// assert!(Settings::option_names().contains(&"group_wait"));
/// let sink = ChatSink::new(settings.label("eu"))?;
/// assert_eq!(sink.timezone(), "UTC");
/// # Ok::<(), eventer_core::Error>(())
/// ```
pub trait ChatConfig: fmt::Debug + DeserializeOwned + Send + Sync + 'static {
    /// The service the alert engine drives for these settings.
    type Service: ChatService;

    /// The settings every chat sink shares.
    fn chat_mut(&mut self) -> &mut ChatSettings;
    /// The alert engine's settings.
    fn alert_config(&self) -> &AlertConfig;
    /// The same, to change.
    fn alert_mut(&mut self) -> &mut AlertConfig;

    /// The engine's settings when no option changes them: the service's budget, say.
    fn default_alert() -> AlertConfig {
        AlertConfig::default()
    }

    /// Take the URI's `target` (empty when the URI names none) and fill in what the
    /// options left open.
    ///
    /// # Errors
    /// A configuration error naming the option.
    fn complete(&mut self, target: &str) -> Result<()>;

    /// Check what serde or the URI parser cannot, the shared and the engine's settings too.
    ///
    /// # Errors
    /// A configuration error naming the option; never showing a secret.
    fn validate(&self) -> Result<()>;

    /// The service for these (valid) settings; reads `template_file`, performs no network
    /// I/O.
    ///
    /// # Errors
    /// An unknown time zone, an invalid template.
    fn service(&self) -> Result<Self::Service>;

    /// The name of the zone `service` shows times in.
    fn zone_name(service: &Self::Service) -> &str;

    /// The option names [`ChatConfig::from_options`] reads: the struct's, the shared ones
    /// and the engine's.
    fn option_names() -> Vec<&'static str> {
        [names::<Self>(), names::<ChatSettings>(), names::<AlertConfig>()].concat()
    }

    /// Read a URI or a config file's options: `target` is the URI's, `options` the query
    /// with the shared and the engine's options. The common filter options (`level`,
    /// `namespaces`, `kinds`, ...) are the registry's.
    ///
    /// # Errors
    /// A configuration error naming the option: missing, or a value that does not parse.
    fn from_options(target: &str, options: &mut Options) -> Result<Self> {
        let mut config: Self = options.take()?;
        *config.chat_mut() = ChatSettings::from_options(options)?;
        config.complete(target)?;
        *config.alert_mut() = AlertConfig::from_options_or(options, Self::default_alert())?;
        config.validate()?;
        Ok(config)
    }

    /// Add a label line.
    #[must_use]
    fn label(mut self, label: impl Into<String>) -> Self {
        self.chat_mut().labels.push(label.into());
        self
    }

    /// Show times in this IANA time zone.
    #[must_use]
    fn timezone(mut self, timezone: impl Into<String>) -> Self {
        self.chat_mut().timezone = Some(timezone.into());
        self
    }

    /// Render single-alert messages with this minijinja template.
    #[must_use]
    fn template(mut self, template: impl Into<String>) -> Self {
        self.chat_mut().template = Some(template.into());
        self
    }

    /// Give up on one request after this long.
    #[must_use]
    fn timeout(mut self, timeout: Duration) -> Self {
        self.chat_mut().timeout = timeout;
        self
    }

    /// Set the alert engine's grouping, repeats and budget.
    #[must_use]
    fn alert(mut self, alert: AlertConfig) -> Self {
        *self.alert_mut() = alert;
        self
    }
}

/// What a chat sink's renderer shows the same way as every other: the labels, the zone
/// of the times, the user's template ([`ChatSettings::look`]).
#[derive(Debug)]
pub struct Look {
    /// The label lines, in the order given.
    pub labels: Vec<String>,
    /// The zone times are shown in.
    pub zone: Zone,
    /// The user's template, compiled.
    pub template: Option<Template>,
}

impl Look {
    /// The user's template for `alert` with the sink's `vars`, else `layout`; a template
    /// that fails on this alert is logged (naming the `service`) and `layout` used.
    pub fn text(
        &self,
        alert: Alert<'_>,
        vars: &[(&str, &str)],
        service: &str,
        layout: impl FnOnce(Alert<'_>) -> String,
    ) -> String {
        match &self.template {
            Some(template) => template.render(alert, &self.zone, &self.labels, vars).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "{service} template failed; using the default layout.");
                layout(alert)
            }),
            None => layout(alert),
        }
    }

    /// kube-eventer's text layout: the labels last first (as kube-eventer prepends them),
    /// then the fields; added: `Count` for repeats, and the zone in the timestamp.
    ///
    /// ```
    /// use eventer_alert::{Alert, ChatSettings};
    /// use eventer_core::Event;
    /// let mut chat = ChatSettings::default();
    /// chat.labels = vec!["first".into(), "second".into()];
    /// chat.timezone = Some("UTC".into());
    /// let t = "2024-01-01T00:00:00Z".parse().unwrap();
    /// let ev = Event::builder().warning().kind("Pod").object("shop", "web-1").reason("BackOff").at(t, t).build();
    /// let text = chat.look(&[])?.kube_eventer_text(Alert { event: &ev, count: 2 });
    /// assert!(text.starts_with("second\nfirst\nLevel:Warning \nKind:Pod \n"), "{text}");
    /// assert!(text.contains("Reason:BackOff \nCount:2 \nTimestamp:2024-01-01 00:00:00 +0000 UTC \nMessage:"), "{text}");
    /// # Ok::<(), eventer_core::Error>(())
    /// ```
    pub fn kube_eventer_text(&self, Alert { event: ev, count }: Alert<'_>) -> String {
        let mut out = String::with_capacity(256 + ev.message.len());
        for label in self.labels.iter().rev() {
            out.push_str(label);
            out.push('\n');
        }
        let w = &mut out;
        write!(w, "Level:{} \nKind:{} \n", ev.level, ev.involved_object.kind).expect("writing to a String");
        write!(w, "Namespace:{} \nName:{} \nReason:{} \n", ev.namespace, ev.name, ev.reason)
            .expect("writing to a String");
        if count > 1 {
            writeln!(w, "Count:{count} ").expect("writing to a String");
        }
        write!(w, "Timestamp:{} \nMessage:{}", self.zone.long(ev), ev.message).expect("writing to a String");
        out
    }
}

/// `f` of `alert` with the event's message cut to `limit` bytes (ending in `…`): how a
/// single-alert message is fitted under a size limit, cutting the message, never the alert.
pub fn with_message_cut<R>(alert: Alert<'_>, limit: usize, f: impl FnOnce(Alert<'_>) -> R) -> R {
    if alert.event.message.len() <= limit {
        return f(alert);
    }
    let mut event = alert.event.clone();
    event.message = truncate(&event.message, limit).into();
    f(Alert { event: &event, count: alert.count })
}

/// The body `render` makes of `alert` within `max_bytes`, cutting the event's message as
/// much as needed (all of it, at worst).
///
/// ```
/// use eventer_alert::{Alert, fit_one};
/// use eventer_core::Event;
/// let ev = Event::builder().reason("BackOff").message(&"x".repeat(5000)).build();
/// let body = fit_one(Alert { event: &ev, count: 1 }, 1000, |a| format!("{}: {}", a.event.reason, a.event.message));
/// assert!(body.len() <= 1000 && body.starts_with("BackOff: xx") && body.ends_with('…'));
/// ```
pub fn fit_one(alert: Alert<'_>, max_bytes: usize, render: impl Fn(Alert<'_>) -> String) -> String {
    /// Room left for what a size estimate may miss.
    const SLACK_BYTES: usize = 64;
    let mut limit = alert.event.message.len();
    loop {
        let body = with_message_cut(alert, limit, &render);
        if body.len() <= max_bytes || limit == 0 {
            return body;
        }
        // Shrink in proportion: escaping makes the body grow faster than the message.
        let scaled = limit * max_bytes.saturating_sub(SLACK_BYTES) / body.len();
        limit = scaled.min(limit - 1);
    }
}

/// The URI's target or the option `option` naming the same `what` (the webhook, the
/// robot), not both: `given` is the option's value, set from the target by `from_target`.
///
/// ```
/// let mut webhook: Option<String> = None;
/// eventer_alert::target_or_option("https://h/hook", &mut webhook, "webhook", "the webhook", |t| Ok(t.to_owned()))?;
/// assert_eq!(webhook.as_deref(), Some("https://h/hook"));
/// let err = eventer_alert::target_or_option("https://h/2", &mut webhook, "webhook", "the webhook", |t| Ok(t.to_owned()));
/// assert_eq!(err.unwrap_err().to_string(), "option webhook: the URI already names the webhook; give one of the two");
/// # Ok::<(), eventer_core::Error>(())
/// ```
///
/// # Errors
/// Both given, or what `from_target` returns.
pub fn target_or_option<T>(
    target: &str,
    given: &mut Option<T>,
    option: &str,
    what: &str,
    from_target: impl FnOnce(&str) -> Result<T>,
) -> Result<()> {
    if target.is_empty() {
        return Ok(());
    }
    if given.is_some() {
        return Err(Error::config(format!("option {option}: the URI already names {what}; give one of the two")));
    }
    *given = Some(from_target(target)?);
    Ok(())
}

/// Whether `url` names this machine: `localhost` or a loopback address.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `https://…` unless the URL names loopback: credentials in a URL never cross the network
/// in clear (kube-eventer sends to `https://<host><path>` whatever the scheme), but a local
/// relay or stand-in is used as given.
///
/// ```
/// use eventer_alert::https_unless_loopback;
/// assert_eq!(https_unless_loopback("http://oapi.dingtalk.com/robot/send"), "https://oapi.dingtalk.com/robot/send");
/// assert_eq!(https_unless_loopback("oapi.dingtalk.com/robot/send"), "https://oapi.dingtalk.com/robot/send");
/// assert_eq!(https_unless_loopback("http://127.0.0.1:8080/r"), "http://127.0.0.1:8080/r");
/// ```
pub fn https_unless_loopback(target: &str) -> String {
    let Some(rest) = target.strip_prefix("http://") else {
        return if target.contains("://") { target.to_owned() } else { format!("https://{target}") };
    };
    if url::Url::parse(target).is_ok_and(|u| is_loopback(&u)) { target.to_owned() } else { format!("https://{rest}") }
}

#[cfg(test)]
mod tests {
    use eventer_core::uri::ComponentUri;

    use super::*;

    #[test]
    fn options_defaults_and_errors() {
        let parse = |u: &str| {
            let uri: ComponentUri = u.parse().unwrap();
            ChatSettings::from_options(&mut uri.options())
        };
        assert_eq!(parse("chat:x").unwrap(), ChatSettings::default());
        assert_eq!(ChatSettings::default().timeout, Duration::from_secs(10));
        let err = |u: &str| parse(u).and_then(|c| c.validate()).unwrap_err().to_string();
        assert_eq!(err("chat:x?timeout=0s"), "option timeout: must be more than 0");
        assert_eq!(err("chat:x?template=a&template_file=/b"), "options template and template_file: give one, not both");
        assert!(
            err("chat:x?timeout=soon").starts_with("option timeout: invalid duration"),
            "{}",
            err("chat:x?timeout=soon")
        );
        let chat = parse("chat:x?template_file=/nonexistent/eventer.tpl").unwrap();
        let e = chat.look(&[]).unwrap_err().to_string();
        assert!(e.starts_with("option template_file: cannot read /nonexistent/eventer.tpl: "), "{e}");
    }

    #[test]
    fn templates_are_checked_with_the_sinks_variables() {
        let chat = ChatSettings { template: Some("{{ reason }} in {{ cluster }}".into()), ..ChatSettings::default() };
        assert!(chat.look(&[]).is_err(), "`cluster` is not defined");
        let look = chat.look(&[("cluster", "prod")]).unwrap();
        let ev = eventer_core::Event::builder().reason("BackOff").build();
        let text = look.text(Alert { event: &ev, count: 1 }, &[("cluster", "prod")], "Chat", |_| unreachable!());
        assert_eq!(text, "BackOff in prod");
        // A failure on one alert falls back to the layout.
        let text = look.text(Alert { event: &ev, count: 1 }, &[], "Chat", |_| "layout".to_owned());
        assert_eq!(text, "layout");
    }
}
