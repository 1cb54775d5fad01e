//! The `eventer` binary against an apiserver that misbehaves: requests never answered,
//! watches gone silent, checkpoints from elsewhere, lists failing halfway, versions that
//! are not etcd revisions, throttling and endless lines. Nothing may stall unseen, and
//! nothing may be lost or sent twice.
#![cfg(feature = "source-k8s")]

use std::{collections::HashMap, path::Path, time::Instant};

mod common;

use common::{Eventer, metric, poll};
use eventer_fake_apiserver::{FakeApiServer, NewEvent, WatchBehaviour};
use serde_json::Value;

fn source(api: &FakeApiServer, options: &str) -> String {
    format!("kubernetes:{}?inClusterConfig=false&{options}", api.url())
}

fn names(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["name"].as_str().unwrap()).collect()
}

/// A watch line for an Event that the fake does not hold, with the given resourceVersion.
fn raw_event(name: &str, rv: &str) -> String {
    let object = serde_json::json!({
        "kind": "Event", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "resourceVersion": rv},
        "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web"},
        "reason": "Injected", "message": "m", "type": "Warning", "count": 1,
        "lastTimestamp": "2026-01-01T00:00:00Z",
    });
    format!("{}\n", serde_json::json!({"type": "ADDED", "object": object}))
}

