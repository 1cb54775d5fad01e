//! [`SlackSink`]: the webhook as an [`eventer_alert::ChatService`]; grouping, repeats, the
//! message budget and per-event outcomes are the alert engine's.

use std::sync::Arc;

use async_trait::async_trait;
use eventer_alert::{Alert, Answer, ChatFactory, ChatService, ChatSink, Digest, Limits};
use eventer_core::{Error, Registry, Result};
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
pub type SlackSink = ChatSink<SlackConfig>;

/// Builds [`SlackSink`]s from URIs; the default level is Warning.
pub type SlackFactory = ChatFactory<SlackConfig>;

/// The webhook, as the alert engine sees it.
pub struct Webhook {
    renderer: Renderer,
    client: Client,
    max_bytes: usize,
}

impl Webhook {
    pub(crate) fn new(config: &SlackConfig) -> Result<Self> {
        let webhook = config.webhook.as_ref().expect("validate checks the webhook");
        Ok(Webhook {
            renderer: Renderer::new(config)?,
            client: Client::new(webhook, config.chat.timeout)?,
            max_bytes: config.max_bytes,
        })
    }

    pub(crate) fn zone_name(&self) -> &str {
        self.renderer.tz_name()
    }
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

/// Register the `slack` scheme.
///
/// ```
/// let mut registry = eventer_core::Registry::new();
/// eventer_sink_slack::register(&mut registry);
/// assert_eq!(registry.sink_schemes(), ["slack"]);
/// ```
pub fn register(registry: &mut Registry) {
    registry.register_sink(SCHEME, Arc::new(SlackFactory::new()));
}
