//! The `eventer` binary with the SLS sink against the fake SLS endpoint (and the fake
//! apiserver as the source).
#![cfg(all(feature = "sink-sls", feature = "source-k8s"))]

use std::{collections::HashSet, time::Duration};

mod common;

use common::Eventer;
use eventer_fake_apiserver::{FakeApiServer, NewEvent};
use eventer_fake_sls::{Failure, FakeMetadata, FakeSls, StsCredentials, proto::Log};
use jiff::Timestamp;
use tokio::process::Command;

const KEY_ID: &str = "LTAI-test-id";
const KEY_SECRET: &str = "kEy-SECRET-value";

/// `eventer` serving health on a free loopback port: tests run in parallel, and anything
/// else on the machine may hold the default 8084.
fn eventer() -> Command {
    let mut cmd = Command::new(common::eventer_bin());
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["--healthz-ip=127.0.0.1", "--healthz-port=0"])
        .env_remove("RUST_LOG");
    cmd
}

#[tokio::test]
async fn sample_is_archived_once_with_kube_eventer_keys() {
    let sls = FakeSls::start().await;
    sls.add_key(KEY_ID, KEY_SECRET);
    let sink = format!(
        "--sink=sls:{}?project=k8s-log&logStore=k8s-event&topic=prod&regionId=cn-hangzhou&label=cluster,c1\
         &accessKeyId={KEY_ID}&accessKeySecret={KEY_SECRET}",
        sls.endpoint()
    );
    let out =
        eventer().args(["--source=file:examples/events.json", &sink, "--frequency=1s", "-v"]).output().await.unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    sls.wait_for_logs(23, Duration::from_secs(10)).await;
    let archived = sls.logs();
    assert_eq!(archived.len(), 23, "every event once");
    for log in &archived {
        let keys: Vec<&str> = log.contents.iter().map(|c| c.key.as_str()).collect();
        for key in ["eventId", "hostname", "level", "cluster", "namespace", "kind", "name", "reason", "message"] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
    }
    assert!(!logs.contains(KEY_SECRET) && !logs.contains(KEY_ID), "{logs}");
}

#[tokio::test]
async fn bad_sls_options_are_usage_errors() {
    for (sink, expected) in [
        ("sls:https://sls.aliyuncs.com?logStore=l", "missing required option project"),
        ("sls:https://sls.aliyuncs.com?project=p&logStore=l&internal=perhaps&accessKeySecret=SECRET-X", "internal"),
    ] {
        let out =
            eventer().args(["--source=file:examples/events.json", &format!("--sink={sink}")]).output().await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains("SECRET-X"), "{err}");
    }
}

/// `eventer` reading every Event of `api` into `sink`, with no SLS credentials in its
/// environment.
fn spawn(api: &FakeApiServer, sink: &str) -> Eventer {
    let source = format!("kubernetes:{}?inClusterConfig=false&startFrom=all", api.url());
    let no_env = [("AccessKeyId", None), ("AccessKeySecret", None), ("SLS_ENDPOINT", None)];
    Eventer::spawn_with(&source, &[&format!("--sink={sink}"), "--frequency=200ms"], &no_env)
}

fn keyed_sink(sls: &FakeSls, extra: &str) -> String {
    sls.add_key(KEY_ID, KEY_SECRET);
    format!(
        "sls:{}?project=k8s-log&logStore=k8s-event&topic=prod&regionId=cn-hangzhou&label=cluster,c1\
         &accessKeyId={KEY_ID}&accessKeySecret={KEY_SECRET}{extra}",
        sls.endpoint()
    )
}

/// The `event_name` of every archived log, checking that none came twice.
fn unique_names(logs: &[Log]) -> HashSet<String> {
    let names: HashSet<String> = logs.iter().map(|l| l.get("event_name").unwrap().to_owned()).collect();
    assert_eq!(names.len(), logs.len(), "an event was archived twice");
    names
}

