//! The `eventer` binary with the Kubernetes source against the fake apiserver.
#![cfg(feature = "source-k8s")]

use std::{
    collections::HashSet,
    path::Path,
    time::{Duration, Instant},
};

mod common;

use common::Eventer;
use eventer_fake_apiserver::{FakeApiServer, NewEvent};
use eventer_source_k8s::SERVICE_ACCOUNT_TOKEN;
use serde_json::Value;

/// The source URI for the fake without credentials, with more options.
fn source(api: &FakeApiServer, options: &str) -> String {
    format!("kubernetes:{}?inClusterConfig=false&{options}", api.url())
}

fn reason_of(line: &str) -> &str {
    line.split_whitespace().nth(4).unwrap_or_default().trim_end_matches(':')
}

fn names(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["name"].as_str().unwrap()).collect()
}

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v
}

/// Lists (not watches) the fake has served so far.
fn lists(api: &FakeApiServer) -> usize {
    api.requests().iter().filter(|r| r.starts_with("GET /api/v1/events") && !r.contains("watch=true")).count()
}

#[tokio::test]
async fn restart_with_checkpoint_delivers_exactly_what_happened_meanwhile() {
    let api = FakeApiServer::start().await.unwrap();
    for i in 0..3 {
        api.create_event(NewEvent::new("shop", &format!("old-{i}")).reason(&format!("Old{i}")).warning());
    }
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = format!("--checkpoint=file:{}", dir.path().join("cp.json").display());
    let args = ["--sink=stdout", checkpoint.as_str()];

    let mut eventer = Eventer::spawn(&source(&api, "startFrom=all"), &args);
    let first = eventer.lines(3).await;
    assert!(eventer.stop().await.0.is_empty());
    let mut reasons: Vec<&str> = first.iter().map(|l| reason_of(l)).collect();
    reasons.sort_unstable();
    assert_eq!(reasons, ["Old0", "Old1", "Old2"]);
    assert!(dir.path().join("cp.json").exists(), "the final checkpoint is written at shutdown");

    // While eventer is down, five events happen.
    for i in 0..5 {
        api.create_event(NewEvent::new("shop", &format!("new-{i}")).reason(&format!("New{i}")).warning());
    }
    let mut eventer = Eventer::spawn(&source(&api, "startFrom=all"), &args);
    let mut second = eventer.lines(5).await;
    second.extend(eventer.stop().await.0);
    let reasons: Vec<&str> = second.iter().map(|l| reason_of(l)).collect();
    assert_eq!(reasons, ["New0", "New1", "New2", "New3", "New4"], "exactly the five, once, nothing older");
}

