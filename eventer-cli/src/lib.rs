//! The `eventer` command line, as a library: embed it in your own binary to add sinks.
//!
//! ```no_run
//! // A binary with eventer's flags and one more sink scheme.
//! fn main() -> std::process::ExitCode {
//!     let mut registry = eventer_cli::default_registry();
//!     // my_sink::register(&mut registry);
//!     eventer_cli::main_with(registry)
//! }
//! ```
//!
//! Exit codes: 0 on a clean stop, 2 for bad input (one line naming the flag and the
//! problem), 1 when the pipeline fails at run time.

mod args;
mod config;
mod leader;
mod logging;
mod server;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use eventer_core::{
    BoxSource, BuildContext, ErrorKind, Filter, Pipeline, PipelineConfig, Registry, SharedEvent, SourceItem, Telemetry,
    checkpoint::BoxCheckpointStore, registry::BuiltSink, uri::redact,
};
use tracing::{error, info, warn};

use crate::{
    args::{Args, Command, Flags},
    config::{Located, Settings},
};

/// The registry of everything this build of eventer knows.
pub fn default_registry() -> Registry {
    #[allow(unused_mut)] // without optional sinks nothing is added
    let mut registry = Registry::with_builtins();
    #[cfg(feature = "source-k8s")]
    eventer_source_k8s::register(&mut registry);
    #[cfg(feature = "sink-dingtalk")]
    eventer_sink_dingtalk::register(&mut registry);
    #[cfg(feature = "sink-sls")]
    eventer_sink_sls::register(&mut registry);
    #[cfg(feature = "sink-elasticsearch")]
    eventer_sink_elasticsearch::register(&mut registry);
    #[cfg(feature = "sink-wecom")]
    eventer_sink_wecom::register(&mut registry);
    #[cfg(feature = "sink-webhook")]
    eventer_sink_webhook::register(&mut registry);
    #[cfg(feature = "sink-lark")]
    eventer_sink_lark::register(&mut registry);
    #[cfg(feature = "sink-slack")]
    eventer_sink_slack::register(&mut registry);
    #[cfg(feature = "sink-kafka")]
    eventer_sink_kafka::register(&mut registry);
    registry
}

/// Validate a `--config` file's text as `eventer check --config` would, offline: the
/// error is the one line eventer prints. For the fuzz targets.
///
/// # Errors
/// The problem, naming the field.
#[doc(hidden)]
pub fn check_config_text(text: &str, registry: &Registry) -> Result<(), String> {
    let settings =
        Settings::from_text(&Flags::default(), text, "fuzz.yaml", registry).map_err(|f| printable(&f.message))?;
    Components::build(&settings, registry, &Telemetry::default()).map(drop).map_err(|f| printable(&f.message))
}

/// One line whatever the input: control characters (a newline in a value or a YAML key)
/// are shown escaped.
fn printable(message: &str) -> String {
    message.chars().fold(String::with_capacity(message.len()), |mut out, c| {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        out
    })
}

/// The most characters of one value an error line shows.
const SHOWN_CHARS: usize = 200;

/// Cut over-long values (a `` `quoted` `` span, a run of non-blanks) to [`SHOWN_CHARS`],
/// an ellipsis and their length: one bad value must not fill the terminal.
fn shorten(line: &str) -> String {
    fn cut(out: &mut String, value: &str) {
        let total = value.chars().count();
        if total <= SHOWN_CHARS {
            out.push_str(value);
        } else {
            out.extend(value.chars().take(SHOWN_CHARS));
            out.push_str(&format!("… ({total} characters)"));
        }
    }
    let mut out = String::with_capacity(line.len().min(4 * SHOWN_CHARS));
    for (i, part) in line.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        if i % 2 == 1 {
            cut(&mut out, part);
            continue;
        }
        for (j, word) in part.split(' ').enumerate() {
            if j > 0 {
                out.push(' ');
            }
            // `--sink=<long URI>:` keeps the colon that ends it.
            let body = word.trim_end_matches([':', ',', ';']);
            cut(&mut out, body);
            out.push_str(&word[body.len()..]);
        }
    }
    out
}

