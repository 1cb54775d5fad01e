//! One list/watch loop (per namespace, or for all), run as a task.

use std::{fmt::Write as _, sync::Arc, time::Duration};

use eventer_core::{Error, ErrorKind, SharedEvent, pipeline::Backoff};
use kube::{
    Client,
    api::{ListParams, WatchParams},
    core::Request,
};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::{
    Readiness,
    config::{SourceConfig, StartFrom},
    cursor::{Change, Cursor, valid},
    http::{self, Line, Lines, Trouble},
    source::Tally,
    wire::{ListPage, WatchLine, decode_watch_line},
};

/// Page size of lists (client-go's and kube-rs's default).
const PAGE: u32 = 500;
/// Most watch items handed to the source in one message: a list page's worth.
const HANDOFF: usize = PAGE as usize;

/// How long a watch that has nothing more for now is left to collect lines before it is
/// read again. An apiserver writes each event as it happens, so a busy watch, read as
/// soon as anything arrives, costs a wake-up, a read and a hand-off per millisecond or
/// so; pausing makes each of those serve many events, for at most this much latency.
const WATCH_PACE: Duration = Duration::from_millis(10);

/// What a stream tells the source.
pub(crate) enum Msg {
    /// Where each stream starts (sent once, before any item): the source's position.
    Started(crate::cursor::Cursors),
    /// Items in order: a list page at once, the watch lines that came together at once.
    Items { stream: usize, items: Vec<Item> },
    /// A problem that retrying cannot fix: the source fails.
    Failed(Error),
}

/// One step of a stream: how its cursor moved, and what the source yields for it.
pub(crate) struct Item {
    pub(crate) change: Option<Change>,
    pub(crate) emit: Emit,
}

pub(crate) enum Emit {
    /// An occurrence, shared already: it is not copied again on its way to the sinks, and a
    /// hand-off of 500 inline events would be over 250 KiB.
    Event(SharedEvent),
    /// Only the cursor moved, to a point worth checkpointing.
    Progress,
    /// Only the cursor moved (an item already covered, inside a list).
    Silent,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Check that a resumed cursor is not ahead of the cluster (a `limit=1` list).
    Check,
    /// Learn the current version (a `limit=1` list), skipping history: `startFrom=now`.
    Now,
    List,
    Watch,
}

