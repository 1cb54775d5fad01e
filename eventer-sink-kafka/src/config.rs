//! [`KafkaConfig`]: the sink's settings, from kube-eventer's URI or a config file.

use std::time::Duration;

use eventer_core::{Error, Result, config::Secret, uri::Options};
use serde::Deserialize;

/// kube-eventer's default topic.
pub const DEFAULT_TOPIC: &str = "heapster-events";

/// Settings of the Kafka sink, with kube-eventer's option names.
///
/// ```
/// let uri: eventer_core::uri::ComponentUri =
///     "kafka:?brokers=10.0.0.1:9092&brokers=10.0.0.2:9092&eventstopic=k8s&compression=lz4".parse()?;
/// let config = eventer_sink_kafka::KafkaConfig::from_options(&mut uri.options())?;
/// assert_eq!(config.brokers.len(), 2);
/// assert_eq!(config.topic, "k8s");
/// # Ok::<(), eventer_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port` (`brokers=`, repeatable).
    #[serde(default)]
    pub brokers: Vec<String>,
    /// The topic. Default `heapster-events`, kube-eventer's.
    #[serde(default = "default_topic", rename = "eventstopic")]
    pub topic: String,
    /// Compression of record batches.
    #[serde(default)]
    pub compression: Compression,
    /// The message value: kube-eventer's envelope or the Event's own JSON.
    #[serde(default)]
    pub format: Format,
    /// What a message's key is, and so which partition it lands on.
    #[serde(default)]
    pub partition_by: PartitionBy,
    /// SASL user; SASL is on when it is given.
    #[serde(default)]
    pub user: Option<String>,
    /// SASL password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// SASL mechanism. Default `PLAIN`, as kube-eventer's.
    #[serde(default)]
    pub mechanism: Mechanism,
    /// TLS with the system's roots even without `cacert` (managed Kafka on a public CA).
    #[serde(default)]
    pub tls: bool,
    /// PEM file of the CA that signed the brokers' certificates; turns TLS on.
    #[serde(default)]
    pub cacert: Option<String>,
    /// PEM client certificate (with `key`); turns TLS on.
    #[serde(default)]
    pub cert: Option<String>,
    /// PEM private key of `cert`.
    #[serde(default)]
    pub key: Option<String>,
    /// Skip the verification of the brokers' certificates and names.
    #[serde(default)]
    pub insecuressl: bool,
    /// How long the producer keeps trying to deliver a message before the pipeline retries
    /// it. Default 0: the producer never gives up, so a message is never sent twice (a
    /// retry after a timeout cannot tell whether the broker already has it).
    #[serde(default, with = "eventer_core::duration")]
    pub timeout: Duration,
    /// Most events per batch handed to the producer. Default 1000.
    #[serde(default = "default_max_batch_events", rename = "maxBatchEvents")]
    pub max_batch_events: usize,
    /// How long a batch waits for more events. Default: `--frequency`, else 1s.
    #[serde(default, rename = "batchWindow", with = "eventer_core::duration::option")]
    pub batch_window: Option<Duration>,
}

/// Compression of record batches (`compression=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Compression {
    /// None, kube-eventer's default.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard (Kafka 2.1 and later).
    Zstd,
}

/// The message value (`format=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Format {
    /// kube-eventer's `{"EventValue": "<the Event as indented JSON>", "EventTimestamp",
    /// "EventTags"}`, byte for byte.
    #[default]
    #[serde(rename = "kube-eventer")]
    KubeEventer,
    /// The Event object as the apiserver sent it.
    Event,
}

/// The message key (`partition_by=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PartitionBy {
    /// The involved object's uid: one object's events stay in order on one partition.
    #[default]
    Object,
    /// The Event's uid: one Event's updates stay in order; spreads a busy object wider.
    Event,
    /// No key: the producer spreads messages over partitions, as kube-eventer did.
    None,
}

/// The SASL mechanism (`mechanism=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub enum Mechanism {
    /// The password in clear (over TLS, please); kube-eventer's only one.
    #[default]
    #[serde(rename = "PLAIN")]
    Plain,
    /// SCRAM with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl Compression {
    /// librdkafka's name of the codec.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl Mechanism {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

fn default_topic() -> String {
    DEFAULT_TOPIC.to_owned()
}
fn default_max_batch_events() -> usize {
    1000
}

