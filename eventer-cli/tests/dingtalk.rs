//! The `eventer` binary with the DingTalk sink against the fake robot.
#![cfg(feature = "sink-dingtalk")]

use std::time::{Duration, Instant};

use eventer_fake_dingtalk::{Failure, FakeDingTalk};

mod common;

use common::eventer;

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

#[tokio::test]
async fn sample_warnings_reach_the_robot_and_secrets_stay_out_of_logs() {
    let robot = FakeDingTalk::builder().token("tok-SECRET-9").secret("SECsecret-9").start().await;
    let out = eventer()
        .args(["--source=file:examples/events.json", &format!("--sink={}&label=prod-cluster", robot.sink_uri()), "-vv"])
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
    let out = eventer()
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
            eventer().args(["--source=file:examples/events.json", &format!("--sink={uri}")]).output(),
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
    use std::future::Future;

    use super::*;
    use crate::common::chat::{self, Chat};

    /// The robot's budget as DingTalk enforces it: 20 messages per rolling minute, then a
    /// 10-minute block (errcode 130101).
    const MINUTE: Duration = Duration::from_secs(60);

    impl Chat for FakeDingTalk {
        fn texts(&self) -> Vec<String> {
            self.messages().into_iter().map(|m| m.text).collect()
        }
        fn first_received(&self) -> Instant {
            self.messages()[0].received
        }
        fn status_count(&self, status: u16) -> usize {
            self.attempts().iter().filter(|a| a.status == status).count()
        }
        fn all_accepted(&self) -> bool {
            self.attempts().iter().all(|a| a.errcode == Some(0))
        }
        fn fail_with_503_for(&self, duration: Duration) {
            self.fail_for(duration, Failure::Status(503));
        }
        fn seen(&self) -> String {
            format!("{:?}", self.attempts())
        }
        fn assert_within_limits(&self) {
            assert_eq!(self.errcode_count(130101), 0, "{:?}", self.attempts());
            assert!(self.peak_rate(MINUTE) <= 20, "{} requests in a minute", self.peak_rate(MINUTE));
        }
        fn wait_for(&self, timeout: Duration, condition: impl Fn(&Self) -> bool) -> impl Future<Output = bool> {
            self.wait_until(timeout, condition)
        }
        fn shows_reason(text: &str, reason: &str) -> bool {
            text.contains(&format!("{reason}\n")) || text.contains(&format!("{reason} "))
        }
        /// A digest line with kind, namespace/name, reason and message, or kube-eventer's
        /// single-alert layout with those fields.
        fn lists(text: &str, object: &str, reason: &str, message: &str) -> bool {
            let line = format!("Pod shop/{object} {reason} ");
            let digest = text.lines().any(|l| l.contains(&line) && l.ends_with(message));
            let fields =
                ["Kind:Pod \n", "Namespace:shop \n", &format!("Name:{object}."), &format!("Reason:{reason} \n")];
            let single =
                fields.iter().all(|field| text.contains(field)) && text.contains(&format!("Message:{message}"));
            digest || single
        }
        fn shows_count(text: &str, n: u32) -> bool {
            text.contains(&format!("Reason:BackOff \nCount:{n} \n"))
        }
    }

    #[tokio::test]
    async fn warnings_from_the_apiserver_arrive_fast_and_alone() {
        let robot = FakeDingTalk::builder().token("t0k").start().await;
        chat::warnings_arrive_fast_and_alone(&robot, &robot.sink_uri()).await;
    }

    /// Against DingTalk's real limit and the sink's default budget: every Warning listed
    /// once, and the robot never throttles.
    #[tokio::test]
    async fn a_burst_of_200_warnings_is_listed_in_full_without_tripping_the_limit() {
        let robot = FakeDingTalk::builder().token("t0k").secret("SECburst").start().await;
        chat::a_burst_of_200_is_listed_in_full_within_the_limits(&robot, &robot.sink_uri()).await;
    }

    /// The quiet second burst costs nothing: exactly two messages.
    #[tokio::test]
    async fn thirty_updates_of_one_event_cost_at_most_three_messages() {
        let robot = FakeDingTalk::builder().token("t0k").start().await;
        let texts = chat::thirty_updates_cost_at_most_three_messages(&robot, &robot.sink_uri()).await;
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(texts[1].contains("Name:payment-0."), "{}", texts[1]);
    }

    #[tokio::test]
    async fn an_outage_loses_nothing_and_repeats_nothing() {
        let robot = FakeDingTalk::builder().token("t0k").secret("SECoutage").start().await;
        chat::an_outage_loses_nothing_and_repeats_nothing(&robot, &robot.sink_uri()).await;
    }
}
