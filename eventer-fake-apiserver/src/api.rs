//! HTTP handlers: discovery, list, watch, and object CRUD with real `Status` errors.

use std::{borrow::Cow, collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path, Request, State},
    http::{HeaderMap, StatusCode, Uri, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde_json::{Map, Value, json};
use tokio::{sync::mpsc, time::Instant};

use crate::{
    Fault, Shared, WatchBehaviour, events, lock, now_rfc3339,
    store::{Change, ChangeType, Obj, ReadError, Resource, Selector, Store},
};

/// Watch lines sent per chunk when replaying state or catching up.
const CHUNK: usize = 500;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(core_versions))
        .route("/api/v1", get(core_resources))
        .route("/apis", get(groups))
        .route("/apis/{group}/{version}", get(group_resources))
        .route("/api/v1/{resource}", get(collection_get))
        .route("/api/v1/namespaces/{name}", get(namespace_get))
        .route("/api/v1/namespaces/{ns}/{resource}", get(collection_get).post(create))
        .route("/api/v1/namespaces/{ns}/{resource}/{name}", get(item_get).put(replace).patch(patch).delete(delete))
        .route("/apis/{group}/{version}/{resource}", get(collection_get))
        .route("/apis/{group}/{version}/namespaces/{ns}/{resource}", get(collection_get).post(create))
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{resource}/{name}",
            get(item_get).put(replace).patch(patch).delete(delete),
        )
        .fallback(|| async { not_found().into_response() })
        .layer(middleware::from_fn_with_state(shared.clone(), authenticate))
        .with_state(shared)
}

/// Log every request, play scripted faults and check the bearer token.
async fn authenticate(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let line = format!("{} {}", req.method(), req.uri());
    s.log_request(line.clone());
    if let Some(fault) = take_fault(&s, &line) {
        let code = StatusCode::from_u16(fault.code).expect("checked when scripted");
        let reason = code.canonical_reason().unwrap_or("Failure").replace(' ', "");
        let details = fault.retry_after.map(|secs| json!({"retryAfterSeconds": secs}));
        let mut response =
            status(code, &reason, "the fake apiserver was told to fail this request", details).into_response();
        if let Some(secs) = fault.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        return response;
    }
    let watching = req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    if watching {
        match s.watch_behaviour.load(std::sync::atomic::Ordering::SeqCst) {
            b if b == WatchBehaviour::Hang as u8 => std::future::pending::<()>().await,
            b if b == WatchBehaviour::Silent as u8 => {
                let never = futures::stream::pending::<Result<Bytes, std::io::Error>>();
                return ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(never)).into_response();
            }
            _ => {}
        }
    }
    let failing = s.failing.load(std::sync::atomic::Ordering::SeqCst);
    if let Ok(code) = StatusCode::from_u16(failing) {
        let reason = if code == StatusCode::SERVICE_UNAVAILABLE { "ServiceUnavailable" } else { "InternalError" };
        return status(code, reason, "the fake apiserver was told to fail", None).into_response();
    }
    if let Some(token) = &s.token {
        let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if given.and_then(|v| v.strip_prefix("Bearer ")) != Some(token.as_str()) {
            return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized", None).into_response();
        }
    }
    next.run(req).await
}

/// The first scripted fault matching `line`, used up by one.
fn take_fault(s: &Shared, line: &str) -> Option<Fault> {
    let mut faults = lock(&s.faults);
    let i = faults.iter().position(|f| f.times > 0 && line.contains(&f.matching))?;
    faults[i].times -= 1;
    let fault = faults[i].clone();
    faults.retain(|f| f.times > 0);
    Some(fault)
}

