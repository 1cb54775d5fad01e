//! [`WeComSink`] and [`WeChatSink`]: the robot and the app as
//! [`eventer_alert::ChatService`]s; grouping, repeats, the message budget and per-event
//! outcomes are the alert engine's.

use std::{fmt, sync::Arc};

use async_trait::async_trait;
use eventer_alert::{Alert, AlertSink, Answer, ChatService, Digest, Limits};
use eventer_core::{
    Batching, BoxSink, BuildContext, Error, Level, Outcome, Registry, Result, SharedEvent, Sink, SinkFactory,
    telemetry::Metrics, uri::Options,
};
use tracing::{error, warn};

use crate::{
    client::{AppClient, RobotClient},
    config::{WeChatConfig, WeComConfig},
    error::WeComError,
    message::{Envelope, Renderer},
};

/// The group robot's scheme: `--sink=wecom:<webhook>?key=…`.
pub const WECOM_SCHEME: &str = "wecom";
/// kube-eventer's scheme for the WeCom app: `--sink=wechat:?corp_id=…`.
pub const WECHAT_SCHEME: &str = "wechat";

/// A lone alert cut down (after WeCom found it too long) keeps at least this much.
const MIN_SINGLE_BYTES: usize = 500;

/// What an answer means to the engine, logging what the user must act on.
fn answer(service: &str, result: Result<(), WeComError>) -> Answer {
    match result {
        Ok(()) => Answer::Sent,
        Err(e @ WeComError::Throttled { pause, .. }) => {
            let err = Error::from(e);
            error!(pause = ?pause, error = %err, "{service} is throttling; holding alerts until it lifts.");
            Answer::TooFast { pause, error: err }
        }
        Err(e @ WeComError::TooLong { .. }) => Answer::TooLarge(e.into()),
        Err(e @ (WeComError::Refused { .. } | WeComError::Token { .. })) => {
            let err = Error::from(e);
            error!(error = %err, "{service} refused the sink's configuration; fix the URI. Alerts are rejected.");
            Answer::Config(err)
        }
        Err(e @ WeComError::Rejected { .. }) => {
            let err = Error::from(e);
            warn!(error = %err.chain(), "{service} refused a message; its events are rejected.");
            Answer::Content(err)
        }
        Err(e) => Answer::Failed(Error::from(e)),
    }
}

/// The group robot, as the alert engine sees it.
struct Robot {
    renderer: Renderer,
    client: RobotClient,
}

/// The app, as the alert engine sees it.
struct App {
    renderer: Renderer,
    client: AppClient,
}

/// The rendering half of [`ChatService`], the same for both.
macro_rules! render_with_renderer {
    () => {
        fn limits(&self) -> Limits {
            Limits::new(self.renderer.max_bytes()).min_single_bytes(MIN_SINGLE_BYTES)
        }

        fn render_one(&self, alert: Alert<'_>, max_bytes: usize) -> String {
            self.renderer.single(alert, max_bytes)
        }

        fn digest_line(&self, alert: Alert<'_>) -> String {
            self.renderer.digest_line(alert)
        }

        fn render_digest(&self, digest: Digest<'_>) -> String {
            self.renderer.digest(digest)
        }

        /// WeCom limits the content's UTF-8 bytes, not the JSON body's.
        fn line_cost(&self, line: &str) -> usize {
            line.len() + 1
        }
    };
}

#[async_trait]
impl ChatService for Robot {
    const NAME: &'static str = "wecom";
    const TOO_FAST_CODE: &'static str = "45009";

    render_with_renderer!();

    async fn post(&self, body: String) -> Answer {
        answer("WeCom robot", self.client.post(body).await)
    }
}

#[async_trait]
impl ChatService for App {
    const NAME: &'static str = "wechat";
    const TOO_FAST_CODE: &'static str = "45009";

    render_with_renderer!();

    async fn post(&self, body: String) -> Answer {
        answer("WeCom app", self.client.post(body).await)
    }
}

/// Sends Kubernetes events to a WeCom group robot (`wecom:`), on the alert engine: a lone
/// Warning within about a second, bursts as digests under the 2048-byte text limit (4096
/// for markdown), at most 18 messages a minute (WeCom allows 20), repeats collapsed with
/// their count, and per-event outcomes, so nothing is lost while WeCom is down.
pub struct WeComSink {
    config: WeComConfig,
    engine: AlertSink<Robot>,
}

/// Sends Kubernetes events as a WeCom app's messages (`wechat:`, kube-eventer's scheme and
/// text layout), on the alert engine as [`WeComSink`]; the access token is fetched once
/// and reused until shortly before it expires.
pub struct WeChatSink {
    config: WeChatConfig,
    engine: AlertSink<App>,
}

impl fmt::Debug for WeComSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeComSink").field("config", &self.config).finish_non_exhaustive()
    }
}

