//! [`WebhookConfig`]: the sink's settings, from kube-eventer's URI.

use std::{fmt, path::PathBuf, time::Duration};

use eventer_core::{Error, Result, config::Secret, uri::Options};
use serde::Deserialize;

/// How a request body is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Format {
    /// A Go text/template (kube-eventer's default body unless one is given).
    #[default]
    Template,
    /// The event object's own JSON, as the apiserver sent it.
    Json,
}

/// Settings of the webhook sink. Field names are the URI's option names; `url` is the
/// URI's target.
///
/// `Debug` hides `sign_secret` and the values of `header`s.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WebhookConfig {
    /// Where requests go: the URI's target, with the query parameters that are not the
    /// sink's options (`?key=...` of a WeCom robot). Required.
    #[serde(skip)]
    pub url: String,
    /// HTTP method. Default `GET`, as kube-eventer.
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers, `Name=Value` (the value may contain `=`); repeatable.
    #[serde(default)]
    pub header: Vec<String>,
    /// A ConfigMap whose key `content` holds the body template (kube-eventer's option);
    /// watched, so a change applies without a restart.
    #[serde(default)]
    pub custom_body_configmap: Option<String>,
    /// The ConfigMap's namespace. Default `default`, as kube-eventer.
    #[serde(default = "default_namespace")]
    pub custom_body_configmap_namespace: String,
    /// The body template itself.
    #[serde(default)]
    pub template: Option<String>,
    /// A file holding the body template, read at start.
    #[serde(default)]
    pub template_file: Option<PathBuf>,
    /// `template` (default) or `json` (the event's own JSON; no template).
    #[serde(default)]
    pub format: Format,
    /// Events per request: above 1, each request is a JSON array of up to this many
    /// bodies (each must be JSON). Default 1: one request per event, as kube-eventer.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Sign each body: `X-Eventer-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    #[serde(default)]
    pub sign_secret: Option<Secret>,
    /// One request's timeout. Default 10 s (kube-eventer has none).
    #[serde(default = "default_timeout", with = "eventer_core::duration")]
    pub timeout: Duration,
    /// Requests in flight at once. Default 4; 1 keeps the receiver's order strict.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// A regex the event's reason must match (kube-eventer's `reason` option).
    #[serde(default)]
    pub reason: Option<String>,
    /// The IANA zone templates print times in. Default: the process's, as Go's `time.Local`
    /// in kube-eventer (`TZ`, else `/etc/localtime`, else UTC).
    #[serde(default)]
    pub timezone: Option<String>,
}

fn default_method() -> String {
    "GET".to_owned()
}
fn default_namespace() -> String {
    "default".to_owned()
}
fn default_batch() -> usize {
    1
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_concurrency() -> usize {
    4
}

/// The largest `batch`.
pub const MAX_BATCH: usize = 1000;
/// The largest `concurrency`.
pub const MAX_CONCURRENCY: usize = 64;

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<String> =
            self.header.iter().map(|h| format!("{}=***", h.split_once('=').map_or(h.as_str(), |(k, _)| k))).collect();
        f.debug_struct("WebhookConfig")
            .field("url", &eventer_core::uri::redact(&self.url))
            .field("method", &self.method)
            .field("header", &headers)
            .field("custom_body_configmap", &self.custom_body_configmap)
            .field("custom_body_configmap_namespace", &self.custom_body_configmap_namespace)
            .field("template", &self.template)
            .field("template_file", &self.template_file)
            .field("format", &self.format)
            .field("batch", &self.batch)
            .field("sign_secret", &self.sign_secret.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .field("reason", &self.reason)
            .field("timezone", &self.timezone)
            .finish()
    }
}

