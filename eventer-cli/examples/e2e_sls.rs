//! End to end: 100 000 events from the fake apiserver into the fake SLS through the
//! `eventer` binary; prints eventer's CPU time (utime + stime) and peak RSS (VmHWM), against
//! budgets of 0.7 s and 40 MiB.
//!
//! ```sh
//! cargo run --profile dist -p eventer-cli --example e2e_sls [-- <events> [<runs>]]
//! ```
//!
//! Each run starts fresh fakes and a fresh eventer; it prints every run and the medians
//! (5 runs of 100 000 events by default).
//!
//! It builds `eventer` first with the profile it was run with (a no-op when that is up to
//! date): `dist` measures the shipped binary, `--release` the quicker optimised build. The
//! fakes run in this process, so on a small machine they compete with eventer for CPU:
//! compare runs on the same machine.

use std::{path::PathBuf, process::Stdio, time::Duration};

use eventer_fake_apiserver::FakeApiServer;
use eventer_fake_sls::FakeSls;
use tokio::{process::Command, time::Instant};

const KEY_ID: &str = "LTAI-e2e-id";
const KEY_SECRET: &str = "e2e-secret";

/// `eventer` built with this example's profile, next to it
/// (`target/<profile>/examples/e2e_sls` → `target/<profile>/eventer`).
fn eventer_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("this example's path");
    let dir = exe.parent().and_then(|examples| examples.parent()).expect("target/<profile>");
    // The directory bears the profile's name, but for `dev`'s.
    let profile = match dir.file_name().and_then(|name| name.to_str()).expect("a profile directory") {
        "debug" => "dev",
        name => name,
    };
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

/// One run's figures.
struct Run {
    cpu: f64,
    rss_mib: f64,
    wall: Duration,
    requests: usize,
}

/// Archive `events` events through a fresh eventer and fresh fakes.
async fn run_once(binary: &std::path::Path, events: usize) -> Run {
    let api = FakeApiServer::start().await.expect("start the fake apiserver");
    api.bulk_load_events("bench", events);
    let sls = FakeSls::start().await;
    sls.add_key(KEY_ID, KEY_SECRET);

    let started = Instant::now();
    let mut eventer = Command::new(binary)
        .args([
            &format!("--source=kubernetes:{}?inClusterConfig=false&startFrom=all", api.url()),
            &format!(
                "--sink=sls:{}?project=k8s-log&logStore=k8s-event&regionId=cn-hangzhou\
                 &accessKeyId={KEY_ID}&accessKeySecret={KEY_SECRET}",
                sls.endpoint()
            ),
            "--healthz-port=0",
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start eventer");
    let pid = eventer.id().expect("eventer's pid");

    sls.wait_for_logs(events, Duration::from_secs(600)).await;
    let wall = started.elapsed();
    // Read while eventer is still running: /proc/<pid> goes away with the process.
    let cpu = cpu_ticks(pid) as f64 / clock_ticks();
    let rss_mib = peak_rss_kib(pid) as f64 / 1024.0;
    eventer.kill().await.expect("stop eventer");
    assert_eq!(sls.logs().len(), events, "every event archived exactly once");
    Run { cpu, rss_mib, wall, requests: sls.writes().len() }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().map_or(100_000, |n| n.parse().expect("a number of events"));
    let runs: usize = args.next().map_or(5, |n| n.parse().expect("a number of runs"));
    let binary = eventer_binary();

    let mut results = Vec::with_capacity(runs);
    for i in 1..=runs {
        let run = run_once(&binary, events).await;
        println!(
            "run {i}: CPU {:.2} s ({:.1} µs/event), peak RSS {:.1} MiB, wall {:.2} s, {} requests",
            run.cpu,
            run.cpu * 1e6 / events as f64,
            run.rss_mib,
            run.wall.as_secs_f64(),
            run.requests
        );
        results.push(run);
    }
    let cpu = median(results.iter().map(|r| r.cpu).collect());
    let rss = median(results.iter().map(|r| r.rss_mib).collect());
    println!("{events} events, median of {runs} runs:");
    println!("eventer CPU {cpu:.2} s ({:.1} µs/event; target ≤ 0.7 s)", cpu * 1e6 / events as f64);
    println!("peak RSS    {rss:.1} MiB (target ≤ 40 MiB)");
}