/// Watch, then a partition: watches dropped, the apiserver unreachable for a few seconds
/// while ten events happen (and, with `compact`, the history they are in compacted away,
/// so that resuming gets 410 and relists). Returns eventer's log.
async fn partition(compact: bool, expired_as_status: bool) -> String {
    let api = FakeApiServer::start().await.unwrap();
    api.set_expired_as_status(expired_as_status);
    let mut eventer = Eventer::spawn(&source(&api, "startFrom=all"), &["--sink=stdout?format=json"]);
    api.wait_for_watchers(1).await;
    for i in 0..2 {
        api.create_event(NewEvent::new("shop", "web").name(&format!("before-{i}")));
    }
    assert_eq!(names(&eventer.events(2).await), ["before-0", "before-1"]);
    let lists_before = lists(&api);

    api.set_unreachable(true);
    let refused = api.refused();
    let mut expected: Vec<String> = (0..10).map(|i| format!("during-{i}")).collect();
    for name in &expected {
        api.create_event(NewEvent::new("shop", "web").name(name).warning());
    }
    // A repeat of an event delivered before: a new occurrence, not a repeat of the old one.
    api.update_event("shop", "before-0").unwrap();
    expected.push("before-0".into());
    if compact {
        api.compact();
    }
    // Eventer keeps trying while the apiserver is away; the outage lasts a few seconds.
    api.wait_for_refused(refused + 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    api.set_unreachable(false);

    let got = eventer.events(expected.len()).await;
    assert_eq!(sorted(names(&got)), sorted(expected.iter().map(String::as_str).collect()), "none lost");
    let before_0 = got.iter().find(|e| e["name"] == "before-0").unwrap();
    assert_eq!(before_0["count"], 2);
    // Anything repeated would come before this.
    api.create_event(NewEvent::new("shop", "web").name("after"));
    assert_eq!(names(&eventer.events(1).await), ["after"], "none repeated");
    let relisted = lists(&api) > lists_before;
    assert_eq!(relisted, compact, "a relist exactly when the resume point was compacted away");
    eventer.stop().await.1
}

#[tokio::test]
async fn partition_loses_nothing() {
    let log = partition(false, false).await;
    assert!(log.contains("Kubernetes source: will retry"), "{log}");
}

#[tokio::test]
async fn compaction_during_partition_relists_without_loss_or_repeats() {
    let log = partition(true, false).await;
    assert!(log.contains("Resource version expired (410); re-listing."), "{log}");
}

/// The same with 410 as an HTTP status, on which kube-rs's own watcher would loop forever.
#[tokio::test]
async fn compaction_during_partition_with_410_as_http_status() {
    let log = partition(true, true).await;
    assert!(log.contains("Resource version expired (410); re-listing."), "{log}");
}

#[tokio::test]
async fn thirty_updates_are_thirty_occurrences() {
    let api = FakeApiServer::start().await.unwrap();
    let mut eventer = Eventer::spawn(&source(&api, "startFrom=all"), &["--sink=stdout?format=json"]);
    api.wait_for_watchers(1).await;
    api.create_event(NewEvent::new("shop", "web").name("web.backoff").reason("BackOff").warning());
    for i in 2..=30 {
        api.update_event("shop", "web.backoff").unwrap();
        // Halfway, the watch breaks: the rest comes through the resumed one.
        if i == 15 {
            api.drop_watches();
        }
    }
    // TTL expiry is not an occurrence.
    api.delete_event("shop", "web.backoff").unwrap();
    api.create_event(NewEvent::new("shop", "web").name("after"));

    let got = eventer.events(31).await;
    let counts: Vec<u64> = got[..30].iter().map(|e| e["count"].as_u64().unwrap()).collect();
    assert_eq!(counts, (1..=30).collect::<Vec<_>>());
    assert!(got[..30].iter().all(|e| e["name"] == "web.backoff" && e["reason"] == "BackOff"));
    let versions: HashSet<&str> = got.iter().map(|e| e["resourceVersion"].as_str().unwrap()).collect();
    assert_eq!(versions.len(), 31, "no resourceVersion twice");
    assert_eq!(got[30]["name"], "after");
    assert!(eventer.stop().await.0.is_empty());
}

/// 100 000 Events present at start, `startFrom=all`: each delivered once, in bounded
/// memory. Prints the figures; in release: `cargo test --release -p eventer-cli --test
/// kubernetes hundred_thousand -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_events_at_start_in_bounded_memory() {
    const N: usize = 100_000;
    let api = FakeApiServer::start().await.unwrap();
    api.bulk_load_events("bulk", N);
    let started = Instant::now();
    let mut eventer = Eventer::spawn(&source(&api, "startFrom=all"), &["--sink=stdout"]);
    let mut seen = HashSet::with_capacity(N);
    for line in eventer.lines(N).await {
        let object = line.split_whitespace().nth(3).unwrap().to_owned();
        assert!(seen.insert(object), "delivered twice: {line}");
    }
    let elapsed = started.elapsed();
    let peak = eventer.peak_rss_kib();
    let (rest, _) = eventer.stop().await;
    assert!(rest.is_empty(), "{} more lines after all {N}: {:?}", rest.len(), &rest[..rest.len().min(3)]);
    println!("{N} events delivered in {elapsed:.1?}; eventer's peak RSS (VmHWM) {:.1} MiB", peak as f64 / 1024.0);
    // The fake holds the events, eventer must not: a cache of 100k events would be
    // several hundred MiB.
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB");
}

#[tokio::test]
async fn unreachable_apiserver_is_retried_with_backoff_until_it_answers() {
    // Nothing listening at all: a clear log line, retried.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut eventer =
        Eventer::spawn(&format!("kubernetes:http://127.0.0.1:{port}?inClusterConfig=false"), &["--sink=stdout"]);
    for _ in 0..2 {
        eventer.wait_log("a retry", |l| l.contains("will retry") && l.contains("cannot reach the apiserver")).await;
        eventer.forget_log();
    }
    eventer.stop().await;

    // Up but refusing every connection, then back.
    let api = FakeApiServer::start().await.unwrap();
    api.set_unreachable(true);
    let mut eventer = Eventer::spawn(&source(&api, "startFrom=all"), &["--sink=stdout"]);
    api.wait_for_refused(3).await;
    api.create_event(NewEvent::new("shop", "web").reason("Waited"));
    api.set_unreachable(false);
    assert_eq!(reason_of(&eventer.lines(1).await[0]), "Waited");
    let (_, log) = eventer.stop().await;
    assert!(log.contains("will retry"), "{log}");
}

