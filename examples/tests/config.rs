//! A config file's typed values (numbers, booleans, lists, maps) reach every built-in
//! component and the third-party sinks here through the same settings structs as URI text.

fn registry() -> eventer_core::Registry {
    let mut registry = eventer_cli::default_registry();
    eventer_examples::register(&mut registry);
    registry
}

fn check(yaml: &str) -> Result<(), String> {
    eventer_cli::check_config_text(yaml, &registry())
}

const ALL_SINKS: &str = r#"
source:
  uri: kubernetes:http://127.0.0.1:1
  options: { inClusterConfig: false, insecure: true, namespaces: [default, kube-system], requestTimeout: 5s, maxLineSize: 65536 }
checkpoint: configmap:kube-system/eventer
sinks:
  - uri: stdout
    options: { format: json, queue_size: 10, overflow: drop, level: Warning, kinds: [Pod, Node] }
  - uri: dingtalk:https://oapi.dingtalk.com/robot/send
    options:
      access_token: t0k
      at_all: true
      at_mobiles: [13800000000, 13900000000]
      label: [prod, team-a]
      max_bytes: 4000
      budget: 10
      group_wait: 500ms
      msg_type: markdown
  - uri: sls:cn-hangzhou.log.aliyuncs.com
    options:
      project: p
      logStore: l
      maxBatchLogs: 100
      internal: false
      label: { cluster: prod, team: infra }
      batchWindow: 2s
      accessKeyId: AKID
      accessKeySecret: SK
  - uri: jsonl:/tmp/eventer-typed-config.jsonl
    options: { raw: true }
  - uri: chat:http://127.0.0.1:1/hook
    options: { max_bytes: 2000, budget: 5, budget_window: 30s, label: [x], timeout: 2s }
  - uri: kafka
    options:
      brokers: [127.0.0.1:9092, 127.0.0.2:9092]
      eventstopic: k8s
      compression: zstd
      insecuressl: true
      maxBatchEvents: 200
      timeout: 1m
      user: eventer
      password: PW-kafka
"#;

#[test]
fn typed_values_reach_every_sink() {
    check(ALL_SINKS).unwrap();
}

#[test]
fn typed_values_are_read_as_their_fields_say() {
    // Each replaces one typed value with one its settings refuse: the error proves the
    // value reached the component, and names the option.
    let cases = [
        ("maxBatchLogs: 100", "maxBatchLogs: 5000", "sinks[2]: option maxBatchLogs: must be between 1 and 4096"),
        ("internal: false", "internal: 3", "sinks[2]: option internal: invalid boolean `3`"),
        ("{ raw: true }", "{ raw: sometimes }", "sinks[3]: option raw: invalid boolean `sometimes`"),
        ("max_bytes: 2000,", "max_bytes: 500,", "sinks[4]: option max_bytes: must be at least 1000"),
        ("budget: 5,", "budget: -1,", "sinks[4]: option budget: invalid number `-1`"),
        ("budget: 10", "budget: 0", "sinks[1]: option budget: must be at least 1"),
        ("msg_type: markdown", "msg_type: card", "sinks[1]: option msg_type: `card` is not text or markdown"),
        ("overflow: drop", "overflow: [drop, block]", "sinks[0]: option overflow: given more than once"),
        ("requestTimeout: 5s", "requestTimeout: 0s", "source: option requestTimeout: must be more than 0"),
        ("queue_size: 10", "queue_size: 10, colour: red", "sinks[0]: unknown option colour for stdout (known: "),
        ("compression: zstd", "compression: brotli", "sinks[5]: option compression: "),
        ("maxBatchEvents: 200", "maxBatchEvents: 0", "sinks[5]: option maxBatchEvents: must be at least 1"),
        ("insecuressl: true", "insecuressl: 7", "sinks[5]: option insecuressl: invalid boolean `7`"),
        ("127.0.0.2:9092]", "127.0.0.2]", "sinks[5]: option brokers: `127.0.0.2` is not host:port"),
    ];
    for (from, to, want) in cases {
        assert!(ALL_SINKS.contains(from), "{from}");
        let err = check(&ALL_SINKS.replacen(from, to, 1)).unwrap_err();
        assert!(err.starts_with("--config=fuzz.yaml: "), "{err}");
        assert!(err.contains(want), "{to}: {err}");
        for secret in ["t0k", "AKID", "SK,", "PW-kafka"] {
            assert!(!err.contains(secret), "{err}");
        }
    }
}
