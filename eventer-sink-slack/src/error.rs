//! The crate's error, converted into [`eventer_core::Error`] at the boundary.

use std::time::Duration;

use eventer_core::{Error, ErrorKind};

/// What went wrong talking to Slack or reading the configuration. Messages never hold
/// the webhook (its path is the credential): transport errors lose their URL.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SlackError {
    /// Invalid configuration.
    #[error("{0}")]
    Config(String),
    /// Connecting, sending or reading failed (timeouts included).
    #[error("cannot reach the slack webhook")]
    Transport(#[source] reqwest::Error),
    /// An HTTP status Slack does not document for webhooks (a proxy, an outage).
    #[error("slack webhook answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    /// The webhook is gone or not allowed to post: 403, 404, 410.
    #[error("slack refused the webhook: {body} (HTTP {status}); {hint}")]
    Refused { status: u16, body: String, hint: &'static str },
    /// 429: about one message a second per webhook.
    #[error("slack webhook is rate limiting (HTTP 429)")]
    Throttled { pause: Duration },
    /// 400 `msg_too_long` or `invalid_blocks`: a text or a block over Slack's limits.
    #[error("slack refused a message as too large: {body} (HTTP 400)")]
    TooLarge { body: String },
    /// 400: Slack refused this message's content for good.
    #[error("slack refused the message: {body} (HTTP 400)")]
    Rejected { body: String },
}

impl From<SlackError> for Error {
    fn from(e: SlackError) -> Self {
        let message = e.to_string();
        match e {
            SlackError::Config(_) => Error::config(message),
            SlackError::Transport(source) => Error::new(ErrorKind::Unavailable, message).with_source(source),
            SlackError::Status { status, .. } => match status {
                200 | 300..=399 | 408 | 500.. => Error::new(ErrorKind::Unavailable, message),
                _ => Error::new(ErrorKind::Rejected, message),
            },
            SlackError::Refused { .. } => Error::new(ErrorKind::Unauthorized, message),
            SlackError::Throttled { pause } => Error::new(ErrorKind::RateLimited, message).with_retry_after(pause),
            SlackError::TooLarge { .. } | SlackError::Rejected { .. } => Error::new(ErrorKind::Rejected, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_retryability() {
        let core = |e: SlackError| Error::from(e);
        let status = |status: u16| SlackError::Status { status, body: String::new() };
        assert!(core(status(502)).is_temporary());
        assert!(core(status(200)).is_temporary(), "200 without `ok` is no delivery");
        assert!(!core(status(405)).is_temporary());
        let refused = core(SlackError::Refused { status: 404, body: "no_service".into(), hint: "check" });
        assert_eq!((refused.kind(), refused.is_temporary()), (ErrorKind::Unauthorized, false));
        let throttled = core(SlackError::Throttled { pause: Duration::from_secs(2) });
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(2)));
        assert!(throttled.is_temporary());
    }
}
