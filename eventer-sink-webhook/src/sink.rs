//! [`WebhookSink`]: renders, sends with bounded concurrency, and reports per event.

use std::{
    fmt,
    sync::{Arc, RwLock},
    time::Duration,
};

use async_trait::async_trait;
use eventer_core::{
    Batching, BoxSink, BuildContext, Error, ErrorKind, Event, Outcome, Registry, Result, SharedEvent, Sink,
    SinkFactory,
    sink::{Split, Verdict},
    telemetry::{Check, Health, HealthComponent},
    uri::Options,
};
use eventer_source_k8s::Cluster;
use futures::{StreamExt, TryStreamExt};
use jiff::{Timestamp, tz::TimeZone};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{WatchEvent, WatchParams},
};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::{
    client::Client,
    config::{Format, WebhookConfig},
    render::{BodyTemplate, DEFAULT_TEMPLATE},
};

/// The URI scheme: `--sink=webhook:<url>?...`.
pub const SCHEME: &str = "webhook";

/// The ConfigMap key holding the template, as kube-eventer reads it.
const CONTENT_KEY: &str = "content";

/// How a body is made.
#[derive(Debug)]
enum Body {
    Json,
    Template(BodyTemplate),
}

impl Body {
    fn render(&self, event: &Event, now: Timestamp, zone: &TimeZone) -> std::result::Result<String, String> {
        match self {
            Body::Json => Ok(event.raw_json().into_owned()),
            Body::Template(t) => t.render(event, now, zone),
        }
    }
}

/// The template in force, and the text it came from (to tell a change from a resync).
#[derive(Debug)]
struct Current {
    body: Arc<Body>,
    text: String,
}

/// Where the body template lives, when it is a ConfigMap.
#[derive(Clone)]
struct TemplateMap {
    cluster: Cluster,
    namespace: String,
    name: String,
}

impl TemplateMap {
    fn what(&self) -> String {
        format!("configmap {}/{}", self.namespace, self.name)
    }

    /// The ConfigMap's template text and resourceVersion.
    async fn read(&self, api: &Api<ConfigMap>) -> Result<(std::result::Result<String, String>, String)> {
        let found = api.get_opt(&self.name).await.map_err(|e| {
            let kind = match &e {
                kube::Error::Api(s) if s.code == 401 || s.code == 403 => ErrorKind::Config,
                _ => ErrorKind::Unavailable,
            };
            Error::new(kind, format!("option custom_body_configmap: cannot read {}", self.what())).with_source(e)
        })?;
        let Some(cm) = found else {
            return Err(Error::config(format!("option custom_body_configmap: {} not found", self.what())));
        };
        let version = cm.metadata.resource_version.clone().unwrap_or_default();
        Ok((content(&cm).ok_or_else(|| format!("{} has no key `{CONTENT_KEY}`", self.what())), version))
    }
}

fn content(cm: &ConfigMap) -> Option<String> {
    cm.data.as_ref().and_then(|d| d.get(CONTENT_KEY)).cloned()
}

/// Sends Kubernetes events to an HTTP endpoint, one request per event (or a JSON array of
/// `batch` of them), with kube-eventer's body templates.
///
/// - Outcomes are per event: 2xx is delivered; 429, 408, 5xx and transport failures are
///   retried by the pipeline with backoff (after `Retry-After` when the receiver sends
///   one); other statuses reject the event, logged with the status and the start of the
///   answer's body.
/// - At most `concurrency` requests are in flight; while they are, the pipeline's queue
///   fills and holds the source back.
/// - Each request carries `X-Eventer-Event-Id` (the event's uid and resourceVersion), the
///   same on every retry, for receivers that de-duplicate.
pub struct WebhookSink {
    config: WebhookConfig,
    client: Client,
    current: Arc<RwLock<Current>>,
    reason: Option<regex::Regex>,
    zone: TimeZone,
    configmap: Option<TemplateMap>,
    health: Health,
    watcher: Option<JoinHandle<()>>,
    frequency: Option<Duration>,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
    }
}