/// A Namespace: `kube-system` carries the cluster's identity; any other name exists too.
async fn namespace_get(State(s): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    if s.forbidden.load(std::sync::atomic::Ordering::SeqCst) {
        let message = format!(
            "namespaces \"{name}\" is forbidden: User \"system:serviceaccount:kube-system:eventer\" cannot get resource \"namespaces\" in API group \"\" at the cluster scope"
        );
        return status(StatusCode::FORBIDDEN, "Forbidden", &message, Some(json!({"name": name, "kind": "namespaces"})))
            .into_response();
    }
    let uid = if name == "kube-system" { s.cluster_uid.clone() } else { s.uid() };
    let ns = json!({
        "kind": "Namespace", "apiVersion": "v1",
        "metadata": {"name": name, "uid": uid, "resourceVersion": "1", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
    });
    json_response(StatusCode::OK, ns.to_string())
}

/// A `metav1.Status` failure.
pub(crate) fn status_value(code: StatusCode, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut v = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    if let Some(d) = details {
        v["details"] = d;
    }
    v
}

/// A request that failed, answered with a `Status` body.
pub(crate) struct Failure {
    code: StatusCode,
    body: String,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        json_response(self.code, self.body)
    }
}

fn status(code: StatusCode, reason: &str, message: &str, details: Option<Value>) -> Failure {
    Failure { code, body: status_value(code, reason, message, details).to_string() }
}

fn json_response(code: StatusCode, body: String) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn not_found() -> Failure {
    status(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource", None)
}

fn bad_request(message: &str) -> Failure {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, None)
}

fn object_status(code: StatusCode, reason: &str, message: String, t: &Target, name: &str) -> Failure {
    let details = json!({"name": name, "group": t.group, "kind": t.resource.plural()});
    status(code, reason, &message, Some(details))
}

fn read_error(e: &ReadError) -> Failure {
    match *e {
        ReadError::Compacted { requested, oldest } => {
            status(StatusCode::GONE, "Expired", &format!("too old resource version: {requested} ({oldest})"), None)
        }
        ReadError::TooLarge { requested, current } => status(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            &format!("Too large resource version: {requested}, current: {current}"),
            Some(
                json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
            ),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Discovery

async fn version() -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-eventer-fake",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc", "platform": "linux/amd64",
        })
        .to_string(),
    )
}

async fn core_versions(headers: HeaderMap) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    json_response(
        StatusCode::OK,
        json!({"kind": "APIVersions", "versions": ["v1"],
               "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
        .to_string(),
    )
}

const GROUPS: [&str; 2] = ["events.k8s.io", "coordination.k8s.io"];

async fn groups() -> Response {
    let groups: Vec<Value> = GROUPS
        .iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json_response(StatusCode::OK, json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}).to_string())
}

fn resource_list(group_version: &str, resources: &[(Resource, &[&str])]) -> Response {
    let resources: Vec<Value> = resources
        .iter()
        .map(|(r, short)| {
            json!({
                "name": r.plural(), "singularName": r.kind().to_ascii_lowercase(), "namespaced": true,
                "kind": r.kind(), "shortNames": short,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
            .to_string(),
    )
}

async fn core_resources() -> Response {
    resource_list("v1", &[(Resource::Events, &["ev"]), (Resource::ConfigMaps, &["cm"])])
}

async fn group_resources(Path((group, version)): Path<(String, String)>) -> Response {
    match (group.as_str(), version.as_str()) {
        ("events.k8s.io", "v1") => resource_list("events.k8s.io/v1", &[(Resource::Events, &["ev"])]),
        ("coordination.k8s.io", "v1") => resource_list("coordination.k8s.io/v1", &[(Resource::Leases, &[])]),
        _ => not_found().into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Addressing

/// How objects are shown: as stored, or Events as events.k8s.io/v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Stored,
    EventsV1,
}

struct Target {
    resource: Resource,
    view: View,
    group: &'static str,
    namespace: Option<String>,
    name: Option<String>,
}

impl Target {
    fn resolve(p: &HashMap<String, String>) -> Result<Target, Failure> {
        let group = p.get("group").map_or("", String::as_str);
        let version = p.get("version").map_or("v1", String::as_str);
        let plural = p.get("resource").map_or("", String::as_str);
        let (resource, view, group) = match (group, version, plural) {
            ("", "v1", "events") => (Resource::Events, View::Stored, ""),
            ("", "v1", "configmaps") => (Resource::ConfigMaps, View::Stored, ""),
            ("events.k8s.io", "v1", "events") => (Resource::Events, View::EventsV1, "events.k8s.io"),
            ("coordination.k8s.io", "v1", "leases") => (Resource::Leases, View::Stored, "coordination.k8s.io"),
            _ => return Err(not_found()),
        };
        Ok(Target { resource, view, group, namespace: p.get("ns").cloned(), name: p.get("name").cloned() })
    }

    fn api_version(&self) -> &'static str {
        match self.view {
            View::EventsV1 => "events.k8s.io/v1",
            View::Stored => self.resource.api_version(),
        }
    }

    fn render<'a>(&self, obj: &'a Obj) -> Cow<'a, str> {
        match self.view {
            View::Stored => Cow::Borrowed(&obj.json),
            View::EventsV1 => Cow::Owned(events::to_events_v1(&obj.value()).to_string()),
        }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.namespace.as_deref().unwrap_or(""), self.name.as_deref().unwrap_or(""))
    }

    /// 403 in forbidden mode, worded as RBAC words it.
    fn authorize(&self, s: &Shared, verb: &str) -> Result<(), Failure> {
        if !s.forbidden.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let scope = match &self.namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        let plural = self.resource.plural();
        let message = format!(
            "{plural} is forbidden: User \"system:serviceaccount:kube-system:eventer\" cannot {verb} resource \"{plural}\" in API group \"{}\" {scope}",
            self.group
        );
        Err(status(StatusCode::FORBIDDEN, "Forbidden", &message, Some(json!({"group": self.group, "kind": plural}))))
    }

    fn selector(&self, text: &str) -> Result<Selector, Failure> {
        let rename: fn(&str) -> &str = match self.view {
            View::EventsV1 => events::events_v1_field,
            View::Stored => |s| s,
        };
        Selector::parse(self.resource, text, rename).map_err(|e| bad_request(&e))
    }
}