impl fmt::Debug for WeChatSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeChatSink").field("config", &self.config).finish_non_exhaustive()
    }
}

impl WeComSink {
    /// A sink for `config`. Reads `template_file`; performs no network I/O.
    ///
    /// # Errors
    /// An invalid configuration, time zone or template.
    pub fn new(config: WeComConfig) -> Result<Self> {
        config.validate()?;
        let envelope = Envelope::Robot {
            mentioned_list: config.mentioned_list.clone(),
            mentioned_mobile_list: config.mentioned_mobile_list.clone(),
        };
        let robot = Robot {
            renderer: Renderer::new(&config.chat, config.msg_type, envelope)?,
            client: RobotClient::new(config.webhook(), &config.key, config.chat.timeout)?,
        };
        Ok(WeComSink { engine: AlertSink::new(robot, config.alert.clone())?, config })
    }

    /// Report message counts and the budget to `metrics` (`eventer_wecom_…`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.engine = self.engine.with_metrics(metrics);
        self
    }

    /// The zone times are shown in (`timezone`, else `TZ`, else UTC).
    pub fn timezone(&self) -> &str {
        self.engine.service().renderer.tz_name()
    }
}

impl WeChatSink {
    /// A sink for `config`. Reads `template_file`; performs no network I/O (the token is
    /// fetched with the first message).
    ///
    /// # Errors
    /// An invalid configuration, time zone or template.
    pub fn new(config: WeChatConfig) -> Result<Self> {
        config.validate()?;
        let envelope = Envelope::App {
            to_user: config.to_user.join("|"),
            to_party: config.to_party.join("|"),
            to_tag: config.to_tag.join("|"),
            agent_id: config.agent_id,
        };
        let app = App {
            renderer: Renderer::new(&config.chat, config.msg_type, envelope)?,
            client: AppClient::new(config.endpoint(), &config.corp_id, &config.corp_secret, config.chat.timeout)?,
        };
        Ok(WeChatSink { engine: AlertSink::new(app, config.alert.clone())?, config })
    }

    /// Report message counts and the budget to `metrics` (`eventer_wechat_…`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.engine = self.engine.with_metrics(metrics);
        self
    }

    /// The zone times are shown in (`timezone`, else `TZ`, else UTC).
    pub fn timezone(&self) -> &str {
        self.engine.service().renderer.tz_name()
    }
}

#[async_trait]
impl Sink for WeComSink {
    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        self.engine.send(batch).await
    }

    fn batching(&self) -> Batching {
        self.engine.batching()
    }

    fn preview(&mut self, batch: &[SharedEvent]) -> Option<Vec<String>> {
        self.engine.preview(batch)
    }
}

#[async_trait]
impl Sink for WeChatSink {
    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        self.engine.send(batch).await
    }

    fn batching(&self) -> Batching {
        self.engine.batching()
    }

    fn preview(&mut self, batch: &[SharedEvent]) -> Option<Vec<String>> {
        self.engine.preview(batch)
    }
}

/// Builds [`WeComSink`]s from `wecom:` URIs; the default level is Warning.
#[derive(Debug, Clone, Copy, Default)]
pub struct WeComFactory;

impl SinkFactory for WeComFactory {
    fn options(&self) -> Vec<&'static str> {
        WeComConfig::option_names()
    }

    fn default_level(&self) -> Option<Level> {
        Some(Level::Warning)
    }

    fn build(&self, target: &str, options: &mut Options, cx: &BuildContext) -> Result<BoxSink> {
        let config = WeComConfig::from_options(target, options)?;
        Ok(Box::new(WeComSink::new(config)?.with_metrics(&cx.metrics)))
    }
}

/// Builds [`WeChatSink`]s from kube-eventer's `wechat:` URIs; the default level is
/// Warning, as kube-eventer's.
#[derive(Debug, Clone, Copy, Default)]
pub struct WeChatFactory;

impl SinkFactory for WeChatFactory {
    fn options(&self) -> Vec<&'static str> {
        WeChatConfig::option_names()
    }

    fn default_level(&self) -> Option<Level> {
        Some(Level::Warning)
    }

    fn build(&self, target: &str, options: &mut Options, cx: &BuildContext) -> Result<BoxSink> {
        let config = WeChatConfig::from_options(target, options)?;
        Ok(Box::new(WeChatSink::new(config)?.with_metrics(&cx.metrics)))
    }
}

/// Register the `wecom` and `wechat` schemes.
///
/// ```
/// let mut registry = eventer_core::Registry::new();
/// eventer_sink_wecom::register(&mut registry);
/// assert_eq!(registry.sink_schemes(), ["wechat", "wecom"]);
/// ```
pub fn register(registry: &mut Registry) {
    registry.register_sink(WECOM_SCHEME, Arc::new(WeComFactory));
    registry.register_sink(WECHAT_SCHEME, Arc::new(WeChatFactory));
}
