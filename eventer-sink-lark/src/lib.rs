//! Lark/Feishu custom-bot sink for eventer: a lone Warning within about a second, bursts
//! as digests that list every alert under Lark's limits (5 requests a second, 100 a
//! minute, 20 KB a body), repeats collapsed with their count, and nothing lost while the
//! bot is unreachable.
//!
//! ```no_run
//! use eventer_core::{Pipeline, Registry};
//! use eventer_core::testing::{VecSource, sample_events};
//!
//! # async fn run() -> eventer_core::Result<()> {
//! let mut registry = Registry::new();
//! eventer_sink_lark::register(&mut registry);
//! let uri = "lark:https://open.feishu.cn/open-apis/bot/v2/hook/$LARK_TOKEN?sign=$LARK_SECRET\
//!            &label=prod&msg_type=interactive&timezone=Asia/Shanghai".parse()?;
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
//! `--sink=lark:<webhook>?…` (alias `feishu:`), the webhook as the bot's settings show it,
//! on `open.feishu.cn` or Lark's `open.larksuite.com`. The common filter options (`level`,
//! default Warning; `namespaces`, `kinds`, `reasons`, `exclude_*`, `name`, `message`) are
//! eventer-core's.
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `sign` | none | the bot's signing secret; every request is signed afresh |
//! | `label` | none | repeatable; lines at the top of each message |
//! | `msg_type` | `text` | `text`, or `interactive` (alias `card`): a message card |
//! | `template`, `template_file` | the text layout | a [minijinja] template for the text of single-alert messages |
//! | `timezone` | `TZ`, else UTC | IANA zone of the times shown (the zone is always shown) |
//! | `group_wait`, `group_interval`, `repeat_interval` | `1s`, `2s`, `1h` | the alert engine's timing |
//! | `budget`, `budget_window` | `4`, `3s` | messages per rolling window: under 5 a second and 100 a minute |
//! | `max_bytes` | `20000` | largest request body (Lark's limit is 20 KB) |
//! | `timeout` | `10s` | one request |
//!
//! Template variables are [`eventer_alert::Template`]'s; an unknown one fails at startup.
//!
//! # Replies
//!
//! Code 0 is delivered; 11232 (rate limit) pauses 5 s and retries; 19021 (signature or
//! clock), 19001/19002 (token), 19022 (IP allow-list) and 19024 (keyword) reject the
//! alerts with an error naming the cause, logged at error level and shown by `/readyz`;
//! 19036 (too large) splits the message and resends; 9499 rejects that message. Non-JSON
//! replies, redirects, 5xx, timeouts and unknown codes are retried by the pipeline until
//! delivered. The webhook and the secret appear in no log, error or `Debug` output.
//!
//! [minijinja]: https://docs.rs/minijinja
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod config;
mod error;
mod message;
mod sign;
mod sink;

pub use config::{DEFAULT_BUDGET, LarkConfig, MsgType};
/// The builder methods every chat sink's settings share (`label`, `timezone`, `alert`, ...).
pub use eventer_alert::ChatConfig;
pub use sink::{FEISHU_SCHEME, LarkFactory, LarkSink, SCHEME, register};
