//! The `eventer` binary with the Kafka sink against a real Kafka-protocol broker (`tansu`)
//! and the fake apiserver as the source: every event in the topic once, across a broker
//! restart.
#![cfg(all(feature = "sink-kafka", feature = "source-k8s"))]

use std::{collections::HashSet, time::Duration};

mod common;

use common::Eventer;
use eventer_fake_apiserver::{FakeApiServer, SteadyLoad};
use eventer_sink_kafka::testing::{Broker, Message};

const PASSWORD: &str = "kafka-SECRET-pw";

fn spawn(api: &FakeApiServer, broker: &Broker, extra: &str) -> Eventer {
    let source = format!("kubernetes:{}?inClusterConfig=false&startFrom=all", api.url());
    let sink = format!("--sink=kafka:?brokers={}&eventstopic=k8s-events{extra}", broker.address());
    Eventer::spawn(&source, &[&sink, "--frequency=200ms"])
}

/// The messages' event ids, checking that no event was written twice.
fn once_each(messages: &[Message], n: usize) -> HashSet<String> {
    let ids: HashSet<String> = messages
        .iter()
        .map(|m| m.headers.iter().find(|h| h.0 == "eventer-event-id").expect("the id header").1.clone())
        .collect();
    assert_eq!(messages.len(), ids.len(), "an event was written twice");
    assert_eq!(ids.len(), n, "events are missing");
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_events_reach_the_topic_once_each_as_kube_eventer_writes_them() {
    let api = FakeApiServer::start().await.unwrap();
    api.bulk_load_events("shop", 3000);
    let broker = Broker::start();
    broker.create_topic("k8s-events", 3);
    let eventer = spawn(&api, &broker, "&compression=lz4");
    let messages = broker.consume("k8s-events", 3000, Duration::from_secs(30));
    let (_, log) = eventer.stop().await;

    once_each(&messages, 3000);
    for m in &messages {
        let value: serde_json::Value = serde_json::from_str(&m.value).unwrap();
        let event: serde_json::Value = serde_json::from_str(value["EventValue"].as_str().unwrap()).unwrap();
        assert_eq!(value["EventTags"]["eventID"], event["metadata"]["uid"]);
        assert_eq!(value["EventTags"]["pod_name"], event["involvedObject"]["name"]);
        assert!(event["metadata"]["name"].as_str().unwrap().starts_with("bulk-"));
        assert_eq!(m.key.as_deref(), event["involvedObject"]["uid"].as_str());
    }
    assert!(log.contains("kafka"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing_and_doubles_nothing() {
    let api = FakeApiServer::start().await.unwrap();
    let mut broker = Broker::start();
    broker.create_topic("k8s-events", 3);
    let eventer = spawn(&api, &broker, "&maxBatchEvents=100");
    let load = api.create_steadily("shop", SteadyLoad { total: 3000, per_second: 400, nodes: 20 });
    // Stop the broker once part of the stream is in, while the rest keeps coming.
    assert!(broker.consume("k8s-events", 600, Duration::from_secs(30)).len() >= 600);
    broker.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.restart();
    load.await.unwrap();
    let messages = broker.consume("k8s-events", 3000, Duration::from_secs(30));
    let (_, log) = eventer.stop().await;
    once_each(&messages, 3000);
    assert_eq!(broker.consume("k8s-events", 3001, Duration::from_secs(2)).len(), 3000, "nothing after the drain");
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_credentials_reach_the_broker_and_never_the_log() {
    let api = FakeApiServer::start().await.unwrap();
    api.bulk_load_events("shop", 100);
    let mut broker = Broker::start();
    broker.create_topic("k8s-events", 1);
    broker.create_user("eventer", PASSWORD);
    broker.set_authentication(true);
    broker.restart();
    let mut eventer =
        spawn(&api, &broker, &format!("&user=eventer&password={PASSWORD}&mechanism=SCRAM-SHA-512&format=event"));
    let mut messages = Vec::new();
    // The consumer cannot log in; the broker's store is read after turning logins off.
    let addr = eventer.server_addr().await;
    common::poll(&addr, "/metrics", |_, m| {
        common::metric(m, "eventer_sink_events_delivered_total{sink=\"kafka\"}") == 100
    })
    .await;
    let (_, log) = eventer.stop().await;
    assert!(!log.contains(PASSWORD), "{log}");

    // A wrong password stops eventer at start, with the configuration error's exit code.
    let wrong = tokio::process::Command::new(common::eventer_bin())
        .args([
            &format!("--source=kubernetes:{}?inClusterConfig=false", api.url()),
            &format!(
                "--sink=kafka:?brokers={}&eventstopic=k8s-events&user=eventer&password=WRONG-pw&mechanism=SCRAM-SHA-512",
                broker.address()
            ),
            "--healthz-ip=127.0.0.1",
            "--healthz-port=0",
        ])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), wrong).await.expect("eventer stops").unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the brokers refused user eventer") && !err.contains("WRONG-pw"), "{err}");

    broker.set_authentication(false);
    broker.restart();
    messages.extend(broker.consume("k8s-events", 100, Duration::from_secs(10)));
    once_each(&messages, 100);
    let event: serde_json::Value = serde_json::from_str(&messages[0].value).unwrap();
    assert_eq!(event["kind"], "Event", "format=event writes the Event itself");
}

#[tokio::test]
async fn preview_and_check_name_bad_options() {
    let run = |args: &[&str]| {
        std::process::Command::new(common::eventer_bin())
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .args(args)
            .output()
            .unwrap()
    };
    // A closed port: a preview that tried to send would fail.
    let out = run(&[
        "preview",
        "--source=file:examples/events.json",
        "--sink=kafka:?brokers=127.0.0.1:1&eventstopic=k8s&password=HIDDEN&user=u&level=Warning",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("k8s key=") && text.contains("EventValue") && !text.contains("HIDDEN"), "{text}");
    assert!(text.contains("BackOff") && !text.contains("\\\"reason\\\": \\\"Scheduled\\\""), "{text}");

    let out = run(&["check", "--source=file:examples/events.json", "--sink=kafka:?brokers=b&password=HIDDEN&user=u"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("option brokers: `b` is not host:port") && !err.contains("HIDDEN"), "{err}");
}
