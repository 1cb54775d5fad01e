//! [`LarkSink`]: the bot as an [`eventer_alert::ChatService`]; grouping, repeats, the
//! message budget and per-event outcomes are the alert engine's.

use std::sync::Arc;

use async_trait::async_trait;
use eventer_alert::{Alert, Answer, ChatFactory, ChatService, ChatSink, Digest, Limits};
use eventer_core::{Error, Registry, Result};
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
pub type LarkSink = ChatSink<LarkConfig>;

/// Builds [`LarkSink`]s from URIs; the default level is Warning.
pub type LarkFactory = ChatFactory<LarkConfig>;

/// The bot, as the alert engine sees it.
pub struct Bot {
    renderer: Renderer,
    client: Client,
    max_bytes: usize,
}

impl Bot {
    pub(crate) fn new(config: &LarkConfig) -> Result<Self> {
        let webhook = config.webhook.as_ref().expect("validate checks the webhook");
        // The signature is added to the body after rendering: leave room for it.
        let max_bytes = config.max_bytes - if config.sign.is_some() { SIGN_BYTES } else { 0 };
        Ok(Bot {
            renderer: Renderer::new(config)?,
            client: Client::new(webhook, config.sign.as_ref(), config.chat.timeout)?,
            max_bytes,
        })
    }

    pub(crate) fn zone_name(&self) -> &str {
        self.renderer.tz_name()
    }
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

/// Register the `lark` scheme and its alias `feishu`.
///
/// ```
/// let mut registry = eventer_core::Registry::new();
/// eventer_sink_lark::register(&mut registry);
/// assert_eq!(registry.sink_schemes(), ["feishu", "lark"]);
/// ```
pub fn register(registry: &mut Registry) {
    registry.register_sink(SCHEME, Arc::new(LarkFactory::new()));
    registry.register_sink(FEISHU_SCHEME, Arc::new(LarkFactory::new()));
}
