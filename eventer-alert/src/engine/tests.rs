use std::sync::Mutex;

use eventer_core::{ErrorKind, Level};

use super::*;

/// Renders alerts as their object names and answers from a script (then `Sent`).
#[derive(Debug, Default)]
struct Fake {
    script: Mutex<VecDeque<Answer>>,
    posts: Mutex<Vec<String>>,
}

impl Fake {
    fn answering(answers: impl IntoIterator<Item = Answer>) -> Self {
        Fake { script: Mutex::new(answers.into_iter().collect()), posts: Mutex::default() }
    }
    fn posts(&self) -> Vec<String> {
        self.posts.lock().unwrap().clone()
    }
}

#[async_trait]
impl ChatService for Fake {
    const NAME: &'static str = "fake";

    fn limits(&self) -> Limits {
        Limits::new(400).min_single_bytes(60)
    }
    fn render_one(&self, a: Alert<'_>, max_bytes: usize) -> String {
        crate::truncate(&format!("one {} x{} {}", a.event.involved_object.name, a.count, a.event.message), max_bytes)
    }
    fn digest_line(&self, a: Alert<'_>) -> String {
        format!("{} x{}", a.event.involved_object.name, a.count)
    }
    fn render_digest(&self, d: Digest<'_>) -> String {
        format!("digest {}+{}/{}: {}", d.first, d.lines.len(), d.total, d.lines.join(", "))
    }
    async fn post(&self, body: String) -> Answer {
        self.posts.lock().unwrap().push(body);
        self.script.lock().unwrap().pop_front().unwrap_or(Answer::Sent)
    }
}

fn pod(i: usize, count: u32) -> SharedEvent {
    let ev = Event::builder()
        .kind("Pod")
        .object("prod", &format!("p{i:03}"))
        .reason("BackOff")
        .message("Back-off restarting failed container")
        .level(Level::Warning)
        .count(count)
        .build();
    Arc::new(ev)
}

fn pods(n: usize) -> Vec<SharedEvent> {
    (0..n).map(|i| pod(i, 1)).collect()
}

fn no_interval() -> AlertConfig {
    AlertConfig::default().timing(Duration::from_secs(1), Duration::ZERO, Duration::from_secs(3600))
}

fn sink(fake: Fake, config: AlertConfig) -> AlertSink<Fake> {
    AlertSink::new(fake, config).unwrap()
}

fn key(i: usize) -> Key {
    Key { kind: "Pod".into(), namespace: "ns".into(), name: format!("p{i}").into(), reason: "BackOff".into() }
}

fn failure(kind: ErrorKind) -> Error {
    Error::new(kind, format!("{kind}"))
}

#[test]
fn budget_is_a_rolling_window() {
    let t0 = Instant::now();
    let mut b = Budget::new(2, Duration::from_secs(60));
    assert_eq!(b.free(t0), 2);
    b.record(t0);
    b.record(t0 + Duration::from_secs(10));
    assert_eq!(b.free(t0 + Duration::from_secs(30)), 0);
    assert_eq!(b.next_free(t0 + Duration::from_secs(30)), Duration::from_millis(30_010));
    assert_eq!(b.free(t0 + Duration::from_secs(60)), 1);
    assert_eq!(b.free(t0 + Duration::from_secs(70)), 2);
}

#[test]
fn repeats_expire_and_memory_is_bounded() {
    let t0 = Instant::now();
    let mut r = Repeats::new(Duration::from_secs(60));
    r.record(&key(0), t0);
    assert!(r.suppressed(&key(0), t0 + Duration::from_secs(59)));
    assert!(!r.suppressed(&key(0), t0 + Duration::from_secs(60)));
    assert!(!r.suppressed(&key(1), t0));
    for i in 1..=REPEAT_MEMORY + 10 {
        r.record(&key(i), t0 + Duration::from_millis(i as u64));
    }
    assert!(r.notified.len() <= REPEAT_MEMORY, "{}", r.notified.len());
    // The newest are kept, the oldest forgotten.
    assert!(r.suppressed(&key(REPEAT_MEMORY + 10), t0 + Duration::from_secs(1)));
    assert!(!r.suppressed(&key(1), t0 + Duration::from_secs(1)));
    // Expired entries go first, without touching recent ones.
    let later = t0 + Duration::from_secs(120);
    for i in 0..REPEAT_MEMORY {
        r.record(&key(100_000 + i), later);
    }
    let newest = later + Duration::from_millis(1);
    r.record(&key(0), newest);
    assert!(r.suppressed(&key(0), newest));
    assert!(r.notified.len() <= REPEAT_MEMORY && r.notified.len() >= REPEAT_MEMORY / 2);
    let mut off = Repeats::new(Duration::ZERO);
    off.record(&key(0), t0);
    assert!(!off.suppressed(&key(0), t0));
}

