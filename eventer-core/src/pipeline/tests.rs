use std::{
    collections::HashMap,
    sync::atomic::{AtomicUsize, Ordering::SeqCst},
};

use async_trait::async_trait;

use super::*;
use crate::{
    ErrorKind, Event,
    checkpoint::CheckpointStore,
    filter::filter_fn,
    sink::{Batching, Sink},
    source::Source,
    testing::{MemorySink, VecSource},
};

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| Event::builder().kind("Pod").object("ns", &format!("pod-{i}")).reason(&format!("R{i}")).build())
        .collect()
}

fn fast_retries() -> PipelineConfig {
    PipelineConfig {
        backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(5)),
        ..PipelineConfig::default()
    }
}

fn retry_err() -> Arc<Error> {
    Arc::new(Error::new(ErrorKind::Unavailable, "flaky"))
}

/// A checkpoint store that records every save, and when it was attempted.
#[derive(Clone, Default)]
struct RecordingStore {
    saved: Arc<Mutex<Vec<Position>>>,
    attempts: Arc<Mutex<Vec<Instant>>>,
    initial: Option<Position>,
    min_interval: Duration,
    /// Saves that fail before the first one succeeds.
    failures: Arc<AtomicUsize>,
}

#[async_trait]
impl CheckpointStore for RecordingStore {
    fn min_interval(&self) -> Duration {
        self.min_interval
    }
    async fn load(&self) -> Result<Option<Position>> {
        Ok(self.initial.clone())
    }
    async fn save(&self, position: &Position) -> Result<()> {
        self.attempts.lock().unwrap().push(Instant::now());
        if self.failures.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(Error::new(ErrorKind::Unavailable, "apiserver unavailable"));
        }
        self.saved.lock().unwrap().push(position.clone());
        Ok(())
    }
}

impl RecordingStore {
    fn last(&self) -> Option<Position> {
        self.saved.lock().unwrap().last().cloned()
    }

    fn attempts(&self) -> Vec<Instant> {
        self.attempts.lock().unwrap().clone()
    }
}

/// One event every `every`, each with its index as the position.
struct Paced {
    every: Duration,
    next: usize,
    count: usize,
}

#[async_trait]
impl Source for Paced {
    async fn next(&mut self) -> Result<Option<SourceItem>> {
        if self.next == self.count {
            return Ok(None);
        }
        tokio::time::sleep(self.every).await;
        let i = self.next;
        self.next += 1;
        let event = Event::builder().kind("Pod").object("ns", &format!("pod-{i}")).reason(&format!("R{i}")).build();
        Ok(Some(SourceItem::Event { event: Arc::new(event), position: Some(Position(format!("{i:05}"))) }))
    }
}

/// A source that counts how many items were pulled from it.
struct CountingSource {
    inner: VecSource,
    pulled: Arc<AtomicUsize>,
}

#[async_trait]
impl Source for CountingSource {
    async fn next(&mut self) -> Result<Option<SourceItem>> {
        let item = self.inner.next().await?;
        if item.is_some() {
            self.pulled.fetch_add(1, SeqCst);
        }
        Ok(item)
    }
}

#[tokio::test]
async fn per_event_outcomes_drive_retries() {
    // R1 fails twice then succeeds; R2 is rejected for good; the rest succeed at once.
    let mut tries: HashMap<String, u32> = HashMap::new();
    let sink = MemorySink::new().scripted(move |e| {
        let n = tries.entry(e.reason.to_string()).or_default();
        *n += 1;
        match (e.reason.as_str(), *n) {
            ("R1", 1 | 2) => Outcome::Retry(retry_err()),
            ("R2", _) => Outcome::Rejected(Arc::new(Error::new(ErrorKind::Rejected, "too large"))),
            _ => Outcome::Delivered,
        }
    });
    let report = Pipeline::new(Box::new(VecSource::new(events(5))))
        .route(Route::new("mem", Box::new(sink.clone())))
        .config(fast_retries())
        .run(std::future::pending())
        .await
        .unwrap();
    let mut got = sink.reasons();
    got.sort();
    assert_eq!(got, ["R0", "R1", "R3", "R4"]);
    assert_eq!(sink.attempts(), 5 + 2, "R1 was sent three times, R2 once");
    let s = &report.sinks[0];
    assert_eq!((s.delivered, s.failed, s.retried, s.dropped), (4, 1, 2, 0));
    assert_eq!(report.unfinished, 0);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    tokio::time::pause();
    let first = Arc::new(Mutex::new(None::<Instant>));
    let second = Arc::new(Mutex::new(None::<Instant>));
    let (f, s) = (first.clone(), second.clone());
    let sink = MemorySink::new().scripted(move |_| {
        let now = Instant::now();
        if f.lock().unwrap().is_none() {
            *f.lock().unwrap() = Some(now);
            Outcome::Retry(Arc::new(
                Error::new(ErrorKind::RateLimited, "slow down").with_retry_after(Duration::from_secs(42)),
            ))
        } else {
            *s.lock().unwrap() = Some(now);
            Outcome::Delivered
        }
    });
    Pipeline::new(Box::new(VecSource::new(events(1))))
        .route(Route::new("mem", Box::new(sink.clone())))
        .run(std::future::pending())
        .await
        .unwrap();
    let waited = second.lock().unwrap().unwrap() - first.lock().unwrap().unwrap();
    assert!(waited >= Duration::from_secs(42) && waited < Duration::from_secs(43), "waited {waited:?}");
}

