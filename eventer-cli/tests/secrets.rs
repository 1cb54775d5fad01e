//! Secrets never reach the output, at any log level: the binary runs at trace level with
//! secret-bearing URIs against unreachable endpoints (whose HTTP errors embed URLs).
#![cfg(all(feature = "source-k8s", feature = "sink-dingtalk", feature = "sink-sls"))]

mod common;

use std::process::Command;

use common::Eventer;
use eventer_core::{
    registry::Role,
    uri::{is_secret_key, looks_secret},
};
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

/// Mistyped secret options, unknown options and secrets holding an `&`: the one error line
/// (and any log line, at trace level) shows none of the secret, with `eventer`, `check` and
/// `preview` alike.
#[test]
fn secrets_stay_out_of_errors_when_mistyped() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("eventer.yaml");
    std::fs::write(
        &config,
        "source: file:examples/events.json\n\
         sinks:\n\
         - uri: dingtalk:http://127.0.0.1:1/robot/send?access_token=S3CR3T-a&S3CR3T-b\n\
         \x20 options: { accessKeySecrect: S3CR3T-c, level: Warning }\n",
    )
    .unwrap();
    let config = format!("--config={}", config.display());
    let cases: &[(&str, &str)] = &[
        (
            "--sink=stdout?accessKeySecrect=S3CR3T-1",
            "--sink=stdout?accessKeySecrect=***: unknown option accessKeySecrect",
        ),
        (
            "--sink=stdout?signature=S3CR3T-2&format=json",
            "--sink=stdout?signature=***&format=json: unknown option signature",
        ),
        ("--sink=stdout?secret_key=S3CR3T-3", "--sink=stdout?secret_key=***: unknown option secret_key"),
        ("--sink=stdout?access_tokn=S3CR3T-4", "--sink=stdout?access_tokn=***: unknown option access_tokn"),
        ("--sink=stdout?colour=S3CR3T-5", "--sink=stdout?colour=***: unknown option colour"),
        (
            "--sink=stdout?accessKeySecrect=S3CR3T-20&S3CR3T-21&format=json",
            "--sink=stdout?accessKeySecrect=***&format=json: unknown option accessKeySecrect for stdout",
        ),
        (
            "--sink=dingtalk:http://127.0.0.1:1/robot/send?access_token=S3CR3T-6&S3CR3T-7&level=Warning",
            "--sink=dingtalk:http://127.0.0.1:1/robot/send?access_token=***&level=Warning: option access_token: its \
             value is followed by `&` and text that is no option of dingtalk (not shown",
        ),
        (
            "--sink=dingtalk:?access_token=S3CR3T-8&S3CR3T-9=x&label=a&bogus=S3CR3T-10",
            "--sink=dingtalk:?access_token=***&label=a&bogus=***: unknown option bogus for dingtalk",
        ),
        (
            "--sink=sls:http://127.0.0.1:1?project=p&logStore=l&accessKeyId=S3CR3T-11&accessKeySecret=S3CR3T-12&S3CR3T-13",
            "--sink=sls:http://127.0.0.1:1?project=p&logStore=l&accessKeyId=***&accessKeySecret=***: option \
             accessKeySecret: its value is followed by",
        ),
        ("--sink=mysql:?password=S3CR3T-14&brokers=S3CR3T-15", "--sink=mysql:?password=***: unknown sink scheme"),
        (
            "--sink=kafka:?brokers=127.0.0.1:1&user=u&password=S3CR3T-20&mechanism=GSSAPI",
            "--sink=kafka:?brokers=127.0.0.1:1&user=u&password=***&mechanism=GSSAPI: option mechanism: ",
        ),
        (
            "--sink=\"dingtalk:?access_token=S3CR3T-16&S3CR3T-17\"",
            "--sink=\"dingtalk:?access_token=***: the URI is quoted",
        ),
        (
            "--sink=dingtalk:?access_token=S3CR3T-18&S3CR3T-19&level=$EVENTER_NO_SUCH_VAR",
            "--sink=dingtalk:?access_token=***&level=$EVENTER_NO_SUCH_VAR: environment variable",
        ),
        (&config, ": sinks[0]: unknown option accessKeySecrect for dingtalk"),
    ];
    for (sink, want) in cases {
        for command in [&[][..], &["check"], &["preview"]] {
            let out = Command::new(common::eventer_bin())
                .args(command)
                .args(["--healthz-ip=127.0.0.1", "--healthz-port=0", "-vv"])
                .args(sink.starts_with("--sink").then_some("--source=file:examples/events.json"))
                .arg(sink)
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                .env_remove("RUST_LOG")
                .output()
                .unwrap();
            let all = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
            assert_eq!(out.status.code(), Some(2), "{command:?} {sink}: {all}");
            assert_eq!(all.lines().count(), 1, "{command:?} {sink}: {all}");
            assert!(
                all.starts_with("eventer: error: ") && all.contains(want),
                "{command:?} {sink}:\n  got: {all}\n want: {want}"
            );
            assert!(!all.to_ascii_lowercase().contains("s3cr3t"), "{command:?} {sink}: {all}");
        }
    }
}

/// Near misses of secret names are hidden: no option a built-in scheme knows may be one,
/// or its value would vanish from `eventer check`.
#[test]
fn known_options_are_not_taken_for_secrets() {
    let registry = eventer_cli::default_registry();
    let mut checked = 0;
    for (role, schemes) in [(Role::Sink, registry.sink_schemes()), (Role::Source, registry.source_schemes())] {
        for scheme in schemes {
            for option in registry.options_of(role, scheme).unwrap() {
                assert_eq!(looks_secret(option), is_secret_key(option), "{scheme}: {option}");
                checked += 1;
            }
        }
    }
    assert!(checked > 80, "{checked} options");
}
