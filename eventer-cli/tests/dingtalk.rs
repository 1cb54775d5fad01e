//! The `eventer` binary with the DingTalk sink against the fake robot.
#![cfg(feature = "sink-dingtalk")]

use std::time::{Duration, Instant};

use eventer_fake_dingtalk::FakeDingTalk;
use tokio::process::Command;

const WARNINGS: [&str; 10] = [
    "BackOff",
    "Unhealthy",
    "FailedScheduling",
    "KernelOops",
    "TaskHung",
    "DockerHung",
    "ContainerdHung",
    "FDPressure",
    "OOMKilling",
    "ReadonlyFilesystem",
];

#[tokio::test]
async fn sample_warnings_reach_the_robot_and_secrets_stay_out_of_logs() {
    let robot = FakeDingTalk::builder().token("tok-SECRET-9").secret("SECsecret-9").start().await;
    let out = Command::new(env!("CARGO_BIN_EXE_eventer"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["--source=file:examples/events.json", &format!("--sink={}&label=prod-cluster", robot.sink_uri()), "-vv"])
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    let text: String = robot.messages().iter().map(|m| m.text.clone()).collect::<Vec<_>>().join("\n");
    for reason in WARNINGS {
        assert!(text.contains(reason), "{reason} missing from:\n{text}");
    }
    for normal in ["Scheduled", "Pulled", "ScalingReplicaSet", "SuccessfulRescale", "NodeHasSufficientMemory"] {
        assert!(!text.contains(normal), "{normal} is Normal and must not be sent");
    }
    assert!(text.contains("prod-cluster"));
    assert_eq!(robot.errcode_count(130101), 0);
    assert!(!logs.contains("SECRET") && !logs.contains("secret-9"), "{logs}");
}

#[tokio::test]
async fn missing_token_is_a_clear_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_eventer"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args([
            "--source=file:examples/events.json",
            "--sink=dingtalk:https://oapi.dingtalk.com/robot/send?sign=SECxyz",
        ])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("access_token"), "{err}");
    assert!(!err.contains("SECxyz"), "{err}");
}

/// Issue scenario: 20 Warnings among 20 Normal events from the apiserver → all 20 Warnings,
/// no Normal, the first within about a second.
#[cfg(feature = "source-k8s")]
#[tokio::test]
async fn warnings_from_the_apiserver_arrive_fast_and_alone() {
    use eventer_fake_apiserver::{FakeApiServer, NewEvent};

    let api = FakeApiServer::start().await.unwrap();
    let robot = FakeDingTalk::builder().token("t0k").start().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventer"))
        .args([
            &format!("--source=kubernetes:{}?inClusterConfig=false", api.url()),
            &format!("--sink={}", robot.sink_uri()),
        ])
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), api.wait_for_watchers(1)).await.expect("eventer watches");
    let started = Instant::now();
    for i in 0..20 {
        api.create_event(NewEvent::new("shop", &format!("web-{i}")).reason(&format!("Crash{i}")).warning());
        api.create_event(NewEvent::new("shop", &format!("web-{i}")).reason(&format!("Pulled{i}")));
    }
    let all_listed = |r: &FakeDingTalk| {
        let text: String = r.messages().iter().map(|m| m.text.clone()).collect();
        (0..20).all(|i| text.contains(&format!("Crash{i}\n")) || text.contains(&format!("Crash{i} ")))
    };
    assert!(robot.wait_until(Duration::from_secs(30), all_listed).await, "all 20 Warnings listed");
    let first = robot.messages()[0].received;
    assert!(first.duration_since(started) < Duration::from_millis(1500), "first alert after {:?}", first - started);
    let text: String = robot.messages().iter().map(|m| m.text.clone()).collect();
    assert!(!text.contains("Pulled"), "Normal events must not be sent:\n{text}");
    assert_eq!(robot.errcode_count(130101), 0);
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap().success());
}
