//! A loopback fake kube-apiserver for eventer's tests: Events (core/v1 and
//! events.k8s.io/v1), ConfigMaps and coordination.k8s.io/v1 Leases.
//!
//! It speaks the real protocol, checked against kube-rs's `Api`/`watcher` and `kubectl`:
//! a global etcd-like resourceVersion; lists with `limit`/`continue` and
//! `resourceVersion`/`resourceVersionMatch` served from consistent snapshots; field
//! selectors; chunked watch streams with ADDED/MODIFIED/DELETED/BOOKMARK, `timeoutSeconds`,
//! history replay and streaming lists (`sendInitialEvents`); compaction, after which old
//! revisions answer `410 Expired` (as a watch ERROR event, as the apiserver does, or as an
//! HTTP status in [`FakeApiServer::set_expired_as_status`] mode); optimistic concurrency
//! with real `Status` objects; bearer-token auth and optional TLS; Event TTL expiry
//! ([`Builder::event_ttl`]).
//!
//! Tests drive it with controls that a real cluster lacks: create, update and delete
//! events, bulk-load many, compact, drop watches, make the server unreachable or answer
//! every request with an error status, and wait on conditions (watchers connected,
//! connections refused) instead of sleeping.
//!
//! ```no_run
//! use eventer_fake_apiserver::{FakeApiServer, NewEvent};
//! # async fn demo() -> std::io::Result<()> {
//! let server = FakeApiServer::start().await?;
//! server.create_event(NewEvent::new("default", "web-0").reason("BackOff").warning());
//! println!("kube-apiserver at {}", server.url());
//! # Ok(()) }
//! ```

mod api;
mod events;
mod server;
mod steady;
mod store;

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU64, Ordering::SeqCst},
    },
    time::Duration,
};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

pub use events::NewEvent;
pub use steady::SteadyLoad;
use store::{Obj, Resource, Store, Template};

/// How many request lines [`FakeApiServer::requests`] keeps.
const REQUEST_LOG: usize = 10_000;

/// Server settings; see [`FakeApiServer::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    token: Option<String>,
    tls: bool,
    bookmark_interval: Duration,
    event_ttl: Option<Duration>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder { token: None, tls: false, bookmark_interval: Duration::from_secs(1), event_ttl: None }
    }
}

impl Builder {
    /// Require `Authorization: Bearer <token>` (401 otherwise).
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Serve HTTPS with a certificate from a CA generated at start ([`FakeApiServer::ca_pem`]).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK (default 1 s;
    /// the real apiserver sends one about every minute).
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    /// Delete Events not written for `ttl` (a watch sees DELETED), as kube-apiserver's
    /// `--event-ttl` (default 1h) does; an update renews the TTL. Off by default.
    pub fn event_ttl(mut self, ttl: Duration) -> Self {
        self.event_ttl = Some(ttl);
        self
    }

    /// Bind 127.0.0.1 on a free port and serve.
    ///
    /// # Errors
    /// When the port cannot be bound or the certificate cannot be made.
    pub async fn start(self) -> std::io::Result<FakeApiServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let tls = if self.tls { Some(server::Tls::generate().map_err(std::io::Error::other)?) } else { None };
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            changed: watch::channel(0).0,
            token: self.token,
            bookmark_interval: self.bookmark_interval,
            unreachable: AtomicBool::new(false),
            forbidden: AtomicBool::new(false),
            failing: AtomicU16::new(0),
            expired_as_status: AtomicBool::new(false),
            unordered_lists: AtomicBool::new(false),
            connections: Mutex::new(CancellationToken::new()),
            watches: Mutex::new(CancellationToken::new()),
            watchers: watch::channel(0).0,
            refused: watch::channel(0).0,
            requests: Mutex::new(VecDeque::new()),
            // uid 0 is the cluster's.
            uids: AtomicU64::new(1),
            cluster_uid: new_uid(0),
            watch_behaviour: AtomicU8::new(WatchBehaviour::Normal as u8),
            faults: Mutex::new(Vec::new()),
            injected: broadcast::channel(256).0,
        });
        let stop = CancellationToken::new();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let ca = tls.as_ref().map(|t| (t.ca_pem.clone(), t.ca_der.clone()));
        tokio::spawn(server::serve(listener, api::router(shared.clone()), shared.clone(), tls, stop.clone()));
        if let Some(ttl) = self.event_ttl {
            tokio::spawn(expire_events(shared.clone(), ttl, stop.clone()));
        }
        Ok(FakeApiServer { shared, addr, url: format!("{scheme}://{addr}"), ca, stop })
    }
}

