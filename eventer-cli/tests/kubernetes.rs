//! The `eventer` binary with the Kubernetes source against the fake apiserver.
#![cfg(feature = "source-k8s")]

use std::{path::Path, process::Stdio, time::Duration};

use eventer_fake_apiserver::{FakeApiServer, NewEvent};
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStdout, Command},
};

fn spawn(url: &str, checkpoint: &Path) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventer"))
        .args([
            &format!("--source=kubernetes:{url}?inClusterConfig=false&startFrom=all"),
            "--sink=stdout",
            &format!("--checkpoint=file:{}", checkpoint.display()),
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

async fn read_lines(lines: &mut Lines<BufReader<ChildStdout>>, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.expect("eventer output");
        out.push(line.unwrap().expect("eventer exited early"));
    }
    out
}

/// SIGTERM, then the rest of stdout; the process must exit cleanly.
async fn stop(mut child: Child, mut lines: Lines<BufReader<ChildStdout>>) -> Vec<String> {
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push(line);
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
    rest
}

fn reason_of(line: &str) -> &str {
    line.split_whitespace().nth(4).unwrap_or_default().trim_end_matches(':')
}

#[tokio::test]
async fn restart_with_checkpoint_delivers_exactly_what_happened_meanwhile() {
    let api = FakeApiServer::start().await.unwrap();
    for i in 0..3 {
        api.create_event(NewEvent::new("shop", &format!("old-{i}")).reason(&format!("Old{i}")).warning());
    }
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("cp.json");

    let (child, mut lines) = spawn(api.url(), &checkpoint);
    let first = read_lines(&mut lines, 3).await;
    assert!(stop(child, lines).await.is_empty());
    let mut reasons: Vec<&str> = first.iter().map(|l| reason_of(l)).collect();
    reasons.sort_unstable();
    assert_eq!(reasons, ["Old0", "Old1", "Old2"]);
    assert!(checkpoint.exists(), "the final checkpoint is written at shutdown");

    // While eventer is down, five events happen.
    for i in 0..5 {
        api.create_event(NewEvent::new("shop", &format!("new-{i}")).reason(&format!("New{i}")).warning());
    }
    let (child, mut lines) = spawn(api.url(), &checkpoint);
    let mut second = read_lines(&mut lines, 5).await;
    second.extend(stop(child, lines).await);
    let reasons: Vec<&str> = second.iter().map(|l| reason_of(l)).collect();
    assert_eq!(reasons, ["New0", "New1", "New2", "New3", "New4"], "exactly the five, once, nothing older");
}