impl KafkaConfig {
    /// The option names [`KafkaConfig::from_options`] reads.
    pub fn option_names() -> Vec<&'static str> {
        eventer_core::config::names::<KafkaConfig>().to_vec()
    }

    /// Read kube-eventer's URI, `kafka:?brokers=h:p&eventstopic=…`, or a config file's
    /// options, and check them.
    ///
    /// # Errors
    /// A configuration error naming the option.
    pub fn from_options(options: &mut Options) -> Result<Self> {
        let config: KafkaConfig = options.take()?;
        config.validate()?;
        Ok(config)
    }

    /// Check what serde cannot.
    ///
    /// # Errors
    /// A configuration error naming the option.
    pub fn validate(&self) -> Result<()> {
        let bad = |option: &str, problem: String| Err(Error::config(format!("option {option}: {problem}")));
        if self.brokers.is_empty() {
            return bad("brokers", "give at least one broker: kafka:?brokers=host:9092".into());
        }
        for broker in &self.brokers {
            let port = broker.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
            if !matches!(port, Some((host, Ok(p))) if !host.is_empty() && p > 0 && !host.contains('/')) {
                return bad("brokers", format!("`{broker}` is not host:port"));
            }
        }
        // Kafka's own rule for topic names.
        if self.topic.is_empty()
            || self.topic.len() > 249
            || matches!(self.topic.as_str(), "." | "..")
            || !self.topic.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return bad("eventstopic", format!("`{}` is no valid topic name (letters, digits, . _ -)", self.topic));
        }
        if self.user.is_some() != self.password.is_some() {
            return bad("user", "user and password go together".into());
        }
        if self.cert.is_some() != self.key.is_some() {
            return bad("cert", "cert and key go together".into());
        }
        if self.max_batch_events == 0 {
            return bad("maxBatchEvents", "must be at least 1".into());
        }
        Ok(())
    }

    /// Whether the connection is TLS.
    pub(crate) fn uses_tls(&self) -> bool {
        self.tls || self.cacert.is_some() || self.cert.is_some()
    }

    /// librdkafka's producer settings: an idempotent producer (acks from all in-sync
    /// replicas, retried sends written once, order kept per partition).
    pub(crate) fn client_config(&self) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", self.brokers.join(","))
            .set("client.id", "eventer")
            .set("enable.idempotence", "true")
            .set("compression.codec", self.compression.as_str())
            .set("message.timeout.ms", self.timeout.as_millis().to_string())
            .set("linger.ms", "5");
        let sasl = self.user.is_some();
        let protocol = match (sasl, self.uses_tls()) {
            (false, false) => "plaintext",
            (false, true) => "ssl",
            (true, false) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        c.set("security.protocol", protocol);
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            c.set("sasl.mechanism", self.mechanism.as_str())
                .set("sasl.username", user)
                .set("sasl.password", password.expose());
        }
        for (option, path) in [
            ("ssl.ca.location", &self.cacert),
            ("ssl.certificate.location", &self.cert),
            ("ssl.key.location", &self.key),
        ] {
            if let Some(path) = path {
                c.set(option, path);
            }
        }
        if self.insecuressl {
            c.set("enable.ssl.certificate.verification", "false").set("ssl.endpoint.identification.algorithm", "none");
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use eventer_core::uri::ComponentUri;

    use super::*;

    fn parse(uri: &str) -> Result<KafkaConfig> {
        let uri: ComponentUri = uri.parse()?;
        let mut options = uri.options();
        let config = KafkaConfig::from_options(&mut options)?;
        options.finish()?;
        Ok(config)
    }

    #[test]
    fn kube_eventer_uris() {
        let c = parse("kafka:?brokers=10.0.0.1:9092&brokers=kafka-2:9093&compression=gzip").unwrap();
        assert_eq!(c.brokers, ["10.0.0.1:9092", "kafka-2:9093"]);
        assert_eq!(
            (c.topic.as_str(), c.compression, c.format),
            ("heapster-events", Compression::Gzip, Format::KubeEventer)
        );
        let rd = c.client_config();
        assert_eq!(rd.get("bootstrap.servers"), Some("10.0.0.1:9092,kafka-2:9093"));
        assert_eq!(rd.get("enable.idempotence"), Some("true"));
        assert_eq!(rd.get("security.protocol"), Some("plaintext"));
        assert_eq!(rd.get("message.timeout.ms"), Some("0"), "the producer never gives a message up");

        let c = parse(
            "kafka:?brokers=b:9093&eventstopic=events&user=u&password=pw&cacert=/ca.pem&cert=/c.pem&key=/k.pem\
             &insecuressl=true&mechanism=SCRAM-SHA-512&compression=zstd&format=event&partition_by=none&timeout=1m",
        )
        .unwrap();
        let rd = c.client_config();
        assert_eq!(rd.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(rd.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!((rd.get("sasl.username"), rd.get("sasl.password")), (Some("u"), Some("pw")));
        assert_eq!(rd.get("ssl.ca.location"), Some("/ca.pem"));
        assert_eq!(rd.get("enable.ssl.certificate.verification"), Some("false"));
        assert_eq!(rd.get("compression.codec"), Some("zstd"));
        assert_eq!(rd.get("message.timeout.ms"), Some("60000"));
        assert_eq!((c.format, c.partition_by), (Format::Event, PartitionBy::None));
        assert!(!format!("{c:?}").contains("\"pw\""), "the password never shows: {c:?}");

        let rd = parse("kafka:?brokers=b:9092&user=u&password=pw").unwrap().client_config();
        assert_eq!((rd.get("security.protocol"), rd.get("sasl.mechanism")), (Some("sasl_plaintext"), Some("PLAIN")));
        let c = parse("kafka:?brokers=b:9092&timeout=0").unwrap();
        assert_eq!(c.client_config().get("message.timeout.ms"), Some("0"));
        let rd = parse("kafka:?brokers=b:9093&tls=true").unwrap().client_config();
        assert_eq!(rd.get("security.protocol"), Some("ssl"));
    }

    #[test]
    fn bad_input_is_named() {
        let err = |uri: &str| parse(uri).unwrap_err().to_string();
        assert!(err("kafka:").starts_with("option brokers: give at least one broker"));
        assert_eq!(err("kafka:?brokers=http://b:9092"), "option brokers: `http://b:9092` is not host:port");
        assert_eq!(err("kafka:?brokers=b"), "option brokers: `b` is not host:port");
        assert!(err("kafka:?brokers=b:1&eventstopic=a/b").starts_with("option eventstopic: `a/b` is no valid topic"));
        assert_eq!(err("kafka:?brokers=b:1&user=u"), "option user: user and password go together");
        assert_eq!(err("kafka:?brokers=b:1&cert=/c.pem"), "option cert: cert and key go together");
        assert!(err("kafka:?brokers=b:1&compression=brotli").starts_with("option compression:"));
        assert!(err("kafka:?brokers=b:1&mechanism=GSSAPI").starts_with("option mechanism:"));
        assert!(err("kafka:?brokers=b:1&colour=red").starts_with("unknown option colour for kafka"));
        let e = err("kafka:?brokers=b:1&passwd=hunter2");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
