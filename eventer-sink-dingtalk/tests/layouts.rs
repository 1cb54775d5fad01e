//! Message layouts against golden files in `tests/data/` (kube-eventer's text and
//! markdown layouts, digests), templates, `at`, and size limits. Run with
//! `UPDATE_GOLDEN=1` to rewrite the files after an intended change.

use std::{path::PathBuf, sync::Arc};

use eventer_core::{Event, SharedEvent, Sink, testing::sample_events, uri::ComponentUri};
use eventer_sink_dingtalk::{ChatConfig, DingTalkConfig, DingTalkSink};
use serde_json::Value;

fn sink(options: &str) -> DingTalkSink {
    let uri: ComponentUri =
        format!("dingtalk:http://127.0.0.1:9/robot/send?access_token=t0k&{options}").parse().unwrap();
    DingTalkSink::new(DingTalkConfig::from_options(uri.target(), &mut uri.options()).unwrap()).unwrap()
}

fn shared(events: Vec<Event>) -> Vec<SharedEvent> {
    events.into_iter().map(Arc::new).collect()
}

fn bodies(sink: &mut DingTalkSink, events: Vec<Event>) -> Vec<Value> {
    let previews = sink.preview(&shared(events)).unwrap();
    previews.iter().map(|b| serde_json::from_str(b).unwrap()).collect()
}

/// The text a person reads: `text.content` or `markdown.text`.
fn shown(body: &Value) -> String {
    match body["msgtype"].as_str().unwrap() {
        "text" => body["text"]["content"].as_str().unwrap().to_owned(),
        "markdown" => body["markdown"]["text"].as_str().unwrap().to_owned(),
        other => panic!("unexpected msgtype {other}"),
    }
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(actual, expected, "differs from {}", path.display());
}

fn backoff() -> Event {
    sample_events().remove(0)
}

#[test]
fn text_layout_is_kube_eventers_with_zone_and_count() {
    // A `%` in a label corrupted kube-eventer's text (labels went into the format string).
    let mut sink = sink("label=cluster-a&label=100%25 prod %s&timezone=Asia/Shanghai");
    let got = bodies(&mut sink, vec![backoff()]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["msgtype"], "text");
    assert!(got[0].get("at").is_none() && got[0].get("markdown").is_none());
    golden("text.txt", &shown(&got[0]));
}

#[test]
fn markdown_layout_links_to_the_ack_console() {
    let mut ev = backoff();
    ev.source.host = "cn-hangzhou.i-bp1abcdef".into();
    let mut sink = sink(
        "msg_type=markdown&label=cluster-a&label=&label=team-b&cluster_id=c123&region=cn-hangzhou&timezone=Asia/Shanghai",
    );
    let got = bodies(&mut sink, vec![ev]);
    assert_eq!(got[0]["markdown"]["title"], "Kubernetes(ID:c123) Event");
    golden("markdown_links.md", &shown(&got[0]));
}

#[test]
fn markdown_layout_without_cluster_has_no_links() {
    // A node named by IP got a bogus ECS link from kube-eventer.
    assert_eq!(sink("timezone=UTC").timezone(), "UTC");
    let mut node = sample_events().remove(2);
    node.source.host = "10.0.0.1".into();
    let mut sink = sink("msg_type=markdown&timezone=UTC");
    let got = bodies(&mut sink, vec![node]);
    assert_eq!(got[0]["markdown"]["title"], "Kubernetes Event");
    let text = shown(&got[0]);
    assert!(!text.contains("](http"), "{text}");
    golden("markdown.md", &text);
}

fn many(n: usize) -> Vec<Event> {
    let t = "2024-01-01T00:05:00Z".parse().unwrap();
    (0..n)
        .map(|i| {
            Event::builder()
                .meta("prod", &format!("pod-{i:03}.17b2c3d4e5f6a7b8"), &format!("uid-{i}"))
                .kind("Pod")
                .object("prod", &format!("pod-{i:03}"))
                .reason(if i % 2 == 0 { "BackOff" } else { "Unhealthy" })
                .message(&format!("Readiness probe failed: HTTP probe failed with statuscode: 50{}", i % 10))
                .warning()
                .count(u32::try_from(i % 7).unwrap() + 1)
                .at(t, t)
                .build()
        })
        .collect()
}

