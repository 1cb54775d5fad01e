//! The fake checked against `kubectl` (skipped, saying so, where kubectl is not installed).

use std::{process::Stdio, time::Duration};

use eventer_fake_apiserver::{FakeApiServer, NewEvent};
use tokio::io::{AsyncBufReadExt, BufReader};

const PATIENCE: Duration = Duration::from_secs(60);

fn kubectl_available() -> bool {
    let found =
        std::process::Command::new("kubectl").args(["version", "--client"]).output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: kubectl is not installed (apt-get install kubectl)");
    }
    found
}

#[tokio::test]
async fn kubectl_lists_and_watches_events() {
    if !kubectl_available() {
        return;
    }
    let server = FakeApiServer::builder().tls().token("kubectl-token").start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();
    let first = server.create_event(NewEvent::new("default", "web-0").reason("BackOff").warning());
    let second = server.create_event(NewEvent::new("prod", "db-0"));
    let kubectl = || {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&kubeconfig).env("KUBECACHEDIR", dir.path().join("cache"));
        cmd
    };

    let out = tokio::time::timeout(PATIENCE, kubectl().args(["get", "events", "-A", "-o", "json"]).output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "kubectl failed: {}", String::from_utf8_lossy(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, [first.name.as_str(), second.name.as_str()]);
    assert_eq!(items[0]["reason"], "BackOff");

    let mut watch = kubectl()
        .args(["get", "events", "-A", "--watch", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut next_line = async || tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap().unwrap();
    assert_eq!(next_line().await, format!("event/{}", first.name));
    assert_eq!(next_line().await, format!("event/{}", second.name));
    tokio::time::timeout(PATIENCE, server.wait_for_watchers(1)).await.unwrap();
    let third = server.create_event(NewEvent::new("default", "web-1"));
    assert_eq!(next_line().await, format!("event/{}", third.name));
    server.update_event("default", &first.name).unwrap();
    assert_eq!(next_line().await, format!("event/{}", first.name));
    watch.kill().await.unwrap();
}
