//! The `chat:` sink through the alert engine, against a fake chat webhook that enforces a
//! rate limit the way chat robots do: over the limit, HTTP 429 and nothing accepted.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::post};
use eventer_alert::{AlertConfig, AlertSink, Zone};
use eventer_core::{
    Event, Level, Outcome, Pipeline, PipelineConfig, Registry, Report, SharedEvent, Sink, Source, SourceItem,
    pipeline::Backoff,
    testing::{VecSource, assert_sink_conformance, sample_events},
};
use eventer_examples::chat::{ChatSink, ChatWebhook};

/// A chat webhook accepting at most `limit` messages per rolling `window`.
#[derive(Clone)]
struct FakeChat {
    inner: Arc<Mutex<Inner>>,
    url: String,
}

struct Inner {
    limit: usize,
    window: Duration,
    accepted: Vec<(Instant, String)>,
    too_fast: usize,
}

impl FakeChat {
    async fn start(limit: usize, window: Duration) -> FakeChat {
        let inner = Arc::new(Mutex::new(Inner { limit, window, accepted: Vec::new(), too_fast: 0 }));
        let app = Router::new().route("/hook", post(hook)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeChat { inner, url }
    }

    fn texts(&self) -> Vec<String> {
        self.inner.lock().unwrap().accepted.iter().map(|(_, t)| t.clone()).collect()
    }

    fn too_fast(&self) -> usize {
        self.inner.lock().unwrap().too_fast
    }
}

async fn hook(State(inner): State<Arc<Mutex<Inner>>>, Json(body): Json<serde_json::Value>) -> impl IntoResponse {
    let mut inner = inner.lock().unwrap();
    let now = Instant::now();
    let window = inner.window;
    let recent = inner.accepted.iter().filter(|(t, _)| now.duration_since(*t) < window).count();
    if recent >= inner.limit {
        inner.too_fast += 1;
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "60")]).into_response();
    }
    let Some(text) = body["text"].as_str() else { return StatusCode::BAD_REQUEST.into_response() };
    inner.accepted.push((now, text.to_owned()));
    StatusCode::OK.into_response()
}

fn event(i: usize) -> Event {
    let t = "2024-01-01T00:00:00Z".parse().unwrap();
    Event::builder()
        .meta("prod", &format!("pod-{i:03}.17b2c3d4e5f6a7b8"), &format!("uid-{i}"))
        .kind("Pod")
        .object("prod", &format!("pod-{i:03}"))
        .reason("BackOff")
        .message("Back-off restarting failed container")
        .level(Level::Warning)
        .count(1)
        .at(t, t)
        .build()
}

/// Yields its events `gap` apart, like a watch.
struct Paced {
    events: std::vec::IntoIter<Event>,
    gap: Duration,
}

#[async_trait::async_trait]
impl Source for Paced {
    async fn next(&mut self) -> eventer_core::Result<Option<SourceItem>> {
        tokio::time::sleep(self.gap).await;
        Ok(self.events.next().map(SourceItem::event))
    }
}

async fn run(source: Box<dyn Source>, uri: &str) -> Report {
    let mut registry = Registry::new();
    eventer_examples::chat::register(&mut registry);
    let built = registry.build_sink(&uri.parse().unwrap(), &Default::default()).unwrap();
    let mut config = PipelineConfig::default();
    config.backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(200));
    let report = Pipeline::new(source).route(built.into_route().unwrap()).config(config).run(std::future::pending());
    tokio::time::timeout(Duration::from_secs(60), report).await.expect("pipeline finishes").unwrap()
}

/// Each of `names` appears in exactly one accepted message.
fn listed_once(chat: &FakeChat, names: impl IntoIterator<Item = String>) {
    let texts = chat.texts();
    for name in names {
        let hits = texts.iter().filter(|t| t.contains(&name)).count();
        assert_eq!(hits, 1, "{name} is in {hits} messages");
    }
}

