//! A fake Lark/Feishu custom bot (`/open-apis/bot/v2/hook/<token>`).
//!
//! Checks, in the bot's order: the token in the path (19001), the JSON body (9499), the
//! signature in the body and its one-hour window (19021), the rate limits — 5 requests a
//! second and 100 a minute (11232) —, the body size, 20 KB (19036), the message shape
//! (`text` or `interactive`, 9499) and the keywords (19024). Answers are HTTP 200 with
//! `{"code":…,"msg":…,"data":{}}`.

use std::{
    fmt,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::task::JoinHandle;

use crate::common::{self, Attempt, Failure, Log};

/// The path prefix of the bot's webhooks, as Feishu's and Lark's.
pub const PATH: &str = "/open-apis/bot/v2/hook";

/// Configures a [`FakeLark`]. Defaults are Lark's: 5 requests a second and 100 a minute,
/// bodies up to 20 KB, a one-hour timestamp window, no secret, no keywords.
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    token: String,
    secret: Option<String>,
    keywords: Vec<String>,
    per_second: usize,
    per_minute: usize,
    max_bytes: usize,
    timestamp_window: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            token: "fake-token".into(),
            secret: None,
            keywords: Vec::new(),
            per_second: 5,
            per_minute: 100,
            max_bytes: 20 * 1024,
            timestamp_window: Duration::from_secs(3600),
        }
    }
}

impl Builder {
    /// The token at the end of the webhook's path.
    pub fn token(mut self, token: &str) -> Self {
        self.token = token.into();
        self
    }

    /// Require signed requests with this secret (the bot's "signature verification").
    pub fn secret(mut self, secret: &str) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Require this keyword in every message (repeat for several; any one suffices).
    pub fn keyword(mut self, keyword: &str) -> Self {
        self.keywords.push(keyword.into());
        self
    }

    /// Requests allowed per second and per minute.
    pub fn rate_limit(mut self, per_second: usize, per_minute: usize) -> Self {
        self.per_second = per_second;
        self.per_minute = per_minute;
        self
    }

    /// The largest request body accepted, in bytes.
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Bind to 127.0.0.1 on a free port and serve.
    ///
    /// # Panics
    /// When no loopback port can be bound (the test cannot run anyway).
    pub async fn start(self) -> FakeLark {
        let shared = Arc::new(Shared { config: self, log: Log::default() });
        let app = Router::new().route(&format!("{PATH}/{{token}}"), post(hook)).with_state(shared.clone());
        let (addr, task) = common::serve(app, "Lark bot").await;
        FakeLark { addr, shared, task }
    }
}

/// A message the bot accepted (code 0).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Message {
    /// When it arrived.
    pub received: Instant,
    /// `text` or `interactive`.
    pub msg_type: String,
    /// `content.text`, or every text of the card (header title, elements), one per line.
    pub text: String,
    /// The whole request body.
    pub body: Value,
}

/// A running fake bot; it stops when dropped.
pub struct FakeLark {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl fmt::Debug for FakeLark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeLark").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for FakeLark {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeLark {
    /// A builder with Lark's defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The webhook URL: `http://127.0.0.1:<port>/open-apis/bot/v2/hook/<token>`.
    pub fn url(&self) -> String {
        format!("http://{}{PATH}/{}", self.addr, self.shared.config.token)
    }

    /// A sink URI for this bot (with `sign=` when it has a secret).
    pub fn sink_uri(&self) -> String {
        match &self.shared.config.secret {
            Some(secret) => format!("lark:{}?sign={secret}", self.url()),
            None => format!("lark:{}", self.url()),
        }
    }

    /// Messages accepted so far, in arrival order.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.log.lock().messages.clone()
    }

    /// Every request so far, accepted or not, in arrival order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.shared.log.lock().attempts.clone()
    }

    /// How many replies carried `code`.
    pub fn code_count(&self, code: i64) -> usize {
        self.shared.log.lock().attempts.iter().filter(|a| a.code == Some(code)).count()
    }

    /// Answer the next `times` requests with `failure`.
    pub fn fail_next(&self, times: usize, failure: Failure) {
        self.shared.log.fail_next(times, failure);
    }

    /// An outage: answer every request with `failure` for `duration` from now.
    /// Failures queued by [`FakeLark::fail_next`] still go first.
    pub fn fail_for(&self, duration: Duration, failure: Failure) {
        self.shared.log.fail_for(duration, failure);
    }

    /// The most requests (accepted or not) that arrived within any `window`.
    pub fn peak_rate(&self, window: Duration) -> usize {
        self.shared.log.peak_rate(window)
    }

    /// Wait until `condition` holds (checked after every request), or `timeout` passes.
    /// Returns whether it holds.
    pub async fn wait_until(&self, timeout: Duration, condition: impl Fn(&Self) -> bool) -> bool {
        common::wait_until(&self.shared.log.changed, timeout, self, condition).await
    }
}

struct Shared {
    config: Builder,
    log: Log<Message>,
}

/// A refusal: Lark's code and msg.
struct Refusal(i64, String);

fn refuse(code: i64, msg: &str) -> Refusal {
    Refusal(code, msg.to_owned())
}

