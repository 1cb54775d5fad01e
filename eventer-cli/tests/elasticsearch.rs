//! The `eventer` binary with the Elasticsearch sink against the stand-in server (and the
//! fake apiserver as the source): every event stored once, whatever the server answers.
#![cfg(all(feature = "sink-elasticsearch", feature = "source-k8s"))]

use std::{collections::HashSet, time::Duration};

mod common;

use common::{Eventer, metric, poll};
use eventer_fake_apiserver::{FakeApiServer, NewEvent};
use eventer_fake_elasticsearch::{Document, FakeElasticsearch};

const PASSWORD: &str = "es-SECRET-pw";

fn spawn(api: &FakeApiServer, es: &FakeElasticsearch, extra: &str) -> Eventer {
    let source = format!("kubernetes:{}?inClusterConfig=false&startFrom=all", api.url());
    let sink = format!(
        "--sink=elasticsearch:?nodes={}&index=k8s&use_namespace=true&cluster_name=prod&esUserName=elastic\
         &esUserSecret={PASSWORD}{extra}",
        es.url()
    );
    Eventer::spawn(&source, &[&sink, "--frequency=200ms"])
}

/// Each event's document, checking that each was written once.
fn one_each(docs: &[Document], n: usize) {
    let names: HashSet<&str> = docs.iter().map(|d| d.source["Metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), docs.len(), "an event has two documents");
    assert!((0..n).all(|i| names.iter().any(|name| name.starts_with(&format!("bulk-{i:07}.")))), "one per event");
}

#[tokio::test]
async fn kubernetes_events_are_indexed_exactly_once_as_kube_eventer_writes_them() {
    let api = FakeApiServer::start().await.unwrap();
    api.bulk_load_events("shop", 3000);
    let es = FakeElasticsearch::builder().basic_auth("elastic", PASSWORD).start().await;
    let eventer = spawn(&api, &es, "");
    assert_eq!(es.wait_for_documents(3000, Duration::from_secs(60)).await, 3000);
    let (_, log) = eventer.stop().await;

    let docs = es.documents();
    assert_eq!(docs.len(), 3000, "nothing more after a drained shutdown");
    one_each(&docs, 3000);
    assert!(docs.iter().all(|d| d.version == 1), "no document written twice");
    for d in &docs {
        assert!(d.index.starts_with("k8s-shop-") && d.index.len() == "k8s-shop-2026.12.01".len(), "{}", d.index);
        assert_eq!(d.id, format!("{}-1", d.source["Metadata"]["uid"].as_str().unwrap()));
        assert_eq!(d.source["EventTags"]["cluster_name"], "prod");
        assert_eq!(d.source["InvolvedObject"]["kind"], "Pod");
        assert_eq!(d.source["Type"], "Normal");
    }
    let indices = es.indices();
    assert!(indices.values().all(|aliases| aliases.contains("k8s-events")), "{indices:?}");
    assert!(!log.contains(PASSWORD), "{log}");
}

#[tokio::test]
async fn overload_lost_answers_and_rejected_items_lose_nothing_and_double_nothing() {
    let api = FakeApiServer::start().await.unwrap();
    api.bulk_load_events("shop", 3000);
    let es = FakeElasticsearch::builder().basic_auth("elastic", PASSWORD).start().await;
    es.fail_requests(&[503, 503]);
    es.lose_answers(2);
    es.reject_items(100);
    let mut eventer = spawn(&api, &es, "&maxBatchEvents=500");
    assert_eq!(es.wait_for_documents(3000, Duration::from_secs(120)).await, 3000);
    // Two batches failed whole twice each (503, then 504), and 100 items once (429).
    let addr = eventer.server_addr().await;
    poll(&addr, "/metrics", |_, m| metric(m, "eventer_sink_events_retried_total{sink=\"elasticsearch\"}") == 2100)
        .await;
    let (_, log) = eventer.stop().await;

    let docs = es.documents();
    assert_eq!(docs.len(), 3000);
    one_each(&docs, 3000);
    // Requests stored but answered 504 were sent again: their documents were overwritten,
    // not copied.
    assert!(docs.iter().any(|d| d.version == 2), "the lost answers' documents were rewritten");
    assert!(docs.iter().all(|d| d.version <= 2));
    assert!(log.contains("HTTP 503") && log.contains("HTTP 504"), "retries are logged:\n{log}");
    assert!(log.contains("es_rejected_execution_exception"), "item retries are logged:\n{log}");
}

#[tokio::test]
async fn documents_the_index_refuses_are_rejected_and_counted_the_others_stored() {
    let api = FakeApiServer::start().await.unwrap();
    api.bulk_load_events("shop", 50);
    api.create_event(NewEvent::new("shop", "web-0").reason("BadMapping").warning());
    let es = FakeElasticsearch::builder().basic_auth("elastic", PASSWORD).start().await;
    es.refuse_reason("BadMapping");
    let mut eventer = spawn(&api, &es, "");
    let addr = eventer.server_addr().await;
    poll(&addr, "/metrics", |_, m| metric(m, "eventer_sink_events_failed_total{sink=\"elasticsearch\"}") == 1).await;
    assert_eq!(es.wait_for_documents(50, Duration::from_secs(30)).await, 50);
    let (_, log) = eventer.stop().await;
    assert!(es.documents().iter().all(|d| d.source["Reason"] == "Pulled"));
    assert!(log.contains("mapper_parsing_exception"), "the reason is logged:\n{log}");
}