/// A failure with its exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Failure { code: 2, message: message.into() }
    }

    fn runtime(message: impl Into<String>) -> Self {
        Failure { code: 1, message: message.into() }
    }
}

/// Parse the process arguments and run; returns the exit code.
pub fn main_with(registry: Registry) -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        // --help and --version print and exit 0.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let rendered = e.render().to_string();
            let line = rendered.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            eprintln!("eventer: error: {}", shorten(&printable(&redact(line))));
            return ExitCode::from(2);
        }
    };
    let result = match args.command {
        None => run(&args.flags, &registry),
        Some(Command::Check(flags)) => check(&flags, &registry),
        Some(Command::Preview(flags)) => preview(&flags, &registry),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("eventer: error: {}", shorten(&printable(&redact(&f.message))));
            ExitCode::from(f.code)
        }
    }
}

fn run(flags: &Flags, registry: &Registry) -> Result<(), Failure> {
    let settings = Settings::resolve(flags, registry)?;
    let telemetry = Telemetry::default();
    server::build_info(&telemetry);
    // 1 on the replica that exports: every replica without leader election.
    let exporting = telemetry.metrics.gauge("leader", "1 on the replica that exports events, 0 on a standby");
    exporting.set(i64::from(settings.leader.is_none()));
    let components = Components::build(&settings, registry, &telemetry)?;
    let gate = logging::init(&settings);
    let runtime = runtime(settings.max_procs).map_err(|e| Failure::runtime(format!("{e:#}")))?;
    runtime.block_on(async move {
        let busy = |e: std::io::Error| {
            format!("--healthz-port={}: cannot listen on {}: {e}", settings.healthz.port(), settings.healthz)
        };
        match server::bind(settings.healthz).await {
            Ok((listener, addr)) => {
                info!(%addr, "Serving /healthz, /readyz and /metrics.");
                tokio::spawn(server::serve(listener, telemetry.clone()));
            }
            // A run that ends (a file of events) delivers the same without probes; a busy port
            // must not stop it, as it would the quick start whenever 8084 is taken.
            Err(e) if finite(&settings) => {
                warn!("{}; running without /healthz, /readyz and /metrics.", busy(e));
            }
            // Two long-running eventers on one port is a misconfiguration: say so at once.
            Err(e) => return Err(Failure::usage(busy(e))),
        }
        // With --leader-elect, wait for the lease; losing it stops everything at once.
        let leadership = match &settings.leader {
            Some(leader) => {
                let elect = leader::acquire(&components.cx, leader, &gate);
                tokio::select! {
                    leadership = elect => {
                        let leadership = leadership?;
                        exporting.set(1);
                        Some(leadership)
                    }
                    () = shutdown_signal() => return Ok(()),
                }
            }
            None => None,
        };
        let origins = components.origins(&settings);
        let pipeline = components.into_pipeline(&settings, &telemetry)?;
        // The pipeline polls its shutdown future once every part has started: from then on,
        // log lines flow.
        let run = pipeline.run(async move {
            gate.open();
            shutdown_signal().await;
        });
        let result = match &leadership {
            Some(leadership) => tokio::select! {
                result = run => result,
                // Returning drops the runtime and with it every in-flight send; what was not
                // checkpointed is re-read by the next leader (at least once, never lost).
                () = leadership.lost() => {
                    exporting.set(0);
                    return Err(Failure::runtime("lost the leader-election lease; stopped at once"));
                }
            },
            None => run.await,
        };
        let report = result.map_err(|e| {
            // Name the flag that configured the failing part. A configuration error found
            // only when the part starts (a kubeconfig, the pod's service account) is still
            // bad input.
            let origin = origins.iter().find(|(component, _)| Some(component.as_str()) == e.component());
            let message = match origin {
                Some((_, origin)) => format!("{origin}: {}", e.chain()),
                None => e.chain(),
            };
            Failure { code: if e.kind() == ErrorKind::Config { 2 } else { 1 }, message }
        })?;
        // The final checkpoint is saved: hand over now so that a standby starts from it.
        if let Some(leadership) = leadership {
            exporting.set(0);
            leader::release(leadership).await;
        }
        for sink in &report.sinks {
            info!(sink = %sink.name, delivered = sink.delivered, failed = sink.failed, dropped = sink.dropped, "Sink totals.");
        }
        if report.unfinished > 0 {
            error!(events = report.unfinished, "Stopped with undelivered events; they are re-read after a restart with a checkpoint.");
        }
        info!(received = report.received, "Stopped.");
        Ok(())
    })
}

