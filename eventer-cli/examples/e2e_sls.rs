//! End to end: events from the fake apiserver into the fake SLS through the `eventer`
//! binary, on its two paths, as deployed, and the time an event takes to reach SLS.
//!
//! ```sh
//! cargo run --profile dist -p eventer-cli --example e2e_sls [-- [list|watch|deployed|latency|all] [<events> [<runs>]]]
//! ```
//!
//! - `list`: `<events>` (default 100 000) Events exist when eventer starts (`startFrom=all`):
//!   the start-up list. Budgets: 0.7 s of CPU, 40 MiB peak RSS.
//! - `watch`: eventer starts on an empty cluster, then the fake apiserver creates `<events>`
//!   at 20 000 a second, one revision each, a fifth of them about Nodes spread over 1 000
//!   nodes: the steady state. Budgets: 0.8 s of CPU, 40 MiB peak RSS, 10 MiB idle RSS before
//!   the load, and at most one PutLogs request per 4096 logs or 3 MiB of them (SLS's limits,
//!   whichever comes first) plus one per batch window elapsed, however many nodes.
//! - `deployed`: the watch path with eventer run as the Helm chart runs it: TLS and a bearer
//!   token to the apiserver, leader election and a ConfigMap checkpoint. Its idle RSS is
//!   taken after 5 s of leading, renewals and checkpoint saves included.
//! - `latency`: 100 Events created 20 a second; the time from each creation to its PutLogs
//!   request being stored. Budget: p50 ≤ 2 s.
//! - `all` (the default): each of them.
//!
//! CPU is eventer's utime + stime (from when the load starts, on the watch path), peak RSS
//! its VmHWM. Each run starts fresh fakes and a fresh eventer; every run is printed, then
//! the medians (5 runs by default).
//!
//! It builds `eventer` first with the profile it was run with (a no-op when that is up to
//! date): `dist` measures the shipped binary, built by `eventer-cli/dist/build.sh` as the
//! image's is, `--release` the quicker optimised build; `EVENTER_BIN=<path>` measures that
//! binary instead (another build, to compare, or the shipped one with a `--release` run of
//! this example: `EVENTER_BIN=$(eventer-cli/dist/build.sh | tail -n 1)`). The
//! fakes run in this process, so on a small machine they compete with eventer for CPU:
//! compare runs on the same machine.
//!
//! `KUBE_EVENTER_BIN=<path to a kube-eventer binary>` adds kube-eventer to the watch path,
//! on the same load, its runs alternating with eventer's: each exporter's figures, then
//! eventer's CPU as a share of kube-eventer's. kube-eventer runs with its defaults (it sends
//! every 30 s), its SLS endpoint from `SLS_ENDPOINT`, as its deployments set it.

use std::{collections::HashMap, path::PathBuf, process::Stdio, time::Duration};

use eventer_fake_apiserver::{FakeApiServer, NewEvent, SteadyLoad};
use eventer_fake_sls::FakeSls;
use tokio::{
    process::{Child, Command},
    time::Instant,
};

const KEY_ID: &str = "LTAI-e2e-id";
const KEY_SECRET: &str = "e2e-secret";

/// `eventer` built with this example's profile: for `dist`, the shipped binary, as
/// `dist/build.sh` builds it; otherwise the profile's build next to this example
/// (`target/<profile>/examples/e2e_sls` → `target/<profile>/eventer`).
/// `EVENTER_BIN`, when set, is measured instead: another build to compare with.
fn eventer_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("EVENTER_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("this example's path");
    let dir = exe.parent().and_then(|examples| examples.parent()).expect("target/<profile>");
    // The directory bears the profile's name, but for `dev`'s.
    let profile = match dir.file_name().and_then(|name| name.to_str()).expect("a profile directory") {
        "debug" => "dev",
        name => name,
    };
    if profile == "dist" {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/build.sh");
        let built = std::process::Command::new("bash")
            .arg(script)
            .stderr(Stdio::inherit())
            .output()
            .expect("run dist/build.sh");
        assert!(built.status.success(), "{script} failed");
        let stdout = String::from_utf8(built.stdout).expect("build.sh prints a path");
        return stdout.lines().last().expect("build.sh prints the binary's path").into();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args(["build", "--profile", profile, "-p", "eventer-cli", "--bin", "eventer"])
        .status()
        .expect("run cargo build");
    assert!(built.success(), "cargo build --profile {profile} -p eventer-cli failed");
    dir.join("eventer")
}

/// Clock ticks per second, the unit of utime and stime in `/proc/<pid>/stat`.
fn clock_ticks() -> f64 {
    let out = std::process::Command::new("getconf").arg("CLK_TCK").output().expect("run getconf CLK_TCK");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("CLK_TCK is a number")
}

/// utime + stime of `pid`, in ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("eventer is running");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').expect("stat format").1.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Peak resident set size of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("eventer is running");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/<pid>/status");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmHWM value")
}

