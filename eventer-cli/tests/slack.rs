//! The `eventer` binary with the Slack sink against the fake webhook.
#![cfg(feature = "sink-slack")]

use std::time::{Duration, Instant};

use eventer_fake_chat::{Failure, slack::FakeSlack};
use tokio::process::Command;

/// Flags every run gets: a free health port, so tests can run side by side.
const HEALTHZ: [&str; 2] = ["--healthz-ip=127.0.0.1", "--healthz-port=0"];

fn eventer() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eventer"));
    command.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).args(HEALTHZ).env_remove("RUST_LOG");
    command
}

#[tokio::test]
async fn sample_warnings_reach_slack_and_the_webhook_stays_out_of_logs() {
    let hook = FakeSlack::builder().hook("T0SECRET/B0SECRET/HIDDENhiddenHIDDEN").start().await;
    let out = eventer()
        .args([
            "--source=file:examples/events.json",
            &format!("--sink={}?label=prod-cluster&mention=here", hook.sink_uri()),
            "-vv",
        ])
        .output()
        .await
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    assert!(!logs.contains("HIDDEN"), "{logs}");
    let messages = hook.messages();
    let shown: String = messages.iter().map(|m| m.shown()).collect::<Vec<_>>().join("\n");
    for reason in ["BackOff", "Unhealthy", "FailedScheduling", "OOMKilling"] {
        assert!(shown.contains(reason), "{reason} missing from:\n{shown}");
    }
    for normal in ["Scheduled", "Pulled", "ScalingReplicaSet"] {
        assert!(!shown.contains(normal), "{normal} is Normal and must not be sent");
    }
    assert!(messages.iter().all(|m| m.shown().starts_with("*prod-cluster*\n<!here>\n") && !m.text.is_empty()));
    assert!(hook.attempts().iter().all(|a| a.status == 200), "{:?}", hook.attempts());
}

/// A webhook Slack refuses (gone, archived) is an error in the logs that names the
/// answer and what to fix, never shows the webhook, and is not retried into a delivery.
#[tokio::test]
async fn refused_webhooks_are_logged_loudly_without_the_secret() {
    let archived = FakeSlack::builder().hook("T0/B0/HIDDEN1").archived().start().await;
    let hook = FakeSlack::builder().hook("T0/B0/HIDDEN2").start().await;
    let gone = hook.sink_uri().replace("HIDDEN2", "HIDDEN3");
    let cases = [
        (archived.sink_uri(), "channel_is_archived (HTTP 410); the channel is archived"),
        (gone, "no_service (HTTP 404); check the webhook URL"),
    ];
    for (uri, expected) in cases {
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            eventer().args(["--source=file:examples/events.json", &format!("--sink={uri}")]).output(),
        )
        .await
        .expect("eventer stops at the end of the file")
        .unwrap();
        let logs = String::from_utf8_lossy(&out.stderr);
        let refusal = logs.lines().find(|l| l.contains(expected));
        assert!(refusal.is_some_and(|l| l.contains("ERROR")), "no error line with `{expected}`:\n{logs}");
        assert!(!logs.contains("HIDDEN"), "a secret leaked:\n{logs}");
    }
    assert!(archived.messages().is_empty() && hook.messages().is_empty());
    assert_eq!(archived.attempts().len(), 1, "a refusal is not retried: {:?}", archived.attempts());
}

#[cfg(feature = "source-k8s")]
mod apiserver {
    use std::process::Stdio;

    use eventer_fake_apiserver::{FakeApiServer, NewEvent};
    use tokio::{io::AsyncReadExt, process::Child, task::JoinHandle};

    use super::*;

    /// Generous bound on any one wait; the waits usually take a few seconds.
    const PATIENCE: Duration = Duration::from_secs(30);

    /// A running `eventer` watching the fake apiserver, its stderr collected.
    struct Eventer {
        child: Child,
        stderr: Option<JoinHandle<String>>,
    }

