//! [`SlsConfig`]: the sink's settings, from a kube-eventer URI or a config file, and
//! endpoint resolution.

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use eventer_core::{
    config::{Secret, Text},
    uri::Options,
};
use reqwest::Url;
use serde::Deserialize;

use crate::{error::SlsError, schema::RESERVED_KEYS, sign::SignatureVersion};

/// Most logs SLS accepts in one PutLogs request.
pub const MAX_LOGS_PER_REQUEST: usize = 4096;
/// Most raw (uncompressed) bytes per request that every version of the SLS limit accepts (3 MB).
pub const MAX_BYTES_PER_REQUEST: usize = 3 * 1024 * 1024;
/// The batch window when neither `batchWindow` nor `--frequency` says otherwise.
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::from_secs(1);
/// The ECS metadata service.
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://100.100.100.200";
/// The host of kube-eventer's documented example URI (`sls:https://sls.aliyuncs.com?...`):
/// a placeholder kube-eventer ignores, not an SLS endpoint.
const PLACEHOLDER_HOST: &str = "sls.aliyuncs.com";

/// Settings of the SLS sink.
///
/// From kube-eventer's URI or a config file's options with [`SlsConfig::from_uri`] (which
/// also applies the environment), or deserialized (camelCase keys, as the URI options)
/// and then [`SlsConfig::with_env`]. The AccessKey pair is [`Secret`], which no `Debug`
/// shows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct SlsConfig {
    /// The SLS project. Required.
    pub project: String,
    /// The logstore in the project. Required.
    pub log_store: String,
    /// The log group topic (`__topic__`). Default: empty (no topic).
    #[serde(default)]
    pub topic: String,
    /// The region, e.g. `cn-hangzhou`: picks the endpoint and scopes v4 signatures.
    /// Default: env `RegionId`, else derived from an explicit `*.log.aliyuncs.com`
    /// endpoint, else read from the ECS metadata service at start.
    #[serde(default)]
    pub region_id: Option<String>,
    /// An explicit endpoint: `cn-hangzhou.log.aliyuncs.com`, `https://...`, or `http://host:port`
    /// (used as given). Default: the URI target when it is a real endpoint, else env
    /// `SLS_ENDPOINT`, else computed from the region and [`SlsConfig::internal`].
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Use the VPC endpoint `<region>-intranet.log.aliyuncs.com` rather than the public
    /// `<region>.log.aliyuncs.com` when the endpoint is computed. Default: `true`, as in
    /// kube-eventer; clusters outside Alibaba Cloud need `false`.
    #[serde(default = "default_internal")]
    pub internal: bool,
    /// Fields added to every log and sent as log tags (`__tag__:<key>`). URI:
    /// `label=key,value`, repeatable; a config file may also give a map.
    #[serde(default, rename = "label", deserialize_with = "labels")]
    pub labels: BTreeMap<String, String>,
    /// AccessKeyId. Default: env `AccessKeyId`, else the ECS RAM role.
    #[serde(default)]
    pub access_key_id: Option<Secret>,
    /// AccessKeySecret. Default: env `AccessKeySecret`, else the ECS RAM role.
    #[serde(default)]
    pub access_key_secret: Option<Secret>,
    /// `v4` (default) or `v1`.
    #[serde(default)]
    pub signature_version: SignatureVersion,
    /// Most logs per request, 1 to 4096. Default 4096.
    #[serde(default = "default_max_logs")]
    pub max_batch_logs: usize,
    /// Most raw protobuf bytes per request, 1 KiB to 3 MiB. Default 3 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_batch_bytes: usize,
    /// How long a batch waits for more events. Default: `--frequency` when given, else 1 s.
    #[serde(default, with = "eventer_core::duration::option")]
    pub batch_window: Option<Duration>,
    /// Timeout of one PutLogs request. Default 60 s, as the official Go SDK: a request
    /// that times out may still have been stored, and its retry then stores it again, so
    /// this is long enough for a slow answer rather than short for a fast retry.
    #[serde(default = "default_timeout", with = "eventer_core::duration")]
    pub timeout: Duration,
    /// The ECS metadata service, for RAM-role credentials and the region. Default `http://100.100.100.200`.
    #[serde(default = "default_metadata")]
    pub metadata_endpoint: String,
}

