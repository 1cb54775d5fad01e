//! The operator's view through the binary: every metric present and moving, the leader
//! gauge, the Grafana dashboard's queries against what eventer exports, and liveness
//! failing while a sink never answers.
#![cfg(all(feature = "source-k8s", feature = "sink-dingtalk"))]

mod common;

use std::collections::BTreeSet;

use common::{Eventer, get, metric, poll};
use eventer_fake_apiserver::{FakeApiServer, NewEvent};
use eventer_fake_dingtalk::FakeDingTalk;
use tokio::net::TcpListener;

/// The value of the first sample whose line starts with `series` (labels included).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn every_metric_is_exported_and_moves() {
    let api = FakeApiServer::start().await.unwrap();
    for (pod, reason) in [("a", "BackOff"), ("b", "BackOff"), ("c", "MyOperatorFellOver")] {
        api.create_event(NewEvent::new("shop", pod).reason(reason).warning());
    }
    api.create_event(NewEvent::new("shop", "d").reason("Pulled"));
    let robot = FakeDingTalk::builder().start().await;
    let source = format!("kubernetes:{}?inClusterConfig=false&startFrom=all", api.url());
    let mut eventer = Eventer::spawn(&source, &["--sink=stdout", &format!("--sink={}", robot.sink_uri())]);
    let addr = eventer.server_addr().await;
    eventer.lines(4).await;
    assert_eq!(get(&addr, "/healtz").await, (200, "ok\n".into()), "kube-eventer's probe path");

    let delivered = |sink: &str, n: u64| {
        let series = format!("eventer_sink_delivery_latency_seconds_count{{sink=\"{sink}\"}}");
        move |_: u16, body: &str| sample(body, &series).is_some_and(|v| v >= n as f64)
    };
    poll(&addr, "/metrics", delivered("dingtalk", 3)).await;
    let (_, before) = poll(&addr, "/metrics", delivered("stdout", 4)).await;
    let version = format!("eventer_build_info{{version=\"{}\",target=\"", env!("CARGO_PKG_VERSION"));
    assert!(before.lines().any(|l| l.starts_with(&version) && l.ends_with("\"} 1")), "{version} in\n{before}");
    for line in [
        "eventer_leader 1",
        "eventer_kubernetes_events_total{type=\"Warning\",reason=\"BackOff\"} 2",
        "eventer_kubernetes_events_total{type=\"Warning\",reason=\"other\"} 1",
        "eventer_kubernetes_events_total{type=\"Normal\",reason=\"Pulled\"} 1",
        "eventer_sink_delivery_latency_seconds_bucket{le=\"+Inf\",sink=\"stdout\"} 4",
        "# TYPE eventer_sink_delivery_latency_seconds histogram",
        "# TYPE process_cpu_seconds counter",
    ] {
        assert!(before.lines().any(|l| l == line), "missing {line:?} in\n{before}");
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let started = sample(&before, "process_start_time_seconds").unwrap();
    assert!(started > now - 600.0 && started <= now + 1.0, "started at {started}, now {now}");
    assert!(sample(&before, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(sample(&before, "process_open_fds").unwrap() >= 3.0);
    let cpu = sample(&before, "process_cpu_seconds_total").unwrap();

    // More events: the counters, the histogram and the process's CPU time move.
    for pod in ["e", "f"] {
        api.create_event(NewEvent::new("shop", pod).reason("BackOff").warning());
    }
    eventer.lines(2).await;
    let (_, after) = poll(&addr, "/metrics", delivered("stdout", 6)).await;
    assert_eq!(sample(&after, "eventer_kubernetes_events_total{type=\"Warning\",reason=\"BackOff\"}"), Some(4.0));
    assert_eq!(metric(&after, "eventer_events_received_total"), 6);
    assert!(sample(&after, "process_cpu_seconds_total").unwrap() >= cpu);
    let sum = "eventer_sink_delivery_latency_seconds_sum{sink=\"stdout\"}";
    assert!(sample(&after, sum).unwrap() > sample(&before, sum).unwrap());

    dashboard_uses_only_exported_metrics(&after);
    every_exported_metric_is_documented(&after);
    eventer.stop().await;
}

/// docs/reference.md names every metric family the binary exports.
fn every_exported_metric_is_documented(metrics: &str) {
    let reference = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reference.md")).unwrap();
    for declared in metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = declared.split_once(' ').unwrap();
        let name = if kind == "counter" { format!("{name}_total") } else { name.to_owned() };
        assert!(reference.contains(&format!("`{name}")), "{name} is not in docs/reference.md");
    }
}

/// Every metric the Grafana dashboard queries is one eventer exports (checked against a
/// running binary's /metrics, with a DingTalk sink so that its metrics are there too).
fn dashboard_uses_only_exported_metrics(metrics: &str) {
    let exported = exported_names(metrics);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/eventer.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{} queries", exprs.len());
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr:?}");
        for name in names {
            assert!(exported.contains(&name), "{name} (in {expr:?}) is not exported; eventer exports {exported:?}");
            used.insert(name);
        }
    }
    for name in [
        "eventer_build_info",
        "eventer_leader",
        "eventer_kubernetes_events_total",
        "eventer_sink_delivery_latency_seconds_bucket",
        "process_resident_memory_bytes",
    ] {
        assert!(used.contains(name), "the dashboard shows {name}");
    }
}

