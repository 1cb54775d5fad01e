//! The `kubernetes:` source URI, and turning it into a kube-rs client.

use std::{path::PathBuf, time::Duration};

use eventer_core::{
    Error, ErrorKind, Result,
    uri::{Options, parse_duration},
};
use futures::FutureExt;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use serde::Deserialize;

/// Where the service account token is mounted in a pod.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The options of the `kubernetes:` source, as written (kube-eventer's names), before
/// [`SourceConfig::parse`] resolves them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Settings {
    in_cluster_config: Option<bool>,
    #[serde(default)]
    insecure: bool,
    auth: Option<String>,
    local_kube_config: Option<String>,
    #[serde(default)]
    use_service_account: bool,
    #[serde(default, deserialize_with = "eventer_core::config::comma_list")]
    namespaces: Vec<String>,
    api: Option<String>,
    field_selector: Option<String>,
    start_from: Option<String>,
    #[serde(default, with = "eventer_core::duration::option")]
    request_timeout: Option<Duration>,
    #[serde(default, with = "eventer_core::duration::option")]
    watch_idle_timeout: Option<Duration>,
    max_line_size: Option<String>,
}

/// Default of `requestTimeout`: connecting plus the response's status and headers, and
/// each read of a list body.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Default of `watchIdleTimeout`. The apiserver sends a watch that allows bookmarks one
/// about every minute even when nothing changes, so a watch silent for longer is dead.
pub const DEFAULT_WATCH_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Default of `maxLineSize`. etcd stores objects of at most 1.5 MiB; a watch line is the
/// object as JSON in a small envelope.
pub const DEFAULT_MAX_LINE_SIZE: usize = 8 << 20;

/// How to reach the apiserver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Connection {
    /// `--source=kubernetes`: `KUBECONFIG` or `~/.kube/config`, else in-cluster.
    Infer,
    /// The pod's service account (`inClusterConfig=true`, kube-eventer's default),
    /// optionally at another address than `KUBERNETES_SERVICE_HOST`.
    InCluster {
        /// Apiserver URL overriding the in-cluster one.
        url: Option<String>,
    },
    /// A kubeconfig file (`auth=<path>`), its current context.
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Apiserver URL overriding the kubeconfig's.
        url: Option<String>,
    },
    /// An explicit URL (`inClusterConfig=false`): no credentials (`kubectl proxy`), or the
    /// service account token as bearer (`useServiceAccount=true`).
    Url {
        /// The apiserver.
        url: String,
        /// Send the service account token.
        service_account: bool,
    },
}

/// Which Events API to read; both serve the same objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventsApi {
    /// core/v1 (`/api/v1/events`), as kube-eventer reads.
    #[default]
    Core,
    /// events.k8s.io/v1.
    Events,
}

/// Where to start without a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// Only what happens from now on (kube-eventer's behaviour).
    #[default]
    Now,
    /// Everything the apiserver still holds.
    All,
    /// What the apiserver holds that was last seen within this long.
    Since(Duration),
}

impl std::fmt::Display for StartFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartFrom::Now => f.write_str("now"),
            StartFrom::All => f.write_str("all"),
            StartFrom::Since(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

/// A parsed `kubernetes:` source URI.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceConfig {
    /// How to connect.
    pub connection: Connection,
    /// Skip TLS verification (`insecure=true`).
    pub insecure: bool,
    /// Watch only these namespaces (empty: all).
    pub namespaces: Vec<String>,
    /// core/v1 or events.k8s.io/v1.
    pub api: EventsApi,
    /// A server-side field selector, e.g. `type=Warning`.
    pub field_selector: Option<String>,
    /// Where to start without a checkpoint.
    pub start_from: StartFrom,
    /// Server-side watch timeout; the watch is resumed after it.
    pub watch_timeout: Duration,
    /// Bound on connecting and receiving a response's headers, and on each read of a
    /// list body (`requestTimeout`).
    pub request_timeout: Duration,
    /// A watch that sends nothing (no event, no bookmark) for this long is restarted
    /// (`watchIdleTimeout`).
    pub watch_idle_timeout: Duration,
    /// Longest watch line read, in bytes; a longer one is skipped (`maxLineSize`).
    pub max_line_size: usize,
}