/// Resident set size of `pid` now, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("eventer is running");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/<pid>/status");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmRSS value")
}

/// The watch path's load: about the rate of the busy cluster kube-eventer was compared on.
const WATCH_RATE: u32 = 20_000;
/// Nodes that Node events are about: each with its own name, as in a large cluster's incident.
const WATCH_NODES: usize = 1_000;
/// How long a deployed eventer leads before its idle RSS is taken: its lease renewed and its
/// checkpoint saved at least once.
const DEPLOYED_SETTLE: Duration = Duration::from_secs(5);
/// The sink's default batch window, for the request budget.
const BATCH_WINDOW: Duration = Duration::from_secs(1);

/// One run's figures.
struct Run {
    cpu: f64,
    rss_mib: f64,
    idle_rss_mib: Option<f64>,
    wall: Duration,
    requests: usize,
    /// Raw (uncompressed) bytes of every request.
    raw_bytes: usize,
}

impl Run {
    fn of(cpu: f64, rss_mib: f64, idle_rss_mib: Option<f64>, wall: Duration, sls: &FakeSls) -> Run {
        let writes = sls.writes();
        let raw_bytes = writes.iter().map(|w| w.raw_size).sum();
        Run { cpu, rss_mib, idle_rss_mib, wall, requests: writes.len(), raw_bytes }
    }

    /// The most PutLogs requests the events need: full requests (4096 logs, or 3 MiB raw,
    /// whichever comes first) plus one per batch window elapsed.
    fn request_budget(&self, events: usize) -> usize {
        let full = events.div_ceil(4096).max(self.raw_bytes.div_ceil(3 << 20));
        full + (self.wall.as_secs_f64() / BATCH_WINDOW.as_secs_f64()).ceil() as usize
    }
}

/// The program that archives the events.
#[derive(Clone, Copy)]
enum Exporter<'a> {
    Eventer(&'a std::path::Path),
    KubeEventer(&'a std::path::Path),
}

impl Exporter<'_> {
    fn name(self) -> &'static str {
        match self {
            Exporter::Eventer(_) => "eventer",
            Exporter::KubeEventer(_) => "kube-eventer",
        }
    }

    /// A fresh exporter archiving `api`'s Events into `sls`, reading from `start_from`
    /// (eventer's option; kube-eventer always starts from now).
    fn spawn(self, api: &FakeApiServer, sls: &FakeSls, start_from: &str) -> Child {
        match self {
            Exporter::Eventer(binary) => spawn_eventer(binary, api, sls, start_from),
            Exporter::KubeEventer(binary) => Command::new(binary)
                .args([
                    &format!("--source=kubernetes:{}?inClusterConfig=false", api.url()),
                    &format!(
                        "--sink=sls:https://sls.aliyuncs.com?project=k8s-log&logStore=k8s-event&regionId=cn-hangzhou\
                         &internal=false&accessKeyId={KEY_ID}&accessKeySecret={KEY_SECRET}"
                    ),
                    "--healthz-ip=127.0.0.1",
                    "--healthz-port=0",
                ])
                .env("SLS_ENDPOINT", sls.endpoint())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("start kube-eventer"),
        }
    }
}

/// eventer's `--sink` for `sls`.
fn sls_sink(sls: &FakeSls) -> String {
    format!(
        "--sink=sls:{}?project=k8s-log&logStore=k8s-event&regionId=cn-hangzhou\
         &accessKeyId={KEY_ID}&accessKeySecret={KEY_SECRET}",
        sls.endpoint()
    )
}

/// A fresh eventer archiving `api`'s Events into `sls`.
fn spawn_eventer(binary: &std::path::Path, api: &FakeApiServer, sls: &FakeSls, start_from: &str) -> Child {
    let source = format!("--source=kubernetes:{}?inClusterConfig=false&startFrom={start_from}", api.url());
    start_eventer(binary, &[&source, &sls_sink(sls)])
}

/// `binary` with `args`, its health server on a free port, its output discarded.
fn start_eventer(binary: &std::path::Path, args: &[&str]) -> Child {
    Command::new(binary)
        .args(args)
        .arg("--healthz-port=0")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start eventer")
}

async fn fakes() -> (FakeApiServer, FakeSls) {
    fakes_with(FakeApiServer::builder()).await
}

/// The fake SLS, and an apiserver as `api` sets it up.
async fn fakes_with(api: eventer_fake_apiserver::Builder) -> (FakeApiServer, FakeSls) {
    let api = api.start().await.expect("start the fake apiserver");
    let sls = FakeSls::start().await;
    sls.add_key(KEY_ID, KEY_SECRET);
    (api, sls)
}

