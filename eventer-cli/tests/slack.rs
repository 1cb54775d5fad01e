//! The `eventer` binary with the Slack sink against the fake webhook.
#![cfg(feature = "sink-slack")]

use std::time::{Duration, Instant};

use eventer_fake_chat::{Failure, slack::FakeSlack};

mod common;

use common::eventer;

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
    use std::future::Future;

    use eventer_fake_apiserver::{FakeApiServer, NewEvent};

    use super::*;
    use crate::common::{
        PATIENCE,
        chat::{self, Chat},
    };

    impl Chat for FakeSlack {
        fn texts(&self) -> Vec<String> {
            self.messages().iter().map(|m| m.shown()).collect()
        }
        fn first_received(&self) -> Instant {
            self.messages()[0].received
        }
        fn status_count(&self, status: u16) -> usize {
            FakeSlack::status_count(self, status)
        }
        fn all_accepted(&self) -> bool {
            self.attempts().iter().all(|a| a.status == 200)
        }
        fn fail_with_503_for(&self, duration: Duration) {
            self.fail_for(duration, Failure::Status(503));
        }
        fn seen(&self) -> String {
            format!("{:?}", self.attempts())
        }
        /// Slack never answered 429.
        fn assert_within_limits(&self) {
            assert_eq!(FakeSlack::status_count(self, 429), 0, "{:?}", self.attempts());
        }
        fn wait_for(&self, timeout: Duration, condition: impl Fn(&Self) -> bool) -> impl Future<Output = bool> {
            self.wait_until(timeout, condition)
        }
        fn shows_reason(text: &str, reason: &str) -> bool {
            text.contains(&format!("*{reason}*"))
        }
        fn lists(text: &str, object: &str, reason: &str, message: &str) -> bool {
            let line = format!("• *Warning* Pod shop/{object} *{reason}* ");
            text.lines().any(|l| l.starts_with(&line) && l.ends_with(message))
        }
        fn shows_count(text: &str, n: u32) -> bool {
            text.contains(&format!("\nCount: {n} · "))
        }
    }

    #[tokio::test]
    async fn warnings_from_the_apiserver_arrive_fast_and_alone() {
        let hook = FakeSlack::builder().start().await;
        chat::warnings_arrive_fast_and_alone(&hook, &hook.sink_uri()).await;
    }

    #[tokio::test]
    async fn a_burst_of_200_warnings_is_listed_in_full_without_a_429() {
        let hook = FakeSlack::builder().start().await;
        chat::a_burst_of_200_is_listed_in_full_within_the_limits(&hook, &hook.sink_uri()).await;
    }

    #[tokio::test]
    async fn thirty_updates_of_one_event_cost_at_most_three_messages() {
        let hook = FakeSlack::builder().start().await;
        chat::thirty_updates_cost_at_most_three_messages(&hook, &hook.sink_uri()).await;
    }

    #[tokio::test]
    async fn an_outage_loses_nothing_and_repeats_nothing() {
        let hook = FakeSlack::builder().start().await;
        chat::an_outage_loses_nothing_and_repeats_nothing(&hook, &hook.sink_uri()).await;
    }

    /// A 429 (here: a budget set above what the webhook allows) is honoured: nothing is
    /// sent until its Retry-After has passed, and nothing is lost.
    #[tokio::test]
    async fn retry_after_is_honoured() {
        let api = FakeApiServer::start().await.unwrap();
        // One message, then one every 2 s: a second message at once gets Retry-After: 2.
        let hook = FakeSlack::builder().rate_limit(1, 0.5).start().await;
        let uri = format!("{}?budget=10&budget_window=1s", hook.sink_uri());
        let mut eventer = chat::start(&api, &uri).await;
        api.create_event(NewEvent::new("shop", "web-0").reason("Crash").warning());
        api.create_event(NewEvent::new("shop", "web-1").reason("Crash").warning());
        let both = |h: &FakeSlack| h.naming("web-0") == 1 && h.naming("web-1") == 1;
        chat::expect(&mut eventer, &hook, PATIENCE, "both Warnings", both).await;
        eventer.stop().await;
        let attempts = hook.attempts();
        let refused = attempts.iter().position(|a| a.status == 429).expect("a 429");
        let retried = attempts[refused + 1].received.duration_since(attempts[refused].received);
        assert!(retried >= Duration::from_secs(2), "retried after {retried:?}: {attempts:?}");
        assert_eq!(attempts.iter().filter(|a| a.status == 429).count(), 1, "{attempts:?}");
    }
}
