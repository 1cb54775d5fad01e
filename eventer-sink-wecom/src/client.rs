//! HTTP to WeCom — the group robot, and the app with its cached access token — and what
//! the replies mean.

use std::time::Duration;

use eventer_core::config::Secret;
use serde::Deserialize;
use tokio::{sync::Mutex, time::Instant};
use tracing::{debug, warn};
use url::Url;

use crate::error::WeComError;

/// How long the sink stops sending after 45009. WeCom counts 20 messages per minute for a
/// robot and its app limits per minute too: a minute's pause lets the window pass, and
/// the budget keeps the sink under the limit, so this happens only when something else
/// sends through the same robot or app.
pub(crate) const THROTTLE_PAUSE: Duration = Duration::from_secs(60);

/// A token is refreshed this long before WeCom says it expires, so a message never leaves
/// with a token about to lapse (WeCom's clock and ours differ, and the request takes time).
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

const ROBOT: &str = "wecom robot";
const APP: &str = "wecom app";

#[derive(Deserialize)]
struct Reply {
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    invaliduser: Option<String>,
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, WeComError> {
    // reqwest is built without a default crypto provider; installing fails only when one
    // is already installed, which is fine.
    rustls::crypto::ring::default_provider().install_default().ok();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        // Never carry a key or token to another host.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| WeComError::config(format!("cannot build the HTTP client: {}", e.without_url())))
}

/// Send `request` and read WeCom's JSON reply (any errcode).
async fn exchange(peer: &'static str, request: reqwest::RequestBuilder) -> Result<Reply, WeComError> {
    let transport = |e: reqwest::Error| WeComError::Transport { peer, source: e.without_url() };
    let response = request.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(transport)?;
    if status != 200 {
        return Err(WeComError::Status { peer, status });
    }
    let mut reply: Reply = serde_json::from_slice(&bytes).map_err(|_| WeComError::NotJson { peer })?;
    // WeCom's errmsg can echo the request: never log a key or token.
    reply.errmsg = eventer_core::uri::redact(&reply.errmsg);
    Ok(reply)
}

fn post_json(http: &reqwest::Client, url: Url, body: String) -> reqwest::RequestBuilder {
    http.post(url).header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8").body(body)
}

/// Posts message bodies to one group robot.
pub(crate) struct RobotClient {
    http: reqwest::Client,
    /// The webhook with its `key`: never shown.
    url: Url,
}

impl RobotClient {
    pub(crate) fn new(webhook: &str, key: &Secret, timeout: Duration) -> Result<Self, WeComError> {
        let mut url = Url::parse(webhook).map_err(|e| WeComError::config(format!("option webhook: {e}")))?;
        url.query_pairs_mut().append_pair("key", key.expose());
        Ok(RobotClient { http: http_client(timeout)?, url })
    }

    /// Send one message body; `Ok` when the robot answered errcode 0.
    pub(crate) async fn post(&self, body: String) -> Result<(), WeComError> {
        let reply = exchange(ROBOT, post_json(&self.http, self.url.clone(), body)).await?;
        classify(ROBOT, reply.errcode, reply.errmsg)
    }
}

/// A token and when to fetch a new one.
struct Cached {
    token: Secret,
    refresh_at: Instant,
}

/// Posts message bodies as a WeCom app, fetching its access token once and keeping it
/// until shortly before it expires (kube-eventer fetched one for every event, which WeCom
/// throttles).
pub(crate) struct AppClient {
    http: reqwest::Client,
    token_url: Url,
    send_url: Url,
    /// Held across a fetch, so concurrent sends wait for one fetch rather than each make one.
    token: Mutex<Option<Cached>>,
}

impl AppClient {
    pub(crate) fn new(endpoint: &str, corp_id: &str, secret: &Secret, timeout: Duration) -> Result<Self, WeComError> {
        let base = Url::parse(endpoint).map_err(|e| WeComError::config(format!("option endpoint: {e}")))?;
        let join = |path: &str| base.join(path).map_err(|e| WeComError::config(format!("option endpoint: {e}")));
        let mut token_url = join("/cgi-bin/gettoken")?;
        token_url.query_pairs_mut().append_pair("corpid", corp_id).append_pair("corpsecret", secret.expose());
        Ok(AppClient {
            http: http_client(timeout)?,
            token_url,
            send_url: join("/cgi-bin/message/send")?,
            token: Mutex::default(),
        })
    }

    /// Send one message body; `Ok` when WeCom answered errcode 0. A refused token is
    /// replaced and the message sent once more.
    pub(crate) async fn post(&self, body: String) -> Result<(), WeComError> {
        let token = self.token(false).await?;
        match self.send(&token, body.clone()).await {
            Err(WeComError::Token { errcode, .. }) => {
                debug!(errcode, "WeCom refused the access token; fetching a new one and resending.");
                let token = self.token(true).await?;
                self.send(&token, body).await
            }
            other => other,
        }
    }