#[test]
fn digest_lists_every_alert_within_the_size_limit() {
    let mut sink = sink("label=cluster-a&timezone=Asia/Shanghai&max_bytes=8000");
    let got = bodies(&mut sink, many(100));
    assert!(got.len() >= 2, "100 alerts in {} messages", got.len());
    for body in &got {
        assert!(body.to_string().len() <= 8000, "{}", body.to_string().len());
    }
    let texts: Vec<String> = got.iter().map(shown).collect();
    for i in 0..100 {
        let hits = texts.iter().filter(|t| t.contains(&format!(" prod/pod-{i:03} "))).count();
        assert_eq!(hits, 1, "pod-{i:03} listed {hits} times");
    }
    golden("digest.txt", &texts.join("\n----\n"));
}

#[test]
fn markdown_digest() {
    let mut sink = sink("msg_type=markdown&budget=2&cluster_id=c123&label=cluster-a&timezone=UTC");
    let got = bodies(&mut sink, many(3));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["markdown"]["title"], "Kubernetes(ID:c123): 3 Kubernetes events");
    golden("digest.md", &shown(&got[0]));
}

#[test]
fn repeats_in_a_batch_collapse_into_one_alert_with_the_highest_count() {
    let updates: Vec<Event> = (1..=30)
        .map(|n| {
            let mut ev = backoff();
            ev.count = n;
            ev
        })
        .collect();
    let got = bodies(&mut sink("timezone=UTC"), updates);
    assert_eq!(got.len(), 1);
    assert!(shown(&got[0]).contains("Count:30 \n"), "{}", shown(&got[0]));
}

#[test]
fn few_alerts_go_one_per_message() {
    let warnings: Vec<Event> = sample_events().into_iter().take(3).collect();
    let got = bodies(&mut sink("timezone=UTC"), warnings);
    assert_eq!(got.len(), 3);
    assert!(shown(&got[2]).contains("Reason:KernelOops"));
}

#[test]
fn at_lists_are_in_the_body_text() {
    let got = bodies(&mut sink("at_mobiles=13800000000,13900000000&at_user_ids=u1&at_all=true"), vec![backoff()]);
    assert_eq!(got[0]["at"]["atMobiles"], serde_json::json!(["13800000000", "13900000000"]));
    assert_eq!(got[0]["at"]["atUserIds"], serde_json::json!(["u1"]));
    assert_eq!(got[0]["at"]["isAtAll"], true);
    assert!(shown(&got[0]).ends_with("\n@13800000000 @13900000000 @u1 @all"), "{}", shown(&got[0]));
    let md = bodies(&mut sink("msg_type=markdown&at_user_ids=u1"), vec![backoff()]);
    assert!(shown(&md[0]).ends_with("\n\n@u1"));
}

#[test]
fn templates_inline_and_from_a_file() {
    let got = bodies(
        &mut sink(
            "template=[{{ labels|join(',') }}] {{ kind }}/{{ object }} {{ reason }} x{{ count }} at {{ timestamp }}&label=a&label=b&timezone=UTC",
        ),
        vec![backoff()],
    );
    assert_eq!(shown(&got[0]), "[a,b] Pod/web-0 BackOff x12 at 2024-01-01 00:05:00 +0000 UTC");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alert.j2");
    std::fs::write(&file, "### {{ reason }} in {{ namespace }}\n\n{{ message }}").unwrap();
    let got = bodies(&mut sink(&format!("msg_type=markdown&template_file={}", file.display())), vec![backoff()]);
    assert_eq!(shown(&got[0]), "### BackOff in prod\n\nBack-off restarting failed container app in pod web-0");

    let err = |options: &str| {
        let uri: ComponentUri =
            format!("dingtalk:http://127.0.0.1:9/robot/send?access_token=t0k&{options}").parse().unwrap();
        DingTalkSink::new(DingTalkConfig::from_options(uri.target(), &mut uri.options()).unwrap())
            .unwrap_err()
            .to_string()
    };
    assert!(err("template={{ resaon }}").starts_with("invalid template:"), "{}", err("template={{ resaon }}"));
    assert!(err("template={% if %}").starts_with("invalid template:"));
    assert!(err("template_file=/no/such/file").starts_with("option template_file: cannot read /no/such/file"));
    assert!(err("timezone=Mars/Olympus").starts_with("option timezone: unknown time zone `Mars/Olympus`"));
}

#[test]
fn a_huge_message_is_cut_not_the_alert() {
    let mut ev = backoff();
    ev.message = "x\"y".repeat(30_000).into();
    let got = sink("timezone=UTC").preview(&shared(vec![ev])).unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].len() <= 20_000 && got[0].len() > 15_000, "{}", got[0].len());
    assert!(got[0].contains("Reason:BackOff") && got[0].contains('…'));
}
