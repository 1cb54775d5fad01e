//! A fake Slack incoming webhook (`/services/T…/B…/X…`).
//!
//! Checks: the webhook's path (404 `no_service`), an archived channel (410
//! `channel_is_archived`), the rate limit — about one message a second with short bursts,
//! a token bucket of `burst` messages refilled one a second (429 `rate_limited` with
//! `Retry-After` in seconds) —, the JSON body (400 `invalid_payload`), a `text` or
//! `blocks` (400 `no_text`), at most 50 blocks with section texts of at most 3000
//! characters (400 `invalid_blocks`), and a `text` of at most 40000 characters (400
//! `msg_too_long`). Success is HTTP 200 with the plain-text body `ok`.

use std::{
    fmt,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{StatusCode, header::CONTENT_TYPE, header::RETRY_AFTER},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::common::{self, Attempt, Failure, Log};

/// Blocks per message, as Slack allows.
pub const MAX_BLOCKS: usize = 50;
/// Characters of a section block's text, as Slack allows.
pub const MAX_SECTION_CHARS: usize = 3000;
/// Characters of a message's `text`.
pub const MAX_TEXT_CHARS: usize = 40_000;

/// Configures a [`FakeSlack`]. Defaults: a burst of 4 messages, refilled at one a second.
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    path: String,
    burst: f64,
    per_second: f64,
    archived: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder { path: "/services/T0FAKE/B0FAKE/XXXXfakeXXXX".into(), burst: 4.0, per_second: 1.0, archived: false }
    }
}

impl Builder {
    /// The webhook's secret part: `T…/B…/X…`.
    pub fn hook(mut self, hook: &str) -> Self {
        self.path = format!("/services/{hook}");
        self
    }

    /// A token bucket of `burst` messages, refilled at `per_second`.
    pub fn rate_limit(mut self, burst: u32, per_second: f64) -> Self {
        self.burst = burst.into();
        self.per_second = per_second;
        self
    }

    /// The channel is archived: every post answers 410 `channel_is_archived`.
    pub fn archived(mut self) -> Self {
        self.archived = true;
        self
    }

    /// Bind to 127.0.0.1 on a free port and serve.
    ///
    /// # Panics
    /// When no loopback port can be bound (the test cannot run anyway).
    pub async fn start(self) -> FakeSlack {
        let bucket = Mutex::new((self.burst, Instant::now()));
        let shared = Arc::new(Shared { config: self, bucket, log: Log::default() });
        let app = Router::new().route("/services/{*hook}", post(hook)).with_state(shared.clone());
        let (addr, task) = common::serve(app, "Slack webhook").await;
        FakeSlack { addr, shared, task }
    }
}

/// A message Slack accepted.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Message {
    /// When it arrived.
    pub received: Instant,
    /// The `text` field (the notification's fallback when there are blocks).
    pub text: String,
    /// The texts of the blocks, in order.
    pub blocks: Vec<String>,
    /// The whole request body.
    pub body: Value,
}

impl Message {
    /// What the channel shows: the blocks' texts, or `text` without blocks.
    pub fn shown(&self) -> String {
        if self.blocks.is_empty() { self.text.clone() } else { self.blocks.join("\n") }
    }
}

/// A running fake webhook; it stops when dropped.
pub struct FakeSlack {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl fmt::Debug for FakeSlack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeSlack").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSlack {
    /// A builder with the defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The webhook URL: `http://127.0.0.1:<port>/services/T…/B…/X…`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.shared.config.path)
    }

    /// A sink URI for this webhook.
    pub fn sink_uri(&self) -> String {
        format!("slack:{}", self.url())
    }

    /// Messages accepted so far, in arrival order.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.log.lock().messages.clone()
    }

    /// Every request so far, accepted or not, in arrival order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.shared.log.lock().attempts.clone()
    }

    /// How many replies had HTTP `status`.
    pub fn status_count(&self, status: u16) -> usize {
        self.shared.log.lock().attempts.iter().filter(|a| a.status == status).count()
    }

    /// Answer the next `times` requests with `failure`.
    pub fn fail_next(&self, times: usize, failure: Failure) {
        self.shared.log.fail_next(times, failure);
    }

    /// An outage: answer every request with `failure` for `duration` from now.
    /// Failures queued by [`FakeSlack::fail_next`] still go first.
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
    /// Tokens left, and when they were counted.
    bucket: Mutex<(f64, Instant)>,
    log: Log<Message>,
}

