//! The crate's error, converted into [`eventer_core::Error`] at the boundary.

use std::time::Duration;

use eventer_core::{Error, ErrorKind};

/// What went wrong talking to the robot or reading the configuration. Messages never hold
/// the token or the secret: transport errors are stripped of their URL.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DingTalkError {
    /// Invalid configuration.
    #[error("{0}")]
    Config(String),
    /// Connecting, sending or reading failed (timeouts included).
    #[error("cannot reach the dingtalk robot")]
    Transport(#[source] reqwest::Error),
    /// An HTTP status other than 200.
    #[error("dingtalk robot answered HTTP {0}")]
    Status(u16),
    /// HTTP 200 without DingTalk's JSON (a proxy page, a throttling page).
    #[error("dingtalk robot answered without its JSON reply")]
    NotJson,
    /// The robot refuses this configuration: signature, keyword, IP allow-list, token.
    #[error("dingtalk robot refused the request: {errmsg} (errcode {errcode}); {hint}")]
    Refused { errcode: i64, errmsg: String, hint: &'static str },
    /// 130101: over 20 messages a minute; the robot is blocked for a while.
    #[error("dingtalk robot is throttling: {errmsg} (errcode {errcode})")]
    Throttled { errcode: i64, errmsg: String, pause: Duration },
    /// 460101: the message is too long.
    #[error("dingtalk robot refused a message as too long: {errmsg} (errcode {errcode})")]
    TooLong { errcode: i64, errmsg: String },
    /// The robot refused this message's content for good.
    #[error("dingtalk robot refused the message: {errmsg} (errcode {errcode})")]
    Rejected { errcode: i64, errmsg: String },
    /// An errcode we do not know; retried, since losing an alert is worse than repeating a try.
    #[error("dingtalk robot answered errcode {errcode}: {errmsg}")]
    Unknown { errcode: i64, errmsg: String },
}

impl DingTalkError {
    pub(crate) fn config(message: impl Into<String>) -> Self {
        DingTalkError::Config(message.into())
    }
}

impl From<DingTalkError> for Error {
    fn from(e: DingTalkError) -> Self {
        let message = e.to_string();
        match e {
            DingTalkError::Config(_) => Error::config(message),
            DingTalkError::Transport(source) => Error::new(ErrorKind::Unavailable, message).with_source(source),
            DingTalkError::Status(code) => match code {
                300..=399 | 408 | 429 | 500.. => Error::new(ErrorKind::Unavailable, message),
                _ => Error::new(ErrorKind::Rejected, message),
            },
            DingTalkError::NotJson | DingTalkError::Unknown { .. } => Error::new(ErrorKind::Unavailable, message),
            DingTalkError::Refused { .. } => Error::new(ErrorKind::Unauthorized, message),
            DingTalkError::Throttled { pause, .. } => {
                Error::new(ErrorKind::RateLimited, message).with_retry_after(pause)
            }
            DingTalkError::TooLong { .. } | DingTalkError::Rejected { .. } => Error::new(ErrorKind::Rejected, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_retryability() {
        let core = |e: DingTalkError| Error::from(e);
        assert!(core(DingTalkError::Status(502)).is_temporary());
        assert!(core(DingTalkError::Status(302)).is_temporary());
        assert!(core(DingTalkError::Status(429)).is_temporary());
        assert!(!core(DingTalkError::Status(404)).is_temporary());
        assert!(core(DingTalkError::NotJson).is_temporary());
        assert!(core(DingTalkError::Unknown { errcode: 90030, errmsg: "webhook over limit".into() }).is_temporary());
        let refused = core(DingTalkError::Refused { errcode: 310000, errmsg: "sign not match".into(), hint: "check" });
        assert_eq!((refused.kind(), refused.is_temporary()), (ErrorKind::Unauthorized, false));
        let throttled = core(DingTalkError::Throttled {
            errcode: 130101,
            errmsg: "send too fast".into(),
            pause: Duration::from_secs(600),
        });
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(600)));
        assert!(throttled.is_temporary());
        assert_eq!(core(DingTalkError::config("missing required option access_token")).kind(), ErrorKind::Config);
    }
}
