//! [`LarkSink`]: the bot as an [`eventer_alert::ChatService`]; grouping, repeats, the
//! message budget and per-event outcomes are the alert engine's.

use std::{fmt, sync::Arc};

use async_trait::async_trait;
use eventer_alert::{Alert, AlertSink, Answer, ChatService, Digest, Limits};
use eventer_core::{
    Batching, BoxSink, BuildContext, Error, Level, Outcome, Registry, Result, SharedEvent, Sink, SinkFactory,
    uri::Options,
};
use tracing::{error, warn};

use crate::{client::Client, config::LarkConfig, error::LarkError, message::Renderer, sign::SIGN_BYTES};

/// The URI scheme: `--sink=lark:<webhook>`.
pub const SCHEME: &str = "lark";
/// The same sink under Feishu's name: `--sink=feishu:<webhook>`.
pub const FEISHU_SCHEME: &str = "feishu";

/// Sends Kubernetes events to a Lark/Feishu custom bot: what
/// [`eventer_alert::AlertSink`] does for every chat sink (grouping, repeats collapsed
/// with their count, digests under the size limit, a budget under Lark's 5 a second and
/// 100 a minute, per-event outcomes), with Lark's layouts, signature and codes.
pub struct LarkSink {
    config: LarkConfig,
    engine: AlertSink<Bot>,
}

/// The bot, as the alert engine sees it.
struct Bot {
    renderer: Renderer,
    client: Client,
    max_bytes: usize,
}

#[async_trait]
impl ChatService for Bot {
    const NAME: &'static str = "lark";
    const TOO_FAST_CODE: &'static str = "11232";

    fn limits(&self) -> Limits {
        Limits::new(self.max_bytes)
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

    async fn post(&self, body: String) -> Answer {
        match self.client.post(body).await {
            Ok(()) => Answer::Sent,
            Err(e @ LarkError::Throttled { pause, .. }) => {
                warn!(pause = ?pause, "Lark bot is rate limiting (code 11232); holding alerts for a moment.");
                Answer::TooFast { pause, error: e.into() }
            }
            Err(e @ LarkError::TooLarge { .. }) => Answer::TooLarge(e.into()),
            Err(e @ LarkError::Refused { .. }) => {
                let err = Error::from(e);
                error!(error = %err, "Lark bot refused the sink's configuration; fix the URI. Alerts are rejected.");
                Answer::Config(err)
            }
            Err(e @ LarkError::Rejected { .. }) => {
                let err = Error::from(e);
                warn!(error = %err.chain(), "Lark refused a message; its events are rejected.");
                Answer::Content(err)
            }
            Err(e) => Answer::Failed(Error::from(e)),
        }
    }
}

impl fmt::Debug for LarkSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LarkSink").field("config", &self.config).finish_non_exhaustive()
    }
}

impl LarkSink {
    /// A sink for `config`. Reads `template_file`; performs no network I/O.
    ///
    /// # Errors
    /// An invalid configuration, time zone or template.
    pub fn new(config: LarkConfig) -> Result<Self> {
        config.validate()?;
        let webhook = config.webhook.as_ref().expect("validate checks the webhook");
        // The signature is added to the body after rendering: leave room for it.
        let max_bytes = config.max_bytes - if config.sign.is_some() { SIGN_BYTES } else { 0 };
        let bot = Bot {
            renderer: Renderer::new(&config)?,
            client: Client::new(webhook, config.sign.as_ref(), config.chat.timeout)?,
            max_bytes,
        };
        Ok(LarkSink { engine: AlertSink::new(bot, config.alert.clone())?, config })
    }

    /// Report message counts and the budget to `metrics` (labelled with the sink's name).
    #[must_use]
    pub fn with_metrics(mut self, metrics: &eventer_core::telemetry::Metrics) -> Self {
        self.engine = self.engine.with_metrics(metrics);
        self
    }

    /// The zone times are shown in (`timezone`, else `TZ`, else UTC).
    pub fn timezone(&self) -> &str {
        self.engine.service().renderer.tz_name()
    }
}

#[async_trait]
impl Sink for LarkSink {
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

/// Builds [`LarkSink`]s from URIs; the default level is Warning.
#[derive(Debug, Clone, Copy, Default)]
pub struct LarkFactory;

impl SinkFactory for LarkFactory {
    fn options(&self) -> Vec<&'static str> {
        LarkConfig::option_names()
    }

    fn default_level(&self) -> Option<Level> {
        Some(Level::Warning)
    }

    fn build(&self, target: &str, options: &mut Options, cx: &BuildContext) -> Result<BoxSink> {
        let config = LarkConfig::from_options(target, options)?;
        Ok(Box::new(LarkSink::new(config)?.with_metrics(&cx.metrics)))
    }
}

/// Register the `lark` scheme and its alias `feishu`.
///
/// ```
/// let mut registry = eventer_core::Registry::new();
/// eventer_sink_lark::register(&mut registry);
/// assert_eq!(registry.sink_schemes(), ["feishu", "lark"]);
/// ```
pub fn register(registry: &mut Registry) {
    registry.register_sink(SCHEME, Arc::new(LarkFactory));
    registry.register_sink(FEISHU_SCHEME, Arc::new(LarkFactory));
}
