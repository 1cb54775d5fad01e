//! The `eventer` binary with the DingTalk sink against the fake robot.
#![cfg(feature = "sink-dingtalk")]

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
