//! A loopback stand-in for the Elasticsearch / OpenSearch REST API that an archive sink
//! uses, written from the documented API (no server installs here): the `_bulk` endpoint
//! (NDJSON action and document lines ending with a newline, `index` replacing by `_id`,
//! `create` answering 409 for an existing `_id`, one item per action with its own
//! status, `errors: true` when any failed, HTTP 200 even then), index creation with
//! aliases (`resource_already_exists_exception` when it exists), basic and API-key
//! authentication, `http.max_content_length` (413), typeless bulk as Elasticsearch 8 and
//! OpenSearch 2 want it (a `_type` is refused), and scripted failures: whole requests
//! answered 503, items answered 429 `es_rejected_execution_exception`, documents refused
//! with 400 `mapper_parsing_exception`.
//!
//! ```
//! # rustls::crypto::ring::default_provider().install_default().ok();
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let es = eventer_fake_elasticsearch::FakeElasticsearch::builder().start().await;
//! let body = "{\"index\":{\"_index\":\"events-2026.12.01\",\"_id\":\"a-1\"}}\n{\"Reason\":\"BackOff\"}\n";
//! let answer = reqwest::Client::new()
//!     .post(format!("{}/_bulk", es.url()))
//!     .header("content-type", "application/x-ndjson")
//!     .body(body)
//!     .send().await.unwrap();
//! assert_eq!(answer.status(), 200);
//! assert_eq!(es.documents()[0].id, "a-1");
//! # });
//! ```

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// A stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Its index.
    pub index: String,
    /// Its `_id`.
    pub id: String,
    /// How many times it was written (`_version`): more than 1 means a retry or a repeat
    /// overwrote it.
    pub version: u64,
    /// The document.
    pub source: Value,
}

/// One `_bulk` request as received.
#[derive(Debug, Clone)]
pub struct BulkRequest {
    /// The path's index, if any (`/<index>/_bulk`).
    pub path_index: Option<String>,
    /// The query string.
    pub query: String,
    /// How many actions it held.
    pub actions: usize,
    /// Its size in bytes.
    pub bytes: usize,
}

/// How the server authenticates.
#[derive(Debug, Clone)]
enum Auth {
    None,
    Basic(String, String),
    ApiKey(String),
}

/// Builds a [`FakeElasticsearch`].
#[derive(Debug, Clone)]
pub struct Builder {
    auth: Auth,
    max_content_length: usize,
}

impl Builder {
    /// Require HTTP basic authentication.
    #[must_use]
    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Auth::Basic(user.to_owned(), password.to_owned());
        self
    }

    /// Require `Authorization: ApiKey <key>`.
    #[must_use]
    pub fn api_key(mut self, key: &str) -> Self {
        self.auth = Auth::ApiKey(key.to_owned());
        self
    }

    /// The largest request body accepted (Elasticsearch's `http.max_content_length`,
    /// 100 MB by default); a larger one is answered 413.
    #[must_use]
    pub fn max_content_length(mut self, bytes: usize) -> Self {
        self.max_content_length = bytes;
        self
    }

    /// Bind to 127.0.0.1 on a free port and serve.
    ///
    /// # Panics
    /// When no loopback port can be bound (the test cannot run anyway).
    pub async fn start(self) -> FakeElasticsearch {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let shared = Arc::new(Shared { config: self, state: Mutex::default(), changed: Notify::new() });
        let app = Router::new()
            .route("/", get(info))
            .route("/_bulk", post(bulk_all).put(bulk_all))
            .route("/{index}/_bulk", post(bulk_index).put(bulk_index))
            .route("/{index}", put(create_index).head(index_exists))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("fake Elasticsearch stopped serving: {e}");
            }
        });
        FakeElasticsearch { addr, shared, task }
    }
}

#[derive(Default)]
struct Stored {
    documents: BTreeMap<(String, String), Document>,
    /// Index name → its aliases.
    indices: BTreeMap<String, BTreeSet<String>>,
    requests: Vec<BulkRequest>,
    fail_requests: Vec<u16>,
    reject_items: usize,
    lose_answers: usize,
    refuse_reasons: BTreeSet<String>,
    next_id: u64,
}

