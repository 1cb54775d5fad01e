//! Credentials: a static AccessKey pair (URI options or environment), or STS credentials
//! refreshed ahead of their expiry: RRSA's (an OIDC token exchanged with STS
//! `AssumeRoleWithOIDC`), ACK's add-on token file, or the ECS instance's RAM role, read from
//! the metadata service (protocols.md B.9) with the IMDSv2 token handshake.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde::Deserialize;
use tracing::{debug, info, warn};

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

    /// An AccessKey pair with an STS token of unknown expiry (given by the environment).
    fn with_token(access_key_id: String, access_key_secret: String, security_token: Option<String>) -> Self {
        Credentials { security_token, ..Credentials::new(access_key_id, access_key_secret) }
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

/// ACK's add-on token file: STS credentials for the add-on, kept fresh by ACK.
pub(crate) const ADDON_TOKEN_CONFIG: &str = "/var/addon/token-config";
/// Lifetime asked of STS for RRSA credentials (the SDKs' default).
const OIDC_DURATION_SECONDS: &str = "3600";

/// Where credentials may come from besides the sink's options, read from the environment
/// once, when the sink is built.
#[derive(Clone)]
pub(crate) struct Sources {
    /// `ALIBABA_CLOUD_ACCESS_KEY_ID`/`_SECRET`/`_SECURITY_TOKEN`, as Alibaba Cloud's SDKs read them.
    sdk_env: Option<Credentials>,
    /// RRSA: `ALIBABA_CLOUD_ROLE_ARN`, `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`, `ALIBABA_CLOUD_OIDC_TOKEN_FILE`.
    oidc: Option<OidcSettings>,
    /// ACK's add-on token file, used when it exists.
    addon_token_config: PathBuf,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("sdk_env", &self.sdk_env)
            .field("oidc", &self.oidc)
            .field("addon_token_config", &self.addon_token_config)
            .finish()
    }
}

/// What RRSA's STS call needs (none of it secret: the token is read from its file each time).
#[derive(Debug, Clone)]
pub(crate) struct OidcSettings {
    role_arn: String,
    provider_arn: String,
    token_file: PathBuf,
    /// STS's base URL.
    sts_endpoint: String,
    session_name: String,
}

impl Sources {
    /// Read the environment through `env`.
    ///
    /// # Errors
    /// Variables of one source set in part, naming those missing.
    pub(crate) fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, SlsError> {
        let env = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let sdk_env = match (env("ALIBABA_CLOUD_ACCESS_KEY_ID"), env("ALIBABA_CLOUD_ACCESS_KEY_SECRET")) {
            (Some(id), Some(secret)) => Some(Credentials::with_token(id, secret, env("ALIBABA_CLOUD_SECURITY_TOKEN"))),
            (None, None) => None,
            _ => {
                return Err(SlsError::Config(
                    "environment variables ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET \
                     must be set together"
                        .into(),
                ));
            }
        };
        const RRSA: [&str; 3] =
            ["ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_OIDC_TOKEN_FILE"];
        let oidc = match RRSA.map(env) {
            [Some(role_arn), Some(provider_arn), Some(token_file)] => {
                let sts_endpoint = match (env("ALIBABA_CLOUD_STS_ENDPOINT"), env("ALIBABA_CLOUD_STS_REGION")) {
                    (Some(endpoint), _) => endpoint,
                    (None, Some(region)) => format!("sts.{region}.aliyuncs.com"),
                    (None, None) => "sts.aliyuncs.com".to_owned(),
                };
                let sts_endpoint = if sts_endpoint.contains("://") {
                    sts_endpoint.trim_end_matches('/').to_owned()
                } else {
                    format!("https://{}", sts_endpoint.trim_end_matches('/'))
                };
                let session_name = env("ALIBABA_CLOUD_ROLE_SESSION_NAME")
                    .unwrap_or_else(|| format!("eventer-{}", Timestamp::now().as_millisecond()));
                Some(OidcSettings { role_arn, provider_arn, token_file: token_file.into(), sts_endpoint, session_name })
            }
            [None, None, None] => None,
            values => {
                let missing: Vec<&str> =
                    RRSA.iter().zip(&values).filter(|(_, v)| v.is_none()).map(|(name, _)| *name).collect();
                return Err(SlsError::Config(format!(
                    "RRSA needs ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN and \
                     ALIBABA_CLOUD_OIDC_TOKEN_FILE; not set: {}",
                    missing.join(", ")
                )));
            }
        };
        Ok(Sources { sdk_env, oidc, addon_token_config: ADDON_TOKEN_CONFIG.into() })
    }

