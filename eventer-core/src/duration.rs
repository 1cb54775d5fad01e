//! Serde helpers for durations written as text (`500ms`, `30s`, `1h30m`), so config
//! structs read the same values in YAML as in URIs:
//! `#[serde(with = "eventer_core::duration")]`, or `eventer_core::duration::option` for
//! `Option<Duration>`.
//!
//! ```
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     #[serde(with = "eventer_core::duration")]
//!     wait: std::time::Duration,
//! }
//! let c: Config = serde_json::from_str(r#"{"wait":"1m30s"}"#).unwrap();
//! assert_eq!(c.wait.as_secs(), 90);
//! ```

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

/// Serialize as humantime text (`1m 30s`).
///
/// # Errors
/// Those of the serializer.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// Deserialize from text, as [`crate::uri::parse_duration`] reads it.
///
/// # Errors
/// When the text is not a duration.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
    crate::uri::parse_duration(&text).map_err(D::Error::custom)
}

/// The same for `Option<Duration>`.
pub mod option {
    use super::{Deserialize, Deserializer, Duration, Serializer};

    /// Serialize `Some` as text, `None` as none.
    ///
    /// # Errors
    /// Those of the serializer.
    // serde's `with` hands the field by reference.
    #[allow(clippy::ref_option)]
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Deserialize an optional duration.
    ///
    /// # Errors
    /// When the text is not a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Text(#[serde(with = "super")] Duration);
        Ok(Option::<Text>::deserialize(d)?.map(|Text(d)| d))
    }
}