    impl Eventer {
        async fn start(api: &FakeApiServer, sink_uri: &str) -> Eventer {
            let mut child = eventer()
                .args([
                    &format!("--source=kubernetes:{}?inClusterConfig=false", api.url()),
                    &format!("--sink={sink_uri}"),
                ])
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

        /// Wait for `condition` on the webhook; on time-out, fail showing eventer's logs.
        async fn expect(&mut self, hook: &FakeSlack, what: &str, condition: impl Fn(&FakeSlack) -> bool) {
            if !hook.wait_until(PATIENCE, condition).await {
                self.child.start_kill().ok();
                let logs = self.stderr.take().expect("logs once").await.unwrap();
                panic!("timed out waiting for {what}; Slack saw {:?}\n{logs}", hook.attempts());
            }
        }
    }

    fn shown(hook: &FakeSlack) -> Vec<String> {
        hook.messages().iter().map(|m| m.shown()).collect()
    }

    /// Accepted messages naming `object`.
    fn naming(hook: &FakeSlack, object: &str) -> usize {
        shown(hook).iter().filter(|t| t.contains(object)).count()
    }

    /// Scenario: 20 Warnings among 20 Normal events → all 20 Warnings, no Normal, the
    /// first within about a second.
    #[tokio::test]
    async fn warnings_from_the_apiserver_arrive_fast_and_alone() {
        let api = FakeApiServer::start().await.unwrap();
        let hook = FakeSlack::builder().start().await;
        let mut eventer = Eventer::start(&api, &hook.sink_uri()).await;
        let started = Instant::now();
        for i in 0..20 {
            api.create_event(NewEvent::new("shop", &format!("web-{i:02}")).reason(&format!("Crash{i:02}")).warning());
            api.create_event(NewEvent::new("shop", &format!("web-{i:02}")).reason(&format!("Pulled{i:02}")));
        }
        let all_listed = |h: &FakeSlack| (0..20).all(|i| shown(h).concat().contains(&format!("*Crash{i:02}*")));
        eventer.expect(&hook, "all 20 Warnings", all_listed).await;
        let first = hook.messages()[0].received;
        assert!(first.duration_since(started) < Duration::from_millis(1500), "first alert after {:?}", first - started);
        assert!(!shown(&hook).concat().contains("Pulled"), "Normal events must not be sent");
        eventer.stop().await;
        assert_eq!(hook.status_count(429), 0, "{:?}", hook.attempts());
    }

    /// Scenario: 200 Warnings created within one second → every Warning listed once, with
    /// its message, and Slack never answers 429.
    #[tokio::test]
    async fn a_burst_of_200_warnings_is_listed_in_full_without_a_429() {
        let api = FakeApiServer::start().await.unwrap();
        let hook = FakeSlack::builder().start().await;
        let mut eventer = Eventer::start(&api, &hook.sink_uri()).await;
        let message = |i: usize| format!("Back-off restarting failed container app in pod web-{i:03}");
        let started = Instant::now();
        for i in 0..200 {
            let ev = NewEvent::new("shop", &format!("web-{i:03}")).reason("BackOff").message(&message(i)).warning();
            api.create_event(ev);
        }
        assert!(started.elapsed() < Duration::from_secs(1), "creating took {:?}", started.elapsed());
        let all_named = |h: &FakeSlack| (0..200).all(|i| naming(h, &format!("web-{i:03}")) > 0);
        eventer.expect(&hook, "all 200 Warnings", all_named).await;
        eventer.stop().await;
        let shown = shown(&hook);
        for i in 0..200 {
            let line = format!("• *Warning* Pod shop/web-{i:03} *BackOff* ");
            let holding: Vec<&String> = shown.iter().filter(|t| t.contains(&format!("web-{i:03}"))).collect();
            assert_eq!(holding.len(), 1, "web-{i:03} is in {} messages", holding.len());
            assert!(
                holding[0].lines().any(|l| l.starts_with(&line) && l.ends_with(&message(i))),
                "web-{i:03} not listed in:\n{}",
                holding[0]
            );
        }
        assert!(hook.attempts().iter().all(|a| a.status == 200), "{:?}", hook.attempts());
    }