    async fn send(&self, token: &Secret, body: String) -> Result<(), WeComError> {
        let mut url = self.send_url.clone();
        url.query_pairs_mut().append_pair("access_token", token.expose());
        let reply = exchange(APP, post_json(&self.http, url, body)).await?;
        if let Some(invalid) = reply.invaliduser.as_deref().filter(|u| reply.errcode == 0 && !u.is_empty()) {
            warn!(invaliduser = %invalid, "WeCom delivered the alert, but not to these receivers: check to_user.");
        }
        classify(APP, reply.errcode, reply.errmsg)
    }

    /// The cached token, or a new one when it is due for refresh or `renew` (WeCom
    /// refused the cached one).
    async fn token(&self, renew: bool) -> Result<Secret, WeComError> {
        let mut cached = self.token.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| !renew && c.refresh_at > Instant::now()) {
            return Ok(c.token.clone());
        }
        *cached = None;
        let reply = exchange(APP, self.http.get(self.token_url.clone())).await?;
        classify(APP, reply.errcode, reply.errmsg)?;
        let token = reply.access_token.filter(|t| !t.is_empty()).ok_or(WeComError::NotJson { peer: APP })?;
        let lifetime = Duration::from_secs(reply.expires_in.unwrap_or(7200));
        // A short-lived token (a private deployment's) is refreshed at half its life instead.
        let keep = lifetime.checked_sub(TOKEN_MARGIN).filter(|k| *k >= lifetime / 2).unwrap_or(lifetime / 2);
        let token = Secret::new(token);
        *cached = Some(Cached { token: token.clone(), refresh_at: Instant::now() + keep });
        debug!(expires_in = ?lifetime, "Fetched a WeCom access token.");
        Ok(token)
    }
}

/// WeCom answers HTTP 200 with an errcode; map it to what the sink should do.
fn classify(peer: &'static str, errcode: i64, errmsg: String) -> Result<(), WeComError> {
    let refused = |hint| Err(WeComError::Refused { peer, errcode, errmsg: errmsg.clone(), hint });
    match errcode {
        0 => Ok(()),
        // 45009: frequency limit; 45033: too many concurrent calls.
        45009 | 45033 => Err(WeComError::Throttled { peer, errcode, errmsg, pause: THROTTLE_PAUSE }),
        93000 => refused("check key: it must be the robot's key alone, the key= of its webhook URL"),
        40014 | 42001 | 41001 if peer == APP => Err(WeComError::Token { peer, errcode, errmsg }),
        40013 => refused("check corp_id (the corp's id, ww…)"),
        40001 | 40014 | 40091 | 42001 => refused("check corp_secret: it must be this app's Secret"),
        40056 | 41011 | 301002 => refused("check agent_id: it must be this app's AgentId"),
        81013 | 82001 => refused("check to_user, to_party and to_tag: no receiver is in the app's visible range"),
        60020 => refused("add this host's outbound IP to the app's trusted IPs"),
        40058 if errmsg.contains("exceed") || errmsg.contains("length") => {
            Err(WeComError::TooLong { peer, errcode, errmsg })
        }
        // Invalid parameter, message type or empty content: this message, not the settings.
        40058 | 40008 | 44004 | 40035 => Err(WeComError::Rejected { peer, errcode, errmsg }),
        _ => Err(WeComError::Unknown { peer, errcode, errmsg }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcodes() {
        assert!(classify(ROBOT, 0, "ok".into()).is_ok());
        assert!(
            matches!(classify(ROBOT, 45009, "api freq out of limit".into()), Err(WeComError::Throttled { pause, .. }) if pause == THROTTLE_PAUSE)
        );
        assert!(matches!(classify(ROBOT, 93000, String::new()), Err(WeComError::Refused { .. })));
        assert!(matches!(classify(ROBOT, 40014, String::new()), Err(WeComError::Refused { .. })));
        for code in [40014, 42001, 41001] {
            assert!(matches!(classify(APP, code, String::new()), Err(WeComError::Token { .. })), "{code}");
        }
        for code in [40013, 40001, 40056, 81013, 60020] {
            assert!(matches!(classify(APP, code, String::new()), Err(WeComError::Refused { .. })), "{code}");
        }
        let long = classify(ROBOT, 40058, "text.content exceed max length 2048".into());
        assert!(matches!(long, Err(WeComError::TooLong { .. })));
        assert!(matches!(classify(ROBOT, 40058, "invalid parameter".into()), Err(WeComError::Rejected { .. })));
        assert!(matches!(classify(ROBOT, -1, "system busy".into()), Err(WeComError::Unknown { .. })));
        let refused = classify(APP, 40001, "invalid credential".into()).unwrap_err().to_string();
        assert_eq!(
            refused,
            "wecom app refused the request: invalid credential (errcode 40001); check corp_secret: it must be this app's Secret"
        );
    }
}