    /// ACK's add-on token file.
    pub(crate) fn addon_token_config(&self) -> &Path {
        &self.addon_token_config
    }

    /// Read ACK's add-on token file at `path` instead of [`ADDON_TOKEN_CONFIG`].
    pub(crate) fn set_addon_token_config(&mut self, path: PathBuf) {
        self.addon_token_config = path;
    }

    /// The credentials of the first source that applies, after the sink's own options:
    /// `ALIBABA_CLOUD_*` keys, RRSA, ACK's add-on token file, the ECS RAM role.
    ///
    /// # Errors
    /// When the source that applies fails, or none does (naming what was tried).
    pub(crate) async fn provider(
        &self,
        http: &reqwest::Client,
        metadata: Metadata,
        tried: &str,
    ) -> Result<CredentialProvider, SlsError> {
        if let Some(credentials) = &self.sdk_env {
            return Ok(CredentialProvider::Static(credentials.clone()));
        }
        let source = if let Some(settings) = &self.oidc {
            Source::Oidc { http: http.clone(), settings: settings.clone() }
        } else if tokio::fs::try_exists(&self.addon_token_config).await.unwrap_or(false) {
            Source::AddonToken(self.addon_token_config.clone())
        } else {
            Source::RamRole(metadata)
        };
        let current = source.fetch().await.map_err(|e| match source {
            Source::RamRole(_) => SlsError::NoCredentials(format!(
                "{tried}, the ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET environment \
                 variables (not set), RRSA (ALIBABA_CLOUD_ROLE_ARN not set), ACK's add-on token file {} \
                 (absent), the ECS RAM role ({e})",
                self.addon_token_config.display()
            )),
            _ => e,
        })?;
        info!(source = source.name(), expiration = ?current.expiration(), "Using STS credentials.");
        Ok(CredentialProvider::Refreshing { source, current })
    }
}

/// Where refreshed credentials come from.
#[derive(Debug)]
pub(crate) enum Source {
    /// RRSA: the pod's OIDC token, exchanged with STS `AssumeRoleWithOIDC`.
    Oidc { http: reqwest::Client, settings: OidcSettings },
    /// ACK's add-on token file, read again when its credentials are about to expire.
    AddonToken(PathBuf),
    /// The ECS instance's RAM role.
    RamRole(Metadata),
}

impl Source {
    fn name(&self) -> &'static str {
        match self {
            Source::Oidc { .. } => "RRSA (STS AssumeRoleWithOIDC)",
            Source::AddonToken(_) => "ACK add-on token file",
            Source::RamRole(_) => "ECS RAM role",
        }
    }

    async fn fetch(&self) -> Result<Credentials, SlsError> {
        match self {
            Source::Oidc { http, settings } => assume_role_with_oidc(http, settings).await,
            Source::AddonToken(path) => read_addon_token(path).await,
            Source::RamRole(metadata) => metadata.role_credentials().await,
        }
    }
}

/// STS's answer to `AssumeRoleWithOIDC`, or its error.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsAnswer {
    #[serde(default)]
    credentials: Option<StsCredentials>,
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    request_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: String,
    access_key_secret: String,
    security_token: String,
    expiration: String,
}