// ---------------------------------------------------------------------------------------
// List and watch

#[derive(Debug, Default)]
struct Params {
    watch: bool,
    resource_version: Option<String>,
    resource_version_match: Option<String>,
    limit: Option<usize>,
    continue_: Option<String>,
    field_selector: String,
    label_selector: String,
    bookmarks: bool,
    timeout: Option<u64>,
    send_initial_events: bool,
    field_manager: Option<String>,
}

impl Params {
    /// Parse the query; kube-rs starts it with `?&`, which is fine here.
    fn parse(uri: &Uri) -> Result<Params, Failure> {
        let mut p = Params::default();
        let flag = |k: &str, v: &str| match v {
            "true" | "1" => Ok(true),
            "false" | "0" | "" => Ok(false),
            _ => Err(bad_request(&format!("invalid value for {k}: {v}"))),
        };
        let number =
            |k: &str, v: &str| v.parse::<u64>().map_err(|_| bad_request(&format!("invalid value for {k}: {v}")));
        for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            match &*k {
                "watch" => p.watch = flag(&k, &v)?,
                "resourceVersion" => p.resource_version = Some(v.into_owned()),
                "resourceVersionMatch" => p.resource_version_match = Some(v.into_owned()).filter(|s| !s.is_empty()),
                "limit" => p.limit = Some(number(&k, &v)?).filter(|n| *n > 0).map(|n| n as usize),
                "continue" => p.continue_ = Some(v.into_owned()).filter(|s| !s.is_empty()),
                "fieldSelector" => p.field_selector = v.into_owned(),
                "labelSelector" => p.label_selector = v.into_owned(),
                "allowWatchBookmarks" => p.bookmarks = flag(&k, &v)?,
                "timeoutSeconds" => p.timeout = Some(number(&k, &v)?),
                "sendInitialEvents" => p.send_initial_events = flag(&k, &v)?,
                "fieldManager" => p.field_manager = Some(v.into_owned()),
                _ => {}
            }
        }
        if !p.label_selector.is_empty() {
            return Err(bad_request("label selectors are not supported by the fake apiserver"));
        }
        Ok(p)
    }

    /// The requested revision; `None` for unset, empty or `0` ("any").
    fn revision(&self) -> Result<Option<u64>, Failure> {
        match self.resource_version.as_deref() {
            None | Some("" | "0") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| bad_request(&format!("invalid resource version: {v}"))),
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    start: String,
}

