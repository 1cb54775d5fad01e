//! The fake checked against a real client: kube-rs's `Api` and `kube::runtime::watcher`.

use std::time::Duration;

use eventer_fake_apiserver::{FakeApiServer, NewEvent};
use futures::{Stream, StreamExt};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::ConfigMap, core::v1::Event};
use kube::{
    Api, Client, Config,
    api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::watcher,
};

/// Generous bound on every wait: tests wait on conditions, this only stops a hang.
const PATIENCE: Duration = Duration::from_secs(30);

fn client(server: &FakeApiServer) -> Client {
    Client::try_from(Config::new(server.url().parse().unwrap())).unwrap()
}

async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    within(stream.next()).await.expect("stream ended")
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f).await.expect("timed out waiting")
}

/// Poll `stream` in a task, so that it keeps watching while the test waits on the server.
fn spawn_stream<S>(stream: S) -> impl Stream<Item = S::Item> + Unpin
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) }).boxed()
}

fn name(e: &Event) -> &str {
    e.metadata.name.as_deref().unwrap_or("")
}

#[tokio::test]
async fn list_pages_with_continue_tokens() {
    let server = FakeApiServer::start().await.unwrap();
    server.bulk_load_events("default", 3);
    server.create_event(NewEvent::new("other", "db-0").warning().reason("BackOff"));
    let rv = server.resource_version();
    let api: Api<Event> = Api::all(client(&server));

    let mut names = Vec::new();
    let mut params = ListParams::default().limit(2);
    loop {
        let page = api.list(&params).await.unwrap();
        assert_eq!(page.metadata.resource_version.as_deref(), Some(rv.to_string().as_str()));
        names.extend(page.items.iter().map(|e| name(e).to_owned()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => {
                // A change between pages is not visible: pages come from one snapshot.
                server.create_event(NewEvent::new("default", "late"));
                params = params.continue_token(&token);
            }
            None => break,
        }
    }
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names[..3].iter().all(|n| n.starts_with("bulk-")));
    assert!(names[3].starts_with("db-0."));

    let warnings = api.list(&ListParams::default().fields("type=Warning")).await.unwrap();
    assert_eq!(warnings.items.len(), 1);
    // Bulk-loaded events are whole objects, each with its own name, uid and version.
    let second = api.list(&ListParams::default().fields("involvedObject.name=bulk-0000001")).await.unwrap();
    let [e] = &second.items[..] else { panic!("{:?}", second.items) };
    assert_eq!((name(e), e.metadata.resource_version.as_deref()), ("bulk-0000001.3", Some("3")));
    assert_eq!(e.involved_object.field_path.as_deref(), Some("spec.containers{bulk-0000001}"));
    let all = api.list(&ListParams::default()).await.unwrap().items;
    let uids: std::collections::HashSet<_> = all.iter().filter_map(|e| e.metadata.uid.as_deref()).collect();
    assert_eq!(uids.len(), server.event_count());
    assert_eq!(warnings.items[0].reason.as_deref(), Some("BackOff"));
    let in_ns: Api<Event> = Api::namespaced(client(&server), "other");
    assert_eq!(in_ns.list(&ListParams::default()).await.unwrap().items.len(), 1);

    // A continue token from before a compaction has expired.
    let page = api.list(&ListParams::default().limit(1)).await.unwrap();
    server.create_event(NewEvent::new("default", "after-page"));
    server.compact();
    let err = api
        .list(&ListParams::default().limit(1).continue_token(page.metadata.continue_.as_deref().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 410 && s.reason == "Expired"), "{err:?}");
    let err = api.list(&ListParams::default().fields("colour=red")).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 400), "{err:?}");
}

#[tokio::test]
async fn watcher_sees_adds_and_updates_then_relists_after_410() {
    let server = FakeApiServer::start().await.unwrap();
    let first = server.create_event(NewEvent::new("default", "web-0").reason("BackOff").warning());
    let api: Api<Event> = Api::all(client(&server));
    let mut stream = spawn_stream(watcher(api, watcher::Config::default()));

    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::Init));
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::InitApply(e) if name(&e) == first.name));
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::InitDone));
    within(server.wait_for_watchers(1)).await;

    server.update_event("default", &first.name).unwrap();
    match next(&mut stream).await.unwrap() {
        watcher::Event::Apply(e) => assert_eq!((name(&e), e.count), (first.name.as_str(), Some(2))),
        other => panic!("expected the update, got {other:?}"),
    }
    let second = server.create_event(NewEvent::new("default", "web-1"));
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::Apply(e) if name(&e) == second.name));
    server.delete_event("default", &second.name).unwrap();
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::Delete(e) if name(&e) == second.name));

    // Partition: the watch drops, events happen, history is compacted; the re-watch
    // from the last seen version gets 410 as an ERROR event and kube-rs re-lists.
    server.set_unreachable(true);
    let third = server.create_event(NewEvent::new("default", "web-2"));
    server.compact();
    server.set_unreachable(false);
    let mut saw_expired = false;
    loop {
        match next(&mut stream).await {
            Err(watcher::Error::WatchError(s)) if s.code == 410 => saw_expired = true,
            Err(_) => {} // connection errors while unreachable
            Ok(watcher::Event::InitApply(e)) if name(&e) == third.name => break,
            Ok(_) => {}
        }
    }
    assert!(saw_expired);
    assert!(server.requests().iter().any(|r| r.contains("watch=true") && r.contains("allowWatchBookmarks=true")));
}

