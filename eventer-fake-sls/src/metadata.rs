//! The fake ECS metadata service: region, RAM role name, STS credentials, IMDSv2 tokens.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, put},
};
use jiff::Timestamp;

const TOKEN: &str = "fake-imds-session-token";

/// STS credentials as the metadata service hands them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsCredentials {
    /// `AccessKeyId` (`STS.…`).
    pub access_key_id: String,
    /// `AccessKeySecret`.
    pub access_key_secret: String,
    /// `SecurityToken`.
    pub security_token: String,
    /// `Expiration`.
    pub expiration: Timestamp,
}

impl StsCredentials {
    /// Credentials number `n`, valid for `valid_for` from now.
    ///
    /// # Panics
    /// When `valid_for` overflows the timestamp range.
    pub fn generate(n: u32, valid_for: Duration) -> Self {
        StsCredentials {
            access_key_id: format!("STS.fake{n}"),
            access_key_secret: format!("fake-sts-secret-{n}"),
            security_token: format!("CAIS-fake-token-{n}"),
            expiration: Timestamp::now().checked_add(valid_for).expect("expiration in range"),
        }
    }
}

struct Inner {
    role: String,
    region: String,
    imdsv2: bool,
    credentials: StsCredentials,
    credential_requests: usize,
}

/// A fake metadata service on `127.0.0.1`, stopped when dropped.
pub struct FakeMetadata {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeMetadata").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for FakeMetadata {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = Arc<Mutex<Inner>>;

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeMetadata {
    /// Start with RAM role `role` in region `region`, handing out `credentials`; IMDSv2
    /// tokens are required (see [`FakeMetadata::without_imdsv2`]).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(role: &str, region: &str, credentials: StsCredentials) -> FakeMetadata {
        let inner = Arc::new(Mutex::new(Inner {
            role: role.into(),
            region: region.into(),
            imdsv2: true,
            credentials,
            credential_requests: 0,
        }));
        let app = Router::new()
            .route("/latest/api/token", put(token))
            .route("/latest/meta-data/region-id", get(region_id))
            .route("/latest/meta-data/ram/security-credentials/", get(role_name))
            .route("/latest/meta-data/ram/security-credentials/{role}", get(role_credentials))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve on the loopback listener");
        });
        FakeMetadata { addr, inner, task }
    }

    /// Behave like a service without IMDSv2: the token endpoint answers 404 and reads need no token.
    #[must_use]
    pub fn without_imdsv2(self) -> Self {
        lock(&self.inner).imdsv2 = false;
        self
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Hand out `credentials` from now on (a rotation).
    pub fn set_credentials(&self, credentials: StsCredentials) {
        lock(&self.inner).credentials = credentials;
    }

    /// How many times the role's credentials were read.
    pub fn credential_requests(&self) -> usize {
        lock(&self.inner).credential_requests
    }
}

/// Whether a read may proceed: with IMDSv2 on, it must carry the session token.
fn authorized(inner: &Inner, headers: &HeaderMap) -> bool {
    let token = headers.get("x-aliyun-ecs-metadata-token").and_then(|v| v.to_str().ok());
    !inner.imdsv2 || token == Some(TOKEN)
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, "IMDSv2 token required").into_response()
}

async fn token(State(inner): State<Shared>, headers: HeaderMap) -> Response {
    if !lock(&inner).imdsv2 {
        return StatusCode::NOT_FOUND.into_response();
    }
    let ttl = headers.get("x-aliyun-ecs-metadata-token-ttl-seconds").and_then(|v| v.to_str().ok()?.parse::<u32>().ok());
    match ttl {
        Some(1..=21_600) => TOKEN.into_response(),
        _ => (StatusCode::BAD_REQUEST, "X-aliyun-ecs-metadata-token-ttl-seconds must be 1..21600").into_response(),
    }
}

async fn region_id(State(inner): State<Shared>, headers: HeaderMap) -> Response {
    let inner = lock(&inner);
    if !authorized(&inner, &headers) {
        return forbidden();
    }
    inner.region.clone().into_response()
}

async fn role_name(State(inner): State<Shared>, headers: HeaderMap) -> Response {
    let inner = lock(&inner);
    if !authorized(&inner, &headers) {
        return forbidden();
    }
    inner.role.clone().into_response()
}

async fn role_credentials(State(inner): State<Shared>, Path(role): Path<String>, headers: HeaderMap) -> Response {
    let mut inner = lock(&inner);
    if !authorized(&inner, &headers) {
        return forbidden();
    }
    if role != inner.role {
        return StatusCode::NOT_FOUND.into_response();
    }
    inner.credential_requests += 1;
    let c = &inner.credentials;
    let last_updated = c.expiration.checked_sub(jiff::SignedDuration::from_hours(6)).unwrap_or(c.expiration);
    let body = serde_json::json!({
        "AccessKeyId": c.access_key_id,
        "AccessKeySecret": c.access_key_secret,
        "Expiration": c.expiration.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "SecurityToken": c.security_token,
        "LastUpdated": last_updated.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "Code": "Success",
    });
    ([("content-type", "text/plain")], body.to_string()).into_response()
}
