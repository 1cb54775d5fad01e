//! The `eventer` binary with the SLS sink against the fake SLS endpoint.
#![cfg(feature = "sink-sls")]

use std::time::Duration;

use eventer_fake_sls::FakeSls;
use tokio::process::Command;

const KEY_ID: &str = "LTAI-test-id";
const KEY_SECRET: &str = "kEy-SECRET-value";

fn eventer() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eventer"));
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).env_remove("RUST_LOG");
    cmd
}

#[tokio::test]
async fn sample_is_archived_once_with_kube_eventer_keys() {
    let sls = FakeSls::start().await;
    sls.add_key(KEY_ID, KEY_SECRET);
    let sink = format!(
        "--sink=sls:{}?project=k8s-log&logStore=k8s-event&topic=prod&regionId=cn-hangzhou&label=cluster,c1\
         &accessKeyId={KEY_ID}&accessKeySecret={KEY_SECRET}",
        sls.endpoint()
    );
    let out =
        eventer().args(["--source=file:examples/events.json", &sink, "--frequency=1s", "-v"]).output().await.unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    sls.wait_for_logs(23, Duration::from_secs(10)).await;
    let archived = sls.logs();
    assert_eq!(archived.len(), 23, "every event once");
    for log in &archived {
        let keys: Vec<&str> = log.contents.iter().map(|c| c.key.as_str()).collect();
        for key in ["eventId", "hostname", "level", "cluster", "namespace", "kind", "name", "reason", "message"] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
    }
    assert!(!logs.contains(KEY_SECRET) && !logs.contains(KEY_ID), "{logs}");
}

#[tokio::test]
async fn bad_sls_options_are_usage_errors() {
    for (sink, expected) in [
        ("sls:https://sls.aliyuncs.com?logStore=l", "missing required option project"),
        ("sls:https://sls.aliyuncs.com?project=p&logStore=l&internal=perhaps&accessKeySecret=SECRET-X", "internal"),
    ] {
        let out =
            eventer().args(["--source=file:examples/events.json", &format!("--sink={sink}")]).output().await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains("SECRET-X"), "{err}");
    }
}
