//! The sink against a loopback receiver and the fake apiserver: bodies, methods and
//! headers; retries until delivered, each event once; refusals; batches; bounded
//! concurrency; the ConfigMap template and its changes.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    http::{HeaderMap, Method, StatusCode},
    response::IntoResponse,
};
use eventer_core::{
    BuildContext, Event, Pipeline, PipelineConfig, Registry, Report,
    pipeline::Backoff,
    telemetry::{Check, Telemetry},
    testing::VecSource,
};
use eventer_fake_apiserver::FakeApiServer;
use eventer_source_k8s::{Cluster, SourceConfig};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Request {
    method: Method,
    query: Option<String>,
    headers: HeaderMap,
    body: String,
}

/// Statuses (and a `Retry-After`) to answer the next requests with.
type Script = Arc<Mutex<VecDeque<(u16, Option<&'static str>)>>>;

/// A loopback HTTP receiver answering from a script, then 200.
#[derive(Clone, Default)]
struct Receiver {
    /// Requests answered 2xx.
    accepted: Arc<Mutex<Vec<Request>>>,
    /// Every request.
    all: Arc<Mutex<Vec<Request>>>,
    script: Script,
    /// Refuse (400) any request whose body contains this.
    poison: Arc<Mutex<Option<String>>>,
    delay: Arc<Mutex<Duration>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        let state = receiver.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { state.handle(method, uri.query().map(str::to_owned), headers, body).await.into_response() }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    async fn handle(
        &self,
        method: Method,
        query: Option<String>,
        headers: HeaderMap,
        body: Bytes,
    ) -> impl IntoResponse {
        let request = Request { method, query, headers, body: String::from_utf8(body.to_vec()).unwrap() };
        // Recorded on arrival: a request the sink gave up on is still one it sent.
        self.all.lock().unwrap().push(request.clone());
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.max_in_flight.fetch_max(now, SeqCst);
        let delay = *self.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        self.in_flight.fetch_sub(1, SeqCst);
        let poisoned = self.poison.lock().unwrap().as_ref().is_some_and(|p| request.body.contains(p.as_str()));
        if poisoned {
            return (StatusCode::BAD_REQUEST, HeaderMap::new(), "invalid element: Bearer tok-SECRET".to_owned());
        }
        let scripted = self.script.lock().unwrap().pop_front();
        match scripted {
            Some((status, retry_after)) => {
                let mut headers = HeaderMap::new();
                if let Some(after) = retry_after {
                    headers.insert("retry-after", after.parse().unwrap());
                }
                (StatusCode::from_u16(status).unwrap(), headers, "try later".to_owned())
            }
            None => {
                self.accepted.lock().unwrap().push(request);
                (StatusCode::OK, HeaderMap::new(), "ok".to_owned())
            }
        }
    }

    fn accepted(&self) -> Vec<Request> {
        self.accepted.lock().unwrap().clone()
    }

    fn all(&self) -> Vec<Request> {
        self.all.lock().unwrap().clone()
    }
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let json = format!(
                r#"{{"metadata":{{"name":"web-{i}.1","namespace":"prod","uid":"uid-{i}","resourceVersion":"{}"}},
                "involvedObject":{{"kind":"Pod","namespace":"prod","name":"web-{i}"}},"reason":"BackOff{i}",
                "message":"restarting \"app\" #{i}","type":"Warning","count":{i},
                "lastTimestamp":"2026-11-30T08:14:30Z"}}"#,
                100 + i
            );
            eventer_core::decode::event_from_json(&json).unwrap()
        })
        .collect()
}

fn fast() -> PipelineConfig {
    let mut config = PipelineConfig::default();
    config.backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(200));
    config
}

async fn run_with(uri: &str, events: Vec<Event>, cx: &BuildContext) -> eventer_core::Result<Report> {
    let mut registry = Registry::new();
    eventer_sink_webhook::register(&mut registry);
    let sink = registry.build_sink(&uri.parse()?, cx)?;
    let run = Pipeline::new(Box::new(VecSource::new(events)))
        .config(fast())
        .route(sink.into_route()?)
        .run(std::future::pending());
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("the pipeline finishes")
}

