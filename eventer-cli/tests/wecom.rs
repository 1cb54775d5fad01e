//! The `eventer` binary with the WeCom sinks (`wecom:` robot, `wechat:` app) against the
//! fake WeCom.
#![cfg(feature = "sink-wecom")]

use std::time::Duration;

use eventer_fake_wecom::FakeWeCom;
use tokio::process::Command;

/// Flags every run gets: a free health port, so tests can run side by side.
const HEALTHZ: [&str; 2] = ["--healthz-ip=127.0.0.1", "--healthz-port=0"];

#[tokio::test]
async fn sample_warnings_reach_the_robot_and_the_key_stays_out_of_logs() {
    let wecom = FakeWeCom::builder().key("key-SECRET-9").start().await;
    let out = Command::new(env!("CARGO_BIN_EXE_eventer"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args([
            "--source=file:examples/events.json",
            &format!("--sink={}&label=prod-cluster", wecom.robot_uri()),
            "-vv",
        ])
        .args(HEALTHZ)
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    let text: String = wecom.messages().iter().map(|m| m.content.clone()).collect::<Vec<_>>().join("\n");
    assert!(text.contains("BackOff") && text.contains("prod-cluster"), "{text}");
    assert!(!text.contains("Scheduled"), "Normal events must not be sent");
    assert_eq!(wecom.errcode_count(45009), 0);
    assert!(!logs.contains("SECRET"), "{logs}");
}

#[tokio::test]
async fn preview_renders_both_without_sending() {
    // A closed port: a preview that tried to send would fail.
    let out = Command::new(env!("CARGO_BIN_EXE_eventer"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args([
            "preview",
            "--source=file:examples/events.json",
            "--sink=wecom:http://127.0.0.1:1/cgi-bin/webhook/send?key=KEY-SECRET&label=prod&mentioned_list=@all",
            "--sink=wechat:?endpoint=http://127.0.0.1:1&corp_id=ww1&corp_secret=CORP-SECRET&agent_id=7&to_user=a,b",
        ])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("SECRET"), "{text}");
    let bodies: Vec<serde_json::Value> =
        text.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    let (robot, app): (Vec<_>, Vec<_>) = bodies.iter().partition(|b| b.get("agentid").is_none());
    assert!(!robot.is_empty() && robot.len() == app.len(), "{text}");
    // Eleven Warnings at once: digests, each within WeCom's 2048 bytes of text.
    for body in &robot {
        let content = body["text"]["content"].as_str().unwrap();
        assert!(content.starts_with("prod\nKubernetes events ") && content.len() <= 2048, "{body}");
        assert_eq!(body["text"]["mentioned_list"], serde_json::json!(["@all"]));
    }
    for body in &app {
        assert_eq!((body["touser"].as_str(), body["agentid"].as_i64()), (Some("a|b"), Some(7)), "{body}");
    }
    for bodies in [robot, app] {
        let all: String = bodies.iter().map(|b| b["text"]["content"].as_str().unwrap()).collect();
        for reason in ["BackOff", "Unhealthy", "FailedScheduling", "KernelOops", "ReadonlyFilesystem"] {
            assert!(all.contains(&format!(" {reason} (x")), "{reason} missing from {all}");
        }
    }
}

#[tokio::test]
async fn missing_settings_are_clear_usage_errors() {
    for (sink, option) in [
        ("wecom:https://qyapi.weixin.qq.com/cgi-bin/webhook/send?label=x", "key"),
        ("wechat:?corp_id=ww1&agent_id=1", "corp_secret"),
        ("wechat:?corp_id=ww1&corp_secret=HIDDEN&agent_id=x", "agent_id"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_eventer"))
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .args(["--source=file:examples/events.json", &format!("--sink={sink}")])
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(option) && !err.contains("HIDDEN"), "{err}");
    }
}

/// WeCom refusing the configuration is an error in the logs naming the errcode and what
/// to fix, without the secret; nothing is retried into a delivery.
#[tokio::test]
async fn configuration_errcodes_are_logged_loudly_without_secrets() {
    let wecom = FakeWeCom::builder().key("right-key").corp("ww-corp", "right-secret").start().await;
    let cases = [
        (format!("wecom:{}?key=HIDDEN-1", wecom.robot_url()), "(errcode 93000); check key"),
        (
            format!("wechat:?endpoint={}&corp_id=ww-corp&corp_secret=HIDDEN-2&agent_id=1000002", wecom.endpoint()),
            "(errcode 40001); check corp_secret",
        ),
    ];
    for (uri, expected) in cases {
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            Command::new(env!("CARGO_BIN_EXE_eventer"))
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                .args(["--source=file:examples/events.json", &format!("--sink={uri}")])
                .args(HEALTHZ)
                .env_remove("RUST_LOG")
                .output(),
        )
        .await
        .expect("eventer stops at the end of the file")
        .unwrap();
        let logs = String::from_utf8_lossy(&out.stderr);
        let refusal = logs.lines().find(|l| l.contains(expected));
        assert!(refusal.is_some_and(|l| l.contains("ERROR")), "no error line with `{expected}`:\n{logs}");
        assert!(!logs.contains("HIDDEN"), "a secret leaked:\n{logs}");
    }
    assert!(wecom.messages().is_empty(), "{:?}", wecom.attempts());
}

#[cfg(feature = "source-k8s")]
mod apiserver {
    use std::{process::Stdio, time::Instant};

    use eventer_fake_apiserver::{FakeApiServer, NewEvent};
    use eventer_fake_wecom::Failure;
    use tokio::{io::AsyncReadExt, process::Child, task::JoinHandle};

    use super::*;

    /// WeCom's window: 20 messages per rolling minute.
    const MINUTE: Duration = Duration::from_secs(60);
    /// Generous bound on any one wait; the waits usually take a few seconds.
    const PATIENCE: Duration = Duration::from_secs(30);

    /// A running `eventer` watching the fake apiserver, its stderr collected.
    struct Eventer {
        child: Child,
        stderr: Option<JoinHandle<String>>,
    }

    impl Eventer {
        async fn start(api: &FakeApiServer, sink_uri: &str) -> Eventer {
            let mut child = Command::new(env!("CARGO_BIN_EXE_eventer"))
                .args([
                    &format!("--source=kubernetes:{}?inClusterConfig=false", api.url()),
                    &format!("--sink={sink_uri}"),
                ])
                .args(HEALTHZ)
                .env_remove("RUST_LOG")
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let mut pipe = child.stderr.take().unwrap();
            let stderr = tokio::spawn(async move {
                let mut logs = String::new();
                pipe.read_to_string(&mut logs).await.ok();
                logs
            });
            tokio::time::timeout(PATIENCE, api.wait_for_watchers(1)).await.expect("eventer watches");
            Eventer { child, stderr: Some(stderr) }
        }

        /// SIGTERM; the process must drain and exit cleanly. Returns its logs.
        async fn stop(&mut self) -> String {
            let pid = self.child.id().expect("eventer still running").to_string();
            assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
            let status = tokio::time::timeout(PATIENCE, self.child.wait()).await.expect("eventer stops").unwrap();
            let logs = self.stderr.take().expect("stopped once").await.unwrap();
            assert!(status.success(), "{status:?}\n{logs}");
            logs
        }

        /// Wait for `condition` on WeCom; on time-out, fail showing eventer's logs.
        async fn expect(&mut self, wecom: &FakeWeCom, what: &str, condition: impl Fn(&FakeWeCom) -> bool) {
            if !wecom.wait_until(PATIENCE, condition).await {
                self.child.start_kill().ok();
                let logs = self.stderr.take().expect("logs once").await.unwrap();
                panic!("timed out waiting for {what}; WeCom saw {:?}\n{logs}", wecom.attempts());
            }
        }
    }

    fn texts(wecom: &FakeWeCom) -> Vec<String> {
        wecom.messages().into_iter().map(|m| m.content).collect()
    }

    /// Accepted messages naming `object`.
    fn naming(wecom: &FakeWeCom, object: &str) -> usize {
        texts(wecom).iter().filter(|t| t.contains(object)).count()
    }

    /// 20 Warnings among 20 Normal events; returns when all Warnings arrived, checking
    /// that no Normal did and the first came within about a second.
    async fn twenty_warnings_among_twenty_normal(api: &FakeApiServer, wecom: &FakeWeCom, eventer: &mut Eventer) {
        let started = Instant::now();
        for i in 0..20 {
            api.create_event(NewEvent::new("shop", &format!("web-{i}")).reason(&format!("Crash{i}")).warning());
            api.create_event(NewEvent::new("shop", &format!("web-{i}")).reason(&format!("Pulled{i}")));
        }
        let all_listed = |w: &FakeWeCom| {
            let text: String = texts(w).concat();
            (0..20).all(|i| text.contains(&format!("Crash{i}\n")) || text.contains(&format!("Crash{i} ")))
        };
        eventer.expect(wecom, "all 20 Warnings", all_listed).await;
        let first = wecom.messages()[0].received;
        assert!(first.duration_since(started) < Duration::from_millis(1500), "first alert after {:?}", first - started);
        let text: String = texts(wecom).concat();
        assert!(!text.contains("Pulled"), "Normal events must not be sent:\n{text}");
        assert_eq!(wecom.errcode_count(45009), 0);
    }

    /// Scenario: 20 Warnings among 20 Normal events from the apiserver → all 20
    /// Warnings, no Normal, the first within about a second.
    #[tokio::test]
    async fn robot_warnings_from_the_apiserver_arrive_fast_and_alone() {
        let api = FakeApiServer::start().await.unwrap();
        let wecom = FakeWeCom::builder().start().await;
        let mut eventer = Eventer::start(&api, &wecom.robot_uri()).await;
        twenty_warnings_among_twenty_normal(&api, &wecom, &mut eventer).await;
        eventer.stop().await;
    }

    /// Scenario for kube-eventer's `wechat:`: the same 20 Warnings through the app, with
    /// at most 2 token fetches (kube-eventer fetched one per event).
    #[tokio::test]
    async fn app_warnings_arrive_with_at_most_two_token_fetches() {
        let api = FakeApiServer::start().await.unwrap();
        let wecom = FakeWeCom::builder().start().await;
        let mut eventer = Eventer::start(&api, &format!("{}&to_user=ops", wecom.app_uri())).await;
        twenty_warnings_among_twenty_normal(&api, &wecom, &mut eventer).await;
        eventer.stop().await;
        assert!(wecom.token_fetches() <= 2, "{} token fetches", wecom.token_fetches());
        assert!(wecom.attempts().iter().all(|a| a.errcode == Some(0)), "{:?}", wecom.attempts());
    }

    /// Scenario: 200 Warnings created within one second, against WeCom's limits (20 a
    /// minute, 2048 bytes of text) → every Warning listed once, no 45009, no message too
    /// long.
    #[tokio::test]
    async fn a_burst_of_200_warnings_is_listed_in_full_without_tripping_the_limit() {
        let api = FakeApiServer::start().await.unwrap();
        let wecom = FakeWeCom::builder().start().await;
        let mut eventer = Eventer::start(&api, &wecom.robot_uri()).await;
        let message = |i: usize| format!("Back-off restarting failed container app in pod web-{i:03}");
        let started = Instant::now();
        for i in 0..200 {
            let ev = NewEvent::new("shop", &format!("web-{i:03}")).reason("BackOff").message(&message(i)).warning();
            api.create_event(ev);
        }
        assert!(started.elapsed() < Duration::from_secs(1), "creating took {:?}", started.elapsed());
        let all_named = |w: &FakeWeCom| (0..200).all(|i| naming(w, &format!("web-{i:03}")) > 0);
        // Digests of 2048 bytes hold about 15 alerts: more than a minute's budget may be
        // needed when the burst is split across batches.
        if !wecom.wait_until(MINUTE + PATIENCE, all_named).await {
            let logs = eventer.stop().await;
            panic!("not all 200 Warnings arrived; WeCom saw {:?}\n{logs}", wecom.attempts());
        }
        eventer.stop().await;
        let texts = texts(&wecom);
        for i in 0..200 {
            let object = format!("web-{i:03}");
            let holding: Vec<&String> = texts.iter().filter(|t| t.contains(&object)).collect();
            assert_eq!(holding.len(), 1, "{object} is in {} messages", holding.len());
            let line = format!("Pod shop/web-{i:03} BackOff (x1, ");
            let single = holding[0].contains(&format!("Name:web-{i:03}."));
            assert!(
                (single || holding[0].contains(&line)) && holding[0].contains(&message(i)),
                "{object} not listed in:\n{}",
                holding[0]
            );
        }
        assert_eq!(wecom.errcode_count(45009), 0);
        assert!(wecom.attempts().iter().all(|a| a.errcode == Some(0)), "{:?}", wecom.attempts());
        assert!(wecom.peak_rate(MINUTE) <= 20, "{} requests in a minute", wecom.peak_rate(MINUTE));
    }

    /// Scenario: one BackOff Event updated 30 times → at most 3 messages, the count shown.
    #[tokio::test]
    async fn thirty_updates_of_one_event_cost_at_most_three_messages() {
        let repeat_interval = Duration::from_secs(2);
        let api = FakeApiServer::start().await.unwrap();
        let wecom = FakeWeCom::builder().start().await;
        let uri = format!("{}&repeat_interval={}s", wecom.robot_uri(), repeat_interval.as_secs());
        let mut eventer = Eventer::start(&api, &uri).await;
        let created = api.create_event(NewEvent::new("shop", "payment-0").reason("BackOff").warning());
        let update = |n: usize| {
            for _ in 0..n {
                api.update_event(&created.namespace, &created.name).expect("the event exists");
            }
        };
        update(9);
        eventer.expect(&wecom, "the first notification", |w| !w.messages().is_empty()).await;
        let first = &wecom.messages()[0];
        assert!(first.content.contains("Reason:BackOff \nCount:10 \n"), "{}", first.content);
        update(10);
        tokio::time::sleep(repeat_interval.saturating_sub(first.received.elapsed())).await;
        update(11);
        eventer.expect(&wecom, "a second notification", |w| w.messages().len() >= 2).await;
        eventer.stop().await;
        let messages = wecom.messages();
        assert!(messages.len() <= 3, "{:?}", texts(&wecom));
        let last = &messages.last().unwrap().content;
        assert!(last.contains("Name:payment-0.") && last.contains("Count:31 \n"), "{last}");
    }

    /// Scenario: WeCom answers 503 for a while, then recovers → every Warning, from
    /// before, during and after the outage, arrives exactly once.
    #[tokio::test]
    async fn an_outage_loses_nothing_and_repeats_nothing() {
        let api = FakeApiServer::start().await.unwrap();
        let wecom = FakeWeCom::builder().start().await;
        let mut eventer = Eventer::start(&api, &wecom.robot_uri()).await;
        let warn = |range: std::ops::Range<usize>| {
            for i in range {
                api.create_event(
                    NewEvent::new("shop", &format!("web-{i:02}")).reason(&format!("Crash{i:02}")).warning(),
                );
            }
        };
        warn(0..5);
        eventer
            .expect(&wecom, "the Warnings before the outage", |w| (0..5).all(|i| naming(w, &format!("web-{i:02}")) > 0))
            .await;
        let before = wecom.messages().len();
        wecom.fail_for(Duration::from_secs(6), Failure::Status(503));
        warn(5..10);
        eventer.expect(&wecom, "a request failing", |w| w.attempts().iter().any(|a| a.status == 503)).await;
        warn(10..15);
        eventer.expect(&wecom, "delivery after the outage", |w| w.messages().len() > before).await;
        warn(15..20);
        let all = |w: &FakeWeCom| (0..20).all(|i| naming(w, &format!("web-{i:02}")) > 0);
        eventer.expect(&wecom, "all 20 Warnings", all).await;
        eventer.stop().await;
        for i in 0..20 {
            let object = format!("web-{i:02}");
            assert_eq!(naming(&wecom, &object), 1, "{object}: {:?}", texts(&wecom));
        }
        let failed = wecom.attempts().iter().filter(|a| a.status == 503).count();
        assert!(failed >= 2, "the outage was retried through: {failed} failures");
        assert_eq!(wecom.errcode_count(45009), 0);
        assert!(wecom.peak_rate(MINUTE) <= 20);
    }
}
