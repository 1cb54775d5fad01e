//! A loopback fake of WeCom (企业微信) for eventer's tests: the group robot
//! (`/cgi-bin/webhook/send?key=…`) and the app API kube-eventer's `wechat:` sink uses
//! (`/cgi-bin/gettoken`, `/cgi-bin/message/send`), on one port.
//!
//! It checks what WeCom checks — the robot's `key`; the corp id and secret, the access
//! token and its expiry, the agent id and the receivers of an app; the message shape;
//! text of at most 2048 bytes and markdown of at most 4096 — and enforces the rate limit
//! (20 messages per rolling minute, then errcode 45009 for each message over it). Tokens
//! live `expires_in` seconds (7200) and a fetch within that returns the same token, as
//! WeCom's do. Every request is recorded with its arrival time, token fetches are
//! counted, and failures (HTTP errors, non-JSON bodies, errcodes) can be injected.
//!
//! ```
//! use std::time::Duration;
//! use eventer_fake_wecom::FakeWeCom;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let wecom = FakeWeCom::builder().key("k3y").start().await;
//! assert!(wecom.robot_uri().starts_with("wecom:http://127.0.0.1:"));
//! assert!(wecom.app_uri().starts_with("wechat:?endpoint=http://127.0.0.1:"));
//! // Nothing arrives, so the wait gives up after the timeout.
//! assert!(!wecom.wait_until(Duration::from_millis(10), |w| !w.messages().is_empty()).await);
//! # });
//! ```

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use eventer_fake_chat::support;
use serde_json::{Value, json};
use tokio::{sync::Notify, task::JoinHandle};

/// The group robot's path, as WeCom's.
pub const ROBOT_PATH: &str = "/cgi-bin/webhook/send";
/// The app's token endpoint.
pub const TOKEN_PATH: &str = "/cgi-bin/gettoken";
/// The app's message endpoint.
pub const SEND_PATH: &str = "/cgi-bin/message/send";

/// Configures a [`FakeWeCom`]. Defaults are WeCom's: 20 messages per 60 s, text of 2048
/// bytes and markdown of 4096, tokens valid for 7200 s.
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    key: String,
    corp_id: String,
    corp_secret: String,
    agent_id: i64,
    users: Vec<String>,
    limit: usize,
    window: Duration,
    token_ttl: Duration,
    text_bytes: usize,
    markdown_bytes: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            key: "fake-key".into(),
            corp_id: "ww-fake-corp".into(),
            corp_secret: "fake-corp-secret".into(),
            agent_id: 1_000_002,
            users: vec!["ops".into(), "oncall".into()],
            limit: 20,
            window: Duration::from_secs(60),
            token_ttl: Duration::from_secs(7200),
            text_bytes: 2048,
            markdown_bytes: 4096,
        }
    }
}

impl Builder {
    /// The group robot's `key`.
    pub fn key(mut self, key: &str) -> Self {
        self.key = key.into();
        self
    }

    /// The app's corp id and secret.
    pub fn corp(mut self, corp_id: &str, corp_secret: &str) -> Self {
        self.corp_id = corp_id.into();
        self.corp_secret = corp_secret.into();
        self
    }

    /// The app's agent id.
    pub fn agent_id(mut self, agent_id: i64) -> Self {
        self.agent_id = agent_id;
        self
    }

    /// Members of the corp an app message may name in `touser` (besides `@all`).
    pub fn users(mut self, users: &[&str]) -> Self {
        self.users = users.iter().map(|u| (*u).to_owned()).collect();
        self
    }

    /// Messages allowed per `window`, robot and app each; more are refused with 45009.
    pub fn rate_limit(mut self, limit: usize, window: Duration) -> Self {
        self.limit = limit;
        self.window = window;
        self
    }