fn checkpoint_position(path: &Path) -> Value {
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::from_str(file["position"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_watch_never_answered_or_gone_silent_is_reported_and_retried() {
    let api = FakeApiServer::start().await.unwrap();
    let uri = source(&api, "requestTimeout=1s&watchIdleTimeout=2s");
    let mut eventer = Eventer::spawn(&uri, &["--sink=stdout?format=json"]);
    let addr = eventer.server_addr().await;
    api.wait_for_watchers(1).await;
    poll(&addr, "/readyz", |status, _| status == 200).await;

    // The apiserver reads the next watch request and never answers it.
    api.set_watch_behaviour(WatchBehaviour::Hang);
    api.drop_watches();
    api.create_event(NewEvent::new("shop", "web").name("during-hang"));
    poll(&addr, "/readyz", |status, body| {
        status == 503 && body.contains("not ready source: retrying: the apiserver sent no response to the watch")
    })
    .await;
    poll(&addr, "/metrics", |_, m| metric(m, "eventer_source_stalls_total") > 0).await;
    eventer.wait_log("the stall", |l| l.contains("WARN") && l.contains("stalled")).await;
    api.set_watch_behaviour(WatchBehaviour::Normal);
    assert_eq!(names(&eventer.events(1).await), ["during-hang"]);
    poll(&addr, "/readyz", |status, _| status == 200).await;

    // Headers, then nothing: not even the bookmarks a real apiserver sends every minute.
    api.set_watch_behaviour(WatchBehaviour::Silent);
    api.drop_watches();
    api.create_event(NewEvent::new("shop", "web").name("during-silence"));
    poll(&addr, "/readyz", |status, body| status == 503 && body.contains("sent nothing for 2s")).await;
    api.set_watch_behaviour(WatchBehaviour::Normal);
    assert_eq!(names(&eventer.events(1).await), ["during-silence"]);
    poll(&addr, "/readyz", |status, _| status == 200).await;
    let (rest, _) = eventer.stop().await;
    assert!(rest.is_empty(), "nothing twice: {rest:?}");
}

#[tokio::test]
async fn a_checkpoint_from_another_cluster_or_other_namespaces_is_reported_and_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cp.json");
    let checkpoint = format!("--checkpoint=file:{}", file.display());
    let args = ["--sink=stdout?format=json", checkpoint.as_str()];

    // Cluster A is far ahead of cluster B in resourceVersions.
    let a = FakeApiServer::start().await.unwrap();
    a.bulk_load_events("shop", 50);
    a.create_event(NewEvent::new("shop", "web").name("in-a"));
    let mut eventer = Eventer::spawn(&source(&a, "startFrom=all"), &args);
    assert_eq!(eventer.events(51).await.len(), 51);
    eventer.stop().await;
    assert_eq!(checkpoint_position(&file)["cluster"], a.cluster_uid(), "the cluster is saved with the position");

    let b = FakeApiServer::start().await.unwrap();
    for i in 0..3 {
        b.create_event(NewEvent::new("shop", "web").name(&format!("in-b-{i}")));
    }
    let mut eventer = Eventer::spawn(&source(&b, "startFrom=all"), &args);
    let addr = eventer.server_addr().await;
    assert_eq!(names(&eventer.events(3).await), ["in-b-0", "in-b-1", "in-b-2"]);
    eventer.wait_log("the mismatch", |l| l.contains("ERROR") && l.contains("saved in another cluster")).await;
    poll(&addr, "/metrics", |_, m| metric(m, "eventer_source_checkpoint_mismatches_total") == 1).await;
    eventer.stop().await;
    assert_eq!(checkpoint_position(&file)["cluster"], b.cluster_uid());

    // A position ahead of the cluster without an identity (RBAC may forbid reading it).
    let future = r#"{"v":1,"ns":{"":{"rv":"999999"}}}"#;
    std::fs::write(&file, serde_json::json!({"position": future, "saved_at": "2026-01-01T00:00:00Z"}).to_string())
        .unwrap();
    b.create_event(NewEvent::new("shop", "web").name("after-future"));
    let mut eventer = Eventer::spawn(&source(&b, "startFrom=all"), &args);
    let mut got = names(&eventer.events(4).await).into_iter().map(str::to_owned).collect::<Vec<_>>();
    got.sort_unstable();
    assert_eq!(got, ["after-future", "in-b-0", "in-b-1", "in-b-2"], "startFrom=all, as configured");
    eventer.wait_log("the mismatch", |l| l.contains("ERROR") && l.contains("ahead of the cluster")).await;
    eventer.stop().await;

    // Saved for namespace shop; now watching shop and ops: ops starts as configured.
    let ns_file = dir.path().join("ns.json");
    let ns_checkpoint = format!("--checkpoint=file:{}", ns_file.display());
    let ns_args = ["--sink=stdout?format=json", ns_checkpoint.as_str()];
    let mut eventer = Eventer::spawn(&source(&b, "namespaces=shop&startFrom=all"), &ns_args);
    assert_eq!(eventer.events(4).await.len(), 4);
    eventer.stop().await;
    b.create_event(NewEvent::new("ops", "db").name("in-ops"));
    b.create_event(NewEvent::new("shop", "web").name("new-in-shop"));
    let mut eventer = Eventer::spawn(&source(&b, "namespaces=shop,ops&startFrom=all"), &ns_args);
    let mut got = names(&eventer.events(2).await).into_iter().map(str::to_owned).collect::<Vec<_>>();
    got.sort_unstable();
    assert_eq!(got, ["in-ops", "new-in-shop"]);
    let line = eventer.wait_log("the mismatch", |l| l.contains("other namespaces than the ones now watched")).await;
    assert!(line.contains("namespace=ops") && line.contains("checkpoint_namespaces=shop"), "{line}");
    let (rest, _) = eventer.stop().await;
    assert!(rest.is_empty(), "{rest:?}");
}

/// Lists that fail on a later page, by a 500 or by an expired continue token (410), are
/// retried without sending the first pages again.
#[tokio::test]
async fn a_list_retried_after_a_failed_page_sends_nothing_twice() {
    for code in [500, 410] {
        let api = FakeApiServer::start().await.unwrap();
        api.bulk_load_events("shop", 1200);
        api.fail_next("continue=", 1, code);
        let mut eventer = Eventer::spawn(&source(&api, "startFrom=all"), &["--sink=stdout?format=json"]);
        let mut seen: HashMap<String, u32> = HashMap::new();
        for event in eventer.events(1200).await {
            *seen.entry(event["name"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        let (rest, _) = eventer.stop().await;
        assert_eq!(seen.len(), 1200, "{code}: every event");
        assert!(rest.is_empty() && seen.values().all(|&n| n == 1), "{code}: {} sent again", rest.len());
        let lists = api.requests().iter().filter(|r| r.contains("limit=500")).count();
        assert!(lists >= 4, "{code}: the failed page was retried ({lists} list requests)");
    }
}

#[tokio::test]
async fn versions_that_are_not_etcd_revisions_never_reach_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cp.json");
    let checkpoint = format!("--checkpoint=file:{}", file.display());
    let args = ["--sink=stdout?format=json", checkpoint.as_str()];
    let api = FakeApiServer::start().await.unwrap();
    let mut eventer = Eventer::spawn(&source(&api, ""), &args);
    api.wait_for_watchers(1).await;
    api.create_event(NewEvent::new("shop", "web").name("first"));
    assert_eq!(names(&eventer.events(1).await), ["first"]);
    assert_eq!(api.inject_watch_text(raw_event("letters", "12abc") + &raw_event("empty", "")), 1);
    assert_eq!(names(&eventer.events(2).await), ["letters", "empty"], "still events");
    // Re-watching from such a version would be refused (422) or replay history.
    api.drop_watches();
    api.create_event(NewEvent::new("shop", "web").name("second"));
    assert_eq!(names(&eventer.events(1).await), ["second"]);
    eventer.stop().await;
    let watches: Vec<String> = api.requests().into_iter().filter(|r| r.contains("watch=true")).collect();
    assert!(watches.iter().all(|w| w.contains("resourceVersion=") && !w.contains("abc")), "{watches:?}");
    assert!(!watches.iter().any(|w| w.contains("resourceVersion=&") || w.ends_with("resourceVersion=")), "{watches:?}");
    let saved = checkpoint_position(&file);
    assert!(saved["ns"][""]["rv"].as_str().unwrap().parse::<u64>().is_ok(), "{saved}");

    // A checkpoint that holds such a version (written by an older eventer) is set aside.
    let bad = r#"{"v":1,"ns":{"":{"rv":"12abc"}}}"#;
    std::fs::write(&file, serde_json::json!({"position": bad, "saved_at": "2026-01-01T00:00:00Z"}).to_string())
        .unwrap();
    let mut eventer = Eventer::spawn(&source(&api, "startFrom=all"), &args);
    assert_eq!(names(&eventer.events(2).await), ["first", "second"], "started over as configured");
    eventer.wait_log("the bad entry", |l| l.contains("not a decimal etcd revision")).await;
    eventer.stop().await;
    assert!(checkpoint_position(&file)["ns"][""]["rv"].as_str().unwrap().parse::<u64>().is_ok());
}

#[tokio::test]
async fn throttling_is_honoured_as_retry_after_says() {
    let api = FakeApiServer::start().await.unwrap();
    let mut eventer = Eventer::spawn(&source(&api, ""), &["--sink=stdout?format=json"]);
    api.wait_for_watchers(1).await;
    api.throttle_next("watch=true", 1, 2);
    let cut = Instant::now();
    api.drop_watches();
    let line = eventer.wait_log("the throttled retry", |l| l.contains("answered 429 TooManyRequests")).await;
    assert!(line.contains("retry_in=2s"), "{line}");
    api.create_event(NewEvent::new("shop", "web").name("after-throttle"));
    assert_eq!(names(&eventer.events(1).await), ["after-throttle"]);
    assert!(cut.elapsed().as_secs_f64() >= 2.0, "retried after {:?}, before Retry-After", cut.elapsed());
    eventer.stop().await;
}

#[tokio::test]
async fn an_endless_watch_line_is_skipped_in_bounded_memory() {
    let api = FakeApiServer::start().await.unwrap();
    let mut eventer = Eventer::spawn(&source(&api, "maxLineSize=64Ki"), &["--sink=stdout?format=json"]);
    let addr = eventer.server_addr().await;
    api.wait_for_watchers(1).await;
    let before = eventer.peak_rss_kib();
    // 96 MiB without a newline, in 1 MiB writes, then the end of the line and a good one.
    let chunk = "x".repeat(1 << 20);
    for _ in 0..96 {
        assert_eq!(api.inject_watch_text(chunk.clone()), 1);
    }
    api.inject_watch_text(format!("\n{}", raw_event("after-long-line", "999")));
    assert_eq!(names(&eventer.events(1).await), ["after-long-line"]);
    eventer.wait_log("the skipped line", |l| l.contains("longer than maxLineSize")).await;
    let (_, metrics) = poll(&addr, "/metrics", |_, m| metric(m, "eventer_source_oversized_lines_total") > 0).await;
    assert_eq!(metric(&metrics, "eventer_source_oversized_lines_total"), 1, "{metrics}");
    let grown = eventer.peak_rss_kib().saturating_sub(before);
    assert!(grown < 32 << 10, "peak memory grew by {grown} KiB for a 96 MiB line");
    eventer.stop().await;
}
