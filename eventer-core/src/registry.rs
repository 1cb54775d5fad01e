//! Building sources, sinks and checkpoint stores from URIs, by scheme.
//!
//! A sink crate exports a [`SinkFactory`] and a `register` function; the CLI (or any
//! program embedding eventer) registers what it wants. Nothing is closed: a third-party
//! crate adds a scheme without touching eventer's code.

use std::{
    any::{Any, TypeId},
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use crate::{
    Error, Result,
    checkpoint::{BoxCheckpointStore, FileCheckpoint},
    config::names,
    event::Level,
    filter::{CompiledFilter, FilterSpec},
    pipeline::{Overflow, Route, RouteOptions},
    sink::BoxSink,
    source::BoxSource,
    telemetry::{Health, Metrics, Telemetry},
    uri::{ComponentUri, Options},
};

/// Settings from outside a URI that factories may use. Build every component of one
/// pipeline with clones of one context, the source first: sink names are unique within
/// it, and what the source shares (the `kubernetes:` source's cluster connection) is
/// there for the sinks and the checkpoint store.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BuildContext {
    /// `--frequency`: the batch window of batching (archive) sinks; alerting sinks ignore it.
    pub frequency: Option<Duration>,
    /// Where components register their own metrics; a sink factory gets a handle already
    /// labelled with the sink's name.
    pub metrics: Metrics,
    /// Where components report readiness (a source: synced; a sink: not failing).
    pub health: Health,
    names: Arc<Mutex<BTreeSet<String>>>,
    shared: Shared,
}

/// Values shared by the components of one context, one per type (as `http::Extensions`),
/// so that core need not know their crates' types.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<SharedMap>>);

/// By type: the type's name (for `Debug`) and the value.
type SharedMap = HashMap<TypeId, (&'static str, Arc<dyn Any + Send + Sync>)>;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SharedMap> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Type names only: a value may hold credentials.
        f.debug_set().entries(self.lock().values().map(|(name, _)| name)).finish()
    }
}

impl BuildContext {
    /// A context with `--frequency` set.
    #[must_use]
    pub fn with_frequency(mut self, frequency: Option<Duration>) -> Self {
        self.frequency = frequency;
        self
    }

    /// A context whose components report to `telemetry`.
    #[must_use]
    pub fn with_telemetry(mut self, telemetry: &Telemetry) -> Self {
        self.metrics = telemetry.metrics.clone();
        self.health = telemetry.health.clone();
        self
    }

    /// Share `value` with every component built from this context (and its clones)
    /// after this one, replacing a value of the same type. A factory shares what others
    /// should reuse rather than build again: the `kubernetes:` source shares its cluster
    /// connection, which the `configmap:` checkpoint store and leader election use.
    ///
    /// ```
    /// use eventer_core::BuildContext;
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct Endpoint(String);
    /// let cx = BuildContext::default();
    /// let sink_cx = cx.clone();
    /// cx.share(Endpoint("https://10.0.0.1:6443".into()));
    /// assert_eq!(sink_cx.shared::<Endpoint>(), Some(Endpoint("https://10.0.0.1:6443".into())));
    /// assert_eq!(BuildContext::default().shared::<Endpoint>(), None);
    /// ```
    pub fn share<T: Clone + Send + Sync + 'static>(&self, value: T) {
        self.shared.lock().insert(TypeId::of::<T>(), (std::any::type_name::<T>(), Arc::new(value)));
    }

    /// The value of type `T` a component shared ([`BuildContext::share`]), if any.
    pub fn shared<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.shared.lock().get(&TypeId::of::<T>()).and_then(|(_, value)| value.downcast_ref::<T>()).cloned()
    }

    /// A sink's name: its `id`, which no other sink of this context may have, else the
    /// scheme, or `scheme-2`, `scheme-3`... if a sink of this context already has that.
    fn claim_name(&self, id: Option<String>, scheme: &str) -> Result<String> {
        let mut names = self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let name = match id {
            // Renaming it would split its metrics and /readyz line from what the user named.
            Some(id) if names.contains(&id) => {
                return Err(Error::config(format!(
                    "option id: `{id}` already names another sink; give each sink its own id (a sink without one \
                     is named after its scheme)"
                )));
            }
            Some(id) => id,
            None => {
                let mut candidate = scheme.to_owned();
                let mut n = 1;
                while names.contains(&candidate) {
                    n += 1;
                    candidate = format!("{scheme}-{n}");
                }
                candidate
            }
        };
        names.insert(name.clone());
        Ok(name)
    }
}

