//! [`SlsSink`], its [`SlsFactory`] and [`register`].

use std::{path::PathBuf, sync::Arc, time::Duration};

use async_trait::async_trait;
use eventer_core::{
    BoxSink, BuildContext, Event, Registry, Result, SharedEvent, Sink, SinkFactory,
    sink::{Batching, Outcome, Split, Verdict},
    uri::Options,
};
use jiff::Timestamp;
use tracing::{error, info, warn};

use crate::{
    client::{Client, http_client},
    config::{DEFAULT_BATCH_WINDOW, SlsConfig},
    credentials::{CredentialProvider, Credentials, Metadata, Sources},
    error::{Retry, SlsError},
    proto::{Body, Compressor},
    schema::{Plan, Schema},
    sign::SignatureVersion,
};

/// The URI scheme: `--sink=sls:...`.
pub const SCHEME: &str = "sls";

/// Timeout of each metadata service call: it is link-local, so it answers fast or not at all.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes events to an SLS logstore (see the crate docs).
#[derive(Debug)]
pub struct SlsSink {
    config: SlsConfig,
    schema: Schema,
    compressor: Compressor,
    batching: Batching,
    sources: Sources,
    running: Option<Running>,
}

/// What [`Sink::start`] sets up.
#[derive(Debug)]
struct Running {
    client: Client,
    credentials: CredentialProvider,
}

impl SlsSink {
    /// A sink for `config` (validated here; no I/O until [`Sink::start`]). Log groups have
    /// this machine's host name as their source (`__source__`). The credential sources
    /// beyond `config` (see the crate docs) are read from this process's environment.
    ///
    /// # Errors
    /// An invalid setting, naming it.
    pub fn new(config: SlsConfig) -> Result<Self, SlsError> {
        config.validate()?;
        let sources = Sources::from_env(&|name| std::env::var(name).ok())?;
        let hostname = gethostname::gethostname().to_string_lossy().into_owned();
        let schema = Schema::new(&config.topic, &config.labels, hostname);
        // Batches cut at the request limit in bytes too, as the schema weighs logs: a full
        // batch is then one full request, not a full one and a remainder.
        let batching = Batching::new(config.max_batch_logs, config.batch_window.unwrap_or(DEFAULT_BATCH_WINDOW))
            .max_bytes(config.max_batch_bytes.saturating_sub(schema.trailer_len()));
        Ok(SlsSink { config, schema, compressor: Compressor::default(), batching, sources, running: None })
    }

