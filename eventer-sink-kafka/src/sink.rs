//! [`KafkaSink`]: events handed to librdkafka's idempotent producer, one outcome per
//! delivery report.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use eventer_core::{
    Batching, BoxSink, BuildContext, Error, ErrorKind, Outcome, Registry, Result, SharedEvent, Sink, SinkFactory,
    uri::Options,
};
use rdkafka::{
    ClientContext,
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
};
use tracing::{error, warn};

use crate::{config::KafkaConfig, message::Encoder};

/// The URI scheme, kube-eventer's: `--sink=kafka:?brokers=host:9092`.
pub const SCHEME: &str = "kafka";

/// How long `start` waits for the brokers' metadata, and `close` for the last deliveries.
const WAIT: Duration = Duration::from_secs(10);

/// Writes each event as one message to a Kafka topic, as kube-eventer's Kafka sink did,
/// through librdkafka's idempotent producer.
///
/// - The producer is idempotent: a send it retries (a lost answer, a broker restart) is
///   written once, and a partition keeps the order events were sent in.
/// - Each event's outcome is its delivery report: delivered once the in-sync replicas have
///   it; a message the broker refuses for good (too large, not authorised) is rejected and
///   logged; anything else is retried.
/// - The producer never gives a message up by default (`timeout=0`): while the brokers
///   are away, sends wait, the pipeline's queue fills and holds the source back, and
///   `/readyz` reports the sink as stuck after a minute. Nothing is dropped.
/// - Messages carry the header `eventer-event-id: <uid>.<resourceVersion>`: events replayed
///   after a restart (those sent but not yet acknowledged) have the same id, so a consumer
///   can drop the copies.
pub struct KafkaSink {
    config: KafkaConfig,
    encoder: Encoder,
    producer: FutureProducer<Context>,
    /// Set by the producer's context when the brokers refuse the login.
    refused: Arc<AtomicBool>,
}

/// librdkafka's callbacks: its errors are logged (redacted), and a refused login noted so
/// that `start` can say so instead of waiting.
#[derive(Debug, Clone, Default)]
struct Context {
    refused: Arc<AtomicBool>,
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        if matches!(code, Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)) {
            self.refused.store(true, Ordering::Relaxed);
        }
        warn!(error = %error, reason = %eventer_core::uri::redact(reason), "Kafka client error.");
    }
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink").field("config", &self.config).finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// A sink for `config`. The producer connects in the background.
    ///
    /// # Errors
    /// An invalid configuration, or one librdkafka refuses (an unreadable certificate).
    pub fn new(config: KafkaConfig) -> Result<Self> {
        config.validate()?;
        let refused = Arc::new(AtomicBool::new(false));
        let producer = producer(&config, &refused)?;
        Ok(KafkaSink {
            encoder: Encoder { format: config.format, key: config.partition_by },
            config,
            producer,
            refused,
        })
    }

    /// After librdkafka's fatal error (the idempotent producer lost its sequence), only a new
    /// producer can send again.
    fn renew_if_fatal(&mut self) {
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            error!(%code, reason, "The Kafka producer failed for good; starting a new one.");
            match producer(&self.config, &self.refused) {
                Ok(producer) => self.producer = producer,
                Err(e) => error!(error = %e, "Cannot start a new Kafka producer."),
            }
        }
    }
}

fn producer(config: &KafkaConfig, refused: &Arc<AtomicBool>) -> Result<FutureProducer<Context>> {
    config.client_config().create_with_context(Context { refused: refused.clone() }).map_err(|e| {
        // librdkafka names the setting it refuses; ours are named after kube-eventer's options.
        let message = eventer_core::uri::redact(&e.to_string());
        Error::config(format!("cannot start the Kafka producer (check brokers, cacert, cert, key): {message}"))
    })
}

