//! Loopback fakes of chat services, for eventer's tests: the Lark/Feishu custom bot
//! ([`lark`]) and Slack incoming webhooks ([`slack`]).
//!
//! Each checks what the real service checks (credentials, Lark's signature and its
//! one-hour window, message shapes and sizes), enforces the service's rate limits with
//! its own answers, records every request with its arrival time, and takes injected
//! failures. Signature checks are written here independently of the sinks' code, so a
//! shared mistake cannot make both agree.
//!
//! ```
//! use std::time::Duration;
//! use eventer_fake_chat::{lark::FakeLark, slack::FakeSlack};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let bot = FakeLark::builder().token("t0k").secret("s3cret").start().await;
//! assert!(bot.sink_uri().starts_with("lark:http://127.0.0.1:"));
//! let hook = FakeSlack::builder().start().await;
//! assert!(hook.sink_uri().starts_with("slack:http://127.0.0.1:"));
//! // Nothing arrives, so the wait gives up after the timeout.
//! assert!(!bot.wait_until(Duration::from_millis(10), |b| !b.messages().is_empty()).await);
//! # });
//! ```

mod common;
pub mod lark;
pub mod slack;

pub use common::{Attempt, Failure};
/// What every fake chat service needs, for the fakes of other services too: serving on a
/// loopback port, waiting on conditions, measuring request rates.
pub mod support {
    pub use crate::common::{peak_rate, serve, wait_until};
}
