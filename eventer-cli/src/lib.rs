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

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use eventer_core::{
    BuildContext, ErrorKind, Pipeline, PipelineConfig, Registry,
    uri::{ComponentUri, redact},
};
use tracing::{error, info};

use crate::args::{Args, LogFormat};

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
    registry
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Failure { code: 2, message: message.into() }
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
            eprintln!("eventer: error: {}", redact(line));
            return ExitCode::from(2);
        }
    };
    match run(args, registry) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("eventer: error: {}", redact(&f.message));
            ExitCode::from(f.code)
        }
    }
}

fn run(args: Args, registry: Registry) -> Result<(), Failure> {
    let pipeline = build(&args, &registry)?;
    init_logging(&args);
    let runtime = runtime(args.max_procs).map_err(|e| Failure { code: 1, message: format!("{e:#}") })?;
    runtime.block_on(async move {
        let report = pipeline.run(shutdown_signal()).await.map_err(|e| Failure {
            code: if e.kind() == ErrorKind::Config { 2 } else { 1 },
            message: e.chain(),
        })?;
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

/// Validate every flag and build the pipeline, before any I/O.
fn build(args: &Args, registry: &Registry) -> Result<Pipeline, Failure> {
    let cx = BuildContext::default().with_frequency(args.frequency);
    let source_flag = args.source.as_deref().ok_or_else(|| {
        Failure::usage("--source: a source is required (e.g. --source=kubernetes:https://kubernetes.default)")
    })?;
    let source = parse_uri("--source", source_flag)
        .and_then(|uri| registry.build_source(&uri, &cx).map_err(|e| flag_error("--source", source_flag, &e)))?;
    if args.sinks.is_empty() {
        return Err(Failure::usage("--sink: at least one sink is required (e.g. --sink=stdout)"));
    }
    let mut pipeline = Pipeline::new(source);
    let mut names: Vec<String> = Vec::new();
    for flag in &args.sinks {
        let uri = parse_uri("--sink", flag)?;
        let mut built = registry.build_sink(&uri, &cx).map_err(|e| flag_error("--sink", flag, &e))?;
        // Repeated schemes get -2, -3... so logs and metrics tell them apart.
        let base = built.name.clone();
        let mut n = 1;
        while names.contains(&built.name) {
            n += 1;
            built.name = format!("{base}-{n}");
        }
        names.push(built.name.clone());
        pipeline = pipeline.route(built.into_route().map_err(|e| flag_error("--sink", flag, &e))?);
    }
    if let Some(flag) = &args.checkpoint {
        let uri = parse_uri("--checkpoint", flag)?;
        let store = registry.build_checkpoint(&uri).map_err(|e| flag_error("--checkpoint", flag, &e))?;
        pipeline = pipeline.checkpoint(store);
    }
    let mut config = PipelineConfig::default();
    config.shutdown_timeout = args.shutdown_timeout;
    Ok(pipeline.config(config))
}

fn parse_uri(flag: &str, value: &str) -> Result<ComponentUri, Failure> {
    value.parse().map_err(|e: eventer_core::Error| flag_error(flag, value, &e))
}

/// `--flag=<value as typed, secrets redacted>: <problem>`.
fn flag_error(flag: &str, value: &str, e: &eventer_core::Error) -> Failure {
    Failure::usage(format!("{flag}={}: {}", redact(value), e.chain()))
}

fn init_logging(args: &Args) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(args.log_level()));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn runtime(max_procs: i64) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Ok(n @ 1..) = usize::try_from(max_procs) {
        builder.worker_threads(n);
    }
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
