//! A loopback fake DingTalk custom group robot, for eventer's tests.
//!
//! It checks what the real robot checks — the `access_token`, the `加签` signature and its
//! one-hour timestamp window, the optional keywords, the message shape and the 20000-byte
//! limit — and enforces the rate limit: 20 messages per rolling minute, after which the
//! robot answers `130101` for 10 minutes. The window and the block are configurable so
//! tests need not wait minutes. Every request is recorded with its arrival time, and
//! failures (HTTP errors, non-JSON bodies, errcodes) can be injected.
//!
//! The signature check is written here independently of the sink's signing code, so a
//! shared mistake cannot make both agree.
//!
//! ```
//! use std::time::Duration;
//! use eventer_fake_dingtalk::FakeDingTalk;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let robot = FakeDingTalk::builder().token("t0k").secret("SECtest").start().await;
//! assert!(robot.url().starts_with("http://127.0.0.1:"));
//! assert!(robot.sink_uri().starts_with("dingtalk:http://127.0.0.1:"));
//! // Nothing arrives, so the wait gives up after the timeout.
//! assert!(!robot.wait_until(Duration::from_millis(10), |r| !r.messages().is_empty()).await);
//! # });
//! ```

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use eventer_fake_chat::support;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::{sync::Notify, task::JoinHandle};

/// The path the robot listens on, as DingTalk's.
pub const PATH: &str = "/robot/send";

/// Configures a [`FakeDingTalk`]. Defaults are DingTalk's: 20 messages per 60 s, a
/// 10-minute block, 20000 bytes, a one-hour timestamp window, no secret, no keywords.
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    token: String,
    secret: Option<String>,
    keywords: Vec<String>,
    limit: usize,
    window: Duration,
    block: Duration,
    max_bytes: usize,
    timestamp_window: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            token: "fake-token".into(),
            secret: None,
            keywords: Vec::new(),
            limit: 20,
            window: Duration::from_secs(60),
            block: Duration::from_secs(600),
            max_bytes: 20_000,
            timestamp_window: Duration::from_secs(3600),
        }
    }
}

impl Builder {
    /// The robot's `access_token`.
    pub fn token(mut self, token: &str) -> Self {
        self.token = token.into();
        self
    }

    /// Require signed requests with this `SEC…` secret.
    pub fn secret(mut self, secret: &str) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Require this keyword in every message (repeat for several; any one suffices).
    pub fn keyword(mut self, keyword: &str) -> Self {
        self.keywords.push(keyword.into());
        self
    }

    /// Messages allowed per `window` before the robot blocks.
    pub fn rate_limit(mut self, limit: usize, window: Duration) -> Self {
        self.limit = limit;
        self.window = window;
        self
    }

    /// How long the robot answers 130101 after the limit was exceeded.
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }

    /// The largest message content accepted, in bytes.
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Bind to 127.0.0.1 on a free port and serve.
    ///
    /// # Panics
    /// When no loopback port can be bound (the test cannot run anyway).
    pub async fn start(self) -> FakeDingTalk {
        let shared = Arc::new(Shared { config: self, state: Mutex::default(), changed: Notify::new() });
        let app = Router::new().route(PATH, post(send)).with_state(shared.clone());
        let (addr, task) = support::serve(app, "DingTalk robot").await;
        FakeDingTalk { addr, shared, task }
    }
}

/// A failure to inject instead of handling a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Handle the request normally (to script a sequence: pass one, fail the next).
    Pass,
    /// Answer with this HTTP status and a plain-text body.
    Status(u16),
    /// Answer HTTP 200 with an HTML page (what a proxy or a throttled robot may send).
    NotJson,
    /// Answer HTTP 200 with this errcode and errmsg.
    Errcode(i64, String),
}

/// A message the robot accepted (errcode 0).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Message {
    /// When it arrived.
    pub received: Instant,
    /// `text` or `markdown`.
    pub msgtype: String,
    /// `markdown.title` (empty for text messages).
    pub title: String,
    /// `text.content` or `markdown.text`.
    pub text: String,
    /// `at.atMobiles`.
    pub at_mobiles: Vec<String>,
    /// `at.atUserIds`.
    pub at_user_ids: Vec<String>,
    /// `at.isAtAll`.
    pub at_all: bool,
    /// The whole request body.
    pub body: Value,
}

/// One request and how the robot answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// When it arrived.
    pub received: Instant,
    /// The HTTP status of the reply.
    pub status: u16,
    /// The errcode of the reply; `None` when the reply was not DingTalk JSON.
    pub errcode: Option<i64>,
    /// The errmsg of the reply.
    pub errmsg: String,
}