#[test]
fn backoff_grows_with_jitter_and_caps() {
    let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    for _ in 0..100 {
        let d1 = b.delay(1);
        assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100), "{d1:?}");
        let d3 = b.delay(3);
        assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400), "{d3:?}");
        let d30 = b.delay(30);
        assert!(d30 >= Duration::from_millis(500) && d30 <= Duration::from_secs(1), "{d30:?}");
    }
}

#[tokio::test]
async fn failing_sink_does_not_block_the_others() {
    // "down" fails every attempt (retryable) and its queue holds all 50 events, so the
    // source is never back-pressured and "up" gets everything while "down" keeps failing.
    let down = MemorySink::new().scripted(|_| Outcome::Retry(retry_err()));
    let up = MemorySink::new();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pipeline = Pipeline::new(Box::new(VecSource::new(events(50)).hold_open()))
        .route(
            Route::new("down", Box::new(down.clone())).options(RouteOptions { queue_size: 100, ..Default::default() }),
        )
        .route(Route::new("up", Box::new(up.clone())))
        .config(PipelineConfig { shutdown_timeout: Duration::from_millis(50), ..fast_retries() });
    let run = tokio::spawn(pipeline.run(async {
        stop_rx.await.ok();
    }));
    up.wait_for(50).await;
    down.wait_for_attempts(100).await; // still retrying
    assert!(down.is_empty());
    stop_tx.send(()).unwrap();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.sinks[1].delivered, 50);
    assert_eq!(report.sinks[0].delivered, 0);
    assert_eq!(report.unfinished, 50, "the failing sink's events stay unfinished, not lost");
}

#[tokio::test]
async fn permanently_rejecting_sink_does_not_block_the_others() {
    let bad = MemorySink::new()
        .scripted(|_| Outcome::Rejected(Arc::new(Error::new(ErrorKind::Unauthorized, "sign not match"))));
    let good = MemorySink::new();
    let report = Pipeline::new(Box::new(VecSource::new(events(20))))
        .route(Route::new("bad", Box::new(bad.clone())))
        .route(Route::new("good", Box::new(good.clone())))
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!(good.len(), 20);
    assert_eq!(report.sinks[0].failed, 20);
    assert_eq!(bad.attempts(), 20, "rejections are not retried");
    assert_eq!(report.unfinished, 0);
}

#[tokio::test]
async fn full_queue_back_pressures_the_source() {
    // With time paused, a sleep returns only once every task is blocked: a quiescence probe.
    tokio::time::pause();
    let slow = MemorySink::new().with_batching(Batching::new(4, Duration::ZERO));
    slow.pause();
    let pulled = Arc::new(AtomicUsize::new(0));
    let source = CountingSource { inner: VecSource::new(events(10_000)), pulled: pulled.clone() };
    let pipeline = Pipeline::new(Box::new(source)).route(
        Route::new("slow", Box::new(slow.clone())).options(RouteOptions { queue_size: 8, ..Default::default() }),
    );
    let stats = pipeline.stats();
    let run = tokio::spawn(pipeline.run(std::future::pending()));
    tokio::time::sleep(Duration::from_secs(60)).await;
    // The worker holds one batch (4) in the stalled send, the queue holds 8, and the
    // dispatcher holds one more while it waits for room. Nothing beyond that is read.
    assert_eq!(pulled.load(SeqCst), 4 + 8 + 1);
    assert_eq!(stats.sinks[0].1.in_flight.load(Relaxed), 12);
    slow.resume();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.sinks[0].delivered, 10_000);
    assert_eq!(slow.len(), 10_000);
    assert!(slow.batch_sizes().iter().all(|&n| n <= 4));
}

