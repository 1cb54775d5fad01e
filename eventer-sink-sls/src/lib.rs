#![doc = include_str!("../README.md")]

mod client;
pub mod config;
mod error;
mod sink;
// What these modules mark `pub` is what the `bench` module below re-exports.
#[cfg_attr(not(feature = "bench"), allow(unreachable_pub))]
mod credentials;
#[cfg_attr(not(feature = "bench"), allow(unreachable_pub))]
mod proto;
#[cfg_attr(not(feature = "bench"), allow(unreachable_pub))]
mod schema;
#[cfg_attr(not(feature = "bench"), allow(unreachable_pub))]
mod sign;

pub use config::SlsConfig;
pub use error::{ServerError, SlsError};
pub use sign::SignatureVersion;
pub use sink::{SCHEME, SlsFactory, SlsSink, register};

/// The encoder's stages, for the `encode` benchmark (`--features bench`); not a stable API.
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench {
    pub use crate::{
        credentials::Credentials,
        proto::Compressor,
        schema::Schema,
        sign::{SignableRequest, content_md5, sign},
    };
}