impl SourceConfig {
    /// A config connecting to `url` without credentials, other settings default.
    pub fn for_url(url: &str) -> SourceConfig {
        SourceConfig {
            connection: Connection::Url { url: url.to_owned(), service_account: false },
            insecure: false,
            namespaces: Vec::new(),
            api: EventsApi::Core,
            field_selector: None,
            start_from: StartFrom::Now,
            watch_timeout: Duration::from_secs(290),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            watch_idle_timeout: DEFAULT_WATCH_IDLE_TIMEOUT,
            max_line_size: DEFAULT_MAX_LINE_SIZE,
        }
    }

    /// Parse the target and options of `kubernetes:<url>?<options>`.
    ///
    /// ```
    /// use eventer_source_k8s::{Connection, SourceConfig, StartFrom};
    /// let uri: eventer_core::uri::ComponentUri = "kubernetes:https://kubernetes.default?namespaces=a,b&startFrom=all".parse()?;
    /// let config = SourceConfig::parse(uri.target(), &mut uri.options())?;
    /// assert_eq!(config.connection, Connection::InCluster { url: Some("https://kubernetes.default".into()) });
    /// assert_eq!((config.namespaces.len(), config.start_from), (2, StartFrom::All));
    /// # Ok::<(), eventer_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// A configuration error naming the option.
    pub fn parse(target: &str, options: &mut Options) -> Result<SourceConfig> {
        let url = if target.is_empty() { None } else { Some(check_url(target)?) };
        let o: Settings = options.take()?;
        let auth = match (o.auth, o.local_kube_config) {
            (Some(a), Some(b)) if a != b => return Err(Error::config("options auth and localKubeConfig disagree")),
            (a, b) => a.or(b),
        };
        let service_account = o.use_service_account;
        let connection = match (auth, o.in_cluster_config) {
            (Some(_), Some(true)) => {
                return Err(Error::config("option auth: a kubeconfig cannot be combined with inClusterConfig=true"));
            }
            (Some(path), _) if service_account => {
                return Err(Error::config(format!(
                    "option useServiceAccount: cannot be combined with auth={path}; the kubeconfig has the credentials"
                )));
            }
            (Some(path), _) => Connection::Kubeconfig { path: PathBuf::from(path), url },
            (None, Some(false)) => match url {
                Some(url) => Connection::Url { url, service_account },
                None => {
                    return Err(Error::config(
                        "option inClusterConfig=false: give the apiserver URL (kubernetes:https://host:6443?inClusterConfig=false) or auth=<kubeconfig>",
                    ));
                }
            },
            (None, Some(true)) => Connection::InCluster { url },
            (None, None) if url.is_some() => Connection::InCluster { url },
            (None, None) if service_account => {
                return Err(Error::config(
                    "option useServiceAccount: give the apiserver URL (kubernetes:https://host:6443?...)",
                ));
            }
            (None, None) => Connection::Infer,
        };
        let api = match o.api.as_deref() {
            None | Some("core" | "v1") => EventsApi::Core,
            Some("events" | "events.k8s.io") => EventsApi::Events,
            Some(other) => {
                return Err(Error::config(format!("option api: invalid value `{other}` (expected core or events)")));
            }
        };
        let mut namespaces = o.namespaces;
        namespaces.sort_unstable();
        namespaces.dedup();
        let field_selector = o.field_selector.filter(|s| !s.trim().is_empty());
        if let Some(sel) = &field_selector
            && let Some(term) = sel.split(',').find(|t| !t.contains('='))
        {
            return Err(Error::config(format!(
                "option fieldSelector: `{term}` is not a `field=value` or `field!=value` term"
            )));
        }
        let start_from = match o.start_from.as_deref() {
            None | Some("now") => StartFrom::Now,
            Some("all") => StartFrom::All,
            Some(d) => StartFrom::Since(parse_duration(d).map_err(|e| {
                Error::config(format!("option startFrom: expected now, all or a duration such as 30m ({e})"))
            })?),
        };
        let positive = |name: &str, value: Option<Duration>, default: Duration| match value {
            Some(d) if d.is_zero() => Err(Error::config(format!("option {name}: must be more than 0"))),
            value => Ok(value.unwrap_or(default)),
        };
        let request_timeout = positive("requestTimeout", o.request_timeout, DEFAULT_REQUEST_TIMEOUT)?;
        let watch_idle_timeout = positive("watchIdleTimeout", o.watch_idle_timeout, DEFAULT_WATCH_IDLE_TIMEOUT)?;
        let max_line_size = match o.max_line_size {
            None => DEFAULT_MAX_LINE_SIZE,
            Some(v) => parse_size(&v).ok_or_else(|| {
                Error::config(format!(
                    "option maxLineSize: invalid size `{v}` (expected bytes, or a number with Ki or Mi such as 8Mi, at least 4Ki)"
                ))
            })?,
        };
        Ok(SourceConfig {
            connection,
            insecure: o.insecure,
            namespaces,
            api,
            field_selector,
            start_from,
            request_timeout,
            watch_idle_timeout,
            max_line_size,
            ..SourceConfig::for_url("")
        })
    }