async fn collection_get(State(s): State<Arc<Shared>>, Path(p): Path<HashMap<String, String>>, uri: Uri) -> Response {
    let run = || -> Result<Response, Failure> {
        let t = Target::resolve(&p)?;
        let params = Params::parse(&uri)?;
        if params.watch {
            t.authorize(&s, "watch")?;
            watch(&s, t, &params)
        } else {
            t.authorize(&s, "list")?;
            list(&s, &t, &params)
        }
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

fn list(s: &Shared, t: &Target, p: &Params) -> Result<Response, Failure> {
    let selector = t.selector(&p.field_selector)?;
    let store = lock(&s.store);
    let (at, after) = match &p.continue_ {
        Some(token) => {
            if p.resource_version.as_deref().is_some_and(|v| !v.is_empty()) {
                return Err(bad_request("specifying resource version is not allowed when using continue"));
            }
            let token: ContinueToken = B64
                .decode(token)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| bad_request("continue key is not valid: incorrect encoded start resourceVersion"))?;
            if token.rv < store.compacted() {
                return Err(status(
                    StatusCode::GONE,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    None,
                ));
            }
            (token.rv, Some(token.start))
        }
        None => {
            let rv = p.revision()?;
            match (p.resource_version_match.as_deref(), rv) {
                (None | Some("NotOlderThan"), None) => (store.rv(), None),
                (None | Some("NotOlderThan"), Some(rv)) => {
                    // Any state at least this new will do: the current one, unless `rv` is in the future.
                    if rv > store.rv() {
                        return Err(read_error(&ReadError::TooLarge { requested: rv, current: store.rv() }));
                    }
                    (store.rv(), None)
                }
                (Some("Exact"), Some(rv)) => (rv, None),
                (Some("Exact"), None) => {
                    return Err(bad_request("resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\""));
                }
                (Some(m), _) => return Err(bad_request(&format!("unsupported resourceVersionMatch: {m}"))),
            }
        }
    };
    let page = store
        .list(t.resource, at, t.namespace.as_deref(), &selector, after.as_deref(), p.limit)
        .map_err(|e| read_error(&e))?;
    let mut meta = json!({"resourceVersion": at.to_string()});
    if let Some(next) = &page.next {
        let token = ContinueToken { v: "meta.k8s.io/v1".into(), rv: at, start: next.clone() };
        meta["continue"] = B64.encode(serde_json::to_vec(&token).expect("token serialises")).into();
    }
    if let Some(n) = page.remaining {
        meta["remainingItemCount"] = n.into();
    }
    drop(store);
    let mut body = format!(
        r#"{{"kind":"{}List","apiVersion":"{}","metadata":{meta},"items":["#,
        t.resource.kind(),
        t.api_version()
    );
    let mut items: Vec<&Arc<Obj>> = page.items.iter().collect();
    if s.unordered_lists.load(std::sync::atomic::Ordering::SeqCst) {
        items.reverse();
    }
    for (i, obj) in items.into_iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&t.render(obj));
    }
    body.push_str("]}");
    Ok(json_response(StatusCode::OK, body))
}

/// What one watch stream does.
struct WatchSpec {
    target: Target,
    selector: Selector,
    /// Send the current state as ADDED first (`resourceVersion` unset or `0`).
    replay: bool,
    /// Follow the replay with the `k8s.io/initial-events-end` bookmark.
    initial_end: bool,
    /// The revision after which to send changes (unless replaying).
    from: u64,
    bookmarks: bool,
    timeout: Option<Duration>,
}

