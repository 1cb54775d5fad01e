//! The alert engine of eventer's chat sinks (DingTalk, WeCom, Lark, Slack, ...): a chat
//! sink supplies how an alert and a digest look, its size limit and what the service's
//! answers mean ([`ChatService`]); [`AlertSink`] does the rest — grouping, collapsing
//! repeats with their count, digests that list every alert under the size limit, a
//! message budget per rolling window, pauses when the service says "too fast", and an
//! outcome per event. [`ChatSettings`], [`Zone`] and [`Template`] give every chat sink the
//! same options, time zone handling and user templates.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use async_trait::async_trait;
//! use eventer_alert::{Alert, AlertConfig, AlertSink, Answer, ChatService, Digest, Limits};
//! use eventer_core::{Outcome, SharedEvent, Sink, testing::sample_events};
//!
//! /// A chat that keeps its messages in memory; a real one posts them over HTTP.
//! #[derive(Debug, Default)]
//! struct Chat(Mutex<Vec<String>>);
//!
//! #[async_trait]
//! impl ChatService for Chat {
//!     const NAME: &'static str = "chat";
//!
//!     fn limits(&self) -> Limits {
//!         Limits::new(4000)
//!     }
//!     fn render_one(&self, a: Alert<'_>, max_bytes: usize) -> String {
//!         let text = format!("{} {}: {} (x{})", a.event.level, a.event.reason, a.event.message, a.count);
//!         eventer_alert::truncate(&text, max_bytes)
//!     }
//!     fn digest_line(&self, a: Alert<'_>) -> String {
//!         format!("- {} {} (x{})", a.event.involved_object.name, a.event.reason, a.count)
//!     }
//!     fn render_digest(&self, d: Digest<'_>) -> String {
//!         format!("alerts {}-{} of {}:\n{}", d.first, d.first + d.lines.len() - 1, d.total, d.lines.join("\n"))
//!     }
//!     async fn post(&self, body: String) -> Answer {
//!         self.0.lock().unwrap().push(body);
//!         Answer::Sent
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let mut sink = AlertSink::new(Chat::default(), AlertConfig::default())?;
//! let events: Vec<SharedEvent> = sample_events().into_iter().map(Arc::new).collect();
//! let outcomes = sink.send(&events).await;
//! assert!(outcomes.iter().all(|o| matches!(o, Outcome::Delivered)));
//! // Four alerts and a budget of 18: one message each.
//! let sent = sink.service().0.lock().unwrap().clone();
//! assert_eq!(sent.len(), 4);
//! assert!(sent[0].starts_with("Warning BackOff: "), "{}", sent[0]);
//! # Ok::<(), eventer_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! A chat sink's settings implement [`ChatConfig`]: its own options, those every chat
//! sink shares ([`ChatSettings`]: labels, template, time zone, timeout) and the engine's
//! ([`AlertConfig`]) read from a URI or config file options, and the service they make.
//! [`ChatSink`] is then the sink and [`ChatFactory`] builds it for a scheme; [`Look`] gives
//! the renderer the labels, zone and template, and kube-eventer's text layout. The
//! [`ChatConfig`] example is a whole chat sink; `docs/writing-a-sink.md` shows one posting
//! over HTTP.
//!
//! # Waiting
//!
//! The engine never sleeps in [`Sink::send`](eventer_core::Sink::send): alerts that
//! cannot go yet (within `group_interval` of the last send, over the budget, paused) get
//! [`eventer_core::Outcome::Defer`] with the time to wait, and the pipeline offers them
//! again then, merged with what arrived meanwhile. Deferring is not failing: nothing is
//! logged or counted as a failure.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod chat;
mod config;
mod engine;
mod render;
mod sink;

pub use chat::{
    ChatConfig, ChatSettings, Look, fit_one, https_unless_loopback, is_loopback, target_or_option, with_message_cut,
};
pub use config::AlertConfig;
pub use engine::{AlertSink, Answer, ChatService, Digest, Limits};
pub use render::{Alert, Template, Zone, json_len, truncate};
pub use sink::{ChatFactory, ChatSink};
