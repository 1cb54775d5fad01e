//! The scenarios every chat sink passes: `eventer` watching the fake apiserver, sending to
//! the sink's fake service. A sink's test file implements [`Chat`] for its fake (how its
//! messages read, what its limits are) and calls each scenario with its URI.

use std::{
    future::Future,
    ops::Range,
    time::{Duration, Instant},
};

use eventer_fake_apiserver::{FakeApiServer, NewEvent};

use super::{Eventer, PATIENCE};

/// The `repeat_interval` of [`thirty_updates_cost_at_most_three_messages`].
const REPEAT_INTERVAL: Duration = Duration::from_secs(2);

/// A fake chat service, as the scenarios see it.
pub(crate) trait Chat: Sized {
    /// How long the burst of 200 may take to arrive (the service's budget may need more
    /// than one window).
    const BURST_PATIENCE: Duration = PATIENCE;

    /// The text of every accepted message, as the service shows it, in order.
    fn texts(&self) -> Vec<String>;
    /// When the first accepted message arrived.
    fn first_received(&self) -> Instant;
    /// How many requests were answered with HTTP `status`.
    fn status_count(&self, status: u16) -> usize;
    /// Whether the service accepted every request.
    fn all_accepted(&self) -> bool;
    /// Answer 503 to every request for `duration`.
    fn fail_with_503_for(&self, duration: Duration);
    /// Every request the service saw, for failure messages.
    fn seen(&self) -> String;
    /// Assert that no request was refused for going too fast, and the traffic kept within
    /// the service's rate limits.
    fn assert_within_limits(&self);
    /// Wait up to `timeout` for `condition`.
    fn wait_for(&self, timeout: Duration, condition: impl Fn(&Self) -> bool) -> impl Future<Output = bool>;

    /// Whether `text` shows the alert with `reason` (as a field or a digest line).
    fn shows_reason(text: &str, reason: &str) -> bool {
        text.contains(reason)
    }
    /// Whether `text` lists the Pod `shop/<object>` with `reason` and `message`.
    fn lists(text: &str, object: &str, reason: &str, message: &str) -> bool;
    /// Whether `text` is a single-alert message about BackOff showing the count `n`.
    fn shows_count(text: &str, n: u32) -> bool;

    /// Accepted messages naming `object`.
    fn naming(&self, object: &str) -> usize {
        self.texts().iter().filter(|t| t.contains(object)).count()
    }
}

/// `uri` with one more query option.
pub(crate) fn with(uri: &str, option: &str) -> String {
    format!("{uri}{}{option}", if uri.contains('?') { '&' } else { '?' })
}

/// `eventer` watching `api`, sending to `sink_uri`.
pub(crate) async fn start(api: &FakeApiServer, sink_uri: &str) -> Eventer {
    let source = format!("kubernetes:{}?inClusterConfig=false", api.url());
    let eventer = Eventer::spawn(&source, &[&format!("--sink={sink_uri}")]);
    tokio::time::timeout(PATIENCE, api.wait_for_watchers(1)).await.expect("eventer watches");
    eventer
}

/// Wait up to `timeout` for `condition`; on time-out, fail showing what the service saw
/// and eventer's logs.
pub(crate) async fn expect<C: Chat>(
    eventer: &mut Eventer,
    chat: &C,
    timeout: Duration,
    what: &str,
    condition: impl Fn(&C) -> bool,
) {
    if !chat.wait_for(timeout, condition).await {
        panic!("timed out waiting for {what}; the service saw {}\n{}", chat.seen(), eventer.log().await);
    }
}

/// Scenario: 20 Warnings among 20 Normal events → all 20 Warnings, no Normal, the first
/// within about a second, within the service's limits.
pub(crate) async fn warnings_arrive_fast_and_alone<C: Chat>(chat: &C, uri: &str) {
    let api = FakeApiServer::start().await.unwrap();
    let mut eventer = start(&api, uri).await;
    let started = Instant::now();
    for i in 0..20 {
        api.create_event(NewEvent::new("shop", &format!("web-{i:02}")).reason(&format!("Crash{i:02}")).warning());
        api.create_event(NewEvent::new("shop", &format!("web-{i:02}")).reason(&format!("Pulled{i:02}")));
    }
    let all_listed = |c: &C| {
        let text = c.texts().concat();
        (0..20).all(|i| C::shows_reason(&text, &format!("Crash{i:02}")))
    };
    expect(&mut eventer, chat, PATIENCE, "all 20 Warnings", all_listed).await;
    let first = chat.first_received();
    assert!(first.duration_since(started) < Duration::from_millis(1500), "first alert after {:?}", first - started);
    let text = chat.texts().concat();
    assert!(!text.contains("Pulled"), "Normal events must not be sent:\n{text}");
    eventer.stop().await;
    chat.assert_within_limits();
}

