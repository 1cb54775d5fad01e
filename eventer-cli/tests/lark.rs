//! The `eventer` binary with the Lark/Feishu sink against the fake bot.
#![cfg(feature = "sink-lark")]

use std::time::{Duration, Instant};

use eventer_fake_chat::{Failure, lark::FakeLark};

mod common;

use common::eventer;

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
    use std::future::Future;

    use super::*;
    use crate::common::chat::{self, Chat};

    const SECOND: Duration = Duration::from_secs(1);
    const MINUTE: Duration = Duration::from_secs(60);

    impl Chat for FakeLark {
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
            self.attempts().iter().all(|a| a.code == Some(0))
        }
        fn fail_with_503_for(&self, duration: Duration) {
            self.fail_for(duration, Failure::Status(503));
        }
        fn seen(&self) -> String {
            format!("{:?}", self.attempts())
        }
        /// No refusal for going too fast, and the traffic within both of Lark's limits.
        fn assert_within_limits(&self) {
            assert_eq!(self.code_count(11232), 0, "{:?}", self.attempts());
            assert!(self.peak_rate(SECOND) <= 5, "{} requests in a second", self.peak_rate(SECOND));
            assert!(self.peak_rate(MINUTE) <= 100, "{} requests in a minute", self.peak_rate(MINUTE));
        }
        fn wait_for(&self, timeout: Duration, condition: impl Fn(&Self) -> bool) -> impl Future<Output = bool> {
            self.wait_until(timeout, condition)
        }
        fn lists(text: &str, object: &str, reason: &str, message: &str) -> bool {
            let line = format!("Pod shop/{object} **{reason}** ");
            text.lines().any(|l| l.contains(&line) && l.ends_with(message))
        }
        fn shows_count(text: &str, n: u32) -> bool {
            text.contains(&format!("Reason:BackOff \nCount:{n} \n"))
        }
    }

    fn bot() -> impl Future<Output = FakeLark> {
        FakeLark::builder().token("t0k").secret("s3c").start()
    }

    #[tokio::test]
    async fn warnings_from_the_apiserver_arrive_fast_and_alone() {
        let bot = bot().await;
        chat::warnings_arrive_fast_and_alone(&bot, &bot.sink_uri()).await;
    }

    /// Digests as cards: every Warning listed once, with its message, and Lark never
    /// refuses for rate.
    #[tokio::test]
    async fn a_burst_of_200_warnings_is_listed_in_full_without_tripping_the_limits() {
        let bot = bot().await;
        chat::a_burst_of_200_is_listed_in_full_within_the_limits(
            &bot,
            &chat::with(&bot.sink_uri(), "msg_type=interactive"),
        )
        .await;
    }

    #[tokio::test]
    async fn thirty_updates_of_one_event_cost_at_most_three_messages() {
        let bot = FakeLark::builder().token("t0k").start().await;
        chat::thirty_updates_cost_at_most_three_messages(&bot, &bot.sink_uri()).await;
    }

    #[tokio::test]
    async fn an_outage_loses_nothing_and_repeats_nothing() {
        let bot = bot().await;
        chat::an_outage_loses_nothing_and_repeats_nothing(&bot, &bot.sink_uri()).await;
    }
}