/// Builds one kind of sink from its URI options or a config file's map.
///
/// The sink's settings are a serde struct read with [`Options::take`] (see
/// [`crate::config`]), so a URI's text and a config file's typed values reach it alike.
pub trait SinkFactory: Send + Sync + 'static {
    /// The options this sink reads: the fields of the settings it takes,
    /// `eventer_core::config::names::<MySettings>().to_vec()` (the common filter and
    /// routing options are added). They decide what an error may show of a URI.
    fn options(&self) -> Vec<&'static str>;

    /// The level threshold applied when the URI has no `level` (DingTalk: Warning).
    fn default_level(&self) -> Option<Level> {
        None
    }

    /// Build the sink from the settings it takes from `options`; the registry rejects
    /// any option left over. Do not perform I/O here: network checks belong in
    /// [`crate::Sink::start`], so `eventer check` can validate offline.
    ///
    /// # Errors
    /// A configuration error naming the option and the problem.
    fn build(&self, target: &str, options: &mut Options, cx: &BuildContext) -> Result<BoxSink>;
}

/// Builds one kind of source from its URI.
pub trait SourceFactory: Send + Sync + 'static {
    /// The options this source reads: the fields of the settings it takes.
    fn options(&self) -> Vec<&'static str>;

    /// Build the source (no network I/O; that belongs in [`crate::Source::start`]).
    ///
    /// # Errors
    /// A configuration error naming the option and the problem.
    fn build(&self, target: &str, options: &mut Options, cx: &BuildContext) -> Result<BoxSource>;
}

/// Builds one kind of checkpoint store from its URI.
pub trait CheckpointFactory: Send + Sync + 'static {
    /// Build the store.
    ///
    /// # Errors
    /// A configuration error naming the problem.
    fn build(&self, target: &str, options: &mut Options, cx: &BuildContext) -> Result<BoxCheckpointStore>;
}

/// A sink built from a URI, with its filter and routing options, ready to become a
/// pipeline [`Route`].
#[non_exhaustive]
pub struct BuiltSink {
    /// Name for logs and metrics: the `id` option (unique within the context), else the
    /// scheme, with `-2`, `-3`... appended when another sink of the context has it.
    pub name: String,
    /// The URI, redacted for display.
    pub uri: String,
    /// The sink's filter, compiled.
    pub filter: CompiledFilter,
    /// Queue options.
    pub route: RouteOptions,
    /// The sink.
    pub sink: BoxSink,
}

impl fmt::Debug for BuiltSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuiltSink")
            .field("name", &self.name)
            .field("uri", &self.uri)
            .field("filter", &self.filter)
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl BuiltSink {
    /// The pipeline route for this sink.
    ///
    /// # Errors
    /// None: the registry compiled the filter when it built the sink.
    pub fn into_route(self) -> Result<Route> {
        let route = Route::new(self.name, self.sink).options(self.route);
        Ok(match self.filter.into_filter() {
            Some(filter) => route.filter(filter),
            None => route,
        })
    }
}

/// What a URI configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `--source`.
    Source,
    /// `--sink`.
    Sink,
    /// `--checkpoint`.
    Checkpoint,
}

/// A sink's own options and those every sink accepts.
fn sink_options(factory: &dyn SinkFactory) -> Vec<&'static str> {
    let mut options = factory.options();
    options.extend_from_slice(names::<FilterSpec>());
    options.extend_from_slice(names::<Routing>());
    options
}

/// A value that is there even when empty.
fn given<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    <String as serde::Deserialize>::deserialize(d).map(Some)
}

/// Options every sink accepts besides the filter's.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Routing {
    /// The sink's name (`name` is the filter's object-name regex); `id=` is refused,
    /// not unset.
    #[serde(default, deserialize_with = "given")]
    id: Option<String>,
    queue_size: Option<usize>,
    overflow: Option<Overflow>,
}