pub(crate) struct Stream {
    pub(crate) index: usize,
    pub(crate) client: Client,
    pub(crate) path: String,
    /// The source's settings: selector, `startFrom`, timeouts, line cap.
    pub(crate) config: Arc<SourceConfig>,
    pub(crate) cursor: Cursor,
    /// The cursor came from a checkpoint.
    pub(crate) resumed: bool,
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
        // After a stall, readiness recovers when data flows again, not when headers come.
        let mut stalled = false;
        let mut step = match (self.resumed, self.cursor.newest()) {
            (true, Some(_)) => Step::Check,
            _ => self.first_step(),
        };
        loop {
            let result = match step {
                Step::Check => self.check().await,
                Step::Now => self.current_version().await.map(|()| Step::Watch),
                Step::List => self.list().await.map(|()| Step::Watch),
                Step::Watch => {
                    let readiness = self.readiness.clone();
                    let mut on_connect = |data: bool| {
                        failures = 0;
                        if !synced {
                            synced = true;
                            readiness.synced();
                        }
                        if data || !stalled {
                            stalled = false;
                            readiness.clear_error();
                        }
                    };
                    self.watch(&mut on_connect).await.map(|()| Step::Watch)
                }
            };
            match result {
                Ok(next) => step = next,
                Err(Trouble::Gone) => {
                    self.readiness.count(Tally::Relist);
                    info!(path = %self.path, rv = %self.cursor.rv, "Resource version expired (410); re-listing.");
                    step = Step::List;
                }
                Err(Trouble::Stalled(e)) => {
                    failures += 1;
                    stalled = true;
                    let delay = backoff.delay(failures);
                    warn!(path = %self.path, error = %e.chain(), retry_in = ?delay, "Kubernetes source: the apiserver stalled; will retry.");
                    self.readiness.count(Tally::Stall);
                    self.readiness.count(Tally::Restart);
                    self.readiness.set_error(&e);
                    tokio::time::sleep(delay).await;
                }
                Err(Trouble::Retry(e)) => {
                    failures += 1;
                    let delay = e.retry_after().unwrap_or_else(|| backoff.delay(failures));
                    warn!(path = %self.path, error = %e.chain(), retry_in = ?delay, "Kubernetes source: will retry.");
                    self.readiness.count(Tally::Restart);
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
        match &self.config.field_selector {
            Some(f) => lp.fields(f),
            None => lp,
        }
    }

    /// The first step without a usable checkpoint.
    fn first_step(&self) -> Step {
        match self.config.start_from {
            StartFrom::Now if self.cursor.needs_list() => Step::Now,
            _ if self.cursor.needs_list() => Step::List,
            _ => Step::Watch,
        }
    }

    /// One list request (`what` names it in errors): the page, with its version checked.
    async fn list_page(&self, lp: &ListParams, what: &str) -> Result<ListPage, Trouble> {
        let req = Request::new(&self.path).list(lp).map_err(request_error)?;
        let what = format!("{what} of {}", self.path);
        let response = http::send(&self.client, req, &what, self.config.request_timeout).await?;
        let text = http::text(response, &what, self.config.request_timeout).await?;
        let page = ListPage::parse(&text).map_err(Trouble::Retry)?;
        if !valid(&page.metadata.resource_version) {
            // Watching from it would replay history or be refused; nothing can resume from it.
            return Err(Trouble::Retry(Error::new(
                ErrorKind::Decode,
                format!(
                    "the {what} has resourceVersion `{}`, not a decimal etcd revision",
                    page.metadata.resource_version.escape_debug()
                ),
            )));
        }
        Ok(page)
    }

    /// The cluster's current version.
    async fn current(&self, what: &str) -> Result<String, Trouble> {
        Ok(self.list_page(&self.list_params().limit(1), what).await?.metadata.resource_version)
    }

    /// A resumed cursor ahead of the cluster was saved in another cluster (or before the
    /// cluster's etcd was restored from a backup): nothing it claims can be trusted.
    async fn check(&mut self) -> Result<Step, Trouble> {
        let current = self.current("version check").await?;
        let claimed = self.cursor.newest();
        if claimed.is_some_and(|c| current.parse::<u64>().is_ok_and(|now| c > now)) {
            error!(
                path = %self.path,
                checkpoint = claimed.unwrap_or_default(),
                cluster = %current,
                start_from = %self.config.start_from,
                "The checkpoint is ahead of the cluster (saved in another cluster, or etcd was restored): \
                 starting over as configured by startFrom."
            );
            self.readiness.count(Tally::Mismatch);
            let (cursor, _) = crate::source::fresh(self.config.start_from);
            let mut items = Vec::with_capacity(1);
            self.step(&mut items, Some(Change::Reset(cursor)), Emit::Silent);
            self.send(items).await?;
            return Ok(self.first_step());
        }
        Ok(Step::Watch)
    }

    async fn current_version(&mut self) -> Result<(), Trouble> {
        let rv = self.current("list").await?;
        debug!(path = %self.path, rv = %rv, "Starting from now.");
        let mut items = Vec::with_capacity(1);
        self.step(&mut items, Some(Change::At(rv)), Emit::Progress);
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
            let page = self.list_page(&lp, "list").await?;
            let snap: Arc<str> = page.metadata.resource_version.into();
            let mut items = Vec::with_capacity(page.items.len() + 1);
            for item in page.items {
                let event = match item {
                    Ok(e) => e,
                    Err(e) => {
                        warn!(path = %self.path, error = %e.chain(), "Skipping an undecodable Event.");
                        self.readiness.count(Tally::Undecodable);
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
                self.step(
                    &mut items,
                    change,
                    if covered { Emit::Silent } else { Emit::Event(SharedEvent::new(event)) },
                );
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

    /// Watch from the cursor until the stream ends (Ok: re-watch) or fails. `on_connect`
    /// is called with `false` when the response starts and `true` when data arrives.
    async fn watch(&mut self, on_connect: &mut impl FnMut(bool)) -> Result<(), Trouble> {
        let mut wp = WatchParams::default().timeout(u32::try_from(self.config.watch_timeout.as_secs()).unwrap_or(290));
        if let Some(f) = &self.config.field_selector {
            wp = wp.fields(f);
        }
        let req = Request::new(&self.path).watch(&wp, &self.cursor.rv).map_err(request_error)?;
        let what = format!("watch of {}", self.path);
        let response = http::send(&self.client, req, &what, self.config.request_timeout).await?;
        on_connect(false);
        let mut lines = Lines::new(response.into_body(), self.config.max_line_size);
        let mut first = true;
        let mut items = Vec::new();
        let end = loop {
            // Lines that came together go to the source together: one hand-off (and one
            // wake-up) per read of everything received, rather than per line. Nothing waits
            // for the network while holding decoded items.
            if items.len() >= HANDOFF {
                self.send(std::mem::take(&mut items)).await?;
            } else if !items.is_empty() && !lines.ready().await {
                self.send(std::mem::take(&mut items)).await?;
                tokio::time::sleep(WATCH_PACE).await;
            }
            match self.watch_line(&mut lines, &what, &mut first, on_connect, &mut items).await {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        // What was decoded before the stream ended or failed moved the cursor: it goes too.
        if !items.is_empty() {
            self.send(items).await?;
        }
        end
    }

    /// Read and decode one line of a watch into `items`; `false` at the end of the stream.
    async fn watch_line(
        &mut self,
        lines: &mut Lines,
        what: &str,
        first: &mut bool,
        on_connect: &mut impl FnMut(bool),
        items: &mut Vec<Item>,
    ) -> Result<bool, Trouble> {
        let line = match lines.next(self.config.watch_idle_timeout).await.map_err(|e| e.during(what))? {
            None => return Ok(false),
            Some(Line::Text(line)) => line,
            Some(Line::TooLong(len)) => {
                warn!(path = %self.path, bytes = len, max = self.config.max_line_size, "Skipping a watch line longer than maxLineSize.");
                self.readiness.count(Tally::Oversized);
                return Ok(true);
            }
        };
        if std::mem::take(first) {
            on_connect(true);
        }
        let Ok(line) = std::str::from_utf8(line) else {
            return Err(Trouble::Retry(Error::new(
                ErrorKind::Decode,
                format!("the {what} sent a line that is not UTF-8"),
            )));
        };
        if line.trim().is_empty() {
            return Ok(true);
        }
        match decode_watch_line(line).map_err(Trouble::Retry)? {
            // Watching again would get the same line: skip it, as a list skips such an item.
            WatchLine::Undecodable { resource_version, error } => {
                warn!(path = %self.path, error = %error.chain(), rv = %resource_version.escape_debug(), "Skipping an undecodable watch event.");
                self.readiness.count(Tally::Undecodable);
                self.step(items, self.advance(&resource_version), Emit::Progress);
            }
            WatchLine::Upsert(event) => {
                // The key matters only against an interrupted list's mark: most watches have none.
                let key = if self.cursor.lists.is_empty() {
                    String::new()
                } else {
                    format!("{}/{}", event.namespace, event.name)
                };
                let covered = self.cursor.covers(&event.resource_version, &key, None);
                let change = self.advance(&event.resource_version);
                self.step(items, change, if covered { Emit::Progress } else { Emit::Event(event) });
            }
            WatchLine::Deleted { resource_version } | WatchLine::Bookmark { resource_version } => {
                self.step(items, self.advance(&resource_version), Emit::Progress);
            }
            WatchLine::Error { code: 410, .. } => return Err(Trouble::Gone),
            WatchLine::Error { code, reason, message } => {
                return Err(Trouble::Retry(Error::new(
                    ErrorKind::Unavailable,
                    format!("watch of {} failed: {code} {reason}: {message}", self.path),
                )));
            }
        }
        Ok(true)
    }

    /// The cursor's move for a watched version; none for a version that is not a decimal
    /// etcd revision (the event still counts, the position stays where it is).
    fn advance(&self, rv: &str) -> Option<Change> {
        if let Some(change) = Change::advance(rv) {
            return Some(change);
        }
        warn!(path = %self.path, rv = %rv.escape_debug(), "The apiserver sent a resourceVersion that is not a decimal etcd revision; the position does not move.");
        None
    }
}

fn request_error(e: kube::core::request::Error) -> Trouble {
    Trouble::Fatal(Error::new(ErrorKind::Config, "invalid list/watch request").with_source(e))
}
