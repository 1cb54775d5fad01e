//! The crate's error, converted into [`eventer_core::Error`] at the boundary.

use std::time::Duration;

use eventer_core::{Error, ErrorKind};

/// What went wrong talking to the bot or reading the configuration. Messages never hold
/// the webhook (its path is the token) or the secret: transport errors lose their URL.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LarkError {
    /// Invalid configuration.
    #[error("{0}")]
    Config(String),
    /// Connecting, sending or reading failed (timeouts included).
    #[error("cannot reach the lark bot")]
    Transport(#[source] reqwest::Error),
    /// An HTTP status other than 200, without Lark's JSON.
    #[error("lark bot answered HTTP {0}")]
    Status(u16),
    /// HTTP 200 without Lark's JSON (a proxy page).
    #[error("lark bot answered without its JSON reply")]
    NotJson,
    /// The bot refuses this configuration: signature, token, keyword, IP allow-list.
    #[error("lark bot refused the request: {msg} (code {code}); {hint}")]
    Refused { code: i64, msg: String, hint: &'static str },
    /// 11232: over 5 requests a second or 100 a minute.
    #[error("lark bot is rate limiting: {msg} (code {code})")]
    Throttled { code: i64, msg: String, pause: Duration },
    /// 19036: the message is too large.
    #[error("lark bot refused a message as too large: {msg} (code {code})")]
    TooLarge { code: i64, msg: String },
    /// The bot refused this message's content for good.
    #[error("lark bot refused the message: {msg} (code {code})")]
    Rejected { code: i64, msg: String },
    /// A code we do not know; retried, since losing an alert is worse than repeating a try.
    #[error("lark bot answered code {code}: {msg}")]
    Unknown { code: i64, msg: String },
}

impl From<LarkError> for Error {
    fn from(e: LarkError) -> Self {
        let message = e.to_string();
        match e {
            LarkError::Config(_) => Error::config(message),
            LarkError::Transport(source) => Error::new(ErrorKind::Unavailable, message).with_source(source),
            LarkError::Status(code) => match code {
                300..=399 | 408 | 429 | 500.. => Error::new(ErrorKind::Unavailable, message),
                _ => Error::new(ErrorKind::Rejected, message),
            },
            LarkError::NotJson | LarkError::Unknown { .. } => Error::new(ErrorKind::Unavailable, message),
            LarkError::Refused { .. } => Error::new(ErrorKind::Unauthorized, message),
            LarkError::Throttled { pause, .. } => Error::new(ErrorKind::RateLimited, message).with_retry_after(pause),
            LarkError::TooLarge { .. } | LarkError::Rejected { .. } => Error::new(ErrorKind::Rejected, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_retryability() {
        let core = |e: LarkError| Error::from(e);
        assert!(core(LarkError::Status(502)).is_temporary());
        assert!(core(LarkError::Status(429)).is_temporary());
        assert!(!core(LarkError::Status(404)).is_temporary());
        assert!(core(LarkError::NotJson).is_temporary());
        assert!(core(LarkError::Unknown { code: 99991400, msg: "busy".into() }).is_temporary());
        let refused = core(LarkError::Refused { code: 19021, msg: "sign match fail".into(), hint: "check" });
        assert_eq!((refused.kind(), refused.is_temporary()), (ErrorKind::Unauthorized, false));
        let throttled =
            core(LarkError::Throttled { code: 11232, msg: "frequency limited".into(), pause: Duration::from_secs(5) });
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(5)));
        assert!(throttled.is_temporary());
        assert_eq!(core(LarkError::Config("x".into())).kind(), ErrorKind::Config);
    }
}
