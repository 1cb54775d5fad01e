//! The `eventer` binary with the Lark/Feishu sink against the fake bot.
#![cfg(feature = "sink-lark")]

use std::time::{Duration, Instant};

use eventer_fake_chat::{Failure, lark::FakeLark};
use tokio::process::Command;

/// Flags every run gets: a free health port, so tests can run side by side.
const HEALTHZ: [&str; 2] = ["--healthz-ip=127.0.0.1", "--healthz-port=0"];

fn eventer() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eventer"));
    command.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).args(HEALTHZ).env_remove("RUST_LOG");
    command
}

#[tokio::test]
async fn sample_warnings_reach_the_bot_as_cards_and_secrets_stay_out_of_logs() {
    let bot = FakeLark::builder().token("tok-SECRET-9").secret("sign-SECRET-8").start().await;
    for scheme in ["lark", "feishu"] {
        let uri = bot.sink_uri().replacen("lark:", &format!("{scheme}:"), 1);
        let out = eventer()
            .args([
                "--source=file:examples/events.json",
                &format!("--sink={uri}&label=prod-cluster&msg_type=interactive"),
                "-vv",
            ])
            .output()
            .await
            .unwrap();
        let logs = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{logs}");
        assert!(!logs.contains("SECRET"), "{logs}");
    }
    let messages = bot.messages();
    assert!(messages.iter().all(|m| m.msg_type == "interactive"));
    let text: String = messages.iter().map(|m| m.text.clone()).collect::<Vec<_>>().join("\n");
    for reason in ["BackOff", "Unhealthy", "FailedScheduling", "OOMKilling"] {
        assert!(text.contains(reason), "{reason} missing from:\n{text}");
    }
    for normal in ["Scheduled", "Pulled", "ScalingReplicaSet"] {
        assert!(!text.contains(normal), "{normal} is Normal and must not be sent");
    }
    assert!(text.contains("prod-cluster"));
    assert!(bot.attempts().iter().all(|a| a.code == Some(0)), "{:?}", bot.attempts());
}

/// A bot refusing the configuration (signature, token, keyword) is an error in the logs
/// that names the code and what to fix, shows neither the token nor the secret, and is
/// not retried into a delivery.
#[tokio::test]
async fn configuration_codes_are_logged_loudly_without_secrets() {
    let bot = FakeLark::builder().token("tok-HIDDEN-1").secret("sign-HIDDEN-2").keyword("eventer-alert").start().await;
    let wrong_sign = format!("lark:{}?sign=wrong-HIDDEN-3", bot.url());
    let wrong_token = format!("lark:{}?sign=sign-HIDDEN-2", bot.url().replace("tok-HIDDEN-1", "nope-HIDDEN-4"));
    let cases = [
        (wrong_sign, "(code 19021); check sign="),
        (wrong_token, "(code 19001); check the webhook"),
        (bot.sink_uri(), "Key Words Not Found (code 19024); put one of the bot's keywords in a label="),
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
    assert!(bot.messages().is_empty(), "{:?}", bot.attempts());
    // With the keyword in a label, the same bot takes every alert.
    let out = eventer()
        .args(["--source=file:examples/events.json", &format!("--sink={}&label=eventer-alert", bot.sink_uri())])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert!(!bot.messages().is_empty(), "{:?}", bot.attempts());
}

#[tokio::test]
async fn a_plain_http_webhook_is_a_usage_error_that_hides_the_token() {
    let out = eventer()
        .args([
            "--source=file:examples/events.json",
            "--sink=lark:http://open.feishu.cn/open-apis/bot/v2/hook/tok-HIDDEN",
        ])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("the webhook must be https"), "{err}");
    assert!(!err.contains("HIDDEN"), "{err}");
}

#[cfg(feature = "source-k8s")]
mod apiserver {
    use std::process::Stdio;

    use eventer_fake_apiserver::{FakeApiServer, NewEvent};
    use tokio::{io::AsyncReadExt, process::Child, task::JoinHandle};

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
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