/// Scenario: 200 Warnings created within one second → every Warning listed once, with its
/// message, every request accepted, within the service's limits.
pub(crate) async fn a_burst_of_200_is_listed_in_full_within_the_limits<C: Chat>(chat: &C, uri: &str) {
    let api = FakeApiServer::start().await.unwrap();
    let mut eventer = start(&api, uri).await;
    let message = |i: usize| format!("Back-off restarting failed container app in pod web-{i:03}");
    let started = Instant::now();
    for i in 0..200 {
        let ev = NewEvent::new("shop", &format!("web-{i:03}")).reason("BackOff").message(&message(i)).warning();
        api.create_event(ev);
    }
    assert!(started.elapsed() < Duration::from_secs(1), "creating took {:?}", started.elapsed());
    let all_named = |c: &C| (0..200).all(|i| c.naming(&format!("web-{i:03}")) > 0);
    expect(&mut eventer, chat, C::BURST_PATIENCE, "all 200 Warnings", all_named).await;
    eventer.stop().await;
    let texts = chat.texts();
    for i in 0..200 {
        let object = format!("web-{i:03}");
        let holding: Vec<&String> = texts.iter().filter(|t| t.contains(&object)).collect();
        assert_eq!(holding.len(), 1, "{object} is in {} messages", holding.len());
        assert!(C::lists(holding[0], &object, "BackOff", &message(i)), "{object} not listed in:\n{}", holding[0]);
    }
    assert!(chat.all_accepted(), "{}", chat.seen());
    chat.assert_within_limits();
}

/// Scenario: one BackOff Event updated 30 times (count + 1 each, as the kubelet does) →
/// at most 3 messages, each showing the count reached. Updates come in three bursts: the
/// first is one message; the second, within `repeat_interval` of it, is quiet; the third,
/// after `repeat_interval`, is one message with the final count. Returns the messages.
pub(crate) async fn thirty_updates_cost_at_most_three_messages<C: Chat>(chat: &C, uri: &str) -> Vec<String> {
    let api = FakeApiServer::start().await.unwrap();
    let mut eventer = start(&api, &with(uri, &format!("repeat_interval={}s", REPEAT_INTERVAL.as_secs()))).await;
    let created = api.create_event(NewEvent::new("shop", "payment-0").reason("BackOff").warning());
    let update = |n: usize| {
        for _ in 0..n {
            api.update_event(&created.namespace, &created.name).expect("the event exists");
        }
    };
    update(9);
    expect(&mut eventer, chat, PATIENCE, "the first notification", |c| !c.texts().is_empty()).await;
    let first = chat.texts().remove(0);
    assert!(C::shows_count(&first, 10), "{first}");
    update(10);
    // The second burst reaches the sink a group_wait later, well inside repeat_interval;
    // the third must come after it has passed.
    tokio::time::sleep(REPEAT_INTERVAL.saturating_sub(chat.first_received().elapsed())).await;
    update(11);
    expect(&mut eventer, chat, PATIENCE, "a second notification", |c| c.texts().len() >= 2).await;
    eventer.stop().await;
    let texts = chat.texts();
    assert!(texts.len() <= 3, "{texts:?}");
    let last = texts.last().unwrap();
    assert!(C::shows_count(last, 31), "{last}");
    texts
}

/// Scenario: the service answers 503 for a while, then recovers → every Warning, from
/// before, during and after the outage, arrives exactly once, within the limits.
pub(crate) async fn an_outage_loses_nothing_and_repeats_nothing<C: Chat>(chat: &C, uri: &str) {
    let api = FakeApiServer::start().await.unwrap();
    let mut eventer = start(&api, uri).await;
    let warn = |range: Range<usize>| {
        for i in range {
            api.create_event(NewEvent::new("shop", &format!("web-{i:02}")).reason(&format!("Crash{i:02}")).warning());
        }
    };
    let all = |n: usize| move |c: &C| (0..n).all(|i| c.naming(&format!("web-{i:02}")) > 0);
    warn(0..5);
    expect(&mut eventer, chat, PATIENCE, "the Warnings before the outage", all(5)).await;
    let before = chat.texts().len();
    // Long enough for several tries: they come group_interval (2 s) apart or more.
    chat.fail_with_503_for(Duration::from_secs(6));
    warn(5..10);
    expect(&mut eventer, chat, PATIENCE, "a request failing", |c| c.status_count(503) > 0).await;
    warn(10..15);
    expect(&mut eventer, chat, PATIENCE, "delivery after the outage", |c| c.texts().len() > before).await;
    warn(15..20);
    expect(&mut eventer, chat, PATIENCE, "all 20 Warnings", all(20)).await;
    eventer.stop().await;
    for i in 0..20 {
        let object = format!("web-{i:02}");
        assert_eq!(chat.naming(&object), 1, "{object}: {:?}", chat.texts());
    }
    let failed = chat.status_count(503);
    assert!(failed >= 2, "the outage was retried through: {failed} failures");
    chat.assert_within_limits();
}
