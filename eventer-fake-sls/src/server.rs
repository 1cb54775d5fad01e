//! The fake PutLogs endpoint.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use jiff::{SignedDuration, Timestamp};
use prost::Message as _;
use tokio::sync::watch;

use crate::{auth, proto::LogGroup};

/// The region the fake signs v4 requests for.
pub const REGION: &str = "cn-hangzhou";
/// The fake's endpoint host: requests must carry `Host: <project>.127.0.0.1`.
pub const PROJECT_HOST_SUFFIX: &str = ".127.0.0.1";
const MAX_LOGS: usize = 4096;
const MAX_RAW_BYTES: usize = 3 * 1024 * 1024;
const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(15);
const MAX_LOG_AGE: SignedDuration = SignedDuration::from_hours(7 * 24);

/// An error SLS answers with, injected by [`FakeSls::fail_next`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// 503 `ServerBusy`.
    ServerBusy,
    /// 500 `InternalServerError`.
    InternalServerError,
    /// 403 `WriteQuotaExceed`.
    WriteQuotaExceed,
    /// 403 `ShardWriteQuotaExceed`.
    ShardWriteQuotaExceed,
    /// 401 `SignatureNotMatch`.
    SignatureNotMatch,
    /// 401 `Unauthorized`.
    Unauthorized,
    /// 404 `ProjectNotExist`.
    ProjectNotExist,
    /// 404 `LogStoreNotExist`.
    LogStoreNotExist,
    /// 400 `RequestTimeExpired`.
    RequestTimeExpired,
}

impl Failure {
    fn answer(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Failure::ServerBusy => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServerBusy", "The server is busy, please try again later.")
            }
            Failure::InternalServerError => {
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "Internal server error.")
            }
            Failure::WriteQuotaExceed => {
                (StatusCode::FORBIDDEN, "WriteQuotaExceed", "Project write quota exceed: inflow: 100")
            }
            Failure::ShardWriteQuotaExceed => {
                (StatusCode::FORBIDDEN, "ShardWriteQuotaExceed", "Shard write quota exceed")
            }
            Failure::SignatureNotMatch => (StatusCode::UNAUTHORIZED, "SignatureNotMatch", "Signature not matched."),
            Failure::Unauthorized => {
                (StatusCode::UNAUTHORIZED, "Unauthorized", "The security token you provided has expired.")
            }
            Failure::ProjectNotExist => (StatusCode::NOT_FOUND, "ProjectNotExist", "The Project does not exist"),
            Failure::LogStoreNotExist => (StatusCode::NOT_FOUND, "LogStoreNotExist", "logstore does not exist"),
            Failure::RequestTimeExpired => (StatusCode::BAD_REQUEST, "RequestTimeExpired", "Request time expired."),
        }
    }
}

/// An accepted PutLogs request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Write {
    /// From the `Host` header.
    pub project: String,
    /// From the path.
    pub log_store: String,
    /// The AccessKeyId that signed it.
    pub access_key_id: String,
    /// `x-acs-security-token`, if sent.
    pub security_token: Option<String>,
    /// 1 or 4.
    pub signature_version: u8,
    /// Whether the body was LZ4-compressed.
    pub compressed: bool,
    /// `x-log-bodyrawsize`.
    pub raw_size: usize,
    /// The decoded body.
    pub group: LogGroup,
    /// When it was stored: for measuring how long an event takes to reach SLS.
    pub received: std::time::Instant,
}

/// A refused request: what the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// SLS `errorCode`.
    pub code: String,
    /// SLS `errorMessage`.
    pub message: String,
    /// Whether the answer was injected with [`FakeSls::fail_next`] (else the request was invalid).
    pub injected: bool,
}

#[derive(Default)]
struct Inner {
    keys: HashMap<String, (String, Option<String>)>,
    script: VecDeque<Option<Failure>>,
    /// Requests holding a log with a value containing one of these are refused.
    poison: Vec<String>,
    /// Requests with a larger raw body are refused with 413.
    max_raw_bytes: Option<usize>,
    /// Delays of the answers to the next accepted requests.
    late: VecDeque<Duration>,
    writes: Vec<Write>,
    /// Logs in `writes`.
    logs: usize,
    refusals: Vec<Refusal>,
    requests: u64,
}

