//! End to end through `eventer_core::Pipeline`, the registry and the fake robot with
//! DingTalk's real limits (20 messages a minute, then blocked).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use eventer_core::{
    Event, Level, Pipeline, PipelineConfig, Registry, Report, Source, SourceItem, pipeline::Backoff, testing::VecSource,
};
use eventer_fake_dingtalk::{Failure, FakeDingTalk};

const SECRET: &str = "SECtest";

async fn run(source: Box<dyn Source>, uri: &str) -> Report {
    let mut registry = Registry::new();
    eventer_sink_dingtalk::register(&mut registry);
    let built = registry.build_sink(&uri.parse().unwrap(), &Default::default()).unwrap();
    let mut config = PipelineConfig::default();
    config.backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(200));
    let report = Pipeline::new(source).route(built.into_route().unwrap()).config(config).run(std::future::pending());
    tokio::time::timeout(Duration::from_secs(60), report).await.expect("pipeline finishes").unwrap()
}

fn event(i: usize, level: Level) -> Event {
    let t = "2024-01-01T00:00:00Z".parse().unwrap();
    Event::builder()
        .meta("prod", &format!("pod-{i:03}.17b2c3d4e5f6a7b8"), &format!("uid-{i}"))
        .kind("Pod")
        .object("prod", &format!("pod-{i:03}"))
        .reason(if level == Level::Warning { "BackOff" } else { "Pulled" })
        .message("Back-off restarting failed container")
        .level(level)
        .count(1)
        .at(t, t)
        .build()
}

