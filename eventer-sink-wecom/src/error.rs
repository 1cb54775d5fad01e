//! The crate's error, converted into [`eventer_core::Error`] at the boundary.

use std::time::Duration;

use eventer_core::{Error, ErrorKind};

/// What went wrong talking to WeCom or reading the configuration. `peer` names the robot
/// or the app. Messages never hold the key, the secret or a token: transport errors are
/// stripped of their URL and WeCom's errmsg is redacted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WeComError {
    /// Invalid configuration.
    #[error("{0}")]
    Config(String),
    /// Connecting, sending or reading failed (timeouts included).
    #[error("cannot reach the {peer}")]
    Transport {
        peer: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// An HTTP status other than 200.
    #[error("{peer} answered HTTP {status}")]
    Status { peer: &'static str, status: u16 },
    /// HTTP 200 without WeCom's JSON (a proxy page).
    #[error("{peer} answered without its JSON reply")]
    NotJson { peer: &'static str },
    /// WeCom refuses this configuration: key, corp id or secret, agent id, receivers, IP.
    #[error("{peer} refused the request: {errmsg} (errcode {errcode}); {hint}")]
    Refused { peer: &'static str, errcode: i64, errmsg: String, hint: &'static str },
    /// 45009 and kin: over the frequency limit.
    #[error("{peer} is throttling: {errmsg} (errcode {errcode})")]
    Throttled { peer: &'static str, errcode: i64, errmsg: String, pause: Duration },
    /// 40058 over a length: the message is too long.
    #[error("{peer} refused a message as too long: {errmsg} (errcode {errcode})")]
    TooLong { peer: &'static str, errcode: i64, errmsg: String },
    /// WeCom refused this message's content for good.
    #[error("{peer} refused the message: {errmsg} (errcode {errcode})")]
    Rejected { peer: &'static str, errcode: i64, errmsg: String },
    /// The access token was refused (40014, 42001): fetch a new one and resend once.
    #[error("{peer} refused the access token: {errmsg} (errcode {errcode})")]
    Token { peer: &'static str, errcode: i64, errmsg: String },
    /// An errcode we do not know; retried, since losing an alert is worse than repeating a try.
    #[error("{peer} answered errcode {errcode}: {errmsg}")]
    Unknown { peer: &'static str, errcode: i64, errmsg: String },
}

impl WeComError {
    pub(crate) fn config(message: impl Into<String>) -> Self {
        WeComError::Config(message.into())
    }
}

impl From<WeComError> for Error {
    fn from(e: WeComError) -> Self {
        let message = e.to_string();
        match e {
            WeComError::Config(_) => Error::config(message),
            WeComError::Transport { source, .. } => Error::new(ErrorKind::Unavailable, message).with_source(source),
            WeComError::Status { status, .. } => match status {
                300..=399 | 408 | 429 | 500.. => Error::new(ErrorKind::Unavailable, message),
                _ => Error::new(ErrorKind::Rejected, message),
            },
            WeComError::NotJson { .. } | WeComError::Unknown { .. } => Error::new(ErrorKind::Unavailable, message),
            // A token refused even when fresh: the credentials are at fault.
            WeComError::Refused { .. } | WeComError::Token { .. } => Error::new(ErrorKind::Unauthorized, message),
            WeComError::Throttled { pause, .. } => Error::new(ErrorKind::RateLimited, message).with_retry_after(pause),
            WeComError::TooLong { .. } | WeComError::Rejected { .. } => Error::new(ErrorKind::Rejected, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_retryability() {
        let peer = "wecom robot";
        let core = |e: WeComError| Error::from(e);
        assert!(core(WeComError::Status { peer, status: 502 }).is_temporary());
        assert!(core(WeComError::Status { peer, status: 302 }).is_temporary());
        assert!(!core(WeComError::Status { peer, status: 404 }).is_temporary());
        assert!(core(WeComError::NotJson { peer }).is_temporary());
        assert!(core(WeComError::Unknown { peer, errcode: 1, errmsg: "system busy".into() }).is_temporary());
        let refused =
            core(WeComError::Refused { peer, errcode: 93000, errmsg: "invalid webhook url".into(), hint: "check key" });
        assert_eq!((refused.kind(), refused.is_temporary()), (ErrorKind::Unauthorized, false));
        assert_eq!(
            refused.to_string(),
            "wecom robot refused the request: invalid webhook url (errcode 93000); check key"
        );
        let throttled = core(WeComError::Throttled {
            peer,
            errcode: 45009,
            errmsg: "api freq out of limit".into(),
            pause: Duration::from_secs(60),
        });
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(60)));
        assert!(throttled.is_temporary());
        assert!(!core(WeComError::TooLong { peer, errcode: 40058, errmsg: String::new() }).is_temporary());
    }
}
