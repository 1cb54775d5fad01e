//! [`ElasticsearchSink`]: bulk requests, and what their answers mean per event.

use std::{collections::HashSet, fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use base64::Engine as _;
use eventer_core::{
    Batching, BoxSink, BuildContext, Error, ErrorKind, Outcome, Registry, Result, SharedEvent, Sink, SinkFactory,
    sink::{Split, Verdict},
    uri::Options,
};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::Deserialize;
use tracing::warn;

use crate::{config::EsConfig, document::Encoder};

/// The URI scheme, kube-eventer's: `--sink=elasticsearch:?nodes=http://host:9200`.
pub const SCHEME: &str = "elasticsearch";

/// The same sink for OpenSearch users: `--sink=opensearch:?nodes=…`.
pub const OPENSEARCH_SCHEME: &str = "opensearch";

/// Writes events to Elasticsearch or OpenSearch through the `_bulk` API, as kube-eventer's
/// documents in its daily indices.
///
/// - Each occurrence of an event has a fixed `_id` (the Event's uid and its count): a
///   request retried after a timeout, or events replayed after a restart, overwrite their
///   documents instead of adding copies.
/// - Every item of a bulk answer is an outcome of its own: 429 and 5xx items are retried,
///   a document the index refuses (a mapping error) is rejected and logged with the reason,
///   and the others count as stored.
/// - A request refused whole for its size or content is split until the offending event
///   is alone ([`eventer_core::sink::Split`]); overload (429, 5xx), timeouts and
///   connection failures are retried by the pipeline with backoff, on the next node.
/// - Each day's index is created once with the alias `<index>-events`, not checked per
///   event.
pub struct ElasticsearchSink {
    config: EsConfig,
    encoder: Encoder,
    http: reqwest::Client,
    auth: Option<HeaderValue>,
    /// The node requests go to; moves on after a connection failure.
    node: usize,
    /// Indices created (or found) in this run.
    created: HashSet<String>,
}

impl fmt::Debug for ElasticsearchSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElasticsearchSink").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The answer to a bulk request, item by item.
#[derive(Deserialize)]
struct BulkAnswer {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, Item>>,
}

#[derive(Deserialize)]
struct Item {
    status: u16,
    #[serde(default)]
    error: Option<ItemError>,
}

#[derive(Deserialize)]
struct ItemError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    reason: String,
}

/// What one bulk request came to.
enum Answer {
    /// Stored item by item: `None` for a stored one, else its outcome.
    Items(Vec<Option<Outcome>>),
    /// The request as a whole.
    Whole(Verdict),
}

