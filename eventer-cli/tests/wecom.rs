//! The `eventer` binary with the WeCom sinks (`wecom:` robot, `wechat:` app) against the
//! fake WeCom.
#![cfg(feature = "sink-wecom")]

use std::time::Duration;

use eventer_fake_wecom::FakeWeCom;
use tokio::process::Command;

mod common;

use common::eventer;

#[tokio::test]
async fn sample_warnings_reach_the_robot_and_the_key_stays_out_of_logs() {
    let wecom = FakeWeCom::builder().key("key-SECRET-9").start().await;
    let out = eventer()
        .args([
            "--source=file:examples/events.json",
            &format!("--sink={}&label=prod-cluster", wecom.robot_uri()),
            "-vv",
        ])
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
    let out = Command::new(common::eventer_bin())
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
        let out =
            eventer().args(["--source=file:examples/events.json", &format!("--sink={sink}")]).output().await.unwrap();
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
    assert!(wecom.messages().is_empty(), "{:?}", wecom.attempts());
}

#[cfg(feature = "source-k8s")]
mod apiserver {
    use std::{future::Future, time::Instant};

    use eventer_fake_wecom::Failure;

    use super::*;
    use crate::common::{
        PATIENCE,
        chat::{self, Chat},
    };

    /// WeCom's window: 20 messages per rolling minute.
    const MINUTE: Duration = Duration::from_secs(60);

    impl Chat for FakeWeCom {
        /// Digests of 2048 bytes hold about 15 alerts: more than a minute's budget may be
        /// needed when the burst is split across batches.
        const BURST_PATIENCE: Duration = Duration::from_secs(60 + PATIENCE.as_secs());

        fn texts(&self) -> Vec<String> {
            self.messages().into_iter().map(|m| m.content).collect()
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
            assert_eq!(self.errcode_count(45009), 0, "{:?}", self.attempts());
            assert!(self.peak_rate(MINUTE) <= 20, "{} requests in a minute", self.peak_rate(MINUTE));
        }
        fn wait_for(&self, timeout: Duration, condition: impl Fn(&Self) -> bool) -> impl Future<Output = bool> {
            self.wait_until(timeout, condition)
        }
        fn shows_reason(text: &str, reason: &str) -> bool {
            text.contains(&format!("{reason}\n")) || text.contains(&format!("{reason} "))
        }
        /// kube-eventer's single-alert layout, or a digest line; with the message.
        fn lists(text: &str, object: &str, reason: &str, message: &str) -> bool {
            let single = text.contains(&format!("Name:{object}."));
            let line = format!("Pod shop/{object} {reason} (x1, ");
            (single || text.contains(&line)) && text.contains(message)
        }
        fn shows_count(text: &str, n: u32) -> bool {
            text.contains(&format!("Reason:BackOff \nCount:{n} \n"))
        }
    }

    #[tokio::test]
    async fn robot_warnings_from_the_apiserver_arrive_fast_and_alone() {
        let wecom = FakeWeCom::builder().start().await;
        chat::warnings_arrive_fast_and_alone(&wecom, &wecom.robot_uri()).await;
    }

    /// Scenario for kube-eventer's `wechat:`: the same 20 Warnings through the app, with
    /// at most 2 token fetches (kube-eventer fetched one per event).
    #[tokio::test]
    async fn app_warnings_arrive_with_at_most_two_token_fetches() {
        let wecom = FakeWeCom::builder().start().await;
        chat::warnings_arrive_fast_and_alone(&wecom, &format!("{}&to_user=ops", wecom.app_uri())).await;
        assert!(wecom.token_fetches() <= 2, "{} token fetches", wecom.token_fetches());
        assert!(wecom.attempts().iter().all(|a| a.errcode == Some(0)), "{:?}", wecom.attempts());
    }

    /// Against WeCom's limits (20 a minute, 2048 bytes of text): no 45009, no message too
    /// long.
    #[tokio::test]
    async fn a_burst_of_200_warnings_is_listed_in_full_without_tripping_the_limit() {
        let wecom = FakeWeCom::builder().start().await;
        chat::a_burst_of_200_is_listed_in_full_within_the_limits(&wecom, &wecom.robot_uri()).await;
    }

    #[tokio::test]
    async fn thirty_updates_of_one_event_cost_at_most_three_messages() {
        let wecom = FakeWeCom::builder().start().await;
        let texts = chat::thirty_updates_cost_at_most_three_messages(&wecom, &wecom.robot_uri()).await;
        let last = texts.last().unwrap();
        assert!(last.contains("Name:payment-0."), "{last}");
    }

    #[tokio::test]
    async fn an_outage_loses_nothing_and_repeats_nothing() {
        let wecom = FakeWeCom::builder().start().await;
        chat::an_outage_loses_nothing_and_repeats_nothing(&wecom, &wecom.robot_uri()).await;
    }
}
