//! [`EsConfig`]: the sink's settings, from kube-eventer's URI or a config file.

use std::time::Duration;

use eventer_core::{Error, Result, config::Secret, uri::Options};
use serde::Deserialize;

/// kube-eventer's default base index.
pub const DEFAULT_INDEX: &str = "heapster";

/// Settings of the Elasticsearch / OpenSearch sink, with kube-eventer's option names.
///
/// ```
/// let uri: eventer_core::uri::ComponentUri =
///     "elasticsearch:?nodes=http://10.0.0.1:9200&nodes=http://10.0.0.2:9200&index=k8s&use_namespace=true&ver=7".parse()?;
/// let config = eventer_sink_elasticsearch::EsConfig::from_options(uri.target(), &mut uri.options())?;
/// assert_eq!(config.nodes.len(), 2);
/// assert_eq!((config.index.as_str(), config.use_namespace), ("k8s", true));
/// # Ok::<(), eventer_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EsConfig {
    /// The cluster's nodes (`nodes=`, repeatable); requests go to the first that answers.
    /// Default: the URI's target (`elasticsearch:http://host:9200`).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// The base index: documents go to `<index>[-<namespace>]-YYYY.MM.DD`. Default `heapster`.
    #[serde(default = "default_index")]
    pub index: String,
    /// Put each namespace's events in indices of their own (`use_namespace=true`).
    #[serde(default)]
    pub use_namespace: bool,
    /// The server's major version: 5 and 6 need a mapping type in bulk actions (`events`,
    /// kube-eventer's); 7, 8 and OpenSearch take none. Default 7.
    #[serde(default = "default_ver")]
    pub ver: u8,
    /// Basic authentication user.
    #[serde(default, rename = "esUserName")]
    pub user: Option<String>,
    /// Basic authentication password.
    #[serde(default, rename = "esUserSecret")]
    pub password: Option<Secret>,
    /// An API key (`Authorization: ApiKey <key>`, the base64 form Elasticsearch returns).
    #[serde(default, rename = "apiKey")]
    pub api_key: Option<Secret>,
    /// An ingest pipeline for every document.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// `EventTags.cluster_name` of every document. Default `default`, as kube-eventer.
    #[serde(default = "default_cluster_name")]
    pub cluster_name: String,
    /// Create each day's index with the alias `<index>-events` before its first document,
    /// as kube-eventer does. Turn off where index templates or ILM manage indices.
    #[serde(default = "default_true")]
    pub create_index: bool,
    /// Most events per bulk request. Default 1000.
    #[serde(default = "default_max_batch_events", rename = "maxBatchEvents")]
    pub max_batch_events: usize,
    /// Most bytes per bulk request (well under the server's `http.max_content_length`).
    /// Default 5 MiB.
    #[serde(default = "default_max_batch_bytes", rename = "maxBatchBytes")]
    pub max_batch_bytes: usize,
    /// How long a batch waits for more events. Default: `--frequency`, else 1s.
    #[serde(default, rename = "batchWindow", with = "eventer_core::duration::option")]
    pub batch_window: Option<Duration>,
    /// Timeout of one request. Default 30s.
    #[serde(default = "default_timeout", with = "eventer_core::duration")]
    pub timeout: Duration,
    /// kube-eventer's client tuning (`maxRetries`, `healthCheck`, `sniff`,
    /// `startupHealthcheckTimeout`, `bulkWorkers`): accepted so its URIs keep working, and
    /// unused: retries are the pipeline's, and requests go to the nodes given.
    #[serde(default, rename = "maxRetries")]
    pub max_retries: Option<u32>,
    /// See `max_retries`.
    #[serde(default, rename = "healthCheck")]
    pub health_check: Option<bool>,
    /// See `max_retries`.
    #[serde(default)]
    pub sniff: Option<bool>,
    /// See `max_retries`.
    #[serde(default, rename = "startupHealthcheckTimeout")]
    pub startup_healthcheck_timeout: Option<u64>,
    /// See `max_retries`.
    #[serde(default, rename = "bulkWorkers")]
    pub bulk_workers: Option<u32>,
    /// AWS SigV4 signing (kube-eventer's `sigv4`): not supported; `false` is accepted.
    #[serde(default)]
    pub sigv4: Option<bool>,
}

