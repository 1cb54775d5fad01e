//! Both sinks against the fake WeCom: layouts, mentions, errcode handling, the app's token
//! cache and its refresh, digests under the size limits, and secrets kept out of errors.

use std::{sync::Arc, time::Duration};

use eventer_core::{
    Event, Outcome, SharedEvent, Sink,
    testing::{assert_sink_conformance, sample_events},
    uri::ComponentUri,
};
use eventer_fake_wecom::{Failure, FakeWeCom, Target};
use eventer_sink_wecom::{ChatConfig, WeChatConfig, WeChatSink, WeComConfig, WeComSink};

fn robot(uri: &str) -> WeComSink {
    let uri: ComponentUri = uri.parse().unwrap();
    WeComSink::new(WeComConfig::from_options(uri.target(), &mut uri.options()).unwrap()).unwrap()
}

fn app(uri: &str) -> WeChatSink {
    let uri: ComponentUri = uri.parse().unwrap();
    WeChatSink::new(WeChatConfig::from_options(uri.target(), &mut uri.options()).unwrap()).unwrap()
}

fn pod(i: usize, message: &str) -> SharedEvent {
    Arc::new(
        Event::builder()
            .meta("prod", &format!("pod-{i:03}.17b2c3d4e5f6a7b8"), &format!("uid-{i}"))
            .kind("Pod")
            .object("prod", &format!("pod-{i:03}"))
            .reason("BackOff")
            .message(message)
            .warning()
            .build(),
    )
}

fn delivered(outcomes: &[Outcome]) -> usize {
    outcomes.iter().filter(|o| matches!(o, Outcome::Delivered)).count()
}

fn error_of(outcome: &Outcome) -> &eventer_core::Error {
    match outcome {
        Outcome::Retry(e) | Outcome::Rejected(e) => e,
        Outcome::Delivered | Outcome::Defer(_) => panic!("expected a failure, got {outcome:?}"),
    }
}

#[tokio::test]
async fn robot_messages_pass_the_conformance_check_in_kube_eventers_layout() {
    let wecom = FakeWeCom::builder().key("k3y").start().await;
    let uri = format!("{}&group_interval=0s&label=c1&label=c2&mentioned_list=ops,@all&timezone=UTC", wecom.robot_uri());
    let outcomes = assert_sink_conformance(&mut robot(&uri), sample_events()).await;
    assert_eq!(delivered(&outcomes), 4);
    let messages = wecom.messages();
    assert_eq!(messages.len(), 4);
    let first = &messages[0];
    assert_eq!(first.msgtype, "text");
    assert_eq!(first.mentioned_list, ["ops", "@all"]);
    // kube-eventer prepends each label: the last comes first.
    assert!(first.content.starts_with("c2\nc1\nLevel:Warning \nKind:Pod \nNamespace:"), "{}", first.content);
    assert!(first.content.contains(" \nReason:BackOff \n"), "{}", first.content);
    assert!(first.content.contains(" +0000 UTC \nMessage:"), "{}", first.content);
}

#[tokio::test]
async fn markdown_digests_stay_under_4096_bytes_and_list_every_alert() {
    let wecom = FakeWeCom::builder().start().await;
    let mut sink = robot(&format!("{}&msg_type=markdown&budget=6", wecom.robot_uri()));
    let long = "x".repeat(200);
    let batch: Vec<SharedEvent> = (0..40).map(|i| pod(i, &long)).collect();
    let outcomes = sink.send(&batch).await;
    assert_eq!(delivered(&outcomes), 40);
    let messages = wecom.messages();
    assert!(messages.len() > 1 && messages.len() <= 4, "{} messages", messages.len());
    for m in &messages {
        assert_eq!(m.msgtype, "markdown");
        assert!(m.content.len() <= 4096, "{} bytes", m.content.len());
    }
    let all: String = messages.iter().map(|m| m.content.clone()).collect();
    for i in 0..40 {
        assert_eq!(all.matches(&format!("prod/pod-{i:03} **BackOff**")).count(), 1, "pod-{i:03}");
    }
}

#[tokio::test]
async fn a_message_wecom_finds_too_long_is_split_and_resent() {
    let wecom = FakeWeCom::builder().start().await;
    let mut sink = robot(&format!("{}&budget=10", wecom.robot_uri()));
    let batch: Vec<SharedEvent> = (0..8).map(|i| pod(i, "Back-off restarting failed container")).collect();
    wecom.fail_next(1, Failure::Errcode(40058, "text.content exceed max length 2048".into()));
    let outcomes = sink.send(&batch).await;
    assert_eq!(delivered(&outcomes), 8, "{outcomes:?}");
    assert_eq!(wecom.errcode_count(40058), 1);
    let all: String = wecom.messages().iter().map(|m| m.content.clone()).collect();
    assert!((0..8).all(|i| all.contains(&format!("pod-{i:03}"))), "{all}");
}

