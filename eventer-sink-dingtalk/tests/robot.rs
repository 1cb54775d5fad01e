//! The sink against the fake robot: signing, errcode handling, per-event outcomes,
//! repeats, the budget, and secrets kept out of errors and `Debug`.

use std::{sync::Arc, time::Duration};

use eventer_core::{
    Event, Outcome, SharedEvent, Sink,
    testing::{assert_sink_conformance, sample_events},
    uri::ComponentUri,
};
use eventer_fake_dingtalk::{Failure, FakeDingTalk};
use eventer_sink_dingtalk::{ChatConfig, DingTalkConfig, DingTalkSink};

const SECRET: &str = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";

fn sink(uri: &str) -> DingTalkSink {
    let uri: ComponentUri = uri.parse().unwrap();
    DingTalkSink::new(DingTalkConfig::from_options(uri.target(), &mut uri.options()).unwrap()).unwrap()
}

fn pod(i: usize, count: u32) -> SharedEvent {
    Arc::new(
        Event::builder()
            .meta("prod", &format!("pod-{i:03}.17b2c3d4e5f6a7b8"), &format!("uid-{i}"))
            .kind("Pod")
            .object("prod", &format!("pod-{i:03}"))
            .reason("BackOff")
            .message("Back-off restarting failed container")
            .warning()
            .count(count)
            .build(),
    )
}

fn delivered(outcomes: &[Outcome]) -> usize {
    outcomes.iter().filter(|o| matches!(o, Outcome::Delivered)).count()
}

fn error_of(outcome: &Outcome) -> &eventer_core::Error {
    match outcome {
        Outcome::Retry(e) | Outcome::Rejected(e) => e,
        Outcome::Delivered | Outcome::Defer(_) => panic!("expected a failure"),
    }
}

#[tokio::test]
async fn signed_messages_pass_the_conformance_check() {
    let robot = FakeDingTalk::builder().token("t0k").secret(SECRET).start().await;
    let mut sink = sink(&format!("{}&group_interval=0s", robot.sink_uri()));
    let outcomes = assert_sink_conformance(&mut sink, sample_events()).await;
    assert_eq!(delivered(&outcomes), 4);
    let messages = robot.messages();
    assert_eq!(messages.len(), 4);
    assert!(messages[0].text.contains("Reason:BackOff"), "{}", messages[0].text);
    assert_eq!(robot.errcode_count(310000), 0);
}

#[tokio::test]
async fn configuration_errcodes_reject_loudly_and_name_the_cause() {
    // A wrong secret and a wrong token, answered by the fake's own checks.
    let robot = FakeDingTalk::builder().token("t0k").secret(SECRET).start().await;
    let mut wrong_sign = sink(&format!("dingtalk:{}?access_token=t0k&sign=SECwrong", robot.url()));
    let outcomes = wrong_sign.send(&[pod(1, 1), pod(2, 1)]).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Rejected(_))), "{outcomes:?}");
    let message = error_of(&outcomes[0]).to_string();
    assert!(
        message.contains("sign not match (errcode 310000)") && message.contains("check the sign secret"),
        "{message}"
    );
    // Stopped at the first refusal: one request for the two alerts.
    assert_eq!(robot.attempts().len(), 1);

    let mut wrong_token = sink(&format!("dingtalk:{}?access_token=nope&sign={SECRET}", robot.url()));
    let outcomes = wrong_token.send(&[pod(1, 1)]).await;
    assert!(error_of(&outcomes[0]).to_string().contains("token is not exist (errcode 300001); check access_token"));
    assert!(matches!(outcomes[0], Outcome::Rejected(_)));

    let mut good = sink(&format!("{}&group_interval=0s", robot.sink_uri()));
    robot.fail_next(1, Failure::Errcode(300005, "token is not exist".into()));
    assert!(matches!(good.send(&[pod(3, 1)]).await[0], Outcome::Rejected(_)));
    assert!(robot.messages().is_empty());
}