    /// Scenario: one BackOff Event updated 30 times → at most 3 messages, each showing
    /// the count reached.
    #[tokio::test]
    async fn thirty_updates_of_one_event_cost_at_most_three_messages() {
        let repeat_interval = Duration::from_secs(2);
        let api = FakeApiServer::start().await.unwrap();
        let hook = FakeSlack::builder().start().await;
        let uri = format!("{}?repeat_interval={}s", hook.sink_uri(), repeat_interval.as_secs());
        let mut eventer = Eventer::start(&api, &uri).await;
        let created = api.create_event(NewEvent::new("shop", "payment-0").reason("BackOff").warning());
        let update = |n: usize| {
            for _ in 0..n {
                api.update_event(&created.namespace, &created.name).expect("the event exists");
            }
        };
        update(9);
        eventer.expect(&hook, "the first notification", |h| !h.messages().is_empty()).await;
        let first = hook.messages()[0].clone();
        assert!(first.shown().contains("\nCount: 10 · "), "{}", first.shown());
        update(10);
        tokio::time::sleep(repeat_interval.saturating_sub(first.received.elapsed())).await;
        update(11);
        eventer.expect(&hook, "a second notification", |h| h.messages().len() >= 2).await;
        eventer.stop().await;
        let messages = hook.messages();
        assert!(messages.len() <= 3, "{:?}", shown(&hook));
        assert!(messages.last().unwrap().shown().contains("\nCount: 31 · "), "{}", messages.last().unwrap().shown());
    }

    /// Scenario: Slack answers 503 for a while, then recovers → every Warning arrives
    /// exactly once.
    #[tokio::test]
    async fn an_outage_loses_nothing_and_repeats_nothing() {
        let api = FakeApiServer::start().await.unwrap();
        let hook = FakeSlack::builder().start().await;
        let mut eventer = Eventer::start(&api, &hook.sink_uri()).await;
        let warn = |range: std::ops::Range<usize>| {
            for i in range {
                api.create_event(
                    NewEvent::new("shop", &format!("web-{i:02}")).reason(&format!("Crash{i:02}")).warning(),
                );
            }
        };
        warn(0..5);
        eventer
            .expect(&hook, "the Warnings before the outage", |h| (0..5).all(|i| naming(h, &format!("web-{i:02}")) > 0))
            .await;
        let before = hook.messages().len();
        hook.fail_for(Duration::from_secs(6), Failure::Status(503));
        warn(5..10);
        eventer.expect(&hook, "a request failing", |h| h.attempts().iter().any(|a| a.status == 503)).await;
        warn(10..15);
        eventer.expect(&hook, "delivery after the outage", |h| h.messages().len() > before).await;
        warn(15..20);
        eventer.expect(&hook, "all 20 Warnings", |h| (0..20).all(|i| naming(h, &format!("web-{i:02}")) > 0)).await;
        eventer.stop().await;
        for i in 0..20 {
            let object = format!("web-{i:02}");
            assert_eq!(naming(&hook, &object), 1, "{object}: {:?}", shown(&hook));
        }
        let failed = hook.status_count(503);
        assert!(failed >= 2, "the outage was retried through: {failed} failures");
        assert_eq!(hook.status_count(429), 0);
    }

    /// A 429 (here: a budget set above what the webhook allows) is honoured: nothing is
    /// sent until its Retry-After has passed, and nothing is lost.
    #[tokio::test]
    async fn retry_after_is_honoured() {
        let api = FakeApiServer::start().await.unwrap();
        // One message, then one every 2 s: a second message at once gets Retry-After: 2.
        let hook = FakeSlack::builder().rate_limit(1, 0.5).start().await;
        let uri = format!("{}?budget=10&budget_window=1s", hook.sink_uri());
        let mut eventer = Eventer::start(&api, &uri).await;
        api.create_event(NewEvent::new("shop", "web-0").reason("Crash").warning());
        api.create_event(NewEvent::new("shop", "web-1").reason("Crash").warning());
        eventer.expect(&hook, "both Warnings", |h| naming(h, "web-0") == 1 && naming(h, "web-1") == 1).await;
        eventer.stop().await;
        let attempts = hook.attempts();
        let refused = attempts.iter().position(|a| a.status == 429).expect("a 429");
        let retried = attempts[refused + 1].received.duration_since(attempts[refused].received);
        assert!(retried >= Duration::from_secs(2), "retried after {retried:?}: {attempts:?}");
        assert_eq!(attempts.iter().filter(|a| a.status == 429).count(), 1, "{attempts:?}");
    }
}