fn watch(s: &Arc<Shared>, target: Target, p: &Params) -> Result<Response, Failure> {
    let selector = target.selector(&p.field_selector)?;
    let rv = p.revision()?;
    if p.send_initial_events {
        if !p.bookmarks {
            return Err(bad_request("sendInitialEvents is forbidden for watch unless allowWatchBookmarks=true"));
        }
        if p.resource_version_match.as_deref() != Some("NotOlderThan") {
            return Err(bad_request(
                "sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan",
            ));
        }
    } else if p.resource_version_match.is_some() {
        return Err(bad_request("resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"));
    }
    let replay = p.send_initial_events || rv.is_none();
    let from = rv.unwrap_or(0);
    if !replay {
        let compacted = lock(&s.store).compacted();
        if from < compacted {
            let message = format!("too old resource version: {from} ({compacted})");
            if s.expired_as_status.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(status(StatusCode::GONE, "Expired", &message, None));
            }
            // The apiserver's way: 200, then an ERROR event, then the end of the stream.
            let line = error_line(&message);
            return Ok(json_response(StatusCode::OK, line));
        }
    }
    let spec = WatchSpec {
        target,
        selector,
        replay,
        initial_end: p.send_initial_events,
        from,
        bookmarks: p.bookmarks,
        timeout: p.timeout.filter(|t| *t > 0).map(Duration::from_secs),
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    s.watchers.send_modify(|n| *n += 1);
    tokio::spawn(run_watch(s.clone(), spec, tx));
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn error_line(message: &str) -> String {
    let status = status_value(StatusCode::GONE, "Expired", message, None);
    format!("{}\n", json!({"type": "ERROR", "object": status}))
}

fn event_line(out: &mut String, t: &Target, kind: ChangeType, obj: &Obj) {
    out.push_str(r#"{"type":""#);
    out.push_str(kind.as_str());
    out.push_str(r#"","object":"#);
    out.push_str(&t.render(obj));
    out.push_str("}\n");
}

fn bookmark_line(t: &Target, rv: u64, initial_end: bool) -> String {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let object = json!({"kind": t.resource.kind(), "apiVersion": t.api_version(), "metadata": meta});
    format!("{}\n", json!({"type": "BOOKMARK", "object": object}))
}

/// Decrements the watcher count however the watch ends.
struct WatcherGuard(Arc<Shared>);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.watchers.send_modify(|n| *n -= 1);
    }
}

async fn run_watch(s: Arc<Shared>, w: WatchSpec, tx: mpsc::Sender<Result<Bytes, std::io::Error>>) {
    let _guard = WatcherGuard(s.clone());
    let kill = lock(&s.watches).clone();
    let mut changed = s.changed.subscribe();
    let deadline = w.timeout.map(|t| Instant::now() + t);
    let send = |chunk: String| {
        let tx = tx.clone();
        async move { tx.send(Ok(Bytes::from(chunk))).await.is_ok() }
    };
    let t = &w.target;
    let mut cursor = w.from;
    if w.replay {
        changed.borrow_and_update();
        let (items, rv) = {
            let store = lock(&s.store);
            let page = store
                .list(t.resource, store.rv(), t.namespace.as_deref(), &w.selector, None, None)
                .expect("the current revision is always readable");
            (page.items, store.rv())
        };
        cursor = rv;
        for chunk in items.chunks(CHUNK) {
            let mut out = String::new();
            for obj in chunk {
                event_line(&mut out, t, ChangeType::Added, obj);
            }
            if !send(out).await {
                return;
            }
        }
        if w.initial_end && !send(bookmark_line(t, cursor, true)).await {
            return;
        }
    }
    let mut bookmarks = tokio::time::interval_at(Instant::now() + s.bookmark_interval, s.bookmark_interval);
    let mut injected = s.injected.subscribe();
    loop {
        changed.borrow_and_update();
        // Catch up with the history, in bounded batches.
        loop {
            let batch = lock(&s.store).changes_after(cursor, CHUNK);
            let batch = match batch {
                Ok(b) if b.is_empty() => break,
                Ok(b) => b,
                Err(ReadError::Compacted { requested, oldest }) => {
                    send(error_line(&format!("too old resource version: {requested} ({oldest})"))).await;
                    return;
                }
                Err(ReadError::TooLarge { .. }) => unreachable!("changes_after only fails on compaction"),
            };
            let mut out = String::new();
            for change in &batch {
                push_change(&mut out, &w, change);
            }
            cursor = batch.last().map_or(cursor, |c| c.rv);
            if !out.is_empty() && !send(out).await {
                return;
            }
        }
        // Injected text first: text injected at once reaches the client without a line of
        // the fake's own in between.
        tokio::select! {
            biased;
            text = injected.recv() => if let Ok(text) = text && tx.send(Ok(text)).await.is_err() { return },
            changed = changed.changed() => if changed.is_err() { return },
            _ = bookmarks.tick(), if w.bookmarks => if !send(bookmark_line(t, cursor, false)).await { return },
            () = sleep_until(deadline) => return,
            () = kill.cancelled() => {
                // An error makes hyper abort the connection: no clean end of the body.
                // Nothing to do if the client is gone already.
                tx.send(Err(std::io::Error::other("watch dropped by the test"))).await.ok();
                return;
            }
            () = tx.closed() => return,
        }
    }
}

fn push_change(out: &mut String, w: &WatchSpec, change: &Change) {
    let t = &w.target;
    if change.resource != t.resource || t.namespace.as_deref().is_some_and(|ns| ns != change.obj.namespace()) {
        return;
    }
    if let Some(kind) = change.seen_as(&w.selector) {
        event_line(out, t, kind, &change.obj);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

// ---------------------------------------------------------------------------------------
// Object CRUD

fn read_only(t: &Target) -> Result<(), Failure> {
    match t.view {
        View::EventsV1 => Err(status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the fake apiserver serves events.k8s.io/v1 read-only; write core/v1 events",
            None,
        )),
        View::Stored => Ok(()),
    }
}

fn parse_object(body: &Bytes) -> Result<Value, Failure> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(bad_request("the body must be a JSON object")),
        Err(e) => Err(bad_request(&format!("invalid JSON body: {e}"))),
    }
}

