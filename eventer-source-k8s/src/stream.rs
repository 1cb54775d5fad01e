//! One list/watch loop (per namespace, or for all), run as a task.

use std::{fmt::Write as _, sync::Arc, time::Duration};

use eventer_core::{Error, ErrorKind, Event, pipeline::Backoff};
use futures::AsyncBufReadExt;
use kube::{
    Client,
    api::{ListParams, WatchParams},
    core::Request,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::{
    Readiness,
    cursor::{Change, Cursor},
    wire::{ListPage, WatchLine, decode_watch_line},
};

/// Page size of lists (client-go's and kube-rs's default).
const PAGE: u32 = 500;
/// How long a watch may stay silent beyond its server-side timeout before it is
/// considered dead (a half-open connection sends nothing, not even an error).
const IDLE_MARGIN: Duration = Duration::from_secs(30);

/// What a stream tells the source.
pub(crate) enum Msg {
    /// Items in order: a list page at once, a watch line alone.
    Items { stream: usize, items: Vec<Item> },
    /// A problem that retrying cannot fix: the source fails.
    Failed(Error),
}

/// One step of a stream: how its cursor moved, and what the source yields for it.
pub(crate) struct Item {
    pub(crate) change: Option<Change>,
    pub(crate) emit: Emit,
}

// Most items are events, kept inline in the page's vector: boxing would be an allocation each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Emit {
    /// An occurrence.
    Event(Event),
    /// Only the cursor moved, to a point worth checkpointing.
    Progress,
    /// Only the cursor moved (an item already covered, inside a list).
    Silent,
}

/// Why a step stopped.
enum Trouble {
    /// The version is gone (410): relist.
    Gone,
    /// Retry after a backoff.
    Retry(Error),
    /// Give up: the source fails with this.
    Fatal(Error),
    /// The source is gone.
    Closed,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Learn the current version (a `limit=1` list), skipping history: `startFrom=now`.
    Now,
    List,
    Watch,
}

pub(crate) struct Stream {
    pub(crate) index: usize,
    pub(crate) client: Client,
    pub(crate) path: String,
    pub(crate) field_selector: Option<String>,
    pub(crate) cursor: Cursor,
    /// No checkpoint and `startFrom=now`.
    pub(crate) from_now: bool,
    pub(crate) watch_timeout: Duration,
    pub(crate) tx: mpsc::Sender<Msg>,
    pub(crate) readiness: Readiness,
    /// Whether this server lists in key order (as etcd, the watch cache and kine do),
    /// which list marks rely on; once seen otherwise, no list of this stream keeps one.
    pub(crate) key_order: bool,
}

impl Stream {
    pub(crate) async fn run(mut self) {
        let backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        let mut failures = 0u32;
        let mut synced = false;
        let mut step = if self.from_now {
            Step::Now
        } else if self.cursor.needs_list() {
            Step::List
        } else {
            Step::Watch
        };
        loop {
            let result = match step {
                Step::Now => self.current_version().await.map(|()| Step::Watch),
                Step::List => self.list().await.map(|()| Step::Watch),
                Step::Watch => {
                    let readiness = self.readiness.clone();
                    let mut on_connect = || {
                        failures = 0;
                        if !synced {
                            synced = true;
                            readiness.synced();
                        }
                        readiness.clear_error();
                    };
                    self.watch(&mut on_connect).await.map(|()| Step::Watch)
                }
            };
            match result {
                Ok(next) => step = next,
                Err(Trouble::Gone) => {
                    self.readiness.relisted();
                    info!(path = %self.path, rv = %self.cursor.rv, "Resource version expired (410); re-listing.");
                    step = Step::List;
                }
                Err(Trouble::Retry(e)) => {
                    failures += 1;
                    let delay = e.retry_after().unwrap_or_else(|| backoff.delay(failures));
                    warn!(path = %self.path, error = %e.chain(), retry_in = ?delay, "Kubernetes source: will retry.");
                    self.readiness.restarted();
                    self.readiness.set_error(&e);
                    tokio::time::sleep(delay).await;
                }
                Err(Trouble::Fatal(e)) => {
                    self.readiness.set_error(&e);
                    // The source may be gone too; then nobody needs the error.
                    self.tx.send(Msg::Failed(e)).await.ok();
                    return;
                }
                Err(Trouble::Closed) => return,
            }
        }
    }

