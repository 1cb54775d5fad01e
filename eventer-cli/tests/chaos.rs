//! Crash safety of the binary: SIGKILLs at random times while events stream in, with a
//! file checkpoint. Nothing may be lost, and an event may be repeated only if it was
//! delivered within the last checkpoint interval before a kill.
//!
//! The kill times are random, and printed as `CHAOS_SEED=<n>`; `CHAOS_SEED=<n> cargo test
//! -p eventer-cli --test chaos -- --nocapture` replays them.
#![cfg(feature = "source-k8s")]

mod common;

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use eventer_core::checkpoint::{CheckpointStore, FileCheckpoint};
use eventer_fake_apiserver::{FakeApiServer, NewEvent};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

/// Events created, `BURST` every `TICK`: 400 a second for 8 s, about as long as the kills last.
const EVENTS: usize = 3200;
const BURST: usize = 40;
const TICK: Duration = Duration::from_millis(100);
const KILLS: usize = 8;
/// How long the whole test may take before it is a failure.
const DEADLINE: Duration = Duration::from_secs(60);
/// Between an event's delivery and the kill that may repeat it, beyond the checkpoint
/// interval: the save in progress at the kill (a file save takes well under 1 ms), the
/// checkpoint task's wake-up, and the lag of this test's own reading of the pipe (whose
/// receipt times stand in for delivery times) on a loaded machine.
const SLACK: Duration = Duration::from_millis(300);

/// Stdout lines, each with the time this test read it.
type Lines = Vec<(Instant, String)>;

/// One `eventer` process.
struct Run {
    child: Child,
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
}