/// `label=key,value` options (kube-eventer's form), or a config file's map.
fn labels<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    use serde::de::{self, Error as _};
    struct V;
    impl<'de> de::Visitor<'de> for V {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("`key,value` labels, or a map")
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut labels = BTreeMap::new();
            while let Some((key, Text(value))) = map.next_entry::<String, Text>()? {
                labels.insert(key, value);
            }
            Ok(labels)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut labels = BTreeMap::new();
            while let Some(Text(label)) = seq.next_element()? {
                let (key, value) = label
                    .split_once(',')
                    .filter(|(k, v)| !k.trim().is_empty() && !v.contains(','))
                    .ok_or_else(|| A::Error::custom(format!("expected `key,value`, got `{label}`")))?;
                if labels.insert(key.trim().to_owned(), value.trim().to_owned()).is_some() {
                    return Err(A::Error::custom(format!("key `{}` given twice", key.trim())));
                }
            }
            Ok(labels)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            self.visit_seq(de::value::SeqDeserializer::new(std::iter::once(s)))
        }
    }
    d.deserialize_any(V)
}

fn default_internal() -> bool {
    true
}
fn default_max_logs() -> usize {
    MAX_LOGS_PER_REQUEST
}
fn default_max_bytes() -> usize {
    MAX_BYTES_PER_REQUEST
}
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_metadata() -> String {
    DEFAULT_METADATA_ENDPOINT.to_owned()
}

impl SlsConfig {
    /// A configuration with defaults for everything but the project and logstore.
    pub fn new(project: impl Into<String>, log_store: impl Into<String>) -> Self {
        SlsConfig {
            project: project.into(),
            log_store: log_store.into(),
            topic: String::new(),
            region_id: None,
            endpoint: None,
            internal: default_internal(),
            labels: BTreeMap::new(),
            access_key_id: None,
            access_key_secret: None,
            signature_version: SignatureVersion::default(),
            max_batch_logs: default_max_logs(),
            max_batch_bytes: default_max_bytes(),
            batch_window: None,
            timeout: default_timeout(),
            metadata_endpoint: default_metadata(),
        }
    }

    /// Read kube-eventer's SLS URI, `sls:<endpoint>?project=..&logStore=..` (or a config
    /// file's options), taking the options named by its fields, then apply the process environment
    /// ([`SlsConfig::with_env`]). No I/O beyond reading environment variables.
    ///
    /// ```
    /// let uri: eventer_core::uri::ComponentUri =
    ///     "sls:https://sls.aliyuncs.com?project=p&logStore=k8s&regionId=cn-beijing&internal=false&label=cluster,prod"
    ///         .parse()?;
    /// let config = eventer_sink_sls::SlsConfig::from_uri(uri.target(), &mut uri.options())?;
    /// assert_eq!(config.endpoint, None, "kube-eventer's placeholder host is not an endpoint");
    /// assert_eq!(config.labels["cluster"], "prod");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A missing `project` or `logStore`, or an invalid option, naming it.
    pub fn from_uri(target: &str, options: &mut Options) -> Result<Self, SlsError> {
        Self::from_uri_with_env(target, options, &|name| std::env::var(name).ok())
    }