async fn run(uri: &str, events: Vec<Event>) -> Report {
    run_with(uri, events, &BuildContext::default()).await.unwrap()
}

#[tokio::test]
async fn default_body_method_headers_and_ids_as_kube_eventer_sends_them() {
    let (receiver, url) = Receiver::start().await;
    let uri = format!(
        "webhook:{url}?key=K1&level=Warning&header=Authorization=Bearer a=b&header=X-Env=prod&sign_secret=s3cret&timezone=UTC"
    );
    let report = run(&uri, events(2)).await;
    assert_eq!(report.sinks[0].delivered, 2);
    let got = receiver.accepted();
    assert_eq!(got.len(), 2);
    let first = got.iter().find(|r| r.body.contains("BackOff0")).unwrap();
    assert_eq!(first.method, Method::GET, "kube-eventer's default method");
    assert_eq!(first.query.as_deref(), Some("key=K1"), "the URL's own parameter, not eventer's options");
    assert_eq!(
        first.body,
        "\n{\n\t\"EventType\": \"Warning\",\n\t\"EventKind\": \"Pod\",\n\t\"EventReason\": \"BackOff0\",\n\t\
         \"EventTime\": \"2026-11-30 08:14:30 +0000 UTC\",\n\t\"EventMessage\": \"restarting app #0\"\n}"
    );
    assert_eq!(first.headers["authorization"], "Bearer a=b", "a header value may contain `=`");
    assert_eq!(first.headers["x-env"], "prod");
    assert_eq!(first.headers["x-eventer-event-id"], "uid-0.100");
    // The receiver's check, as docs/webhook.md shows it.
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(first.body.as_bytes());
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(first.headers["x-eventer-signature"], want.as_str());
}

#[tokio::test]
async fn times_print_in_the_zone_kube_eventer_ran_in() {
    let (receiver, url) = Receiver::start().await;
    run(&format!("webhook:{url}?timezone=Asia/Shanghai&template={{{{.LastTimestamp}}}}"), events(1)).await;
    assert_eq!(receiver.accepted()[0].body, "2026-11-30 16:14:30 +0800 CST");
}