/// Slack's answer: status, plain-text body, and `Retry-After` seconds.
struct Answer(u16, String, Option<u64>);

fn answer(status: u16, body: &str) -> Answer {
    Answer(status, body.to_owned(), None)
}

async fn hook(State(shared): State<Arc<Shared>>, Path(hook): Path<String>, body: Bytes) -> Response {
    let received = Instant::now();
    let Answer(status, text, retry_after) = match shared.log.injected(received) {
        Some(Failure::Status(code)) => answer(code, "injected failure"),
        Some(Failure::NotJson) => answer(200, "<html>busy</html>"),
        Some(Failure::Code(code, msg)) => Answer(u16::try_from(code).unwrap_or(500), msg, None),
        None | Some(Failure::Pass) => handle(&shared, received, &hook, &body).unwrap_or_else(|a| a),
    };
    shared.log.record(Attempt { received, status, code: None, reply: text.clone() });
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (code, [(CONTENT_TYPE, "text/plain")], text).into_response();
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(RETRY_AFTER, seconds.into());
    }
    response
}

fn handle(shared: &Shared, received: Instant, hook: &str, raw: &[u8]) -> Result<Answer, Answer> {
    let config = &shared.config;
    if format!("/services/{hook}") != config.path {
        return Err(answer(404, "no_service"));
    }
    if config.archived {
        return Err(answer(410, "channel_is_archived"));
    }
    take_token(shared, received)?;
    let body: Value = serde_json::from_slice(raw).map_err(|_| answer(400, "invalid_payload"))?;
    let text = body.get("text").and_then(Value::as_str).unwrap_or_default().to_owned();
    let blocks = match body.get("blocks") {
        None => Vec::new(),
        Some(Value::Array(blocks)) => section_texts(blocks)?,
        Some(_) => return Err(answer(400, "invalid_blocks")),
    };
    if text.trim().is_empty() && blocks.is_empty() {
        return Err(answer(400, "no_text"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(answer(400, "msg_too_long"));
    }
    shared.log.lock().messages.push(Message { received, text, blocks, body });
    Ok(answer(200, "ok"))
}

/// The texts of `header`, `section` and `context` blocks; other kinds are refused.
fn section_texts(blocks: &[Value]) -> Result<Vec<String>, Answer> {
    let invalid = || answer(400, "invalid_blocks");
    if blocks.len() > MAX_BLOCKS {
        return Err(invalid());
    }
    let mut texts = Vec::new();
    for block in blocks {
        let texts_of: Vec<&Value> = match block["type"].as_str() {
            Some("header" | "section") => vec![&block["text"]],
            Some("context") => block["elements"].as_array().map(|e| e.iter().collect()).ok_or_else(invalid)?,
            Some("divider") => Vec::new(),
            _ => return Err(invalid()),
        };
        for t in texts_of {
            let kind_ok = matches!(t["type"].as_str(), Some("mrkdwn" | "plain_text"));
            let text = t["text"].as_str().filter(|s| kind_ok && !s.is_empty()).ok_or_else(invalid)?;
            if text.chars().count() > MAX_SECTION_CHARS {
                return Err(invalid());
            }
            texts.push(text.to_owned());
        }
    }
    Ok(texts)
}

fn take_token(shared: &Shared, now: Instant) -> Result<(), Answer> {
    let config = &shared.config;
    let mut bucket = shared.bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (tokens, at) = *bucket;
    let tokens = (tokens + now.duration_since(at).as_secs_f64() * config.per_second).min(config.burst);
    if tokens < 1.0 {
        *bucket = (tokens, now);
        let wait = ((1.0 - tokens) / config.per_second).ceil().max(1.0);
        // Whole seconds, at least 1: what Slack sends.
        return Err(Answer(429, "rate_limited".into(), Some(wait as u64)));
    }
    *bucket = (tokens - 1.0, now);
    Ok(())
}
