//! Secrets never reach the output, at any log level: the binary runs at trace level with
//! secret-bearing URIs against unreachable endpoints (whose HTTP errors embed URLs).
#![cfg(all(feature = "source-k8s", feature = "sink-dingtalk", feature = "sink-sls"))]

use std::{process::Stdio, time::Duration};

use eventer_fake_apiserver::{FakeApiServer, NewEvent};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::Command,
};

const SECRETS: &[&str] = &[
    "DingTalkToken0001",
    "SECdingtalksign0002",
    "LTAIaccesskeyid0003",
    "slsaccesskeysecret0004",
    "apiservertoken0005",
];

#[tokio::test]
async fn secrets_stay_out_of_logs_at_trace_level() {
    let api = FakeApiServer::builder().token("apiservertoken0005").start().await.unwrap();
    for i in 0..3 {
        api.create_event(NewEvent::new("shop", &format!("pod-{i}")).reason("BackOff").warning());
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();

    // Port 1 on loopback refuses connections: every send fails and is retried, logged each time.
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventer"))
        .args([
            &format!("--source=kubernetes:?inClusterConfig=false&auth={}&startFrom=all", kubeconfig.display()),
            "--sink=dingtalk:http://127.0.0.1:1/robot/send?access_token=DingTalkToken0001&sign=SECdingtalksign0002&label=x",
            "--sink=sls:http://127.0.0.1:1?project=p&logStore=l&accessKeyId=LTAIaccesskeyid0003&accessKeySecret=slsaccesskeysecret0004&regionId=cn-hangzhou",
            "--healthz-port=0",
            "--shutdown-timeout=1s",
            "-vv",
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Wait until both sinks have failed, and been retried, at least once.
    let both_retried = |seen: &[String]| {
        ["dingtalk", "sls"].iter().all(|sink| {
            seen.iter().any(|l| l.contains("Delivery failed; will retry") && l.contains(&format!("sink={sink}")))
        })
    };
    tokio::time::timeout(Duration::from_secs(60), async {
        while !both_retried(&seen) {
            seen.push(stderr.next_line().await.unwrap().expect("eventer exited early"));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no retries logged:\n{}", seen.join("\n")));

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    while let Some(line) = stderr.next_line().await.unwrap() {
        seen.push(line);
    }
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).await.unwrap();
    child.wait().await.unwrap();

    let all = format!("{}\n{stdout}", seen.join("\n"));
    assert!(seen.len() > 50, "trace logging is on: {} lines", seen.len());
    assert!(all.contains("127.0.0.1:1"), "the failures are logged with their endpoint");
    for secret in SECRETS {
        let leaks: Vec<&str> = all.lines().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret} leaked:\n{}", leaks.join("\n"));
    }
}