/// Sample names of an OpenMetrics text, and those its `# TYPE` lines promise (a labelled
/// family with no series yet shows only those).
fn exported_names(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declared.split_once(' ').unwrap();
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') {
            names.insert(line.split(['{', ' ']).next().unwrap().to_owned());
        }
    }
    names
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    // Panel targets' `expr`, and the series of template variables'
                    // `label_values(<series>, <label>)`.
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    ("query", serde_json::Value::String(q)) if q.starts_with("label_values(") => {
                        let series = q["label_values(".len()..].rsplit_once(',').map_or(q.as_str(), |(s, _)| s);
                        out.push(series.to_owned());
                    }
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The metric names a PromQL expression reads: identifiers that are not functions,
/// aggregation operators (`sum by (le) (...)`), keywords, label names (in `{...}`,
/// `by (...)`, `without (...)`), durations or Grafana variables.
fn metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: [&str; 25] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "and",
        "or",
        "unless",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    // Drop quoted strings and label matchers, range selectors, and label lists.
    let mut plain = String::with_capacity(expr.len());
    let mut depth = 0;
    let mut quote = None;
    for c in expr.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '{' | '[') => depth += 1,
            (None, '}' | ']') => depth -= 1,
            (None, c) if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let mut names = Vec::new();
    let mut rest = plain.as_str();
    let mut after_grouping = false;
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '$') {
        let word_end = rest[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '$'))
            .map_or(rest.len(), |e| start + e);
        let word = &rest[start..word_end];
        let preceded_by_digit = rest[..start].chars().last().is_some_and(|c| c.is_ascii_digit() || c == '.');
        rest = &rest[word_end..];
        let next = rest.trim_start();
        if after_grouping {
            // The label list after `by`/`without`/`on`/`ignoring`/`group_*`: skip to `)`.
            after_grouping = false;
            if let Some(close) = rest.find(')') {
                rest = &rest[close + 1..];
            }
            continue;
        }
        if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&word) && next.starts_with('(') {
            after_grouping = true;
            rest = next;
            continue;
        }
        if word.starts_with('$') || preceded_by_digit || next.starts_with('(') || KEYWORDS.contains(&word) {
            continue;
        }
        names.push(word.to_owned());
    }
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.99, sum by (le, sink) (rate(eventer_sink_delivery_latency_seconds_bucket{sink=~\"$sink\"}[$__rate_interval])))"
        ),
        ["eventer_sink_delivery_latency_seconds_bucket"]
    );
    assert_eq!(
        metric_names("sum without (instance) (eventer_leader) or on(job) process_open_fds / process_max_fds > 0.8"),
        ["eventer_leader", "process_open_fds", "process_max_fds"]
    );
    assert_eq!(
        metric_names("time() - max(eventer_last_event_timestamp_seconds) > 1e3"),
        ["eventer_last_event_timestamp_seconds"]
    );
    assert_eq!(metric_names("count by (version) (eventer_build_info{job=~\"$job\"})"), ["eventer_build_info"]);
}

/// Two replicas with leader election: 1 on the one that exports, 0 on the standby, which
/// turns 1 when it takes over.
#[tokio::test]
async fn leader_gauge_follows_the_lease() {
    let api = FakeApiServer::start().await.unwrap();
    api.create_event(NewEvent::new("shop", "a").reason("BackOff").warning());
    let source = format!("kubernetes:{}?inClusterConfig=false&startFrom=all", api.url());
    let args = ["--sink=stdout", "--leader-elect", "--leader-elect-namespace=ops"];
    let replica = |pod: &str| Eventer::spawn_with(&source, &args, &[("POD_NAME", Some(pod))]);
    let mut a = replica("replica-a");
    a.lines(1).await;
    let a_addr = a.server_addr().await;
    let mut b = replica("replica-b");
    let b_addr = b.server_addr().await;
    b.wait_log("the wait for the lease", |l| l.contains("Waiting for the leader-election lease")).await;
    assert_eq!(metric(&get(&a_addr, "/metrics").await.1, "eventer_leader"), 1);
    assert!(get(&b_addr, "/metrics").await.1.lines().any(|l| l == "eventer_leader 0"), "the standby says 0");
    a.stop().await;
    poll(&b_addr, "/metrics", |_, body| metric(body, "eventer_leader") == 1).await;
    b.stop().await;
}