    /// The collection path for `namespace` (`None`: all namespaces).
    pub(crate) fn path(&self, namespace: Option<&str>) -> String {
        let base = match self.api {
            EventsApi::Core => "/api/v1",
            EventsApi::Events => "/apis/events.k8s.io/v1",
        };
        match namespace {
            Some(ns) => format!("{base}/namespaces/{ns}/events"),
            None => format!("{base}/events"),
        }
    }

    /// Build the kube-rs client config: reads files, no network.
    ///
    /// # Errors
    /// A configuration error for a bad kubeconfig, a missing token file, or no way to
    /// find the cluster.
    pub async fn client_config(&self) -> Result<kube::Config> {
        let mut config = match &self.connection {
            Connection::Infer => infer().await?,
            Connection::InCluster { url } => {
                let loaded = if url.is_some() { kube::Config::incluster_dns() } else { kube::Config::incluster() };
                let mut config = loaded.map_err(|e| {
                    Error::config(
                        "inClusterConfig=true but the in-cluster configuration is unavailable (not running in a pod?); \
                         outside a cluster use auth=<kubeconfig> or inClusterConfig=false",
                    )
                    .with_source(e)
                })?;
                if let Some(url) = url {
                    config.cluster_url = parse_uri(url)?;
                }
                config
            }
            Connection::Kubeconfig { path, url } => {
                let kubeconfig = read_kubeconfig(std::slice::from_ref(path)).map_err(|e| {
                    Error::config(format!("cannot read kubeconfig {} (option auth)", path.display())).with_source(e)
                })?;
                let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| {
                        Error::config(format!("kubeconfig {} is not usable (option auth)", path.display()))
                            .with_source(e)
                    })?;
                if let Some(url) = url {
                    config.cluster_url = parse_uri(url)?;
                }
                config
            }
            Connection::Url { url, service_account } => {
                let mut config = kube::Config::new(parse_uri(url)?);
                if *service_account {
                    config.auth_info.token_file = Some(SERVICE_ACCOUNT_TOKEN.to_owned());
                }
                config
            }
        };
        if let Some(file) = &config.auth_info.token_file
            && !std::path::Path::new(file).is_file()
        {
            return Err(Error::config(match &self.connection {
                Connection::Kubeconfig { path, .. } => {
                    format!("the token file {file} named by kubeconfig {} does not exist (option auth)", path.display())
                }
                _ => format!(
                    "the service account token file {file} does not exist (useServiceAccount/inClusterConfig need a pod with a mounted token)"
                ),
            }));
        }
        if self.insecure {
            config.accept_invalid_certs = true;
        }
        // kube retries 429/503/504 up to 15 times (minutes) without a word; the source's
        // own loop retries with backoff too, and logs each failure.
        config.default_retry = false;
        // The source bounds each phase of its own requests; this also bounds those of the
        // ConfigMap checkpoint and leader election, which would otherwise wait for ever on
        // an apiserver that accepts a request and never answers.
        config.read_timeout = Some(self.watch_idle_timeout + self.request_timeout);
        Ok(config)
    }

    /// Check the files that an explicit connection reads (an `auth=` kubeconfig, the
    /// token file it or `useServiceAccount` names), so that a bad one stops eventer at
    /// startup naming the option. Inferred and in-cluster settings depend on where eventer
    /// runs, so [`SourceConfig::client_config`] checks those when the source starts.
    ///
    /// # Errors
    /// As [`SourceConfig::client_config`].
    pub fn check_files(&self) -> Result<()> {
        match self.connection {
            // Resolving these only reads files: the future completes on its first poll.
            // Should a later kube version really wait, the check is left to the start.
            Connection::Kubeconfig { .. } | Connection::Url { .. } => {
                self.client_config().now_or_never().transpose().map(drop)
            }
            Connection::Infer | Connection::InCluster { .. } => Ok(()),
        }
    }

    /// A client for this config.
    ///
    /// # Errors
    /// As [`SourceConfig::client_config`], or when the TLS setup fails.
    pub async fn client(&self) -> Result<kube::Client> {
        let config = self.client_config().await?;
        kube::Client::try_from(config)
            .map_err(|e| Error::new(ErrorKind::Config, "cannot build the Kubernetes client").with_source(e))
    }
}

