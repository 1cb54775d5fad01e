//! Kafka sink for eventer: kube-eventer's `kafka:` URIs and messages, written through
//! librdkafka's idempotent producer so that each event is in the topic once.
//!
//! ```
//! use eventer_core::{Sink, testing::sample_events};
//! use eventer_sink_kafka::{KafkaConfig, KafkaSink};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let uri: eventer_core::uri::ComponentUri = "kafka:?brokers=127.0.0.1:9&eventstopic=k8s-events".parse()?;
//! // The producer connects in the background: building the sink performs no I/O.
//! let mut sink = KafkaSink::new(KafkaConfig::from_options(&mut uri.options())?)?;
//! let events: Vec<_> = sample_events().into_iter().map(std::sync::Arc::new).collect();
//! // What `send` would write: the topic, the key (the involved object) and kube-eventer's value.
//! let messages = sink.preview(&events).unwrap();
//! assert!(messages[0].starts_with("k8s-events key="));
//! assert!(messages[0].contains(r#"{"EventValue":"{\n \"#));
//! # Ok::<(), eventer_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Options
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `brokers` | | bootstrap brokers, `host:port`, repeatable |
//! | `eventstopic` | `heapster-events` | the topic (eventer does not create it) |
//! | `compression` | `none` | `none`, `gzip`, `snappy`, `lz4`, `zstd` |
//! | `format` | `kube-eventer` | `kube-eventer`'s envelope, or `event`: the Event's JSON |
//! | `partition_by` | `object` | the key: `object` (involved object's uid), `event` (the Event's uid), `none` |
//! | `user`, `password` | | SASL credentials |
//! | `mechanism` | `PLAIN` | `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` |
//! | `tls` | `false` | TLS with the system's roots |
//! | `cacert`, `cert`, `key` | | PEM files: the brokers' CA, a client certificate and its key (TLS on) |
//! | `insecuressl` | `false` | do not verify the brokers' certificates |
//! | `timeout` | `0` (never) | how long the producer tries before the pipeline retries |
//! | `maxBatchEvents`, `batchWindow` | `1000`, `--frequency` else 1s | events per hand-off to the producer |
//!
//! # Why librdkafka
//!
//! The sink needs an idempotent producer (retries written once, order kept), SASL PLAIN and
//! SCRAM, TLS with client certificates, and the five codecs. librdkafka (through `rdkafka`,
//! as Vector uses it) has all of them, proven on every Kafka and on Kafka-compatible
//! services. The pure-Rust clients available now lack an idempotent producer (`rskafka`)
//! or are too young to bet an archive on. The cost is a C build of a few minutes:
//! librdkafka from its bundled sources with `make` (no cmake), and OpenSSL from source,
//! linked statically like zlib and zstd, so the binary still needs nothing but glibc.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod message;
mod sink;
#[cfg(feature = "test-util")]
pub mod testing;

pub use config::{Compression, DEFAULT_TOPIC, Format, KafkaConfig, Mechanism, PartitionBy};
pub use sink::{KafkaFactory, KafkaSink, SCHEME, register};

#[doc(hidden)]
pub mod bench {
    //! The encoder, for the `encode` benchmark.
    use eventer_core::Event;

    use crate::{Format, PartitionBy, message::Encoder};

    /// Encode `events` as message values and keys, in `format`.
    pub fn encode(format: Format, events: &[Event], out: &mut String) -> usize {
        let encoder = Encoder { format, key: PartitionBy::Object };
        let mut keys = 0;
        for event in events {
            out.clear();
            encoder.value(event, out);
            keys += encoder.key(event).map_or(0, |k| k.len());
        }
        keys
    }
}