/// Set what the server owns in an object's metadata, and store it (under the store lock,
/// so that the checks before it and the write are one step).
fn store_object(s: &Shared, store: &mut Store, t: &Target, mut value: Value, prev: Option<&Obj>) -> Arc<Obj> {
    let (uid, created) = match prev {
        Some(p) => {
            let old = p.value();
            (old["metadata"]["uid"].clone(), old["metadata"]["creationTimestamp"].clone())
        }
        None => (Value::String(s.uid()), Value::String(now_rfc3339())),
    };
    value["kind"] = t.resource.kind().into();
    value["apiVersion"] = t.resource.api_version().into();
    let rv = store.next_rv();
    let meta = &mut value["metadata"];
    meta["namespace"] = t.namespace.clone().into();
    meta["uid"] = uid;
    meta["creationTimestamp"] = created;
    meta["resourceVersion"] = rv.to_string().into();
    store.put(t.resource, Obj::new(t.resource, &value, rv))
}

fn conflict(t: &Target, name: &str) -> Failure {
    object_status(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            t.resource.plural()
        ),
        t,
        name,
    )
}

fn missing(t: &Target, name: &str) -> Failure {
    object_status(StatusCode::NOT_FOUND, "NotFound", format!("{} \"{name}\" not found", t.resource.plural()), t, name)
}