/// Factories by scheme.
#[derive(Clone, Default)]
pub struct Registry {
    sinks: BTreeMap<String, Arc<dyn SinkFactory>>,
    sources: BTreeMap<String, Arc<dyn SourceFactory>>,
    checkpoints: BTreeMap<String, Arc<dyn CheckpointFactory>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("sinks", &self.sinks.keys().collect::<Vec<_>>())
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .field("checkpoints", &self.checkpoints.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// A registry with core's built-ins: sinks `stdout` (alias `log`), source `file`,
    /// checkpoint `file`.
    pub fn with_builtins() -> Self {
        let mut r = Registry::new();
        let stdout = Arc::new(crate::builtin::StdoutFactory);
        r.register_sink("stdout", stdout.clone());
        r.register_sink("log", stdout);
        r.register_source("file", Arc::new(crate::builtin::FileSourceFactory));
        r.register_checkpoint("file", Arc::new(FileCheckpointFactory));
        r
    }

    /// Register (or replace) a sink scheme.
    pub fn register_sink(&mut self, scheme: &str, factory: Arc<dyn SinkFactory>) -> &mut Self {
        self.sinks.insert(scheme.to_ascii_lowercase(), factory);
        self
    }

    /// Register (or replace) a source scheme.
    pub fn register_source(&mut self, scheme: &str, factory: Arc<dyn SourceFactory>) -> &mut Self {
        self.sources.insert(scheme.to_ascii_lowercase(), factory);
        self
    }

    /// Register (or replace) a checkpoint store scheme.
    pub fn register_checkpoint(&mut self, scheme: &str, factory: Arc<dyn CheckpointFactory>) -> &mut Self {
        self.checkpoints.insert(scheme.to_ascii_lowercase(), factory);
        self
    }

    /// Registered sink schemes.
    pub fn sink_schemes(&self) -> Vec<&str> {
        self.sinks.keys().map(String::as_str).collect()
    }

    /// Registered source schemes.
    pub fn source_schemes(&self) -> Vec<&str> {
        self.sources.keys().map(String::as_str).collect()
    }

    /// The options a scheme reads (a sink's with the common filter and routing options);
    /// `None` when the scheme is unknown.
    pub fn options_of(&self, role: Role, scheme: &str) -> Option<Vec<&'static str>> {
        match role {
            Role::Source => self.sources.get(scheme).map(|f| f.options()),
            Role::Sink => self.sinks.get(scheme).map(|f| sink_options(f.as_ref())),
            Role::Checkpoint => self.checkpoints.get(scheme).map(|_| Vec::new()),
        }
    }

    /// `raw`, a URI for `role` as the user wrote it, safe to show with an error about it:
    /// secrets, values of options its scheme does not know and what follows a secret up to
    /// the next known option are hidden (see [`crate::uri::redact_uri`]).
    ///
    /// ```
    /// use eventer_core::{Registry, registry::Role};
    /// let registry = Registry::with_builtins();
    /// assert_eq!(
    ///     registry.redact_uri(Role::Sink, "stdout?format=json&accessKeySecrect=s3cr3t"),
    ///     "stdout?format=json&accessKeySecrect=***"
    /// );
    /// ```
    pub fn redact_uri(&self, role: Role, raw: &str) -> String {
        crate::uri::redact_uri(raw, |scheme| self.options_of(role, scheme))
    }

