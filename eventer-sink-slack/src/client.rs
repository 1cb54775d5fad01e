//! HTTP to the webhook, and what its replies mean.

use std::time::Duration;

use eventer_core::config::Secret;

use crate::error::SlackError;

/// The pause after a 429 without `Retry-After`.
pub(crate) const DEFAULT_PAUSE: Duration = Duration::from_secs(5);
/// The longest pause a `Retry-After` may ask for; longer ones are cut to this, so a bad
/// header cannot silence the sink for days.
const MAX_PAUSE: Duration = Duration::from_secs(600);

/// Posts message bodies to one webhook.
pub(crate) struct Client {
    http: reqwest::Client,
    webhook: Secret,
}

impl Client {
    pub(crate) fn new(webhook: &Secret, timeout: Duration) -> Result<Self, SlackError> {
        // reqwest is built without a default crypto provider; installing fails only when
        // one is already installed, which is fine.
        rustls::crypto::ring::default_provider().install_default().ok();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // Never carry the webhook's path, the credential, to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SlackError::Config(format!("cannot build the HTTP client: {}", e.without_url())))?;
        Ok(Client { http, webhook: webhook.clone() })
    }

    /// Send one message body; `Ok` when Slack answered 200 `ok`.
    pub(crate) async fn post(&self, body: String) -> Result<(), SlackError> {
        let response = self
            .http
            .post(self.webhook.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| SlackError::Transport(e.without_url()))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(|e| SlackError::Transport(e.without_url()))?;
        classify(status, &String::from_utf8_lossy(&bytes), retry_after)
    }
}

/// Slack answers with the HTTP status and a plain-text code; map them to what the sink
/// should do.
fn classify(status: u16, body: &str, retry_after: Option<Duration>) -> Result<(), SlackError> {
    let code = body.trim();
    // A proxy's page may be long and may echo the URL: a line of it, redacted.
    let body = eventer_core::uri::redact(&eventer_alert::truncate(code.lines().next().unwrap_or_default(), 120));
    match (status, code) {
        (200, "ok") => Ok(()),
        (429, _) => Err(SlackError::Throttled {
            pause: retry_after.unwrap_or(DEFAULT_PAUSE).clamp(Duration::from_secs(1), MAX_PAUSE),
        }),
        (400, "msg_too_long" | "invalid_blocks" | "invalid_blocks_format") => Err(SlackError::TooLarge { body }),
        (400, _) => Err(SlackError::Rejected { body }),
        (403, _) => Err(SlackError::Refused {
            status,
            body,
            hint: "the app may not post to this channel (action_prohibited) or the webhook was revoked",
        }),
        (404, _) => Err(SlackError::Refused {
            status,
            body,
            hint: "check the webhook URL: the app or its channel is gone (no_service, channel_not_found)",
        }),
        (410, _) => Err(SlackError::Refused {
            status,
            body,
            hint: "the channel is archived: unarchive it or create a webhook for another channel",
        }),
        _ => Err(SlackError::Status { status, body }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert!(classify(200, "ok", None).is_ok());
        assert!(matches!(classify(200, "<html>", None), Err(SlackError::Status { status: 200, .. })));
        let pause = |r| match r {
            Err(SlackError::Throttled { pause }) => pause,
            other => panic!("{other:?}"),
        };
        assert_eq!(pause(classify(429, "rate_limited", Some(Duration::from_secs(3)))), Duration::from_secs(3));
        assert_eq!(pause(classify(429, "", None)), DEFAULT_PAUSE);
        assert_eq!(pause(classify(429, "", Some(Duration::from_secs(86_400)))), MAX_PAUSE);
        for (status, code) in
            [(403, "action_prohibited"), (404, "no_service"), (404, "channel_not_found"), (410, "channel_is_archived")]
        {
            assert!(matches!(classify(status, code, None), Err(SlackError::Refused { .. })), "{code}");
        }
        assert!(matches!(classify(400, "invalid_blocks", None), Err(SlackError::TooLarge { .. })));
        assert!(matches!(classify(400, "no_text", None), Err(SlackError::Rejected { .. })));
        assert!(matches!(classify(503, "", None), Err(SlackError::Status { status: 503, .. })));
        assert_eq!(
            classify(410, "channel_is_archived\n", None).unwrap_err().to_string(),
            "slack refused the webhook: channel_is_archived (HTTP 410); the channel is archived: unarchive it or \
             create a webhook for another channel"
        );
    }
}
