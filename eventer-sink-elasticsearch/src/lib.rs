//! Elasticsearch and OpenSearch sink for eventer: kube-eventer's `elasticsearch:` URIs,
//! documents and daily indices, written through the `_bulk` API so that each occurrence
//! of an event is stored once, however often a request is retried.
//!
//! ```
//! use eventer_core::{Outcome, Sink, testing::sample_events};
//! use eventer_sink_elasticsearch::{ElasticsearchSink, EsConfig};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let es = eventer_fake_elasticsearch::FakeElasticsearch::builder().start().await;
//! let uri: eventer_core::uri::ComponentUri = format!("elasticsearch:{}?index=k8s", es.url()).parse()?;
//! let mut sink = ElasticsearchSink::new(EsConfig::from_options(uri.target(), &mut uri.options())?)?;
//! let events: Vec<_> = sample_events().into_iter().map(std::sync::Arc::new).collect();
//! // Sent twice, as after a timeout: the second overwrites the first.
//! for _ in 0..2 {
//!     assert!(sink.send(&events).await.iter().all(|o| matches!(o, Outcome::Delivered)));
//! }
//! assert_eq!(es.documents().len(), events.len());
//! assert!(es.indices().values().all(|aliases| aliases.contains("k8s-events")));
//! # Ok::<(), eventer_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Options
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `nodes` | the URI's target | the cluster's URLs, repeatable |
//! | `index` | `heapster` | base index: `<index>[-<namespace>]-YYYY.MM.DD` |
//! | `use_namespace` | `false` | a namespace's events in indices of their own |
//! | `ver` | `7` | the server's major version; 5 and 6 get kube-eventer's mapping type `events` |
//! | `esUserName`, `esUserSecret` | | basic authentication |
//! | `apiKey` | | `Authorization: ApiKey <key>` |
//! | `pipeline` | | an ingest pipeline |
//! | `cluster_name` | `default` | `EventTags.cluster_name` |
//! | `create_index` | `true` | create each day's index with the alias `<index>-events` |
//! | `maxBatchEvents`, `maxBatchBytes` | `1000`, 5 MiB | per bulk request |
//! | `batchWindow` | `--frequency`, else 1s | how long a batch waits for more events |
//! | `timeout` | `30s` | per request |
//!
//! kube-eventer's client tuning (`maxRetries`, `healthCheck`, `sniff`,
//! `startupHealthcheckTimeout`, `bulkWorkers`) is accepted and unused.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod document;
mod sink;

pub use config::{DEFAULT_INDEX, EsConfig};
pub use sink::{ElasticsearchFactory, ElasticsearchSink, OPENSEARCH_SCHEME, SCHEME, register};

#[doc(hidden)]
pub mod bench {
    //! The encoder, for the `encode` benchmark.
    use eventer_core::Event;

    /// Encode `events` as bulk lines.
    pub fn encode(config: &crate::EsConfig, events: &[Event], out: &mut String) {
        let encoder = crate::document::Encoder::new(config);
        for event in events {
            let index = encoder.index_of(event);
            encoder.encode(event, &index, out);
        }
    }
}