struct Shared {
    inner: Mutex<Inner>,
    logs: watch::Sender<usize>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fake SLS endpoint on `127.0.0.1`, stopped when dropped.
pub struct FakeSls {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeSls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSls").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for FakeSls {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSls {
    /// Start on a free loopback port. It knows no keys yet: see [`FakeSls::add_key`].
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> FakeSls {
        let shared = Arc::new(Shared { inner: Mutex::new(Inner::default()), logs: watch::channel(0).0 });
        let app = Router::new()
            .route("/logstores/{log_store}/shards/lb", post(put_logs))
            // The Go SDK's form of the same write (its producer's), which SLS also serves.
            .route("/logstores/{log_store}", post(put_logs))
            .fallback(|| async { refuse(StatusCode::NOT_FOUND, "InvalidRequest", "unknown API", 0) })
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve on the loopback listener");
        });
        FakeSls { addr, shared, task }
    }

    /// `http://127.0.0.1:<port>`: the sink's endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Accept a static AccessKey pair.
    pub fn add_key(&self, access_key_id: &str, access_key_secret: &str) {
        self.shared.lock().keys.insert(access_key_id.into(), (access_key_secret.into(), None));
    }

    /// Accept STS credentials (their token must come with them).
    pub fn add_sts(&self, credentials: &crate::StsCredentials) {
        self.shared.lock().keys.insert(
            credentials.access_key_id.clone(),
            (credentials.access_key_secret.clone(), Some(credentials.security_token.clone())),
        );
    }

    /// Stop accepting a key: its requests get 401 `Unauthorized`.
    pub fn revoke(&self, access_key_id: &str) {
        self.shared.lock().keys.remove(access_key_id);
    }

    /// Answer the next `n` valid requests with `failure` (after any already scheduled).
    pub fn fail_next(&self, n: usize, failure: Failure) {
        self.shared.lock().script.extend(std::iter::repeat_n(Some(failure), n));
    }

    /// Accept the next `n` valid requests (after any failures already scheduled), so
    /// failures can be placed mid-stream.
    pub fn pass_next(&self, n: usize) {
        self.shared.lock().script.extend(std::iter::repeat_n(None, n));
    }

    /// Refuse every request holding a log with a value that contains `marker`, with 400
    /// `PostBodyInvalid`, as SLS refuses a whole request for one log it finds invalid.
    pub fn poison(&self, marker: &str) {
        self.shared.lock().poison.push(marker.into());
    }

    /// Refuse requests of more than `bytes` raw bytes with 413 `PostBodyTooLarge`, as a
    /// proxy with a lower limit than SLS's would.
    pub fn limit_raw_bytes(&self, bytes: usize) {
        self.shared.lock().max_raw_bytes = Some(bytes);
    }

    /// Store each of the next `n` valid requests at once but answer only after `delay`,
    /// as an SLS whose reply is slow or lost.
    pub fn answer_late(&self, n: usize, delay: Duration) {
        self.shared.lock().late.extend(std::iter::repeat_n(delay, n));
    }

    /// Accepted requests, in order.
    pub fn writes(&self) -> Vec<Write> {
        self.shared.lock().writes.clone()
    }

    /// Refused requests, in order.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.shared.lock().refusals.clone()
    }

    /// Requests received, valid or not.
    pub fn requests(&self) -> u64 {
        self.shared.lock().requests
    }

    /// Every accepted log, in order.
    pub fn logs(&self) -> Vec<crate::proto::Log> {
        self.shared.lock().writes.iter().flat_map(|w| w.group.logs.clone()).collect()
    }

    /// Wait until at least `n` logs were accepted.
    ///
    /// # Panics
    /// After `timeout`, saying how many arrived and what was refused.
    pub async fn wait_for_logs(&self, n: usize, timeout: Duration) {
        let mut rx = self.shared.logs.subscribe();
        if tokio::time::timeout(timeout, rx.wait_for(|count| *count >= n)).await.is_err() {
            panic!("timed out waiting for {n} logs: got {}; refusals: {:?}", *rx.borrow(), self.refusals());
        }
    }
}

fn refuse(status: StatusCode, code: &str, message: &str, id: u64) -> Response {
    let body = serde_json::json!({ "errorCode": code, "errorMessage": message }).to_string();
    (status, [("x-log-requestid", format!("FAKE{id:012}")), ("content-type", "application/json".into())], body)
        .into_response()
}