/// A DingTalk robot that accepts connections and never answers: once a send has been in
/// flight for `--liveness-timeout`, /healthz (and /healtz) answer 503 naming the sink;
/// when the connection fails instead, the sink retries and /healthz is 200 again.
#[tokio::test]
async fn a_sink_that_never_answers_fails_liveness_until_it_moves_again() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let (hang_up, mut hung_up) = tokio::sync::oneshot::channel::<()>();
    let robot = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            tokio::select! {
                accepted = silent.accept() => held.push(accepted.unwrap().0),
                _ = &mut hung_up => return,
            }
        }
    });
    let api = FakeApiServer::start().await.unwrap();
    api.create_event(NewEvent::new("shop", "a").reason("BackOff").warning());
    let source = format!("kubernetes:{}?inClusterConfig=false&startFrom=all", api.url());
    let sink = format!("--sink=dingtalk:http://127.0.0.1:{port}/robot/send?access_token=t&timeout=10m");
    let mut eventer = Eventer::spawn(&source, &[&sink, "--liveness-timeout=1s", "--shutdown-timeout=1s"]);
    let addr = eventer.server_addr().await;

    let (_, body) = poll(&addr, "/healthz", |status, _| status == 503).await;
    assert!(body.starts_with("wedged sink dingtalk: a send in flight for "), "{body}");
    assert!(!body.contains("access_token"), "{body}");
    assert_eq!(get(&addr, "/healtz").await.0, 503, "kube-eventer's probe path too");
    eventer.wait_log("the failing check", |l| l.contains("Liveness check failing")).await;
    let metrics = get(&addr, "/metrics").await.1;
    assert_eq!(metric(&metrics, "eventer_sink_queue_depth{sink=\"dingtalk\"}"), 1);

    // The robot hangs up: the send fails, is retried, and that is progress.
    hang_up.send(()).unwrap();
    robot.await.unwrap();
    poll(&addr, "/metrics", |_, body| metric(body, "eventer_sink_events_retried_total{sink=\"dingtalk\"}") > 0).await;
    assert_eq!(get(&addr, "/healthz").await, (200, "ok\n".into()));
    eventer.kill().await;
}

/// `livenessTimeout` in the config file, `--liveness-timeout` winning over it, as
/// `eventer check` resolves them; zero and garbage are refused naming the flag.
#[test]
fn liveness_timeout_from_the_file_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("eventer.yaml");
    let events = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/events.json");
    std::fs::write(&file, format!("source: file:{events}\nsinks: [stdout]\nlivenessTimeout: 90s\n")).unwrap();
    let check = |args: &[&str]| {
        let out = std::process::Command::new(common::eventer_bin())
            .arg("check")
            .arg(format!("--config={}", file.display()))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let line = |stdout: &str| stdout.lines().find(|l| l.starts_with("liveness ")).unwrap_or_default().to_owned();
    let (code, stdout, stderr) = check(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(line(&stdout), "liveness    /healthz fails when a sink holds events with no progress for 1m 30s");
    let (_, stdout, _) = check(&["--liveness-timeout=10m"]);
    assert!(line(&stdout).ends_with(" for 10m"), "{stdout}");
    for bad in ["0s", "soon"] {
        let (code, stdout, stderr) = check(&[&format!("--liveness-timeout={bad}")]);
        assert_eq!(code, Some(2));
        assert!(stdout.is_empty() && stderr.lines().count() == 1, "{stderr}");
        assert!(stderr.starts_with("eventer: error: ") && stderr.contains("--liveness-timeout"), "{stderr}");
    }
}

/// The reasons docs/reference.md lists are exactly those the counter names.
#[test]
fn documented_event_reasons_are_the_counted_ones() {
    let reference = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reference.md")).unwrap();
    let section = reference.split("### Event reasons").nth(1).unwrap();
    let list = section.split("\n\n").nth(2).unwrap();
    let documented: Vec<&str> = list.split('`').skip(1).step_by(2).collect();
    assert_eq!(documented, eventer_core::pipeline::EVENT_REASONS);
}
