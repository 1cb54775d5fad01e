//! The [`Source`] trait: where events come from.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    Result,
    event::{Event, SharedEvent},
};

/// A source's resume point, opaque to the pipeline (the Kubernetes source stores a
/// resourceVersion and what it needs to skip what was already emitted).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Position(pub String);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a source yields.
#[derive(Debug)]
// Events are the overwhelmingly common variant; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum SourceItem {
    /// An occurrence to route, with the position to resume from once it is delivered.
    Event {
        /// The event, shared from here on by every sink it is routed to: a source that
        /// decodes into an `Arc` hands it over without copying it again.
        event: SharedEvent,
        /// Where to resume after this event (`None` for sources that cannot resume).
        position: Option<Position>,
    },
    /// The source moved on without an event (a watch bookmark): once everything before
    /// it is delivered, this position is safe to checkpoint.
    Progress(Position),
}

impl SourceItem {
    /// An event without a position.
    pub fn event(event: Event) -> SourceItem {
        SourceItem::Event { event: SharedEvent::new(event), position: None }
    }
}

/// A stream of events.
///
/// `next` must be cancel safe: the pipeline may drop its future at shutdown, and an item
/// not returned must not be lost (it is re-read after a restart from the checkpoint).
#[async_trait]
pub trait Source: Send + 'static {
    /// Called once before `next`, with the last checkpointed position, if any.
    ///
    /// # Errors
    /// Stops the pipeline before anything is read.
    async fn start(&mut self, resume: Option<Position>) -> Result<()> {
        let _ = resume;
        Ok(())
    }

    /// The next item; `Ok(None)` when the source is exhausted (a file), after which the
    /// pipeline drains its queues and ends. Transient trouble (a dropped watch) is the
    /// source's to retry; an `Err` stops the pipeline.
    async fn next(&mut self) -> Result<Option<SourceItem>>;
}

/// A type-erased source.
pub type BoxSource = Box<dyn Source>;

#[async_trait]
impl<S: Source + ?Sized> Source for Box<S> {
    async fn start(&mut self, resume: Option<Position>) -> Result<()> {
        (**self).start(resume).await
    }
    async fn next(&mut self) -> Result<Option<SourceItem>> {
        (**self).next().await
    }
}

impl fmt::Debug for dyn Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn Source")
    }
}
