//! The core of eventer: the event model, the [`Source`], [`Filter`] and
//! [`Sink`] traits, the scheme [`Registry`], and the delivery [`Pipeline`].
//!
//! A pipeline reads events from one source, routes each to the sinks whose filter matches,
//! queues them per sink (bounded: a full queue back-pressures the source), batches, sends,
//! retries what failed transiently, and checkpoints the position before which every sink
//! has finished — so a restart resumes with nothing lost and nothing repeated.
//!
//! ```
//! use std::sync::Arc;
//! use eventer_core::{Event, Level, Pipeline, Route, filter::{self, Filter}};
//! use eventer_core::testing::{MemorySink, VecSource, sample_events};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let warnings = MemorySink::new();
//! let archive = MemorySink::new();
//! let pipeline = Pipeline::new(Box::new(VecSource::new(sample_events())))
//!     .route(Route::new("alerts", Box::new(warnings.clone())).filter(Arc::new(filter::min_level(Level::Warning))))
//!     .route(Route::new("archive", Box::new(archive.clone())));
//! let report = pipeline.run(std::future::pending()).await?;
//! assert_eq!(report.received, 4);
//! assert_eq!(warnings.reasons(), ["BackOff", "FailedScheduling", "KernelOops"]);
//! assert_eq!(archive.len(), 4);
//! # Ok::<(), eventer_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! Sinks and sources are also built from kube-eventer style URIs through a [`Registry`];
//! see [`registry::SinkFactory`] for how a third-party crate adds a scheme. A sink that
//! sends many events per request lets a [`sink::Split`] direct its requests, so that an
//! event the destination refuses does not take the rest of its request with it.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod builtin;
pub mod checkpoint;
pub mod config;
pub mod decode;
pub mod duration;
mod error;
pub mod event;
pub mod filter;
pub mod pipeline;
pub mod registry;
pub mod sink;
pub mod source;
pub mod telemetry;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
pub mod uri;

pub use error::{BoxError, Error, ErrorKind, Result};
pub use event::{Event, Level, ObjectRef, SharedEvent, Text};
pub use filter::{BoxFilter, CompiledFilter, Filter, FilterSpec};
pub use pipeline::{Pipeline, PipelineConfig, Report, Route, RouteOptions};
pub use registry::{BuildContext, Registry, SinkFactory, SourceFactory};
pub use sink::{Batching, BoxSink, Outcome, Sink};
pub use source::{BoxSource, Position, Source, SourceItem};
pub use telemetry::Telemetry;
