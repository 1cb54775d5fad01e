//! [`ChatSink`] and [`ChatFactory`]: a chat sink's settings made a sink, and a factory
//! that builds it from URIs.

use std::{fmt, marker::PhantomData};

use async_trait::async_trait;
use eventer_core::{
    Batching, BoxSink, BuildContext, Level, Outcome, Result, SharedEvent, Sink, SinkFactory, telemetry::Metrics,
    uri::Options,
};

use crate::{AlertSink, ChatConfig};

/// The sink of a chat service: its settings `C` and the alert engine around the service
/// they make. A chat sink crate names it (`pub type MySink = ChatSink<MyConfig>;`).
pub struct ChatSink<C: ChatConfig> {
    config: C,
    engine: AlertSink<C::Service>,
}

impl<C: ChatConfig> ChatSink<C> {
    /// A sink for `config`. Reads `template_file`; performs no network I/O.
    ///
    /// # Errors
    /// An invalid configuration, time zone or template.
    pub fn new(config: C) -> Result<Self> {
        config.validate()?;
        let engine = AlertSink::new(config.service()?, config.alert_config().clone())?;
        Ok(ChatSink { config, engine })
    }

    /// Report message counts and the budget to `metrics` (labelled with the sink's name).
    #[must_use]
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.engine = self.engine.with_metrics(metrics);
        self
    }

    /// The settings.
    pub fn config(&self) -> &C {
        &self.config
    }

    /// The zone times are shown in (`timezone`, else `TZ`, else UTC).
    pub fn timezone(&self) -> &str {
        C::zone_name(self.engine.service())
    }
}

/// The settings only: they hide their secrets.
impl<C: ChatConfig> fmt::Debug for ChatSink<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatSink").field("config", &self.config).finish_non_exhaustive()
    }
}

#[async_trait]
impl<C: ChatConfig> Sink for ChatSink<C> {
    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        self.engine.send(batch).await
    }

    fn batching(&self) -> Batching {
        self.engine.batching()
    }

    fn preview(&mut self, batch: &[SharedEvent]) -> Option<Vec<String>> {
        self.engine.preview(batch)
    }
}

/// Builds [`ChatSink`]s of settings `C` from URIs; the default level is Warning, as a chat
/// is for what needs a person.
pub struct ChatFactory<C>(PhantomData<fn() -> C>);

impl<C> ChatFactory<C> {
    /// The factory.
    pub const fn new() -> Self {
        ChatFactory(PhantomData)
    }
}

impl<C> Default for ChatFactory<C> {
    fn default() -> Self {
        ChatFactory::new()
    }
}

impl<C> fmt::Debug for ChatFactory<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::any::type_name::<Self>())
    }
}

impl<C: ChatConfig> SinkFactory for ChatFactory<C> {
    fn options(&self) -> Vec<&'static str> {
        C::option_names()
    }

    fn default_level(&self) -> Option<Level> {
        Some(Level::Warning)
    }

    fn build(&self, target: &str, options: &mut Options, cx: &BuildContext) -> Result<BoxSink> {
        let config = C::from_options(target, options)?;
        Ok(Box::new(ChatSink::new(config)?.with_metrics(&cx.metrics)))
    }
}