/// `8388608`, `8192Ki`, `8Mi` (also `KiB`, `MiB`); at least 4 KiB, so that an ordinary
/// Event always fits.
fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let unit = match unit.trim() {
        "" => 1,
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        _ => return None,
    };
    digits.parse::<usize>().ok()?.checked_mul(unit).filter(|n| *n >= 4 << 10)
}

/// kube's `Config::infer` (`KUBECONFIG` or `~/.kube/config`, else the pod's service
/// account), reading the files as [`read_kubeconfig`] does.
async fn infer() -> Result<kube::Config> {
    let mut paths: Vec<PathBuf> = std::env::var_os("KUBECONFIG")
        .map(|list| std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default();
    if paths.is_empty() {
        paths.extend(std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube/config")));
    }
    let kubeconfig_error = match read_kubeconfig(&paths) {
        Ok(kubeconfig) => match kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await {
            Ok(config) => return Ok(config),
            Err(e) => std::io::Error::other(format!("not usable: {e}")),
        },
        Err(e) => e,
    };
    kube::Config::incluster().map_err(|in_cluster| {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        Error::config(
            "cannot find the cluster: no usable kubeconfig (KUBECONFIG or ~/.kube/config) and not running in a pod; \
             give kubernetes:<url>?inClusterConfig=false or auth=<kubeconfig>",
        )
        .with_source(std::io::Error::other(format!(
            "kubeconfig {}: {kubeconfig_error}; in-cluster: {in_cluster}",
            shown.join(":")
        )))
    })
}

/// Read and merge kubeconfig files as kube does, with errors that never quote a file
/// (the YAML parser shows the offending line, which may hold a token), and refusing
/// what kube would panic on (UTF-16 text with an odd number of bytes).
fn read_kubeconfig(paths: &[PathBuf]) -> std::io::Result<Kubeconfig> {
    let mut merged: Option<Kubeconfig> = None;
    for path in paths {
        // The caller names a lone file itself.
        let fail = |what: &dyn std::fmt::Display| match paths.len() {
            1 => std::io::Error::other(what.to_string()),
            _ => std::io::Error::other(format!("{}: {what}", path.display())),
        };
        let bytes = std::fs::read(path).map_err(|e| fail(&e))?;
        if matches!(bytes.as_slice(), [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..]) && bytes.len() % 2 == 1 {
            return Err(fail(&"truncated UTF-16 text"));
        }
        let next = Kubeconfig::read_from(path).map_err(|e| match e {
            KubeconfigError::Parse(_) => fail(&"not a kubeconfig YAML file"),
            e => fail(&e),
        })?;
        merged = Some(match merged {
            Some(m) => m.merge(next).map_err(|e| std::io::Error::other(e.to_string()))?,
            None => next,
        });
    }
    merged.ok_or_else(|| std::io::Error::other("no kubeconfig path (KUBECONFIG and HOME are unset)"))
}

fn check_url(url: &str) -> Result<String> {
    let uri = parse_uri(url)?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() => Ok(url.to_owned()),
        _ => Err(Error::config(format!("invalid apiserver URL `{url}`: expected http(s)://host[:port]"))),
    }
}

fn parse_uri(url: &str) -> Result<http::Uri> {
    url.parse::<http::Uri>().map_err(|e| Error::config(format!("invalid apiserver URL `{url}`")).with_source(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventer_core::uri::ComponentUri;

    fn parse(uri: &str) -> Result<SourceConfig> {
        let uri: ComponentUri = uri.parse()?;
        let mut options = uri.options();
        let config = SourceConfig::parse(uri.target(), &mut options)?;
        options.finish()?;
        Ok(config)
    }

    #[test]
    fn kube_eventer_syntax() {
        assert_eq!(parse("kubernetes").unwrap().connection, Connection::Infer);
        assert_eq!(
            parse("kubernetes:https://kubernetes.default").unwrap().connection,
            Connection::InCluster { url: Some("https://kubernetes.default".into()) }
        );
        assert_eq!(parse("kubernetes:?inClusterConfig=true").unwrap().connection, Connection::InCluster { url: None });
        assert_eq!(
            parse("kubernetes:http://127.0.0.1:8001?inClusterConfig=false").unwrap().connection,
            Connection::Url { url: "http://127.0.0.1:8001".into(), service_account: false }
        );
        assert_eq!(
            parse("kubernetes:https://10.0.0.1:6443?inClusterConfig=false&useServiceAccount=true&insecure=true")
                .unwrap(),
            SourceConfig {
                connection: Connection::Url { url: "https://10.0.0.1:6443".into(), service_account: true },
                insecure: true,
                ..SourceConfig::for_url("")
            }
        );
        assert_eq!(
            parse("kubernetes:?inClusterConfig=false&auth=/etc/kube/config").unwrap().connection,
            Connection::Kubeconfig { path: "/etc/kube/config".into(), url: None }
        );
    }

    #[test]
    fn beyond_kube_eventer() {
        let c = parse("kubernetes?namespaces=b,a,b&api=events&fieldSelector=type=Warning&startFrom=15m").unwrap();
        assert_eq!(c.namespaces, ["a", "b"]);
        assert_eq!(c.api, EventsApi::Events);
        assert_eq!(c.field_selector.as_deref(), Some("type=Warning"));
        assert_eq!(c.start_from, StartFrom::Since(Duration::from_secs(900)));
        assert_eq!(c.path(Some("a")), "/apis/events.k8s.io/v1/namespaces/a/events");
        assert_eq!(parse("kubernetes?startFrom=all").unwrap().path(None), "/api/v1/events");
        let c = parse("kubernetes?requestTimeout=5s&watchIdleTimeout=2m&maxLineSize=64Ki").unwrap();
        assert_eq!(
            (c.request_timeout, c.watch_idle_timeout, c.max_line_size),
            (Duration::from_secs(5), Duration::from_secs(120), 64 << 10)
        );
        let d = parse("kubernetes").unwrap();
        assert_eq!(
            (d.request_timeout, d.watch_idle_timeout, d.max_line_size),
            (Duration::from_secs(30), Duration::from_secs(90), 8 << 20)
        );
        for (size, bytes) in [("8Mi", 8 << 20), ("8MiB", 8 << 20), ("4096", 4096), ("16 KiB", 16 << 10)] {
            assert_eq!(parse_size(size), Some(bytes), "{size}");
        }
        for size in ["", "4095", "8M", "-1", "1.5Mi", "99999999999999999999Mi"] {
            assert_eq!(parse_size(size), None, "{size}");
        }
    }

    #[test]
    fn errors_name_the_option() {
        let err = |u: &str| parse(u).unwrap_err().to_string();
        assert_eq!(err("kubernetes?api=v2"), "option api: invalid value `v2` (expected core or events)");
        assert!(err("kubernetes?startFrom=yesterday").starts_with("option startFrom: expected now, all or a duration"));
        assert!(
            err("kubernetes?inClusterConfig=false").starts_with("option inClusterConfig=false: give the apiserver URL")
        );
        assert!(err("kubernetes?inClusterConfig=maybe").starts_with("option inClusterConfig: invalid boolean"));
        assert!(err("kubernetes?auth=/x&inClusterConfig=true").starts_with("option auth:"));
        assert!(err("kubernetes:ftp://x").starts_with("invalid apiserver URL `ftp://x`"));
        assert!(err("kubernetes?fieldSelector=Warning").starts_with("option fieldSelector: `Warning`"));
        assert!(err("kubernetes?colour=red").starts_with("unknown option colour for kubernetes"));
        assert!(parse("kubernetes?useServiceAccount=true").is_err());
        assert_eq!(err("kubernetes?requestTimeout=0s"), "option requestTimeout: must be more than 0");
        assert!(
            err("kubernetes?watchIdleTimeout=soon").starts_with("option watchIdleTimeout: invalid duration `soon`")
        );
        assert!(err("kubernetes?maxLineSize=1Gb").starts_with("option maxLineSize: invalid size `1Gb`"));
    }

    #[test]
    fn explicit_connections_check_their_files_without_quoting_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let check = |uri: &str| parse(uri).unwrap().check_files().map_err(|e| e.chain());
        let good = file(
            "good",
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n\
             contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\nusers:\n- name: u\n  user:\n    token: t0ken-value\n",
        );
        check(&format!("kubernetes:?auth={good}")).unwrap();
        let err = check(&format!("kubernetes:?auth={}", file("garbage", "t0ken-value\n"))).unwrap_err();
        assert!(err.contains("(option auth): not a kubeconfig YAML file") && !err.contains("t0ken"), "{err}");
        let missing_token = file(
            "missing-token",
            &std::fs::read_to_string(&good).unwrap().replace("token: t0ken-value", "tokenFile: /no/such/token"),
        );
        let err = check(&format!("kubernetes:?auth={missing_token}")).unwrap_err();
        assert!(err.starts_with("the token file /no/such/token named by kubeconfig"), "{err}");
        check("kubernetes:http://127.0.0.1:8001?inClusterConfig=false").unwrap();
        // Where eventer runs decides these: checked when the source starts.
        check("kubernetes").unwrap();
        check("kubernetes:https://kubernetes.default").unwrap();
    }

    #[test]
    fn kubeconfig_errors_never_quote_the_file_and_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join("broken");
        std::fs::write(&broken, "users:\n- name: u\n  user:\n    token: [KCTOKENSECRET]\n").unwrap();
        let utf16 = dir.path().join("utf16");
        std::fs::write(&utf16, b"\xff\xfeA").unwrap();
        for path in [broken, utf16] {
            let err = read_kubeconfig(&[path.clone(), path.clone()]).unwrap_err().to_string();
            assert!(err.starts_with(&path.display().to_string()), "{err}");
            assert!(err.ends_with("not a kubeconfig YAML file") || err.ends_with("truncated UTF-16 text"), "{err}");
            assert!(!err.contains("KCTOKENSECRET"), "{err}");
            let uri = format!("kubernetes:?auth={}", path.display());
            let err = parse(&uri).unwrap().check_files().unwrap_err().chain();
            assert!(err.starts_with("cannot read kubeconfig"), "{err}");
            assert!(!err.contains("KCTOKENSECRET"), "{err}");
        }
    }
}