    /// Read the credential sources' variables (`ALIBABA_CLOUD_*`) through `env` rather than
    /// from this process's environment.
    ///
    /// # Errors
    /// Variables of one source set in part, naming those missing.
    pub fn with_credential_env(mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, SlsError> {
        let addon_token_config = self.sources.addon_token_config().to_owned();
        self.sources = Sources::from_env(env)?;
        self.sources.set_addon_token_config(addon_token_config);
        Ok(self)
    }

    /// Read ACK's add-on token file at `path` rather than `/var/addon/token-config`.
    #[must_use]
    pub fn with_addon_token_config(mut self, path: impl Into<PathBuf>) -> Self {
        self.sources.set_addon_token_config(path.into());
        self
    }

    /// The settings.
    pub fn config(&self) -> &SlsConfig {
        &self.config
    }

    /// Resolve credentials, region and endpoint; only the metadata service is contacted,
    /// and only for what the configuration leaves open.
    async fn connect(&self) -> Result<Running, SlsError> {
        let c = &self.config;
        let metadata_http = http_client(METADATA_TIMEOUT)?;
        let metadata = Metadata::new(metadata_http.clone(), &c.metadata_endpoint);
        let credentials = match (&c.access_key_id, &c.access_key_secret) {
            (Some(id), Some(secret)) => CredentialProvider::Static(Credentials::new(id.expose(), secret.expose())),
            _ => {
                let tried = "the accessKeyId/accessKeySecret options (not set), the AccessKeyId/AccessKeySecret \
                             environment variables (not set)";
                self.sources.provider(&metadata_http, metadata.clone(), tried).await?
            }
        };
        let needs_region = c.endpoint.is_none() || c.signature_version == SignatureVersion::V4;
        let region = match c.known_region() {
            Some(region) => region,
            None if needs_region => metadata.region().await.map_err(|e| {
                SlsError::Config(format!("cannot tell the SLS region: set the regionId option or RegionId ({e})"))
            })?,
            None => String::new(),
        };
        let endpoint = c.resolve_endpoint(Some(&region))?.ok_or_else(|| SlsError::Config("no SLS endpoint".into()))?;
        let client = Client::new(http_client(c.timeout)?, c, endpoint, region);
        info!(
            project = %c.project,
            log_store = %c.log_store,
            endpoint = %client.endpoint(),
            signature = ?c.signature_version,
            credentials = credentials.name(),
            "SLS sink ready."
        );
        Ok(Running { client, credentials })
    }
}

impl Running {
    /// Send one body; on a refused STS token, refresh the credentials and send it once more.
    async fn put(&mut self, body: &Body) -> Result<(), SlsError> {
        let credentials = self.credentials.get(Timestamp::now()).await?;
        match self.client.put_logs(body, credentials).await {
            Err(e) if e.retry() == Retry::AfterRefresh => {
                if !self.credentials.refresh().await? {
                    return Err(e);
                }
                warn!(error = %e, "SLS refused the STS token; retrying with refreshed credentials.");
                let credentials = self.credentials.get(Timestamp::now()).await?;
                self.client.put_logs(body, credentials).await
            }
            result => result,
        }
    }
}

/// Smallest raw size an event is cut to when SLS finds it too large alone (the smallest
/// `maxBatchBytes`).
const MIN_ALONE_BYTES: usize = 1024;

impl Running {
    /// SLS refused event `index` of the plan's batch as too large even alone, as `raw_size`
    /// bytes: send it cut to half that size, and half again, rather than lose it. Only a
    /// server or proxy limit below `maxBatchBytes` gets here.
    async fn shrink(
        &mut self,
        compressor: &mut Compressor,
        plan: &Plan<'_>,
        index: usize,
        raw_size: usize,
        mut error: SlsError,
    ) -> Verdict {
        let mut size = raw_size;
        while size / 2 >= MIN_ALONE_BYTES {
            let group = plan.alone(index, size / 2);
            if group.raw.len() >= size {
                break; // nothing left to cut
            }
            size = group.raw.len();
            match self.put(&compressor.compress(&group.raw)).await {
                Ok(()) => {
                    warn!(
                        from = raw_size,
                        to = size,
                        error = %error,
                        "SLS refused an event as too large; it was archived truncated."
                    );
                    return Verdict::Delivered;
                }
                Err(e) if e.too_large() => error = e,
                Err(e) => return verdict(e, 1),
            }
        }
        verdict(error, 1)
    }
}

/// What a failed request means for its `n` events.
fn verdict(e: SlsError, n: usize) -> Verdict {
    let content = e.about_content();
    let err = Arc::new(eventer_core::Error::from(e));
    if err.is_temporary() {
        warn!(error = %err.chain(), events = n, "SLS write failed; it will be retried.");
        Verdict::Retry(err)
    } else if content {
        Verdict::Refused(err)
    } else {
        error!(error = %err.chain(), events = n, "SLS REFUSED the write; these events are NOT archived.");
        Verdict::RejectedAll(err)
    }
}

#[async_trait]
impl Sink for SlsSink {
    /// Resolve credentials (options, environment, RRSA, ACK's add-on token, then the ECS
    /// RAM role), region and endpoint.
    async fn start(&mut self) -> Result<()> {
        if self.running.is_none() {
            self.running = Some(self.connect().await?);
        }
        Ok(())
    }

    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        if batch.is_empty() {
            return Vec::new();
        }
        let running = match &mut self.running {
            Some(running) => running,
            None => match self.connect().await {
                Ok(running) => self.running.insert(running),
                Err(e) => return Outcome::all(batch.len(), Err(e.into())),
            },
        };
        let c = &self.config;
        let mut plan = self.schema.plan(batch, Timestamp::now(), c.max_batch_logs, c.max_batch_bytes);
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        // After a transient failure the rest of the batch waits for the pipeline's retry
        // (unencoded) rather than hitting a busy or unreachable server again.
        let mut transient: Option<Arc<eventer_core::Error>> = None;
        while let Some(planned) = plan.next() {
            // A group refused for one bad log is sent again in halves, so that only that
            // log is rejected (see eventer_core::sink::Split).
            let mut split = Split::new(planned.events.len());
            while let Some(range) = split.next_request() {
                let n = range.len();
                let whole = n == planned.events.len();
                let body = if whole {
                    self.compressor.compress(&planned.raw)
                } else {
                    self.compressor.compress(&planned.subset(range.clone()))
                };
                let verdict = match running.put(&body).await {
                    Ok(()) => Verdict::Delivered,
                    Err(e) if n == 1 && e.too_large() => {
                        let event = planned.events[range.start];
                        running.shrink(&mut self.compressor, &plan, event, body.raw_size, e).await
                    }
                    Err(e) => verdict(e, n),
                };
                if let Verdict::Refused(e) = &verdict
                    && whole
                    && n > 1
                {
                    warn!(error = %e.chain(), events = n, "SLS refused a request for its content; sending it in halves to find the events at fault.");
                }
                split.answer(verdict);
            }
            for (&i, outcome) in planned.events.iter().zip(split.into_outcomes()) {
                if let Outcome::Retry(e) = &outcome {
                    transient.get_or_insert_with(|| e.clone());
                }
                outcomes[i] = Some(outcome);
            }
            if !plan.recycle(planned) {
                self.compressor.release();
            }
            if transient.is_some() {
                break;
            }
        }
        let rest = transient.unwrap_or_else(|| {
            Arc::new(eventer_core::Error::new(eventer_core::ErrorKind::Unexpected, "event left out of every log group"))
        });
        outcomes.into_iter().map(|o| o.unwrap_or_else(|| Outcome::Retry(rest.clone()))).collect()
    }