#[tokio::test]
async fn keyword_refusal_rejects_only_that_message() {
    let robot = FakeDingTalk::builder().token("t0k").keyword("pod-001").start().await;
    let mut sink = sink(&format!("{}&group_interval=0s", robot.sink_uri()));
    let outcomes = sink.send(&[pod(0, 1), pod(1, 1), pod(2, 1)]).await;
    assert!(matches!(outcomes[0], Outcome::Rejected(_)));
    assert!(matches!(outcomes[1], Outcome::Delivered));
    assert!(matches!(outcomes[2], Outcome::Rejected(_)));
    assert_eq!(robot.messages().len(), 1);
}

#[tokio::test]
async fn throttling_pauses_the_robot_for_ten_minutes() {
    let robot = FakeDingTalk::builder().token("t0k").start().await;
    let mut sink = sink(&format!("{}&group_interval=0s", robot.sink_uri()));
    robot.fail_next(1, Failure::Errcode(130101, "send too fast, exceed 20 times per minute".into()));
    let outcomes = sink.send(&[pod(1, 1), pod(2, 1)]).await;
    for outcome in &outcomes {
        let Outcome::Retry(err) = outcome else { panic!("{outcome:?}") };
        assert!(err.retry_after().unwrap() > Duration::from_secs(590), "{err:?}");
    }
    // While paused nothing is sent at all.
    let outcomes = sink.send(&[pod(3, 1)]).await;
    let Outcome::Defer(wait) = outcomes[0] else { panic!("{outcomes:?}") };
    assert!(wait > Duration::from_secs(590), "{wait:?}");
    assert_eq!(robot.attempts().len(), 1);
}

#[tokio::test]
async fn too_long_messages_are_split_and_resent() {
    // The fake is stricter than the sink's limit, as if DingTalk counted differently.
    let robot = FakeDingTalk::builder().token("t0k").max_bytes(3000).start().await;
    let mut sink = sink(&format!("{}&group_interval=0s", robot.sink_uri()));
    let batch: Vec<SharedEvent> = (0..60).map(|i| pod(i, 1)).collect();
    let outcomes = sink.send(&batch).await;
    assert_eq!(delivered(&outcomes), 60, "{outcomes:?}");
    assert!(robot.errcode_count(460101) >= 1);
    let texts: Vec<String> = robot.messages().into_iter().map(|m| m.text).collect();
    for i in 0..60 {
        assert_eq!(texts.iter().filter(|t| t.contains(&format!("pod-{i:03} "))).count(), 1, "pod-{i:03}");
    }
}

#[tokio::test]
async fn transient_failures_retry_and_nothing_delivered_is_repeated() {
    let robot = FakeDingTalk::builder().token("t0k").start().await;
    let mut sink = sink(&format!("{}&group_interval=0s", robot.sink_uri()));
    // The first alert goes through, then the robot fails: the rest are retried.
    robot.fail_next(1, Failure::Pass);
    robot.fail_next(1, Failure::Status(503));
    let batch = [pod(0, 1), pod(1, 1), pod(2, 1)];
    let outcomes = sink.send(&batch).await;
    assert!(matches!(outcomes[0], Outcome::Delivered));
    for outcome in &outcomes[1..] {
        let Outcome::Retry(err) = outcome else { panic!("{outcome:?}") };
        assert_eq!(err.to_string(), "dingtalk robot answered HTTP 503");
        assert_eq!(err.retry_after(), None);
    }
    for failure in [Failure::NotJson, Failure::Status(302), Failure::Errcode(90030, "webhook over limit".into())] {
        robot.fail_next(1, failure.clone());
        let outcomes = sink.send(&batch[1..]).await;
        assert!(outcomes.iter().all(|o| matches!(o, Outcome::Retry(_))), "{failure:?}: {outcomes:?}");
    }
    assert_eq!(delivered(&sink.send(&batch[1..]).await), 2);
    let texts: Vec<String> = robot.messages().into_iter().map(|m| m.text).collect();
    assert_eq!(texts.len(), 3);
    for i in 0..3 {
        assert_eq!(texts.iter().filter(|t| t.contains(&format!("pod-{i:03}"))).count(), 1);
    }
}

