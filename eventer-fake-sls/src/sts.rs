//! The fake STS endpoint for RRSA (`AssumeRoleWithOIDC`), and ACK's add-on token file.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};

use crate::StsCredentials;

/// What one `AssumeRoleWithOIDC` call carried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OidcCall {
    /// `RoleArn`.
    pub role_arn: String,
    /// `OIDCProviderArn`.
    pub provider_arn: String,
    /// `OIDCToken`.
    pub token: String,
    /// `RoleSessionName`.
    pub session_name: String,
    /// `DurationSeconds`.
    pub duration_seconds: u32,
}

struct Inner {
    role_arn: String,
    provider_arn: String,
    /// The token the pod's projected file must hold; [`FakeSts::set_token`] rotates it.
    token: String,
    credentials: StsCredentials,
    calls: Vec<OidcCall>,
    requests: u64,
}

/// A fake STS on `127.0.0.1` answering `AssumeRoleWithOIDC` as Alibaba Cloud's does: an
/// RPC-style POST, `Action`/`Version`/`Format`/`Timestamp` in the query and the
/// parameters as a form body, no signature (the OIDC token is the proof). It hands out
/// its credentials for the right role, provider and token, and answers anything else
/// with STS's error JSON. Stopped when dropped.
pub struct FakeSts {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeSts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSts").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for FakeSts {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = Arc<Mutex<Inner>>;

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeSts {
    /// Trust `token` from `provider_arn` for `role_arn`, handing out `credentials`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(role_arn: &str, provider_arn: &str, token: &str, credentials: StsCredentials) -> FakeSts {
        let inner = Arc::new(Mutex::new(Inner {
            role_arn: role_arn.into(),
            provider_arn: provider_arn.into(),
            token: token.into(),
            credentials,
            calls: Vec::new(),
            requests: 0,
        }));
        let app = Router::new().route("/", post(assume_role_with_oidc)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve on the loopback listener");
        });
        FakeSts { addr, inner, task }
    }

    /// `http://127.0.0.1:<port>`: the value for `ALIBABA_CLOUD_STS_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Hand out `credentials` from now on.
    pub fn set_credentials(&self, credentials: StsCredentials) {
        lock(&self.inner).credentials = credentials;
    }

    /// Trust only `token` from now on (the projected token was rotated).
    pub fn set_token(&self, token: &str) {
        lock(&self.inner).token = token.into();
    }

    /// The calls that were answered with credentials, in order.
    pub fn calls(&self) -> Vec<OidcCall> {
        lock(&self.inner).calls.clone()
    }

    /// Requests received, answered or refused.
    pub fn requests(&self) -> u64 {
        lock(&self.inner).requests
    }
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "RequestId": "FAKE-STS-REQUEST",
        "HostId": "sts.aliyuncs.com",
        "Code": code,
        "Message": message,
    });
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

async fn assume_role_with_oidc(
    State(inner): State<Shared>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = lock(&inner);
    inner.requests += 1;
    let q = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if q("Action") != Some("AssumeRoleWithOIDC") {
        return refuse(StatusCode::NOT_FOUND, "InvalidAction.NotFound", "Specified api is not found");
    }
    if q("Version") != Some("2015-04-01") || q("Format") != Some("JSON") {
        return refuse(StatusCode::BAD_REQUEST, "InvalidVersion", "Specified parameter Version is not valid.");
    }
    if q("Timestamp").and_then(|t| t.parse::<jiff::Timestamp>().ok()).is_none() {
        return refuse(StatusCode::BAD_REQUEST, "MissingTimestamp", "Timestamp is mandatory for this action.");
    }
    let form = headers.get("content-type").and_then(|v| v.to_str().ok());
    if form.is_none_or(|v| !v.starts_with("application/x-www-form-urlencoded")) {
        return refuse(StatusCode::BAD_REQUEST, "InvalidParameter", "The parameters must be a form body.");
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let p = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (Some(role_arn), Some(provider_arn), Some(token), Some(session_name)) =
        (p("RoleArn"), p("OIDCProviderArn"), p("OIDCToken"), p("RoleSessionName"))
    else {
        return refuse(StatusCode::BAD_REQUEST, "MissingParameter", "A required parameter is missing.");
    };
    let duration_seconds = p("DurationSeconds").map_or(Some(3600), |d| d.parse().ok()).filter(|d| *d >= 900);
    let Some(duration_seconds) = duration_seconds else {
        return refuse(StatusCode::BAD_REQUEST, "InvalidParameter.DurationSeconds", "DurationSeconds is invalid.");
    };
    if provider_arn != inner.provider_arn {
        return refuse(
            StatusCode::NOT_FOUND,
            "EntityNotExist.OIDCProvider",
            "The specified OIDC provider does not exist.",
        );
    }
    if token != inner.token {
        return refuse(StatusCode::BAD_REQUEST, "AuthenticationFail.OIDCToken.Invalid", "The OIDC token is invalid.");
    }
    if role_arn != inner.role_arn {
        return refuse(StatusCode::NOT_FOUND, "EntityNotExist.Role", "The specified role does not exist.");
    }
    inner.calls.push(OidcCall {
        role_arn: role_arn.clone(),
        provider_arn,
        token,
        session_name: session_name.clone(),
        duration_seconds,
    });
    let c = &inner.credentials;
    let body = serde_json::json!({
        "RequestId": "FAKE-STS-REQUEST",
        "OIDCTokenInfo": {"Subject": "system:serviceaccount:kube-system:eventer", "Issuer": "https://oidc-ack.fake"},
        "AssumedRoleUser": {"AssumedRoleId": format!("3000:{session_name}"), "Arn": format!("{role_arn}/{session_name}")},
        "Credentials": {
            "SecurityToken": c.security_token,
            "Expiration": c.expiration.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "AccessKeySecret": c.access_key_secret,
            "AccessKeyId": c.access_key_id,
        },
    });
    ([("content-type", "application/json")], body.to_string()).into_response()
}

/// ACK's add-on token file (`/var/addon/token-config`) for `credentials`, as ACK writes it
/// and kube-eventer reads it: JSON whose key id, secret and token are each base64 of the
/// IV followed by the AES-CBC ciphertext (PKCS#7 padded) under `keyring` (16, 24 or 32
/// bytes), and a plain `expiration`.
///
/// # Panics
/// When `keyring` is not 16, 24 or 32 bytes long.
pub fn addon_token_config(credentials: &StsCredentials, keyring: &str) -> String {
    serde_json::json!({
        "access.key.id": encrypt(&credentials.access_key_id, keyring),
        "access.key.secret": encrypt(&credentials.access_key_secret, keyring),
        "security.token": encrypt(&credentials.security_token, keyring),
        "expiration": credentials.expiration.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "keyring": keyring,
    })
    .to_string()
}

fn encrypt(plain: &str, keyring: &str) -> String {
    use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
    use base64::Engine as _;
    let iv: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    let key = keyring.as_bytes();
    let data = plain.as_bytes();
    let ciphertext = match key.len() {
        16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, &iv)
            .expect("key and IV")
            .encrypt_padded_vec_mut::<Pkcs7>(data),
        24 => cbc::Encryptor::<aes::Aes192>::new_from_slices(key, &iv)
            .expect("key and IV")
            .encrypt_padded_vec_mut::<Pkcs7>(data),
        32 => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, &iv)
            .expect("key and IV")
            .encrypt_padded_vec_mut::<Pkcs7>(data),
        n => panic!("an AES key has 16, 24 or 32 bytes, not {n}"),
    };
    base64::engine::general_purpose::STANDARD.encode([iv.as_slice(), &ciphertext].concat())
}
