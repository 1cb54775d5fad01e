//! The `eventer` binary with the DingTalk sink against the fake robot.
#![cfg(feature = "sink-dingtalk")]

use std::time::{Duration, Instant};

use eventer_fake_dingtalk::{Failure, FakeDingTalk};
use tokio::process::Command;

const WARNINGS: [&str; 10] = [
    "BackOff",
    "Unhealthy",
    "FailedScheduling",
    "KernelOops",
    "TaskHung",
    "DockerHung",
    "ContainerdHung",
    "FDPressure",
    "OOMKilling",
    "ReadonlyFilesystem",
];

/// Flags every run gets: a free health port, so tests can run side by side.
const HEALTHZ: [&str; 2] = ["--healthz-ip=127.0.0.1", "--healthz-port=0"];

#[tokio::test]
async fn sample_warnings_reach_the_robot_and_secrets_stay_out_of_logs() {
    let robot = FakeDingTalk::builder().token("tok-SECRET-9").secret("SECsecret-9").start().await;
    let out = Command::new(env!("CARGO_BIN_EXE_eventer"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["--source=file:examples/events.json", &format!("--sink={}&label=prod-cluster", robot.sink_uri()), "-vv"])
        .args(HEALTHZ)
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    let text: String = robot.messages().iter().map(|m| m.text.clone()).collect::<Vec<_>>().join("\n");
    for reason in WARNINGS {
        assert!(text.contains(reason), "{reason} missing from:\n{text}");
    }
    for normal in ["Scheduled", "Pulled", "ScalingReplicaSet", "SuccessfulRescale", "NodeHasSufficientMemory"] {
        assert!(!text.contains(normal), "{normal} is Normal and must not be sent");
    }
    assert!(text.contains("prod-cluster"));
    assert_eq!(robot.errcode_count(130101), 0);
    assert!(!logs.contains("SECRET") && !logs.contains("secret-9"), "{logs}");
}

#[tokio::test]
async fn missing_token_is_a_clear_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_eventer"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args([
            "--source=file:examples/events.json",
            "--sink=dingtalk:https://oapi.dingtalk.com/robot/send?sign=SECxyz",
        ])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("access_token"), "{err}");
    assert!(!err.contains("SECxyz"), "{err}");
}

/// A robot refusing the configuration (signature, token) is an error in the logs that
/// names the errcode and what to fix, and shows neither the token nor the secret.
#[tokio::test]
async fn configuration_errcodes_are_logged_loudly_without_secrets() {
    let token = "tok-HIDDEN-1";
    let secret = "SEChidden-2";
    let robot = FakeDingTalk::builder().token(token).secret(secret).start().await;
    let wrong_sign = format!("dingtalk:{}?access_token={token}&sign=SECwrong-HIDDEN-3", robot.url());
    let wrong_token = format!("dingtalk:{}?access_token=nope-HIDDEN-4&sign={secret}", robot.url());
    let cases = [
        (wrong_sign, None, "sign not match (errcode 310000); check the sign secret"),
        (wrong_token, None, "token is not exist (errcode 300001); check access_token"),
        // DingTalk answers 300005 for some external groups; the fake has no such group.
        (robot.sink_uri(), Some(300005), "token is not exist (errcode 300005); check access_token"),
    ];
    for (uri, inject, expected) in cases {
        if let Some(errcode) = inject {
            robot.fail_next(1, Failure::Errcode(errcode, "token is not exist".into()));
        }
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
        for hidden in ["HIDDEN", "hidden"] {
            assert!(!logs.contains(hidden), "a secret leaked:\n{logs}");
        }
    }
    // Refusals are final: not even the injected 300005 was retried into a delivery.
    assert!(robot.messages().is_empty(), "{:?}", robot.attempts());
}

#[cfg(feature = "source-k8s")]
mod apiserver {
    use std::process::Stdio;

    use eventer_fake_apiserver::{FakeApiServer, NewEvent};
    use tokio::{io::AsyncReadExt, process::Child, task::JoinHandle};

    use super::*;

    /// The robot's budget as DingTalk enforces it: 20 messages per rolling minute.
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