/// Why a request is refused: status, code, message.
type Reject = (StatusCode, &'static str, String);

fn bad(code: &'static str, message: impl Into<String>) -> Reject {
    (StatusCode::BAD_REQUEST, code, message.into())
}

async fn put_logs(
    State(shared): State<Arc<Shared>>,
    Path(log_store): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = {
        let mut inner = shared.lock();
        inner.requests += 1;
        inner.requests
    };
    let outcome = check(&shared, uri.path(), &query, &headers, &body).map(|mut write| {
        write.log_store = log_store;
        write
    });
    // Settled under the lock; a late answer waits after it is released.
    let settled = {
        let mut inner = shared.lock();
        let refusal = match outcome {
            Err((status, code, message)) => {
                Err(Refusal { status: status.as_u16(), code: code.into(), message, injected: false })
            }
            Ok(write) => match inner.script.pop_front().flatten() {
                Some(failure) => {
                    let (status, code, message) = failure.answer();
                    Err(Refusal { status: status.as_u16(), code: code.into(), message: message.into(), injected: true })
                }
                None => {
                    inner.logs += write.group.logs.len();
                    inner.writes.push(Write { received: std::time::Instant::now(), ..write });
                    shared.logs.send_replace(inner.logs);
                    Ok(inner.late.pop_front())
                }
            },
        };
        if let Err(refusal) = &refusal {
            inner.refusals.push(refusal.clone());
        }
        refusal
    };
    let refusal = match settled {
        Ok(late) => {
            if let Some(delay) = late {
                tokio::time::sleep(delay).await;
            }
            return (StatusCode::OK, [("x-log-requestid", format!("FAKE{id:012}"))]).into_response();
        }
        Err(refusal) => refusal,
    };
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
    refuse(status, &refusal.code, &refusal.message, id)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Check a PutLogs request as SLS does; the decoded write, or the refusal.
fn check(
    shared: &Shared,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Write, Reject> {
    let host = header(headers, "host").unwrap_or_default();
    // HTTP clients name a port that is not the scheme's default (the Go SDK does).
    let name = host.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(host, |(name, _)| name);
    let project = name
        .strip_suffix(PROJECT_HOST_SUFFIX)
        .filter(|p| !p.is_empty() && !p.contains('.'))
        .ok_or_else(|| bad("InvalidHost", format!("Host `{host}` is not <project>{PROJECT_HOST_SUFFIX}")))?
        .to_owned();
    let (access_key_id, signature_version) = verify_signature(shared, path, query, headers, body)?;
    let security_token = header(headers, "x-acs-security-token").map(str::to_owned);
    if let Some(md5) = header(headers, "content-md5") {
        if md5 != auth::md5_upper_hex(body) {
            return Err(bad("InvalidContentMD5", "Content-MD5 does not match the body (uppercase hex expected)"));
        }
    } else if signature_version == 1 {
        return Err(bad("ParameterInvalid", "Content-MD5 is missing"));
    }
    if header(headers, "content-type") != Some("application/x-protobuf") {
        return Err(bad("InvalidContentType", "Content-Type must be application/x-protobuf"));
    }
    if header(headers, "x-log-apiversion") != Some("0.6.0") {
        return Err(bad("ParameterInvalid", "x-log-apiversion must be 0.6.0"));
    }
    let raw_size: usize = header(headers, "x-log-bodyrawsize")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("ParameterInvalid", "x-log-bodyrawsize is missing or not a number"))?;
    if raw_size > MAX_RAW_BYTES {
        return Err(bad("PostBodyTooLarge", "Logs must be less than 3M and 4096 lines."));
    }
    if shared.lock().max_raw_bytes.is_some_and(|max| raw_size > max) {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "PostBodyTooLarge", "Request Entity Too Large".into()));
    }
    let (raw, compressed) = match header(headers, "x-log-compresstype") {
        Some("lz4") => {
            let raw = lz4_flex::block::decompress(body, raw_size)
                .map_err(|e| bad("PostBodyUncompressError", format!("lz4 block: {e}")))?;
            if raw.len() != raw_size {
                return Err(bad("PostBodyUncompressError", "x-log-bodyrawsize does not match the decompressed size"));
            }
            (raw, true)
        }
        None if body.len() == raw_size => (body.to_vec(), false),
        None => return Err(bad("ParameterInvalid", "x-log-bodyrawsize does not match the body")),
        Some(other) => return Err(bad("ParameterInvalid", format!("unsupported x-log-compresstype {other}"))),
    };
    let group = LogGroup::decode(raw.as_slice()).map_err(|e| bad("PostBodyInvalid", format!("protobuf: {e}")))?;
    if group.logs.len() > MAX_LOGS {
        return Err(bad("PostBodyTooLarge", "Logs must be less than 3M and 4096 lines."));
    }
    let poison = shared.lock().poison.clone();
    for (i, log) in group.logs.iter().enumerate() {
        if let Some(marker) = poison.iter().find(|m| log.contents.iter().any(|c| c.value.contains(m.as_str()))) {
            return Err(bad("PostBodyInvalid", format!("log {i} is invalid: it contains {marker}")));
        }
    }
    let now = Timestamp::now();
    for log in &group.logs {
        let t = Timestamp::from_second(i64::from(log.time)).unwrap_or(Timestamp::UNIX_EPOCH);
        if t < now - MAX_LOG_AGE || t > now + CLOCK_SKEW || log.time_ns.is_some_and(|ns| ns >= 1_000_000_000) {
            return Err(bad("InvalidTimestamp", format!("log time {t} is outside the accepted window")));
        }
    }
    Ok(Write {
        project,
        log_store: String::new(),
        access_key_id,
        security_token,
        signature_version,
        compressed,
        raw_size,
        group,
        received: std::time::Instant::now(),
    })
}