fn sink(chat: &FakeChat, config: AlertConfig) -> ChatSink {
    let webhook =
        ChatWebhook::new(&chat.url, vec!["prod".into()], Zone::new(Some("UTC")).unwrap(), 4000, Duration::from_secs(5));
    AlertSink::new(webhook.unwrap(), config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_200_warnings_is_listed_in_full_without_tripping_the_limit() {
    let chat = FakeChat::start(20, Duration::from_secs(60)).await;
    let events: Vec<Event> = (0..200).map(event).collect();
    let report = run(Box::new(VecSource::new(events)), &format!("chat:{}?label=prod", chat.url)).await;
    assert_eq!((report.sinks[0].delivered, report.sinks[0].failed), (200, 0));
    listed_once(&chat, (0..200).map(|i| format!("prod/pod-{i:03} ")));
    let texts = chat.texts();
    assert!(texts.len() <= 10, "{} messages", texts.len());
    assert!(texts.iter().all(|t| t.starts_with("prod\n") && t.contains("of 200 (times in")), "{texts:?}");
    assert_eq!(chat.too_fast(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_over_budget_becomes_digests_and_never_trips_the_limit() {
    // The limit in a 3-second minute.
    let chat = FakeChat::start(20, Duration::from_secs(3)).await;
    let events: Vec<Event> = (0..120).map(event).collect();
    let uri = format!("chat:{}?group_wait=20ms&group_interval=0s&budget_window=3s", chat.url);
    let report = run(Box::new(Paced { events: events.into_iter(), gap: Duration::from_millis(25) }), &uri).await;
    assert_eq!(report.sinks[0].delivered, 120);
    assert_eq!(chat.too_fast(), 0);
    listed_once(&chat, (0..120).map(|i| format!("pod-{i:03} ")));
    assert!(chat.texts().iter().any(|t| t.contains("Kubernetes events")), "over budget, alerts must be combined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_updates_of_one_event_collapse_with_their_counts() {
    let chat = FakeChat::start(20, Duration::from_secs(60)).await;
    let updates: Vec<Event> = (1..=30)
        .map(|n| {
            let mut ev = event(7);
            ev.count = n;
            ev.resource_version = n.to_string().into();
            ev
        })
        .collect();
    // Updates 100 ms apart for 3 s, re-notifying at most once a second.
    let uri = format!("chat:{}?repeat_interval=1s", chat.url);
    let paced = Paced { events: updates.clone().into_iter(), gap: Duration::from_millis(100) };
    let report = run(Box::new(paced), &uri).await;
    assert_eq!(report.sinks[0].delivered, 30);
    let texts = chat.texts();
    assert!((2..=3).contains(&texts.len()), "{texts:?}");
    let counts: Vec<u32> =
        texts.iter().map(|t| t.split("(x").nth(1).unwrap().split(')').next().unwrap().parse().unwrap()).collect();
    assert!(counts.windows(2).all(|w| w[0] < w[1]), "counts {counts:?}");

    // With the default repeat_interval (1h) the burst is one message with the final count.
    let chat = FakeChat::start(20, Duration::from_secs(60)).await;
    run(Box::new(VecSource::new(updates)), &format!("chat:{}", chat.url)).await;
    let texts = chat.texts();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("prod/pod-007 BackOff (x30)"), "{}", texts[0]);
}

#[tokio::test]
async fn passes_the_conformance_check() {
    let chat = FakeChat::start(20, Duration::from_secs(60)).await;
    let config = AlertConfig::default().timing(Duration::from_secs(1), Duration::ZERO, Duration::from_secs(3600));
    let outcomes = assert_sink_conformance(&mut sink(&chat, config), sample_events()).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Delivered)), "{outcomes:?}");
    assert_eq!(chat.texts().len(), 4);
}

#[tokio::test]
async fn a_429_pauses_the_sink_for_the_retry_after() {
    // Someone else spent the limit: our first message is refused as too fast.
    let chat = FakeChat::start(1, Duration::from_secs(60)).await;
    chat.inner.lock().unwrap().accepted.push((Instant::now(), "another sender".into()));
    let config = AlertConfig::default().timing(Duration::from_secs(1), Duration::ZERO, Duration::from_secs(3600));
    let mut sink = sink(&chat, config);
    let batch: Vec<SharedEvent> = (0..2).map(|i| Arc::new(event(i))).collect();
    let outcomes = sink.send(&batch).await;
    for outcome in &outcomes {
        let Outcome::Retry(err) = outcome else { panic!("{outcome:?}") };
        assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
        assert_eq!(err.to_string(), "chat webhook answered HTTP 429");
    }
    // Paused: nothing is sent, the alerts are held.
    let outcomes = sink.send(&batch).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Defer(d) if *d > Duration::from_secs(55))), "{outcomes:?}");
    assert_eq!(chat.too_fast(), 1);
}

#[tokio::test]
async fn unreachable_is_retried_and_the_url_stays_out_of_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/hook/tok-SECRET");
    let webhook = ChatWebhook::new(&url, Vec::new(), Zone::new(None).unwrap(), 4000, Duration::from_secs(2)).unwrap();
    let mut sink = AlertSink::new(webhook, AlertConfig::default()).unwrap();
    let outcomes = sink.send(&[Arc::new(event(1))]).await;
    let Outcome::Retry(err) = &outcomes[0] else { panic!("{outcomes:?}") };
    assert!(err.chain().starts_with("cannot reach the chat webhook"), "{}", err.chain());
    for text in [err.chain(), format!("{sink:?}")] {
        assert!(!text.contains("tok-SECRET"), "{text}");
    }
}