/// Causes that can pass are logged clearly and retried; delivery resumes once they do.
#[tokio::test]
async fn forbidden_and_unavailable_are_logged_and_retried_until_they_pass() {
    for (cause, expected) in [("403", "RBAC must allow list and watch on events"), ("503", "ServiceUnavailable")] {
        let api = FakeApiServer::start().await.unwrap();
        match cause {
            "403" => api.set_forbidden(true),
            _ => api.set_failing(Some(503)),
        }
        let mut eventer = Eventer::spawn(&source(&api, "startFrom=all"), &["--sink=stdout"]);
        let line = eventer.wait_log(cause, |l| l.contains("will retry") && l.contains(cause)).await;
        assert!(line.contains(expected), "{line}");
        api.create_event(NewEvent::new("shop", "web").reason("Passed"));
        api.set_forbidden(false);
        api.set_failing(None);
        assert_eq!(reason_of(&eventer.lines(1).await[0]), "Passed", "{cause}");
        eventer.stop().await;
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn kubeconfig_with_token_and_tls() {
    let api = FakeApiServer::builder().tls().token("kubeconfig-token-0123").start().await.unwrap();
    api.create_event(NewEvent::new("shop", "web").reason("OverTls"));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write(dir.path(), "config", &api.kubeconfig());
    let mut eventer = Eventer::spawn(&format!("kubernetes:?auth={kubeconfig}&startFrom=all"), &["--sink=stdout"]);
    assert_eq!(reason_of(&eventer.lines(1).await[0]), "OverTls");
    let (_, log) = eventer.stop().await;
    assert!(!log.contains("kubeconfig-token-0123"), "{log}");
}

#[tokio::test]
async fn wrong_token_is_a_clear_401_without_the_token() {
    let api = FakeApiServer::builder().token("right-token-0123").start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write(dir.path(), "config", &api.kubeconfig().replace("right-token-0123", "wrong-token-4567"));
    let mut eventer = Eventer::spawn(&format!("kubernetes:?auth={kubeconfig}"), &["--sink=stdout"]);
    let line = eventer.wait_log("a 401", |l| l.contains("will retry") && l.contains("401")).await;
    assert!(line.contains("check the token or kubeconfig"), "{line}");
    let (_, log) = eventer.stop().await;
    assert!(!log.contains("token-0123") && !log.contains("token-4567"), "{log}");
}

/// Configuration problems visible at startup: exit 2, one line naming the flag, no
/// secret, no panic.
#[test]
fn config_problems_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = write(dir.path(), "garbage", "sekrit-token-not-a-kubeconfig\n");
    let binary = write(dir.path(), "binary", "\u{0}\u{1}\u{2}{[");
    let no_context = write(dir.path(), "no-context", "apiVersion: v1\nkind: Config\nclusters: []\n");
    let token_file = write(
        dir.path(),
        "token-file",
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n\
         contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\nusers:\n- name: u\n  user:\n    tokenFile: /no/such/token\n",
    );
    let missing = dir.path().join("missing").display().to_string();
    let mut cases = vec![
        (format!("kubernetes:?auth={missing}"), format!("cannot read kubeconfig {missing} (option auth)")),
        (format!("kubernetes:?auth={garbage}"), format!("cannot read kubeconfig {garbage} (option auth)")),
        (format!("kubernetes:?auth={binary}"), format!("cannot read kubeconfig {binary} (option auth)")),
        (format!("kubernetes:?auth={no_context}"), format!("kubeconfig {no_context} is not usable (option auth)")),
        (
            format!("kubernetes:?auth={token_file}"),
            format!("the token file /no/such/token named by kubeconfig {token_file} does not exist (option auth)"),
        ),
    ];
    if !Path::new(SERVICE_ACCOUNT_TOKEN).exists() {
        cases.push((
            "kubernetes:https://127.0.0.1:6443?inClusterConfig=false&useServiceAccount=true".into(),
            format!("the service account token file {SERVICE_ACCOUNT_TOKEN} does not exist"),
        ));
    }
    for (source, expected) in cases {
        let out = std::process::Command::new(common::eventer_bin())
            .args([&format!("--source={source}"), "--sink=stdout", "--healthz-port=0"])
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{source}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{source}: {stderr}");
        assert!(stderr.starts_with(&format!("eventer: error: --source={source}: ")), "{stderr}");
        assert!(stderr.contains(&expected), "{source}: expected `{expected}` in {stderr}");
        assert!(!stderr.contains("sekrit"), "{stderr}");
    }
}