/// The key id and signature version of a correctly signed request with fresh time headers.
fn verify_signature(
    shared: &Shared,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, u8), Reject> {
    let authorization = header(headers, "authorization").unwrap_or_default();
    let unauthorized = |message: String| (StatusCode::UNAUTHORIZED, "Unauthorized", message);
    let (id, version, given, region) = if let Some(rest) = authorization.strip_prefix("LOG ") {
        let (id, sig) = rest.split_once(':').ok_or_else(|| bad("ParameterInvalid", "malformed authorization"))?;
        (id, 1, sig, REGION)
    } else if let Some(rest) = authorization.strip_prefix("SLS4-HMAC-SHA256 Credential=") {
        let (credential, sig) =
            rest.split_once(",Signature=").ok_or_else(|| bad("ParameterInvalid", "malformed authorization"))?;
        let mut scope = credential.split('/');
        let (id, date, region) = (scope.next().unwrap_or(""), scope.next().unwrap_or(""), scope.next().unwrap_or(""));
        let log_date = header(headers, "x-log-date").unwrap_or_default();
        if !log_date.starts_with(date) || date.len() != 8 || scope.collect::<Vec<_>>() != ["sls", "aliyun_v4_request"] {
            return Err(bad("ParameterInvalid", "malformed v4 credential scope"));
        }
        if header(headers, "x-log-content-sha256") != Some(auth::sha256_hex(body).as_str()) {
            return Err(bad("ParameterInvalid", "x-log-content-sha256 does not match the body"));
        }
        (id, 4, sig, region)
    } else {
        return Err(unauthorized("missing or unknown authorization".into()));
    };
    let sent_at = if version == 1 {
        header(headers, "date").and_then(|d| jiff::fmt::rfc2822::parse(d).ok()).map(|z| z.timestamp())
    } else {
        header(headers, "x-log-date")
            .and_then(|d| jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", d).ok())
            .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp())
    };
    let sent_at = sent_at.ok_or_else(|| bad("InvalidRequestTime", "missing or malformed request time"))?;
    if Timestamp::now().duration_since(sent_at).abs() > CLOCK_SKEW {
        return Err(bad("RequestTimeExpired", "Request time expired: more than 15 minutes off"));
    }
    let Some((secret, token)) = shared.lock().keys.get(id).cloned() else {
        return Err(unauthorized(format!("AccessKeyId not found: {id}")));
    };
    let expected = if version == 1 {
        auth::v1_signature("POST", path, query, headers, &secret)
    } else {
        if region != REGION {
            return Err(unauthorized(format!("region {region} of the signature is not {REGION}")));
        }
        auth::v4_signature("POST", path, query, headers, &secret, region)
    };
    if expected != given {
        return Err((StatusCode::UNAUTHORIZED, "SignatureNotMatch", format!("Signature {given} not matched.")));
    }
    if token.is_some() && token.as_deref() != header(headers, "x-acs-security-token") {
        return Err(unauthorized("The security token you provided is invalid.".into()));
    }
    Ok((id.to_owned(), version))
}