/// A running fake robot; it stops when dropped.
pub struct FakeDingTalk {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl fmt::Debug for FakeDingTalk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeDingTalk").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for FakeDingTalk {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeDingTalk {
    /// A builder with DingTalk's defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The webhook URL without query: `http://127.0.0.1:<port>/robot/send`.
    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }

    /// A kube-eventer style sink URI for this robot (token, and secret when set).
    pub fn sink_uri(&self) -> String {
        let config = &self.shared.config;
        let mut uri = format!("dingtalk:{}?access_token={}", self.url(), config.token);
        if let Some(secret) = &config.secret {
            uri.push_str("&sign=");
            uri.push_str(secret);
        }
        uri
    }

    /// Messages accepted so far, in arrival order.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.lock().messages.clone()
    }

    /// Every request so far, accepted or not, in arrival order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.shared.lock().attempts.clone()
    }

    /// How many replies carried `errcode`.
    pub fn errcode_count(&self, errcode: i64) -> usize {
        self.shared.lock().attempts.iter().filter(|a| a.errcode == Some(errcode)).count()
    }

    /// Answer the next `times` requests with `failure`.
    pub fn fail_next(&self, times: usize, failure: Failure) {
        self.shared.lock().failures.extend(std::iter::repeat_n(failure, times));
        self.shared.changed.notify_waiters();
    }

    /// An outage: answer every request with `failure` for `duration` from now, however
    /// many arrive. Failures queued by [`FakeDingTalk::fail_next`] still go first.
    pub fn fail_for(&self, duration: Duration, failure: Failure) {
        self.shared.lock().outage = Some((Instant::now() + duration, failure));
        self.shared.changed.notify_waiters();
    }

    /// The most requests (accepted or not) that arrived within any `window`: what a
    /// rate limit of that window saw at its busiest.
    pub fn peak_rate(&self, window: Duration) -> usize {
        support::peak_rate(self.shared.lock().attempts.iter().map(|a| a.received).collect(), window)
    }

    /// Wait until `condition` holds (checked after every request), or `timeout` passes.
    /// Returns whether it holds.
    pub async fn wait_until(&self, timeout: Duration, condition: impl Fn(&Self) -> bool) -> bool {
        support::wait_until(&self.shared.changed, timeout, self, condition).await
    }
}