fn lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn parse_template(option: &str, text: &str) -> Result<Body> {
    BodyTemplate::parse(text)
        .map(Body::Template)
        .map_err(|e| Error::config(format!("option {option}: the template does not parse: {e}")))
}

impl WebhookSink {
    /// A sink for `config`, its template from `template`, `template_file` or kube-eventer's
    /// default (read now), or from the ConfigMap in `cluster` (read at start).
    ///
    /// # Errors
    /// An invalid configuration or template, naming the option; a ConfigMap template
    /// without a cluster.
    pub fn new(config: WebhookConfig, cluster: Option<Cluster>) -> Result<Self> {
        config.validate()?;
        let (body, text) = match (&config.format, &config.template, &config.template_file) {
            (Format::Json, ..) => (Body::Json, String::new()),
            (_, Some(text), _) => (parse_template("template", text)?, text.clone()),
            (_, _, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::config(format!("option template_file: cannot read {}", path.display())).with_source(e)
                })?;
                (parse_template("template_file", &text)?, text)
            }
            _ => (parse_template("template", DEFAULT_TEMPLATE)?, DEFAULT_TEMPLATE.to_owned()),
        };
        let configmap = match (&config.custom_body_configmap, cluster) {
            (Some(name), Some(cluster)) => Some(TemplateMap {
                cluster,
                namespace: config.custom_body_configmap_namespace.clone(),
                name: name.clone(),
            }),
            (Some(_), None) => {
                return Err(Error::config(
                    "option custom_body_configmap: needs the kubernetes source, whose cluster holds the ConfigMap",
                ));
            }
            (None, _) => None,
        };
        let reason = config
            .reason
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| Error::config("option reason: invalid regex").with_source(e))?;
        Ok(WebhookSink {
            zone: config.time_zone()?,
            client: Client::new(&config)?,
            current: Arc::new(RwLock::new(Current { body: Arc::new(body), text })),
            reason,
            configmap,
            health: Health::default(),
            watcher: None,
            frequency: None,
            config,
        })
    }

    /// Report the ConfigMap template's state to `health` (as `webhook-template/<ns>/<name>`).
    #[must_use]
    pub fn with_health(mut self, health: &Health) -> Self {
        self.health = health.clone();
        self
    }

    /// The batch window when `batch` is above 1 (`--frequency`; else 1 s).
    #[must_use]
    pub fn with_frequency(mut self, frequency: Option<Duration>) -> Self {
        self.frequency = frequency;
        self
    }

    /// The id of an event for `X-Eventer-Event-Id`: the same for the same version of the
    /// same Event object, whoever sends it and however often.
    fn event_id(event: &Event) -> String {
        match (event.uid.as_str(), event.resource_version.as_str()) {
            ("", _) => {
                use sha2::Digest;
                hex::encode(&sha2::Sha256::digest(event.raw_json().as_bytes())[..16])
            }
            (uid, "") => format!("{uid}.{}", event.count),
            (uid, rv) => format!("{uid}.{rv}"),
        }
    }

    /// Send `items` (index in the batch, body, id) as one request, split on refusal.
    async fn send_request(&self, items: Vec<(usize, String, String)>) -> Vec<(usize, Outcome)> {
        if let ([(i, body, id)], 1) = (items.as_slice(), self.config.batch) {
            let outcome = match self.client.send(body.clone(), id, self.config.format == Format::Json).await {
                Ok(()) => Outcome::Delivered,
                Err(e) => Outcome::from_error(e),
            };
            return vec![(*i, outcome)];
        }
        let mut split = Split::new(items.len());
        while let Some(range) = split.next_request() {
            let part = &items[range];
            let body = format!("[{}]", part.iter().map(|(_, b, _)| b.as_str()).collect::<Vec<_>>().join(","));
            let ids = part.iter().map(|(_, _, id)| id.as_str()).collect::<Vec<_>>().join(",");
            split.answer(match self.client.send(body, &ids, true).await {
                Ok(()) => Verdict::Delivered,
                Err(e) if e.is_temporary() => Verdict::Retry(Arc::new(e)),
                // Credentials or the address: no part of the request would pass.
                Err(e) if e.kind() == ErrorKind::Unauthorized => Verdict::RejectedAll(Arc::new(e)),
                Err(e) => Verdict::Refused(Arc::new(e)),
            });
        }
        items.iter().map(|(i, ..)| *i).zip(split.into_outcomes()).collect()
    }
}

