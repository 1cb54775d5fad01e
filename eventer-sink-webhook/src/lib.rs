//! Webhook sink for eventer: kube-eventer's `webhook:` sink, whose Go text/template bodies
//! render byte for byte (from the same ConfigMap), with no event lost: retries with
//! backoff, `Retry-After`, bounded concurrency, and per-event outcomes.
//!
//! ```no_run
//! use eventer_core::{Pipeline, Registry};
//! use eventer_core::testing::{VecSource, sample_events};
//!
//! # async fn run() -> eventer_core::Result<()> {
//! let mut registry = Registry::new();
//! eventer_sink_webhook::register(&mut registry);
//! let uri = "webhook:https://hooks.example.com/k8s?method=POST&header=Content-Type=application/json\
//!            &template={\"text\":\"{{.Reason}}: {{js .Message}}\"}&level=Warning&sign_secret=$WEBHOOK_SECRET"
//!     .parse()?;
//! let sink = registry.build_sink(&uri, &Default::default())?;
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
//! `--sink=webhook:<url>?<options>`. Options the sink does not know stay in the URL as its
//! query parameters (a WeCom robot's `?key=`); eventer's own are not sent. The common
//! filter options (`level`, `namespaces`, `kinds`, `reasons`, `exclude_*`, `name`,
//! `message`) are eventer-core's; with no `level`, every event is sent, as kube-eventer.
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `method` | `GET` | the HTTP method (kube-eventer's default) |
//! | `header` | none | `Name=Value`, repeatable; the value may contain `=` |
//! | `custom_body_configmap` | none | a ConfigMap whose key `content` holds the template; watched |
//! | `custom_body_configmap_namespace` | `default` | its namespace |
//! | `template`, `template_file` | kube-eventer's body | the template inline, or in a file |
//! | `format` | `template` | `json`: the event object's own JSON instead of a template |
//! | `batch` | `1` | above 1: a JSON array of up to this many bodies per request |
//! | `sign_secret` | none | adds `X-Eventer-Signature: sha256=<hex HMAC-SHA256 of the body>` |
//! | `timeout` | `10s` | one request |
//! | `concurrency` | `4` | requests in flight at once (1: strictly in order) |
//! | `reason` | none | a regex the reason must match (kube-eventer's option) |
//! | `timezone` | `TZ`, else `/etc/localtime`, else UTC | the IANA zone times print in (kube-eventer: the process's) |
//!
//! # Templates
//!
//! Go's text/template, with kube-eventer's data: the core/v1 Event under Go's field names
//! (`.Type`, `.Reason`, `.Message`, `.Count`, `.InvolvedObject.Kind`, `.Source.Host`,
//! `.LastTimestamp`, ...; ObjectMeta's fields promoted: `.Name`, `.Namespace`, `.Labels`),
//! times printed as Go prints a `time.Time` in the process's zone (`2026-11-30 08:14:30 +0000
//! UTC`, `2026-11-30 16:14:30 +0800 CST` with `TZ=Asia/Shanghai`), `"` removed
//! from `.Message` and `.LastTimestamp` falling back to `eventTime`, as kube-eventer does.
//! `if`/`else if`/`range`/`with`/`else`, `break`/`continue`, variables, pipelines, trim
//! markers and every builtin function but `call` work as in Go; `define`, `template` and
//! `block` are refused when the template is read. A template is read at start: one that
//! does not parse, or names a field an Event lacks, stops eventer with exit code 2.
//!
//! # Delivery
//!
//! 2xx is delivered; 429, 408, 5xx, timeouts and connection failures are retried with
//! backoff (after `Retry-After` when given); other statuses reject the event, logged with
//! the status and the start of the answer (secrets redacted). Every request carries
//! `X-Eventer-Event-Id` (the Event's uid and resourceVersion; comma-separated for a batch),
//! the same on every retry, so that a receiver can drop a repeat.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod config;
mod data;
mod gotmpl;
mod render;
mod sink;

pub use client::{EVENT_ID_HEADER, SIGNATURE_HEADER};
pub use config::{Format, MAX_BATCH, MAX_CONCURRENCY, WebhookConfig};
pub use render::DEFAULT_TEMPLATE;
pub use sink::{SCHEME, WebhookFactory, WebhookSink, register};