#[tokio::test]
async fn configuration_errcodes_reject_and_name_the_cause_without_secrets() {
    let wecom = FakeWeCom::builder().key("right").corp("ww-corp", "right-secret").agent_id(7).start().await;
    let wrong_key = format!("wecom:{}?key=HIDDEN-key", wecom.robot_url());
    let outcomes = robot(&wrong_key).send(&[pod(1, "m")]).await;
    let err = error_of(&outcomes[0]);
    assert!(!err.is_temporary());
    assert!(err.to_string().contains("(errcode 93000); check key"), "{err}");
    let base = format!("wechat:?endpoint={}&agent_id=7", wecom.endpoint());
    let cases = [
        (format!("{base}&corp_id=ww-corp&corp_secret=HIDDEN-secret"), "(errcode 40001); check corp_secret"),
        (format!("{base}&corp_id=ww-other&corp_secret=right-secret"), "(errcode 40013); check corp_id"),
        (
            format!("wechat:?endpoint={}&agent_id=8&corp_id=ww-corp&corp_secret=right-secret", wecom.endpoint()),
            "(errcode 40056); check agent_id",
        ),
        (format!("{base}&corp_id=ww-corp&corp_secret=right-secret&to_user=ghost"), "(errcode 81013); check to_user"),
    ];
    for (uri, expected) in cases {
        let mut sink = app(&uri);
        assert!(!format!("{sink:?}").contains("HIDDEN"));
        let outcomes = sink.send(&[pod(1, "m")]).await;
        let err = error_of(&outcomes[0]);
        assert!(err.to_string().contains(expected), "{err}");
        assert!(!err.is_temporary(), "{err}");
        assert!(!err.chain().contains("HIDDEN") && !err.chain().contains("right-secret"), "{}", err.chain());
    }
    assert!(wecom.messages().is_empty());
}

#[tokio::test]
async fn the_app_fetches_its_token_once_and_renews_it_once_when_refused() {
    let wecom = FakeWeCom::builder().start().await;
    let mut sink = app(&format!("{}&to_user=ops,oncall&group_interval=0s", wecom.app_uri()));
    for i in 0..3 {
        assert_eq!(delivered(&sink.send(&[pod(i, "m")]).await), 1);
    }
    assert_eq!(wecom.token_fetches(), 1);
    wecom.expire_tokens();
    assert_eq!(delivered(&sink.send(&[pod(3, "m")]).await), 1);
    assert_eq!((wecom.token_fetches(), wecom.errcode_count(42001)), (2, 1));
    let messages = wecom.messages();
    assert_eq!(messages.len(), 4);
    let to_user = vec!["ops".to_owned(), "oncall".to_owned()];
    assert!(messages.iter().all(|m| m.target == Target::App { to_user: to_user.clone(), agent_id: 1_000_002 }));
    assert!(messages[0].content.starts_with("Level:Warning \nKind:Pod \n"), "{}", messages[0].content);
}

#[tokio::test]
async fn a_short_lived_token_is_renewed_before_it_expires() {
    let wecom = FakeWeCom::builder().token_ttl(Duration::from_secs(2)).start().await;
    let mut sink = app(&format!("{}&group_interval=0s", wecom.app_uri()));
    assert_eq!(delivered(&sink.send(&[pod(0, "m")]).await), 1);
    // Kept for half its life: renewed before WeCom would refuse it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(delivered(&sink.send(&[pod(1, "m")]).await), 1);
    assert_eq!((wecom.token_fetches(), wecom.errcode_count(42001)), (2, 0));
}

#[tokio::test]
async fn throttling_pauses_and_failures_retry() {
    let wecom = FakeWeCom::builder().start().await;
    let mut sink = robot(&format!("{}&group_interval=0s", wecom.robot_uri()));
    wecom.fail_next(1, Failure::Errcode(45009, "api freq out of limit".into()));
    let outcomes = sink.send(&[pod(0, "m")]).await;
    let err = error_of(&outcomes[0]);
    assert!(err.is_temporary());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
    // Paused: the next alert is held without asking WeCom.
    let attempts = wecom.attempts().len();
    assert!(matches!(sink.send(&[pod(1, "m")]).await[0], Outcome::Defer(d) if d > Duration::from_secs(50)));
    assert_eq!(wecom.attempts().len(), attempts);

    let mut sink = robot(&format!("{}&group_interval=0s", wecom.robot_uri()));
    for failure in [Failure::Status(502), Failure::NotJson, Failure::Errcode(-1, "system busy".into())] {
        wecom.fail_next(1, failure.clone());
        let outcomes = sink.send(&[pod(2, "m")]).await;
        assert!(error_of(&outcomes[0]).is_temporary(), "{failure:?}: {outcomes:?}");
    }
    assert_eq!(delivered(&sink.send(&[pod(2, "m")]).await), 1);
}