struct Shared {
    config: Builder,
    state: Mutex<RobotState>,
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, RobotState> {
        // Plain records: a panicking test thread leaves them consistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Default)]
struct RobotState {
    messages: Vec<Message>,
    attempts: Vec<Attempt>,
    failures: VecDeque<Failure>,
    /// Until when every request fails, and how.
    outage: Option<(Instant, Failure)>,
    /// Arrival times of the rate-limited requests within the window.
    recent: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

/// A DingTalk reply: HTTP 200 with errcode and errmsg.
struct Reply(i64, String);

impl Reply {
    fn new(errcode: i64, errmsg: &str) -> Self {
        Reply(errcode, errmsg.to_owned())
    }
}

async fn send(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Instant::now();
    let injected = {
        let mut state = shared.lock();
        let outage = state.outage.clone().filter(|(until, _)| received < *until).map(|(_, failure)| failure);
        state.failures.pop_front().or(outage)
    };
    let (response, attempt) = match injected {
        Some(Failure::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let attempt = Attempt { received, status: status.as_u16(), errcode: None, errmsg: String::new() };
            ((status, "injected failure").into_response(), attempt)
        }
        Some(Failure::NotJson) => {
            let attempt = Attempt { received, status: 200, errcode: None, errmsg: String::new() };
            (([(CONTENT_TYPE, "text/html")], "<html>busy</html>").into_response(), attempt)
        }
        Some(Failure::Errcode(code, msg)) => reply(received, Reply(code, msg)),
        None | Some(Failure::Pass) => {
            let result = handle(&shared, received, &query, &headers, &body);
            reply(received, result.unwrap_or_else(|r| r))
        }
    };
    shared.lock().attempts.push(attempt);
    shared.changed.notify_waiters();
    response
}

fn reply(received: Instant, Reply(errcode, errmsg): Reply) -> (Response, Attempt) {
    let response = Json(json!({ "errcode": errcode, "errmsg": errmsg })).into_response();
    (response, Attempt { received, status: 200, errcode: Some(errcode), errmsg })
}

/// The robot's checks, in order; `Err` carries the refusal.
fn handle(
    shared: &Shared,
    received: Instant,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Reply, Reply> {
    let config = &shared.config;
    if query.get("access_token") != Some(&config.token) {
        return Err(Reply::new(300001, "token is not exist"));
    }
    if let Some(secret) = &config.secret {
        check_signature(secret, query, config.timestamp_window)?;
    }
    rate_limit(&mut shared.lock(), config, received)?;
    let json_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"));
    if !json_type {
        return Err(Reply::new(40035, "缺少参数 json: content-type must be application/json"));
    }
    let body: Value = serde_json::from_slice(body).map_err(|_| Reply::new(40035, "缺少参数 json"))?;
    let mut message = parse_message(body, received)?;
    if message.text.len() + message.title.len() > config.max_bytes {
        return Err(Reply::new(460101, &format!("message too long, exceed {} bytes", config.max_bytes)));
    }
    if !config.keywords.is_empty()
        && !config.keywords.iter().any(|k| message.text.contains(k.as_str()) || message.title.contains(k.as_str()))
    {
        return Err(Reply::new(310000, "keywords not in content"));
    }
    message.received = received;
    shared.lock().messages.push(message);
    Ok(Reply::new(0, "ok"))
}

fn check_signature(secret: &str, query: &HashMap<String, String>, window: Duration) -> Result<(), Reply> {
    let mismatch = || Reply::new(310000, "sign not match");
    let (Some(timestamp), Some(sign)) = (query.get("timestamp"), query.get("sign")) else {
        return Err(mismatch());
    };
    let millis: u64 = timestamp.parse().map_err(|_| Reply::new(310000, "invalid timestamp"))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let window = window.as_millis();
    if u128::from(millis).abs_diff(now) > window {
        return Err(Reply::new(310000, "invalid timestamp"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| mismatch())?;
    mac.update(format!("{timestamp}\n{secret}").as_bytes());
    // `sign` arrives URL-decoded once; a client that encoded twice still has `%2B` here.
    let given = STANDARD.decode(sign).map_err(|_| mismatch())?;
    mac.verify_slice(&given).map_err(|_| mismatch())
}

fn rate_limit(state: &mut RobotState, config: &Builder, now: Instant) -> Result<(), Reply> {
    let throttled = || Reply::new(130101, "send too fast, exceed 20 times per minute");
    if state.blocked_until.is_some_and(|until| now < until) {
        return Err(throttled());
    }
    while state.recent.front().is_some_and(|t| now.duration_since(*t) >= config.window) {
        state.recent.pop_front();
    }
    if state.recent.len() >= config.limit {
        state.blocked_until = Some(now + config.block);
        return Err(throttled());
    }
    state.recent.push_back(now);
    Ok(())
}

fn parse_message(body: Value, received: Instant) -> Result<Message, Reply> {
    let invalid = |what: &str| Reply::new(40035, &format!("缺少参数 json: {what}"));
    let text_field = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let msgtype = text_field(&body, "msgtype").ok_or_else(|| invalid("msgtype"))?;
    let (title, text) = match msgtype.as_str() {
        "text" => {
            let content = body.get("text").and_then(|t| text_field(t, "content"));
            (String::new(), content.ok_or_else(|| invalid("text.content"))?)
        }
        "markdown" => {
            let markdown = body.get("markdown").ok_or_else(|| invalid("markdown"))?;
            let title = text_field(markdown, "title").ok_or_else(|| invalid("markdown.title"))?;
            (title, text_field(markdown, "text").ok_or_else(|| invalid("markdown.text"))?)
        }
        _ => return Err(invalid("msgtype must be text or markdown")),
    };
    if text.trim().is_empty() {
        return Err(invalid("empty content"));
    }
    let (mut at_mobiles, mut at_user_ids, mut at_all) = (Vec::new(), Vec::new(), false);
    if let Some(at) = body.get("at") {
        let strings = |key: &str| -> Result<Vec<String>, Reply> {
            match at.get(key) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) => {
                    items.iter().map(|i| i.as_str().map(str::to_owned).ok_or_else(|| invalid(key))).collect()
                }
                Some(_) => Err(invalid(key)),
            }
        };
        at_mobiles = strings("atMobiles")?;
        at_user_ids = strings("atUserIds")?;
        at_all = match at.get("isAtAll") {
            None => false,
            Some(v) => v.as_bool().ok_or_else(|| invalid("isAtAll"))?,
        };
    }
    Ok(Message { received, msgtype, title, text, at_mobiles, at_user_ids, at_all, body })
}