#[tokio::test]
async fn five_503s_then_every_event_delivered_exactly_once() {
    let (receiver, url) = Receiver::start().await;
    receiver.script.lock().unwrap().extend([(503, None), (503, Some("0")), (429, Some("1")), (503, None), (502, None)]);
    let report = run(&format!("webhook:{url}?method=POST&template={{{{.Reason}}}}"), events(6)).await;
    assert_eq!((report.sinks[0].delivered, report.sinks[0].failed), (6, 0));
    let mut bodies: Vec<String> = receiver.accepted().into_iter().map(|r| r.body).collect();
    bodies.sort();
    assert_eq!(bodies, ["BackOff0", "BackOff1", "BackOff2", "BackOff3", "BackOff4", "BackOff5"], "each once");
    assert_eq!(receiver.all().len(), 11, "six deliveries and five refused tries");
    assert!(report.sinks[0].retried >= 5);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (receiver, url) = Receiver::start().await;
    receiver.script.lock().unwrap().push_back((429, Some("2")));
    let started = Instant::now();
    let report = run(&format!("webhook:{url}?template=x"), events(1)).await;
    assert_eq!(report.sinks[0].delivered, 1);
    assert!(started.elapsed() >= Duration::from_secs(2), "waited as the receiver asked: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_4xx_rejects_only_its_event() {
    let (receiver, url) = Receiver::start().await;
    *receiver.poison.lock().unwrap() = Some("BackOff1".into());
    let report = run(&format!("webhook:{url}?template={{{{.Reason}}}}&concurrency=1"), events(3)).await;
    assert_eq!((report.sinks[0].delivered, report.sinks[0].failed, report.sinks[0].retried), (2, 1, 0));
    assert_eq!(receiver.all().len(), 3, "a refusal is not retried");
}

#[tokio::test]
async fn batches_are_json_arrays_split_around_a_refused_event() {
    let (receiver, url) = Receiver::start().await;
    *receiver.poison.lock().unwrap() = Some("BackOff4".into());
    let uri = format!("webhook:{url}?method=POST&batch=3&concurrency=1&format=json");
    let report = run(&uri, events(7)).await;
    assert_eq!((report.sinks[0].delivered, report.sinks[0].failed), (6, 1));
    let mut reasons = Vec::new();
    for request in receiver.accepted() {
        assert_eq!(request.headers["content-type"], "application/json");
        let array: Vec<serde_json::Value> = serde_json::from_str(&request.body).unwrap();
        assert!(array.len() <= 3);
        let ids: Vec<String> = array
            .iter()
            .map(|e| {
                format!(
                    "{}.{}",
                    e["metadata"]["uid"].as_str().unwrap(),
                    e["metadata"]["resourceVersion"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(request.headers["x-eventer-event-id"], ids.join(",").as_str());
        reasons.extend(array.iter().map(|e| e["reason"].as_str().unwrap().to_owned()));
    }
    reasons.sort();
    assert_eq!(reasons, ["BackOff0", "BackOff1", "BackOff2", "BackOff3", "BackOff5", "BackOff6"]);
    // Event JSON is sent as received, quotes and all.
    assert!(receiver.accepted()[0].body.contains(r#"restarting \"app\""#));
}

#[tokio::test]
async fn batch_needs_json_bodies() {
    let (receiver, url) = Receiver::start().await;
    let report = run(&format!("webhook:{url}?batch=2&template=not json {{{{.Reason}}}}"), events(2)).await;
    assert_eq!(report.sinks[0].failed, 2);
    assert!(receiver.all().is_empty());
}

#[tokio::test]
async fn a_slow_receiver_sees_at_most_concurrency_requests() {
    let (receiver, url) = Receiver::start().await;
    *receiver.delay.lock().unwrap() = Duration::from_millis(50);
    let report = run(&format!("webhook:{url}?template=x&concurrency=3"), events(20)).await;
    assert_eq!(report.sinks[0].delivered, 20);
    assert_eq!(receiver.max_in_flight.load(SeqCst), 3, "bounded, and used");
}

#[tokio::test]
async fn timeouts_and_unreachable_receivers_are_retried() {
    let (receiver, url) = Receiver::start().await;
    *receiver.delay.lock().unwrap() = Duration::from_millis(1500);
    let slow = tokio::spawn({
        let receiver = receiver.clone();
        async move {
            // Answer promptly once the sink has timed out twice.
            while receiver.all().len() < 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            *receiver.delay.lock().unwrap() = Duration::ZERO;
        }
    });
    let report = run(&format!("webhook:{url}?template=x&timeout=300ms"), events(1)).await;
    assert_eq!(report.sinks[0].delivered, 1);
    assert!(report.sinks[0].retried >= 2);
    slow.await.unwrap();

    // A closed port: the run ends at the shutdown deadline with the event unfinished, not lost.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut registry = Registry::new();
    eventer_sink_webhook::register(&mut registry);
    let sink = registry
        .build_sink(&format!("webhook:http://{closed}/x?template=x").parse().unwrap(), &BuildContext::default())
        .unwrap();
    let mut config = fast();
    config.shutdown_timeout = Duration::from_millis(300);
    let report = Pipeline::new(Box::new(VecSource::new(events(1)).hold_open()))
        .config(config)
        .route(sink.into_route().unwrap())
        .run(tokio::time::sleep(Duration::from_millis(500)))
        .await
        .unwrap();
    assert_eq!((report.sinks[0].delivered, report.sinks[0].failed, report.unfinished), (0, 0, 1));
}

fn cluster(api: &FakeApiServer) -> BuildContext {
    let cx = BuildContext::default().with_telemetry(&Telemetry::default());
    Cluster::connect(SourceConfig::for_url(api.url())).share(&cx);
    cx
}

#[tokio::test]
async fn configmap_template_is_read_at_start_and_followed() {
    let api = FakeApiServer::start().await.unwrap();
    api.put_configmap("ops", "body", &[("content", "v1 {{.Reason}}")]);
    let (receiver, url) = Receiver::start().await;
    let telemetry = Telemetry::default();
    let cx = BuildContext::default().with_telemetry(&telemetry);
    Cluster::connect(SourceConfig::for_url(api.url())).share(&cx);

    let mut registry = Registry::new();
    eventer_sink_webhook::register(&mut registry);
    let uri = format!("webhook:{url}?custom_body_configmap=body&custom_body_configmap_namespace=ops");
    let mut sink = registry.build_sink(&uri.parse().unwrap(), &cx).unwrap().sink;
    sink.start().await.unwrap();
    let batch: Vec<_> = events(1).into_iter().map(Arc::new).collect();
    assert!(matches!(sink.send(&batch).await[..], [eventer_core::Outcome::Delivered]));
    let check =
        || telemetry.health.report().into_iter().find(|(n, _)| n == "webhook-template/ops/body").map(|(_, c)| c);
    assert_eq!(check(), Some(Check::Ready));

    // A change applies without a restart.
    api.wait_for_watchers(1).await;
    api.put_configmap("ops", "body", &[("content", "v2 {{.Reason}}")]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        sink.send(&batch).await;
        if receiver.accepted().last().unwrap().body == "v2 BackOff0" {
            break;
        }
        assert!(Instant::now() < deadline, "the new template was not applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // One that does not parse keeps the previous one, and readiness says why.
    api.put_configmap("ops", "body", &[("content", "v3 {{.Reason")]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(check(), Some(Check::Failing(_))) {
        assert!(Instant::now() < deadline, "readiness did not fail: {:?}", check());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Some(Check::Failing(why)) = check() else { unreachable!() };
    assert!(why.contains("configmap ops/body") && why.contains("unclosed action"), "{why}");
    sink.send(&batch).await;
    assert_eq!(receiver.accepted().last().unwrap().body, "v2 BackOff0");

    // Fixed again: ready, and used.
    api.put_configmap("ops", "body", &[("content", "v4 {{.Reason}}")]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while check() != Some(Check::Ready) {
        assert!(Instant::now() < deadline, "readiness did not recover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sink.send(&batch).await;
    assert_eq!(receiver.accepted().last().unwrap().body, "v4 BackOff0");
    sink.close().await.unwrap();
}

#[tokio::test]
async fn configmap_problems_stop_the_start() {
    let api = FakeApiServer::start().await.unwrap();
    api.put_configmap("default", "nocontent", &[("other", "x")]);
    api.put_configmap("default", "broken", &[("content", "{{if .Reason}}")]);
    api.put_configmap("default", "unknownfield", &[("content", "{{.Nope}}")]);
    let cx = cluster(&api);
    for (name, want) in [
        ("missing", "option custom_body_configmap: configmap default/missing not found"),
        ("nocontent", "option custom_body_configmap: configmap default/nocontent has no key `content`"),
        ("broken", "the template in configmap default/broken does not parse: template: body:1: unexpected EOF"),
        ("unknownfield", "can't evaluate field Nope in type *v1.Event"),
    ] {
        let uri = format!("webhook:http://127.0.0.1:1/x?custom_body_configmap={name}");
        let err = run_with(&uri, events(1), &cx).await.unwrap_err();
        assert_eq!(err.kind(), eventer_core::ErrorKind::Config, "{name}: {err:?}");
        assert!(err.to_string().contains(want), "{name}: {err}");
    }
    // Without a cluster there is nowhere to read it from.
    let err = run_with("webhook:http://127.0.0.1:1/x?custom_body_configmap=x", events(1), &BuildContext::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs the kubernetes source"), "{err}");
}

#[tokio::test]
async fn refusal_logs_redact_secrets() {
    // The sink's error (which the pipeline logs) carries the status and the body's start,
    // with the configured header value hidden.
    let (receiver, url) = Receiver::start().await;
    *receiver.poison.lock().unwrap() = Some("BackOff".into());
    let mut registry = Registry::new();
    eventer_sink_webhook::register(&mut registry);
    let uri = format!("webhook:{url}?template={{{{.Reason}}}}&header=Authorization=Bearer tok-SECRET");
    let mut sink = registry.build_sink(&uri.parse().unwrap(), &BuildContext::default()).unwrap().sink;
    let batch: Vec<_> = events(1).into_iter().map(Arc::new).collect();
    let outcomes = sink.send(&batch).await;
    let eventer_core::Outcome::Rejected(err) = &outcomes[0] else { panic!("{outcomes:?}") };
    assert_eq!(err.to_string(), "webhook answered HTTP 400: invalid element: ***");
}