/// The outcome of an event the producer could not deliver.
fn outcome(error: &KafkaError) -> Outcome {
    let code = error.rdkafka_error_code();
    let message = format!("Kafka refused the message: {error}");
    match code {
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::PolicyViolation,
        ) => Outcome::Rejected(Arc::new(Error::new(ErrorKind::Rejected, message))),
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::Authentication,
        ) => Outcome::Rejected(Arc::new(Error::new(
            ErrorKind::Unauthorized,
            format!("{message} (check user, password, mechanism and the topic's ACLs)"),
        ))),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => Outcome::Retry(Arc::new(
            Error::new(ErrorKind::Unavailable, format!("{message} (create the topic; eventer does not)")),
        )),
        _ => Outcome::Retry(Arc::new(Error::new(ErrorKind::Unavailable, message))),
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn start(&mut self) -> Result<()> {
        let producer = self.producer.clone();
        let topic = self.config.topic.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), WAIT)
                .map(|m| m.topics().first().map(|t| t.error().is_none() && !t.partitions().is_empty()))
        })
        .await;
        if self.refused.load(Ordering::Relaxed) {
            return Err(Error::config(format!(
                "kafka: the brokers refused user {} with {}: check user, password and mechanism",
                self.config.user.as_deref().unwrap_or_default(),
                self.config.mechanism.as_str()
            )));
        }
        match metadata {
            Ok(Ok(Some(true))) => {}
            Ok(Ok(_)) => warn!(
                topic = self.config.topic,
                "The Kafka topic does not exist (or has no partitions): events wait until it is created."
            ),
            Ok(Err(e)) => warn!(error = %e, "Kafka's brokers do not answer yet: events wait until they do."),
            Err(e) => warn!(error = %e, "Cannot ask Kafka's brokers for the topic."),
        }
        Ok(())
    }

    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        let mut value = String::new();
        let mut reports = Vec::with_capacity(batch.len());
        for event in batch {
            value.clear();
            self.encoder.value(event, &mut value);
            let key = self.encoder.key(event);
            let id = Encoder::id(event);
            let headers = OwnedHeaders::new().insert(Header { key: "eventer-event-id", value: Some(&id) });
            let mut record = FutureRecord::to(&self.config.topic).payload(&value).headers(headers);
            if let Some(key) = &key {
                record = record.key(key);
            }
            if let Some(at) = event.last_seen() {
                record = record.timestamp(at.as_millisecond());
            }
            // librdkafka copies the message; a full queue is back-pressure: wait for room.
            let report = loop {
                match self.producer.send_result(record) {
                    Ok(report) => break Ok(report),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((e, _)) => break Err(e),
                }
            };
            reports.push(report);
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for report in reports {
            let result = match report {
                Ok(report) => match report.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(e),
                    Err(_) => Err(KafkaError::Canceled),
                },
                Err(e) => Err(e),
            };
            outcomes.push(match result {
                Ok(()) => Outcome::Delivered,
                Err(e) => outcome(&e),
            });
        }
        if outcomes.iter().any(|o| !matches!(o, Outcome::Delivered)) {
            self.renew_if_fatal();
        }
        outcomes
    }

    fn batching(&self) -> Batching {
        Batching::new(self.config.max_batch_events, self.config.batch_window.unwrap_or(Duration::from_secs(1)))
    }

    fn preview(&mut self, batch: &[SharedEvent]) -> Option<Vec<String>> {
        Some(
            batch
                .iter()
                .map(|event| {
                    let mut value = String::new();
                    self.encoder.value(event, &mut value);
                    let key = self.encoder.key(event).unwrap_or_default();
                    format!("{} key={key} {value}", self.config.topic)
                })
                .collect(),
        )
    }

    async fn close(&mut self) -> Result<()> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(WAIT))
            .await
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("flushing the Kafka producer: {e}")))?
            .map_err(|e| Error::new(ErrorKind::Unavailable, format!("flushing the Kafka producer: {e}")))
    }
}

/// Builds [`KafkaSink`]s from kube-eventer's `kafka:` URIs.
#[derive(Debug, Clone, Copy, Default)]
pub struct KafkaFactory;

impl SinkFactory for KafkaFactory {
    fn options(&self) -> Vec<&'static str> {
        KafkaConfig::option_names()
    }

    fn build(&self, target: &str, options: &mut Options, cx: &BuildContext) -> Result<BoxSink> {
        if !target.is_empty() {
            return Err(Error::config(format!(
                "kafka: name the brokers as options, kafka:?brokers={target}, not before the `?`"
            )));
        }
        let mut config = KafkaConfig::from_options(options)?;
        if config.batch_window.is_none() {
            config.batch_window = cx.frequency;
        }
        Ok(Box::new(KafkaSink::new(config)?))
    }
}

/// Register the `kafka` scheme.
///
/// ```
/// let mut registry = eventer_core::Registry::new();
/// eventer_sink_kafka::register(&mut registry);
/// assert_eq!(registry.sink_schemes(), ["kafka"]);
/// ```
pub fn register(registry: &mut Registry) {
    registry.register_sink(SCHEME, Arc::new(KafkaFactory));
}
