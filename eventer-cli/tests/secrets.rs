//! Secrets never reach the output, at any log level: the binary runs at trace level with
//! secret-bearing URIs against unreachable endpoints (whose HTTP errors embed URLs).
#![cfg(all(feature = "source-k8s", feature = "sink-dingtalk", feature = "sink-sls"))]

mod common;

use common::Eventer;
use eventer_fake_apiserver::{FakeApiServer, NewEvent};

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
    let source = format!("kubernetes:?inClusterConfig=false&auth={}&startFrom=all", kubeconfig.display());
    let mut eventer = Eventer::spawn(
        &source,
        &[
            "--sink=dingtalk:http://127.0.0.1:1/robot/send?access_token=DingTalkToken0001&sign=SECdingtalksign0002&label=x",
            "--sink=sls:http://127.0.0.1:1?project=p&logStore=l&accessKeyId=LTAIaccesskeyid0003&accessKeySecret=slsaccesskeysecret0004&regionId=cn-hangzhou",
            "--shutdown-timeout=1s",
            "-vv",
        ],
    );
    // Wait until both sinks have failed, and been retried, at least once.
    for sink in ["dingtalk", "sls"] {
        let retried = format!("sink={sink}");
        eventer.wait_log("a retry", |l| l.contains("Delivery failed; will retry") && l.contains(&retried)).await;
    }
    let (stdout, log) = eventer.stop().await;

    let all = format!("{log}\n{}", stdout.join("\n"));
    assert!(log.lines().count() > 50, "trace logging is on: {} lines", log.lines().count());
    assert!(all.contains("127.0.0.1:1"), "the failures are logged with their endpoint");
    for secret in SECRETS {
        let leaks: Vec<&str> = all.lines().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret} leaked:\n{}", leaks.join("\n"));
    }
}
