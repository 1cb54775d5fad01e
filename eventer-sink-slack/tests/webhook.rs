//! The sink against the fake webhook: conformance, digests in sections under Slack's
//! limits, and refusals that reject.

use std::sync::Arc;

use eventer_core::{
    ErrorKind, Event, Outcome, SharedEvent, Sink,
    testing::{assert_sink_conformance, sample_events},
    uri::ComponentUri,
};
use eventer_fake_chat::slack::FakeSlack;
use eventer_sink_slack::{ChatConfig, SlackConfig, SlackSink};

fn sink(uri: &str) -> SlackSink {
    let uri: ComponentUri = uri.parse().unwrap();
    SlackSink::new(SlackConfig::from_options(uri.target(), &mut uri.options()).unwrap()).unwrap()
}

fn pod(i: usize) -> SharedEvent {
    Arc::new(
        Event::builder()
            .meta("prod", &format!("pod-{i:03}.17b2c3d4e5f6a7b8"), &format!("uid-{i}"))
            .kind("Pod")
            .object("prod", &format!("pod-{i:03}"))
            .reason("BackOff")
            .message(&format!("Back-off restarting failed container <app> & {}", "x".repeat(200)))
            .warning()
            .build(),
    )
}

fn delivered(outcomes: &[Outcome]) -> usize {
    outcomes.iter().filter(|o| matches!(o, Outcome::Delivered)).count()
}

#[tokio::test]
async fn messages_pass_the_conformance_check() {
    let hook = FakeSlack::builder().rate_limit(100, 100.0).start().await;
    let mut sink = sink(&format!("{}?group_interval=0s&budget=10", hook.sink_uri()));
    let outcomes = assert_sink_conformance(&mut sink, sample_events()).await;
    assert_eq!(delivered(&outcomes), 4);
    assert_eq!(hook.messages().len(), 4);
}

/// The largest body Slack takes, 40000 bytes of digest: every section under 3000
/// characters, under 50 blocks, every alert once.
#[tokio::test]
async fn large_digests_fit_slack_s_block_limits() {
    let hook = FakeSlack::builder().rate_limit(100, 100.0).start().await;
    let mut sink = sink(&format!("{}?group_interval=0s&max_bytes=40000", hook.sink_uri()));
    let batch: Vec<SharedEvent> = (0..300).map(pod).collect();
    let outcomes = sink.send(&batch).await;
    assert_eq!(delivered(&outcomes), 300, "{outcomes:?}");
    let shown: Vec<String> = hook.messages().iter().map(|m| m.shown()).collect();
    for i in 0..300 {
        assert_eq!(shown.iter().filter(|t| t.contains(&format!("pod-{i:03} "))).count(), 1, "pod-{i:03}");
    }
    assert!(shown.iter().all(|t| t.contains("&lt;app&gt; &amp; ")));
    assert!(hook.attempts().iter().all(|a| a.status == 200), "{:?}", hook.attempts());
}

#[tokio::test]
async fn a_gone_webhook_rejects_and_hides_the_secret() {
    let hook = FakeSlack::builder().hook("T0/B0/s3cret").start().await;
    let mut sink = sink(&hook.sink_uri().replace("s3cret", "wrong-s3cret"));
    let outcomes = sink.send(&[pod(1)]).await;
    let Outcome::Rejected(err) = &outcomes[0] else { panic!("{outcomes:?}") };
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.to_string().contains("no_service (HTTP 404)"), "{err}");
    assert!(!err.to_string().contains("s3cret") && !format!("{sink:?}").contains("s3cret"));
}