/// Each of `names` appears in exactly one accepted message.
fn listed_once(robot: &FakeDingTalk, names: impl IntoIterator<Item = String>) {
    let texts: Vec<String> = robot.messages().into_iter().map(|m| m.text).collect();
    for name in names {
        let hits = texts.iter().filter(|t| t.contains(&name)).count();
        assert_eq!(hits, 1, "{name} is in {hits} messages");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_arrive_within_a_second_and_normals_do_not() {
    let robot = FakeDingTalk::builder().token("t0k").secret(SECRET).start().await;
    let events: Vec<Event> =
        (0..40).map(|i| event(i, if i % 2 == 0 { Level::Warning } else { Level::Normal })).collect();
    let started = Instant::now();
    let report = run(Box::new(VecSource::new(events)), &robot.sink_uri()).await;
    assert_eq!((report.sinks[0].delivered, report.sinks[0].failed), (20, 0));
    let messages = robot.messages();
    let first = messages.first().expect("a message").received.duration_since(started);
    assert!(first < Duration::from_millis(1500), "first message after {first:?}");
    listed_once(&robot, (0..40).step_by(2).map(|i| format!("pod-{i:03}")));
    assert!(messages.iter().all(|m| !m.text.contains("Pulled") && !m.text.contains("Normal")));
    assert_eq!(robot.attempts().iter().filter(|a| a.errcode != Some(0)).count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_200_warnings_is_listed_in_full_without_throttling() {
    let robot = FakeDingTalk::builder().token("t0k").secret(SECRET).start().await;
    let events: Vec<Event> = (0..200).map(|i| event(i, Level::Warning)).collect();
    let report = run(Box::new(VecSource::new(events)), &robot.sink_uri()).await;
    assert_eq!(report.sinks[0].delivered, 200);
    listed_once(&robot, (0..200).map(|i| format!("prod/pod-{i:03} ")));
    assert!(robot.messages().len() <= 5, "{} messages", robot.messages().len());
    assert_eq!(robot.errcode_count(130101), 0);
}

/// Yields its events `gap` apart, like a watch.
struct Paced {
    events: std::vec::IntoIter<Event>,
    gap: Duration,
}

#[async_trait]
impl Source for Paced {
    async fn next(&mut self) -> eventer_core::Result<Option<SourceItem>> {
        tokio::time::sleep(self.gap).await;
        Ok(self.events.next().map(SourceItem::event))
    }
}

fn paced(events: Vec<Event>, gap: Duration) -> Box<dyn Source> {
    Box::new(Paced { events: events.into_iter(), gap })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_updates_of_one_event_cost_at_most_three_messages() {
    let robot = FakeDingTalk::builder().token("t0k").start().await;
    let updates: Vec<Event> = (1..=30)
        .map(|n| {
            let mut ev = event(7, Level::Warning);
            ev.count = n;
            ev.resource_version = n.to_string().into();
            ev
        })
        .collect();
    // Updates 100 ms apart for 3 s, re-notifying at most once a second.
    let uri = format!("{}&repeat_interval=1s", robot.sink_uri());
    let report = run(paced(updates.clone(), Duration::from_millis(100)), &uri).await;
    assert_eq!(report.sinks[0].delivered, 30);
    let messages = robot.messages();
    assert!((2..=3).contains(&messages.len()), "{} messages", messages.len());
    let counts: Vec<u32> = messages
        .iter()
        .map(|m| m.text.split("Count:").nth(1).map_or(1, |c| c.split_whitespace().next().unwrap().parse().unwrap()))
        .collect();
    assert!(counts.windows(2).all(|w| w[0] < w[1]), "counts {counts:?}");

    // With the default repeat_interval (1h) a burst is one message with the final count.
    let robot = FakeDingTalk::builder().token("t0k").start().await;
    run(Box::new(VecSource::new(updates)), &robot.sink_uri()).await;
    let messages = robot.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].text.contains("Count:30 \n"), "{}", messages[0].text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_over_budget_becomes_digests_and_never_trips_the_limit() {
    // The robot's real rules in a 3-second minute: 20 per window, then blocked.
    let robot = FakeDingTalk::builder()
        .token("t0k")
        .rate_limit(20, Duration::from_secs(3))
        .block(Duration::from_secs(30))
        .start()
        .await;
    let events: Vec<Event> = (0..120).map(|i| event(i, Level::Warning)).collect();
    let uri = format!("{}&group_wait=20ms&group_interval=0s&budget_window=3s", robot.sink_uri());
    let report = run(paced(events, Duration::from_millis(25)), &uri).await;
    assert_eq!(report.sinks[0].delivered, 120);
    assert_eq!(robot.errcode_count(130101), 0);
    listed_once(&robot, (0..120).map(|i| format!("pod-{i:03}")));
    let digests = robot.messages().iter().filter(|m| m.text.contains("Kubernetes events")).count();
    assert!(digests >= 1, "over budget, alerts must be combined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing() {
    let robot = FakeDingTalk::builder().token("t0k").secret(SECRET).start().await;
    robot.fail_next(6, Failure::Status(503));
    robot.fail_next(2, Failure::NotJson);
    let events: Vec<Event> = (0..12).map(|i| event(i, Level::Warning)).collect();
    let report = run(paced(events, Duration::from_millis(30)), &format!("{}&group_wait=50ms", robot.sink_uri())).await;
    assert_eq!((report.sinks[0].delivered, report.sinks[0].failed), (12, 0));
    assert!(report.sinks[0].retried > 0);
    assert!(robot.attempts().iter().filter(|a| a.status == 503).count() == 6);
    listed_once(&robot, (0..12).map(|i| format!("pod-{i:03}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_refusals_are_counted_in_metrics() {
    let robot = FakeDingTalk::builder().token("t0k").secret(SECRET).start().await;
    // The second request is refused as misconfigured (310000), the third's content (keyword).
    robot.fail_next(1, Failure::Pass);
    robot.fail_next(1, Failure::Errcode(310_000, "sign not match".into()));
    robot.fail_next(1, Failure::Errcode(310_000, "keywords not in content".into()));
    let telemetry = eventer_core::Telemetry::default();
    let mut registry = Registry::new();
    eventer_sink_dingtalk::register(&mut registry);
    let cx = eventer_core::BuildContext::default().with_telemetry(&telemetry);
    let uri = format!("{}&group_wait=10ms&group_interval=10ms", robot.sink_uri());
    let built = registry.build_sink(&uri.parse().unwrap(), &cx).unwrap();
    // One event per batch: each is one message.
    let report = Pipeline::new(paced((0..4).map(|i| event(i, Level::Warning)).collect(), Duration::from_millis(300)))
        .route(built.into_route().unwrap())
        .telemetry(&telemetry)
        .run(std::future::pending());
    let report = tokio::time::timeout(Duration::from_secs(30), report).await.unwrap().unwrap();
    assert_eq!((report.sinks[0].delivered, report.sinks[0].failed), (2, 2));
    let text = telemetry.metrics.encode();
    for line in [
        "eventer_dingtalk_messages_sent_total{sink=\"dingtalk\"} 2",
        "eventer_dingtalk_errors_total{sink=\"dingtalk\",errcode=\"config\"} 1",
        "eventer_dingtalk_errors_total{sink=\"dingtalk\",errcode=\"content\"} 1",
        "eventer_dingtalk_errors_total{sink=\"dingtalk\",errcode=\"130101\"} 0",
        "eventer_dingtalk_budget_messages{sink=\"dingtalk\"} 18",
        "eventer_sink_events_failed_total{sink=\"dingtalk\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains("t0k") && !text.contains(SECRET), "no secrets in metrics");
    assert_eq!(
        telemetry.health.report(),
        [("sink/dingtalk".to_owned(), eventer_core::telemetry::Check::Ready)],
        "delivered after the refusal: ready again"
    );
}