    /// How long an access token lives (`expires_in`).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// Bind to 127.0.0.1 on a free port and serve.
    ///
    /// # Panics
    /// When no loopback port can be bound (the test cannot run anyway).
    pub async fn start(self) -> FakeWeCom {
        let shared = Arc::new(Shared { config: self, state: Mutex::default(), changed: Notify::new() });
        let app = Router::new()
            .route(ROBOT_PATH, post(robot_send))
            .route(TOKEN_PATH, get(gettoken))
            .route(SEND_PATH, post(app_send))
            .with_state(shared.clone());
        let (addr, task) = support::serve(app, "WeCom").await;
        FakeWeCom { addr, shared, task }
    }
}

/// A failure to inject instead of handling a message (robot or app send; token fetches
/// are not affected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Handle the request normally (to script a sequence: pass one, fail the next).
    Pass,
    /// Answer with this HTTP status and a plain-text body.
    Status(u16),
    /// Answer HTTP 200 with an HTML page (what a proxy may send).
    NotJson,
    /// Answer HTTP 200 with this errcode and errmsg.
    Errcode(i64, String),
}

/// Where a message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The group robot.
    Robot,
    /// The app, to these receivers.
    App {
        /// `touser`, split at `|`.
        to_user: Vec<String>,
        /// `agentid`.
        agent_id: i64,
    },
}

/// A message WeCom accepted (errcode 0).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Message {
    /// When it arrived.
    pub received: Instant,
    /// The robot or the app.
    pub target: Target,
    /// `text` or `markdown`.
    pub msgtype: String,
    /// `text.content` or `markdown.content`.
    pub content: String,
    /// `text.mentioned_list` (robot text messages).
    pub mentioned_list: Vec<String>,
    /// `text.mentioned_mobile_list` (robot text messages).
    pub mentioned_mobile_list: Vec<String>,
    /// The whole request body.
    pub body: Value,
}

/// One request and how WeCom answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// When it arrived.
    pub received: Instant,
    /// The path requested.
    pub path: &'static str,
    /// The HTTP status of the reply.
    pub status: u16,
    /// The errcode of the reply; `None` when the reply was not WeCom JSON.
    pub errcode: Option<i64>,
    /// The errmsg of the reply.
    pub errmsg: String,
}

/// A running fake WeCom; it stops when dropped.
pub struct FakeWeCom {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl fmt::Debug for FakeWeCom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeWeCom").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for FakeWeCom {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeWeCom {
    /// A builder with WeCom's defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The origin: `http://127.0.0.1:<port>`, the app's `endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The robot's webhook URL without query.
    pub fn robot_url(&self) -> String {
        format!("{}{ROBOT_PATH}", self.endpoint())
    }

    /// A `wecom:` sink URI for the robot, with its key.
    pub fn robot_uri(&self) -> String {
        format!("wecom:{}?key={}", self.robot_url(), self.shared.config.key)
    }

    /// A `wechat:` sink URI (kube-eventer's) for the app, with `endpoint` set to this fake.
    pub fn app_uri(&self) -> String {
        let c = &self.shared.config;
        format!(
            "wechat:?endpoint={}&corp_id={}&corp_secret={}&agent_id={}",
            self.endpoint(),
            c.corp_id,
            c.corp_secret,
            c.agent_id
        )
    }