        /// Wait for `condition` on the robot; on time-out, fail showing eventer's logs.
        async fn expect(&mut self, robot: &FakeDingTalk, what: &str, condition: impl Fn(&FakeDingTalk) -> bool) {
            if !robot.wait_until(PATIENCE, condition).await {
                self.child.start_kill().ok();
                let logs = self.stderr.take().expect("logs once").await.unwrap();
                panic!("timed out waiting for {what}; robot saw {:?}\n{logs}", robot.attempts());
            }
        }
    }

    fn texts(robot: &FakeDingTalk) -> Vec<String> {
        robot.messages().into_iter().map(|m| m.text).collect()
    }

    /// Accepted messages naming `object`.
    fn naming(robot: &FakeDingTalk, object: &str) -> usize {
        texts(robot).iter().filter(|t| t.contains(object)).count()
    }

    /// `text` lists the event: a digest line with kind, namespace/name, reason and message,
    /// or kube-eventer's single-alert layout with those fields.
    fn lists(text: &str, object: &str, reason: &str, message: &str) -> bool {
        let line = format!("Pod shop/{object} {reason} ");
        let digest = text.lines().any(|l| l.contains(&line) && l.ends_with(message));
        let single = ["Kind:Pod \n", "Namespace:shop \n", &format!("Name:{object}."), &format!("Reason:{reason} \n")]
            .iter()
            .all(|field| text.contains(field))
            && text.contains(&format!("Message:{message}"));
        digest || single
    }

    /// Scenario: 20 Warnings among 20 Normal events from the apiserver → all 20
    /// Warnings, no Normal, the first within about a second.
    #[tokio::test]
    async fn warnings_from_the_apiserver_arrive_fast_and_alone() {
        let api = FakeApiServer::start().await.unwrap();
        let robot = FakeDingTalk::builder().token("t0k").start().await;
        let mut eventer = Eventer::start(&api, &robot.sink_uri()).await;
        let started = Instant::now();
        for i in 0..20 {
            api.create_event(NewEvent::new("shop", &format!("web-{i}")).reason(&format!("Crash{i}")).warning());
            api.create_event(NewEvent::new("shop", &format!("web-{i}")).reason(&format!("Pulled{i}")));
        }
        let all_listed = |r: &FakeDingTalk| {
            let text: String = texts(r).concat();
            (0..20).all(|i| text.contains(&format!("Crash{i}\n")) || text.contains(&format!("Crash{i} ")))
        };
        eventer.expect(&robot, "all 20 Warnings", all_listed).await;
        let first = robot.messages()[0].received;
        assert!(first.duration_since(started) < Duration::from_millis(1500), "first alert after {:?}", first - started);
        let text: String = texts(&robot).concat();
        assert!(!text.contains("Pulled"), "Normal events must not be sent:\n{text}");
        assert_eq!(robot.errcode_count(130101), 0);
        eventer.stop().await;
    }

    /// Scenario: 200 Warnings created within one second, against DingTalk's real
    /// limit (20 a minute, then a 10-minute block) and the sink's default budget → every
    /// Warning listed once, in at most 20 messages, and the robot never throttles.
    #[tokio::test]
    async fn a_burst_of_200_warnings_is_listed_in_full_without_tripping_the_limit() {
        let api = FakeApiServer::start().await.unwrap();
        let robot = FakeDingTalk::builder().token("t0k").secret("SECburst").start().await;
        let mut eventer = Eventer::start(&api, &robot.sink_uri()).await;
        let message = |i: usize| format!("Back-off restarting failed container app in pod web-{i:03}");
        let started = Instant::now();
        for i in 0..200 {
            let ev = NewEvent::new("shop", &format!("web-{i:03}")).reason("BackOff").message(&message(i)).warning();
            api.create_event(ev);
        }
        assert!(started.elapsed() < Duration::from_secs(1), "creating took {:?}", started.elapsed());
        let all_named = |r: &FakeDingTalk| (0..200).all(|i| naming(r, &format!("web-{i:03}")) > 0);
        eventer.expect(&robot, "all 200 Warnings", all_named).await;
        eventer.stop().await;
        let texts = texts(&robot);
        for i in 0..200 {
            let object = format!("web-{i:03}");
            let holding: Vec<&String> = texts.iter().filter(|t| t.contains(&object)).collect();
            assert_eq!(holding.len(), 1, "{object} is in {} messages", holding.len());
            assert!(lists(holding[0], &object, "BackOff", &message(i)), "{object} not listed in:\n{}", holding[0]);
        }
        assert_eq!(robot.errcode_count(130101), 0);
        assert!(robot.attempts().iter().all(|a| a.errcode == Some(0)), "{:?}", robot.attempts());
        assert!(robot.peak_rate(MINUTE) <= 20, "{} requests in a minute", robot.peak_rate(MINUTE));
    }

    /// Scenario: one BackOff Event updated 30 times (count + 1 each, as the kubelet
    /// does) → at most 3 messages, each showing the count reached. Updates come in three
    /// bursts: the first is one message; the second, within `repeat_interval` of it, is
    /// quiet; the third, after `repeat_interval`, is one message with the final count.
    #[tokio::test]
    async fn thirty_updates_of_one_event_cost_at_most_three_messages() {
        let repeat_interval = Duration::from_secs(2);
        let api = FakeApiServer::start().await.unwrap();
        let robot = FakeDingTalk::builder().token("t0k").start().await;
        let uri = format!("{}&repeat_interval={}s", robot.sink_uri(), repeat_interval.as_secs());
        let mut eventer = Eventer::start(&api, &uri).await;
        let created = api.create_event(NewEvent::new("shop", "payment-0").reason("BackOff").warning());
        let update = |n: usize| {
            for _ in 0..n {
                api.update_event(&created.namespace, &created.name).expect("the event exists");
            }
        };
        update(9);
        eventer.expect(&robot, "the first notification", |r| !r.messages().is_empty()).await;
        let first = &robot.messages()[0];
        assert!(first.text.contains("Reason:BackOff \nCount:10 \n"), "{}", first.text);
        update(10);
        // The second burst reaches the sink a group_wait later, well inside repeat_interval;
        // the third must come after it has passed.
        tokio::time::sleep(repeat_interval.saturating_sub(first.received.elapsed())).await;
        update(11);
        eventer.expect(&robot, "a second notification", |r| r.messages().len() >= 2).await;
        eventer.stop().await;
        let messages = robot.messages();
        assert_eq!(messages.len(), 2, "{:?}", texts(&robot));
        assert!(
            messages[1].text.contains("Name:payment-0.") && messages[1].text.contains("Count:31 \n"),
            "{}",
            messages[1].text
        );
    }

    /// Scenario: DingTalk answers 503 for a while, then recovers → every Warning,
    /// from before, during and after the outage, arrives exactly once.
    #[tokio::test]
    async fn an_outage_loses_nothing_and_repeats_nothing() {
        let api = FakeApiServer::start().await.unwrap();
        let robot = FakeDingTalk::builder().token("t0k").secret("SECoutage").start().await;
        let mut eventer = Eventer::start(&api, &robot.sink_uri()).await;
        let warn = |range: std::ops::Range<usize>| {
            for i in range {
                api.create_event(
                    NewEvent::new("shop", &format!("web-{i:02}")).reason(&format!("Crash{i:02}")).warning(),
                );
            }
        };
        warn(0..5);
        eventer
            .expect(&robot, "the Warnings before the outage", |r| (0..5).all(|i| naming(r, &format!("web-{i:02}")) > 0))
            .await;
        let before = robot.messages().len();
        // Long enough for several tries: they come group_interval (2 s) apart or more.
        robot.fail_for(Duration::from_secs(6), Failure::Status(503));
        warn(5..10);
        eventer.expect(&robot, "a request failing", |r| r.attempts().iter().any(|a| a.status == 503)).await;
        warn(10..15);
        eventer.expect(&robot, "delivery after the outage", |r| r.messages().len() > before).await;
        warn(15..20);
        let all = |r: &FakeDingTalk| (0..20).all(|i| naming(r, &format!("web-{i:02}")) > 0);
        eventer.expect(&robot, "all 20 Warnings", all).await;
        eventer.stop().await;
        for i in 0..20 {
            let object = format!("web-{i:02}");
            assert_eq!(naming(&robot, &object), 1, "{object}: {:?}", texts(&robot));
        }
        let failed = robot.attempts().iter().filter(|a| a.status == 503).count();
        assert!(failed >= 2, "the outage was retried through: {failed} failures");
        assert_eq!(robot.errcode_count(130101), 0);
        assert!(robot.peak_rate(MINUTE) <= 20);
    }
}