impl WebhookConfig {
    /// A configuration with defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            method: default_method(),
            header: Vec::new(),
            custom_body_configmap: None,
            custom_body_configmap_namespace: default_namespace(),
            template: None,
            template_file: None,
            format: Format::default(),
            batch: default_batch(),
            sign_secret: None,
            timeout: default_timeout(),
            concurrency: default_concurrency(),
            reason: None,
            timezone: None,
        }
    }

    /// Read kube-eventer's URI, `webhook:<url>?method=POST&header=K=V&...`. The options the
    /// sink does not know stay in the URL as its query parameters, in their order.
    ///
    /// ```
    /// let uri: eventer_core::uri::ComponentUri =
    ///     "webhook:https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K&method=POST&header=Content-Type=application/json"
    ///         .parse()?;
    /// let config = eventer_sink_webhook::WebhookConfig::from_options(uri.target(), &mut uri.options())?;
    /// assert_eq!(config.url, "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K");
    /// assert_eq!(config.headers()?, [("Content-Type".to_owned(), "application/json".to_owned())]);
    /// # Ok::<(), eventer_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// An invalid option, naming it.
    pub fn from_options(target: &str, options: &mut Options) -> Result<Self> {
        let mut c: WebhookConfig = options.take()?;
        c.url = target.to_owned();
        let rest = options.rest();
        if !rest.is_empty() {
            let mut url = url::Url::parse(&c.url).map_err(|e| {
                Error::config(format!("webhook needs an http(s) URL, got `{}`: {e}", redact_url(&c.url)))
            })?;
            url.query_pairs_mut().extend_pairs(rest);
            c.url = url.into();
        }
        c.validate()?;
        Ok(c)
    }

    /// The headers as name and value.
    ///
    /// # Errors
    /// A header without `=`, or with an invalid name or value.
    pub fn headers(&self) -> Result<Vec<(String, String)>> {
        self.header
            .iter()
            .map(|h| {
                let Some((name, value)) = h.split_once('=') else {
                    return Err(Error::config(format!(
                        "option header: `{}` is not Name=Value",
                        h.chars().take(40).collect::<String>()
                    )));
                };
                let name = name.trim();
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(Error::config(format!("option header: `{name}` is not a valid header name")));
                }
                if reqwest::header::HeaderValue::from_str(value).is_err() {
                    return Err(Error::config(format!(
                        "option header: the value of {name} is not a valid header value"
                    )));
                }
                Ok((name.to_owned(), value.to_owned()))
            })
            .collect()
    }

    /// The zone times print in: `timezone`, else the process's (`TZ`, else
    /// `/etc/localtime`, else UTC), as Go's `time.Local`.
    ///
    /// # Errors
    /// An unknown `timezone`.
    pub fn time_zone(&self) -> Result<jiff::tz::TimeZone> {
        match &self.timezone {
            Some(name) => jiff::tz::TimeZone::get(name).map_err(|_| {
                Error::config(format!("option timezone: `{name}` is not an IANA time zone (Asia/Shanghai, UTC)"))
            }),
            None => Ok(jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC)),
        }
    }

    /// Check the settings (no I/O).
    ///
    /// # Errors
    /// The first invalid setting, naming its option.
    pub fn validate(&self) -> Result<()> {
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => {}
            _ => {
                return Err(Error::config(format!(
                    "webhook needs an http(s) URL with a host: webhook:https://host/path, got `{}`",
                    redact_url(&self.url)
                )));
            }
        }
        if reqwest::Method::from_bytes(self.method.as_bytes()).is_err() || self.method.is_empty() {
            return Err(Error::config(format!("option method: `{}` is not an HTTP method", self.method)));
        }
        self.headers()?;
        let sources = [
            self.custom_body_configmap.is_some().then_some("custom_body_configmap"),
            self.template.is_some().then_some("template"),
            self.template_file.is_some().then_some("template_file"),
        ];
        let given: Vec<&str> = sources.into_iter().flatten().collect();
        if given.len() > 1 {
            return Err(Error::config(format!("options {}: give one body template, not several", given.join(" and "))));
        }
        if self.format == Format::Json && !given.is_empty() {
            return Err(Error::config(format!(
                "option {}: format=json sends the event's JSON, not a template",
                given[0]
            )));
        }
        if self.custom_body_configmap.as_deref().is_some_and(|n| n.is_empty() || n.contains('/')) {
            return Err(Error::config(
                "option custom_body_configmap: a ConfigMap name (its namespace goes in custom_body_configmap_namespace)",
            ));
        }
        if self.custom_body_configmap_namespace.is_empty() {
            return Err(Error::config("option custom_body_configmap_namespace: empty"));
        }
        if !(1..=MAX_BATCH).contains(&self.batch) {
            return Err(Error::config(format!("option batch: must be 1 to {MAX_BATCH}")));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(Error::config(format!("option concurrency: must be 1 to {MAX_CONCURRENCY}")));
        }
        if self.timeout.is_zero() {
            return Err(Error::config("option timeout: must be more than zero"));
        }
        if self.sign_secret.as_ref().is_some_and(Secret::is_empty) {
            return Err(Error::config("option sign_secret: empty"));
        }
        self.time_zone()?;
        if let Some(r) = &self.reason {
            regex::Regex::new(r).map_err(|e| Error::config("option reason: invalid regex").with_source(e))?;
        }
        Ok(())
    }
}