    /// Move the cursor and queue what the source yields for it.
    fn step(&mut self, items: &mut Vec<Item>, change: Option<Change>, emit: Emit) {
        if let Some(change) = &change {
            self.cursor.apply(change);
        }
        items.push(Item { change, emit });
    }

    async fn send(&self, items: Vec<Item>) -> Result<(), Trouble> {
        self.tx.send(Msg::Items { stream: self.index, items }).await.map_err(|_| Trouble::Closed)
    }

    fn list_params(&self) -> ListParams {
        let lp = ListParams::default();
        match &self.field_selector {
            Some(f) => lp.fields(f),
            None => lp,
        }
    }

    async fn current_version(&mut self) -> Result<(), Trouble> {
        let req = Request::new(&self.path).list(&self.list_params().limit(1)).map_err(request_error)?;
        let text = self.client.request_text(req).await.map_err(|e| classify(e, &self.path))?;
        let page = ListPage::parse(&text).map_err(Trouble::Retry)?;
        debug!(path = %self.path, rv = %page.metadata.resource_version, "Starting from now.");
        let mut items = Vec::with_capacity(1);
        self.step(&mut items, Some(Change::At(page.metadata.resource_version)), Emit::Progress);
        self.from_now = false;
        self.send(items).await
    }

    /// A paged list from a consistent snapshot, emitting what the cursor does not cover;
    /// each page goes to the source at once.
    async fn list(&mut self) -> Result<(), Trouble> {
        let mut token: Option<String> = None;
        let mut key = String::new();
        let mut last_key = String::new();
        loop {
            let mut lp = self.list_params().limit(PAGE);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let req = Request::new(&self.path).list(&lp).map_err(request_error)?;
            let text = self.client.request_text(req).await.map_err(|e| classify(e, &self.path))?;
            let page = ListPage::parse(&text).map_err(Trouble::Retry)?;
            let snap: Arc<str> = page.metadata.resource_version.into();
            let mut items = Vec::with_capacity(page.items.len() + 1);
            for item in page.items {
                let event = match item {
                    Ok(e) => e,
                    Err(e) => {
                        warn!(path = %self.path, error = %e.chain(), "Skipping an undecodable Event.");
                        self.readiness.skipped();
                        continue;
                    }
                };
                key.clear();
                write!(key, "{}/{}", event.namespace, event.name).expect("writing to a String cannot fail");
                if self.key_order && key <= last_key {
                    warn!(path = %self.path, "The apiserver does not list in key order; a restart during a list may repeat events.");
                    self.key_order = false;
                    // The mark claims keys up to the last one read, which this list may still hold.
                    self.step(&mut items, Some(Change::Unlisted(snap.clone())), Emit::Silent);
                }
                let covered = self.cursor.covers(&event.resource_version, &key, event.last_seen());
                let change = self.key_order.then(|| Change::Listed { snap: snap.clone(), key: key.clone() });
                self.step(&mut items, change, if covered { Emit::Silent } else { Emit::Event(event) });
                std::mem::swap(&mut key, &mut last_key);
            }
            let next = page.metadata.continue_.filter(|c| !c.is_empty());
            if next.is_none() {
                self.step(&mut items, Some(Change::At(snap.to_string())), Emit::Progress);
            }
            self.send(items).await?;
            match next {
                Some(next) => token = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Watch from the cursor until the stream ends (Ok: re-watch) or fails.
    async fn watch(&mut self, on_connect: &mut impl FnMut()) -> Result<(), Trouble> {
        let mut wp = WatchParams::default().timeout(u32::try_from(self.watch_timeout.as_secs()).unwrap_or(290));
        if let Some(f) = &self.field_selector {
            wp = wp.fields(f);
        }
        let req = Request::new(&self.path).watch(&wp, &self.cursor.rv).map_err(request_error)?;
        let reader = self.client.request_stream(req).await.map_err(|e| classify(e, &self.path))?;
        on_connect();
        let mut reader = std::pin::pin!(reader);
        let idle = self.watch_timeout + IDLE_MARGIN;
        let mut line = String::new();
        loop {
            line.clear();
            let read = tokio::time::timeout(idle, reader.read_line(&mut line)).await.map_err(|_| {
                Trouble::Retry(Error::new(
                    ErrorKind::Unavailable,
                    format!("watch of {} went silent for {idle:?}", self.path),
                ))
            })?;
            match read {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => {
                    return Err(Trouble::Retry(
                        Error::new(ErrorKind::Unavailable, format!("watch of {} broke", self.path)).with_source(e),
                    ));
                }
            }
            if line.trim().is_empty() {
                continue;
            }
            let mut items = Vec::with_capacity(1);
            match decode_watch_line(&line).map_err(Trouble::Retry)? {
                // Watching again would get the same line: skip it, as a list skips such an item.
                WatchLine::Undecodable { resource_version, error } => {
                    warn!(path = %self.path, error = %error.chain(), rv = %resource_version, "Skipping an undecodable watch event.");
                    self.readiness.skipped();
                    self.step(&mut items, Some(Change::Advance(resource_version)), Emit::Progress);
                }
                WatchLine::Upsert(event) => {
                    let key = format!("{}/{}", event.namespace, event.name);
                    let covered = self.cursor.covers(&event.resource_version, &key, None);
                    let change = Change::Advance(event.resource_version.clone());
                    self.step(&mut items, Some(change), if covered { Emit::Progress } else { Emit::Event(*event) });
                }
                WatchLine::Deleted { resource_version } | WatchLine::Bookmark { resource_version } => {
                    self.step(&mut items, Some(Change::Advance(resource_version)), Emit::Progress);
                }
                WatchLine::Error { code: 410, .. } => return Err(Trouble::Gone),
                WatchLine::Error { code, reason, message } => {
                    return Err(Trouble::Retry(Error::new(
                        ErrorKind::Unavailable,
                        format!("watch of {} failed: {code} {reason}: {message}", self.path),
                    )));
                }
            }
            self.send(items).await?;
        }
    }
}

fn request_error(e: kube::core::request::Error) -> Trouble {
    Trouble::Fatal(Error::new(ErrorKind::Config, "invalid list/watch request").with_source(e))
}

/// Sort a failed request into relist, retry or give up.
fn classify(e: kube::Error, path: &str) -> Trouble {
    match &e {
        kube::Error::Api(s) => {
            let what = format!("apiserver answered {} {} for {path}: {}", s.code, s.reason, s.message);
            match s.code {
                410 => Trouble::Gone,
                // Credentials rotate and RBAC gets fixed: worth retrying, loudly.
                401 => Trouble::Retry(
                    Error::new(ErrorKind::Unauthorized, format!("{what} (check the token or kubeconfig)")).temporary(),
                ),
                403 => Trouble::Retry(
                    Error::new(ErrorKind::Unauthorized, format!("{what} (RBAC must allow list and watch on events)"))
                        .temporary(),
                ),
                400 | 404 | 405 | 422 => Trouble::Fatal(Error::new(ErrorKind::Config, what)),
                _ => Trouble::Retry(Error::new(ErrorKind::Unavailable, what)),
            }
        }
        kube::Error::Auth(_) => Trouble::Retry(
            Error::new(ErrorKind::Unauthorized, "cannot load the credentials").with_source(e).temporary(),
        ),
        _ => Trouble::Retry(
            Error::new(ErrorKind::Unavailable, format!("cannot reach the apiserver for {path}")).with_source(e),
        ),
    }
}