#[tokio::test]
async fn kubernetes_events_are_archived_exactly_once_with_the_documented_keys() {
    let api = FakeApiServer::start().await.unwrap();
    api.bulk_load_events("shop", 3000);
    let sls = FakeSls::start().await;
    let eventer = spawn(&api, &keyed_sink(&sls, ""));
    sls.wait_for_logs(3000, Duration::from_secs(60)).await;
    let (_, log) = eventer.stop().await;

    let logs = sls.logs();
    assert_eq!(logs.len(), 3000, "every event, and nothing more after a drained shutdown");
    let names = unique_names(&logs);
    assert!((0..3000).all(|i| names.iter().any(|n| n.starts_with(&format!("bulk-{i:07}.")))), "one per event");
    let documented = [
        "eventId",
        "hostname",
        "level",
        "pod_id",
        "pod_name",
        "cluster",
        "namespace",
        "kind",
        "name",
        "reason",
        "message",
        "count",
        "first_timestamp",
        "last_timestamp",
        "event_name",
        "event_uid",
        "source_component",
        "reporting_controller",
    ];
    for l in &logs {
        let keys: Vec<&str> = l.contents.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, documented, "kube-eventer's keys first, then the flat fields");
        let event: serde_json::Value = serde_json::from_str(l.get("eventId").unwrap()).unwrap();
        assert_eq!(event["metadata"]["name"].as_str(), l.get("event_name"), "eventId is the Event object");
        assert_eq!(event["involvedObject"]["uid"].as_str(), l.get("pod_id"));
        assert_eq!(
            (l.get("level"), l.get("kind"), l.get("namespace"), l.get("reason")),
            (Some("Normal"), Some("Pod"), Some("shop"), Some("Pulled"))
        );
        assert_eq!((l.get("hostname"), l.get("cluster"), l.get("count")), (Some("node-1"), Some("c1"), Some("1")));
        let last: Timestamp = l.get("last_timestamp").unwrap().parse().unwrap();
        assert_eq!(i64::from(l.time), last.as_second(), "__time__ is the last occurrence");
    }
    for w in sls.writes() {
        assert_eq!((w.project.as_str(), w.log_store.as_str(), w.signature_version), ("k8s-log", "k8s-event", 4));
        assert_eq!(w.group.topic.as_deref(), Some("prod"));
        assert_eq!(
            w.group.log_tags.iter().map(|t| (t.key.as_str(), t.value.as_str())).collect::<Vec<_>>(),
            [("cluster", "c1")]
        );
    }
    assert!(sls.refusals().is_empty(), "{:?}", sls.refusals());
    assert!(!log.contains(KEY_SECRET) && !log.contains(KEY_ID), "{log}");
}

#[tokio::test]
async fn refusals_mid_stream_lose_nothing_and_duplicate_nothing() {
    let api = FakeApiServer::start().await.unwrap();
    api.bulk_load_events("shop", 3000);
    let sls = FakeSls::start().await;
    sls.pass_next(3);
    sls.fail_next(5, Failure::ServerBusy);
    sls.pass_next(2);
    sls.fail_next(2, Failure::WriteQuotaExceed);
    let eventer = spawn(&api, &keyed_sink(&sls, "&maxBatchLogs=100"));
    sls.wait_for_logs(3000, Duration::from_secs(120)).await;
    let (_, log) = eventer.stop().await;

    let refusals = sls.refusals();
    let codes: Vec<(u16, &str)> = refusals.iter().map(|r| (r.status, r.code.as_str())).collect();
    assert_eq!(codes, [[(503, "ServerBusy")].repeat(5), [(403, "WriteQuotaExceed")].repeat(2)].concat());
    assert!(refusals.iter().all(|r| r.injected), "{refusals:?}");
    let logs = sls.logs();
    assert_eq!(logs.len(), 3000, "nothing lost, nothing more");
    assert_eq!(unique_names(&logs).len(), 3000);
    assert!(log.contains("ServerBusy") && log.contains("WriteQuotaExceed"), "retries are logged:\n{log}");
}

#[tokio::test]
async fn an_event_sls_refuses_is_rejected_alone_and_counted() {
    let api = FakeApiServer::start().await.unwrap();
    for i in 0..83 {
        let event = NewEvent::new("shop", &format!("web-{i}"));
        api.create_event(match i {
            41 => event.reason("Unhealthy").message("Liveness probe failed: POISON"),
            _ => event,
        });
    }
    let sls = FakeSls::start().await;
    sls.poison("POISON");
    let eventer = spawn(&api, &keyed_sink(&sls, ""));
    sls.wait_for_logs(82, Duration::from_secs(30)).await;
    let (_, log) = eventer.stop().await;

    let logs = sls.logs();
    let names = unique_names(&logs);
    assert_eq!(names.len(), 82, "every other event, once");
    assert!(logs.iter().all(|l| l.get("reason") == Some("Started")));
    assert!(sls.refusals().iter().all(|r| r.code == "PostBodyInvalid"), "{:?}", sls.refusals());
    let rejected: Vec<&str> = log.lines().filter(|l| l.contains("Event rejected permanently.")).collect();
    assert_eq!(rejected.len(), 1, "{log}");
    for field in ["namespace=shop", "object=Pod/web-41", "reason=Unhealthy", "PostBodyInvalid"] {
        assert!(rejected[0].contains(field), "{field} not in {}", rejected[0]);
    }
    let totals = log.lines().find(|l| l.contains("Sink totals.")).expect("the totals are logged");
    assert!(totals.contains("delivered=82") && totals.contains("failed=1"), "{totals}");
}