/// RRSA: exchange the projected OIDC token for STS credentials. The call is not signed:
/// the token is the proof. The token file is read each time, as kubelet rotates it.
async fn assume_role_with_oidc(http: &reqwest::Client, s: &OidcSettings) -> Result<Credentials, SlsError> {
    let error = |message: String| SlsError::Sts { endpoint: s.sts_endpoint.clone(), message, source: None };
    let token = tokio::fs::read_to_string(&s.token_file)
        .await
        .map_err(|e| error(format!("cannot read the OIDC token file {} ({e})", s.token_file.display())))?;
    let timestamp = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRoleWithOIDC")
        .append_pair("Format", "JSON")
        .append_pair("Version", "2015-04-01")
        .append_pair("Timestamp", &timestamp)
        .finish();
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("RoleArn", &s.role_arn)
        .append_pair("OIDCProviderArn", &s.provider_arn)
        .append_pair("OIDCToken", token.trim())
        .append_pair("RoleSessionName", &s.session_name)
        .append_pair("DurationSeconds", OIDC_DURATION_SECONDS)
        .finish();
    let response = http
        .post(format!("{}/?{query}", s.sts_endpoint))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| SlsError::Sts {
            endpoint: s.sts_endpoint.clone(),
            message: "cannot reach it".into(),
            source: Some(e.without_url()),
        })?;
    let status = response.status();
    let text = response.text().await.map_err(|e| SlsError::Sts {
        endpoint: s.sts_endpoint.clone(),
        message: "cannot read its answer".into(),
        source: Some(e.without_url()),
    })?;
    let answer: StsAnswer = serde_json::from_str(&text)
        .map_err(|e| error(format!("AssumeRoleWithOIDC answered HTTP {} and no JSON ({e})", status.as_u16())))?;
    match answer.credentials {
        Some(c) if status.is_success() => {
            let expiration: Timestamp = c
                .expiration
                .parse()
                .map_err(|e| error(format!("AssumeRoleWithOIDC: invalid Expiration `{}` ({e})", c.expiration)))?;
            Ok(Credentials::sts(c.access_key_id, c.access_key_secret, c.security_token, expiration))
        }
        _ => Err(error(format!(
            "AssumeRoleWithOIDC for {} answered HTTP {} {}: {} (request id {})",
            s.role_arn,
            status.as_u16(),
            answer.code,
            answer.message,
            answer.request_id
        ))),
    }
}

/// ACK's add-on token file, as kube-eventer reads it: JSON whose key id, secret and token
/// are each base64 of an AES-CBC ciphertext (the IV its first block, PKCS#7 padded), under
/// the file's `keyring`; `expiration` is plain.
#[derive(Deserialize)]
struct AddonToken {
    #[serde(rename = "access.key.id")]
    access_key_id: String,
    #[serde(rename = "access.key.secret")]
    access_key_secret: String,
    #[serde(rename = "security.token")]
    security_token: String,
    expiration: String,
    keyring: String,
}

async fn read_addon_token(path: &Path) -> Result<Credentials, SlsError> {
    let error = |message: String| SlsError::AddonToken { path: path.display().to_string(), message };
    let text = tokio::fs::read_to_string(path).await.map_err(|e| error(format!("cannot read it ({e})")))?;
    let t: AddonToken = serde_json::from_str(&text).map_err(|e| error(format!("not the expected JSON ({e})")))?;
    let key = t.keyring.as_bytes();
    let open = |field: &str, value: &str| decrypt(value, key).ok_or_else(|| error(format!("cannot decrypt {field}")));
    let expiration: Timestamp =
        t.expiration.parse().map_err(|e| error(format!("invalid expiration `{}` ({e})", t.expiration)))?;
    Ok(Credentials::sts(
        open("access.key.id", &t.access_key_id)?,
        open("access.key.secret", &t.access_key_secret)?,
        open("security.token", &t.security_token)?,
        expiration,
    ))
}

/// base64 → AES-CBC (key of 16, 24 or 32 bytes; IV first) → PKCS#7 → UTF-8.
fn decrypt(value: &str, key: &[u8]) -> Option<String> {
    use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.decode(value.trim()).ok()?;
    let (iv, ciphertext) = data.split_at_checked(16)?;
    let plain = match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv).ok()?.decrypt_padded_vec_mut::<Pkcs7>(ciphertext),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv).ok()?.decrypt_padded_vec_mut::<Pkcs7>(ciphertext),
        32 => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv).ok()?.decrypt_padded_vec_mut::<Pkcs7>(ciphertext),
        _ => return None,
    };
    String::from_utf8(plain.ok()?).ok()
}

/// Where credentials come from, with the current ones.
#[derive(Debug)]
pub(crate) enum CredentialProvider {
    /// A fixed AccessKey pair.
    Static(Credentials),
    /// STS credentials, fetched again before they expire.
    Refreshing { source: Source, current: Credentials },
}