#[tokio::test]
async fn http_410_status_mode_traps_kube_rs_watcher() {
    let server = FakeApiServer::start().await.unwrap();
    server.set_expired_as_status(true);
    let api: Api<Event> = Api::all(client(&server));
    let mut stream = spawn_stream(watcher(api, watcher::Config::default()));
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::Init));
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::InitDone));
    within(server.wait_for_watchers(1)).await;
    server.set_unreachable(true);
    server.create_event(NewEvent::new("default", "lost"));
    server.compact();
    server.set_unreachable(false);
    // kube-rs 5.0.0 retries the same stale version forever on an HTTP 410: it never
    // re-lists (protocols.md C.5). The fake must reproduce that status faithfully.
    let mut expired = 0;
    while expired < 3 {
        match next(&mut stream).await {
            Err(watcher::Error::WatchStartFailed(kube::Error::Api(s))) if s.code == 410 => expired += 1,
            Err(_) => {}
            Ok(ev) => panic!("kube-rs was not expected to recover from an HTTP 410, got {ev:?}"),
        }
    }
}

#[tokio::test]
async fn raw_watch_bookmarks_and_streaming_lists() {
    let server = FakeApiServer::builder().bookmark_interval(Duration::from_millis(100)).start().await.unwrap();
    let ev = server.create_event(NewEvent::new("default", "web-0"));
    let api: Api<Event> = Api::all(client(&server));

    let rv = server.resource_version().to_string();
    let mut raw = api.watch(&WatchParams::default().timeout(60), &rv).await.unwrap().boxed();
    match next(&mut raw).await.unwrap() {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    server.update_event("default", &ev.name).unwrap();
    loop {
        match next(&mut raw).await.unwrap() {
            WatchEvent::Modified(e) => {
                assert_eq!(e.count, Some(2));
                break;
            }
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    // A watch ends cleanly after timeoutSeconds.
    let mut short = api.watch(&WatchParams::default().timeout(1).disable_bookmarks(), &rv).await.unwrap().boxed();
    assert!(matches!(next(&mut short).await.unwrap(), WatchEvent::Modified(_)));
    assert!(tokio::time::timeout(PATIENCE, short.next()).await.unwrap().is_none());

    let mut stream = spawn_stream(watcher(api, watcher::Config::default().streaming_lists()));
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::Init));
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::InitApply(e) if e.count == Some(2)));
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::InitDone));
    let later = server.create_event(NewEvent::new("default", "web-1"));
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::Apply(e) if name(&e) == later.name));
    assert!(server.requests().iter().any(|r| r.contains("sendInitialEvents=true")));
}

#[tokio::test]
async fn events_k8s_io_view_of_the_same_objects() {
    use k8s_openapi::api::events::v1::Event as EventV1;
    let server = FakeApiServer::start().await.unwrap();
    server.create_event(NewEvent::new("default", "web-0").reason("BackOff").message("back-off").warning());
    server.create_event(NewEvent::new("default", "node-1").kind("Node"));
    let api: Api<EventV1> = Api::all(client(&server));
    let list = api.list(&ListParams::default().fields("regarding.kind=Pod")).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let ev = &list.items[0];
    assert_eq!(ev.note.as_deref(), Some("back-off"));
    assert_eq!(ev.regarding.as_ref().and_then(|r| r.name.as_deref()), Some("web-0"));
    assert_eq!(ev.deprecated_count, Some(1));
    assert_eq!(ev.reporting_controller.as_deref(), Some("kubelet"));
}

