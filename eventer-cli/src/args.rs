//! Raw command-line flags, kube-eventer compatible.

use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

/// Watch Kubernetes Events and route them, filtered, to sinks.
///
/// Flags are kube-eventer's: a kube-eventer user swaps the binary and keeps them.
#[derive(Debug, Parser)]
#[command(name = "eventer", version, about, max_term_width = 100)]
pub(crate) struct Args {
    /// Where events come from: `kubernetes:<apiserver-url>?<options>` or `file:<path>`.
    #[arg(long, value_name = "URI")]
    pub(crate) source: Option<String>,

    /// Where events go (repeatable): `dingtalk:<webhook>&level=..`, `sls:<endpoint>?project=..`, `stdout`.
    #[arg(long = "sink", value_name = "URI")]
    pub(crate) sinks: Vec<String>,

    /// Batch window of batching sinks such as SLS; alerts are never held back by it.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) frequency: Option<Duration>,

    /// Persist the resume position: `file:<path>` (or `configmap:<namespace>/<name>` in cluster).
    #[arg(long, value_name = "URI")]
    pub(crate) checkpoint: Option<String>,

    /// How long queued events may take to drain after SIGTERM/SIGINT.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "30s")]
    pub(crate) shutdown_timeout: Duration,

    /// Address of the health and metrics server.
    #[arg(long = "healthz-ip", value_name = "IP", default_value = "0.0.0.0")]
    pub(crate) healthz_ip: std::net::IpAddr,

    /// Port of the health and metrics server.
    #[arg(long = "healthz-port", value_name = "PORT", default_value_t = 8084)]
    pub(crate) healthz_port: u16,

    /// Worker threads (kube-eventer's `--max_procs`); 0 or less uses every CPU.
    #[arg(
        long = "max_procs",
        alias = "max-procs",
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub(crate) max_procs: i64,

    /// Accepted for kube-eventer compatibility; per-event metric labels are never created.
    #[arg(long = "event-metrics", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", hide = true)]
    pub(crate) event_metrics: Option<bool>,

    /// More logging: -v for debug, -vv for trace (RUST_LOG overrides).
    #[arg(short = 'v', action = ArgAction::Count)]
    pub(crate) verbose: u8,

    /// klog-style verbosity (`--v=4`), accepted for kube-eventer compatibility.
    #[arg(long = "v", value_name = "LEVEL", hide = true)]
    pub(crate) klog_v: Option<u8>,

    /// Accepted for kube-eventer compatibility (eventer always logs to stderr).
    #[arg(long = "logtostderr", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", hide = true)]
    pub(crate) logtostderr: Option<bool>,

    /// Log format.
    #[arg(long = "log-format", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn duration(s: &str) -> Result<Duration, String> {
    let d = eventer_core::uri::parse_duration(s)?;
    if d.is_zero() { Err("must be greater than zero".into()) } else { Ok(d) }
}

impl Args {
    /// The tracing filter directive implied by -v / --v.
    pub(crate) fn log_level(&self) -> &'static str {
        let klog = match self.klog_v {
            Some(v) if v >= 6 => 2,
            Some(v) if v >= 4 => 1,
            _ => 0,
        };
        match self.verbose.max(klog) {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    }
}