impl CredentialProvider {
    /// Where the credentials come from, for the log.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            CredentialProvider::Static(_) => "AccessKey",
            CredentialProvider::Refreshing { source, .. } => source.name(),
        }
    }

    /// Credentials to sign with at `now`, refreshed first when they are about to expire.
    /// When a refresh fails, credentials that have not yet expired are still used.
    ///
    /// # Errors
    /// When the credentials expired and their source cannot give new ones.
    pub(crate) async fn get(&mut self, now: Timestamp) -> Result<&Credentials, SlsError> {
        if let CredentialProvider::Refreshing { current, .. } = self
            && current.is_stale(now)
            && let Err(e) = self.refresh().await
        {
            if self.current().expiration().is_some_and(|exp| exp <= now) {
                return Err(e);
            }
            warn!(error = %e, "Cannot refresh the STS credentials yet; using the current ones until they expire.");
        }
        Ok(self.current())
    }

    fn current(&self) -> &Credentials {
        match self {
            CredentialProvider::Static(c) | CredentialProvider::Refreshing { current: c, .. } => c,
        }
    }

    /// Replace the STS credentials now. Returns `false` for static credentials, which cannot be.
    ///
    /// # Errors
    /// When their source fails.
    pub(crate) async fn refresh(&mut self) -> Result<bool, SlsError> {
        match self {
            CredentialProvider::Static(_) => Ok(false),
            CredentialProvider::Refreshing { source, current } => {
                *current = source.fetch().await?;
                debug!(source = source.name(), expiration = ?current.expiration(), "Refreshed the STS credentials.");
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

    /// Ciphertexts made with `openssl enc -aes-{128,256}-cbc -K <key> -iv 000102…0f`, the IV
    /// prepended and base64-encoded, as ACK writes its add-on token file.
    #[test]
    fn addon_token_values_decrypt_as_openssl_encrypted_them() {
        let aes128 = "AAECAwQFBgcICQoLDA0OD6ww1gHO26dejfmuCnYKmKfjxaHx7BdQfOgwlWjWY6m6";
        assert_eq!(decrypt(aes128, b"0123456789abcdef").as_deref(), Some("STS.NUgYrLnoC37mZZCNnAbez2"));
        let aes256 = "AAECAwQFBgcICQoLDA0OD5FVug+25IEkI/QGRq4s+Kc=";
        assert_eq!(decrypt(aes256, b"0123456789abcdef0123456789abcdef").as_deref(), Some("secret-é"));
        assert_eq!(decrypt(aes128, b"fedcba9876543210"), None, "wrong key: the padding does not check out");
        assert_eq!(decrypt(aes128, b"short"), None);
        assert_eq!(decrypt("AAECAw==", b"0123456789abcdef"), None, "shorter than an IV");
        assert_eq!(decrypt("not base64!", b"0123456789abcdef"), None);
    }

    #[test]
    fn environment_sources_are_all_or_nothing() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        };
        let sources = Sources::from_env(&env(&[])).unwrap();
        assert!(sources.sdk_env.is_none() && sources.oidc.is_none());
        assert_eq!(sources.addon_token_config, Path::new("/var/addon/token-config"));

        let e = Sources::from_env(&env(&[("ALIBABA_CLOUD_ACCESS_KEY_ID", "id")])).unwrap_err().to_string();
        assert_eq!(
            e,
            "environment variables ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET must be set together"
        );
        let e = Sources::from_env(&env(&[("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/r")])).unwrap_err().to_string();
        assert_eq!(
            e,
            "RRSA needs ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN and ALIBABA_CLOUD_OIDC_TOKEN_FILE; \
             not set: ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE"
        );

        let rrsa: &[(&str, &str)] = &[
            ("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/r"),
            ("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "acs:ram::1:oidc-provider/ack-rrsa-c1"),
            ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| -> OidcSettings {
            let vars: &'static [(&str, &str)] = Vec::leak([rrsa, extra].concat());
            Sources::from_env(&env(vars)).unwrap().oidc.unwrap()
        };
        assert_eq!(with(&[]).sts_endpoint, "https://sts.aliyuncs.com");
        assert!(with(&[]).session_name.starts_with("eventer-"));
        assert_eq!(
            with(&[("ALIBABA_CLOUD_STS_REGION", "cn-beijing")]).sts_endpoint,
            "https://sts.cn-beijing.aliyuncs.com"
        );
        let vpc = with(&[("ALIBABA_CLOUD_STS_ENDPOINT", "sts-vpc.cn-hangzhou.aliyuncs.com")]);
        assert_eq!(vpc.sts_endpoint, "https://sts-vpc.cn-hangzhou.aliyuncs.com");
        let local =
            with(&[("ALIBABA_CLOUD_STS_ENDPOINT", "http://127.0.0.1:9/"), ("ALIBABA_CLOUD_ROLE_SESSION_NAME", "s")]);
        assert_eq!((local.sts_endpoint.as_str(), local.session_name.as_str()), ("http://127.0.0.1:9", "s"));
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
