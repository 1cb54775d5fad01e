//! Slack incoming-webhook sink for eventer: a lone Warning within about a second, bursts
//! as digests that list every alert at about one message a second (Slack's limit),
//! repeats collapsed with their count, `429 Retry-After` honoured, and nothing lost while
//! Slack is unreachable.
//!
//! ```no_run
//! use eventer_core::{Pipeline, Registry};
//! use eventer_core::testing::{VecSource, sample_events};
//!
//! # async fn run() -> eventer_core::Result<()> {
//! let mut registry = Registry::new();
//! eventer_sink_slack::register(&mut registry);
//! let uri = "slack:$SLACK_WEBHOOK?label=prod&mention=here&timezone=Europe/Berlin".parse()?;
//! let sink = registry.build_sink(&uri, &Default::default())?; // level defaults to Warning
//! let report = Pipeline::new(Box::new(VecSource::new(sample_events())))
//!     .route(sink.into_route()?)
//!     .run(std::future::pending())
//!     .await?;
//! assert_eq!(report.sinks[0].delivered, 3);
//! # Ok(()) }
//! ```
//!
//! # URI options
//!
//! `--sink=slack:https://hooks.slack.com/services/T…/B…/X…?…`. The common filter options
//! (`level`, default Warning; `namespaces`, `kinds`, `reasons`, `exclude_*`, `name`,
//! `message`) are eventer-core's.
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `label` | none | repeatable; bold lines at the top of each message |
//! | `msg_type` | `blocks` | `blocks` (mrkdwn sections, a plain notification text) or `text` (one mrkdwn text) |
//! | `mention` | none | comma list: `here`, `channel`, `everyone`, user ids `U…`, user-group ids `S…` |
//! | `template`, `template_file` | the mrkdwn layout | a [minijinja] template for the mrkdwn of single-alert messages |
//! | `timezone` | `TZ`, else UTC | IANA zone of the times shown (the zone is always shown) |
//! | `group_wait`, `group_interval`, `repeat_interval` | `1s`, `2s`, `1h` | the alert engine's timing |
//! | `budget`, `budget_window` | `3`, `3s` | messages per rolling window: Slack's one a second, in short bursts |
//! | `max_bytes` | `12000` | largest request body (2000 to 40000) |
//! | `timeout` | `10s` | one request |
//!
//! Template variables are [`eventer_alert::Template`]'s; an unknown one fails at startup.
//! Event text is escaped for mrkdwn (`&`, `<`, `>`); a template's output is sent as is.
//!
//! # Replies
//!
//! 200 `ok` is delivered; 429 pauses for its `Retry-After` (5 s without one) and retries;
//! 403, 404 (`no_service`, `channel_not_found`) and 410 (`channel_is_archived`) reject the
//! alerts with an error naming the cause, logged at error level and shown by `/readyz`;
//! 400 `invalid_blocks` or `msg_too_long` splits the message and resends, other 400s
//! reject that message. Redirects, 5xx, timeouts and unexpected bodies are retried by the
//! pipeline until delivered. The webhook appears in no log, error or `Debug` output.
//!
//! [minijinja]: https://docs.rs/minijinja
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod config;
mod error;
mod message;
mod sink;

pub use config::{DEFAULT_BUDGET, MsgType, SlackConfig};
/// The builder methods every chat sink's settings share (`label`, `timezone`, `alert`, ...).
pub use eventer_alert::ChatConfig;
pub use sink::{SCHEME, SlackFactory, SlackSink, register};
