#![doc = include_str!("../README.md")]

mod client;
pub mod config;
pub mod credentials;
mod error;
pub mod proto;
pub mod schema;
pub mod sign;
mod sink;

pub use config::SlsConfig;
pub use credentials::Credentials;
pub use error::{ServerError, SlsError};
pub use sign::SignatureVersion;
pub use sink::{SCHEME, SlsFactory, SlsSink, register};
