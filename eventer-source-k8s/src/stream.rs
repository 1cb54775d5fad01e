//! One list/watch loop (per namespace, or for all), run as a task.

use std::time::Duration;

use eventer_core::{Error, ErrorKind, Event, decode::event_from_raw, pipeline::Backoff};
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
    cursor::Cursor,
    wire::{ListPage, WatchLine, decode_watch_line},
};

/// Page size of lists (client-go's and kube-rs's default).
const PAGE: u32 = 500;
/// How long a watch may stay silent beyond its server-side timeout before it is
/// considered dead (a half-open connection sends nothing, not even an error).
const IDLE_MARGIN: Duration = Duration::from_secs(30);

/// What a stream tells the source.
pub(crate) enum Msg {
    /// An occurrence (or `None`: only the cursor moved) and the stream's cursor after it.
    Item { stream: usize, cursor: Cursor, event: Option<Box<Event>> },
    /// A problem that retrying cannot fix: the source fails.
    Failed(Error),
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

    async fn emit(&self, event: Option<Box<Event>>) -> Result<(), Trouble> {
        let item = Msg::Item { stream: self.index, cursor: self.cursor.clone(), event };
        self.tx.send(item).await.map_err(|_| Trouble::Closed)
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
        self.cursor = Cursor::at(&page.metadata.resource_version);
        self.from_now = false;
        self.emit(None).await
    }

    /// A paged list from a consistent snapshot, emitting what the cursor does not cover.
    async fn list(&mut self) -> Result<(), Trouble> {
        let mut token: Option<String> = None;
        let mut last_key = String::new();
        // Marks assume the apiserver's key order; without it they are not kept.
        let mut ordered = true;
        loop {
            let mut lp = self.list_params().limit(PAGE);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let req = Request::new(&self.path).list(&lp).map_err(request_error)?;
            let text = self.client.request_text(req).await.map_err(|e| classify(e, &self.path))?;
            let page = ListPage::parse(&text).map_err(Trouble::Retry)?;
            let snap = page.metadata.resource_version;
            for raw in page.items {
                let event = match event_from_raw(raw) {
                    Ok(e) => e,
                    Err(e) => {
                        warn!(path = %self.path, error = %e.chain(), "Skipping an undecodable Event.");
                        continue;
                    }
                };
                let key = format!("{}/{}", event.namespace, event.name);
                if ordered && key <= last_key {
                    warn!(path = %self.path, "List is not in key order; a restart during it may repeat events.");
                    ordered = false;
                }
                let covered = self.cursor.covers(&event.resource_version, &key, event.last_seen());
                if ordered {
                    self.cursor.listed(&snap, &key);
                }
                if !covered {
                    self.emit(Some(Box::new(event))).await?;
                }
                last_key = key;
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(next) => token = Some(next),
                None => {
                    self.cursor.list_done(&snap);
                    return self.emit(None).await;
                }
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
            match decode_watch_line(&line).map_err(Trouble::Retry)? {
                WatchLine::Upsert(event) => {
                    let key = format!("{}/{}", event.namespace, event.name);
                    let covered = self.cursor.covers(&event.resource_version, &key, None);
                    self.cursor.advance(&event.resource_version);
                    self.emit(if covered { None } else { Some(event) }).await?;
                }
                WatchLine::Deleted { resource_version } | WatchLine::Bookmark { resource_version } => {
                    self.cursor.advance(&resource_version);
                    self.emit(None).await?;
                }
                WatchLine::Error { code: 410, .. } => return Err(Trouble::Gone),
                WatchLine::Error { code, reason, message } => {
                    return Err(Trouble::Retry(Error::new(
                        ErrorKind::Unavailable,
                        format!("watch of {} failed: {code} {reason}: {message}", self.path),
                    )));
                }
            }
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
