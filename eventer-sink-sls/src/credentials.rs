//! Credentials: a static AccessKey pair (URI options or environment), or the STS
//! credentials of the ECS instance's RAM role, read from the metadata service (protocols.md
//! B.9) with the IMDSv2 token handshake and refreshed ahead of their expiry.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde::Deserialize;

use crate::error::SlsError;

/// STS credentials are replaced this long before they expire (the Go SDK uses 2 min).
const REFRESH_AHEAD: SignedDuration = SignedDuration::from_secs(180);
/// TTL asked for the IMDSv2 session token (ack-ram-tool's default).
const IMDS_TOKEN_TTL: &str = "18000";
const ROLE_PATH: &str = "/latest/meta-data/ram/security-credentials/";

/// An AccessKey pair, with an STS token and its expiry for temporary credentials.
///
/// `Debug` shows none of the three secrets (the key id included), only whether there is a
/// token and when it expires.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key_id: String,
    access_key_secret: String,
    security_token: Option<String>,
    expiration: Option<Timestamp>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &"***")
            .field("access_key_secret", &"***")
            .field("security_token", &self.security_token.as_ref().map(|_| "***"))
            .field("expiration", &self.expiration)
            .finish()
    }
}

impl Credentials {
    /// A long-lived AccessKey pair.
    pub fn new(access_key_id: impl Into<String>, access_key_secret: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            access_key_secret: access_key_secret.into(),
            security_token: None,
            expiration: None,
        }
    }

    /// STS credentials, valid until `expiration`.
    pub(crate) fn sts(
        access_key_id: impl Into<String>,
        access_key_secret: impl Into<String>,
        security_token: impl Into<String>,
        expiration: Timestamp,
    ) -> Self {
        Credentials {
            security_token: Some(security_token.into()),
            expiration: Some(expiration),
            ..Credentials::new(access_key_id, access_key_secret)
        }
    }

    /// The AccessKeyId.
    pub(crate) fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The AccessKeySecret.
    pub(crate) fn access_key_secret(&self) -> &str {
        &self.access_key_secret
    }

    /// The STS token, sent as `x-acs-security-token`.
    pub(crate) fn security_token(&self) -> Option<&str> {
        self.security_token.as_deref()
    }

    /// When temporary credentials expire.
    pub(crate) fn expiration(&self) -> Option<Timestamp> {
        self.expiration
    }

    /// Whether they should be replaced at `now`: expired, or about to.
    fn is_stale(&self, now: Timestamp) -> bool {
        self.expiration.is_some_and(|exp| exp.duration_since(now) < REFRESH_AHEAD)
    }

    /// Replace every secret found in `text` (a server message may quote the key id).
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in [Some(&self.access_key_id), Some(&self.access_key_secret), self.security_token.as_ref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
        {
            out = out.replace(secret.as_str(), "***");
        }
        out
    }
}

/// The ECS instance metadata service (`http://100.100.100.200` on ECS).
#[derive(Debug, Clone)]
pub(crate) struct Metadata {
    http: reqwest::Client,
    base: String,
}

/// `GET .../security-credentials/<role>` answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleCredentials {
    #[serde(default)]
    code: String,
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    access_key_secret: String,
    #[serde(default)]
    security_token: String,
    #[serde(default)]
    expiration: String,
    #[serde(default)]
    last_updated: String,
}

impl Metadata {
    pub(crate) fn new(http: reqwest::Client, base: &str) -> Self {
        Metadata { http, base: base.trim_end_matches('/').to_owned() }
    }

    pub(crate) fn address(&self) -> &str {
        &self.base
    }

    fn error(&self, message: impl Into<String>, source: Option<reqwest::Error>) -> SlsError {
        SlsError::Metadata {
            address: self.base.clone(),
            message: message.into(),
            source: source.map(|e| e.without_url()),
        }
    }

