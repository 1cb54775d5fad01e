//! Loopback fakes of Alibaba Cloud Log Service (SLS) PutLogs, of the ECS metadata service
//! and of STS's `AssumeRoleWithOIDC` (RRSA), and ACK's add-on token file, for eventer's tests.
//!
//! [`FakeSls`] checks every request as SLS would (protocols.md part B): signature v1 or v4
//! (recomputed independently, see [`auth`]), `Content-MD5`, `x-log-bodyrawsize` and LZ4,
//! the protobuf, the `Host` header, the request limits and the log time window. It records
//! the log groups it accepts, answers refusals with SLS's error JSON and
//! `x-log-requestid`, and can be told to fail the next requests, to refuse requests holding
//! a marked log or over a size, and to answer late.
//!
//! ```
//! use eventer_fake_sls::{Failure, FakeSls};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let sls = FakeSls::start().await;
//! sls.add_key("id", "secret");
//! sls.fail_next(2, Failure::ServerBusy);
//! assert!(sls.endpoint().starts_with("http://127.0.0.1:"));
//! assert!(sls.writes().is_empty());
//! # });
//! ```

pub mod auth;
mod metadata;
pub mod proto;
mod server;
mod sts;

pub use metadata::{FakeMetadata, StsCredentials};
pub use server::{Failure, FakeSls, PROJECT_HOST_SUFFIX, REGION, Refusal, Write};
pub use sts::{FakeSts, OidcCall, addon_token_config};