        /// Wait for `condition` on the bot; on time-out, fail showing eventer's logs.
        async fn expect(&mut self, bot: &FakeLark, what: &str, condition: impl Fn(&FakeLark) -> bool) {
            if !bot.wait_until(PATIENCE, condition).await {
                self.child.start_kill().ok();
                let logs = self.stderr.take().expect("logs once").await.unwrap();
                panic!("timed out waiting for {what}; the bot saw {:?}\n{logs}", bot.attempts());
            }
        }
    }

    fn texts(bot: &FakeLark) -> Vec<String> {
        bot.messages().into_iter().map(|m| m.text).collect()
    }

    /// Accepted messages naming `object`.
    fn naming(bot: &FakeLark, object: &str) -> usize {
        texts(bot).iter().filter(|t| t.contains(object)).count()
    }

    /// No refusal for going too fast, and the traffic within both of Lark's limits.
    fn within_limits(bot: &FakeLark) {
        assert_eq!(bot.code_count(11232), 0, "{:?}", bot.attempts());
        assert!(bot.peak_rate(SECOND) <= 5, "{} requests in a second", bot.peak_rate(SECOND));
        assert!(bot.peak_rate(MINUTE) <= 100, "{} requests in a minute", bot.peak_rate(MINUTE));
    }

    /// Scenario: 20 Warnings among 20 Normal events → all 20 Warnings, no Normal, the
    /// first within about a second.
    #[tokio::test]
    async fn warnings_from_the_apiserver_arrive_fast_and_alone() {
        let api = FakeApiServer::start().await.unwrap();
        let bot = FakeLark::builder().token("t0k").secret("s3c").start().await;
        let mut eventer = Eventer::start(&api, &bot.sink_uri()).await;
        let started = Instant::now();
        for i in 0..20 {
            api.create_event(NewEvent::new("shop", &format!("web-{i:02}")).reason(&format!("Crash{i:02}")).warning());
            api.create_event(NewEvent::new("shop", &format!("web-{i:02}")).reason(&format!("Pulled{i:02}")));
        }
        let all_listed = |b: &FakeLark| (0..20).all(|i| texts(b).concat().contains(&format!("Crash{i:02}")));
        eventer.expect(&bot, "all 20 Warnings", all_listed).await;
        let first = bot.messages()[0].received;
        assert!(first.duration_since(started) < Duration::from_millis(1500), "first alert after {:?}", first - started);
        assert!(!texts(&bot).concat().contains("Pulled"), "Normal events must not be sent");
        eventer.stop().await;
        within_limits(&bot);
    }

    /// Scenario: 200 Warnings created within one second → every Warning listed once, with
    /// its message, and Lark never refuses for rate.
    #[tokio::test]
    async fn a_burst_of_200_warnings_is_listed_in_full_without_tripping_the_limits() {
        let api = FakeApiServer::start().await.unwrap();
        let bot = FakeLark::builder().token("t0k").secret("s3c").start().await;
        let mut eventer = Eventer::start(&api, &format!("{}&msg_type=interactive", bot.sink_uri())).await;
        let message = |i: usize| format!("Back-off restarting failed container app in pod web-{i:03}");
        let started = Instant::now();
        for i in 0..200 {
            let ev = NewEvent::new("shop", &format!("web-{i:03}")).reason("BackOff").message(&message(i)).warning();
            api.create_event(ev);
        }
        assert!(started.elapsed() < Duration::from_secs(1), "creating took {:?}", started.elapsed());
        let all_named = |b: &FakeLark| (0..200).all(|i| naming(b, &format!("web-{i:03}")) > 0);
        eventer.expect(&bot, "all 200 Warnings", all_named).await;
        eventer.stop().await;
        let texts = texts(&bot);
        for i in 0..200 {
            let line = format!("Pod shop/web-{i:03} **BackOff** ");
            let holding: Vec<&String> = texts.iter().filter(|t| t.contains(&format!("web-{i:03}"))).collect();
            assert_eq!(holding.len(), 1, "web-{i:03} is in {} messages", holding.len());
            assert!(
                holding[0].lines().any(|l| l.contains(&line) && l.ends_with(&message(i))),
                "web-{i:03} not listed in:\n{}",
                holding[0]
            );
        }
        assert!(bot.attempts().iter().all(|a| a.code == Some(0)), "{:?}", bot.attempts());
        within_limits(&bot);
    }

    /// Scenario: one BackOff Event updated 30 times → at most 3 messages, each showing
    /// the count reached: a first burst notified, a second within `repeat_interval`
    /// quiet, a third after it notified with the final count.
    #[tokio::test]
    async fn thirty_updates_of_one_event_cost_at_most_three_messages() {
        let repeat_interval = Duration::from_secs(2);
        let api = FakeApiServer::start().await.unwrap();
        let bot = FakeLark::builder().token("t0k").start().await;
        let uri = format!("{}?repeat_interval={}s", bot.sink_uri(), repeat_interval.as_secs());
        let mut eventer = Eventer::start(&api, &uri).await;
        let created = api.create_event(NewEvent::new("shop", "payment-0").reason("BackOff").warning());
        let update = |n: usize| {
            for _ in 0..n {
                api.update_event(&created.namespace, &created.name).expect("the event exists");
            }
        };
        update(9);
        eventer.expect(&bot, "the first notification", |b| !b.messages().is_empty()).await;
        let first = &bot.messages()[0];
        assert!(first.text.contains("Reason:BackOff \nCount:10 \n"), "{}", first.text);
        update(10);
        tokio::time::sleep(repeat_interval.saturating_sub(first.received.elapsed())).await;
        update(11);
        eventer.expect(&bot, "a second notification", |b| b.messages().len() >= 2).await;
        eventer.stop().await;
        let messages = bot.messages();
        assert!(messages.len() <= 3, "{:?}", texts(&bot));
        assert!(messages.last().unwrap().text.contains("Count:31 \n"), "{}", messages.last().unwrap().text);
    }

    /// Scenario: Lark answers 503 for a while, then recovers → every Warning, from
    /// before, during and after the outage, arrives exactly once.
    #[tokio::test]
    async fn an_outage_loses_nothing_and_repeats_nothing() {
        let api = FakeApiServer::start().await.unwrap();
        let bot = FakeLark::builder().token("t0k").secret("s3c").start().await;
        let mut eventer = Eventer::start(&api, &bot.sink_uri()).await;
        let warn = |range: std::ops::Range<usize>| {
            for i in range {
                api.create_event(
                    NewEvent::new("shop", &format!("web-{i:02}")).reason(&format!("Crash{i:02}")).warning(),
                );
            }
        };
        warn(0..5);
        eventer
            .expect(&bot, "the Warnings before the outage", |b| (0..5).all(|i| naming(b, &format!("web-{i:02}")) > 0))
            .await;
        let before = bot.messages().len();
        bot.fail_for(Duration::from_secs(6), Failure::Status(503));
        warn(5..10);
        eventer.expect(&bot, "a request failing", |b| b.attempts().iter().any(|a| a.status == 503)).await;
        warn(10..15);
        eventer.expect(&bot, "delivery after the outage", |b| b.messages().len() > before).await;
        warn(15..20);
        eventer.expect(&bot, "all 20 Warnings", |b| (0..20).all(|i| naming(b, &format!("web-{i:02}")) > 0)).await;
        eventer.stop().await;
        for i in 0..20 {
            let object = format!("web-{i:02}");
            assert_eq!(naming(&bot, &object), 1, "{object}: {:?}", texts(&bot));
        }
        let failed = bot.attempts().iter().filter(|a| a.status == 503).count();
        assert!(failed >= 2, "the outage was retried through: {failed} failures");
        within_limits(&bot);
    }
}