    /// The IMDSv2 session token, or `None` where the service does not do IMDSv2 (403/404).
    async fn session_token(&self) -> Result<Option<String>, SlsError> {
        let response = self
            .http
            .put(format!("{}/latest/api/token", self.base))
            .header("X-aliyun-ecs-metadata-token-ttl-seconds", IMDS_TOKEN_TTL)
            .send()
            .await
            .map_err(|e| self.error("cannot reach it", Some(e)))?;
        match response.status() {
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let token = response.text().await.map_err(|e| self.error("cannot read the IMDSv2 token", Some(e)))?;
                Ok(Some(token.trim().to_owned()))
            }
            s => Err(self.error(format!("PUT /latest/api/token answered HTTP {}", s.as_u16()), None)),
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Result<String, SlsError> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("X-aliyun-ecs-metadata-token", token);
        }
        let response = request.send().await.map_err(|e| self.error("cannot reach it", Some(e)))?;
        let status = response.status();
        if !status.is_success() {
            let hint =
                if status == StatusCode::NOT_FOUND { " (is a RAM role attached to this ECS instance?)" } else { "" };
            return Err(self.error(format!("GET {path} answered HTTP {}{hint}", status.as_u16()), None));
        }
        response.text().await.map_err(|e| self.error(format!("cannot read {path}"), Some(e)))
    }

    /// The instance's region (`/latest/meta-data/region-id`).
    pub(crate) async fn region(&self) -> Result<String, SlsError> {
        let token = self.session_token().await?;
        let region = self.get("/latest/meta-data/region-id", token.as_deref()).await?;
        let region = region.trim();
        if region.is_empty() {
            return Err(self.error("returned an empty region-id", None));
        }
        Ok(region.to_owned())
    }

    /// The STS credentials of the instance's RAM role.
    pub(crate) async fn role_credentials(&self) -> Result<Credentials, SlsError> {
        let token = self.session_token().await?;
        let roles = self.get(ROLE_PATH, token.as_deref()).await?;
        let role = roles
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .ok_or_else(|| self.error("no RAM role is attached to this instance (empty role list)", None))?;
        let body = self.get(&format!("{ROLE_PATH}{role}"), token.as_deref()).await?;
        let c: RoleCredentials = serde_json::from_str(&body)
            .map_err(|e| self.error(format!("role {role}: credentials are not JSON ({e})"), None))?;
        // The Go SDK's validity check.
        if !c.code.eq_ignore_ascii_case("success")
            || [&c.access_key_id, &c.access_key_secret, &c.expiration, &c.last_updated].iter().any(|v| v.is_empty())
        {
            return Err(self.error(format!("role {role}: credentials incomplete (Code `{}`)", c.code), None));
        }
        let expiration: Timestamp = c
            .expiration
            .parse()
            .map_err(|e| self.error(format!("role {role}: invalid Expiration `{}` ({e})", c.expiration), None))?;
        Ok(Credentials::sts(c.access_key_id, c.access_key_secret, c.security_token, expiration))
    }
}

/// Where credentials come from, with the current ones.
#[derive(Debug)]
pub(crate) enum CredentialProvider {
    /// A fixed AccessKey pair.
    Static(Credentials),
    /// The RAM role's STS credentials, refreshed from the metadata service.
    RamRole { metadata: Metadata, current: Credentials },
}

impl CredentialProvider {
    /// Fetch the RAM role's credentials.
    pub(crate) async fn ram_role(metadata: Metadata) -> Result<Self, SlsError> {
        let current = metadata.role_credentials().await?;
        tracing::info!(metadata = %metadata.address(), expiration = ?current.expiration(), "Using the ECS RAM role's STS credentials.");
        Ok(CredentialProvider::RamRole { metadata, current })
    }

    /// Credentials to sign with at `now`, refreshed first when they are about to expire.
    /// When a refresh fails, credentials that have not yet expired are still used.
    ///
    /// # Errors
    /// When the credentials expired and the metadata service cannot give new ones.
    pub(crate) async fn get(&mut self, now: Timestamp) -> Result<&Credentials, SlsError> {
        if let CredentialProvider::RamRole { current, .. } = self
            && current.is_stale(now)
            && let Err(e) = self.refresh().await
        {
            if self.current().expiration().is_some_and(|exp| exp <= now) {
                return Err(e);
            }
            tracing::warn!(error = %e, "Cannot refresh the STS credentials yet; using the current ones until they expire.");
        }
        Ok(self.current())
    }

    fn current(&self) -> &Credentials {
        match self {
            CredentialProvider::Static(c) | CredentialProvider::RamRole { current: c, .. } => c,
        }
    }

    /// Replace the STS credentials now. Returns `false` for static credentials, which cannot be.
    ///
    /// # Errors
    /// When the metadata service fails.
    pub(crate) async fn refresh(&mut self) -> Result<bool, SlsError> {
        match self {
            CredentialProvider::Static(_) => Ok(false),
            CredentialProvider::RamRole { metadata, current } => {
                *current = metadata.role_credentials().await?;
                tracing::debug!(expiration = ?current.expiration(), "Refreshed the STS credentials.");
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_scrub_hide_every_secret() {
        let exp: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let c = Credentials::sts("STS.idXYZ", "s3cr3tKEY", "CAItokenABC", exp);
        let shown = format!("{c:?}");
        for secret in ["STS.idXYZ", "s3cr3tKEY", "CAItokenABC"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("2030-01-01"));
        assert_eq!(
            c.scrub("AccessKeyId STS.idXYZ is not allowed; token CAItokenABC"),
            "AccessKeyId *** is not allowed; token ***"
        );
    }

    #[test]
    fn staleness_starts_a_few_minutes_before_expiry() {
        let exp: Timestamp = "2030-01-01T00:10:00Z".parse().unwrap();
        let c = Credentials::sts("a", "b", "c", exp);
        assert!(!c.is_stale("2030-01-01T00:06:00Z".parse().unwrap()));
        assert!(c.is_stale("2030-01-01T00:08:00Z".parse().unwrap()));
        assert!(c.is_stale("2030-01-01T01:00:00Z".parse().unwrap()));
        assert!(!Credentials::new("a", "b").is_stale("2099-01-01T00:00:00Z".parse().unwrap()));
    }
}
