//! DingTalk group-robot sink for eventer: kube-eventer's `dingtalk:` sink, minus its
//! defects — it never trips the robot's limit of 20 messages a minute, never drops an
//! alert, and sends a lone Warning within about a second.
//!
//! ```no_run
//! use eventer_core::{Pipeline, Registry};
//! use eventer_core::testing::{VecSource, sample_events};
//!
//! # async fn run() -> eventer_core::Result<()> {
//! let mut registry = Registry::new();
//! eventer_sink_dingtalk::register(&mut registry);
//! let uri = "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=$DINGTALK_TOKEN\
//!            &sign=$DINGTALK_SECRET&label=prod&msg_type=markdown&timezone=Asia/Shanghai".parse()?;
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
//! `--sink=dingtalk:<webhook>?access_token=<t>&…`; the webhook is used as given (http or
//! https; TLS verifies against the system roots and honours `SSL_CERT_FILE`). The common
//! filter options (`level`, default Warning; `namespaces`, `kinds`, `reasons`,
//! `exclude_*`, `name`, `message`) are eventer-core's.
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `access_token` | required | the robot's token |
//! | `sign` | none | the `加签` secret (`SEC…`); every request is signed afresh |
//! | `label` | none | repeatable; lines at the top of each message |
//! | `msg_type` | `text` | `text` or `markdown` |
//! | `cluster_id`, `region` | none | markdown title, and ACK console links when both are set |
//! | `at_mobiles`, `at_user_ids` | none | comma lists to @; `@<who>` is added to the body |
//! | `at_all` | `false` | @ everyone (`@all` is added to the body) |
//! | `template`, `template_file` | kube-eventer's layout | a [minijinja] template for the body of single-alert messages |
//! | `timezone` | `TZ`, else UTC | IANA zone of the times shown (the zone is always shown) |
//! | `group_wait` | `1s` | after the first alert, wait this long for more to send with it |
//! | `group_interval` | `2s` | least time between two sends; alerts arriving sooner go together |
//! | `repeat_interval` | `1h` | the same object and reason is notified at most this often |
//! | `budget`, `budget_window` | `18`, `1m` | messages per rolling window (DingTalk allows 20/min) |
//! | `max_bytes` | `20000` | largest request body (DingTalk's limit) |
//! | `timeout` | `10s` | one request |
//!
//! # Messages
//!
//! A single alert uses kube-eventer's text or markdown layout (with a `Count` line for
//! repeats and the zone in `Timestamp`). When the pending alerts would take more than half
//! of the remaining budget, they go as digests: one line per alert (level, kind,
//! namespace/name, reason, count, time, message), split across as few messages as fit
//! under `max_bytes`. Events about the same object with the same reason collapse into one
//! alert with the highest count; once notified, the alert is quiet for `repeat_interval`.
//! Grouping, digests, repeats, the budget and the pause after 130101 are the alert engine
//! of [`eventer_alert`], shared by eventer's chat sinks; this crate supplies DingTalk's
//! layouts, signing and errcodes.
//!
//! Template variables: `level`, `kind`, `namespace`, `name` (the Event's), `object` and
//! `object_namespace` (the involved object's), `reason`, `message`, `count`, `timestamp`
//! (with zone), `timezone`, `host`, `component`, `uid`, `labels` (a list), `cluster_id`,
//! `region`. An unknown variable fails at startup.
//!
//! # Replies
//!
//! errcode 0 is delivered; 130101 pauses the robot for 10 minutes and retries then;
//! 310000, 300001 and 300005 (signature, timestamp, IP allow-list, token) reject the
//! alerts with an error naming the cause, logged at error level — except a missing
//! keyword, which rejects only that message; 460101 splits the message and resends.
//! Non-JSON replies, redirects, 5xx, timeouts and unknown errcodes are retried by the
//! pipeline until delivered. The token and the secret appear in no log, error or `Debug`
//! output.
//!
//! [minijinja]: https://docs.rs/minijinja
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod config;
mod error;
mod message;
mod sign;
mod sink;

pub use config::{DEFAULT_WEBHOOK, DingTalkConfig, MsgType};
/// The builder methods every chat sink's settings share (`label`, `timezone`, `alert`, ...).
pub use eventer_alert::ChatConfig;
pub use sink::{DingTalkFactory, DingTalkSink, SCHEME, register};