fn default_index() -> String {
    DEFAULT_INDEX.to_owned()
}
fn default_ver() -> u8 {
    7
}
fn default_cluster_name() -> String {
    "default".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_max_batch_events() -> usize {
    1000
}
fn default_max_batch_bytes() -> usize {
    5 << 20
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl EsConfig {
    /// The option names [`EsConfig::from_options`] reads.
    pub fn option_names() -> Vec<&'static str> {
        eventer_core::config::names::<EsConfig>().to_vec()
    }

    /// Read kube-eventer's URI, `elasticsearch:[<node>]?nodes=…&index=…`, or a config
    /// file's options, and check them.
    ///
    /// # Errors
    /// A configuration error naming the option.
    pub fn from_options(target: &str, options: &mut Options) -> Result<Self> {
        let mut config: EsConfig = options.take()?;
        if config.nodes.is_empty() && !target.is_empty() {
            config.nodes.push(target.to_owned());
        }
        config.validate()?;
        Ok(config)
    }

    /// Check what serde cannot.
    ///
    /// # Errors
    /// A configuration error naming the option.
    pub fn validate(&self) -> Result<()> {
        let bad = |option: &str, problem: String| Err(Error::config(format!("option {option}: {problem}")));
        if self.nodes.is_empty() {
            return bad("nodes", "give the cluster's address: elasticsearch:?nodes=http://host:9200".into());
        }
        for node in &self.nodes {
            match url::Url::parse(node) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => return bad("nodes", format!("`{}` is not an http(s) URL", eventer_core::uri::redact(node))),
            }
        }
        if self.index.is_empty()
            || self.index != self.index.to_lowercase()
            || self.index.starts_with(['_', '-', '+'])
            || self.index.contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'])
        {
            return bad(
                "index",
                format!("`{}` is no valid index name (lowercase, no spaces or \\/*?\"<>|,#:)", self.index),
            );
        }
        if !matches!(self.ver, 5..=8) {
            return bad("ver", format!("{} is not supported (5, 6, 7 or 8; OpenSearch: 7)", self.ver));
        }
        if self.user.is_some() != self.password.is_some() {
            return bad("esUserName", "esUserName and esUserSecret go together".into());
        }
        if self.user.is_some() && self.api_key.is_some() {
            return bad("apiKey", "give an API key or esUserName/esUserSecret, not both".into());
        }
        if self.sigv4 == Some(true) {
            return bad("sigv4", "AWS SigV4 signing is not supported; use basic auth or an API key".into());
        }
        if self.max_batch_events == 0 {
            return bad("maxBatchEvents", "must be at least 1".into());
        }
        if self.max_batch_bytes < 64 << 10 {
            return bad("maxBatchBytes", "must be at least 65536".into());
        }
        if self.timeout.is_zero() {
            return bad("timeout", "must be more than 0".into());
        }
        Ok(())
    }

    /// The bulk action's mapping type: kube-eventer's `events` for servers that need one.
    pub(crate) fn mapping_type(&self) -> Option<&'static str> {
        (self.ver < 7).then_some("events")
    }
}

#[cfg(test)]
mod tests {
    use eventer_core::uri::ComponentUri;

    use super::*;

    fn parse(uri: &str) -> Result<EsConfig> {
        let uri: ComponentUri = uri.parse()?;
        let mut options = uri.options();
        let config = EsConfig::from_options(uri.target(), &mut options)?;
        options.finish()?;
        Ok(config)
    }

    #[test]
    fn kube_eventer_uris() {
        let c = parse(
            "elasticsearch:http://127.0.0.1:9200?index=k8s&esUserName=elastic&esUserSecret=pw&ver=6&use_namespace=true\
             &cluster_name=prod&maxRetries=3&healthCheck=false&sniff=false&startupHealthcheckTimeout=5&bulkWorkers=2\
             &pipeline=events",
        )
        .unwrap();
        assert_eq!(c.nodes, ["http://127.0.0.1:9200"], "the target is the node without nodes=");
        assert_eq!((c.index.as_str(), c.ver, c.use_namespace), ("k8s", 6, true));
        assert_eq!((c.user.as_deref(), c.password.as_ref().map(Secret::expose)), (Some("elastic"), Some("pw")));
        assert_eq!((c.cluster_name.as_str(), c.pipeline.as_deref()), ("prod", Some("events")));
        assert_eq!(c.mapping_type(), Some("events"));
        assert!(!format!("{c:?}").contains("pw\""), "the password never shows");
        let c = parse("elasticsearch:?nodes=http://a:9200&nodes=https://b:9200").unwrap();
        assert_eq!((c.index.as_str(), c.ver, c.mapping_type()), ("heapster", 7, None));
        assert_eq!(c.nodes.len(), 2);
    }

    #[test]
    fn bad_input_is_named() {
        let err = |uri: &str| parse(uri).unwrap_err().to_string();
        assert!(err("elasticsearch:").starts_with("option nodes: give the cluster's address"));
        assert_eq!(err("elasticsearch:?nodes=ftp://x"), "option nodes: `ftp://x` is not an http(s) URL");
        assert!(err("elasticsearch:http://h:9200?index=K8s").starts_with("option index: `K8s` is no valid index name"));
        assert!(err("elasticsearch:http://h:9200?ver=2").starts_with("option ver: 2 is not supported"));
        assert_eq!(err("elasticsearch:http://h:9200?ver=x"), "option ver: invalid number `x`");
        assert_eq!(
            err("elasticsearch:http://h:9200?esUserName=u"),
            "option esUserName: esUserName and esUserSecret go together"
        );
        assert!(err("elasticsearch:http://h:9200?sigv4=true").starts_with("option sigv4: AWS SigV4"));
        assert!(err("elasticsearch:http://h:9200?colour=red").starts_with("unknown option colour for elasticsearch"));
    }
}