#[tokio::test]
async fn configmaps_and_leases_with_optimistic_concurrency() {
    let server = FakeApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(&server), "kube-system");
    let err = api.get("cp").await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 404 && s.reason == "NotFound"), "{err:?}");

    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("cp".into());
    cm.data = Some([("position".to_owned(), "1".to_owned())].into());
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let err = api.create(&PostParams::default(), &cm).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"), "{err:?}");

    let mut update = created.clone();
    update.data = Some([("position".to_owned(), "2".to_owned())].into());
    let replaced = api.replace("cp", &PostParams::default(), &update).await.unwrap();
    assert_ne!(replaced.metadata.resource_version, created.metadata.resource_version);
    assert_eq!(replaced.metadata.uid, created.metadata.uid);
    // The same stale version again conflicts.
    let err = api.replace("cp", &PostParams::default(), &update).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"), "{err:?}");

    let patched = api
        .patch("cp", &PatchParams::default(), &Patch::Merge(serde_json::json!({"data": {"other": "x"}})))
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap().len(), 2);
    assert_eq!(server.configmap("kube-system", "cp").unwrap()["data"]["position"], "2");
    api.delete("cp", &Default::default()).await.unwrap();
    assert!(server.configmap("kube-system", "cp").is_none());

    let leases: Api<Lease> = Api::namespaced(client(&server), "kube-system");
    let lease =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "eventer"}, "spec": {"holderIdentity": "a"}}))
            .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let applied = leases
        .patch("eventer", &PatchParams::apply("eventer"), &Patch::Apply(serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"holderIdentity": "b"}})))
        .await
        .unwrap();
    assert_eq!(applied.spec.unwrap().holder_identity.as_deref(), Some("b"));
}

#[tokio::test]
async fn events_expire_after_their_ttl_as_deletions() {
    let server = FakeApiServer::builder().event_ttl(Duration::from_millis(300)).start().await.unwrap();
    let api: Api<Event> = Api::all(client(&server));
    let mut stream = spawn_stream(watcher(api, watcher::Config::default()));
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::Init));
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::InitDone));
    let ev = server.create_event(NewEvent::new("default", "web-0"));
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::Apply(e) if name(&e) == ev.name));
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::Delete(e) if name(&e) == ev.name));
    assert_eq!(server.event_count(), 0);
}

#[tokio::test]
async fn tls_token_auth_401_and_403() {
    let server = FakeApiServer::builder().tls().token("s3cret").start().await.unwrap();
    server.create_event(NewEvent::new("default", "web-0"));
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    let api: Api<Event> = Api::all(Client::try_from(config.clone()).unwrap());
    assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 1);
    assert_eq!(Client::try_from(config.clone()).unwrap().apiserver_version().await.unwrap().minor, "33");

    let mut wrong = config.clone();
    wrong.auth_info.token = Some("nope".to_owned().into());
    let err = Api::<Event>::all(Client::try_from(wrong).unwrap()).list(&ListParams::default()).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 401), "{err:?}");

    server.set_forbidden(true);
    let err = api.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403 && s.message.contains("cannot list resource \"events\"")),
        "{err:?}"
    );

    // Without the CA, the certificate is not trusted.
    let mut untrusted = Config::new(server.url().parse().unwrap());
    untrusted.auth_info.token = Some("s3cret".to_owned().into());
    let err = Api::<Event>::all(Client::try_from(untrusted).unwrap()).list(&ListParams::default()).await.unwrap_err();
    assert!(!matches!(err, kube::Error::Api(_)), "{err:?}");
}

#[tokio::test]
async fn a_steady_load_reaches_a_watch_one_event_at_a_time() {
    use eventer_fake_apiserver::SteadyLoad;
    let server = FakeApiServer::start().await.unwrap();
    let api: Api<Event> = Api::all(client(&server));
    let rv = server.resource_version().to_string();
    let mut watch = api.watch(&WatchParams::default().timeout(60).disable_bookmarks(), &rv).await.unwrap().boxed();
    let started = tokio::time::Instant::now();
    let load = server.create_steadily("default", SteadyLoad { total: 500, per_second: 2000, nodes: 7 });
    let mut events = Vec::new();
    while events.len() < 500 {
        match next(&mut watch).await.unwrap() {
            WatchEvent::Added(e) => events.push(e),
            other => panic!("unexpected {other:?}"),
        }
    }
    within(load).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200), "500 at 2000/s take a quarter second");
    let nodes: Vec<&Event> = events.iter().filter(|e| e.involved_object.kind.as_deref() == Some("Node")).collect();
    assert_eq!(nodes.len(), 100, "every fifth event is about a Node");
    let names: std::collections::BTreeSet<_> = nodes.iter().filter_map(|e| e.involved_object.name.as_deref()).collect();
    assert_eq!(names.len(), 7);
    for e in &nodes {
        assert_eq!(e.source.as_ref().and_then(|s| s.host.as_deref()), e.involved_object.name.as_deref());
    }
    let revisions: Vec<u64> =
        events.iter().map(|e| e.metadata.resource_version.as_deref().unwrap().parse().unwrap()).collect();
    assert!(revisions.windows(2).all(|w| w[1] == w[0] + 1), "one revision per event");
    assert_eq!(server.event_count(), 500);
}