#[tokio::test]
async fn overflow_drop_counts_what_it_drops() {
    let slow = MemorySink::new();
    slow.pause();
    let pipeline = Pipeline::new(Box::new(VecSource::new(events(100)))).route(
        Route::new("lossy", Box::new(slow.clone())).options(RouteOptions { queue_size: 10, overflow: Overflow::Drop }),
    );
    let run = tokio::spawn(pipeline.run(std::future::pending()));
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(60)).await; // returns once everything is blocked
    slow.resume();
    let report = run.await.unwrap().unwrap();
    let s = &report.sinks[0];
    assert_eq!(s.delivered + s.dropped, 100);
    assert!(s.dropped > 0);
    assert_eq!(slow.len() as u64, s.delivered);
}

#[tokio::test]
async fn shutdown_drains_queued_events() {
    // Batches wait 200 ms for company; the shutdown signal comes while events are queued.
    let sink = MemorySink::new().with_batching(Batching::new(1000, Duration::from_millis(200)));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pipeline = Pipeline::new(Box::new(VecSource::new(events(300)).hold_open()))
        .route(Route::new("mem", Box::new(sink.clone())));
    let stats = pipeline.stats();
    let run = tokio::spawn(pipeline.run(async {
        stop_rx.await.ok();
    }));
    while stats.received.load(Relaxed) < 300 {
        tokio::task::yield_now().await;
    }
    assert!(sink.len() < 300, "the batch window has not passed yet");
    stop_tx.send(()).unwrap();
    let report = run.await.unwrap().unwrap();
    assert_eq!(sink.len(), 300);
    assert_eq!(report.unfinished, 0);
}

/// `left` events, none of them waiting.
struct Flood {
    left: usize,
}

#[async_trait]
impl Source for Flood {
    async fn next(&mut self) -> Result<Option<SourceItem>> {
        let Some(left) = self.left.checked_sub(1) else { return Ok(None) };
        self.left = left;
        Ok(Some(SourceItem::event(Event::builder().kind("Pod").reason("Flood").build())))
    }
}

#[tokio::test]
async fn shutdown_interrupts_a_source_that_never_waits() {
    // Neither the source nor the route (which takes nothing) ever waits, so the signal
    // is only seen when the dispatch loop looks for it on its own.
    let pipeline = Pipeline::new(Box::new(Flood { left: 100_000 }))
        .route(Route::new("none", Box::new(MemorySink::new())).filter(Arc::new(filter_fn(|_| false))));
    let seen = pipeline.stats();
    let asked_at = Arc::new(AtomicUsize::new(usize::MAX));
    let asked = asked_at.clone();
    // Nothing wakes this future: it is ready when next polled after the 1000th event.
    let shutdown = std::future::poll_fn(move |_| {
        let received = seen.received.load(Relaxed) as usize;
        if received < 1000 {
            return std::task::Poll::Pending;
        }
        asked.fetch_min(received, SeqCst);
        std::task::Poll::Ready(())
    });
    let report = pipeline.run(shutdown).await.unwrap();
    let asked = asked_at.load(SeqCst) as u64;
    assert!(report.received >= 1000 && report.received < 100_000, "{} received", report.received);
    assert!(report.received <= asked + u64::from(SHUTDOWN_EVERY), "{} received after {asked}", report.received);
}