/// Archive `events` Events listed at start through a fresh eventer and fresh fakes.
async fn list_once(binary: &std::path::Path, events: usize) -> Run {
    let (api, sls) = fakes().await;
    api.bulk_load_events("bench", events);
    let started = Instant::now();
    let mut eventer = spawn_eventer(binary, &api, &sls, "all");
    let pid = eventer.id().expect("eventer's pid");
    sls.wait_for_logs(events, Duration::from_secs(600)).await;
    let wall = started.elapsed();
    // Read while eventer is still running: /proc/<pid> goes away with the process.
    let cpu = cpu_ticks(pid) as f64 / clock_ticks();
    let rss_mib = peak_rss_kib(pid) as f64 / 1024.0;
    eventer.kill().await.expect("stop eventer");
    assert_eq!(sls.logs().len(), events, "every event archived exactly once");
    Run::of(cpu, rss_mib, None, wall, &sls)
}

/// Archive `events` Events created at [`WATCH_RATE`] while a fresh exporter watches.
async fn watch_once(exporter: Exporter<'_>, events: usize) -> Run {
    let (api, sls) = fakes().await;
    let process = exporter.spawn(&api, &sls, "now");
    tokio::time::timeout(Duration::from_secs(60), api.wait_for_watchers(1)).await.expect("the exporter watches");
    // Settled: the sink started and the watch is open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    load(&api, &sls, process, events).await
}

/// Archive `events` Events created at [`WATCH_RATE`] through a fresh eventer run as the Helm
/// chart runs it: TLS and a bearer token to the apiserver, leader election and a ConfigMap
/// checkpoint. Idle RSS is taken after [`DEPLOYED_SETTLE`] of leading.
async fn deployed_once(binary: &std::path::Path, events: usize) -> Run {
    let (api, sls) = fakes_with(FakeApiServer::builder().tls().token("e2e-token")).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).expect("write the kubeconfig");
    let source = format!("--source=kubernetes:?auth={}&startFrom=now", kubeconfig.display());
    let process = start_eventer(
        binary,
        &[
            &source,
            &sls_sink(&sls),
            "--checkpoint=configmap:default/eventer-e2e",
            "--leader-elect",
            "--leader-elect-namespace=default",
        ],
    );
    tokio::time::timeout(Duration::from_secs(60), api.wait_for_watchers(1)).await.expect("eventer leads and watches");
    tokio::time::sleep(DEPLOYED_SETTLE).await;
    load(&api, &sls, process, events).await
}

/// Idle RSS of `process`, then `events` Events created at [`WATCH_RATE`]: its CPU from the
/// start of the load to the last event stored, and its peak RSS.
async fn load(api: &FakeApiServer, sls: &FakeSls, mut process: Child, events: usize) -> Run {
    let pid = process.id().expect("the exporter's pid");
    let idle_rss_mib = rss_kib(pid) as f64 / 1024.0;
    let before = cpu_ticks(pid);
    let started = Instant::now();
    let load = api.create_steadily("bench", SteadyLoad { total: events, per_second: WATCH_RATE, nodes: WATCH_NODES });
    sls.wait_for_logs(events, Duration::from_secs(600)).await;
    let wall = started.elapsed();
    let cpu = (cpu_ticks(pid) - before) as f64 / clock_ticks();
    let rss_mib = peak_rss_kib(pid) as f64 / 1024.0;
    process.kill().await.expect("stop the exporter");
    load.await.expect("the load ran");
    assert_eq!(sls.logs().len(), events, "every event archived exactly once");
    Run::of(cpu, rss_mib, Some(idle_rss_mib), wall, sls)
}