/// Delete the Events whose TTL ran out, checking a few times per TTL.
async fn expire_events(shared: Arc<Shared>, ttl: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval((ttl / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(cutoff) = std::time::Instant::now().checked_sub(ttl) else { continue };
        shared.write(|store| {
            for key in store.written_before(Resource::Events, cutoff) {
                store.delete(Resource::Events, &key);
            }
        });
    }
}

/// State shared by the handlers and the test controls.
pub(crate) struct Shared {
    pub(crate) store: Mutex<Store>,
    /// The current revision, to wake watchers.
    pub(crate) changed: watch::Sender<u64>,
    pub(crate) token: Option<String>,
    pub(crate) bookmark_interval: Duration,
    pub(crate) unreachable: AtomicBool,
    pub(crate) forbidden: AtomicBool,
    /// A status to answer every request with (0: none).
    pub(crate) failing: AtomicU16,
    pub(crate) expired_as_status: AtomicBool,
    /// List pages in reverse key order.
    pub(crate) unordered_lists: AtomicBool,
    /// Cancelled (and replaced) to drop every open connection.
    pub(crate) connections: Mutex<CancellationToken>,
    /// Cancelled (and replaced) to cut every open watch.
    pub(crate) watches: Mutex<CancellationToken>,
    /// Open watches.
    pub(crate) watchers: watch::Sender<usize>,
    /// Connections refused while unreachable.
    pub(crate) refused: watch::Sender<u64>,
    pub(crate) requests: Mutex<VecDeque<String>>,
    uids: AtomicU64,
    /// `metadata.uid` of the `kube-system` namespace.
    pub(crate) cluster_uid: String,
    /// A [`WatchBehaviour`] as its discriminant.
    pub(crate) watch_behaviour: AtomicU8,
    /// Scripted failures, checked in order against each request.
    pub(crate) faults: Mutex<Vec<Fault>>,
    /// Raw text written into every open watch stream.
    pub(crate) injected: broadcast::Sender<Bytes>,
}

/// How watch requests are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[repr(u8)]
pub enum WatchBehaviour {
    /// As the apiserver does.
    Normal,
    /// The request is read and never answered: no status line, no byte (a wedged apiserver
    /// or a proxy holding the connection).
    Hang,
    /// `200 OK` and headers, then nothing at all: no event, no bookmark, no end.
    Silent,
}

/// A scripted failure: the next `times` requests whose `METHOD /path?query` contains
/// `matching` are answered with `code`.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub(crate) matching: String,
    pub(crate) times: u32,
    pub(crate) code: u16,
    /// Seconds, sent as `Retry-After` and `details.retryAfterSeconds`.
    pub(crate) retry_after: Option<u64>,
}

/// Lock a mutex, ignoring poisoning: a panicking test thread leaves consistent data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Run `f` on the store, then wake the watchers if it changed anything.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let (out, rv) = {
            let mut store = lock(&self.store);
            let out = f(&mut store);
            (out, store.rv())
        };
        self.changed.send_if_modified(|cur| std::mem::replace(cur, rv) != rv);
        out
    }

    /// A new object uid.
    pub(crate) fn uid(&self) -> String {
        new_uid(self.uids.fetch_add(1, SeqCst))
    }

    pub(crate) fn log_request(&self, line: String) {
        let mut log = lock(&self.requests);
        if log.len() == REQUEST_LOG {
            log.pop_front();
        }
        log.push_back(line);
    }
}