    /// Messages accepted so far, robot and app, in arrival order.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.lock().messages.clone()
    }

    /// Every request so far, accepted or not, in arrival order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.shared.lock().attempts.clone()
    }

    /// How many message replies (robot or app) carried `errcode`.
    pub fn errcode_count(&self, errcode: i64) -> usize {
        self.shared.lock().attempts.iter().filter(|a| a.path != TOKEN_PATH && a.errcode == Some(errcode)).count()
    }

    /// How many times a token was asked for, answered or not.
    pub fn token_fetches(&self) -> usize {
        self.shared.lock().attempts.iter().filter(|a| a.path == TOKEN_PATH).count()
    }

    /// Expire every token issued so far: using one answers 42001, and the next fetch
    /// issues a new one.
    pub fn expire_tokens(&self) {
        let mut state = self.shared.lock();
        for expiry in state.tokens.values_mut() {
            *expiry = Instant::now();
        }
    }

    /// Answer the next `times` messages with `failure`.
    pub fn fail_next(&self, times: usize, failure: Failure) {
        self.shared.lock().failures.extend(std::iter::repeat_n(failure, times));
        self.shared.changed.notify_waiters();
    }

    /// An outage: answer every message with `failure` for `duration` from now, however
    /// many arrive. Failures queued by [`FakeWeCom::fail_next`] still go first.
    pub fn fail_for(&self, duration: Duration, failure: Failure) {
        self.shared.lock().outage = Some((Instant::now() + duration, failure));
        self.shared.changed.notify_waiters();
    }

    /// The most messages (accepted or not) that arrived within any `window`: what a rate
    /// limit of that window saw at its busiest.
    pub fn peak_rate(&self, window: Duration) -> usize {
        let times = self.shared.lock().attempts.iter().filter(|a| a.path != TOKEN_PATH).map(|a| a.received).collect();
        support::peak_rate(times, window)
    }

    /// Wait until `condition` holds (checked after every request), or `timeout` passes.
    /// Returns whether it holds.
    pub async fn wait_until(&self, timeout: Duration, condition: impl Fn(&Self) -> bool) -> bool {
        support::wait_until(&self.shared.changed, timeout, self, condition).await
    }
}

struct Shared {
    config: Builder,
    state: Mutex<WeComState>,
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, WeComState> {
        // Plain records: a panicking test thread leaves them consistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, attempt: Attempt) {
        self.lock().attempts.push(attempt);
        self.changed.notify_waiters();
    }
}

#[derive(Default)]
struct WeComState {
    messages: Vec<Message>,
    attempts: Vec<Attempt>,
    failures: VecDeque<Failure>,
    /// Until when every message fails, and how.
    outage: Option<(Instant, Failure)>,
    /// Arrival times of accepted robot messages within the window.
    robot_recent: VecDeque<Instant>,
    /// Arrival times of accepted app messages within the window.
    app_recent: VecDeque<Instant>,
    /// Tokens issued, with their expiry.
    tokens: HashMap<String, Instant>,
    issued: usize,
}

/// A WeCom reply: HTTP 200 with errcode and errmsg.
struct Reply(i64, String);

impl Reply {
    fn new(errcode: i64, errmsg: &str) -> Self {
        Reply(errcode, errmsg.to_owned())
    }
}

fn reply(path: &'static str, received: Instant, Reply(errcode, errmsg): Reply, extra: Value) -> (Response, Attempt) {
    let mut body = json!({ "errcode": errcode, "errmsg": errmsg });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    (Json(body).into_response(), Attempt { received, path, status: 200, errcode: Some(errcode), errmsg })
}

/// The injected failure for a message arriving now, if any.
fn injected(shared: &Shared, received: Instant) -> Option<Failure> {
    let mut state = shared.lock();
    let outage = state.outage.clone().filter(|(until, _)| received < *until).map(|(_, failure)| failure);
    state.failures.pop_front().or(outage).filter(|f| *f != Failure::Pass)
}

fn failure_response(path: &'static str, received: Instant, failure: Failure) -> (Response, Attempt) {
    match failure {
        Failure::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let attempt = Attempt { received, path, status: status.as_u16(), errcode: None, errmsg: String::new() };
            ((status, "injected failure").into_response(), attempt)
        }
        Failure::NotJson => {
            let attempt = Attempt { received, path, status: 200, errcode: None, errmsg: String::new() };
            (([(CONTENT_TYPE, "text/html")], "<html>busy</html>").into_response(), attempt)
        }
        Failure::Errcode(code, msg) => reply(path, received, Reply(code, msg), Value::Null),
        Failure::Pass => unreachable!("Pass is filtered out"),
    }
}

async fn robot_send(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Instant::now();
    let (response, attempt) = match injected(&shared, received) {
        Some(failure) => failure_response(ROBOT_PATH, received, failure),
        None => {
            let result = handle_robot(&shared, received, &query, &headers, &body);
            reply(ROBOT_PATH, received, result.unwrap_or_else(|r| r), Value::Null)
        }
    };
    shared.record(attempt);
    response
}