#[test]
fn too_large_messages_split_until_a_floor() {
    let s = sink(Fake::default(), AlertConfig::default());
    let halves = s.split(&Planned { alerts: 4..9, form: Form::Digest }).unwrap();
    assert_eq!(halves.iter().map(|p| p.alerts.clone()).collect::<Vec<_>>(), [4..6, 6..9]);
    let one = s.split(&Planned { alerts: 3..4, form: Form::Digest }).unwrap();
    assert!(one.len() == 1 && matches!(one[0].form, Form::Single(480)) && one[0].alerts == (3..4));
    let half = s.split(&Planned { alerts: 0..1, form: Form::Single(400) }).unwrap();
    assert!(matches!(half[0].form, Form::Single(200)));
    assert!(s.split(&Planned { alerts: 0..1, form: Form::Single(99) }).is_none());
}

#[tokio::test]
async fn few_alerts_go_one_by_one_many_as_digests_listing_all() {
    let mut s = sink(Fake::default(), no_interval());
    assert!(s.send(&pods(3)).await.iter().all(|o| matches!(o, Outcome::Delivered)));
    assert_eq!(
        s.service().posts(),
        [
            "one p000 x1 Back-off restarting failed container",
            "one p001 x1 Back-off restarting failed container",
            "one p002 x1 Back-off restarting failed container"
        ]
    );
    // 15 budget left: 40 alerts go as digests, each under the limit, every alert once.
    let batch: Vec<SharedEvent> = (100..140).map(|i| pod(i, 1)).collect();
    assert!(s.send(&batch).await.iter().all(|o| matches!(o, Outcome::Delivered)));
    let digests = &s.service().posts()[3..];
    assert!(digests.len() > 1 && digests.len() < 10, "{digests:?}");
    assert!(digests[0].starts_with("digest 1+") && digests.iter().all(|d| d.contains("/40: ") && d.len() <= 400));
    for i in 100..140 {
        assert_eq!(digests.iter().filter(|d| d.contains(&format!("p{i:03} x1"))).count(), 1, "p{i:03}");
    }
}

#[tokio::test]
async fn updates_collapse_and_repeats_are_quiet_but_delivered() {
    let mut s = sink(Fake::default(), no_interval());
    let batch = [pod(1, 1), pod(1, 3), pod(1, 2)];
    assert!(s.send(&batch).await.iter().all(|o| matches!(o, Outcome::Delivered)));
    assert_eq!(s.service().posts().len(), 1);
    assert!(s.service().posts()[0].starts_with("one p001 x3"));
    assert!(matches!(s.send(&[pod(1, 9)]).await[0], Outcome::Delivered));
    assert_eq!(s.service().posts().len(), 1, "a repeat within repeat_interval is not sent");
}