struct Shared {
    config: Builder,
    state: Mutex<Stored>,
    changed: Notify,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, Stored> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running stand-in; stops when dropped.
pub struct FakeElasticsearch {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeElasticsearch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeElasticsearch {
    /// A server without authentication and with the default content limit.
    pub fn builder() -> Builder {
        Builder { auth: Auth::None, max_content_length: 100 << 20 }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The stored documents, by index and `_id`.
    pub fn documents(&self) -> Vec<Document> {
        self.shared.state().documents.values().cloned().collect()
    }

    /// The indices and their aliases.
    pub fn indices(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.shared.state().indices.clone()
    }

    /// The `_bulk` requests received, in order.
    pub fn requests(&self) -> Vec<BulkRequest> {
        self.shared.state().requests.clone()
    }

    /// Answer the next `_bulk` requests with these HTTP statuses, one each, before handling
    /// any (503 for an overloaded cluster, 413, 401 ...).
    pub fn fail_requests(&self, statuses: &[u16]) {
        self.shared.state().fail_requests.extend_from_slice(statuses);
    }

    /// Store the next `n` `_bulk` requests, but answer them 504 (what a proxy's timeout or
    /// a lost connection looks like to the client): a client that sends them again must
    /// not store their documents twice.
    pub fn lose_answers(&self, n: usize) {
        self.shared.state().lose_answers += n;
    }

    /// Answer the next `n` bulk items 429 `es_rejected_execution_exception` (a full write
    /// queue), storing nothing for them.
    pub fn reject_items(&self, n: usize) {
        self.shared.state().reject_items += n;
    }

    /// Refuse documents whose `Reason` is `reason` with 400 `mapper_parsing_exception`.
    pub fn refuse_reason(&self, reason: &str) {
        self.shared.state().refuse_reasons.insert(reason.to_owned());
    }

    /// Wait until at least `n` documents are stored, or `timeout`; returns how many are.
    pub async fn wait_for_documents(&self, n: usize, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            let stored = self.shared.state().documents.len();
            if stored >= n || tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.shared.state().documents.len();
            }
        }
    }
}

fn error(status: StatusCode, kind: &str, reason: &str) -> Response {
    let body = json!({"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
                      "status": status.as_u16()});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let ok = match &shared.config.auth {
        Auth::None => true,
        Auth::Basic(user, password) => given.strip_prefix("Basic ").is_some_and(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .is_ok_and(|d| d == format!("{user}:{password}").as_bytes())
        }),
        Auth::ApiKey(key) => given.strip_prefix("ApiKey ") == Some(key.as_str()),
    };
    if ok {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "security_exception",
            "missing authentication credentials for REST request",
        )))
    }
}

async fn info(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&shared, &headers) {
        return *r;
    }
    json!({"name": "fake", "cluster_name": "fake", "version": {"number": "8.15.0"}, "tagline": "You Know, for Search"})
        .to_string()
        .into_response()
}

async fn index_exists(State(shared): State<Arc<Shared>>, Path(index): Path<String>) -> StatusCode {
    if shared.state().indices.contains_key(&index) { StatusCode::OK } else { StatusCode::NOT_FOUND }
}

async fn create_index(
    State(shared): State<Arc<Shared>>,
    Path(index): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorized(&shared, &headers) {
        return *r;
    }
    if index != index.to_lowercase() || index.starts_with(['_', '-', '+']) {
        return error(StatusCode::BAD_REQUEST, "invalid_index_name_exception", "Invalid index name, must be lowercase");
    }
    let aliases: BTreeSet<String> = if body.is_empty() {
        BTreeSet::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => {
                v.get("aliases").and_then(Value::as_object).map(|a| a.keys().cloned().collect()).unwrap_or_default()
            }
            Err(_) => return error(StatusCode::BAD_REQUEST, "parse_exception", "request body is not JSON"),
        }
    };
    let mut state = shared.state();
    if state.indices.contains_key(&index) {
        return error(
            StatusCode::BAD_REQUEST,
            "resource_already_exists_exception",
            &format!("index [{index}/abc] already exists"),
        );
    }
    state.indices.insert(index.clone(), aliases);
    json!({"acknowledged": true, "shards_acknowledged": true, "index": index}).to_string().into_response()
}

