//! [`DingTalkSink`]: the robot as an [`eventer_alert::ChatService`]; grouping, repeats,
//! the message budget and per-event outcomes are the alert engine's.

use std::sync::Arc;

use async_trait::async_trait;
use eventer_alert::{Alert, Answer, ChatFactory, ChatService, ChatSink, Digest, Limits};
use eventer_core::{Error, Registry, Result};
use tracing::{error, warn};

use crate::{client::Client, config::DingTalkConfig, error::DingTalkError, message::Renderer};

/// The URI scheme: `--sink=dingtalk:<webhook>?access_token=…`.
pub const SCHEME: &str = "dingtalk";

/// Sends Kubernetes events to a DingTalk group robot.
///
/// - Alerts are grouped for `group_wait` (1 s) after the first arrives, and the same object
///   and reason appears once, with its count.
/// - A batch goes out as one message per alert (kube-eventer's layout) while that uses at
///   most half of the remaining budget; otherwise as digest messages listing every alert,
///   each under `max_bytes`.
/// - At most `budget` (18) messages per rolling `budget_window` (1 min), and at least
///   `group_interval` (2 s) between sends; what cannot go now is deferred until it may,
///   merged with what arrived meanwhile.
/// - An object and reason already notified is not notified again for `repeat_interval`
///   (1 h); such repeats count as delivered.
/// - Outcomes are per event: what DingTalk accepted is never sent again.
///
/// All of this is [`eventer_alert::AlertSink`]; this sink renders and classifies replies.
pub type DingTalkSink = ChatSink<DingTalkConfig>;

/// Builds [`DingTalkSink`]s from kube-eventer URIs; the default level is Warning.
pub type DingTalkFactory = ChatFactory<DingTalkConfig>;

/// The robot, as the alert engine sees it.
pub struct Robot {
    renderer: Renderer,
    client: Client,
    max_bytes: usize,
}

impl Robot {
    pub(crate) fn new(config: &DingTalkConfig) -> Result<Self> {
        Ok(Robot {
            renderer: Renderer::new(config)?,
            client: Client::new(config.webhook(), &config.access_token, config.sign.as_ref(), config.chat.timeout)?,
            max_bytes: config.max_bytes,
        })
    }

    pub(crate) fn zone_name(&self) -> &str {
        self.renderer.tz_name()
    }
}

#[async_trait]
impl ChatService for Robot {
    const NAME: &'static str = "dingtalk";
    const TOO_FAST_CODE: &'static str = "130101";

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
            Err(e @ DingTalkError::Throttled { pause, .. }) => {
                error!(pause = ?pause, "DingTalk robot is throttling (errcode 130101); holding alerts until it lifts.");
                Answer::TooFast { pause, error: e.into() }
            }
            Err(e @ DingTalkError::TooLong { .. }) => Answer::TooLarge(e.into()),
            Err(e @ DingTalkError::Refused { .. }) => {
                let err = Error::from(e);
                error!(error = %err, "DingTalk robot refused the sink's configuration; fix the URI. Alerts are rejected.");
                Answer::Config(err)
            }
            Err(e @ DingTalkError::Rejected { .. }) => {
                let err = Error::from(e);
                warn!(error = %err.chain(), "DingTalk refused a message; its events are rejected.");
                Answer::Content(err)
            }
            Err(e) => Answer::Failed(Error::from(e)),
        }
    }
}

/// Register the `dingtalk` scheme.
///
/// ```
/// let mut registry = eventer_core::Registry::new();
/// eventer_sink_dingtalk::register(&mut registry);
/// assert_eq!(registry.sink_schemes(), ["dingtalk"]);
/// ```
pub fn register(registry: &mut Registry) {
    registry.register_sink(SCHEME, Arc::new(DingTalkFactory::new()));
}