/// Whether the source's run ends by itself (a file of events), unlike a cluster's stream.
fn finite(settings: &Settings) -> bool {
    settings.source.uri.scheme() == "file"
}

/// The parts of a pipeline, validated and built before any I/O.
struct Components {
    source: BoxSource,
    sinks: Vec<BuiltSink>,
    checkpoint: Option<BoxCheckpointStore>,
    /// What the parts share (the source's cluster connection), for leader election.
    cx: BuildContext,
}

impl Components {
    fn build(settings: &Settings, registry: &Registry, telemetry: &Telemetry) -> Result<Self, Failure> {
        let cx = BuildContext::default().with_frequency(settings.frequency).with_telemetry(telemetry);
        let fail = |at: &Located, e: eventer_core::Error| Failure::usage(format!("{}: {}", at.origin, e.chain()));
        // First: the sinks and the checkpoint store may use what the source shares.
        let source = registry.build_source(&settings.source.uri, &cx).map_err(|e| fail(&settings.source, e))?;
        leader::validate(&settings.source, settings.leader.as_ref(), &cx)?;
        let mut sinks = Vec::with_capacity(settings.sinks.len());
        for at in &settings.sinks {
            sinks.push(registry.build_sink(&at.uri, &cx).map_err(|e| fail(at, e))?);
        }
        let checkpoint = match &settings.checkpoint {
            Some(at) => Some(registry.build_checkpoint(&at.uri, &cx).map_err(|e| fail(at, e))?),
            None => None,
        };
        Ok(Components { source, sinks, checkpoint, cx })
    }

    /// Each part's component name in pipeline errors, with the setting that configured it.
    fn origins(&self, settings: &Settings) -> Vec<(String, String)> {
        let mut origins = vec![("source".to_owned(), settings.source.origin.to_string())];
        for (built, at) in self.sinks.iter().zip(&settings.sinks) {
            origins.push((format!("sink/{}", built.name), at.origin.to_string()));
        }
        if let Some(at) = &settings.checkpoint {
            origins.push(("checkpoint".to_owned(), at.origin.to_string()));
        }
        origins
    }

    fn into_pipeline(self, settings: &Settings, telemetry: &Telemetry) -> Result<Pipeline, Failure> {
        let mut pipeline = Pipeline::new(self.source).telemetry(telemetry);
        for (built, at) in self.sinks.into_iter().zip(&settings.sinks) {
            let route = built.into_route().map_err(|e| Failure::usage(format!("{}: {}", at.origin, e.chain())))?;
            pipeline = pipeline.route(route);
        }
        if let Some(store) = self.checkpoint {
            pipeline = pipeline.checkpoint(store);
        }
        let mut config = PipelineConfig::default();
        config.shutdown_timeout = settings.shutdown_timeout;
        config.liveness_timeout = settings.liveness_timeout;
        Ok(pipeline.config(config))
    }
}

