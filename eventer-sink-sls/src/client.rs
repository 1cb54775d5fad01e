//! The PutLogs HTTP call: headers, signing, sending, and reading SLS's error answers.

use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;

use crate::{
    config::{Endpoint, SlsConfig},
    credentials::Credentials,
    error::{ServerError, SlsError},
    proto::Body,
    sign::{SignableRequest, SignatureVersion, sign},
};

/// Longest SLS error body read; real ones are a few hundred bytes.
const MAX_ERROR_BODY: usize = 4096;

/// An HTTP client with rustls (ring provider, system roots) and timeouts.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, SlsError> {
    // Fails only when a provider is already installed, which is what we want.
    drop(rustls::crypto::ring::default_provider().install_default());
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("eventer/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SlsError::Config(format!("cannot build the HTTP client: {}", e.without_url())))
}

/// Writes log groups to one logstore.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    endpoint: Endpoint,
    url: String,
    host: String,
    path: String,
    project: String,
    log_store: String,
    version: SignatureVersion,
    region: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    error_message: String,
}

impl Client {
    pub(crate) fn new(http: reqwest::Client, config: &SlsConfig, endpoint: Endpoint, region: String) -> Self {
        let path = format!("/logstores/{}/shards/lb", config.log_store);
        Client {
            http,
            url: endpoint.url(&config.project, &path),
            host: endpoint.host_header(&config.project),
            endpoint,
            path,
            project: config.project.clone(),
            log_store: config.log_store.clone(),
            version: config.signature_version,
            region,
        }
    }

    pub(crate) fn endpoint(&self) -> String {
        self.endpoint.display()
    }

    /// POST one body, signed with `credentials` at the current time.
    ///
    /// # Errors
    /// A transport failure, or SLS's answer when it is not 200.
    pub(crate) async fn put_logs(&self, body: &Body, credentials: &Credentials) -> Result<(), SlsError> {
        let mut request = SignableRequest::new("POST", self.path.clone());
        request
            .header("content-type", "application/x-protobuf")
            .header("content-md5", body.md5.clone())
            .header("host", self.host.clone())
            .header("x-log-apiversion", "0.6.0")
            .header("x-log-bodyrawsize", body.raw_size.to_string())
            .header("x-log-compresstype", "lz4");
        sign(&mut request, &body.bytes, self.version, &self.region, credentials, Timestamp::now());
        let mut http = self.http.post(&self.url).body(body.bytes.clone());
        for (name, value) in &request.headers {
            http = http.header(name, value);
        }
        let transport = |e: reqwest::Error| SlsError::Transport { endpoint: self.endpoint(), source: e.without_url() };
        let mut response = http.send().await.map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let request_id =
            response.headers().get("x-log-requestid").and_then(|v| v.to_str().ok()).unwrap_or("none").to_owned();
        let mut text = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            text.extend_from_slice(&chunk);
            if text.len() > MAX_ERROR_BODY {
                break;
            }
        }
        let parsed: ErrorBody = serde_json::from_slice(&text).unwrap_or_default();
        let code = if parsed.error_code.is_empty() {
            status.canonical_reason().unwrap_or("Error").replace(' ', "")
        } else {
            parsed.error_code
        };
        Err(SlsError::Server(Box::new(ServerError {
            project: self.project.clone(),
            log_store: self.log_store.clone(),
            status: status.as_u16(),
            hint: hint(&code),
            message: credentials.scrub(&parsed.error_message),
            code,
            request_id,
        })))
    }
}

/// What a person should check, for errors that need one.
fn hint(code: &str) -> &'static str {
    match code {
        "SignatureNotMatch" => "; check accessKeySecret (and that the key pair belongs together)",
        "Unauthorized" => "; check that the AccessKey or RAM role may write to this logstore (log:PostLogStoreLogs)",
        "ProjectNotExist" => "; check the project name and the endpoint/region",
        "LogStoreNotExist" => "; create the logstore or fix the logStore option",
        "RequestTimeExpired" => "; check this machine's clock",
        "PostBodyTooLarge" | "PayloadTooLarge" => "; lower maxBatchBytes if this recurs",
        c if c.starts_with("InvalidAccessKeyId") => "; check accessKeyId",
        _ => "",
    }
}