impl Run {
    fn spawn(api: &FakeApiServer, checkpoint: &Path, log: &Path) -> Run {
        let mut child = Command::new(common::eventer_bin())
            .arg(format!("--source=kubernetes:{}?inClusterConfig=false&startFrom=all", api.url()))
            .arg("--sink=stdout?format=json")
            .arg(format!("--checkpoint=file:{}", checkpoint.display()))
            .args(["--healthz-ip=127.0.0.1", "--healthz-port=0"])
            .env_remove("RUST_LOG")
            .env_remove("KUBECONFIG")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::options().create(true).append(true).open(log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        Run { child, lines }
    }

    /// Wait for the process to end and read the rest of its stdout.
    async fn finish(mut self, into: &mut Lines) -> std::process::ExitStatus {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.unwrap().unwrap();
        while let Some(line) = tokio::time::timeout(Duration::from_secs(30), self.lines.recv()).await.unwrap() {
            into.push(line);
        }
        status
    }
}

/// The event name in one delivered JSON line; `None` for a line cut short by a kill.
fn name(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(value["name"].as_str()?.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kills_lose_nothing_and_repeat_only_the_last_interval() {
    let replay = std::env::var("CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    println!("kill times: CHAOS_SEED={replay}");
    let mut rng = fastrand::Rng::with_seed(replay);
    let started = Instant::now();

    let api = Arc::new(FakeApiServer::start().await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("cp.json");
    let log = dir.path().join("eventer.log");
    let window = FileCheckpoint::new(&checkpoint).min_interval() + SLACK;

    let producer = tokio::spawn({
        let api = api.clone();
        async move {
            let mut tick = tokio::time::interval(TICK);
            for burst in 0..EVENTS / BURST {
                tick.tick().await;
                for i in burst * BURST..(burst + 1) * BURST {
                    api.create_event(NewEvent::new("chaos", "web").name(&format!("chaos-{i:05}")).warning());
                }
            }
        }
    });

    // Each run's lines, and when it was killed (`None`: the last run, stopped gracefully).
    let mut runs: Vec<(Lines, Option<Instant>)> = Vec::new();
    for _ in 0..KILLS {
        let mut run = Run::spawn(&api, &checkpoint, &log);
        let mut lines = Vec::new();
        tokio::time::sleep(Duration::from_millis(rng.u64(300..=1500))).await;
        let killed = Instant::now();
        run.child.start_kill().unwrap();
        assert!(!run.finish(&mut lines).await.success());
        runs.push((lines, Some(killed)));
    }

    // The last run delivers the rest, then one more event: once that is through, the run
    // is up (SIGTERM is handled) and has handled everything before it. Then SIGTERM.
    tokio::time::timeout(DEADLINE, producer).await.expect("producer within the deadline").unwrap();
    let mut run = Run::spawn(&api, &checkpoint, &log);
    let mut lines = Vec::new();
    let delivered_before: usize = runs.iter().map(|(l, _)| l.len()).sum();
    let mut seen: HashSet<String> =
        runs.iter().flat_map(|(l, _)| l.iter().filter_map(|(_, line)| name(line))).collect();
    let mut marker_sent = false;
    loop {
        if seen.len() == EVENTS && !marker_sent {
            api.create_event(NewEvent::new("chaos", "web").name("chaos-end"));
            marker_sent = true;
        }
        let (at, line) = tokio::time::timeout_at((started + DEADLINE).into(), run.lines.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("{} of {EVENTS} events delivered by the deadline (CHAOS_SEED={replay})", seen.len())
            })
            .expect("eventer exited early");
        match name(&line) {
            Some(n) if n == "chaos-end" => break,
            Some(n) => {
                seen.insert(n);
                lines.push((at, line));
            }
            None => panic!("malformed line {line:?} (CHAOS_SEED={replay})"),
        }
    }
    let pid = run.child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut rest = Vec::new();
    let status = run.finish(&mut rest).await;
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status:?}; log:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(rest.is_empty(), "after the last event, nothing more: {:?}", &rest[..rest.len().min(3)]);
    runs.push((lines, None));

    // Every event, at most once per run; a repeat must follow the kill of the run that last
    // delivered it by no more than the checkpoint interval (and slack).
    let mut last: HashMap<String, (usize, Instant)> = HashMap::new();
    let (mut duplicates, mut torn, mut oldest_repeat) = (0, 0, Duration::ZERO);
    let mut per_kill = [0; KILLS];
    for (r, (lines, killed)) in runs.iter().enumerate() {
        for (i, (at, line)) in lines.iter().enumerate() {
            let Some(name) = name(line) else {
                // Only the last line of a killed run may be cut short: a write the kill
                // interrupted, of events not acknowledged and so sent again.
                assert!(
                    killed.is_some() && i == lines.len() - 1,
                    "run {r}: malformed line {line:?} (CHAOS_SEED={replay})"
                );
                torn += 1;
                continue;
            };
            assert!(name.starts_with("chaos-"), "{line}");
            if let Some((prev, prev_at)) = last.insert(name.clone(), (r, *at)) {
                assert!(prev < r, "run {r} delivered {name} twice (CHAOS_SEED={replay})");
                let kill = runs[prev].1.expect("only the last run is not killed");
                let age = kill.saturating_duration_since(prev_at);
                assert!(
                    age <= window,
                    "{name} was delivered {age:?} before kill {prev} and repeated after it; \
                     the checkpoint should have covered it (CHAOS_SEED={replay})"
                );
                oldest_repeat = oldest_repeat.max(age);
                duplicates += 1;
                per_kill[prev] += 1;
            }
        }
    }
    let lost = EVENTS - last.len();
    let delivered: Vec<usize> = runs.iter().map(|(l, _)| l.len()).collect();
    println!(
        "{EVENTS} events, {KILLS} kills in {:.1?}: lost {lost}, duplicates {duplicates} \
         ({:.1} per kill, at most {} after one kill; repeated events were delivered at most {oldest_repeat:?} \
         before the kill), torn lines {torn}; lines per run {delivered:?}; {delivered_before} before the last run",
        started.elapsed(),
        duplicates as f64 / KILLS as f64,
        per_kill.iter().max().unwrap(),
    );
    assert_eq!(lost, 0, "CHAOS_SEED={replay}");
}
