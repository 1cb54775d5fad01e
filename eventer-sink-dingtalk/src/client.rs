//! HTTP to the robot, and what its replies mean.

use std::time::Duration;

use eventer_core::config::Secret;
use serde::Deserialize;
use url::Url;

use crate::{error::DingTalkError, sign};

/// How long the sink stops sending after 130101: DingTalk blocks the robot for 10 minutes
/// once it exceeds 20 messages a minute. No probing meanwhile: every try would be refused,
/// and robots that keep sending are reported to get redirects instead of errcodes. The
/// budget keeps the sink under the limit, so this happens only when something else sends
/// through the same robot, or eventer restarted within a minute of a burst (the budget is
/// not persisted).
pub(crate) const THROTTLE_PAUSE: Duration = Duration::from_secs(600);

/// Posts message bodies to one robot, signing each request afresh.
pub(crate) struct Client {
    http: reqwest::Client,
    webhook: Url,
    token: Secret,
    secret: Option<Secret>,
}

#[derive(Deserialize)]
struct Reply {
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

impl Client {
    pub(crate) fn new(
        webhook: &str,
        token: &Secret,
        secret: Option<&Secret>,
        timeout: Duration,
    ) -> Result<Self, DingTalkError> {
        let webhook = Url::parse(webhook).map_err(|e| DingTalkError::config(format!("invalid webhook URL: {e}")))?;
        // reqwest is built without a default crypto provider; installing fails only when
        // one is already installed, which is fine.
        rustls::crypto::ring::default_provider().install_default().ok();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // A redirect is how a throttled robot answers: treat it as a failure, and never
            // carry the token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DingTalkError::config(format!("cannot build the HTTP client: {}", e.without_url())))?;
        Ok(Client { http, webhook, token: token.clone(), secret: secret.cloned() })
    }

    /// Send one message body; `Ok` when the robot answered errcode 0.
    pub(crate) async fn post(&self, body: String) -> Result<(), DingTalkError> {
        let now = jiff::Timestamp::now().as_millisecond();
        let url = sign::request_url(&self.webhook, self.token.expose(), self.secret.as_ref().map(Secret::expose), now);
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| DingTalkError::Transport(e.without_url()))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| DingTalkError::Transport(e.without_url()))?;
        if status != 200 {
            return Err(DingTalkError::Status(status));
        }
        let reply: Reply = serde_json::from_slice(&bytes).map_err(|_| DingTalkError::NotJson)?;
        // Some gateways echo the request URL in their message: never log the token.
        classify(reply.errcode, eventer_core::uri::redact(&reply.errmsg))
    }
}

/// DingTalk answers HTTP 200 with an errcode; map it to what the sink should do.
fn classify(errcode: i64, errmsg: String) -> Result<(), DingTalkError> {
    match errcode {
        0 => Ok(()),
        130101 | 410100 => Err(DingTalkError::Throttled { errcode, errmsg, pause: THROTTLE_PAUSE }),
        // The keyword check is about this message's content, not the robot's settings.
        310000 if errmsg.contains("keyword") => Err(DingTalkError::Rejected { errcode, errmsg }),
        310000 => Err(DingTalkError::Refused {
            errcode,
            errmsg,
            hint: "check the sign secret, the robot's keywords and IP allow-list, and this host's clock",
        }),
        300001 | 300005 => Err(DingTalkError::Refused {
            errcode,
            errmsg,
            hint: "check access_token: it must be the token alone, not the URL",
        }),
        460101 | 101002 => Err(DingTalkError::TooLong { errcode, errmsg }),
        40035 | 430101..=430104 => Err(DingTalkError::Rejected { errcode, errmsg }),
        _ => Err(DingTalkError::Unknown { errcode, errmsg }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcodes() {
        assert!(classify(0, "ok".into()).is_ok());
        assert!(
            matches!(classify(130101, "send too fast".into()), Err(DingTalkError::Throttled { pause, .. }) if pause == THROTTLE_PAUSE)
        );
        for code in [310000, 300001, 300005] {
            assert!(matches!(classify(code, String::new()), Err(DingTalkError::Refused { .. })), "{code}");
        }
        assert!(matches!(classify(460101, String::new()), Err(DingTalkError::TooLong { .. })));
        assert!(matches!(classify(40035, String::new()), Err(DingTalkError::Rejected { .. })));
        assert!(matches!(classify(310000, "keywords not in content".into()), Err(DingTalkError::Rejected { .. })));
        assert!(matches!(classify(90030, String::new()), Err(DingTalkError::Unknown { .. })));
        let refused = classify(310000, "sign not match".into()).unwrap_err().to_string();
        assert_eq!(
            refused,
            "dingtalk robot refused the request: sign not match (errcode 310000); check the sign secret, \
             the robot's keywords and IP allow-list, and this host's clock"
        );
    }
}