/// The URL without its query, which may hold a key.
fn redact_url(url: &str) -> String {
    eventer_core::uri::redact(url.split_once('?').map_or(url, |(u, _)| u))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(uri: &str) -> Result<WebhookConfig> {
        let uri: eventer_core::uri::ComponentUri = uri.parse()?;
        let mut options = uri.options();
        let config = WebhookConfig::from_options(uri.target(), &mut options)?;
        options.finish()?;
        Ok(config)
    }

    #[test]
    fn kube_eventer_uri() {
        let c = parse(
            "webhook:http://hooks.example.com/x?token=T&method=POST&header=Authorization=Bearer a=b\
             &header=X-Env=prod&custom_body_configmap=body&reason=Back.*",
        )
        .unwrap();
        assert_eq!(c.url, "http://hooks.example.com/x?token=T", "the URL keeps its own parameters only");
        assert_eq!(c.method, "POST");
        assert_eq!(
            c.headers().unwrap(),
            [("Authorization".to_owned(), "Bearer a=b".to_owned()), ("X-Env".to_owned(), "prod".to_owned())],
            "a value may hold `=`"
        );
        assert_eq!(c.custom_body_configmap_namespace, "default");
        let debug = format!("{c:?}");
        assert!(!debug.contains("Bearer") && !debug.contains("token=T"), "{debug}");

        let defaults = parse("webhook:https://h/p").unwrap();
        assert_eq!((defaults.method.as_str(), defaults.batch, defaults.concurrency), ("GET", 1, 4));
    }

    #[test]
    fn bad_options_name_themselves() {
        for (uri, want) in [
            ("webhook:ftp://h/x", "webhook needs an http(s) URL"),
            ("webhook:", "webhook needs an http(s) URL"),
            ("webhook:https://h?method=GE T", "option method"),
            ("webhook:https://h?header=NoEquals", "option header: `NoEquals` is not Name=Value"),
            ("webhook:https://h?template=x&template_file=/y", "options template and template_file"),
            ("webhook:https://h?format=json&custom_body_configmap=b", "option custom_body_configmap: format=json"),
            ("webhook:https://h?format=xml", "option format"),
            ("webhook:https://h?batch=0", "option batch"),
            ("webhook:https://h?concurrency=0", "option concurrency"),
            ("webhook:https://h?timeout=0s", "option timeout"),
            ("webhook:https://h?reason=(", "option reason"),
            ("webhook:https://h?custom_body_configmap=ns/x", "option custom_body_configmap"),
            ("webhook:https://h?timezone=Mars/Olympus", "option timezone"),
        ] {
            let err = parse(uri).unwrap_err().to_string();
            assert!(err.contains(want), "{uri}: {err}");
        }
    }
}