impl ElasticsearchSink {
    /// A sink for `config`; performs no I/O.
    ///
    /// # Errors
    /// An invalid configuration.
    pub fn new(config: EsConfig) -> Result<Self> {
        config.validate()?;
        // reqwest is built without a default crypto provider; installing fails only when
        // one is already installed, which is fine.
        rustls::crypto::ring::default_provider().install_default().ok();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("eventer/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {}", e.without_url())))?;
        let auth = match (&config.user, &config.password, &config.api_key) {
            (Some(user), Some(password), _) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.expose()))
            )),
            (_, _, Some(key)) => Some(format!("ApiKey {}", key.expose())),
            _ => None,
        };
        let auth = auth
            .map(|value| {
                HeaderValue::from_str(&value)
                    .map(|mut v| {
                        v.set_sensitive(true);
                        v
                    })
                    .map_err(|_| Error::config("option esUserSecret or apiKey: not valid in an HTTP header"))
            })
            .transpose()?;
        Ok(ElasticsearchSink { encoder: Encoder::new(&config), config, http, auth, node: 0, created: HashSet::new() })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.nodes[self.node % self.config.nodes.len()].trim_end_matches('/'))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.auth {
            Some(auth) => request.header(AUTHORIZATION, auth.clone()),
            None => request,
        }
    }

    /// A failure to reach the node: the next request goes to the next node.
    fn unreachable(&mut self, e: reqwest::Error) -> Arc<Error> {
        let node = self.url("");
        self.node = self.node.wrapping_add(1);
        let what = if e.is_timeout() { "timed out" } else { "failed" };
        Arc::new(
            Error::new(ErrorKind::Unavailable, format!("the request to {node} {what}")).with_source(e.without_url()),
        )
    }

    /// Create `index` with kube-eventer's alias, unless this run did already. An index
    /// that exists is fine; another refusal is logged and left to the bulk request
    /// (which creates a missing index itself, without the alias).
    async fn create(&mut self, index: &str) -> std::result::Result<(), Arc<Error>> {
        if !self.config.create_index || self.created.contains(index) {
            return Ok(());
        }
        let body = serde_json::json!({"aliases": {self.encoder.alias(): {}}}).to_string();
        let answer = self
            .request(reqwest::Method::PUT, &format!("/{index}"))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => return Err(self.unreachable(e)),
        };
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap_or_default();
        match status {
            200..=299 => {}
            _ if text.contains("resource_already_exists_exception") => {}
            429 | 500..=599 => return Err(Arc::new(whole_error(status, &text, None))),
            _ => {
                warn!(index, status, answer = %first(&text), "Cannot create the index with its alias; writing without.")
            }
        }
        self.created.insert(index.to_owned());
        Ok(())
    }

    /// Send the lines `lines` of events as one bulk request.
    async fn bulk(&mut self, lines: &[String]) -> Answer {
        let body: String = lines.concat();
        let path = match &self.config.pipeline {
            Some(pipeline) => format!("/_bulk?pipeline={pipeline}"),
            None => "/_bulk".to_owned(),
        };
        let sent = self
            .request(reqwest::Method::POST, &path)
            .header(CONTENT_TYPE, "application/x-ndjson")
            .body(body)
            .send()
            .await;
        let answer = match sent {
            Ok(answer) => answer,
            Err(e) => return Answer::Whole(Verdict::Retry(self.unreachable(e))),
        };
        let status = answer.status().as_u16();
        let retry_after = answer
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs);
        let text = match answer.text().await {
            Ok(text) => text,
            Err(e) => return Answer::Whole(Verdict::Retry(self.unreachable(e))),
        };
        if !(200..300).contains(&status) {
            let error = Arc::new(whole_error(status, &text, retry_after));
            return Answer::Whole(match status {
                // Too large, or a line it cannot take: without the offending event it passes.
                400 | 413 => Verdict::Refused(error),
                401 | 403 | 404 | 406 => Verdict::RejectedAll(error),
                _ => Verdict::Retry(error),
            });
        }
        let parsed = match serde_json::from_str::<BulkAnswer>(&text) {
            Ok(parsed) if parsed.items.len() == lines.len() => parsed,
            _ => {
                return Answer::Whole(Verdict::Retry(Arc::new(
                    Error::new(ErrorKind::Unavailable, format!("unexpected answer to _bulk: {}", first(&text)))
                        .temporary(),
                )));
            }
        };
        if !parsed.errors {
            return Answer::Items(vec![None; lines.len()]);
        }
        Answer::Items(parsed.items.into_iter().map(|item| item.into_values().next().and_then(outcome)).collect())
    }
}

/// An item's outcome, `None` when it was stored.
fn outcome(item: Item) -> Option<Outcome> {
    if (200..300).contains(&item.status) {
        return None;
    }
    let (kind, reason) = item.error.map(|e| (e.kind, e.reason)).unwrap_or_default();
    let message = format!("Elasticsearch answered {} for the document: {kind}: {}", item.status, first(&reason));
    Some(match item.status {
        429 => Outcome::Retry(Arc::new(Error::new(ErrorKind::RateLimited, message))),
        408 | 500..=599 => Outcome::Retry(Arc::new(Error::new(ErrorKind::Unavailable, message))),
        _ => Outcome::Rejected(Arc::new(Error::new(ErrorKind::Rejected, message))),
    })
}

