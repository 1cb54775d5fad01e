//! The sink against the fake bot: conformance, a message Lark finds too large split and
//! resent, the pause after 11232, and refusals that reject.

use std::{sync::Arc, time::Duration};

use eventer_core::{
    ErrorKind, Event, Outcome, SharedEvent, Sink,
    testing::{assert_sink_conformance, sample_events},
    uri::ComponentUri,
};
use eventer_fake_chat::{Failure, lark::FakeLark};
use eventer_sink_lark::{ChatConfig, LarkConfig, LarkSink};

fn sink(uri: &str) -> LarkSink {
    let uri: ComponentUri = uri.parse().unwrap();
    LarkSink::new(LarkConfig::from_options(uri.target(), &mut uri.options()).unwrap()).unwrap()
}

fn pod(i: usize) -> SharedEvent {
    Arc::new(
        Event::builder()
            .meta("prod", &format!("pod-{i:03}.17b2c3d4e5f6a7b8"), &format!("uid-{i}"))
            .kind("Pod")
            .object("prod", &format!("pod-{i:03}"))
            .reason("BackOff")
            .message("Back-off restarting failed container")
            .warning()
            .build(),
    )
}

fn delivered(outcomes: &[Outcome]) -> usize {
    outcomes.iter().filter(|o| matches!(o, Outcome::Delivered)).count()
}

#[tokio::test]
async fn signed_cards_pass_the_conformance_check() {
    let bot = FakeLark::builder().token("t0k").secret("s3c").start().await;
    let mut sink = sink(&format!("{}&msg_type=card&group_interval=0s&budget=10", bot.sink_uri()));
    let outcomes = assert_sink_conformance(&mut sink, sample_events()).await;
    assert_eq!(delivered(&outcomes), 4);
    assert_eq!(bot.messages().len(), 4);
    assert!(bot.messages().iter().all(|m| m.msg_type == "interactive"));
}

/// The bot takes 3000 bytes where the sink assumed 20000: 19036 splits each digest until
/// it fits, and every alert arrives once.
#[tokio::test]
async fn too_large_digests_are_split_and_resent() {
    let bot = FakeLark::builder().max_bytes(3000).rate_limit(1000, 1000).start().await;
    let mut sink = sink(&format!("{}?group_interval=0s&budget=100&budget_window=1m", bot.sink_uri()));
    let batch: Vec<SharedEvent> = (0..120).map(pod).collect();
    let outcomes = sink.send(&batch).await;
    assert_eq!(delivered(&outcomes), 120, "{outcomes:?}");
    let texts: Vec<String> = bot.messages().into_iter().map(|m| m.text).collect();
    for i in 0..120 {
        assert_eq!(texts.iter().filter(|t| t.contains(&format!("pod-{i:03} "))).count(), 1, "pod-{i:03}");
    }
    assert!(bot.code_count(19036) > 0 && texts.len() > 1);
}

/// 11232 holds the alerts for the pause; they go after it, not before.
#[tokio::test]
async fn rate_limit_code_pauses_then_delivers() {
    let bot = FakeLark::builder().start().await;
    let mut sink = sink(&format!("{}?group_interval=0s", bot.sink_uri()));
    bot.fail_next(1, Failure::Code(11232, "frequency limited".into()));
    let batch = vec![pod(1)];
    let outcomes = sink.send(&batch).await;
    let Outcome::Retry(err) = &outcomes[0] else { panic!("{outcomes:?}") };
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
    // Within the pause nothing is sent.
    assert!(matches!(sink.send(&batch).await[0], Outcome::Defer(_)));
    assert_eq!(bot.attempts().len(), 1);
}

#[tokio::test]
async fn refusals_reject_and_say_why() {
    let bot = FakeLark::builder().token("t0k").secret("right").start().await;
    let mut sink = sink(&format!("lark:{}?sign=wrong", bot.url()));
    let outcomes = sink.send(&[pod(1), pod(2)]).await;
    for outcome in &outcomes {
        let Outcome::Rejected(err) = outcome else { panic!("{outcomes:?}") };
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        assert!(err.to_string().contains("(code 19021)"), "{err}");
        assert!(!err.to_string().contains("t0k"), "{err}");
    }
    assert!(!format!("{sink:?}").contains("t0k"));
}