#[tokio::test(start_paused = true)]
async fn group_interval_and_budget_defer_instead_of_sleeping() {
    let config = AlertConfig::default()
        .timing(Duration::from_millis(100), Duration::from_secs(2), Duration::ZERO)
        .budget(2, Duration::from_secs(60));
    let mut s = sink(Fake::default(), config);
    assert!(matches!(s.send(&[pod(0, 1)]).await[0], Outcome::Delivered));
    // Within group_interval: held, minus the group_wait the pipeline gathers for.
    let held = s.send(&[pod(1, 1)]).await;
    assert!(matches!(held[0], Outcome::Defer(d) if d == Duration::from_millis(1900)), "{held:?}");
    tokio::time::advance(Duration::from_millis(1950)).await;
    let held = s.send(&[pod(1, 1)]).await;
    assert!(matches!(held[0], Outcome::Defer(d) if d == Duration::from_millis(50)), "{held:?}");
    tokio::time::advance(Duration::from_millis(50)).await;
    assert!(matches!(s.send(&[pod(1, 1)]).await[0], Outcome::Delivered));
    // The budget of 2 is spent: held until the first send leaves the window.
    tokio::time::advance(Duration::from_secs(2)).await;
    let held = s.send(&[pod(2, 1)]).await;
    assert!(matches!(held[0], Outcome::Defer(d) if d == Duration::from_millis(56_010)), "{held:?}");
    assert_eq!(s.service().posts().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn too_fast_pauses_everything_for_the_services_pause() {
    let pause = Duration::from_secs(600);
    let fake = Fake::answering([Answer::Sent, Answer::TooFast { pause, error: failure(ErrorKind::RateLimited) }]);
    let mut s = sink(fake, no_interval());
    let outcomes = s.send(&pods(3)).await;
    assert!(matches!(outcomes[0], Outcome::Delivered));
    for o in &outcomes[1..] {
        let Outcome::Retry(err) = o else { panic!("{o:?}") };
        assert_eq!(err.retry_after(), Some(pause));
    }
    assert_eq!(s.service().posts().len(), 2, "nothing after the answer");
    tokio::time::advance(Duration::from_secs(599)).await;
    let held = s.send(&pods(3)[1..]).await;
    assert!(held.iter().all(|o| matches!(o, Outcome::Defer(d) if *d == Duration::from_secs(1))), "{held:?}");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(s.send(&pods(3)[1..]).await.iter().all(|o| matches!(o, Outcome::Delivered)));
}

#[tokio::test]
async fn content_refusals_reject_one_message_and_failures_stop_the_rest() {
    let fake = Fake::answering([Answer::Content(failure(ErrorKind::Rejected)), Answer::Sent]);
    let mut s = sink(fake, no_interval());
    let outcomes = s.send(&pods(3)).await;
    assert!(matches!(outcomes[0], Outcome::Rejected(_)));
    assert!(matches!(outcomes[1], Outcome::Delivered) && matches!(outcomes[2], Outcome::Delivered));

    let fake = Fake::answering([Answer::Sent, Answer::Failed(failure(ErrorKind::Unavailable))]);
    let mut s = sink(fake, no_interval());
    let outcomes = s.send(&pods(4)).await;
    assert!(matches!(outcomes[0], Outcome::Delivered));
    assert!(outcomes[1..].iter().all(|o| matches!(o, Outcome::Retry(_))), "{outcomes:?}");
    assert_eq!(s.service().posts().len(), 2);

    let mut s = sink(Fake::answering([Answer::Config(failure(ErrorKind::Unauthorized))]), no_interval());
    let outcomes = s.send(&pods(2)).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Rejected(_))), "{outcomes:?}");
    assert_eq!(s.service().posts().len(), 1);
}

#[tokio::test]
async fn too_large_digests_split_and_a_lone_alert_is_cut_then_rejected() {
    let too_large = || Answer::TooLarge(failure(ErrorKind::Rejected));
    // 20 alerts over a budget of 18: digests; the first is refused and sent in halves.
    let mut s = sink(Fake::answering([too_large()]), no_interval());
    assert!(s.send(&pods(20)).await.iter().all(|o| matches!(o, Outcome::Delivered)));
    let posts = s.service().posts();
    for i in 0..20 {
        assert_eq!(posts[1..].iter().filter(|p| p.contains(&format!("p{i:03} "))).count(), 1, "p{i:03}: {posts:?}");
    }
    // One alert: cut to half, then a quarter of the room, then below the floor.
    let mut s = sink(Fake::answering([too_large(), too_large(), too_large()]), no_interval());
    let mut long = (*pod(0, 1)).clone();
    long.message = "x".repeat(1000).into();
    let outcomes = s.send(&[Arc::new(long)]).await;
    assert!(matches!(outcomes[0], Outcome::Rejected(_)), "{outcomes:?}");
    let sizes: Vec<usize> = s.service().posts().iter().map(String::len).collect();
    assert_eq!(sizes, [400, 200, 100]);
}

#[tokio::test]
async fn metrics_are_named_after_the_service() {
    let telemetry = eventer_core::Telemetry::default();
    let metrics = telemetry.metrics.with_label("sink", "f");
    let fake = Fake::answering([
        Answer::Sent,
        Answer::TooFast { pause: Duration::from_secs(1), error: failure(ErrorKind::RateLimited) },
    ]);
    let mut s = sink(fake, no_interval()).with_metrics(&metrics);
    s.send(&pods(2)).await;
    let text = telemetry.metrics.encode();
    for line in [
        "eventer_fake_messages_sent_total{sink=\"f\"} 1",
        "eventer_fake_errors_total{sink=\"f\",errcode=\"too_fast\"} 1",
        "eventer_fake_errors_total{sink=\"f\",errcode=\"content\"} 0",
        "eventer_fake_budget_messages{sink=\"f\"} 18",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}