#[tokio::test]
async fn shutdown_deadline_bounds_a_stuck_sink() {
    let stuck = MemorySink::new();
    stuck.pause();
    let store = RecordingStore::default();
    let pipeline = Pipeline::new(Box::new(VecSource::with_positions(events(5)).hold_open()))
        .route(Route::new("stuck", Box::new(stuck.clone())))
        .checkpoint(Box::new(store.clone()))
        .config(PipelineConfig { shutdown_timeout: Duration::from_millis(100), ..fast_retries() });
    let stats = pipeline.stats();
    let report = pipeline
        .run(async move {
            while stats.received.load(Relaxed) < 5 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
    assert_eq!(report.unfinished, 5);
    assert_eq!(report.checkpoint, None, "nothing was delivered, so nothing is checkpointed");
    assert_eq!(store.last(), None);
}

#[tokio::test]
async fn checkpoint_never_passes_an_unfinished_event() {
    // Sink "a" holds event 3 (position "3") until released; sink "b" gets everything.
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = release.clone();
    let a = MemorySink::new().scripted(move |e| {
        if e.reason == "R2" && !r.load(SeqCst) { Outcome::Retry(retry_err()) } else { Outcome::Delivered }
    });
    let b = MemorySink::new();
    let store = RecordingStore::default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pipeline = Pipeline::new(Box::new(VecSource::with_positions(events(6)).hold_open()))
        .route(Route::new("a", Box::new(a.clone())))
        .route(Route::new("b", Box::new(b.clone())))
        .checkpoint(Box::new(store.clone()))
        .config(fast_retries());
    let run = tokio::spawn(pipeline.run(async {
        stop_rx.await.ok();
    }));
    b.wait_for(6).await;
    a.wait_for(5).await;
    // Several checkpoint ticks pass while R2 (position "3") is unfinished in sink "a".
    a.wait_for_attempts(5 + 20).await;
    while store.last().is_none() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(store.last(), Some(Position("2".into())));
    assert!(store.saved.lock().unwrap().iter().all(|p| p.0.as_str() <= "2"));
    release.store(true, SeqCst);
    a.wait_for(6).await;
    stop_tx.send(()).unwrap();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.checkpoint, Some(Position("6".into())));
    assert_eq!(store.last(), Some(Position("6".into())));
}

#[tokio::test]
async fn a_stuck_sink_does_not_multiply_positions() {
    let tracker = Tracker::new(65_536, None);
    let n = 20_000u64;
    for i in 0..n {
        tracker.register(1, Some(Position(format!("{i:05}")))).await;
    }
    let kept = tracker.lock().entries.iter().filter(|e| e.position.is_some()).count();
    assert!(kept <= THIN_AFTER + (n / KEEP_EVERY) as usize + 2, "{kept} positions kept");
    // Finishing a prefix moves the checkpoint to a kept position within it, never past it.
    tracker.complete(&(0..15_000).collect::<Vec<_>>());
    let safe: u64 = tracker.unsaved().unwrap().0.parse().unwrap();
    assert!((15_000 - KEEP_EVERY..15_000).contains(&safe), "{safe}");
    // Once everything is finished, the checkpoint is the newest position exactly.
    tracker.complete(&(15_000..n).collect::<Vec<_>>());
    assert_eq!(tracker.unsaved(), Some(Position(format!("{:05}", n - 1))));
}

#[tokio::test]
async fn filtered_events_and_progress_advance_the_checkpoint() {
    let sink = MemorySink::new();
    let store = RecordingStore { initial: Some(Position("0".into())), ..Default::default() };
    let source = VecSource::with_positions(events(3));
    let report = Pipeline::new(Box::new(source))
        .route(Route::new("none", Box::new(sink.clone())).filter(Arc::new(filter_fn(|_| false))))
        .checkpoint(Box::new(store.clone()))
        .run(std::future::pending())
        .await
        .unwrap();
    assert!(sink.is_empty());
    assert_eq!(report.checkpoint, Some(Position("3".into())));

    // A bookmark (progress without an event) is checkpointed once what precedes it is done.
    struct Bookmarks(Vec<SourceItem>);
    #[async_trait]
    impl Source for Bookmarks {
        async fn next(&mut self) -> Result<Option<SourceItem>> {
            Ok(if self.0.is_empty() { None } else { Some(self.0.remove(0)) })
        }
    }
    let store = RecordingStore::default();
    let items = vec![
        SourceItem::Event { event: Arc::new(events(1).remove(0)), position: Some(Position("10".into())) },
        SourceItem::Progress(Position("15".into())),
    ];
    let report = Pipeline::new(Box::new(Bookmarks(items)))
        .route(Route::new("mem", Box::new(MemorySink::new())))
        .checkpoint(Box::new(store.clone()))
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!(report.checkpoint, Some(Position("15".into())));
}

#[tokio::test]
async fn resume_position_reaches_the_source() {
    struct Probe(Arc<Mutex<Option<Position>>>);
    #[async_trait]
    impl Source for Probe {
        async fn start(&mut self, resume: Option<Position>) -> Result<()> {
            *self.0.lock().unwrap() = resume;
            Ok(())
        }
        async fn next(&mut self) -> Result<Option<SourceItem>> {
            Ok(None)
        }
    }
    let seen = Arc::new(Mutex::new(None));
    let store = RecordingStore { initial: Some(Position("rv=99".into())), ..Default::default() };
    let report = Pipeline::new(Box::new(Probe(seen.clone())))
        .route(Route::new("mem", Box::new(MemorySink::new())))
        .checkpoint(Box::new(store.clone()))
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(Position("rv=99".into())));
    assert_eq!(report.checkpoint, Some(Position("rv=99".into())));
    assert!(store.saved.lock().unwrap().is_empty(), "an unchanged position is not rewritten");
}

