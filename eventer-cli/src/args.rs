//! Raw command-line flags, kube-eventer compatible.
//!
//! Flags that a config file can also set are `Option`s without clap defaults, so that
//! "given on the command line" can be told from "defaulted" when the two are combined
//! (see `config.rs`); the defaults are in the help text and in `Settings`.

use std::{path::PathBuf, time::Duration};

use clap::{ArgAction, Args as ClapArgs, Parser, Subcommand, ValueEnum};

/// Watch Kubernetes Events and route them, filtered, to sinks.
///
/// Flags are kube-eventer's: a kube-eventer user swaps the binary and keeps them.
#[derive(Debug, Parser)]
#[command(name = "eventer", version, about, max_term_width = 100, args_conflicts_with_subcommands = true)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    #[command(flatten)]
    pub(crate) flags: Flags,
}

/// What to do (default: run the pipeline).
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Validate the flags and config file, print the resolved pipeline (secrets
    /// redacted) and exit: 0 when valid, 2 otherwise. Nothing is contacted.
    Check(Flags),
    /// Render what each sink would send for the events of a finite source (e.g.
    /// `--source=file:events.json`), without sending anything.
    Preview(Flags),
}

/// The pipeline's settings.
#[derive(Debug, Clone, Default, ClapArgs)]
pub(crate) struct Flags {
    /// A YAML file with the same settings; flags given on the command line win.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Where events come from: `kubernetes:<apiserver-url>?<options>` or `file:<path>`.
    #[arg(long, value_name = "URI")]
    pub(crate) source: Option<String>,

    /// Where events go (repeatable): `dingtalk:<webhook>&level=..`, `sls:<endpoint>?project=..`,
    /// `stdout`. Replaces the config file's sinks.
    #[arg(long = "sink", value_name = "URI")]
    pub(crate) sinks: Vec<String>,

    /// Batch window of batching sinks such as SLS; alerts are never held back by it.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) frequency: Option<Duration>,

    /// Persist the resume position: `file:<path>` or `configmap:<namespace>/<name>`.
    #[arg(long, value_name = "URI")]
    pub(crate) checkpoint: Option<String>,

    /// How long queued events may take to drain after SIGTERM/SIGINT [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) shutdown_timeout: Option<Duration>,

    /// How long a sink may hold events without any progress (a send that never returns)
    /// before /healthz fails, so that Kubernetes restarts the pod [default: 5m].
    #[arg(long = "liveness-timeout", value_name = "DURATION", value_parser = duration)]
    pub(crate) liveness_timeout: Option<Duration>,

    /// Address of the health and metrics server [default: 0.0.0.0].
    #[arg(long = "healthz-ip", value_name = "IP")]
    pub(crate) healthz_ip: Option<std::net::IpAddr>,

    /// Port of the health and metrics server (/healthz, /readyz, /metrics); 0 picks a free
    /// one [default: 8084].
    #[arg(long = "healthz-port", value_name = "PORT")]
    pub(crate) healthz_port: Option<u16>,

    /// Run only while holding a coordination.k8s.io Lease, so that one of several replicas
    /// exports (needs the kubernetes source).
    #[arg(long = "leader-elect", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) leader_elect: Option<bool>,

    /// Name of the leader-election Lease [default: eventer].
    #[arg(long = "leader-elect-lease-name", value_name = "NAME")]
    pub(crate) leader_elect_lease_name: Option<String>,

    /// Namespace of the Lease [default: $POD_NAMESPACE, else the service account's namespace].
    #[arg(long = "leader-elect-namespace", value_name = "NAMESPACE")]
    pub(crate) leader_elect_namespace: Option<String>,

    /// Worker threads (kube-eventer's `--max_procs`) [default: 1]; 0 or less uses every CPU.
    #[arg(long = "max_procs", alias = "max-procs", value_name = "N", allow_negative_numbers = true)]
    pub(crate) max_procs: Option<i64>,

    /// Accepted for kube-eventer compatibility; `eventer_kubernetes_events_total` is always
    /// exported, with bounded labels.
    #[arg(long = "event-metrics", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool, hide = true)]
    pub(crate) event_metrics: Option<bool>,

    /// More logging: -v for debug, -vv for trace (RUST_LOG overrides).
    #[arg(short = 'v', action = ArgAction::Count)]
    pub(crate) verbose: u8,

    /// klog-style verbosity (`--v=4`), accepted for kube-eventer compatibility.
    #[arg(long = "v", value_name = "LEVEL", hide = true)]
    pub(crate) klog_v: Option<u8>,

    /// Accepted for kube-eventer compatibility (eventer always logs to stderr).
    #[arg(long = "logtostderr", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = go_bool, hide = true)]
    pub(crate) logtostderr: Option<bool>,

    /// Log format [default: text].
    #[arg(long = "log-format", value_enum)]
    pub(crate) log_format: Option<LogFormat>,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn duration(s: &str) -> Result<Duration, String> {
    let d = eventer_core::uri::parse_duration(s)?;
    if d.is_zero() { Err("must be greater than zero".into()) } else { Ok(d) }
}

impl Flags {
    /// The verbosity implied by -v / --v: 0 info, 1 debug, 2 trace.
    pub(crate) fn verbosity(&self) -> u8 {
        let klog = match self.klog_v {
            Some(v) if v >= 6 => 2,
            Some(v) if v >= 4 => 1,
            _ => 0,
        };
        self.verbose.max(klog)
    }
}

/// A boolean as Go's flag package reads it (`strconv.ParseBool`), so kube-eventer's
/// `--logtostderr=1` keeps working.
fn go_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("`{value}` is not a boolean (true, false, 1, 0, t, f)")),
    }
}