    fn batching(&self) -> Batching {
        self.batching
    }

    fn weigh(&self, event: &Event) -> usize {
        self.schema.weigh(event)
    }

    /// One JSON object per event: `__time__`, `__topic__`, `__source__`, tags and fields.
    fn preview(&mut self, batch: &[SharedEvent]) -> Option<Vec<String>> {
        let now = Timestamp::now();
        let lines = batch
            .iter()
            .map(|event| {
                let group = self.schema.group();
                let log = self.schema.log(event, now);
                let mut obj = serde_json::Map::new();
                obj.insert("__time__".into(), log.time.into());
                obj.insert("__topic__".into(), group.topic.unwrap_or_default().into());
                obj.insert("__source__".into(), group.source.unwrap_or_default().into());
                for tag in group.log_tags {
                    obj.insert(format!("__tag__:{}", tag.key), tag.value.into());
                }
                for content in log.contents {
                    obj.insert(content.key, content.value.into());
                }
                serde_json::Value::Object(obj).to_string()
            })
            .collect();
        Some(lines)
    }
}

/// Builds [`SlsSink`]s from `sls:` URIs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlsFactory;

impl SinkFactory for SlsFactory {
    fn options(&self) -> Vec<&'static str> {
        eventer_core::config::names::<SlsConfig>().to_vec()
    }

    fn build(&self, target: &str, options: &mut Options, cx: &BuildContext) -> Result<BoxSink> {
        let mut config = SlsConfig::from_uri(target, options)?;
        if config.batch_window.is_none() {
            config.batch_window = cx.frequency;
        }
        Ok(Box::new(SlsSink::new(config)?))
    }
}

/// Register the `sls` scheme.
pub fn register(registry: &mut Registry) {
    registry.register_sink(SCHEME, Arc::new(SlsFactory));
}