#[tokio::test]
async fn startup_and_source_errors_surface() {
    struct NoStart;
    #[async_trait]
    impl Sink for NoStart {
        async fn start(&mut self) -> Result<()> {
            Err(Error::new(ErrorKind::Unauthorized, "no credentials found"))
        }
        async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
            vec![Outcome::Delivered; batch.len()]
        }
    }
    let err = Pipeline::new(Box::new(VecSource::new(events(1))))
        .route(Route::new("sls", Box::new(NoStart)))
        .run(std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "sink sls failed to start: no credentials found");
    assert_eq!(err.component(), Some("sink/sls"));

    struct Broken(usize);
    #[async_trait]
    impl Source for Broken {
        async fn next(&mut self) -> Result<Option<SourceItem>> {
            self.0 += 1;
            if self.0 > 3 {
                Err(Error::new(ErrorKind::Unauthorized, "401 from apiserver"))
            } else {
                Ok(Some(SourceItem::event(Event::default())))
            }
        }
    }
    let sink = MemorySink::new();
    let err = Pipeline::new(Box::new(Broken(0)))
        .route(Route::new("mem", Box::new(sink.clone())))
        .run(std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(err.component(), Some("source"));
    assert_eq!(sink.len(), 3, "what was read before the error is still delivered");
}

#[tokio::test]
async fn a_sink_whose_worker_dies_stops_the_pipeline() {
    struct Panics;
    #[async_trait]
    impl Sink for Panics {
        async fn send(&mut self, _batch: &[SharedEvent]) -> Vec<Outcome> {
            panic!("bug in a third-party sink");
        }
    }
    let run = Pipeline::new(Box::new(VecSource::new(events(100))))
        .route(Route::new("buggy", Box::new(Panics)))
        .run(std::future::pending());
    let err = tokio::time::timeout(Duration::from_secs(30), run).await.expect("no stall").unwrap_err();
    assert_eq!(err.component(), Some("sink/buggy"));
    assert!(err.to_string().starts_with("sink buggy stopped unexpectedly"), "{err}");
}

#[tokio::test]
async fn wrong_outcome_count_is_retried_not_lost() {
    struct Sloppy(u32, MemorySink);
    #[async_trait]
    impl Sink for Sloppy {
        async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
            self.0 += 1;
            if self.0 == 1 { Vec::new() } else { self.1.send(batch).await }
        }
    }
    let mem = MemorySink::new();
    Pipeline::new(Box::new(VecSource::new(events(3))))
        .route(Route::new("sloppy", Box::new(Sloppy(0, mem.clone()))))
        .config(fast_retries())
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!(mem.len(), 3);
}

#[tokio::test]
async fn batches_respect_size_and_window() {
    let sink = MemorySink::new().with_batching(Batching::new(7, Duration::from_millis(20)));
    Pipeline::new(Box::new(VecSource::new(events(50))))
        .route(Route::new("mem", Box::new(sink.clone())))
        .run(std::future::pending())
        .await
        .unwrap();
    let sizes = sink.batch_sizes();
    assert_eq!(sizes.iter().sum::<usize>(), 50);
    assert!(sizes.iter().all(|&n| n <= 7));
    assert!(sizes.iter().filter(|&&n| n == 7).count() >= 6, "{sizes:?}");
    // Order is preserved.
    let reasons = sink.reasons();
    let expected: Vec<String> = (0..50).map(|i| format!("R{i}")).collect();
    assert_eq!(reasons, expected);
}

#[tokio::test]
async fn deferred_events_come_back_without_counting_as_failures() {
    tokio::time::pause();
    let offered = Arc::new(AtomicUsize::new(0));
    let o = offered.clone();
    let sink = MemorySink::new().scripted(move |_| {
        if o.fetch_add(1, SeqCst) < 3 { Outcome::Defer(Duration::from_secs(10)) } else { Outcome::Delivered }
    });
    let started = Instant::now();
    let report = Pipeline::new(Box::new(VecSource::new(events(3))))
        .route(Route::new("held", Box::new(sink.clone())))
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!(sink.len(), 3);
    assert!(Instant::now() - started >= Duration::from_secs(10));
    let s = &report.sinks[0];
    assert_eq!((s.delivered, s.retried, s.failed), (3, 0, 0));
    assert_eq!(sink.batch_sizes(), [3, 3], "held events come back together in one batch");
}