    /// [`SlsConfig::from_uri`] reading the environment through `env`.
    ///
    /// # Errors
    /// As [`SlsConfig::from_uri`].
    pub fn from_uri_with_env(
        target: &str,
        options: &mut Options,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SlsError> {
        let mut c: SlsConfig = options.take().map_err(|e| SlsError::Config(e.to_string()))?;
        if c.endpoint.is_none() {
            c.endpoint = target_endpoint(target);
        }
        c.with_env(env)
    }

    /// Fill what is unset from the environment, as kube-eventer does: `AccessKeyId` and
    /// `AccessKeySecret` (as a pair), `RegionId`, `SLS_ENDPOINT`. Then validate.
    ///
    /// Unlike kube-eventer, where env `RegionId` beats the `regionId` option, settings
    /// given explicitly always win over the environment.
    ///
    /// # Errors
    /// An invalid setting, or half an AccessKey pair.
    pub fn with_env(mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, SlsError> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if self.access_key_id.is_none() && self.access_key_secret.is_none() {
            match (env("AccessKeyId"), env("AccessKeySecret")) {
                (Some(id), Some(secret)) => {
                    self.access_key_id = Some(Secret::new(id));
                    self.access_key_secret = Some(Secret::new(secret));
                }
                (None, None) => {}
                _ => {
                    return Err(SlsError::Config(
                        "environment variables AccessKeyId and AccessKeySecret must be set together".into(),
                    ));
                }
            }
        }
        if self.region_id.is_none() {
            self.region_id = env("RegionId");
        }
        if self.endpoint.is_none() {
            self.endpoint = env("SLS_ENDPOINT");
        }
        self.validate()?;
        Ok(self)
    }

    /// Check every setting, naming the first bad one.
    ///
    /// # Errors
    /// A config error naming the option.
    pub fn validate(&self) -> Result<(), SlsError> {
        let bad = |option: &str, problem: &str| Err(SlsError::Config(format!("option {option}: {problem}")));
        if self.project.is_empty() {
            return Err(SlsError::Config("missing required option project".into()));
        }
        if self.log_store.is_empty() {
            return Err(SlsError::Config("missing required option logStore".into()));
        }
        if self.access_key_id.is_some() != self.access_key_secret.is_some() {
            return bad("accessKeyId", "accessKeyId and accessKeySecret must be given together");
        }
        if !(1..=MAX_LOGS_PER_REQUEST).contains(&self.max_batch_logs) {
            return bad("maxBatchLogs", &format!("must be between 1 and {MAX_LOGS_PER_REQUEST}"));
        }
        if !(1024..=MAX_BYTES_PER_REQUEST).contains(&self.max_batch_bytes) {
            return bad("maxBatchBytes", &format!("must be between 1024 and {MAX_BYTES_PER_REQUEST}"));
        }
        if self.timeout.is_zero() {
            return bad("timeout", "must be positive");
        }
        if let Some(key) = self.labels.keys().find(|k| RESERVED_KEYS.contains(&k.as_str())) {
            return bad("label", &format!("key `{key}` is a field the sink writes itself"));
        }
        if let Some(key) = self.labels.keys().find(|k| k.starts_with("__")) {
            return bad("label", &format!("key `{key}`: SLS reserves keys starting with __"));
        }
        if let Some(endpoint) = &self.endpoint {
            Endpoint::parse(endpoint).map_err(|e| SlsError::Config(format!("option endpoint: {e}")))?;
        }
        Url::parse(&self.metadata_endpoint)
            .map_err(|e| SlsError::Config(format!("option metadataEndpoint: invalid URL ({e})")))?;
        Ok(())
    }

    /// The region: explicit, else derived from an explicit `*.log.aliyuncs.com` endpoint.
    pub(crate) fn known_region(&self) -> Option<String> {
        self.region_id
            .clone()
            .or_else(|| self.endpoint.as_deref().and_then(|e| Endpoint::parse(e).ok()).and_then(|e| e.region()))
    }

    /// The endpoint to write to: explicit, else computed from `region`.
    ///
    /// # Errors
    /// When the explicit endpoint is invalid (caught earlier by [`SlsConfig::validate`]).
    pub(crate) fn resolve_endpoint(&self, region: Option<&str>) -> Result<Option<Endpoint>, SlsError> {
        match (&self.endpoint, region) {
            (Some(e), _) => Endpoint::parse(e).map(Some).map_err(|e| SlsError::Config(format!("option endpoint: {e}"))),
            (None, Some(region)) => {
                let suffix = if self.internal { "-intranet" } else { "" };
                Endpoint::parse(&format!("{region}{suffix}.log.aliyuncs.com")).map(Some).map_err(SlsError::Config)
            }
            (None, None) => Ok(None),
        }
    }
}

/// The URI target as an endpoint, unless it is empty or kube-eventer's placeholder.
fn target_endpoint(target: &str) -> Option<String> {
    let target = target.trim();
    if target.is_empty() {
        return None;
    }
    let host = target.split_once("://").map_or(target, |(_, rest)| rest);
    let host = host.split(['/', ':']).next().unwrap_or_default();
    if host.eq_ignore_ascii_case(PLACEHOLDER_HOST) {
        tracing::debug!("Ignoring kube-eventer's placeholder endpoint {PLACEHOLDER_HOST} in the URI.");
        None
    } else {
        Some(target.to_owned())
    }
}

/// A resolved SLS endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    url: Url,
    host: String,
    direct: bool,
}