/// `eventer check`: build everything offline and print the resolved pipeline.
fn check(flags: &Flags, registry: &Registry) -> Result<(), Failure> {
    let settings = Settings::resolve(flags, registry)?;
    let components = Components::build(&settings, registry, &Telemetry::default())?;
    let mut out = vec![format!("source      {}", settings.source.uri)];
    for sink in &components.sinks {
        out.push(format!("sink        {} = {}", sink.name, sink.uri));
        if !sink.filter.spec().is_empty() {
            out.push(format!("  filter    {}", sink.filter));
        }
        out.push(format!("  queue     {} events, overflow {:?}", sink.route.queue_size, sink.route.overflow));
    }
    out.push(match &settings.checkpoint {
        Some(at) => format!("checkpoint  {}", at.uri),
        None => "checkpoint  none (a restart starts from the source's default)".into(),
    });
    if let Some(f) = settings.frequency {
        out.push(format!("frequency   {}", humantime::format_duration(f)));
    }
    out.push(format!("shutdown    drain for up to {}", humantime::format_duration(settings.shutdown_timeout)));
    out.push(format!("health      http://{}/healthz /readyz /metrics", settings.healthz));
    out.push(format!(
        "liveness    /healthz fails when a sink holds events with no progress for {}",
        humantime::format_duration(settings.liveness_timeout)
    ));
    out.push(match &settings.leader {
        Some(l) => {
            format!("leader      lease {}/{}", l.namespace.as_deref().unwrap_or("(pod namespace)"), l.lease_name)
        }
        None => "leader      no election (every replica exports)".into(),
    });
    out.push("valid".into());
    println!("{}", redact(&out.join("\n")));
    Ok(())
}

/// `eventer preview`: what each sink would send for the source's events, sending nothing.
fn preview(flags: &Flags, registry: &Registry) -> Result<(), Failure> {
    let settings = Settings::resolve(flags, registry)?;
    if !finite(&settings) {
        return Err(Failure::usage(format!(
            "{}: preview reads a finite source; use --source=file:<events.json> (e.g. from `kubectl get events -A -o json`)",
            settings.source.origin
        )));
    }
    let Components { mut source, mut sinks, .. } = Components::build(&settings, registry, &Telemetry::default())?;
    let runtime = runtime(1).map_err(|e| Failure::runtime(format!("{e:#}")))?;
    let events = runtime.block_on(async {
        source.start(None).await?;
        let mut events = Vec::new();
        while let Some(item) = source.next().await? {
            if let SourceItem::Event { event, .. } = item {
                events.push(event);
            }
        }
        Ok::<_, eventer_core::Error>(events)
    });
    let events = events.map_err(|e| Failure::usage(format!("{}: {}", settings.source.origin, e.chain())))?;
    if events.is_empty() {
        // Not an error (a quiet namespace exports nothing), but an empty preview should say why.
        eprintln!("eventer: note: {}: no events; nothing to preview", settings.source.origin);
    }
    let mut out = String::new();
    for built in &mut sinks {
        let matching: Vec<SharedEvent> = events.iter().filter(|e| built.filter.matches(e)).cloned().collect();
        out.push_str(&format!(
            "=== sink {} ({}): {} of {} events\n",
            built.name,
            built.uri,
            matching.len(),
            events.len()
        ));
        match built.sink.preview(&matching) {
            _ if matching.is_empty() => {}
            Some(rendered) => {
                for (i, item) in rendered.iter().enumerate() {
                    out.push_str(&format!("--- {} {}\n{}\n", built.name, i + 1, item.trim_end()));
                }
            }
            None => out.push_str("(this sink has no preview)\n"),
        }
    }
    print!("{out}");
    Ok(())
}

/// One thread by default: forwarding events is I/O-bound, one thread moves far more than a
/// cluster produces, and every hand-over between worker threads costs a wake-up (a fifth of
/// the CPU time when archiving 100k events on two threads).
fn runtime(max_procs: i64) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = match usize::try_from(max_procs) {
        Ok(1) => tokio::runtime::Builder::new_current_thread(),
        Ok(n @ 2..) => {
            // More workers than CPUs only add switching; a huge N would fail to spawn them.
            let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n.min(cpus));
            builder
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build().context("cannot start the async runtime")
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                error!(error = %e, "Cannot listen for SIGTERM; only SIGINT stops eventer.");
                if let Err(e) = ctrl_c.await {
                    error!(error = %e, "Cannot listen for SIGINT either; stop eventer with SIGKILL.");
                    std::future::pending::<()>().await;
                }
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    if let Err(e) = ctrl_c.await {
        error!(error = %e, "Cannot listen for Ctrl-C.");
        std::future::pending::<()>().await;
    }
    info!("Shutdown requested.");
}
