//! HTTP to the bot, and what its replies mean.

use std::time::Duration;

use eventer_core::config::Secret;
use serde::Deserialize;

use crate::{error::LarkError, sign};

/// How long the sink stops sending after 11232. Lark counts per second and per minute; a
/// few seconds clears the first, and a refusal again pauses again while the second lasts.
pub(crate) const THROTTLE_PAUSE: Duration = Duration::from_secs(5);

/// Posts message bodies to one bot, signing each afresh when it has a secret.
pub(crate) struct Client {
    http: reqwest::Client,
    webhook: Secret,
    secret: Option<Secret>,
}

/// Lark's reply. Older bots answered `StatusCode`/`StatusMessage` only; newer ones send
/// `code`/`msg`, on success beside the older pair.
#[derive(Deserialize)]
struct Reply {
    code: Option<i64>,
    #[serde(default)]
    msg: String,
    #[serde(rename = "StatusCode")]
    status_code: Option<i64>,
    #[serde(rename = "StatusMessage", default)]
    status_message: String,
}

impl Client {
    pub(crate) fn new(webhook: &Secret, secret: Option<&Secret>, timeout: Duration) -> Result<Self, LarkError> {
        // reqwest is built without a default crypto provider; installing fails only when
        // one is already installed, which is fine.
        rustls::crypto::ring::default_provider().install_default().ok();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // Never carry the token (the webhook's path) to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LarkError::Config(format!("cannot build the HTTP client: {}", e.without_url())))?;
        Ok(Client { http, webhook: webhook.clone(), secret: secret.cloned() })
    }

    /// Send one message body; `Ok` when the bot answered code 0.
    pub(crate) async fn post(&self, body: String) -> Result<(), LarkError> {
        let body = match &self.secret {
            Some(secret) => sign::signed(&body, secret.expose(), jiff::Timestamp::now().as_second()),
            None => body,
        };
        let response = self
            .http
            .post(self.webhook.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| LarkError::Transport(e.without_url()))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| LarkError::Transport(e.without_url()))?;
        // Lark answers some refusals with HTTP 400 and its JSON: the code says more.
        match serde_json::from_slice::<Reply>(&bytes) {
            Ok(Reply { code: Some(code), msg, .. }) => classify(code, eventer_core::uri::redact(&msg)),
            Ok(Reply { status_code: Some(code), status_message, .. }) => {
                classify(code, eventer_core::uri::redact(&status_message))
            }
            _ if status != 200 => Err(LarkError::Status(status)),
            _ => Err(LarkError::NotJson),
        }
    }
}

/// Map Lark's `code` to what the sink should do.
fn classify(code: i64, msg: String) -> Result<(), LarkError> {
    match code {
        0 => Ok(()),
        11232 => Err(LarkError::Throttled { code, msg, pause: THROTTLE_PAUSE }),
        19036 => Err(LarkError::TooLarge { code, msg }),
        19021 => Err(LarkError::Refused {
            code,
            msg,
            hint: "check sign= (the bot's signing secret) and this host's clock (Lark allows an hour)",
        }),
        19001 | 19002 => Err(LarkError::Refused {
            code,
            msg,
            hint: "check the webhook: it must be the bot's whole URL, ending in its token",
        }),
        19022 => Err(LarkError::Refused { code, msg, hint: "add this host's egress IP to the bot's IP allow-list" }),
        // Every message starts with the labels, so a keyword missing from one is missing
        // from all: a setting to fix, not one message to drop.
        19024 => Err(LarkError::Refused { code, msg, hint: "put one of the bot's keywords in a label= option" }),
        9499 => Err(LarkError::Rejected { code, msg }),
        _ => Err(LarkError::Unknown { code, msg }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert!(classify(0, "success".into()).is_ok());
        assert!(
            matches!(classify(11232, String::new()), Err(LarkError::Throttled { pause, .. }) if pause == THROTTLE_PAUSE)
        );
        for code in [19021, 19001, 19022, 19024] {
            assert!(matches!(classify(code, String::new()), Err(LarkError::Refused { .. })), "{code}");
        }
        assert!(matches!(classify(19036, String::new()), Err(LarkError::TooLarge { .. })));
        assert!(matches!(classify(9499, String::new()), Err(LarkError::Rejected { .. })));
        assert!(matches!(classify(99991663, String::new()), Err(LarkError::Unknown { .. })));
        assert_eq!(
            classify(19021, "sign match fail".into()).unwrap_err().to_string(),
            "lark bot refused the request: sign match fail (code 19021); check sign= (the bot's signing secret) \
             and this host's clock (Lark allows an hour)"
        );
    }
}