/// Seconds from each of `events` Events' creation (20 a second) to its arrival in SLS, sorted.
async fn latency_once(binary: &std::path::Path, events: usize) -> Vec<f64> {
    let (api, sls) = fakes().await;
    let mut eventer = spawn_eventer(binary, &api, &sls, "now");
    tokio::time::timeout(Duration::from_secs(60), api.wait_for_watchers(1)).await.expect("eventer watches");
    let mut created = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for i in 0..events {
        tick.tick().await;
        let event = api.create_event(NewEvent::new("latency", &format!("web-{i}")));
        created.insert(event.uid, Instant::now().into_std());
    }
    sls.wait_for_logs(events, Duration::from_secs(120)).await;
    eventer.kill().await.expect("stop eventer");
    let mut seconds: Vec<f64> = sls
        .writes()
        .iter()
        .flat_map(|w| w.group.logs.iter().map(move |log| (w.received, log)))
        .map(|(received, log)| {
            let uid = log.get("event_uid").expect("event_uid");
            received.duration_since(created[uid]).as_secs_f64()
        })
        .collect();
    assert_eq!(seconds.len(), events, "every event archived exactly once");
    seconds.sort_by(f64::total_cmp);
    seconds
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Print each run and the medians of `path`'s runs.
fn report(path: &str, events: usize, results: &[Run]) {
    let cpu = median(results.iter().map(|r| r.cpu).collect());
    let rss = median(results.iter().map(|r| r.rss_mib).collect());
    let requests = median(results.iter().map(|r| r.requests as f64).collect());
    let range = |f: fn(&Run) -> f64| {
        let values: Vec<f64> = results.iter().map(f).collect();
        (values.iter().copied().fold(f64::INFINITY, f64::min), values.iter().copied().fold(0.0, f64::max))
    };
    let (cpu_min, cpu_max) = range(|r| r.cpu);
    println!("{path} path, {events} events, median of {} runs:", results.len());
    println!("  CPU         {cpu:.2} s ({:.1} µs/event; runs {cpu_min:.2}–{cpu_max:.2} s)", cpu * 1e6 / events as f64);
    println!("  peak RSS    {rss:.1} MiB");
    if let Some(idle) = results.iter().filter_map(|r| r.idle_rss_mib).reduce(f64::max) {
        println!("  idle RSS    {idle:.1} MiB (largest before the load)");
    }
    println!("  PutLogs     {requests:.0} requests ({:.0} events/request)", events as f64 / requests);
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let mode = match args.peek().map(String::as_str) {
        Some(m @ ("list" | "watch" | "deployed" | "latency" | "all")) => {
            let m = m.to_owned();
            args.next();
            m
        }
        _ => "all".to_owned(),
    };
    let events: usize = args.next().map_or(100_000, |n| n.parse().expect("a number of events"));
    let runs: usize = args.next().map_or(5, |n| n.parse().expect("a number of runs"));
    let binary = eventer_binary();
    let kube_eventer = std::env::var_os("KUBE_EVENTER_BIN").map(PathBuf::from);

    for path in ["list", "watch", "deployed"] {
        if mode != path && mode != "all" {
            continue;
        }
        let mut exporters = vec![Exporter::Eventer(&binary)];
        if path == "watch" {
            exporters.extend(kube_eventer.as_deref().map(Exporter::KubeEventer));
        }
        let mut results: Vec<Vec<Run>> = exporters.iter().map(|_| Vec::with_capacity(runs)).collect();
        for i in 1..=runs {
            for (exporter, results) in exporters.iter().zip(&mut results) {
                let run = match path {
                    "list" => list_once(&binary, events).await,
                    "deployed" => deployed_once(&binary, events).await,
                    _ => watch_once(*exporter, events).await,
                };
                print_run(exporter.name(), path, i, events, &run);
                results.push(run);
            }
        }
        for (exporter, results) in exporters.iter().zip(&results) {
            print!("{}: ", exporter.name());
            report(path, events, results);
        }
        if let [ours, theirs] = &results[..] {
            let cpu = |runs: &[Run]| median(runs.iter().map(|r| r.cpu).collect());
            println!(
                "eventer's CPU is {:.1}% of kube-eventer's (medians; target ≤ 10%)",
                100.0 * cpu(ours) / cpu(theirs)
            );
        }
    }
    if mode == "latency" || mode == "all" {
        let seconds = latency_once(&binary, 100).await;
        let at = |q: f64| seconds[((seconds.len() - 1) as f64 * q) as usize];
        println!(
            "latency, 100 events at 20/s: created → stored in SLS p50 {:.2} s, p99 {:.2} s, max {:.2} s (target p50 ≤ 2 s)",
            at(0.5),
            at(0.99),
            seconds[seconds.len() - 1]
        );
    }
}

/// One run's line.
fn print_run(exporter: &str, path: &str, i: usize, events: usize, run: &Run) {
    let budget = run.request_budget(events);
    println!(
        "{exporter} {path} run {i}: CPU {:.2} s ({:.1} µs/event), peak RSS {:.1} MiB{}, wall {:.2} s, \
                 {} requests ({:.0} events/request, {:.0} KiB raw/request; budget {budget})",
        run.cpu,
        run.cpu * 1e6 / events as f64,
        run.rss_mib,
        run.idle_rss_mib.map(|idle| format!(" (idle {idle:.1} MiB)")).unwrap_or_default(),
        run.wall.as_secs_f64(),
        run.requests,
        events as f64 / run.requests as f64,
        run.raw_bytes as f64 / 1024.0 / run.requests as f64,
    );
}
