//! [`WeComSink`] and [`WeChatSink`]: the robot and the app as
//! [`eventer_alert::ChatService`]s; grouping, repeats, the message budget and per-event
//! outcomes are the alert engine's.

use std::sync::Arc;

use async_trait::async_trait;
use eventer_alert::{Alert, Answer, ChatFactory, ChatService, ChatSink, Digest, Limits};
use eventer_core::{Error, Registry, Result};
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
pub struct Robot {
    renderer: Renderer,
    client: RobotClient,
}

impl Robot {
    pub(crate) fn new(config: &WeComConfig) -> Result<Self> {
        let envelope = Envelope::Robot {
            mentioned_list: config.mentioned_list.clone(),
            mentioned_mobile_list: config.mentioned_mobile_list.clone(),
        };
        Ok(Robot {
            renderer: Renderer::new(&config.chat, config.msg_type, envelope)?,
            client: RobotClient::new(config.webhook(), &config.key, config.chat.timeout)?,
        })
    }

    pub(crate) fn zone_name(&self) -> &str {
        self.renderer.tz_name()
    }
}

/// The app, as the alert engine sees it.
pub struct App {
    renderer: Renderer,
    client: AppClient,
}

impl App {
    /// The access token is fetched with the first message.
    pub(crate) fn new(config: &WeChatConfig) -> Result<Self> {
        let envelope = Envelope::App {
            to_user: config.to_user.join("|"),
            to_party: config.to_party.join("|"),
            to_tag: config.to_tag.join("|"),
            agent_id: config.agent_id,
        };
        Ok(App {
            renderer: Renderer::new(&config.chat, config.msg_type, envelope)?,
            client: AppClient::new(config.endpoint(), &config.corp_id, &config.corp_secret, config.chat.timeout)?,
        })
    }

    pub(crate) fn zone_name(&self) -> &str {
        self.renderer.tz_name()
    }
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
pub type WeComSink = ChatSink<WeComConfig>;

/// Sends Kubernetes events as a WeCom app's messages (`wechat:`, kube-eventer's scheme and
/// text layout), on the alert engine as [`WeComSink`]; the access token is fetched once
/// and reused until shortly before it expires.
pub type WeChatSink = ChatSink<WeChatConfig>;

/// Builds [`WeComSink`]s from `wecom:` URIs; the default level is Warning.
pub type WeComFactory = ChatFactory<WeComConfig>;

/// Builds [`WeChatSink`]s from kube-eventer's `wechat:` URIs; the default level is
/// Warning, as kube-eventer's.
pub type WeChatFactory = ChatFactory<WeChatConfig>;

/// Register the `wecom` and `wechat` schemes.
///
/// ```
/// let mut registry = eventer_core::Registry::new();
/// eventer_sink_wecom::register(&mut registry);
/// assert_eq!(registry.sink_schemes(), ["wechat", "wecom"]);
/// ```
pub fn register(registry: &mut Registry) {
    registry.register_sink(WECOM_SCHEME, Arc::new(WeComFactory::new()));
    registry.register_sink(WECHAT_SCHEME, Arc::new(WeChatFactory::new()));
}