impl Endpoint {
    /// `host`, `https://host`, or `http://host:port`; https when no scheme is given.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().trim_end_matches('/');
        let with_scheme = if s.contains("://") { s.to_owned() } else { format!("https://{s}") };
        let url = Url::parse(&with_scheme).map_err(|e| format!("invalid endpoint `{s}` ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("invalid endpoint `{s}` (expected http or https)"));
        }
        if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
            return Err(format!("invalid endpoint `{s}` (expected a host, without path or query)"));
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("invalid endpoint `{s}`"))?;
        let host = host.to_ascii_lowercase();
        // An IP address (or localhost) is connected to as is; a name gets the project
        // prepended, as SLS routes (and its certificates are issued) per project subdomain.
        let direct = host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() || host == "localhost";
        Ok(Endpoint { url, host, direct })
    }

    /// The region of a `<region>[-intranet|-share].log.aliyuncs.com` endpoint.
    fn region(&self) -> Option<String> {
        let name = self.host.strip_suffix(".log.aliyuncs.com")?;
        let region = name.strip_suffix("-intranet").or_else(|| name.strip_suffix("-share")).unwrap_or(name);
        (!region.is_empty() && !region.contains('.')).then(|| region.to_owned())
    }

    /// The `Host` header: `<project>.<endpoint host>`, without the port, even for an IP.
    pub(crate) fn host_header(&self, project: &str) -> String {
        format!("{project}.{}", self.host)
    }

    /// The URL of `path` for `project`.
    pub(crate) fn url(&self, project: &str, path: &str) -> String {
        let port = self.url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let host = if self.direct { self.host.clone() } else { self.host_header(project) };
        format!("{}://{host}{port}{path}", self.url.scheme())
    }

    /// The endpoint for messages: scheme, host and port.
    pub(crate) fn display(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use eventer_core::uri::ComponentUri;

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse_with(uri: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<SlsConfig, SlsError> {
        let uri: ComponentUri = uri.parse().unwrap();
        let mut options = uri.options();
        let config = SlsConfig::from_uri_with_env(uri.target(), &mut options, env)?;
        options.finish().map_err(|e| SlsError::Config(e.to_string()))?;
        Ok(config)
    }

    fn parse(uri: &str) -> Result<SlsConfig, SlsError> {
        parse_with(uri, &no_env)
    }

    fn key(secret: &Option<Secret>) -> Option<&str> {
        secret.as_ref().map(Secret::expose)
    }

    fn err(uri: &str) -> String {
        parse(uri).unwrap_err().to_string()
    }

    #[test]
    fn every_kube_eventer_option() {
        let c = parse(
            "sls:https://sls.aliyuncs.com?project=my-project&logStore=k8s-events&topic=k8s-event&regionId=cn-hangzhou\
             &label=cluster,prod&label=team,infra&accessKeyId=AKID&accessKeySecret=SECRET&internal=false",
        )
        .unwrap();
        assert_eq!(
            (c.project.as_str(), c.log_store.as_str(), c.topic.as_str()),
            ("my-project", "k8s-events", "k8s-event")
        );
        assert_eq!(c.region_id.as_deref(), Some("cn-hangzhou"));
        assert_eq!(c.labels, BTreeMap::from([("cluster".into(), "prod".into()), ("team".into(), "infra".into())]));
        assert_eq!((key(&c.access_key_id), key(&c.access_key_secret)), (Some("AKID"), Some("SECRET")));
        assert!(!c.internal);
        assert_eq!(c.endpoint, None);
        let e = c.resolve_endpoint(c.known_region().as_deref()).unwrap().unwrap();
        assert_eq!(e.url("my-project", "/x"), "https://my-project.cn-hangzhou.log.aliyuncs.com/x");
        assert_eq!(c.signature_version, SignatureVersion::V4);
        assert_eq!((c.max_batch_logs, c.max_batch_bytes), (4096, 3 * 1024 * 1024));
    }

    #[test]
    fn defaults_follow_kube_eventer() {
        let c = parse("sls:?project=p&logStore=l&regionId=cn-beijing").unwrap();
        assert!(c.internal, "kube-eventer defaults internal to true");
        assert!(c.topic.is_empty() && c.labels.is_empty() && c.access_key_id.is_none());
        let e = c.resolve_endpoint(Some("cn-beijing")).unwrap().unwrap();
        assert_eq!(e.url("p", "/"), "https://p.cn-beijing-intranet.log.aliyuncs.com/");
        assert_eq!(e.host_header("p"), "p.cn-beijing-intranet.log.aliyuncs.com");
        assert_eq!(c.metadata_endpoint, DEFAULT_METADATA_ENDPOINT);
        assert_eq!(c.timeout, Duration::from_secs(60));
    }

    #[test]
    fn extra_options() {
        let c = parse(
            "sls:?project=p&logStore=l&endpoint=http://127.0.0.1:8080&signatureVersion=v1&maxBatchLogs=100\
             &maxBatchBytes=65536&batchWindow=250ms&timeout=5s&metadataEndpoint=http://127.0.0.1:9",
        )
        .unwrap();
        assert_eq!(c.signature_version, SignatureVersion::V1);
        assert_eq!((c.max_batch_logs, c.max_batch_bytes), (100, 65536));
        assert_eq!((c.batch_window, c.timeout), (Some(Duration::from_millis(250)), Duration::from_secs(5)));
        assert_eq!(c.metadata_endpoint, "http://127.0.0.1:9");
        let e = c.resolve_endpoint(None).unwrap().unwrap();
        assert_eq!(e.url("p", "/logstores/l/shards/lb"), "http://127.0.0.1:8080/logstores/l/shards/lb");
        assert_eq!(e.host_header("p"), "p.127.0.0.1", "Host carries the project even for an IP");
    }

    #[test]
    fn endpoint_precedence() {
        let env = |name: &str| (name == "SLS_ENDPOINT").then(|| "cn-shanghai.log.aliyuncs.com".to_owned());
        // The placeholder host is ignored, so the environment applies.
        let c = parse_with("sls:https://sls.aliyuncs.com?project=p&logStore=l", &env).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("cn-shanghai.log.aliyuncs.com"));
        assert_eq!(c.known_region().as_deref(), Some("cn-shanghai"), "the region follows from the endpoint");
        // A real endpoint in the URI wins over the environment...
        let c = parse_with("sls:https://cn-hangzhou-intranet.log.aliyuncs.com?project=p&logStore=l", &env).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("https://cn-hangzhou-intranet.log.aliyuncs.com"));
        assert_eq!(c.known_region().as_deref(), Some("cn-hangzhou"));
        // ...and `endpoint=` wins over the URI target.
        let c =
            parse_with("sls:cn-hangzhou.log.aliyuncs.com?project=p&logStore=l&endpoint=http://10.0.0.1", &env).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://10.0.0.1"));
        assert_eq!(c.known_region(), None);
        // Explicit regionId wins over the endpoint's and the environment's.
        let env = |name: &str| (name == "RegionId").then(|| "cn-beijing".to_owned());
        let c = parse_with("sls:?project=p&logStore=l&regionId=cn-shenzhen", &env).unwrap();
        assert_eq!(c.known_region().as_deref(), Some("cn-shenzhen"));
        let c = parse_with("sls:?project=p&logStore=l", &env).unwrap();
        assert_eq!(c.known_region().as_deref(), Some("cn-beijing"));
        // Nothing known: resolved at start from the metadata service.
        let c = parse("sls:?project=p&logStore=l").unwrap();
        assert_eq!(c.resolve_endpoint(None).unwrap(), None);
    }

    #[test]
    fn credentials_from_env_as_a_pair() {
        let env = |name: &str| match name {
            "AccessKeyId" => Some("ENVID".to_owned()),
            "AccessKeySecret" => Some("ENVSECRET".to_owned()),
            _ => None,
        };
        let c = parse_with("sls:?project=p&logStore=l", &env).unwrap();
        assert_eq!((key(&c.access_key_id), key(&c.access_key_secret)), (Some("ENVID"), Some("ENVSECRET")));
        // URI credentials win.
        let c = parse_with("sls:?project=p&logStore=l&accessKeyId=U&accessKeySecret=S", &env).unwrap();
        assert_eq!(key(&c.access_key_id), Some("U"));
        let half = |name: &str| (name == "AccessKeyId").then(|| "ENVID".to_owned());
        let e = parse_with("sls:?project=p&logStore=l", &half).unwrap_err().to_string();
        assert_eq!(e, "environment variables AccessKeyId and AccessKeySecret must be set together");
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(err("sls:?logStore=l"), "missing required option project");
        assert_eq!(err("sls:?project=p"), "missing required option logStore");
        assert_eq!(err("sls:?project=p&logStore=l&internal=maybe"), "option internal: invalid boolean `maybe`");
        assert_eq!(err("sls:?project=p&logStore=l&label=novalue"), "option label: expected `key,value`, got `novalue`");
        assert_eq!(err("sls:?project=p&logStore=l&label=a,b,c"), "option label: expected `key,value`, got `a,b,c`");
        assert_eq!(err("sls:?project=p&logStore=l&label=a,1&label=a,2"), "option label: key `a` given twice");
        assert_eq!(
            err("sls:?project=p&logStore=l&label=level,x"),
            "option label: key `level` is a field the sink writes itself"
        );
        assert_eq!(
            err("sls:?project=p&logStore=l&signatureVersion=v2"),
            "option signatureVersion: invalid signature version `v2` (expected v1 or v4)"
        );
        assert_eq!(
            err("sls:?project=p&logStore=l&maxBatchLogs=5000"),
            "option maxBatchLogs: must be between 1 and 4096"
        );
        assert_eq!(err("sls:?project=p&logStore=l&maxBatchLogs=x"), "option maxBatchLogs: invalid number `x`");
        assert_eq!(
            err("sls:?project=p&logStore=l&maxBatchBytes=10"),
            "option maxBatchBytes: must be between 1024 and 3145728"
        );
        assert!(err("sls:?project=p&logStore=l&batchWindow=soon").starts_with("option batchWindow: invalid duration"));
        assert_eq!(
            err("sls:?project=p&logStore=l&accessKeyId=AKID"),
            "option accessKeyId: accessKeyId and accessKeySecret must be given together"
        );
        assert!(
            err("sls:?project=p&logStore=l&endpoint=ftp://x")
                .starts_with("option endpoint: invalid endpoint `ftp://x`")
        );
        assert!(err("sls:http://h/some/path?project=p&logStore=l").contains("without path or query"));
        assert!(
            err("sls:?project=p&logStore=l&metadataEndpoint=::").starts_with("option metadataEndpoint: invalid URL")
        );
        assert!(err("sls:?project=p&logStore=l&colour=red").starts_with("unknown option colour for sls"));
    }

    #[test]
    fn debug_hides_the_access_key() {
        let c = parse("sls:?project=p&logStore=l&accessKeyId=LTAIsecretid&accessKeySecret=verysecret").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("LTAIsecretid") && !shown.contains("verysecret"), "{shown}");
        assert!(shown.contains("project: \"p\""));
    }

    #[test]
    fn typed_values_from_a_config_file() {
        let c: SlsConfig =
            serde_json::from_str(r#"{"project":"p","logStore":"l","batchWindow":"2s","label":{"a":"b"}}"#).unwrap();
        assert_eq!(c.batch_window, Some(Duration::from_secs(2)));
        assert!(c.internal);
        assert_eq!(c.signature_version, SignatureVersion::V4);
        assert_eq!(c.labels, BTreeMap::from([("a".into(), "b".into())]));
        assert!(serde_json::from_str::<SlsConfig>(r#"{"project":"p","logStore":"l","colour":1}"#).is_err());
        // A file's typed values through the options, as the config file reaches the sink.
        use eventer_core::config::Value;
        let uri = ComponentUri::from_parts("sls", "", Vec::new()).unwrap().with_values([
            ("project".to_owned(), Value::from("p")),
            ("logStore".to_owned(), Value::from("l")),
            ("maxBatchLogs".to_owned(), Value::Int(100)),
            ("internal".to_owned(), Value::Bool(false)),
            ("label".to_owned(), Value::Map(vec![("cluster".to_owned(), Value::from("prod"))])),
        ]);
        let mut options = uri.options();
        let c = SlsConfig::from_uri_with_env("", &mut options, &no_env).unwrap();
        options.finish().unwrap();
        assert_eq!((c.max_batch_logs, c.internal), (100, false));
        assert_eq!(c.labels["cluster"], "prod");
    }
}
