//! WeCom (企业微信) sinks for eventer: `wecom:` for a group robot, and kube-eventer's
//! `wechat:` for a WeCom app — both on the alert engine, so a lone Warning arrives within
//! about a second, a burst becomes digests that list every alert under WeCom's limits,
//! repeats collapse with their count, and nothing is lost while WeCom is down.
//!
//! ```
//! use eventer_core::{Pipeline, Registry};
//! use eventer_core::testing::{VecSource, sample_events};
//! use eventer_fake_wecom::FakeWeCom;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let wecom = FakeWeCom::builder().key("k3y").start().await; // a stand-in for qyapi.weixin.qq.com
//! let mut registry = Registry::new();
//! eventer_sink_wecom::register(&mut registry);
//! // wecom:https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=$WECOM_KEY&label=prod
//! let uri = format!("{}&label=prod&mentioned_list=@all", wecom.robot_uri()).parse()?;
//! let sink = registry.build_sink(&uri, &Default::default())?; // level defaults to Warning
//! let report = Pipeline::new(Box::new(VecSource::new(sample_events())))
//!     .route(sink.into_route()?)
//!     .run(std::future::pending())
//!     .await?;
//! assert_eq!(report.sinks[0].delivered, 3);
//! assert!(wecom.messages()[0].content.starts_with("prod\nLevel:Warning \n"));
//! # Ok::<(), eventer_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # URI options
//!
//! `--sink=wecom:<webhook>?key=<key>&…` (the robot's webhook URL as WeCom gives it) or
//! `--sink=wechat:?corp_id=<id>&corp_secret=<secret>&agent_id=<n>&…` (kube-eventer's).
//! The common filter options (`level`, default Warning; `namespaces`, `kinds`, `reasons`,
//! `exclude_*`, `name`, `message`) are eventer-core's.
//!
//! | option | sink | default | meaning |
//! |---|---|---|---|
//! | `key` | wecom | required | the robot's key |
//! | `mentioned_list`, `mentioned_mobile_list` | wecom | none | comma lists of user ids (`@all`) and mobiles to @ (text messages) |
//! | `corp_id`, `corp_secret`, `agent_id` | wechat | required | the corp and the app |
//! | `to_user` | wechat | `@all` | comma list of user ids; `to_party`, `to_tag` likewise |
//! | `endpoint` | wechat | `https://qyapi.weixin.qq.com` | WeCom's API, for private deployments |
//! | `label` | both | none | repeatable; lines at the top of each message |
//! | `msg_type` | both | `text` | `text` (2048 bytes) or `markdown` (4096 bytes) |
//! | `template`, `template_file` | both | kube-eventer's layout | a [minijinja] template for single-alert messages |
//! | `timezone` | both | `TZ`, else UTC | IANA zone of the times shown |
//! | `group_wait`, `group_interval`, `repeat_interval` | both | `1s`, `2s`, `1h` | the alert engine's timing |
//! | `budget`, `budget_window` | both | `18`, `1m` | messages per rolling window (WeCom allows 20/min) |
//! | `timeout` | both | `10s` | one request |
//!
//! # Replies
//!
//! errcode 0 is delivered; 45009 (over the frequency limit) pauses the sink a minute and
//! retries then; 93000 (the robot's key), 40013/40001 (corp id, secret), 40056 (agent id),
//! 81013 (no valid receiver) and 60020 (IP not trusted) reject the alerts with an error
//! naming what to fix, logged at error level; 40014/42001 (the app's token refused or
//! expired) fetch a new token and resend once; 40058 over a length splits the message
//! and resends. Non-JSON replies, redirects, 5xx, timeouts and unknown errcodes are
//! retried by the pipeline until delivered. The key, the secret and tokens appear in no
//! log, error or `Debug` output.
//!
//! [minijinja]: https://docs.rs/minijinja
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod config;
mod error;
mod message;
mod sink;

pub use config::{DEFAULT_ENDPOINT, DEFAULT_WEBHOOK, MsgType, WeChatConfig, WeComConfig};
/// The builder methods every chat sink's settings share (`label`, `timezone`, `alert`, ...).
pub use eventer_alert::ChatConfig;
pub use sink::{WECHAT_SCHEME, WECOM_SCHEME, WeChatFactory, WeChatSink, WeComFactory, WeComSink, register};
