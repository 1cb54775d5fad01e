//! One HTTP request to the receiver, and what its answer means.

use std::time::Duration;

use eventer_core::{Error, ErrorKind, Result};
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;

use crate::config::WebhookConfig;

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Eventer-Signature";
/// The header naming the event(s) of a request, stable across retries.
pub const EVENT_ID_HEADER: &str = "X-Eventer-Event-Id";

/// How much of a refusal's body is logged.
const BODY_SNIPPET: usize = 256;
/// The longest wait a `Retry-After` may ask for; a longer one is clamped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Sends bodies to the receiver.
pub(crate) struct Client {
    http: reqwest::Client,
    url: reqwest::Url,
    method: reqwest::Method,
    headers: HeaderMap,
    secret: Option<Vec<u8>>,
    /// Strings never to show in a log line: the secret and the header values.
    hidden: Vec<String>,
}

impl Client {
    pub(crate) fn new(config: &WebhookConfig) -> Result<Client> {
        // reqwest is built without a default crypto provider; installing fails only when
        // one is already installed, which is fine.
        drop(rustls::crypto::ring::default_provider().install_default());
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("eventer/", env!("CARGO_PKG_VERSION")))
            // The URL may carry a key: never follow it to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {}", e.without_url())))?;
        let url = reqwest::Url::parse(&config.url).map_err(|e| Error::config(format!("invalid webhook URL: {e}")))?;
        let method = reqwest::Method::from_bytes(config.method.as_bytes())
            .map_err(|_| Error::config(format!("option method: `{}` is not an HTTP method", config.method)))?;
        let mut headers = HeaderMap::new();
        let mut hidden: Vec<String> = config.sign_secret.iter().map(|s| s.expose().to_owned()).collect();
        for (name, value) in config.headers()? {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::config(format!("option header: `{name}` is not a valid header name")))?;
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| Error::config(format!("option header: the value of {name} is not valid")))?;
            value.set_sensitive(true);
            if value.len() >= 4 {
                hidden.push(value.to_str().unwrap_or_default().to_owned());
            }
            headers.append(name, value);
        }
        let secret = config.sign_secret.as_ref().map(|s| s.expose().as_bytes().to_vec());
        Ok(Client { http, url, method, headers, secret, hidden })
    }

    /// `sha256=<hex HMAC-SHA256 of body>`.
    pub(crate) fn signature(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Send one body; `ids` name its events for the receiver's de-duplication.
    pub(crate) async fn send(&self, body: String, ids: &str, json: bool) -> Result<()> {
        let mut request = self.http.request(self.method.clone(), self.url.clone()).headers(self.headers.clone());
        if json && !self.headers.contains_key(reqwest::header::CONTENT_TYPE) {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, Client::signature(secret, body.as_bytes()));
        }
        if let Ok(ids) = HeaderValue::from_str(ids) {
            request = request.header(EVENT_ID_HEADER, ids);
        }
        let response = request.body(body).send().await.map_err(|e| {
            let what = if e.is_timeout() { "timed out" } else { "failed" };
            Error::new(ErrorKind::Unavailable, format!("webhook request {what}")).with_source(e.without_url())
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // A refusal's body says why; a slow or huge one must not hold the sink.
        let snippet = match tokio::time::timeout(Duration::from_secs(2), response.bytes()).await {
            Ok(Ok(bytes)) => self.snippet(&bytes),
            _ => String::new(),
        };
        Err(classify(status.as_u16(), retry_after, &snippet))
    }

    /// The start of a body, on one line, without secrets.
    fn snippet(&self, bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(BODY_SNIPPET * 4)]);
        let mut text: String = text.chars().take(BODY_SNIPPET).map(|c| if c.is_control() { ' ' } else { c }).collect();
        for secret in &self.hidden {
            text = text.replace(secret.as_str(), "***");
        }
        eventer_core::uri::redact(text.trim())
    }
}

/// What a non-2xx answer means: 429, 408 and 5xx are retried (after `Retry-After` when
/// given), other statuses refuse the request.
fn classify(status: u16, retry_after: Option<Duration>, body: &str) -> Error {
    let said = if body.is_empty() { String::new() } else { format!(": {body}") };
    let (kind, temporary) = match status {
        429 => (ErrorKind::RateLimited, true),
        408 | 500..=599 => (ErrorKind::Unavailable, true),
        401 | 403 => (ErrorKind::Unauthorized, false),
        _ => (ErrorKind::Rejected, false),
    };
    let error = Error::new(kind, format!("webhook answered HTTP {status}{said}"));
    match (temporary, retry_after) {
        (true, Some(after)) => error.temporary().with_retry_after(after),
        (true, None) => error.temporary(),
        (false, _) => error.permanent(),
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let after = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok()?;
            let now = jiff::Timestamp::now();
            if at <= now { Duration::ZERO } else { Duration::try_from(at - now).ok()? }
        }
    };
    Some(after.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let retry = classify(503, None, "");
        assert!(retry.is_temporary() && retry.retry_after().is_none());
        let limited = classify(429, Some(Duration::from_secs(7)), "slow down");
        assert_eq!((limited.kind(), limited.retry_after()), (ErrorKind::RateLimited, Some(Duration::from_secs(7))));
        assert_eq!(limited.to_string(), "webhook answered HTTP 429: slow down");
        assert!(classify(408, None, "").is_temporary());
        let refused = classify(400, Some(Duration::from_secs(1)), "bad json");
        assert!(!refused.is_temporary() && refused.kind() == ErrorKind::Rejected);
        assert_eq!(classify(403, None, "").kind(), ErrorKind::Unauthorized);
        assert!(!classify(404, None, "").is_temporary());
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("99999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a date in the past");
        let soon =
            (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120)).strftime("%a, %d %b %Y %H:%M:%S GMT");
        let after = parse_retry_after(&soon.to_string()).unwrap();
        assert!(after > Duration::from_secs(100) && after <= Duration::from_secs(120), "{after:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            Client::signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn snippets_hide_secrets() {
        let mut config = WebhookConfig::new("https://h/x");
        config.header = vec!["Authorization=Bearer s3cr3t-value".into()];
        config.sign_secret = Some(eventer_core::config::Secret::new("sign-k3y"));
        let client = Client::new(&config).unwrap();
        let body = "echo: Bearer s3cr3t-value sign-k3y token=abc\nline two";
        assert_eq!(client.snippet(body.as_bytes()), "echo: *** *** token=*** line two");
    }
}