#[tokio::test]
async fn repeats_are_quiet_until_the_repeat_interval_then_show_the_new_count() {
    let robot = FakeDingTalk::builder().token("t0k").start().await;
    let mut sink = sink(&format!("{}&group_interval=0s&repeat_interval=400ms", robot.sink_uri()));
    assert_eq!(delivered(&sink.send(&[pod(7, 1)]).await), 1);
    let first = robot.messages()[0].received;
    for count in 2..=5 {
        assert_eq!(delivered(&sink.send(&[pod(7, count)]).await), 1);
    }
    assert_eq!(robot.messages().len(), 1);
    // Another object is not a repeat.
    sink.send(&[pod(8, 1)]).await;
    assert_eq!(robot.messages().len(), 2);
    // The sink starts the interval when the reply arrives, a little after the robot saw it.
    tokio::time::sleep(Duration::from_millis(450).saturating_sub(first.elapsed())).await;
    sink.send(&[pod(7, 6)]).await;
    let messages = robot.messages();
    assert_eq!(messages.len(), 3);
    assert!(messages[2].text.contains("pod-007") && messages[2].text.contains("Count:6 \n"), "{}", messages[2].text);
}

#[tokio::test]
async fn over_budget_alerts_wait_then_go_as_one_digest() {
    let robot = FakeDingTalk::builder().token("t0k").rate_limit(4, Duration::from_secs(1)).start().await;
    let mut sink = sink(&format!("{}&group_interval=0s&budget=3&budget_window=1s", robot.sink_uri()));
    for i in 0..3 {
        assert_eq!(delivered(&sink.send(&[pod(i, 1)]).await), 1);
    }
    let held = sink.send(&[pod(3, 1)]).await;
    let Outcome::Defer(wait) = held[0] else { panic!("{held:?}") };
    assert!(wait > Duration::ZERO && wait <= Duration::from_millis(1010), "{wait:?}");
    assert_eq!(robot.attempts().len(), 3);
    tokio::time::sleep(wait).await;
    let batch: Vec<SharedEvent> = (3..13).map(|i| pod(i, 1)).collect();
    assert_eq!(delivered(&sink.send(&batch).await), 10);
    let messages = robot.messages();
    assert_eq!(messages.len(), 4);
    assert!(messages[3].text.contains("10 Kubernetes events"), "{}", messages[3].text);
    assert_eq!(robot.errcode_count(130101), 0);
}

#[tokio::test]
async fn secrets_stay_out_of_errors_and_debug() {
    let token = "tok-SECRET-123";
    let secret = "SECsecret-456";
    // A port nobody listens on: the transport error would embed the URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let uri =
        format!("dingtalk:http://127.0.0.1:{port}/robot/send?access_token={token}&sign={secret}&group_interval=0s");
    let mut sink = sink(&uri);
    let outcomes = sink.send(&[pod(1, 1)]).await;
    let Outcome::Retry(err) = &outcomes[0] else { panic!("{outcomes:?}") };
    let shown = [err.chain(), format!("{err:?}"), format!("{sink:?}"), format!("{outcomes:?}")];
    for text in &shown {
        assert!(!text.contains(token) && !text.contains(secret), "{text}");
    }
    assert!(err.chain().starts_with("cannot reach the dingtalk robot: "), "{}", err.chain());

    let parsed: ComponentUri = format!("{uri}&msg_type=card").parse().unwrap();
    let config_err = DingTalkConfig::from_options(parsed.target(), &mut parsed.options()).unwrap_err();
    assert!(!format!("{config_err:?}").contains(token));
    assert!(!format!("{parsed:?}").contains(token) && !parsed.to_string().contains(secret));
}