/// A random uid in the version-4 layout, ending in the serial number `n`.
fn new_uid(n: u64) -> String {
    let r = fastrand::u64(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{n:012x}",
        r >> 32,
        (r >> 16) & 0xffff,
        (r >> 4) & 0xfff,
        fastrand::u16(..0x1000)
    )
}

/// Seconds-precision RFC 3339, as `metav1.Time` is written.
pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A stored Event, as [`FakeApiServer::create_event`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.resourceVersion`.
    pub resource_version: u64,
}

/// A running fake apiserver; stops when dropped.
#[derive(Debug)]
pub struct FakeApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    ca: Option<(String, Vec<u8>)>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("rv", &lock(&self.store).rv()).finish_non_exhaustive()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.stop.cancel();
        lock(&self.shared.connections).cancel();
    }
}

impl FakeApiServer {
    /// Settings for a server.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A plain-HTTP server without auth.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start() -> std::io::Result<FakeApiServer> {
        Builder::default().start().await
    }

    /// `http://127.0.0.1:<port>` (or `https://`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) that signed the server certificate, with TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca.as_ref().map(|(pem, _)| pem.as_str())
    }

    /// The CA certificate (DER), with TLS.
    pub fn ca_der(&self) -> Option<&[u8]> {
        self.ca.as_ref().map(|(_, der)| der.as_slice())
    }

    /// A kubeconfig (YAML) for this server: its URL, CA and token.
    pub fn kubeconfig(&self) -> String {
        use base64::Engine;
        let ca = self.ca_pem().map_or(String::new(), |pem| {
            format!("\n    certificate-authority-data: {}", base64::engine::general_purpose::STANDARD.encode(pem))
        });
        let token = self.shared.token.as_deref().map_or(String::new(), |t| format!("\n    token: {t}"));
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {}{ca}\n\
             users:\n- name: tester\n  user:{}{token}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: default\n",
            self.url,
            if token.is_empty() { " {}" } else { "" },
        )
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.store).rv()
    }

    /// How many Events are stored.
    pub fn event_count(&self) -> usize {
        lock(&self.shared.store).len(Resource::Events)
    }

    /// Create an Event (a watch sees ADDED).
    ///
    /// # Panics
    /// When an Event of that name exists.
    pub fn create_event(&self, event: NewEvent) -> EventRef {
        let now = now_rfc3339();
        let uid = self.shared.uid();
        self.shared.write(|store| {
            let rv = store.next_rv();
            let name =
                event.name.clone().unwrap_or_else(|| format!("{}.{:x}", event.object, 0x17a0_0000_0000_0000_u64 + rv));
            let mut value = event.to_value(name.clone(), &now);
            value["metadata"]["uid"] = uid.clone().into();
            value["metadata"]["resourceVersion"] = rv.to_string().into();
            let obj = Obj::new(Resource::Events, &value, rv);
            assert!(store.get(Resource::Events, &obj.key).is_none(), "event {} exists", obj.key);
            store.put(Resource::Events, obj);
            EventRef { namespace: event.namespace.clone(), name, uid, resource_version: rv }
        })
    }

    /// Record a repeat of an Event as the legacy recorder does: `count` + 1 and a new
    /// `lastTimestamp` (a watch sees MODIFIED). Returns the new resourceVersion.
    pub fn update_event(&self, namespace: &str, name: &str) -> Option<u64> {
        let now = now_rfc3339();
        self.shared.write(|store| {
            let key = format!("{namespace}/{name}");
            let mut value = store.get(Resource::Events, &key)?.value();
            let rv = store.next_rv();
            value["count"] = (value["count"].as_u64().unwrap_or(1) + 1).into();
            value["lastTimestamp"] = now.into();
            value["metadata"]["resourceVersion"] = rv.to_string().into();
            store.put(Resource::Events, Obj::new(Resource::Events, &value, rv));
            Some(rv)
        })
    }

    /// Delete an Event (TTL expiry; a watch sees DELETED). Returns the deletion's revision.
    pub fn delete_event(&self, namespace: &str, name: &str) -> Option<u64> {
        self.shared.write(|store| store.delete(Resource::Events, &format!("{namespace}/{name}")).map(|o| o.rv))
    }

    /// Create `n` Events in `namespace` cheaply (one revision each, one wake-up for
    /// all); returns the last revision.
    pub fn bulk_load_events(&self, namespace: &str, n: usize) -> u64 {
        let now = now_rfc3339();
        let mut value = NewEvent::new(namespace, "@object@")
            .reason("Pulled")
            .message("Successfully pulled image")
            .to_value("@name@".into(), &now);
        value["metadata"]["uid"] = "@uid@".into();
        value["metadata"]["resourceVersion"] = "@rv@".into();
        let template = Template::new(&Obj::new(Resource::Events, &value, 0), &["@name@", "@object@", "@uid@", "@rv@"]);
        self.shared.write(|store| {
            for i in 0..n {
                let rv = store.next_rv();
                let object = format!("bulk-{i:07}");
                let name = format!("{object}.{rv:x}");
                let (uid, rv_text) = (self.shared.uid(), rv.to_string());
                store.put(Resource::Events, template.instantiate(rv, &[&name, &object, &uid, &rv_text]));
            }
            store.rv()
        })
    }

    /// Create `load.total` Events in `namespace` at `load.per_second`, one revision and
    /// one wake-up of the watches each, as a busy cluster's recorders write them; the task
    /// ends when all are created.
    pub fn create_steadily(&self, namespace: &str, load: SteadyLoad) -> tokio::task::JoinHandle<()> {
        steady::spawn(self.shared.clone(), namespace.to_owned(), load)
    }

    /// Compact the history up to now: watches and reads from older revisions get
    /// 410 Expired. Returns the compaction revision.
    pub fn compact(&self) -> u64 {
        lock(&self.shared.store).compact()
    }

    /// Answer an expired watch with an HTTP 410 status instead of the apiserver's
    /// 200 + ERROR event (kube-rs's watcher retries the former forever).
    pub fn set_expired_as_status(&self, on: bool) {
        self.shared.expired_as_status.store(on, SeqCst);
    }

    /// Return each list page's items in reverse key order, as a server that does not
    /// list in etcd's key order might (continue tokens still work).
    pub fn set_unordered_lists(&self, on: bool) {
        self.shared.unordered_lists.store(on, SeqCst);
    }

    /// Answer every resource request with 403 Forbidden (RBAC missing).
    pub fn set_forbidden(&self, on: bool) {
        self.shared.forbidden.store(on, SeqCst);
    }

    /// Answer every request with this HTTP status (e.g. 503, as an overloaded apiserver
    /// or a load balancer in front of it does) until `None`.
    ///
    /// # Panics
    /// When `code` is not a status between 100 and 999.
    pub fn set_failing(&self, code: Option<u16>) {
        let code = code.unwrap_or(0);
        assert!(code == 0 || (100..1000).contains(&code), "invalid HTTP status {code}");
        self.shared.failing.store(code, SeqCst);
    }

    /// Cut every open watch stream abruptly (no clean end of the chunked body).
    pub fn drop_watches(&self) {
        std::mem::take(&mut *lock(&self.shared.watches)).cancel();
    }

    /// Close every open connection, idle keep-alive ones included.
    pub fn drop_connections(&self) {
        std::mem::take(&mut *lock(&self.shared.connections)).cancel();
    }

    /// While on, every connection is closed as soon as it is accepted, and turning it
    /// on closes the open ones: the apiserver is unreachable.
    pub fn set_unreachable(&self, on: bool) {
        self.shared.unreachable.store(on, SeqCst);
        if on {
            self.drop_connections();
        }
    }

    /// Open watch streams.
    pub fn watchers(&self) -> usize {
        *self.shared.watchers.borrow()
    }

    /// Wait until at least `n` watches are open.
    pub async fn wait_for_watchers(&self, n: usize) {
        let mut rx = self.shared.watchers.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        rx.wait_for(|w| *w >= n).await.ok();
    }

    /// Connections refused while unreachable, in all.
    pub fn refused(&self) -> u64 {
        *self.shared.refused.borrow()
    }

    /// Wait until at least `n` connections were refused in all.
    pub async fn wait_for_refused(&self, n: u64) {
        let mut rx = self.shared.refused.subscribe();
        rx.wait_for(|r| *r >= n).await.ok();
    }

    /// The last requests, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.requests).iter().cloned().collect()
    }

    /// The `metadata.uid` of this cluster's `kube-system` namespace (random per server).
    pub fn cluster_uid(&self) -> &str {
        &self.shared.cluster_uid
    }

    /// How watch requests are answered from now on (open watches are not affected).
    pub fn set_watch_behaviour(&self, behaviour: WatchBehaviour) {
        self.shared.watch_behaviour.store(behaviour as u8, SeqCst);
    }

    /// Answer the next `times` requests whose `METHOD /path?query` contains `matching`
    /// with the HTTP status `code` and a `Status` body; other requests are served.
    ///
    /// # Panics
    /// When `code` is not a status between 100 and 999.
    pub fn fail_next(&self, matching: &str, times: u32, code: u16) {
        self.add_fault(Fault { matching: matching.to_owned(), times, code, retry_after: None });
    }

    /// Answer the next `times` requests whose `METHOD /path?query` contains `matching`
    /// with `429 Too Many Requests`, `Retry-After: <seconds>` and the same number in
    /// `details.retryAfterSeconds`, as kube-apiserver's priority and fairness does.
    pub fn throttle_next(&self, matching: &str, times: u32, seconds: u64) {
        self.add_fault(Fault { matching: matching.to_owned(), times, code: 429, retry_after: Some(seconds) });
    }

    fn add_fault(&self, fault: Fault) {
        assert!((100..1000).contains(&fault.code), "invalid HTTP status {}", fault.code);
        lock(&self.shared.faults).push(fault);
    }

    /// Write `text` as it is into every open watch stream (a hostile or broken apiserver:
    /// a line with a bad resourceVersion, an endless line); returns how many got it.
    pub fn inject_watch_text(&self, text: impl Into<Bytes>) -> usize {
        self.shared.injected.send(text.into()).unwrap_or(0)
    }

    /// A ConfigMap as stored.
    pub fn configmap(&self, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.shared.store).get(Resource::ConfigMaps, &format!("{namespace}/{name}")).map(|o| o.value())
    }

    /// Create a ConfigMap with `data`, or replace the data of the one of that name (a
    /// watch sees ADDED or MODIFIED). Returns its new resourceVersion.
    pub fn put_configmap(&self, namespace: &str, name: &str, data: &[(&str, &str)]) -> u64 {
        let uid = self.shared.uid();
        let data: serde_json::Map<String, Value> = data.iter().map(|(k, v)| ((*k).to_owned(), (*v).into())).collect();
        self.shared.write(|store| {
            let key = format!("{namespace}/{name}");
            let rv = store.next_rv();
            let mut value = match store.get(Resource::ConfigMaps, &key) {
                Some(existing) => existing.value(),
                None => serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"namespace": namespace, "name": name, "uid": uid, "creationTimestamp": now_rfc3339()},
                }),
            };
            value["data"] = Value::Object(data);
            value["metadata"]["resourceVersion"] = rv.to_string().into();
            store.put(Resource::ConfigMaps, Obj::new(Resource::ConfigMaps, &value, rv));
            rv
        })
    }

    /// Delete a ConfigMap (a watch sees DELETED). Returns the deletion's revision.
    pub fn delete_configmap(&self, namespace: &str, name: &str) -> Option<u64> {
        self.shared.write(|store| store.delete(Resource::ConfigMaps, &format!("{namespace}/{name}")).map(|o| o.rv))
    }
}
