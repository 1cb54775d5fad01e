//! The `eventer` binary's operational surface: the health and metrics server.
#![cfg(feature = "source-k8s")]

mod common;

use std::time::Duration;

use common::{Eventer, get, metric, poll};
use eventer_fake_apiserver::{FakeApiServer, NewEvent};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let api = FakeApiServer::start().await.unwrap();
    for i in 0..3 {
        api.create_event(NewEvent::new("shop", &format!("pod-{i}")).reason("BackOff").warning());
    }
    let source = format!("kubernetes:{}?inClusterConfig=false&startFrom=all", api.url());
    let mut eventer = Eventer::spawn(&source, &["--sink=stdout", "--sink=stdout?level=Warning&kinds=Node"]);
    let addr = eventer.server_addr().await;
    eventer.lines(3).await;

    assert_eq!(get(&addr, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(get(&addr, "/healtz").await, (200, "ok\n".into()), "kube-eventer's probe path");
    let (_, ready) = poll(&addr, "/readyz", |status, _| status == 200).await;
    assert!(ready.lines().any(|l| l == "ok sink/stdout"), "{ready}");
    assert!(ready.lines().any(|l| l == "ok sink/stdout-2"), "{ready}");

    let (status, metrics) =
        poll(&addr, "/metrics", |_, body| body.contains("eventer_sink_events_delivered_total{sink=\"stdout\"} 3"))
            .await;
    assert_eq!(status, 200);
    for line in [
        "eventer_events_received_total 3",
        "eventer_sink_events_filtered_total{sink=\"stdout-2\"} 3",
        "eventer_sink_queue_depth{sink=\"stdout\"} 0",
        "# TYPE eventer_sink_events_delivered counter",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line:?} in\n{metrics}");
    }
    assert!(metrics.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");
    assert!(ready.lines().any(|l| l == "ok source"), "{ready}");

    // The apiserver goes away: the source is not ready and counts its retries; then it is back.
    api.set_unreachable(true);
    api.drop_watches();
    let (_, body) = poll(&addr, "/readyz", |status, _| status == 503).await;
    assert!(body.lines().any(|l| l.starts_with("not ready source: retrying: ")), "{body}");
    poll(&addr, "/metrics", |_, body| metric(body, "eventer_source_watch_restarts_total") > 0).await;
    api.set_unreachable(false);
    poll(&addr, "/readyz", |status, _| status == 200).await;

    assert_eq!(get(&addr, "/nope").await.0, 404);

    // A second eventer on the same port: one clear line, exit 2, nothing else started.
    let port = addr.rsplit(':').next().unwrap();
    let out = std::process::Command::new(common::eventer_bin())
        .args([
            &format!("--source={source}"),
            "--sink=stdout",
            "--healthz-ip=127.0.0.1",
            &format!("--healthz-port={port}"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("eventer: error: --healthz-port={port}: cannot listen on 127.0.0.1:{port}: ")),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    eventer.stop().await;
}

fn reason_of(line: &str) -> String {
    line.split_whitespace().nth(4).unwrap_or_default().trim_end_matches(':').to_owned()
}

fn reasons(lines: &[String]) -> Vec<String> {
    lines.iter().map(|l| reason_of(l)).collect()
}

/// Two replicas with leader election and a shared ConfigMap checkpoint: one exports; a
/// leader stopped with SIGTERM hands over at once, one killed with SIGKILL within the lease
/// duration; the standby continues from the checkpoint with nothing lost or repeated.
#[tokio::test]
async fn leader_election_hands_over_without_loss_or_repeats() {
    let api = FakeApiServer::start().await.unwrap();
    let event = |reason: &str| {
        api.create_event(NewEvent::new("shop", &reason.to_lowercase()).reason(reason).warning()).resource_version
    };
    // The resourceVersion the saved checkpoint covers.
    let checkpointed = || {
        let cm = api.configmap("ops", "eventer-checkpoint")?;
        let position: serde_json::Value = serde_json::from_str(cm["data"]["position"].as_str()?).ok()?;
        position["ns"][""]["rv"].as_str()?.parse::<u64>().ok()
    };
    let source = format!("kubernetes:{}?inClusterConfig=false&startFrom=all", api.url());
    let args = [
        "--sink=stdout",
        "--checkpoint=configmap:ops/eventer-checkpoint",
        "--leader-elect",
        "--leader-elect-namespace=ops",
    ];
    let replica = |pod: &str| Eventer::spawn_with(&source, &args, &[("POD_NAME", Some(pod))]);
    for r in ["A1", "A2", "A3"] {
        event(r);
    }
    let mut a = replica("replica-a");
    assert_eq!(reasons(&a.lines(3).await), ["A1", "A2", "A3"]);
    let mut b = replica("replica-b");
    // The standby is up (its server answers) but not exporting.
    let b_addr = b.server_addr().await;
    assert_eq!(get(&b_addr, "/healthz").await.0, 200);
    event("A4");
    assert_eq!(reasons(&a.lines(1).await), ["A4"]);

    // SIGTERM: the leader drains, saves the checkpoint and releases the lease.
    assert!(a.stop().await.0.is_empty());
    assert!(checkpointed().is_some(), "checkpoint saved at shutdown");
    event("B1");
    let b2 = event("B2");
    let started = std::time::Instant::now();
    assert_eq!(reasons(&b.lines(2).await), ["B1", "B2"], "exactly what happened since the checkpoint");
    assert!(started.elapsed() < Duration::from_secs(10), "handover after release took {:?}", started.elapsed());

    // SIGKILL once the checkpoint covers what B delivered: C takes over when the lease expires.
    let mut c = replica("replica-c");
    c.server_addr().await;
    tokio::time::timeout(Duration::from_secs(30), async {
        while checkpointed().is_none_or(|rv| rv < b2) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("B saves its checkpoint within the checkpoint interval");
    let killed = std::time::Instant::now();
    assert!(b.kill().await.is_empty());
    event("C1");
    assert_eq!(reasons(&c.lines(1).await), ["C1"]);
    let takeover = killed.elapsed();
    assert!(takeover < Duration::from_secs(20), "takeover took {takeover:?}");
    eprintln!("takeover after SIGKILL: {takeover:?}");
    assert!(c.stop().await.0.is_empty(), "nothing repeated");
}

/// The source, the ConfigMap checkpoint and leader election share one cluster connection,
/// made from the kubeconfig before the wait for the lease: a standby whose kubeconfig is
/// gone by the time it takes over still loads the checkpoint and watches.
#[tokio::test]
async fn a_standby_resumes_on_the_connection_it_waited_with() {
    let api = FakeApiServer::start().await.unwrap();
    let event = |reason: &str| api.create_event(NewEvent::new("shop", &reason.to_lowercase()).reason(reason).warning());
    let args = [
        "--sink=stdout",
        "--checkpoint=configmap:ops/eventer-checkpoint",
        "--leader-elect",
        "--leader-elect-namespace=ops",
    ];
    event("A1");
    let leader = format!("kubernetes:{}?inClusterConfig=false&startFrom=all", api.url());
    let mut a = Eventer::spawn_with(&leader, &args, &[("POD_NAME", Some("replica-a"))]);
    assert_eq!(reasons(&a.lines(1).await), ["A1"]);

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    let standby = format!("kubernetes:?auth={}&startFrom=all", kubeconfig.display());
    let mut b = Eventer::spawn_with(&standby, &args, &[("POD_NAME", Some("replica-b"))]);
    b.wait_log("the wait for the lease", |l| l.contains("Waiting for the leader-election lease")).await;
    std::fs::remove_file(&kubeconfig).unwrap();

    assert!(a.stop().await.0.is_empty());
    event("B1");
    assert_eq!(reasons(&b.lines(1).await), ["B1"], "resumed from the checkpoint, watching");
    let (rest, log) = b.stop().await;
    assert!(rest.is_empty(), "{rest:?}");
    assert!(!log.contains("kubeconfig"), "nothing read the kubeconfig again:\n{log}");
}