/// The error of a request refused or failed whole.
fn whole_error(status: u16, text: &str, retry_after: Option<Duration>) -> Error {
    let message = format!("Elasticsearch answered HTTP {status}: {}", first(text));
    let error = match status {
        401 | 403 => {
            Error::new(ErrorKind::Unauthorized, format!("{message} (check esUserName/esUserSecret or apiKey)"))
        }
        429 => Error::new(ErrorKind::RateLimited, message),
        408 | 500..=599 => Error::new(ErrorKind::Unavailable, message),
        _ => Error::new(ErrorKind::Rejected, message),
    };
    match retry_after {
        Some(after) => error.with_retry_after(after),
        None => error,
    }
}

/// The start of an answer, for a log line.
fn first(text: &str) -> String {
    eventer_core::uri::redact(&text.chars().take(300).collect::<String>())
}

#[async_trait]
impl Sink for ElasticsearchSink {
    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut lines = Vec::with_capacity(batch.len());
        for event in batch {
            let index = self.encoder.index_of(event);
            if let Err(e) = self.create(&index).await {
                return vec![Outcome::Retry(e); batch.len()];
            }
            let mut line = String::new();
            self.encoder.encode(event, &index, &mut line);
            lines.push(line);
        }
        // Requests under the byte limit, each split further when refused for its content.
        let mut start = 0;
        while start < lines.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < lines.len() && (end == start || bytes + lines[end].len() <= self.config.max_batch_bytes) {
                bytes += lines[end].len();
                end += 1;
            }
            let mut split = Split::new(end - start);
            while let Some(range) = split.next_request() {
                let at = start + range.start;
                match self.bulk(&lines[at..start + range.end]).await {
                    Answer::Items(items) => {
                        for (i, item) in items.into_iter().enumerate() {
                            outcomes[at + i] = item;
                        }
                        split.answer(Verdict::Delivered);
                    }
                    Answer::Whole(verdict) => split.answer(verdict),
                }
            }
            for (i, outcome) in split.into_outcomes().into_iter().enumerate() {
                let slot = &mut outcomes[start + i];
                if !matches!(outcome, Outcome::Delivered) || slot.is_none() {
                    *slot = Some(outcome);
                }
            }
            // After a transient failure the rest waits for the pipeline's retry too.
            if let Some(Outcome::Retry(e)) =
                outcomes[start..end].iter().flatten().find(|o| matches!(o, Outcome::Retry(_)))
            {
                let e = e.clone();
                outcomes[end..].iter_mut().for_each(|o| *o = Some(Outcome::Retry(e.clone())));
                break;
            }
            start = end;
        }
        outcomes.into_iter().map(|o| o.unwrap_or(Outcome::Delivered)).collect()
    }

    fn batching(&self) -> Batching {
        Batching::new(self.config.max_batch_events, self.config.batch_window.unwrap_or(Duration::from_secs(1)))
    }

    fn preview(&mut self, batch: &[SharedEvent]) -> Option<Vec<String>> {
        let mut out = String::new();
        for event in batch {
            let index = self.encoder.index_of(event);
            self.encoder.encode(event, &index, &mut out);
        }
        Some(out.lines().map(str::to_owned).collect())
    }
}

/// Builds [`ElasticsearchSink`]s from kube-eventer's `elasticsearch:` URIs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ElasticsearchFactory;

impl SinkFactory for ElasticsearchFactory {
    fn options(&self) -> Vec<&'static str> {
        EsConfig::option_names()
    }

    fn build(&self, target: &str, options: &mut Options, cx: &BuildContext) -> Result<BoxSink> {
        let mut config = EsConfig::from_options(target, options)?;
        if config.batch_window.is_none() {
            config.batch_window = cx.frequency;
        }
        Ok(Box::new(ElasticsearchSink::new(config)?))
    }
}

/// Register the `elasticsearch` scheme and its `opensearch` alias.
///
/// ```
/// let mut registry = eventer_core::Registry::new();
/// eventer_sink_elasticsearch::register(&mut registry);
/// assert_eq!(registry.sink_schemes(), ["elasticsearch", "opensearch"]);
/// ```
pub fn register(registry: &mut Registry) {
    registry.register_sink(SCHEME, Arc::new(ElasticsearchFactory));
    registry.register_sink(OPENSEARCH_SCHEME, Arc::new(ElasticsearchFactory));
}