async fn bulk_all(
    State(shared): State<Arc<Shared>>,
    query: axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    bulk(&shared, None, query.0.unwrap_or_default(), &headers, &body)
}

async fn bulk_index(
    State(shared): State<Arc<Shared>>,
    Path(index): Path<String>,
    query: axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    bulk(&shared, Some(index), query.0.unwrap_or_default(), &headers, &body)
}

fn bulk(shared: &Shared, path_index: Option<String>, query: String, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Err(r) = authorized(shared, headers) {
        return *r;
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !(content_type.starts_with("application/x-ndjson") || content_type.starts_with("application/json")) {
        return error(
            StatusCode::NOT_ACCEPTABLE,
            "media_type_header_exception",
            &format!("Content-Type header [{content_type}] is not supported"),
        );
    }
    if body.len() > shared.config.max_content_length {
        return (StatusCode::PAYLOAD_TOO_LARGE, "").into_response();
    }
    let mut state = shared.state();
    if !state.fail_requests.is_empty() {
        let status = state.fail_requests.remove(0);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return error(status, "cluster_block_exception", "scripted failure");
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return error(StatusCode::BAD_REQUEST, "parse_exception", "body is not UTF-8");
    };
    if !text.ends_with('\n') {
        return error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        );
    }
    // Parse every line first: a malformed action line fails the whole request.
    let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
    let mut actions = Vec::new();
    while let Some(line) = lines.next() {
        let Ok(Value::Object(action)) = serde_json::from_str::<Value>(line) else {
            return error(StatusCode::BAD_REQUEST, "x_content_parse_exception", "Malformed action/metadata line");
        };
        let Some((op, meta)) = action.into_iter().next() else {
            return error(StatusCode::BAD_REQUEST, "illegal_argument_exception", "Malformed action/metadata line");
        };
        if !matches!(op.as_str(), "index" | "create") {
            return error(StatusCode::BAD_REQUEST, "illegal_argument_exception", &format!("unsupported action [{op}]"));
        }
        if meta.get("_type").is_some() {
            return error(
                StatusCode::BAD_REQUEST,
                "illegal_argument_exception",
                "Action/metadata line [1] contains an unknown parameter [_type]",
            );
        }
        let Some(document) = lines.next() else {
            return error(StatusCode::BAD_REQUEST, "illegal_argument_exception", "Validation Failed: no document");
        };
        let index = meta.get("_index").and_then(Value::as_str).map(str::to_owned).or_else(|| path_index.clone());
        let id = meta.get("_id").and_then(Value::as_str).map(str::to_owned);
        actions.push((op, index, id, document));
    }
    state.requests.push(BulkRequest { path_index, query, actions: actions.len(), bytes: body.len() });
    // A request whose answer is lost is stored whole; rejections wait for the next one.
    let lost = state.lose_answers > 0;
    state.lose_answers = state.lose_answers.saturating_sub(1);
    let mut errors = false;
    let mut items = Vec::new();
    for (op, index, id, document) in actions {
        let id = id.unwrap_or_else(|| {
            state.next_id += 1;
            format!("auto-{}", state.next_id)
        });
        let item = |status: u16, extra: Value| {
            let mut item = json!({"_index": index.clone().unwrap_or_default(), "_id": id.clone(), "status": status});
            if let (Value::Object(item), Value::Object(extra)) = (&mut item, extra) {
                item.extend(extra);
            }
            json!({ op.clone(): item })
        };
        let failed =
            |status: u16, kind: &str, reason: &str| item(status, json!({"error": {"type": kind, "reason": reason}}));
        let Some(index) = index.clone() else {
            errors = true;
            items.push(failed(400, "action_request_validation_exception", "index is missing"));
            continue;
        };
        if state.reject_items > 0 && !lost {
            state.reject_items -= 1;
            errors = true;
            items.push(failed(
                429,
                "es_rejected_execution_exception",
                "rejected execution of coordinating operation [queue capacity = 200]",
            ));
            continue;
        }
        let source = match serde_json::from_str::<Value>(document) {
            Ok(source @ Value::Object(_)) => source,
            _ => {
                errors = true;
                items.push(failed(400, "mapper_parsing_exception", "failed to parse"));
                continue;
            }
        };
        if source.get("Reason").and_then(Value::as_str).is_some_and(|r| state.refuse_reasons.contains(r)) {
            errors = true;
            items.push(failed(400, "mapper_parsing_exception", "failed to parse field [Reason] of type [long]"));
            continue;
        }
        if index != index.to_lowercase() {
            errors = true;
            items.push(failed(400, "invalid_index_name_exception", "Invalid index name, must be lowercase"));
            continue;
        }
        state.indices.entry(index.clone()).or_default();
        let key = (index.clone(), id.clone());
        match state.documents.get_mut(&key) {
            Some(_) if op == "create" => {
                errors = true;
                items.push(failed(409, "version_conflict_engine_exception", "document already exists"));
            }
            Some(existing) => {
                existing.version += 1;
                existing.source = source;
                items.push(item(200, json!({"result": "updated", "_version": existing.version})));
            }
            None => {
                state.documents.insert(key, Document { index, id: id.clone(), version: 1, source });
                items.push(item(201, json!({"result": "created", "_version": 1})));
            }
        }
    }
    drop(state);
    shared.changed.notify_waiters();
    if lost {
        return error(StatusCode::GATEWAY_TIMEOUT, "timeout", "the answer was lost");
    }
    ([(header::CONTENT_TYPE, "application/json")], json!({"took": 1, "errors": errors, "items": items}).to_string())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(es: &FakeElasticsearch, auth: Option<&str>, body: &str) -> (u16, Value) {
        rustls::crypto::ring::default_provider().install_default().ok();
        let mut request = reqwest::Client::new()
            .post(format!("{}/_bulk", es.url()))
            .header("content-type", "application/x-ndjson")
            .body(body.to_owned());
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn bulk_follows_the_documented_api() {
        let es = FakeElasticsearch::builder().basic_auth("elastic", "pw").start().await;
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("elastic:pw"));
        let doc = "{\"index\":{\"_index\":\"e\",\"_id\":\"1\"}}\n{\"Reason\":\"A\"}\n";
        assert_eq!(post(&es, None, doc).await.0, 401);
        let (status, answer) = post(&es, Some(&basic), doc).await;
        assert_eq!((status, answer["errors"].as_bool()), (200, Some(false)));
        assert_eq!(answer["items"][0]["index"]["status"], 201);
        // `index` again replaces; `create` of an existing id conflicts; the answer is still 200.
        let (_, answer) = post(&es, Some(&basic), doc).await;
        assert_eq!(answer["items"][0]["index"]["status"], 200);
        let create = "{\"create\":{\"_index\":\"e\",\"_id\":\"1\"}}\n{\"Reason\":\"A\"}\n";
        let (status, answer) = post(&es, Some(&basic), create).await;
        assert_eq!((status, answer["errors"].as_bool()), (200, Some(true)));
        assert_eq!(answer["items"][0]["create"]["status"], 409);
        assert_eq!(es.documents()[0].version, 2);
        // No final newline, or a `_type`: the whole request fails.
        assert_eq!(post(&es, Some(&basic), doc.trim_end()).await.0, 400);
        assert_eq!(post(&es, Some(&basic), &doc.replace("\"_id\"", "\"_type\":\"events\",\"_id\"")).await.0, 400);
        // Scripted item rejections and whole-request failures.
        es.reject_items(1);
        let (_, answer) = post(&es, Some(&basic), doc).await;
        assert_eq!(answer["items"][0]["index"]["error"]["type"], "es_rejected_execution_exception");
        es.fail_requests(&[503]);
        assert_eq!(post(&es, Some(&basic), doc).await.0, 503);
        assert_eq!(es.requests().len(), 4, "the refused and failed ones are not handled");
    }
}