#[tokio::test]
async fn telemetry_exports_counters_and_sink_health() {
    // R0 and R1 are refused (a misconfigured sink refuses whole batches), then R2 is
    // delivered; the sink's health is recorded when R2 is sent.
    let telemetry = Telemetry::default();
    let health = telemetry.health.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let sink = MemorySink::new().with_batching(Batching::new(1, Duration::ZERO)).scripted(move |e| {
        let check = health.report().into_iter().find(|(n, _)| n == "sink/alerts").map(|(_, c)| c);
        record.lock().unwrap().push(check);
        if e.reason == "R2" {
            Outcome::Delivered
        } else {
            Outcome::Rejected(Arc::new(Error::new(ErrorKind::Unauthorized, "token refused")))
        }
    });
    let report = Pipeline::new(Box::new(VecSource::new(events(3))))
        .route(Route::new("alerts", Box::new(sink.clone())))
        .route(Route::new("archive", Box::new(MemorySink::new())).filter(Arc::new(filter_fn(|_| false))))
        .telemetry(&telemetry)
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!(report.received, 3);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            Some(Check::Ready),
            Some(Check::Failing("token refused".into())),
            Some(Check::Failing("token refused".into()))
        ]
    );
    assert!(telemetry.health.is_ready(), "{:?}", telemetry.health.report());

    let text = telemetry.metrics.encode();
    for line in [
        "eventer_events_received_total 3",
        "eventer_sink_events_failed_total{sink=\"alerts\"} 2",
        "eventer_sink_events_delivered_total{sink=\"alerts\"} 1",
        "eventer_sink_events_filtered_total{sink=\"archive\"} 3",
        "eventer_sink_queue_depth{sink=\"alerts\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
    }
}

#[tokio::test]
async fn first_delivered_batch_is_saved_at_once_then_at_most_once_per_interval() {
    // A store that takes one write per second (a ConfigMap), under 100 events a second
    // for 5 s; with time paused, delivery itself takes no time.
    tokio::time::pause();
    let store = RecordingStore { min_interval: Duration::from_secs(1), ..Default::default() };
    let sink = MemorySink::new();
    let started = Instant::now();
    let source = Paced { every: Duration::from_millis(10), next: 0, count: 500 };
    let report = Pipeline::new(Box::new(source))
        .route(Route::new("mem", Box::new(sink.clone())))
        .checkpoint(Box::new(store.clone()))
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!(sink.len(), 500);
    assert_eq!(report.checkpoint, Some(Position("00499".into())));
    let attempts = store.attempts();
    // The first event is delivered at 10 ms: a process killed after that has saved it.
    let first = attempts[0] - started;
    assert!(first <= Duration::from_millis(20), "first save after {first:?}");
    assert_eq!(store.saved.lock().unwrap()[0], Position("00000".into()));
    // The last save is the one at shutdown; before it, one per second at most, and still
    // one every second while events flow.
    let (during, _shutdown) = attempts.split_at(attempts.len() - 1);
    for pair in during.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_secs(1) && gap <= Duration::from_millis(1100), "saved {gap:?} apart");
    }
    assert!(during.len() >= 5, "{} saves in 5 s", during.len());
}

#[tokio::test]
async fn failed_checkpoint_writes_are_retried_with_backoff() {
    tokio::time::pause();
    let store = RecordingStore {
        min_interval: Duration::from_millis(200),
        failures: Arc::new(AtomicUsize::new(7)),
        ..Default::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pipeline = Pipeline::new(Box::new(VecSource::with_positions(events(3)).hold_open()))
        .route(Route::new("mem", Box::new(MemorySink::new())))
        .checkpoint(Box::new(store.clone()))
        .config(PipelineConfig {
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(60)),
            ..Default::default()
        });
    let stats = pipeline.stats();
    let run = tokio::spawn(pipeline.run(async {
        stop_rx.await.ok();
    }));
    // The position stops moving after the third event; the retries alone save it.
    while store.last().is_none() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.last(), Some(Position("3".into())));
    assert_eq!(stats.checkpoint_failures.load(Relaxed), 7);
    let attempts = store.attempts();
    assert_eq!(attempts.len(), 8);
    // The backoff doubles with jitter, capped at 10 s: a store that comes back is written
    // to within seconds. (Tokio's timer rounds up to the next millisecond.)
    let gaps: Vec<Duration> = attempts.windows(2).map(|p| p[1] - p[0]).collect();
    let expected =
        [(250, 500), (500, 1000), (1000, 2000), (2000, 4000), (4000, 8000), (8000, 10_000), (10_000, 10_000)];
    for (gap, (low, high)) in gaps.iter().zip(expected) {
        assert!(*gap >= Duration::from_millis(low) && *gap <= Duration::from_millis(high + 1), "{gaps:?}");
    }
    stop_tx.send(()).unwrap();
    run.await.unwrap().unwrap();
    assert_eq!(store.attempts().len(), 8, "nothing new to save at shutdown");
}

