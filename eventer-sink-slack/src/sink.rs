//! [`SlackSink`]: the webhook as an [`eventer_alert::ChatService`]; grouping, repeats, the
//! message budget and per-event outcomes are the alert engine's.

use std::{fmt, sync::Arc};

use async_trait::async_trait;
use eventer_alert::{Alert, AlertSink, Answer, ChatService, Digest, Limits};
use eventer_core::{
    Batching, BoxSink, BuildContext, Error, Level, Outcome, Registry, Result, SharedEvent, Sink, SinkFactory,
    uri::Options,
};
use tracing::{error, warn};

use crate::{
    client::Client,
    config::SlackConfig,
    error::SlackError,
    message::{Renderer, SECTION_COST_PER_LINE},
};

/// The URI scheme: `--sink=slack:<webhook>`.
pub const SCHEME: &str = "slack";

/// Sends Kubernetes events to a Slack incoming webhook: what
/// [`eventer_alert::AlertSink`] does for every chat sink (grouping, repeats collapsed
/// with their count, digests under the size limit, a budget of about one message a
/// second, per-event outcomes), with Slack's layouts and answers.
pub struct SlackSink {
    config: SlackConfig,
    engine: AlertSink<Webhook>,
}

/// The webhook, as the alert engine sees it.
struct Webhook {
    renderer: Renderer,
    client: Client,
    max_bytes: usize,
}

#[async_trait]
impl ChatService for Webhook {
    const NAME: &'static str = "slack";
    const TOO_FAST_CODE: &'static str = "429";

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

    fn line_cost(&self, line: &str) -> usize {
        eventer_alert::json_len(line) + 2 + SECTION_COST_PER_LINE
    }

    async fn post(&self, body: String) -> Answer {
        match self.client.post(body).await {
            Ok(()) => Answer::Sent,
            Err(e @ SlackError::Throttled { pause }) => {
                warn!(pause = ?pause, "Slack is rate limiting the webhook (HTTP 429); holding alerts for its Retry-After.");
                Answer::TooFast { pause, error: e.into() }
            }
            Err(e @ SlackError::TooLarge { .. }) => Answer::TooLarge(e.into()),
            Err(e @ SlackError::Refused { .. }) => {
                let err = Error::from(e);
                error!(error = %err, "Slack refused the sink's webhook; fix the URI. Alerts are rejected.");
                Answer::Config(err)
            }
            Err(e @ SlackError::Rejected { .. }) => {
                let err = Error::from(e);
                warn!(error = %err.chain(), "Slack refused a message; its events are rejected.");
                Answer::Content(err)
            }
            Err(e) => Answer::Failed(Error::from(e)),
        }
    }
}

impl fmt::Debug for SlackSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackSink").field("config", &self.config).finish_non_exhaustive()
    }
}

impl SlackSink {
    /// A sink for `config`. Reads `template_file`; performs no network I/O.
    ///
    /// # Errors
    /// An invalid configuration, time zone or template.
    pub fn new(config: SlackConfig) -> Result<Self> {
        config.validate()?;
        let webhook = config.webhook.as_ref().expect("validate checks the webhook");
        let hook = Webhook {
            renderer: Renderer::new(&config)?,
            client: Client::new(webhook, config.chat.timeout)?,
            max_bytes: config.max_bytes,
        };
        Ok(SlackSink { engine: AlertSink::new(hook, config.alert.clone())?, config })
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
impl Sink for SlackSink {
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

/// Builds [`SlackSink`]s from URIs; the default level is Warning.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlackFactory;

impl SinkFactory for SlackFactory {
    fn options(&self) -> Vec<&'static str> {
        SlackConfig::option_names()
    }

    fn default_level(&self) -> Option<Level> {
        Some(Level::Warning)
    }

    fn build(&self, target: &str, options: &mut Options, cx: &BuildContext) -> Result<BoxSink> {
        let config = SlackConfig::from_options(target, options)?;
        Ok(Box::new(SlackSink::new(config)?.with_metrics(&cx.metrics)))
    }
}

/// Register the `slack` scheme.
///
/// ```
/// let mut registry = eventer_core::Registry::new();
/// eventer_sink_slack::register(&mut registry);
/// assert_eq!(registry.sink_schemes(), ["slack"]);
/// ```
pub fn register(registry: &mut Registry) {
    registry.register_sink(SCHEME, Arc::new(SlackFactory));
}