/// Keep the ConfigMap's template current: apply each change that parses, and keep the
/// previous one (with `/readyz` failing) when it does not.
async fn watch_template(map: TemplateMap, api: Api<ConfigMap>, current: Arc<RwLock<Current>>, health: HealthComponent) {
    let apply = |text: std::result::Result<String, String>| {
        let text = match text {
            Ok(text) => text,
            Err(problem) => {
                error!(configmap = %map.what(), "{problem}; the webhook keeps its previous template.");
                health.set(Check::Failing(format!("{problem}; keeping the previous template")));
                return;
            }
        };
        if text == lock(&current).text {
            health.set(Check::Ready);
            return;
        }
        match BodyTemplate::parse(&text) {
            Ok(t) => {
                *current.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Current { body: Arc::new(Body::Template(t)), text };
                info!(configmap = %map.what(), "Webhook body template changed; using the new one.");
                health.set(Check::Ready);
            }
            Err(e) => {
                error!(configmap = %map.what(), error = %e, "Webhook body template does not parse; keeping the previous one.");
                health.set(Check::Failing(format!(
                    "{}: template does not parse, keeping the previous one: {e}",
                    map.what()
                )));
            }
        }
    };
    let mut pause = Duration::from_secs(1);
    loop {
        // Each (re)start reads the ConfigMap, so a change missed while not watching applies.
        let version = match map.read(&api).await {
            Ok((text, version)) => {
                apply(text);
                version
            }
            Err(e) => {
                warn!(error = %e.chain(), "Cannot read the webhook's template ConfigMap; will retry.");
                if e.kind() == ErrorKind::Config {
                    health.set(Check::Failing(format!("{}; keeping the previous template", e.chain())));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        let params = WatchParams::default().fields(&format!("metadata.name={}", map.name)).timeout(290);
        match api.watch(&params, &version).await {
            Ok(stream) => {
                pause = Duration::from_secs(1);
                let mut stream = std::pin::pin!(stream);
                loop {
                    match stream.try_next().await {
                        Ok(Some(WatchEvent::Added(cm) | WatchEvent::Modified(cm))) => {
                            apply(content(&cm).ok_or_else(|| format!("{} has no key `{CONTENT_KEY}`", map.what())));
                        }
                        Ok(Some(WatchEvent::Deleted(_))) => {
                            apply(Err(format!("{} was deleted", map.what())));
                        }
                        Ok(Some(WatchEvent::Bookmark(_))) => {}
                        // 410 Gone and the like: read again and watch from there.
                        Ok(Some(WatchEvent::Error(_))) | Ok(None) | Err(_) => break,
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "Cannot watch the webhook's template ConfigMap; will retry.");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
    }
}

#[async_trait]
impl Sink for WebhookSink {
    async fn start(&mut self) -> Result<()> {
        // A mistyped option is passed on too: name them (never their values, which may be keys).
        if let Ok(url) = url::Url::parse(&self.config.url) {
            let names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
            if !names.is_empty() {
                info!(parameters = %names.join(","), "Webhook URL keeps its query parameters (options eventer does not know).");
            }
        }
        let Some(map) = self.configmap.clone() else { return Ok(()) };
        let api: Api<ConfigMap> = Api::namespaced(map.cluster.client().await?, &map.namespace);
        let (text, _) = map.read(&api).await?;
        let text = text.map_err(|problem| Error::config(format!("option custom_body_configmap: {problem}")))?;
        let body = BodyTemplate::parse(&text).map_err(|e| {
            Error::config(format!("option custom_body_configmap: the template in {} does not parse: {e}", map.what()))
        })?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Current { body: Arc::new(Body::Template(body)), text };
        let health = self.health.component(format!("webhook-template/{}/{}", map.namespace, map.name));
        health.set(Check::Ready);
        self.watcher = Some(tokio::spawn(watch_template(map, api, self.current.clone(), health)));
        Ok(())
    }

    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        let now = Timestamp::now();
        let body = lock(&self.current).body.clone();
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut items = Vec::with_capacity(batch.len());
        for (i, event) in batch.iter().enumerate() {
            if self.reason.as_ref().is_some_and(|r| !r.is_match(&event.reason)) {
                // kube-eventer's `reason` filter: not for this sink, nothing to send.
                outcomes[i] = Some(Outcome::Delivered);
                continue;
            }
            let rendered = body.render(event, now, &self.zone).and_then(|b| {
                // An array element must be JSON, or the receiver cannot read any of them.
                if self.config.batch > 1 && serde_json::from_str::<serde::de::IgnoredAny>(&b).is_err() {
                    Err("the rendered body is not JSON, which batch=N needs".to_owned())
                } else {
                    Ok(b)
                }
            });
            match rendered {
                Ok(b) => items.push((i, b, WebhookSink::event_id(event))),
                Err(e) => {
                    outcomes[i] = Some(Outcome::Rejected(Arc::new(Error::new(
                        ErrorKind::Rejected,
                        format!("cannot render the webhook body: {e}"),
                    ))));
                }
            }
        }
        let mut requests = Vec::new();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            requests.push(items.by_ref().take(self.config.batch).collect::<Vec<_>>());
        }
        let this = &*self;
        let sent: Vec<Vec<(usize, Outcome)>> =
            futures::stream::iter(requests.into_iter().map(|r| this.send_request(r)))
                .buffered(this.config.concurrency)
                .collect()
                .await;
        for (i, outcome) in sent.into_iter().flatten() {
            outcomes[i] = Some(outcome);
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Retry(Arc::new(Error::new(ErrorKind::Unexpected, "not sent")))))
            .collect()
    }

    fn batching(&self) -> Batching {
        let window =
            if self.config.batch > 1 { self.frequency.unwrap_or(Duration::from_secs(1)) } else { Duration::ZERO };
        Batching::new(self.config.batch * self.config.concurrency, window)
    }

    fn preview(&mut self, batch: &[SharedEvent]) -> Option<Vec<String>> {
        let body = lock(&self.current).body.clone();
        let now = Timestamp::now();
        Some(
            batch
                .iter()
                .map(|e| body.render(e, now, &self.zone).unwrap_or_else(|e| format!("(cannot render: {e})")))
                .collect(),
        )
    }

    async fn close(&mut self) -> Result<()> {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        Ok(())
    }
}

/// Builds [`WebhookSink`]s from kube-eventer URIs; with no `level`, every event is sent,
/// as kube-eventer's webhook does.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookFactory;

impl SinkFactory for WebhookFactory {
    fn options(&self) -> Vec<&'static str> {
        eventer_core::config::names::<WebhookConfig>().to_vec()
    }

    fn build(&self, target: &str, options: &mut Options, cx: &BuildContext) -> Result<BoxSink> {
        let config = WebhookConfig::from_options(target, options)?;
        let sink = WebhookSink::new(config, Cluster::of(cx))?.with_health(&cx.health).with_frequency(cx.frequency);
        Ok(Box::new(sink))
    }
}

/// Register the `webhook` scheme.
///
/// ```
/// let mut registry = eventer_core::Registry::new();
/// eventer_sink_webhook::register(&mut registry);
/// assert_eq!(registry.sink_schemes(), ["webhook"]);
/// ```
pub fn register(registry: &mut Registry) {
    registry.register_sink(SCHEME, Arc::new(WebhookFactory));
}