async fn hook(State(shared): State<Arc<Shared>>, Path(token): Path<String>, body: Bytes) -> Response {
    let received = Instant::now();
    let (response, attempt) = match shared.log.injected(received) {
        Some(Failure::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let attempt = Attempt { received, status: status.as_u16(), code: None, reply: "injected failure".into() };
            ((status, "injected failure").into_response(), attempt)
        }
        Some(Failure::NotJson) => {
            let attempt = Attempt { received, status: 200, code: None, reply: "<html>busy</html>".into() };
            (([(CONTENT_TYPE, "text/html")], "<html>busy</html>").into_response(), attempt)
        }
        Some(Failure::Code(code, msg)) => reply(received, code, msg),
        None | Some(Failure::Pass) => match handle(&shared, received, &token, &body) {
            Ok(()) => reply(received, 0, "success".into()),
            Err(Refusal(code, msg)) => reply(received, code, msg),
        },
    };
    shared.log.record(attempt);
    response
}

fn reply(received: Instant, code: i64, msg: String) -> (Response, Attempt) {
    let body = if code == 0 {
        // Feishu still sends its older fields beside the newer ones on success.
        json!({ "StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success" })
    } else {
        json!({ "code": code, "data": {}, "msg": msg })
    };
    (Json(body).into_response(), Attempt { received, status: 200, code: Some(code), reply: msg })
}

/// The bot's checks, in order.
fn handle(shared: &Shared, received: Instant, token: &str, raw: &[u8]) -> Result<(), Refusal> {
    let config = &shared.config;
    if token != config.token {
        return Err(refuse(19001, "param invalid: incoming webhook access token invalid"));
    }
    let body: Value = serde_json::from_slice(raw).map_err(|_| refuse(9499, "Bad Request"))?;
    if let Some(secret) = &config.secret {
        check_signature(secret, &body, config.timestamp_window)?;
    }
    rate_limit(shared, received)?;
    if raw.len() > config.max_bytes {
        return Err(refuse(19036, "The message exceeds the size limit of 20KB"));
    }
    let message = parse_message(body, received)?;
    if !config.keywords.is_empty() && !config.keywords.iter().any(|k| message.text.contains(k.as_str())) {
        return Err(refuse(19024, "Key Words Not Found"));
    }
    shared.log.lock().messages.push(message);
    Ok(())
}

/// `sign` = Base64(HMAC-SHA256(key = "<timestamp>\n<secret>", message = "")), the
/// timestamp in seconds, as a string, within the window of now.
fn check_signature(secret: &str, body: &Value, window: Duration) -> Result<(), Refusal> {
    let fail = || refuse(19021, "sign match fail or timestamp is not within one hour from current time");
    let (Some(timestamp), Some(sign)) = (body["timestamp"].as_str(), body["sign"].as_str()) else {
        return Err(fail());
    };
    let seconds: u64 = timestamp.parse().map_err(|_| fail())?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if seconds.abs_diff(now) > window.as_secs() {
        return Err(fail());
    }
    let given = STANDARD.decode(sign).map_err(|_| fail())?;
    signer(timestamp, secret).verify_slice(&given).map_err(|_| fail())
}

fn signer(timestamp: &str, secret: &str) -> Hmac<Sha256> {
    // The string is the key and the message is empty: the roles DingTalk's signing swaps.
    Hmac::<Sha256>::new_from_slice(format!("{timestamp}\n{secret}").as_bytes()).expect("hmac takes any key length")
}

/// The signature a bot with `secret` expects for `timestamp` (seconds), for tests that
/// post to the fake directly.
///
/// ```
/// // protocols.md A.6's vector.
/// assert_eq!(eventer_fake_chat::lark::sign(1704067200, "testsecret"), "kVrFmsyjEFkiHdX/J2OlfdaTX5OC50rbpkiKESqBqOs=");
/// ```
pub fn sign(timestamp: u64, secret: &str) -> String {
    STANDARD.encode(signer(&timestamp.to_string(), secret).finalize().into_bytes())
}

fn rate_limit(shared: &Shared, now: Instant) -> Result<(), Refusal> {
    let config = &shared.config;
    let mut state = shared.log.lock();
    let minute = Duration::from_secs(60);
    while state.recent.front().is_some_and(|t| now.duration_since(*t) >= minute) {
        state.recent.pop_front();
    }
    if common::in_window(&state.recent, Duration::from_secs(1), now) >= config.per_second
        || state.recent.len() >= config.per_minute
    {
        return Err(refuse(11232, "frequency limited psm[lark.oapi.app_platform_runtime]"));
    }
    state.recent.push_back(now);
    Ok(())
}

fn parse_message(body: Value, received: Instant) -> Result<Message, Refusal> {
    let invalid = |what: &str| refuse(9499, &format!("Bad Request: {what}"));
    let msg_type = body["msg_type"].as_str().ok_or_else(|| invalid("msg_type"))?.to_owned();
    let text = match msg_type.as_str() {
        "text" => body["content"]["text"].as_str().ok_or_else(|| invalid("content.text"))?.to_owned(),
        "interactive" => {
            let card = body.get("card").filter(|c| c.is_object()).ok_or_else(|| invalid("card"))?;
            let mut texts = Vec::new();
            collect_texts(card, &mut texts);
            texts.join("\n")
        }
        _ => return Err(invalid("msg_type must be text or interactive")),
    };
    if text.trim().is_empty() {
        return Err(invalid("empty content"));
    }
    Ok(Message { received, msg_type, text, body })
}

/// Every `content` string of a card (titles, markdown and text elements), in order.
fn collect_texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::String(s) if key == "content" => out.push(s.clone()),
                    _ => collect_texts(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_texts(i, out)),
        _ => {}
    }
}