async fn create(State(s): State<Arc<Shared>>, Path(p): Path<HashMap<String, String>>, body: Bytes) -> Response {
    let run = || -> Result<Response, Failure> {
        let t = Target::resolve(&p)?;
        t.authorize(&s, "create")?;
        read_only(&t)?;
        let mut value = parse_object(&body)?;
        let ns = t.namespace.clone().unwrap_or_default();
        let meta = value.as_object_mut().expect("checked").entry("metadata").or_insert_with(|| json!({}));
        if !meta.is_object() {
            return Err(bad_request("metadata must be an object"));
        }
        if meta["namespace"].as_str().is_some_and(|n| !n.is_empty() && n != ns) {
            return Err(bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let name = match (meta["name"].as_str(), meta["generateName"].as_str()) {
            (Some(n), _) if !n.is_empty() => n.to_owned(),
            (_, Some(g)) if !g.is_empty() => format!("{g}{:05x}", fastrand::u32(..0x10_0000)),
            _ => {
                return Err(status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "name or generateName is required",
                    None,
                ));
            }
        };
        meta["name"] = name.clone().into();
        let t = Target { name: Some(name.clone()), ..t };
        let obj = s.write(|store| {
            if store.get(t.resource, &t.key()).is_some() {
                let message = format!("{} \"{name}\" already exists", t.resource.plural());
                return Err(object_status(StatusCode::CONFLICT, "AlreadyExists", message, &t, &name));
            }
            Ok(store_object(&s, store, &t, value, None))
        })?;
        Ok(json_response(StatusCode::CREATED, obj.json.clone()))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

async fn item_get(State(s): State<Arc<Shared>>, Path(p): Path<HashMap<String, String>>) -> Response {
    let run = || -> Result<Response, Failure> {
        let t = Target::resolve(&p)?;
        t.authorize(&s, "get")?;
        let obj = lock(&s.store).get(t.resource, &t.key()).cloned();
        match obj {
            Some(obj) => Ok(json_response(StatusCode::OK, t.render(&obj).into_owned())),
            None => Err(missing(&t, t.name.as_deref().unwrap_or(""))),
        }
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

/// The precondition a write carries in `metadata.resourceVersion`.
fn check_version(t: &Target, name: &str, value: &Value, current: &Obj) -> Result<(), Failure> {
    match value["metadata"]["resourceVersion"].as_str() {
        Some(v) if !v.is_empty() && v != current.rv.to_string() => Err(conflict(t, name)),
        _ => Ok(()),
    }
}

async fn replace(State(s): State<Arc<Shared>>, Path(p): Path<HashMap<String, String>>, body: Bytes) -> Response {
    let run = || -> Result<Response, Failure> {
        let t = Target::resolve(&p)?;
        t.authorize(&s, "update")?;
        read_only(&t)?;
        let name = t.name.clone().unwrap_or_default();
        let value = parse_object(&body)?;
        if value["metadata"]["name"].as_str() != Some(name.as_str()) {
            return Err(bad_request("the name of the object does not match the name on the URL"));
        }
        let obj = s.write(|store| {
            let current = store.get(t.resource, &t.key()).cloned().ok_or_else(|| missing(&t, &name))?;
            check_version(&t, &name, &value, &current)?;
            Ok(store_object(&s, store, &t, value, Some(&current)))
        })?;
        Ok(json_response(StatusCode::OK, obj.json.clone()))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

async fn patch(
    State(s): State<Arc<Shared>>,
    Path(p): Path<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = || -> Result<Response, Failure> {
        let t = Target::resolve(&p)?;
        t.authorize(&s, "patch")?;
        read_only(&t)?;
        let name = t.name.clone().unwrap_or_default();
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let apply = match content_type.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => false,
            "application/apply-patch+yaml" => {
                if Params::parse(&uri)?.field_manager.is_none_or(|f| f.is_empty()) {
                    return Err(bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value"));
                }
                true
            }
            other => {
                return Err(status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    &format!(
                        "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {other})"
                    ),
                    None,
                ));
            }
        };
        // Apply bodies are taken as JSON (which is YAML too) and merged.
        let patch = parse_object(&body)?;
        let (obj, created) = s.write(|store| {
            let current = store.get(t.resource, &t.key()).cloned();
            let mut value = match &current {
                Some(cur) => {
                    check_version(&t, &name, &patch, cur)?;
                    cur.value()
                }
                None if apply => json!({"metadata": {}}),
                None => return Err(missing(&t, &name)),
            };
            merge_patch(&mut value, &patch);
            value["metadata"]["name"] = name.clone().into();
            Ok((store_object(&s, store, &t, value, current.as_deref()), current.is_none()))
        })?;
        let code = if created { StatusCode::CREATED } else { StatusCode::OK };
        Ok(json_response(code, obj.json.clone()))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object");
    for (k, v) in patch {
        if v.is_null() {
            target.remove(k);
        } else {
            merge_patch(target.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

async fn delete(State(s): State<Arc<Shared>>, Path(p): Path<HashMap<String, String>>) -> Response {
    let run = || -> Result<Response, Failure> {
        let t = Target::resolve(&p)?;
        t.authorize(&s, "delete")?;
        read_only(&t)?;
        let name = t.name.clone().unwrap_or_default();
        let deleted = s.write(|store| store.delete(t.resource, &t.key())).ok_or_else(|| missing(&t, &name))?;
        let uid = deleted.value()["metadata"]["uid"].clone();
        let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                          "details": {"name": name, "group": t.group, "kind": t.resource.plural(), "uid": uid}});
        Ok(json_response(StatusCode::OK, body.to_string()))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge_patch(&mut v, &json!({"a": {"b": null, "e": 3}, "d": [2], "f": "x"}));
        assert_eq!(v, json!({"a": {"c": 2, "e": 3}, "d": [2], "f": "x"}));
    }
}
