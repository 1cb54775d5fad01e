//! The `eventer` binary end to end: the bundled sample, and the bad-input table.

use std::process::{Command, Output};

mod common;

fn eventer(args: &[&str]) -> Output {
    // Tests run in parallel: each server takes a free port unless the test sets one.
    let own_port = !args
        .iter()
        .any(|a| a.starts_with("--healthz-port") || matches!(*a, "check" | "preview" | "--help" | "--version"));
    Command::new(common::eventer_bin())
        .args(own_port.then_some("--healthz-port=0"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env_remove("RUST_LOG")
        .output()
        .expect("run eventer")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn sample_to_stdout() {
    let out = eventer(&["--source=file:examples/events.json", "--sink=stdout"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 23);
    assert!(text.lines().any(|l| l.ends_with("Warning shop Pod/payment-5f8b7c9d6-qw7rt BackOff: Back-off restarting failed container payment in pod payment-5f8b7c9d6-qw7rt_shop(3f0c5a1e-8c1b-4c55-9d1e-2b7a4d6c9e10) (x27)")), "{text}");
    assert!(text.starts_with("2024-06-03T08:00:00Z Normal shop Deployment/checkout ScalingReplicaSet: "), "{text}");
    // Log lines held while it started are let out once it has.
    let log = stderr(&out);
    assert!(log.lines().next().is_some_and(|l| l.contains("INFO") && l.contains("Serving /healthz")), "{log}");
    assert!(log.lines().last().is_some_and(|l| l.contains("Stopped.")), "{log}");
}

#[test]
fn a_finite_run_goes_on_when_the_health_port_is_taken() {
    // Something else holds the port for the whole run.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let out = eventer(&[
        "--source=file:examples/events.json",
        "--sink=stdout",
        "--healthz-ip=127.0.0.1",
        &format!("--healthz-port={port}"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 23);
    let log = stderr(&out);
    let busy = format!("--healthz-port={port}: cannot listen on 127.0.0.1:{port}: ");
    assert!(log.lines().any(|l| l.contains("WARN") && l.contains(&busy)), "{log}");
    assert!(!log.contains("Serving /healthz"), "{log}");
    drop(held);
}

#[test]
fn filters_and_json_lines() {
    let out = eventer(&["--source=file:examples/events.json", "--sink=stdout?format=json&level=Warning&kinds=Node"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reasons: Vec<String> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons, ["KernelOops", "TaskHung", "DockerHung", "ContainerdHung", "FDPressure", "ReadonlyFilesystem"]);
    // kube-eventer's `log` alias, two sinks at once.
    let out = eventer(&[
        "--source=file:examples/events.json",
        "--sink=log?reasons=BackOff",
        "--sink=stdout?reasons=OOMKilling",
    ]);
    assert!(out.status.success());
    assert_eq!(stdout(&out).lines().count(), 3);
}

#[test]
fn checkpoint_file_is_accepted_and_written_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp.json");
    let out = eventer(&[
        "--source=file:examples/events.json",
        "--sink=stdout",
        &format!("--checkpoint=file:{}", cp.display()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The file source has no positions, so nothing is written, and nothing is left behind.
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

/// Each bad input exits 2 with one line naming the flag and the problem.
#[test]
fn bad_input_table() {
    let dir = tempfile::tempdir().unwrap();
    let malformed = dir.path().join("bad.json");
    std::fs::write(&malformed, "{\"items\": [ {\"reason\": 1} ]}").unwrap();
    let malformed = format!("--source=file:{}", malformed.display());
    let src = "--source=file:examples/events.json";
    // Linux takes arguments of up to 128 KiB.
    let long_level = format!("--sink=stdout?level={}", "x".repeat(100_000));
    let long_name = format!("--sink=stdout?{}=1", "y".repeat(100_000));
    let wide_level = format!("--sink=stdout?level={}", "ж".repeat(300));
    // A value is cut to 200 characters on a character boundary, with its length.
    let long_origin = format!("eventer: error: --sink=stdout?level={}… (100020 characters): ", "x".repeat(180));
    let long_value = format!(
        ": option level: invalid value `{}… (100000 characters)` (expected Normal or Warning)",
        "x".repeat(200)
    );
    let long_unknown = format!("unknown option {}… (100000 characters) for stdout (known: ", "y".repeat(200));
    let wide_value = format!("`{}… (300 characters)`", "ж".repeat(200));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "eventer: error: --source: a source is required"),
        (vec![src], "eventer: error: --sink: at least one sink is required"),
        (
            vec![src, "--sink=mysql:?brokers=h:9092"],
            "eventer: error: --sink=mysql:?brokers=***: unknown sink scheme `mysql` (known: ",
        ),
        (vec![src, "--sink=:nope"], "eventer: error: --sink=:nope: invalid scheme ``"),
        (vec![src, "--sink=\"stdout\""], "eventer: error: --sink=\"stdout\": the URI is quoted"),
        (
            vec![src, "--sink=stdout?formt=json"],
            "eventer: error: --sink=stdout?formt=***: unknown option formt for stdout (known: ",
        ),
        (
            vec![src, "--sink=stdout?format=yaml"],
            "eventer: error: --sink=stdout?format=yaml: option format: invalid value `yaml` (expected text or json)",
        ),
        (
            vec![src, "--sink=stdout?queue_size=lots"],
            "eventer: error: --sink=stdout?queue_size=lots: option queue_size: invalid number `lots`",
        ),
        (
            vec![src, "--sink=stdout?level=Critical"],
            "eventer: error: --sink=stdout?level=Critical: option level: invalid value `Critical` (expected Normal or Warning)",
        ),
        (
            vec![src, "--sink=stdout?message=(oops"],
            "eventer: error: --sink=stdout?message=(oops: option message: invalid regex `(oops`",
        ),
        (
            vec![src, "--sink=stdout?level=$EVENTER_NO_SUCH_VAR"],
            "eventer: error: --sink=stdout?level=$EVENTER_NO_SUCH_VAR: environment variable EVENTER_NO_SUCH_VAR is not set",
        ),
        (
            vec!["--source=file:/no/such/events.json", "--sink=stdout"],
            "eventer: error: --source=file:/no/such/events.json: cannot read event file /no/such/events.json: No such file or directory",
        ),
        (vec![&malformed, "--sink=stdout"], "invalid event JSON at line 1"),
        (
            vec!["--source=kube:https://x", "--sink=stdout"],
            "eventer: error: --source=kube:https://x: unknown source scheme `kube` (known: ",
        ),
        (
            vec![src, "--sink=stdout", "--checkpoint=file:/no/such/dir/cp.json"],
            "eventer: error: --checkpoint=file:/no/such/dir/cp.json: checkpoint directory /no/such/dir does not exist",
        ),
        (vec![src, "--sink=stdout", "--checkpoint=etcd:x"], "unknown checkpoint scheme `etcd`"),
        (
            vec![src, "--sink=stdout", "--checkpoint=file:/tmp"],
            "eventer: error: --checkpoint=file:/tmp: /tmp is a directory",
        ),
        (
            vec![src, "--sink=stdout", "--frequency=5 parsecs"],
            "eventer: error: invalid value '5 parsecs' for '--frequency <DURATION>': invalid duration",
        ),
        (vec![src, "--sink=stdout", "--frequency=0s"], "for '--frequency <DURATION>': must be greater than zero"),
        (
            vec![src, "--sink=stdout", "--healthz-port=70000"],
            "eventer: error: invalid value '70000' for '--healthz-port <PORT>'",
        ),
        (vec![src, "--sink=stdout", "--bogus"], "eventer: error: unexpected argument '--bogus' found"),
        (vec![src, "--sink=stdout?id=a%0Ab"], "option id: `a\\nb` must be letters, digits"),
        (vec![src, "--sink=stdout?id="], "option id: `` must be letters, digits"),
        (vec![src, "--sink=stdout", "--logtostderr=yes"], "'--logtostderr [<BOOL>]': `yes` is not a boolean"),
        (vec![src, "--sink=stdout?level=Warn\ning"], "option level: invalid value `Warn\\ning`"),
        (
            vec![src, src, "--sink=stdout"],
            "eventer: error: the argument '--source <URI>' cannot be used multiple times",
        ),
        (
            vec![src, "--sink=stdout?id=audit", "--sink=log?id=audit&level=Warning"],
            "eventer: error: --sink=log?id=audit&level=Warning: option id: `audit` already names another sink; ",
        ),
        (vec![src, "--sink=stdout", "--sink=log?id=stdout"], "option id: `stdout` already names another sink"),
        (
            vec![src, "--sink=stdout", "--checkpoint=configmap:kube-system/eventer"],
            "eventer: error: --checkpoint=configmap:kube-system/eventer: configmap checkpoint needs the kubernetes source",
        ),
        (vec![src, "--sink=stdout", "--checkpoint=configmap:"], "configmap checkpoint needs the kubernetes source"),
        (vec![src, &long_level], &long_origin),
        (vec![src, &long_level], &long_value),
        (vec![src, &long_name], &long_unknown),
        (vec![src, &wide_level], &wide_value),
    ];
    for (args, expected) in cases {
        let out = eventer(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.chars().count() < 1500, "over-long values are cut: {} characters", err.chars().count());
        assert!(err.contains(expected), "{args:?}:\n  got: {err}\n want: {expected}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn kube_eventer_flags_as_go_reads_them() {
    // Go's flag package: a huge GOMAXPROCS is fine, booleans may be 1/0/t/f/TRUE.
    let out = eventer(&[
        "--max_procs=9223372036854775807",
        "--logtostderr=1",
        "--event-metrics=F",
        "--v=2",
        "--source=file:examples/events.json",
        "--sink=stdout",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 23);
}

#[test]
fn errors_found_at_start_name_the_flag() {
    // No kubeconfig and no pod environment: the source finds that out only when it starts.
    let out = Command::new(common::eventer_bin())
        .args(["--healthz-port=0", "--source=kubernetes:?namespaces=default", "--sink=stdout"])
        .env("KUBECONFIG", "/no/such/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("RUST_LOG")
        .output()
        .expect("run eventer");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // Only the error: what was logged while starting is dropped with the failed start.
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("eventer: error: --source=kubernetes:?namespaces=default: cannot find the cluster: "),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn secrets_never_appear_in_errors() {
    let out = eventer(&[
        "--source=file:examples/events.json",
        "--sink=stdout?access_token=tok-SECRET-1&accessKeySecret=SECRET-2&sign=SECRET-3&password=SECRET-4&bogus=1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unknown option"), "{err}");
    assert!(!err.contains("SECRET"), "{err}");
    assert!(err.contains("access_token=***"), "{err}");
}

#[test]
fn help_and_version() {
    let out = eventer(&["--help"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("--sink <URI>"));
    let out = eventer(&["--version"]);
    assert!(out.status.success());
    assert!(stdout(&out).starts_with("eventer "));
}

#[test]
fn config_file_runs_the_same_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("eventer.yaml");
    std::fs::write(
        &config,
        "source: file:examples/events.json\n\
         sinks:\n\
         - uri: stdout\n\
         \x20 options: { format: json, level: Warning, kinds: [Node] }\n\
         log: { format: json }\n",
    )
    .unwrap();
    let flag = format!("--config={}", config.display());
    let out = eventer(&[&flag]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 6, "the six Node Warnings");
    // A --sink flag replaces the file's sinks.
    let out = eventer(&[&flag, "--sink=stdout?reasons=OOMKilling"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1);
}

#[test]
fn check_prints_the_resolved_pipeline_redacted() {
    let out = eventer(&[
        "check",
        "--source=kubernetes:https://10.0.0.1:6443?inClusterConfig=false&namespaces=shop",
        "--sink=dingtalk:https://oapi.dingtalk.com/robot/send?access_token=TOKEN-SECRET&sign=SEC-SECRET&label=prod&kinds=Node",
        "--sink=sls:https://cn-hangzhou.log.aliyuncs.com?project=p&logStore=l&accessKeyId=AKID-SECRET&accessKeySecret=KEY-SECRET",
        "--checkpoint=file:/tmp/eventer-check-cp.json",
        "--leader-elect",
        "--leader-elect-namespace=ops",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("SECRET"), "{text}");
    for want in [
        "source      kubernetes:https://10.0.0.1:6443?inClusterConfig=false&namespaces=shop",
        "sink        dingtalk = dingtalk:https://oapi.dingtalk.com/robot/send?access_token=***&sign=***&label=prod&kinds=Node",
        "  filter    kinds=Node level=Warning",
        "sink        sls = sls:https://cn-hangzhou.log.aliyuncs.com?project=p&logStore=l&accessKeyId=***&accessKeySecret=***",
        "checkpoint  file:/tmp/eventer-check-cp.json",
        "leader      lease ops/eventer",
        "valid",
    ] {
        assert!(text.lines().any(|l| l == want), "missing {want:?} in\n{text}");
    }
    assert!(!std::path::Path::new("/tmp/eventer-check-cp.json").exists(), "check writes nothing");

    for (args, want) in [
        (&["--sink=dingtalk:?label=x"][..], "eventer: error: --sink=dingtalk:?label=x: "),
        (
            &["--sink=stdout", "--leader-elect"][..],
            "eventer: error: --leader-elect: needs the kubernetes source, whose connection holds the lease (got --source=file:examples/events.json)",
        ),
    ] {
        let out = eventer(&[&["check", "--source=file:examples/events.json"][..], args].concat());
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(stderr(&out).starts_with(want), "{}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn preview_renders_without_sending() {
    // The endpoints are unroutable: a preview that tried to send would fail or hang.
    let out = eventer(&[
        "preview",
        "--source=file:examples/events.json",
        "--sink=dingtalk:http://192.0.2.1/robot/send?access_token=TOKEN-SECRET&label=prod&kinds=Node&msg_type=markdown",
        "--sink=sls:http://192.0.2.1?project=p&logStore=l&accessKeyId=AKID-SECRET&accessKeySecret=KEY-SECRET&reasons=BackOff",
        "--sink=stdout?reasons=BackOff",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("SECRET"), "{text}");
    assert!(text.contains("=== sink dingtalk (dingtalk:http://192.0.2.1/robot/send?access_token=***&label=prod&kinds=Node&msg_type=markdown): 6 of 23 events"), "{text}");
    let messages: Vec<serde_json::Value> =
        text.lines().filter(|l| l.starts_with("{\"msgtype\"")).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(messages.len(), 6, "{text}");
    assert!(messages[0]["markdown"]["text"].as_str().unwrap().contains("**KernelOops**"));
    let logs: Vec<serde_json::Value> =
        text.lines().filter(|l| l.starts_with("{\"__source__\"")).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(logs.len(), 2, "{text}");
    assert!(logs.iter().all(|l| l["reason"] == "BackOff"), "{text}");
    assert_eq!(logs[0]["pod_name"], "payment-5f8b7c9d6-qw7rt");
    assert!(
        text.contains("=== sink stdout (stdout?reasons=BackOff): 2 of 23 events\n--- stdout 1\n2024-06-03T08:14:30Z Warning shop Pod/payment-5f8b7c9d6-qw7rt BackOff: "),
        "{text}"
    );

    let out = eventer(&["preview", "--source=kubernetes:http://127.0.0.1:1?inClusterConfig=false", "--sink=stdout"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("preview reads a finite source"), "{}", stderr(&out));
}

#[test]
fn preview_of_no_events_says_so() {
    let dir = tempfile::tempdir().unwrap();
    for (file, text) in [("empty.json", ""), ("list.json", "{\"kind\": \"EventList\", \"items\": []}")] {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        let source = format!("--source=file:{}", path.display());
        let out = eventer(&["preview", &source, "--sink=stdout"]);
        // Not an error: the sinks are valid, there is just nothing to render.
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stderr(&out), format!("eventer: note: {source}: no events; nothing to preview\n"));
        assert_eq!(stdout(&out), "=== sink stdout (stdout): 0 of 0 events\n");
    }
}