#[tokio::test]
async fn ram_role_credentials_are_refreshed_before_they_expire() {
    // The sink replaces STS credentials three minutes before they expire: these get there
    // a few seconds after eventer starts.
    let first = StsCredentials::generate(1, Duration::from_secs(180 + 6));
    let second = StsCredentials::generate(2, Duration::from_secs(6 * 3600));
    let stale_at = first.expiration.checked_sub(jiff::SignedDuration::from_secs(180)).unwrap();
    let metadata = FakeMetadata::start("EventerRole", "cn-hangzhou", first.clone()).await;
    let sls = FakeSls::start().await;
    sls.add_sts(&first);
    sls.add_sts(&second);
    let api = FakeApiServer::start().await.unwrap();
    api.create_event(NewEvent::new("shop", "web-0").reason("Early").warning());
    let sink = format!(
        "sls:{}?project=k8s-log&logStore=k8s-event&regionId=cn-hangzhou&metadataEndpoint={}",
        sls.endpoint(),
        metadata.endpoint()
    );
    let eventer = spawn(&api, &sink);
    sls.wait_for_logs(1, Duration::from_secs(30)).await;
    assert_eq!(metadata.credential_requests(), 1);

    // The role's credentials rotate; eventer must fetch the new ones by itself, before
    // the old ones expire, and not because SLS refused them.
    metadata.set_credentials(second.clone());
    let wait = stale_at.duration_since(Timestamp::now()).unsigned_abs() + Duration::from_millis(200);
    tokio::time::sleep(wait).await;
    api.create_event(NewEvent::new("shop", "web-1").reason("Late").warning());
    sls.wait_for_logs(2, Duration::from_secs(30)).await;
    let (_, log) = eventer.stop().await;

    assert!(Timestamp::now() < first.expiration, "the test ran past the first expiry");
    assert_eq!(metadata.credential_requests(), 2, "one refresh");
    assert!(sls.refusals().is_empty(), "every request verified: {:?}", sls.refusals());
    let writes = sls.writes();
    let used: Vec<(&str, &str)> = writes
        .iter()
        .flat_map(|w| {
            let token = w.security_token.as_deref().unwrap_or("none");
            w.group.logs.iter().map(move |l| (l.get("reason").unwrap(), token))
        })
        .collect();
    assert_eq!(used, [("Early", first.security_token.as_str()), ("Late", second.security_token.as_str())]);
    for secret in [&first.access_key_secret, &first.security_token, &second.access_key_secret, &second.security_token] {
        assert!(!log.contains(secret.as_str()), "{log}");
    }
}

#[tokio::test]
async fn no_credentials_and_an_unreachable_metadata_service_is_a_startup_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let api = FakeApiServer::start().await.unwrap();
    let sls = FakeSls::start().await;
    let out = eventer()
        .args([
            &format!("--source=kubernetes:{}?inClusterConfig=false&startFrom=all", api.url()),
            &format!(
                "--sink=sls:{}?project=k8s-log&logStore=k8s-event&regionId=cn-hangzhou\
                 &metadataEndpoint=http://127.0.0.1:{port}",
                sls.endpoint()
            ),
        ])
        .env_remove("AccessKeyId")
        .env_remove("AccessKeySecret")
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let last = err.lines().last().unwrap_or_default();
    for expected in [
        "eventer: error:",
        "no SLS credentials found",
        "accessKeyId/accessKeySecret options",
        "AccessKeyId/AccessKeySecret environment variables",
        &format!("ECS metadata service http://127.0.0.1:{port}: cannot reach it"),
    ] {
        assert!(last.contains(expected), "{expected:?} not in {last:?}");
    }
    assert_eq!(sls.requests(), 0);
}
