//! The source driven through `eventer_core::Pipeline` against the fake apiserver.

use std::{collections::HashSet, future::Future, sync::Arc, time::Duration};

use eventer_core::{
    BoxSource, BuildContext, ErrorKind, Pipeline, Position, Registry, Report, Route,
    checkpoint::{BoxCheckpointStore, FileCheckpoint},
    testing::MemorySink,
    uri::ComponentUri,
};
use eventer_fake_apiserver::{FakeApiServer, NewEvent};
use eventer_source_k8s::{
    Cluster, ConfigMapCheckpoint, KubernetesFactory, LeaderElector, LeaseConfig, Readiness, SCHEME, SourceConfig,
};
use tokio::{sync::oneshot, task::JoinHandle};

/// Bound on every wait; tests wait on conditions, this only turns a hang into a failure.
const PATIENCE: Duration = Duration::from_secs(60);

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f).await.expect("timed out waiting")
}

/// Wait until `cond` holds, checking every 10 ms.
async fn until(mut cond: impl FnMut() -> bool) {
    within(async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

fn build(server_url: &str, options: &str) -> (BoxSource, Readiness) {
    let readiness = Readiness::new();
    let mut registry = Registry::new();
    registry.register_source(SCHEME, Arc::new(KubernetesFactory::with_readiness(readiness.clone())));
    let uri = format!("kubernetes:{server_url}?inClusterConfig=false&{options}");
    (registry.build_source(&uri.parse().unwrap(), &BuildContext::default()).unwrap(), readiness)
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<eventer_core::Result<Report>>,
}

impl Running {
    async fn stop(self) -> Report {
        self.stop.send(()).unwrap();
        within(self.task).await.unwrap().unwrap()
    }
}

fn run(source: BoxSource, sink: &MemorySink, checkpoint: Option<BoxCheckpointStore>) -> Running {
    let mut pipeline = Pipeline::new(source).route(Route::new("memory", Box::new(sink.clone())));
    if let Some(store) = checkpoint {
        pipeline = pipeline.checkpoint(store);
    }
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(pipeline.run(async move {
        stopped.await.ok();
    }));
    Running { stop, task }
}

/// (name, count) of what the sink got, asserting no (uid, resourceVersion) twice.
fn delivered(sink: &MemorySink) -> Vec<(String, u32)> {
    let events = sink.events();
    let mut seen = HashSet::new();
    for e in &events {
        assert!(
            seen.insert((e.uid.clone(), e.resource_version.clone())),
            "delivered twice: {} rv {}",
            e.name,
            e.resource_version
        );
    }
    events.iter().map(|e| (e.name.to_string(), e.count)).collect()
}

/// The same (name, count) occurrences, in any order.
fn assert_same_events(mut got: Vec<(String, u32)>, mut expected: Vec<(String, u32)>) {
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

fn create(server: &FakeApiServer, object: &str) -> String {
    server.create_event(NewEvent::new("default", object)).name
}

/// Events happen while the watch is dropped and the apiserver unreachable; with
/// `compact`, the history is gone too (410 as an ERROR event, or as an HTTP status).
async fn partition(compact: bool, expired_as_status: bool) {
    let server = FakeApiServer::start().await.unwrap();
    server.set_expired_as_status(expired_as_status);
    let before = create(&server, "old"); // before the start: not delivered (startFrom=now)
    let (source, readiness) = build(server.url(), "");
    let sink = MemorySink::new();
    let running = run(source, &sink, None);
    within(readiness.wait()).await;
    within(server.wait_for_watchers(1)).await;
    let mut expected = vec![(create(&server, "a"), 1)];
    within(sink.wait_for(1)).await;

    server.drop_watches();
    server.set_unreachable(true);
    for i in 0..10 {
        expected.push((create(&server, &format!("p{i}")), 1));
    }
    server.update_event("default", &expected[0].0).unwrap();
    expected.push((expected[0].0.clone(), 2));
    if compact {
        server.compact();
    }
    within(server.wait_for_refused(2)).await;
    assert!(
        readiness.last_error().is_some_and(|e| e.contains("cannot reach the apiserver")),
        "{:?}",
        readiness.last_error()
    );
    server.set_unreachable(false);
    within(sink.wait_for(expected.len())).await;
    // A marker after the partition: once it is in, anything repeated would be too.
    expected.push((create(&server, "after"), 1));
    within(sink.wait_for(expected.len())).await;
    running.stop().await;

    let got = delivered(&sink);
    assert!(got.iter().all(|(n, _)| *n != before));
    assert_eq!(got.len(), expected.len(), "{got:?}");
    assert_same_events(got, expected);
    let relisted = server.requests().iter().any(|r| r.contains("limit=500"));
    assert_eq!(relisted, compact, "relist iff the history was compacted");
}

#[tokio::test]
async fn partition_loses_nothing() {
    partition(false, false).await;
}

#[tokio::test]
async fn compaction_during_partition_loses_and_repeats_nothing() {
    partition(true, false).await;
}

#[tokio::test]
async fn http_410_status_is_relisted_too() {
    partition(true, true).await;
}

/// Stop, create 5 events, restart with the same checkpoint: exactly those 5, once.
async fn restart(store: impl Fn() -> BoxCheckpointStore, server: &FakeApiServer, compact_while_down: bool) {
    let (source, readiness) = build(server.url(), "");
    let sink = MemorySink::new();
    let running = run(source, &sink, Some(store()));
    within(readiness.wait()).await;
    within(server.wait_for_watchers(1)).await;
    let first: Vec<String> = (0..3).map(|i| create(server, &format!("first{i}"))).collect();
    server.update_event("default", &first[0]).unwrap();
    within(sink.wait_for(4)).await;
    let report = running.stop().await;
    assert!(report.checkpoint.is_some());

    let mut missed: Vec<(String, u32)> = (0..4).map(|i| (create(server, &format!("down{i}")), 1)).collect();
    server.update_event("default", &first[1]).unwrap();
    missed.push((first[1].clone(), 2));
    if compact_while_down {
        server.compact();
    }

    let (source, readiness) = build(server.url(), "");
    let sink = MemorySink::new();
    let running = run(source, &sink, Some(store()));
    within(readiness.wait()).await;
    within(sink.wait_for(5)).await;
    within(server.wait_for_watchers(1)).await;
    missed.push((create(server, "marker"), 1));
    within(sink.wait_for(6)).await;
    running.stop().await;
    assert_same_events(delivered(&sink), missed);
}

#[tokio::test]
async fn restart_with_file_checkpoint_delivers_exactly_the_missed_events() {
    let server = FakeApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cp.json");
    restart(|| Box::new(FileCheckpoint::new(&path)), &server, false).await;
}

#[tokio::test]
async fn restart_with_configmap_checkpoint_after_compaction() {
    let server = FakeApiServer::start().await.unwrap();
    let client = kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();
    restart(|| Box::new(ConfigMapCheckpoint::new(client.clone(), "kube-system", "eventer")), &server, true).await;
    let cm = server.configmap("kube-system", "eventer").unwrap();
    assert!(cm["data"]["position"].as_str().unwrap().starts_with(r#"{"v":1,"#), "{cm}");
}

#[tokio::test]
async fn thirty_updates_are_thirty_occurrences() {
    let server = FakeApiServer::start().await.unwrap();
    let (source, readiness) = build(server.url(), "");
    let sink = MemorySink::new();
    let running = run(source, &sink, None);
    within(readiness.wait()).await;
    let name = create(&server, "web-0");
    for _ in 1..30 {
        server.update_event("default", &name).unwrap();
    }
    server.delete_event("default", &name).unwrap(); // TTL expiry: not an occurrence
    let marker = create(&server, "marker");
    within(sink.wait_for(31)).await;
    running.stop().await;
    let got = delivered(&sink);
    let counts: Vec<u32> = got.iter().filter(|(n, _)| *n == name).map(|(_, c)| *c).collect();
    assert_eq!(counts, (1..=30).collect::<Vec<_>>());
    assert_eq!(got.last().unwrap().0, marker);
    assert_eq!(got.len(), 31);
}

#[tokio::test]
async fn lists_out_of_key_order_lose_nothing() {
    let server = FakeApiServer::start().await.unwrap();
    server.set_unordered_lists(true);
    let mut expected: Vec<(String, u32)> = ["a", "b", "c", "d", "e"].iter().map(|o| (create(&server, o), 1)).collect();
    let (source, readiness) = build(server.url(), "startFrom=all");
    let sink = MemorySink::new();
    let running = run(source, &sink, None);
    within(readiness.wait()).await;
    expected.push((create(&server, "after"), 1));
    within(sink.wait_for(expected.len())).await;
    running.stop().await;
    assert_same_events(delivered(&sink), expected);
}

#[tokio::test]
async fn undecodable_events_are_skipped_in_lists_and_watches() {
    let server = FakeApiServer::start().await.unwrap();
    let bad = |name: &str| NewEvent::new("default", name).field("count", "many".into());
    let listed = create(&server, "listed");
    server.create_event(bad("bad-listed"));
    let (source, readiness) = build(server.url(), "startFrom=all");
    let sink = MemorySink::new();
    let running = run(source, &sink, None);
    within(readiness.wait()).await;
    within(server.wait_for_watchers(1)).await;
    server.create_event(bad("bad-watched"));
    let watched = create(&server, "watched");
    within(sink.wait_for(2)).await;
    running.stop().await;
    let got: Vec<String> = delivered(&sink).into_iter().map(|(n, _)| n).collect();
    assert_eq!(got, [listed, watched]);
    // Skipped, not retried: the watch was never restarted over the bad line.
    assert_eq!(readiness.last_error(), None);
    assert_eq!(server.requests().iter().filter(|r| r.contains("watch=true")).count(), 1, "{:?}", server.requests());
}

#[tokio::test]
async fn namespaces_api_and_field_selector() {
    let server = FakeApiServer::start().await.unwrap();
    for ns in ["a", "b", "c"] {
        server.create_event(NewEvent::new(ns, "old").warning());
    }
    let (source, readiness) = build(server.url(), "namespaces=a,b&api=events&fieldSelector=type=Warning&startFrom=all");
    let sink = MemorySink::new();
    let running = run(source, &sink, None);
    within(readiness.wait()).await;
    within(server.wait_for_watchers(2)).await;
    for ns in ["a", "b", "c"] {
        server.create_event(NewEvent::new(ns, "normal"));
        server.create_event(NewEvent::new(ns, "new").warning().reason("BackOff"));
    }
    within(sink.wait_for(4)).await;
    let marker = server.create_event(NewEvent::new("b", "marker").warning());
    within(sink.wait_for(5)).await;
    running.stop().await;
    let events = sink.events();
    assert!(events.iter().all(|e| e.level == eventer_core::Level::Warning && e.namespace != "c"), "{events:?}");
    assert_eq!(events.len(), 5);
    assert_eq!(events[4].name, marker.name);
    // Decoded from the events.k8s.io/v1 shape.
    assert!(events.iter().all(|e| e.raw_json().contains("\"regarding\"")));
    assert!(
        server.requests().iter().all(|r| !r.contains("/events?") || r.contains("/apis/events.k8s.io/v1/namespaces/"))
    );
}

/// Peak resident memory of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Counts deliveries without keeping the events (a MemorySink would hold all 100k).
#[derive(Clone, Default)]
struct CountingSink {
    seen: Arc<std::sync::Mutex<HashSet<u64>>>,
    notify: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl eventer_core::Sink for CountingSink {
    async fn send(&mut self, batch: &[eventer_core::SharedEvent]) -> Vec<eventer_core::Outcome> {
        use std::hash::{Hash, Hasher};
        let mut seen = self.seen.lock().unwrap();
        for e in batch {
            let mut h = std::hash::DefaultHasher::new();
            (&e.uid, &e.resource_version).hash(&mut h);
            assert!(seen.insert(h.finish()), "delivered twice: {}", e.name);
        }
        self.notify.notify_waiters();
        vec![eventer_core::Outcome::Delivered; batch.len()]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_events_at_start_with_start_from_all() {
    const N: usize = 100_000;
    let server = FakeApiServer::start().await.unwrap();
    server.bulk_load_events("default", N);
    let baseline = peak_rss_kib();
    let (source, readiness) = build(server.url(), "startFrom=all");
    let sink = CountingSink::default();
    let pipeline = Pipeline::new(source).route(Route::new("count", Box::new(sink.clone())));
    let (stop, stopped) = oneshot::channel::<()>();
    let started = std::time::Instant::now();
    let task = tokio::spawn(pipeline.run(async move {
        stopped.await.ok();
    }));
    within(async {
        loop {
            let notified = sink.notify.notified();
            if sink.seen.lock().unwrap().len() >= N {
                break;
            }
            notified.await;
        }
    })
    .await;
    let elapsed = started.elapsed();
    within(readiness.wait()).await;
    stop.send(()).unwrap();
    within(task).await.unwrap().unwrap();
    let peak = peak_rss_kib();
    let pages = server.requests().iter().filter(|r| r.contains("limit=500")).count();
    eprintln!(
        "100k events: delivered in {elapsed:?}; peak RSS {} MiB with the fake's store, +{} MiB while delivering; {pages} list pages",
        peak / 1024,
        peak.saturating_sub(baseline) / 1024
    );
    assert_eq!(sink.seen.lock().unwrap().len(), N);
    assert_eq!(pages, N / 500);
}

#[tokio::test]
async fn unreachable_apiserver_is_retried_with_a_clear_error() {
    // A port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (source, readiness) = build(&format!("http://127.0.0.1:{port}"), "");
    let sink = MemorySink::new();
    let running = run(source, &sink, None);
    until(|| readiness.last_error().is_some()).await;
    let error = readiness.last_error().unwrap();
    assert!(error.starts_with("cannot reach the apiserver for the "), "{error}");
    assert!(!readiness.is_ready());
    running.stop().await;
}

#[tokio::test]
async fn unauthorized_and_forbidden_are_retried_until_fixed() {
    let server = FakeApiServer::builder().token("right").start().await.unwrap();
    let (source, readiness) = build(server.url(), "");
    let running = run(source, &MemorySink::new(), None);
    until(|| readiness.last_error().is_some_and(|e| e.contains("401"))).await;
    running.stop().await;

    let server = FakeApiServer::start().await.unwrap();
    server.set_forbidden(true);
    let (source, readiness) = build(server.url(), "");
    let sink = MemorySink::new();
    let running = run(source, &sink, None);
    until(|| readiness.last_error().is_some_and(|e| e.contains("403 Forbidden"))).await;
    assert!(readiness.last_error().unwrap().contains("RBAC must allow list and watch on events"));
    server.set_forbidden(false);
    within(readiness.wait()).await;
    assert_eq!(readiness.last_error(), None);
    within(server.wait_for_watchers(1)).await;
    create(&server, "after-rbac-fix");
    within(sink.wait_for(1)).await;
    running.stop().await;
}

#[tokio::test]
async fn permanent_errors_stop_the_pipeline_and_bad_config_fails_early() {
    let server = FakeApiServer::start().await.unwrap();
    let (source, _) = build(server.url(), "fieldSelector=colour=red");
    let err =
        within(Pipeline::new(source).route(Route::new("m", Box::new(MemorySink::new()))).run(std::future::pending()))
            .await
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.to_string().contains("400 BadRequest") && err.to_string().contains("field label not supported: colour"),
        "{err}"
    );

    let mut registry = Registry::new();
    eventer_source_k8s::register(&mut registry);
    let build_uri = |uri: &str| registry.build_source(&uri.parse().unwrap(), &BuildContext::default());
    // Files an explicit connection names are checked when the source is built.
    let err = build_uri("kubernetes:?inClusterConfig=false&auth=/no/such/kubeconfig").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().starts_with("cannot read kubeconfig /no/such/kubeconfig (option auth)"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("kubeconfig");
    std::fs::write(&garbage, "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\ncurrent-context: nowhere\n")
        .unwrap();
    let err = build_uri(&format!("kubernetes:?auth={}", garbage.display())).unwrap_err();
    assert!(err.to_string().contains("is not usable (option auth)"), "{err}");

    if std::path::Path::new(eventer_source_k8s::SERVICE_ACCOUNT_TOKEN).exists() {
        eprintln!("SKIPPED the missing-token checks: this machine has a service account token");
    } else {
        let err = build_uri(&format!("kubernetes:{}?inClusterConfig=false&useServiceAccount=true", server.url()))
            .unwrap_err();
        assert!(err.to_string().starts_with("the service account token file /var/run/secrets"), "{err}");
        // In-cluster settings depend on where eventer runs: checked at start.
        let err = build_uri("kubernetes:https://kubernetes.default").unwrap().start(None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(
            err.to_string().starts_with("inClusterConfig=true but the in-cluster configuration is unavailable"),
            "{err}"
        );
    }

    // An unreadable checkpoint is logged and set aside: failing on it would crash-loop.
    let dir = tempfile::tempdir().unwrap();
    let store = eventer_core::checkpoint::FileCheckpoint::new(dir.path().join("cp.json"));
    eventer_core::checkpoint::CheckpointStore::save(&store, &eventer_core::Position("rv=12".into())).await.unwrap();
    let (source, readiness) = build(server.url(), "");
    let sink = MemorySink::new();
    let running = run(source, &sink, Some(Box::new(store)));
    within(readiness.wait()).await;
    create(&server, "after-unreadable-checkpoint");
    within(sink.wait_for(1)).await;
    running.stop().await;
}

#[tokio::test]
async fn kubeconfig_with_tls_and_token() {
    let server = FakeApiServer::builder().tls().token("t0ken").start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, server.kubeconfig()).unwrap();
    let mut registry = Registry::new();
    let readiness = Readiness::new();
    registry.register_source(SCHEME, Arc::new(KubernetesFactory::with_readiness(readiness.clone())));
    let source = registry
        .build_source(
            &format!("kubernetes:?auth={}&startFrom=all", path.display()).parse().unwrap(),
            &BuildContext::default(),
        )
        .unwrap();
    create(&server, "web-0");
    let sink = MemorySink::new();
    let running = run(source, &sink, None);
    within(sink.wait_for(1)).await;
    within(readiness.wait()).await;
    running.stop().await;
}

/// The ConfigMap checkpoint and leader election talk through the connection the source
/// made (shared in the build context), not clients of their own built from the source's
/// URI: they keep working after the kubeconfig it was made from is gone.
#[tokio::test]
async fn checkpoint_and_leader_election_use_the_sources_connection() {
    let server = FakeApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();
    let mut registry = Registry::new();
    eventer_source_k8s::register(&mut registry);
    let cx = BuildContext::default();
    let uri: ComponentUri = format!("kubernetes:?auth={}", kubeconfig.display()).parse().unwrap();
    let mut source = registry.build_source(&uri, &cx).unwrap();
    let checkpoint = registry.build_checkpoint(&"configmap:kube-system/eventer".parse().unwrap(), &cx).unwrap();
    within(source.start(None)).await.unwrap();
    std::fs::remove_file(&kubeconfig).unwrap();

    let position = Position("p1".into());
    within(checkpoint.save(&position)).await.unwrap();
    assert_eq!(within(checkpoint.load()).await.unwrap(), Some(position));
    assert_eq!(server.configmap("kube-system", "eventer").unwrap()["data"]["position"], "p1");

    let cluster = Cluster::of(&cx).expect("the source shares its connection");
    let lease = LeaseConfig::new("kube-system", "eventer", "replica-0");
    let elector = within(LeaderElector::for_cluster(&cluster, lease)).await.unwrap();
    let leadership = within(elector.acquire()).await.unwrap();
    within(leadership.release()).await;
    // A connection of its own would have had to read the kubeconfig again.
    let own = SourceConfig::parse(uri.target(), &mut uri.options()).unwrap();
    let err =
        LeaderElector::for_source(&own, LeaseConfig::new("kube-system", "eventer", "replica-1")).await.unwrap_err();
    assert!(err.to_string().starts_with("cannot read kubeconfig"), "{err}");
}