fn handle_robot(
    shared: &Shared,
    received: Instant,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Reply, Reply> {
    let config = &shared.config;
    match query.get("key") {
        None => return Err(Reply::new(93000, "invalid webhook url, hint: missing key")),
        Some(key) if *key != config.key => return Err(Reply::new(93000, "invalid webhook url")),
        Some(_) => {}
    }
    json_content_type(headers)?;
    let body: Value = serde_json::from_slice(body).map_err(|_| Reply::new(40035, "invalid json body"))?;
    let mut message = parse_message(config, body, Target::Robot, received)?;
    let mut state = shared.lock();
    rate_limit(&mut state.robot_recent, config, received)?;
    message.received = received;
    state.messages.push(message);
    Ok(Reply::new(0, "ok"))
}

async fn gettoken(State(shared): State<Arc<Shared>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let received = Instant::now();
    let config = &shared.config;
    let result = if query.get("corpid") != Some(&config.corp_id) {
        Err(Reply::new(40013, "invalid corpid"))
    } else if query.get("corpsecret") != Some(&config.corp_secret) {
        Err(Reply::new(40001, "invalid credential"))
    } else {
        let mut state = shared.lock();
        // Within its lifetime a fetch returns the same token, with the time it has left.
        let live = state.tokens.iter().filter(|(_, expiry)| **expiry > received).max_by_key(|(_, e)| **e);
        let (token, expiry) = match live {
            Some((token, expiry)) => (token.clone(), *expiry),
            None => {
                state.issued += 1;
                let token = format!("fake-access-token-{}", state.issued);
                let expiry = received + config.token_ttl;
                state.tokens.insert(token.clone(), expiry);
                (token, expiry)
            }
        };
        Ok((token, expiry.duration_since(received).as_secs()))
    };
    let (response, attempt) = match result {
        Ok((token, expires_in)) => {
            reply(TOKEN_PATH, received, Reply::new(0, "ok"), json!({ "access_token": token, "expires_in": expires_in }))
        }
        Err(refusal) => reply(TOKEN_PATH, received, refusal, Value::Null),
    };
    shared.record(attempt);
    response
}

async fn app_send(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Instant::now();
    let (response, attempt) = match injected(&shared, received) {
        Some(failure) => failure_response(SEND_PATH, received, failure),
        None => match handle_app(&shared, received, &query, &headers, &body) {
            Ok((ok, invalid)) => reply(SEND_PATH, received, ok, json!({ "invaliduser": invalid })),
            Err(refusal) => reply(SEND_PATH, received, refusal, Value::Null),
        },
    };
    shared.record(attempt);
    response
}

fn handle_app(
    shared: &Shared,
    received: Instant,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Reply, String), Reply> {
    let config = &shared.config;
    let token = query.get("access_token").filter(|t| !t.is_empty()).ok_or(Reply::new(41001, "access_token missing"))?;
    match shared.lock().tokens.get(token) {
        None => return Err(Reply::new(40014, "invalid access_token")),
        Some(expiry) if *expiry <= received => return Err(Reply::new(42001, "access_token expired")),
        Some(_) => {}
    }
    json_content_type(headers)?;
    let body: Value = serde_json::from_slice(body).map_err(|_| Reply::new(40035, "invalid json body"))?;
    let agent_id = body.get("agentid").and_then(Value::as_i64).ok_or(Reply::new(41011, "missing agentid"))?;
    if agent_id != config.agent_id {
        return Err(Reply::new(40056, "invalid agentid"));
    }
    let to_user: Vec<String> =
        body.get("touser").and_then(Value::as_str).unwrap_or_default().split('|').map(str::to_owned).collect();
    let (valid, invalid): (Vec<&String>, Vec<&String>) =
        to_user.iter().filter(|u| !u.is_empty()).partition(|u| *u == "@all" || config.users.contains(u));
    if valid.is_empty() {
        return Err(Reply::new(81013, "user & party & tag all invalid"));
    }
    let target = Target::App { to_user: to_user.clone(), agent_id };
    let mut message = parse_message(config, body, target, received)?;
    let mut state = shared.lock();
    rate_limit(&mut state.app_recent, config, received)?;
    message.received = received;
    state.messages.push(message);
    let invalid: Vec<&str> = invalid.iter().map(|u| u.as_str()).collect();
    Ok((Reply::new(0, "ok"), invalid.join("|")))
}

fn json_content_type(headers: &HeaderMap) -> Result<(), Reply> {
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"));
    if json { Ok(()) } else { Err(Reply::new(40035, "invalid json body: content-type must be application/json")) }
}

/// Refused requests do not count against the limit; accepted ones do.
fn rate_limit(recent: &mut VecDeque<Instant>, config: &Builder, now: Instant) -> Result<(), Reply> {
    while recent.front().is_some_and(|t| now.duration_since(*t) >= config.window) {
        recent.pop_front();
    }
    if recent.len() >= config.limit {
        return Err(Reply::new(45009, "api freq out of limit"));
    }
    recent.push_back(now);
    Ok(())
}

fn parse_message(config: &Builder, body: Value, target: Target, received: Instant) -> Result<Message, Reply> {
    let invalid = |what: &str| Reply::new(40008, &format!("invalid message type or field: {what}"));
    let msgtype = body.get("msgtype").and_then(Value::as_str).ok_or_else(|| invalid("msgtype"))?.to_owned();
    let limit = match msgtype.as_str() {
        "text" => config.text_bytes,
        "markdown" => config.markdown_bytes,
        _ => return Err(invalid("msgtype must be text or markdown")),
    };
    let part = body.get(&msgtype).ok_or_else(|| invalid(&msgtype))?;
    let content = part.get("content").and_then(Value::as_str).ok_or_else(|| invalid("content"))?.to_owned();
    if content.trim().is_empty() {
        return Err(Reply::new(44004, "empty content"));
    }
    if content.len() > limit {
        return Err(Reply::new(40058, &format!("{msgtype}.content exceed max length {limit}")));
    }
    let strings = |key: &str| -> Result<Vec<String>, Reply> {
        match part.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => {
                items.iter().map(|i| i.as_str().map(str::to_owned).ok_or_else(|| invalid(key))).collect()
            }
            Some(_) => Err(invalid(key)),
        }
    };
    let mentioned_list = strings("mentioned_list")?;
    let mentioned_mobile_list = strings("mentioned_mobile_list")?;
    Ok(Message { received, target, msgtype, content, mentioned_list, mentioned_mobile_list, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn send(url: &str, body: &Value) -> reqwest::Response {
        rustls::crypto::ring::default_provider().install_default().ok();
        let request = reqwest::Client::new().post(url).header(CONTENT_TYPE, "application/json");
        request.body(body.to_string()).send().await.unwrap()
    }

    async fn post(url: &str, body: &Value) -> Value {
        serde_json::from_slice(&send(url, body).await.bytes().await.unwrap()).unwrap()
    }

    async fn get(url: &str) -> Value {
        rustls::crypto::ring::default_provider().install_default().ok();
        serde_json::from_slice(&reqwest::get(url).await.unwrap().bytes().await.unwrap()).unwrap()
    }

    #[tokio::test]
    async fn robot_checks_key_shape_size_and_rate() {
        let wecom = FakeWeCom::builder().key("k").rate_limit(2, Duration::from_secs(60)).start().await;
        let url = |key: &str| format!("{}?key={key}", wecom.robot_url());
        let text = |s: &str| json!({"msgtype":"text","text":{"content":s,"mentioned_list":["@all"]}});
        assert_eq!(post(&url("bad"), &text("hi")).await["errcode"], 93000);
        assert_eq!(post(&url("k"), &json!({"msgtype":"news"})).await["errcode"], 40008);
        assert_eq!(post(&url("k"), &text(&"x".repeat(2049))).await["errcode"], 40058);
        let md = json!({"msgtype":"markdown","markdown":{"content":"é".repeat(2048)}});
        assert_eq!(post(&url("k"), &md).await["errcode"], 0, "4096 bytes of markdown fit");
        assert_eq!(post(&url("k"), &text(&"x".repeat(2048))).await["errcode"], 0);
        assert_eq!(post(&url("k"), &text("three")).await["errcode"], 45009);
        assert_eq!(wecom.errcode_count(45009), 1);
        let messages = wecom.messages();
        assert_eq!(messages.len(), 2);
        assert_eq!((messages[1].msgtype.as_str(), messages[1].mentioned_list.clone()), ("text", vec!["@all".into()]));
        assert_eq!(messages[0].target, Target::Robot);
        assert_eq!(wecom.peak_rate(Duration::from_secs(60)), 6);
    }

    #[tokio::test]
    async fn app_tokens_live_until_they_expire_and_are_checked() {
        let wecom = FakeWeCom::builder().corp("corp", "s3cret").agent_id(7).users(&["ops"]).start().await;
        let token_url =
            |id: &str, secret: &str| format!("{}{TOKEN_PATH}?corpid={id}&corpsecret={secret}", wecom.endpoint());
        assert_eq!(get(&token_url("other", "s3cret")).await["errcode"], 40013);
        assert_eq!(get(&token_url("corp", "wrong")).await["errcode"], 40001);
        let first = get(&token_url("corp", "s3cret")).await;
        assert_eq!((first["errcode"].as_i64(), first["expires_in"].as_u64()), (Some(0), Some(7200)));
        let token = first["access_token"].as_str().unwrap().to_owned();
        assert_eq!(get(&token_url("corp", "s3cret")).await["access_token"], token.as_str(), "same token while valid");
        let send = |token: &str| format!("{}{SEND_PATH}?access_token={token}", wecom.endpoint());
        let msg = |to: &str, agent: i64| json!({"touser":to,"msgtype":"text","agentid":agent,"text":{"content":"hi"}});
        assert_eq!(post(&send("nope"), &msg("ops", 7)).await["errcode"], 40014);
        assert_eq!(post(&send(&token), &msg("ops", 8)).await["errcode"], 40056);
        assert_eq!(post(&send(&token), &msg("ghost", 7)).await["errcode"], 81013);
        let ok = post(&send(&token), &msg("ops|ghost", 7)).await;
        assert_eq!((ok["errcode"].as_i64(), ok["invaliduser"].as_str()), (Some(0), Some("ghost")));
        wecom.expire_tokens();
        assert_eq!(post(&send(&token), &msg("@all", 7)).await["errcode"], 42001);
        let renewed = get(&token_url("corp", "s3cret")).await["access_token"].as_str().unwrap().to_owned();
        assert_ne!(renewed, token);
        assert_eq!(post(&send(&renewed), &msg("@all", 7)).await["errcode"], 0);
        assert_eq!(wecom.token_fetches(), 5);
        let sent = wecom.messages();
        assert_eq!(sent[0].target, Target::App { to_user: vec!["ops".into(), "ghost".into()], agent_id: 7 });
    }

    #[tokio::test]
    async fn injected_failures_come_first_then_the_outage() {
        let wecom = FakeWeCom::builder().start().await;
        wecom.fail_next(1, Failure::Errcode(45009, "api freq out of limit".into()));
        wecom.fail_for(Duration::from_secs(60), Failure::Status(503));
        let url = format!("{}?key=fake-key", wecom.robot_url());
        let text = json!({"msgtype":"text","text":{"content":"hi"}});
        assert_eq!(post(&url, &text).await["errcode"], 45009);
        let status = send(&url, &text).await.status();
        assert_eq!(status.as_u16(), 503);
        assert!(wecom.messages().is_empty());
        assert_eq!(wecom.attempts().len(), 2);
    }
}