    /// Build a sink, its filter and routing options from a URI.
    ///
    /// ```
    /// use eventer_core::Registry;
    /// let registry = Registry::with_builtins();
    /// let built = registry.build_sink(&"stdout?level=Warning&kinds=Node".parse()?, &Default::default())?;
    /// assert_eq!(built.name, "stdout");
    /// assert_eq!(built.filter.spec().kinds, ["Node"]);
    /// let err = registry.build_sink(&"kafka:?brokers=x".parse()?, &Default::default()).unwrap_err();
    /// assert_eq!(err.to_string(), "unknown sink scheme `kafka` (known: log, stdout)");
    /// # Ok::<(), eventer_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// An unknown scheme (listing the known ones), or an invalid, unknown or missing option.
    pub fn build_sink(&self, uri: &ComponentUri, cx: &BuildContext) -> Result<BuiltSink> {
        let factory = self.sinks.get(uri.scheme()).ok_or_else(|| {
            Error::config(format!("unknown sink scheme `{}` (known: {})", uri.scheme(), self.sink_schemes().join(", ")))
        })?;
        let mut options = uri.options();
        let filter = CompiledFilter::from_options(&mut options, factory.default_level())?;
        let Routing { id, queue_size, overflow } = options.take()?;
        let mut route = RouteOptions::default();
        match queue_size {
            Some(0) => return Err(Error::config("option queue_size: must be at least 1")),
            Some(n) => route.queue_size = n,
            None => {}
        }
        route.overflow = overflow.unwrap_or_default();
        // The name goes into log lines, /readyz and `eventer check` output as it is.
        if let Some(id) = id.as_deref().filter(|id| {
            id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        }) {
            return Err(Error::config(format!("option id: `{id}` must be letters, digits, `-`, `_` or `.`")));
        }
        let name = cx.claim_name(id, uri.scheme())?;
        let mut scoped = cx.clone();
        scoped.metrics = cx.metrics.with_label("sink", name.clone());
        let sink = factory.build(uri.target(), &mut options, &scoped)?;
        options.finish()?;
        Ok(BuiltSink { name, uri: uri.to_string(), filter, route, sink })
    }

    /// Build a source from a URI.
    ///
    /// # Errors
    /// An unknown scheme (listing the known ones), or an invalid, unknown or missing option.
    pub fn build_source(&self, uri: &ComponentUri, cx: &BuildContext) -> Result<BoxSource> {
        let factory = self.sources.get(uri.scheme()).ok_or_else(|| {
            Error::config(format!(
                "unknown source scheme `{}` (known: {})",
                uri.scheme(),
                self.source_schemes().join(", ")
            ))
        })?;
        let mut options = uri.options();
        let source = factory.build(uri.target(), &mut options, cx)?;
        options.finish()?;
        Ok(source)
    }

    /// Build a checkpoint store from a URI (`file:<path>`).
    ///
    /// # Errors
    /// An unknown scheme (listing the known ones), or an invalid option.
    pub fn build_checkpoint(&self, uri: &ComponentUri, cx: &BuildContext) -> Result<BoxCheckpointStore> {
        let factory = self.checkpoints.get(uri.scheme()).ok_or_else(|| {
            let known: Vec<&str> = self.checkpoints.keys().map(String::as_str).collect();
            Error::config(format!("unknown checkpoint scheme `{}` (known: {})", uri.scheme(), known.join(", ")))
        })?;
        let mut options = uri.options();
        let store = factory.build(uri.target(), &mut options, cx)?;
        options.finish()?;
        Ok(store)
    }
}

struct FileCheckpointFactory;