#[tokio::test]
async fn events_are_counted_by_type_and_known_reason_and_delivery_latency_is_observed() {
    tokio::time::pause();
    let telemetry = Telemetry::default();
    let event = |reason: &str, level: crate::Level| Event::builder().kind("Pod").reason(reason).level(level).build();
    let source = VecSource::new(vec![
        event("BackOff", crate::Level::Warning),
        event("BackOff", crate::Level::Warning),
        event("Pulled", crate::Level::Normal),
        // Reasons outside the fixed set, and types other than Normal and Warning, are
        // counted under `other`: the series stay bounded whatever a controller emits.
        event("MyOperatorFellOver-7f9c", crate::Level::Warning),
        event("MyOperatorFellOver-0a1b", crate::Level::Warning),
        event("FailedMount", crate::Level::Other("Error".into())),
    ]);
    // Every event is held back 2 s once (as a rate budget would), then delivered.
    let mut held = std::collections::HashSet::new();
    let sink = MemorySink::new().scripted(move |e| {
        if held.insert(format!("{}{:?}", e.reason, std::ptr::from_ref(e))) {
            Outcome::Defer(Duration::from_secs(2))
        } else {
            Outcome::Delivered
        }
    });
    Pipeline::new(Box::new(source))
        .route(Route::new("alerts", Box::new(sink.clone())))
        .telemetry(&telemetry)
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!(sink.len(), 6);
    let text = telemetry.metrics.encode();
    for line in [
        "eventer_kubernetes_events_total{type=\"Warning\",reason=\"BackOff\"} 2",
        "eventer_kubernetes_events_total{type=\"Normal\",reason=\"Pulled\"} 1",
        "eventer_kubernetes_events_total{type=\"Warning\",reason=\"other\"} 2",
        "eventer_kubernetes_events_total{type=\"other\",reason=\"FailedMount\"} 1",
        "# TYPE eventer_sink_delivery_latency_seconds histogram",
        "eventer_sink_delivery_latency_seconds_count{sink=\"alerts\"} 6",
        // Cumulative buckets: nothing within 1 s, all six within 2.5 s.
        "eventer_sink_delivery_latency_seconds_bucket{le=\"1.0\",sink=\"alerts\"} 0",
        "eventer_sink_delivery_latency_seconds_bucket{le=\"2.5\",sink=\"alerts\"} 6",
        "eventer_sink_delivery_latency_seconds_bucket{le=\"+Inf\",sink=\"alerts\"} 6",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
    }
    assert_eq!(text.matches("eventer_kubernetes_events_total{").count(), 4, "only pairs seen:\n{text}");
    // Six waits of 2 s (the timer rounds each up to the next millisecond).
    let sum: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("eventer_sink_delivery_latency_seconds_sum{sink=\"alerts\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((12.0..12.05).contains(&sum), "{sum}");
}

#[test]
fn event_reasons_are_found_by_name() {
    assert!(EVENT_REASONS.windows(2).all(|w| w[0] < w[1]), "sorted and unique, as documented");
    for (i, reason) in EVENT_REASONS.iter().enumerate() {
        assert_eq!(stats::reason_index(reason), i, "{reason}");
    }
    for other in ["", "backoff", "BackOff2", "Back", "ZZZ", "KernelOopsX"] {
        assert_eq!(stats::reason_index(other), EVENT_REASONS.len(), "{other:?}");
    }
}

#[tokio::test]
async fn a_send_that_never_returns_is_wedged_a_scheduled_retry_is_not() {
    tokio::time::pause();
    let timeout = Duration::from_secs(60);
    let telemetry = Telemetry::default();
    let stuck = MemorySink::new();
    stuck.pause();
    // Holds each event back for five minutes, longer than the timeout (a rate budget
    // spent), with room for one: the others wait in its queue meanwhile.
    let mut held = std::collections::HashSet::new();
    let patient = MemorySink::new().with_batching(Batching::new(1, Duration::ZERO)).scripted(move |e| {
        if held.insert(e.reason.clone()) { Outcome::Defer(Duration::from_secs(300)) } else { Outcome::Delivered }
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pipeline = Pipeline::new(Box::new(VecSource::new(events(3)).hold_open()))
        .route(Route::new("stuck", Box::new(stuck.clone())))
        .route(
            Route::new("patient", Box::new(patient.clone()))
                .options(RouteOptions { queue_size: 1, ..RouteOptions::default() }),
        )
        .config(PipelineConfig { liveness_timeout: timeout, ..PipelineConfig::default() })
        .telemetry(&telemetry);
    let run = tokio::spawn(pipeline.run(async {
        stop_rx.await.ok();
    }));
    patient.wait_for_attempts(1).await;
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(telemetry.health.liveness(), Vec::<String>::new(), "within the timeout");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let wedged = telemetry.health.liveness();
    assert_eq!(wedged.len(), 1, "{wedged:?}");
    assert!(wedged[0].starts_with("sink stuck: a send in flight for 1m 1s, "), "{wedged:?}");
    assert!(!wedged[0].contains("patient"), "sleeping until its own retry: {wedged:?}");

    // The destination answers: progress again.
    stuck.resume();
    stuck.wait_for(3).await;
    assert_eq!(telemetry.health.liveness(), Vec::<String>::new());
    // Four minutes on, the patient sink still waits for its deferral, then delivers.
    tokio::time::sleep(Duration::from_secs(240)).await;
    assert_eq!(telemetry.health.liveness(), Vec::<String>::new());
    patient.wait_for(3).await;
    stop_tx.send(()).unwrap();
    run.await.unwrap().unwrap();
    assert_eq!(telemetry.health.liveness(), Vec::<String>::new());
}

/// A sink limited to `max_bytes` per batch, weighing each event at its message's length;
/// it records the weights of every batch it is sent.
#[derive(Clone)]
struct Weighed {
    mem: MemorySink,
    max_bytes: usize,
    batches: Arc<Mutex<Vec<Vec<usize>>>>,
}

impl Weighed {
    fn new(mem: MemorySink, max_bytes: usize) -> Self {
        Weighed { mem, max_bytes, batches: Arc::default() }
    }

    fn batches(&self) -> Vec<Vec<usize>> {
        self.batches.lock().unwrap().clone()
    }
}

#[async_trait]
impl Sink for Weighed {
    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        self.batches.lock().unwrap().push(batch.iter().map(|e| e.message.len()).collect());
        self.mem.send(batch).await
    }

    fn batching(&self) -> Batching {
        // A window longer than the test: only the byte limit (or the source's end) cuts batches.
        Batching::new(1000, Duration::from_secs(600)).max_bytes(self.max_bytes)
    }

    fn weigh(&self, event: &Event) -> usize {
        event.message.len()
    }
}

/// `n` events whose messages are 10 to 50 bytes long, and one of 300 (event 40).
fn weighed_events(n: usize) -> Vec<Event> {
    let mut events = events(n);
    for (i, e) in events.iter_mut().enumerate() {
        e.message = "x".repeat(if i == 40 { 300 } else { 10 + i * 7 % 41 }).into();
    }
    events
}

#[tokio::test]
async fn batches_are_cut_by_bytes_and_the_event_that_did_not_fit_begins_the_next() {
    let sink = Weighed::new(MemorySink::new(), 200);
    let report = Pipeline::new(Box::new(VecSource::new(weighed_events(100))))
        .route(Route::new("weighed", Box::new(sink.clone())))
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!((report.sinks[0].delivered, report.sinks[0].retried), (100, 0));
    let expected: Vec<String> = (0..100).map(|i| format!("R{i}")).collect();
    assert_eq!(sink.mem.reasons(), expected, "every event once, in order");
    let batches = sink.batches();
    for (i, batch) in batches.iter().enumerate() {
        let bytes: usize = batch.iter().sum();
        assert!(bytes <= 200 || batch.len() == 1, "batch {i} holds {bytes} bytes: {batches:?}");
        // Full: the next batch's first event did not fit in this one.
        if let Some(next) = batches.get(i + 1) {
            assert!(bytes + next[0] > 200, "batch {i} ({bytes} bytes) had room for {}: {batches:?}", next[0]);
        }
    }
    assert!(batches.contains(&vec![300]), "the event heavier than the limit goes alone: {batches:?}");
}

#[tokio::test]
async fn retried_events_keep_to_the_byte_limit() {
    let failed = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let mem = MemorySink::new().scripted(move |e| {
        // Every fifth event fails once.
        let i: usize = e.reason[1..].parse().unwrap();
        if i.is_multiple_of(5) && failed.lock().unwrap().insert(i) {
            Outcome::Retry(retry_err())
        } else {
            Outcome::Delivered
        }
    });
    let sink = Weighed::new(mem, 200);
    let report = Pipeline::new(Box::new(VecSource::new(weighed_events(100))))
        .route(Route::new("weighed", Box::new(sink.clone())))
        .config(fast_retries())
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!((report.sinks[0].delivered, report.sinks[0].retried), (100, 20));
    let mut reasons = sink.mem.reasons();
    reasons.sort_by_key(|r| r[1..].parse::<usize>().unwrap());
    let expected: Vec<String> = (0..100).map(|i| format!("R{i}")).collect();
    assert_eq!(reasons, expected, "every event once");
    for batch in sink.batches() {
        assert!(batch.iter().sum::<usize>() <= 200 || batch.len() == 1, "{batch:?}");
    }
}