impl CheckpointFactory for FileCheckpointFactory {
    fn build(&self, target: &str, _options: &mut Options, _cx: &BuildContext) -> Result<BoxCheckpointStore> {
        if target.is_empty() {
            return Err(Error::config("file checkpoint needs a path: file:<path>"));
        }
        let path = std::path::Path::new(target);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
            return Err(Error::config(format!("checkpoint directory {} does not exist", dir.display())));
        }
        if path.is_dir() {
            return Err(Error::config(format!("{} is a directory; name the checkpoint file in it", path.display())));
        }
        Ok(Box::new(FileCheckpoint::new(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Threshold;

    #[test]
    fn common_options_become_filter_and_route() {
        let r = Registry::with_builtins();
        let built = r
            .build_sink(
                &"log?level=Warning&namespaces=a,b&reasons=BackOff&queue_size=10&overflow=drop&id=audit&name=^web-"
                    .parse()
                    .unwrap(),
                &BuildContext::default(),
            )
            .unwrap();
        assert_eq!(built.name, "audit");
        let filter = built.filter.spec();
        assert_eq!(filter.level, Some(Threshold::Warning));
        assert_eq!(filter.namespaces, ["a", "b"]);
        assert_eq!(filter.reasons, ["BackOff"]);
        assert_eq!(filter.name.as_deref(), Some("^web-"), "name is the filter's, id the sink's");
        assert_eq!(built.route, RouteOptions { queue_size: 10, overflow: Overflow::Drop });
    }

    #[test]
    fn errors_name_the_problem() {
        let r = Registry::with_builtins();
        let cx = BuildContext::default();
        let err = |u: &str| r.build_sink(&u.parse().unwrap(), &cx).unwrap_err().to_string();
        assert_eq!(err("stdout?queue_size=0"), "option queue_size: must be at least 1");
        assert_eq!(err("stdout?overflow=maybe"), "option overflow: invalid value `maybe` (expected block or drop)");
        assert!(err("stdout?colour=red").starts_with("unknown option colour for stdout (known: "));
        let e = r.build_source(&"kubernetes:https://x".parse().unwrap(), &cx).unwrap_err();
        assert_eq!(e.to_string(), "unknown source scheme `kubernetes` (known: file)");
        let e = r.build_checkpoint(&"file:/no/such/dir/cp".parse().unwrap(), &cx).unwrap_err();
        assert_eq!(e.to_string(), "checkpoint directory /no/such/dir does not exist");
        let e = r.build_checkpoint(&"configmap:ns/name".parse().unwrap(), &cx).unwrap_err();
        assert_eq!(e.to_string(), "unknown checkpoint scheme `configmap` (known: file)");
    }

    #[test]
    fn third_party_sinks_plug_in() {
        struct Nop;
        #[async_trait::async_trait]
        impl crate::Sink for Nop {
            async fn send(&mut self, batch: &[crate::SharedEvent]) -> Vec<crate::Outcome> {
                vec![crate::Outcome::Delivered; batch.len()]
            }
        }
        #[derive(serde::Deserialize)]
        struct Depth {
            depth: u8,
        }
        struct NopFactory;
        impl SinkFactory for NopFactory {
            fn options(&self) -> Vec<&'static str> {
                names::<Depth>().to_vec()
            }
            fn default_level(&self) -> Option<Level> {
                Some(Level::Warning)
            }
            fn build(&self, _target: &str, options: &mut Options, _cx: &BuildContext) -> Result<BoxSink> {
                let Depth { depth } = options.take()?;
                assert_eq!(depth, 3);
                Ok(Box::new(Nop))
            }
        }
        let mut r = Registry::with_builtins();
        r.register_sink("nop", Arc::new(NopFactory));
        let built = r.build_sink(&"nop:?depth=3".parse().unwrap(), &BuildContext::default()).unwrap();
        assert_eq!(built.filter.spec().level, Some(Threshold::Warning));
        assert_eq!(r.sink_schemes(), ["log", "nop", "stdout"]);
    }

    #[test]
    fn names_are_unique_within_a_context() {
        let r = Registry::with_builtins();
        let cx = BuildContext::default();
        let build = |u: &str| r.build_sink(&u.parse().unwrap(), &cx);
        let name = |u: &str| build(u).unwrap().name;
        assert_eq!(name("stdout"), "stdout");
        assert_eq!(name("stdout?format=json"), "stdout-2");
        assert_eq!(name("log?id=audit"), "audit");
        assert_eq!(name("log"), "log");
        // An id is the user's name for the sink: a second one is an error, not `audit-2`.
        for taken in ["log?id=audit", "log?id=stdout", "log?id=stdout-2"] {
            let err = build(taken).unwrap_err().to_string();
            let id = taken.trim_start_matches("log?id=");
            assert!(err.starts_with(&format!("option id: `{id}` already names another sink; ")), "{err}");
        }
        // Another pipeline, another context: names start afresh.
        assert_eq!(r.build_sink(&"log?id=audit".parse().unwrap(), &BuildContext::default()).unwrap().name, "audit");
    }

    #[test]
    fn uris_are_shown_as_their_scheme_allows() {
        let r = Registry::with_builtins();
        assert_eq!(r.options_of(Role::Checkpoint, "file"), Some(vec![]));
        assert_eq!(r.options_of(Role::Source, "kubernetes"), None);
        assert!(r.options_of(Role::Sink, "log").unwrap().contains(&"queue_size"));
        // Unknown options of a known scheme, and every option of an unknown one, hide their values.
        assert_eq!(r.redact_uri(Role::Sink, "stdout?level=Warning&colour=red"), "stdout?level=Warning&colour=***");
        assert_eq!(r.redact_uri(Role::Sink, "kafka:?brokers=h:9092"), "kafka:?brokers=***");
        assert_eq!(r.redact_uri(Role::Source, "file:events.json"), "file:events.json");
    }
}
