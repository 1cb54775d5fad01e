//! The sink against the fake SLS endpoint and metadata service.

use std::{collections::HashSet, sync::Arc, time::Duration};

use eventer_core::{
    BuildContext, ErrorKind, Event, Outcome, Pipeline, PipelineConfig, Registry, Route, SharedEvent, Sink,
    pipeline::Backoff,
    testing::{VecSource, assert_sink_conformance, sample_events},
    uri::ComponentUri,
};
use eventer_fake_sls::{Failure, FakeMetadata, FakeSls, FakeSts, StsCredentials, addon_token_config};
use eventer_sink_sls::{SlsConfig, SlsSink};
use jiff::{SignedDuration, Timestamp};

const KEY_ID: &str = "LTAI5tFakeKeyId";
const KEY_SECRET: &str = "FakeSecretValue0123456789";

/// A sink for `uri` (`<endpoint>?<options>`), reading no environment variables and no
/// add-on token file.
fn sink(uri: &str) -> SlsSink {
    sink_with_env(uri, &[])
}

/// A sink for `uri` whose credential sources see only the variables `env`.
fn sink_with_env(uri: &str, env: &[(&str, String)]) -> SlsSink {
    let uri: ComponentUri = format!("sls:{uri}").parse().unwrap();
    let mut options = uri.options();
    let config = SlsConfig::from_uri_with_env(uri.target(), &mut options, &|_| None).unwrap();
    options.finish().unwrap();
    let env = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
    SlsSink::new(config)
        .unwrap()
        .with_credential_env(&env)
        .unwrap()
        .with_addon_token_config("/nonexistent/eventer-test/token-config")
}

async fn fake() -> FakeSls {
    let sls = FakeSls::start().await;
    sls.add_key(KEY_ID, KEY_SECRET);
    sls
}

fn keyed(sls: &FakeSls, extra: &str) -> SlsSink {
    sink(&format!(
        "{}?project=my-project&logStore=k8s-events&regionId=cn-hangzhou&accessKeyId={KEY_ID}&accessKeySecret={KEY_SECRET}{extra}",
        sls.endpoint()
    ))
}

/// `n` Pod events that happened in the last minute, each with its own uid.
fn recent_events(n: usize) -> Vec<Event> {
    let now = Timestamp::now();
    (0..n)
        .map(|i| {
            let last = now - SignedDuration::from_millis(i as i64);
            Event::builder()
                .meta("prod", &format!("web-{i}.17b2c3d4e5f6"), &format!("uid-{i}"))
                .kind("Pod")
                .object("prod", &format!("web-{i}"))
                .reason("BackOff")
                .message(&format!("Back-off restarting failed container app in pod web-{i}"))
                .warning()
                .count(2)
                .at(now - SignedDuration::from_mins(1), last)
                .source("kubelet", "node-1")
                .build()
        })
        .collect()
}

fn shared(events: Vec<Event>) -> Vec<SharedEvent> {
    events.into_iter().map(Arc::new).collect()
}

fn uids(sls: &FakeSls) -> Vec<String> {
    sls.logs().iter().map(|l| l.get("event_uid").expect("event_uid").to_owned()).collect()
}

async fn run_pipeline(sink: SlsSink, events: Vec<Event>) -> eventer_core::Report {
    let mut config = PipelineConfig::default();
    config.backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(20));
    Pipeline::new(Box::new(VecSource::new(events)))
        .route(Route::new("sls", Box::new(sink)))
        .config(config)
        .run(std::future::pending())
        .await
        .unwrap()
}

#[tokio::test]
async fn conformance_and_documented_keys() {
    let sls = fake().await;
    let mut sink = keyed(&sls, "&topic=k8s-event&label=cluster,prod");
    let outcomes = assert_sink_conformance(&mut sink, sample_events()).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Delivered)), "{outcomes:?}");

    let writes = sls.writes();
    assert_eq!(writes.len(), 1, "one request for the batch, Node events included");
    for w in &writes {
        assert_eq!((w.project.as_str(), w.log_store.as_str()), ("my-project", "k8s-events"));
        assert_eq!((w.access_key_id.as_str(), w.signature_version, w.compressed), (KEY_ID, 4, true));
        assert_eq!(w.group.topic.as_deref(), Some("k8s-event"));
        assert_eq!(
            w.group.log_tags.iter().map(|t| (t.key.as_str(), t.value.as_str())).collect::<Vec<_>>(),
            [("cluster", "prod")]
        );
    }
    let hostname = gethostname::gethostname().to_string_lossy().into_owned();
    assert_eq!(writes[0].group.source.as_deref(), Some(hostname.as_str()), "the group comes from eventer's host");

    let logs = sls.logs();
    let backoff = logs.iter().find(|l| l.get("reason") == Some("BackOff")).unwrap();
    for (key, value) in [
        ("hostname", "node-1"),
        ("level", "Warning"),
        ("pod_name", "web-0"),
        ("cluster", "prod"),
        ("namespace", "prod"),
        ("kind", "Pod"),
        ("name", "web-0"),
        ("message", "Back-off restarting failed container app in pod web-0"),
        ("count", "12"),
        ("first_timestamp", "2024-01-01T00:00:00Z"),
        ("last_timestamp", "2024-01-01T00:05:00Z"),
        ("event_name", "web-0.17b2c3d4e5f6a7b8"),
        ("event_uid", "uid-1"),
        ("source_component", "kubelet"),
    ] {
        assert_eq!(backoff.get(key), Some(value), "{key}");
    }
    let event: serde_json::Value = serde_json::from_str(backoff.get("eventId").unwrap()).unwrap();
    assert_eq!(event["involvedObject"]["name"], "web-0");
    let node = logs.iter().find(|l| l.get("kind") == Some("Node")).unwrap();
    assert_eq!((node.get("pod_name"), node.get("pod_id")), (None, None), "pod keys only for Pods");
    assert_eq!(node.get("hostname"), Some("node-1"), "the node is in hostname");
}

#[tokio::test]
async fn node_events_from_many_nodes_take_one_request_per_batch() {
    let sls = fake().await;
    let events: Vec<Event> = (0..3000)
        .map(|i| {
            let node = format!("node-{i}");
            Event::builder()
                .meta("default", &format!("{node}.17b2c3d4e5f6"), &format!("uid-{i}"))
                .kind("Node")
                .object("", &node)
                .reason("NodeNotReady")
                .message("Node is not ready")
                .warning()
                .at(Timestamp::now(), Timestamp::now())
                .source("node-controller", &node)
                .build()
        })
        .collect();
    let mut sink = keyed(&sls, "&maxBatchLogs=1000");
    let outcomes = sink.send(&shared(events)).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Delivered)), "{outcomes:?}");
    assert_eq!(sls.writes().len(), 3, "⌈3000 / maxBatchLogs⌉ requests, not one per node");
    let hosts: HashSet<String> = sls.logs().iter().map(|l| l.get("hostname").unwrap().to_owned()).collect();
    assert_eq!(hosts.len(), 3000, "each log keeps its node");
}

#[tokio::test]
async fn three_thousand_events_arrive_exactly_once() {
    let sls = fake().await;
    let events = recent_events(3000);
    let expected: Vec<(String, Timestamp)> =
        events.iter().map(|e| (e.uid.to_string(), e.last_seen().unwrap())).collect();
    let report = run_pipeline(keyed(&sls, "&batchWindow=20ms"), events).await;
    assert_eq!((report.sinks[0].delivered, report.sinks[0].failed), (3000, 0));

    let logs = sls.logs();
    assert_eq!(logs.len(), 3000);
    let by_uid: std::collections::HashMap<&str, &eventer_fake_sls::proto::Log> =
        logs.iter().map(|l| (l.get("event_uid").unwrap(), l)).collect();
    assert_eq!(by_uid.len(), 3000, "no duplicates");
    for (uid, last) in &expected {
        let log = by_uid[uid.as_str()];
        assert_eq!(i64::from(log.time), last.as_second(), "__time__ is the last occurrence");
        assert_eq!(log.time_ns, Some(last.subsec_nanosecond().unsigned_abs()));
        for key in ["eventId", "hostname", "level", "pod_id", "pod_name", "namespace", "reason", "message", "count"] {
            assert!(log.get(key).is_some(), "{key} missing");
        }
    }
    assert!(sls.writes().iter().all(|w| w.group.logs.len() <= 4096));
}

#[tokio::test]
async fn transient_failures_mid_stream_lose_nothing_and_duplicate_nothing() {
    let sls = fake().await;
    sls.pass_next(3);
    sls.fail_next(5, Failure::ServerBusy);
    sls.pass_next(2);
    sls.fail_next(2, Failure::WriteQuotaExceed);
    let report = run_pipeline(keyed(&sls, "&maxBatchLogs=100&batchWindow=5ms"), recent_events(3000)).await;
    let s = &report.sinks[0];
    assert_eq!((s.delivered, s.failed, s.dropped), (3000, 0, 0));
    assert!(s.retried >= 7, "every refused request was retried: {s:?}");

    let refusals = sls.refusals();
    let codes: Vec<(u16, &str)> = refusals.iter().map(|r| (r.status, r.code.as_str())).collect();
    assert_eq!(codes, [[(503, "ServerBusy")].repeat(5), [(403, "WriteQuotaExceed")].repeat(2)].concat());
    assert!(refusals.iter().all(|r| r.injected));
    let uids = uids(&sls);
    assert_eq!(uids.len(), 3000, "nothing duplicated");
    assert_eq!(uids.iter().collect::<HashSet<_>>().len(), 3000, "nothing lost");
}

#[tokio::test]
async fn permanent_errors_are_rejected_with_a_clear_message() {
    let sls = fake().await;
    let mut sink = keyed(&sls, "");
    sink.start().await.unwrap();
    for (failure, code, hint) in [
        (Failure::LogStoreNotExist, "404 LogStoreNotExist", "create the logstore"),
        (Failure::ProjectNotExist, "404 ProjectNotExist", "check the project name"),
        (Failure::SignatureNotMatch, "401 SignatureNotMatch", "check accessKeySecret"),
        (Failure::Unauthorized, "401 Unauthorized", "log:PostLogStoreLogs"),
    ] {
        sls.fail_next(1, failure);
        let outcomes = sink.send(&shared(recent_events(3))).await;
        assert_eq!(outcomes.len(), 3);
        for o in outcomes {
            let Outcome::Rejected(e) = o else { panic!("expected Rejected, got {o:?}") };
            assert!(!e.is_temporary());
            let text = e.to_string();
            assert!(text.contains(code) && text.contains(hint) && text.contains("request id FAKE"), "{text}");
            assert!(text.contains("project my-project logstore k8s-events"), "{text}");
        }
    }
    assert!(sls.logs().is_empty());
    assert_eq!(sls.requests(), 4, "a refusal that no split can fix is not split");
}

/// Indices of the events whose outcome is not `Delivered`.
fn undelivered(outcomes: &[Outcome]) -> Vec<usize> {
    (0..outcomes.len()).filter(|&i| !matches!(outcomes[i], Outcome::Delivered)).collect()
}

#[tokio::test]
async fn one_invalid_event_is_rejected_alone_and_the_rest_archived_once() {
    let sls = fake().await;
    sls.poison("POISON");
    let mut sink = keyed(&sls, "");
    let mut events = recent_events(416);
    events[137].message = "a message SLS refuses: POISON".into();
    let outcomes = sink.send(&shared(events)).await;
    assert_eq!(undelivered(&outcomes), [137]);
    let Outcome::Rejected(e) = &outcomes[137] else { panic!("{:?}", outcomes[137]) };
    assert!(e.chain().contains("400 PostBodyInvalid"), "{}", e.chain());

    let uids = uids(&sls);
    assert_eq!(uids.len(), 415, "nothing archived twice");
    assert_eq!(uids.iter().collect::<HashSet<_>>().len(), 415);
    assert!(!uids.contains(&"uid-137".to_owned()));
    // 1 + 2·⌈log2 416⌉ requests at most, 9 of them refused.
    assert!(sls.requests() <= 19, "{} requests", sls.requests());
    assert_eq!(sls.refusals().len(), 10, "the batch and one half per level");
}

#[tokio::test]
async fn an_event_too_large_for_the_server_even_alone_is_truncated_not_rejected() {
    let sls = fake().await;
    // A proxy before SLS with a lower limit than maxBatchBytes.
    sls.limit_raw_bytes(16 * 1024);
    let mut sink = keyed(&sls, "");
    let mut events = recent_events(21);
    events[20].message = "m".repeat(100_000).into();
    let outcomes = sink.send(&shared(events)).await;
    assert_eq!(undelivered(&outcomes), [0usize; 0], "{outcomes:?}");
    let logs = sls.logs();
    assert_eq!(logs.len(), 21);
    let big = logs.iter().find(|l| l.get("event_uid") == Some("uid-20")).unwrap();
    assert!(big.get("message").unwrap().ends_with(" bytes]") || big.get("eventId").unwrap().ends_with(" bytes]"));
    assert_eq!(big.get("reason"), Some("BackOff"));
    assert!(sls.writes().iter().all(|w| w.raw_size <= 16 * 1024));
    assert!(sls.refusals().iter().all(|r| (r.status, r.code.as_str()) == (413, "PostBodyTooLarge")));

    // Below what any event can be cut to: rejected, saying what to change.
    sls.limit_raw_bytes(300);
    let outcomes = sink.send(&shared(recent_events(2))).await;
    for o in &outcomes {
        let Outcome::Rejected(e) = o else { panic!("{outcomes:?}") };
        assert!(e.chain().contains("413 PostBodyTooLarge") && e.chain().contains("lower maxBatchBytes"), "{e}");
    }
}

#[tokio::test]
async fn a_reply_later_than_the_timeout_stores_a_second_copy_and_one_within_it_does_not() {
    // SLS stores the first request but answers after the client gave up: the retry stores
    // the batch again, as documented (PutLogs is not idempotent).
    let sls = fake().await;
    sls.answer_late(1, Duration::from_secs(30));
    let report = run_pipeline(keyed(&sls, "&timeout=300ms"), recent_events(10)).await;
    assert_eq!((report.sinks[0].delivered, report.sinks[0].failed), (10, 0));
    assert!(report.sinks[0].retried >= 10, "{:?}", report.sinks[0]);
    let copies = uids(&sls);
    assert_eq!((copies.len(), copies.iter().collect::<HashSet<_>>().len()), (20, 10), "each event twice");

    // A slow answer within the timeout is waited for: one copy.
    let sls = fake().await;
    sls.answer_late(1, Duration::from_millis(300));
    let report = run_pipeline(keyed(&sls, "&timeout=10s"), recent_events(10)).await;
    assert_eq!((report.sinks[0].delivered, report.sinks[0].retried), (10, 0));
    assert_eq!(uids(&sls).len(), 10, "each event once");
}

#[tokio::test]
async fn transient_answers_are_retried() {
    let sls = fake().await;
    let mut sink = keyed(&sls, "");
    for (failure, kind) in [
        (Failure::ServerBusy, ErrorKind::Unavailable),
        (Failure::InternalServerError, ErrorKind::Unavailable),
        (Failure::WriteQuotaExceed, ErrorKind::RateLimited),
        (Failure::ShardWriteQuotaExceed, ErrorKind::RateLimited),
        (Failure::RequestTimeExpired, ErrorKind::Unavailable),
    ] {
        sls.fail_next(1, failure.clone());
        let outcomes = sink.send(&shared(recent_events(2))).await;
        for o in outcomes {
            let Outcome::Retry(e) = o else { panic!("{failure:?}: expected Retry, got {o:?}") };
            assert_eq!(e.kind(), kind, "{failure:?}");
        }
    }
    assert!(sls.logs().is_empty());
    // The same events go through once the server recovers.
    assert!(sink.send(&shared(recent_events(2))).await.iter().all(|o| matches!(o, Outcome::Delivered)));
    assert_eq!(sls.logs().len(), 2);
}

#[tokio::test]
async fn a_server_that_does_not_answer_times_out_and_is_retried() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept connections and never answer.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut sink = sink(&format!(
        "http://127.0.0.1:{port}?project=p&logStore=l&regionId=cn-hangzhou&timeout=300ms\
         &accessKeyId={KEY_ID}&accessKeySecret={KEY_SECRET}"
    ));
    let outcomes = sink.send(&shared(recent_events(1))).await;
    let Outcome::Retry(e) = &outcomes[0] else { panic!("{outcomes:?}") };
    assert!(e.chain().contains("timed out"), "{}", e.chain());
    assert_eq!(e.retry_after(), None, "the pipeline's growing backoff applies");
    silent.abort();
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_fake_and_rejected() {
    let sls = fake().await;
    let mut sink = sink(&format!(
        "{}?project=p&logStore=l&regionId=cn-hangzhou&accessKeyId={KEY_ID}&accessKeySecret=WrongSecret999",
        sls.endpoint()
    ));
    let outcomes = sink.send(&shared(recent_events(1))).await;
    let Outcome::Rejected(e) = &outcomes[0] else { panic!("{outcomes:?}") };
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.to_string().contains("SignatureNotMatch"), "{e}");
    let shown = format!("{} {:?} {sink:?}", e.chain(), e);
    assert!(!shown.contains("WrongSecret999") && !shown.contains(KEY_ID), "{shown}");
}

#[tokio::test]
async fn unknown_key_id_is_scrubbed_from_the_error() {
    let sls = FakeSls::start().await;
    let mut sink = keyed(&sls, "");
    let outcomes = sink.send(&shared(recent_events(1))).await;
    let Outcome::Rejected(e) = &outcomes[0] else { panic!("{outcomes:?}") };
    let text = e.chain();
    assert!(text.contains("401 Unauthorized: AccessKeyId not found: ***"), "{text}");
    assert!(!text.contains(KEY_ID) && !text.contains(KEY_SECRET), "{text}");
}

#[tokio::test]
async fn signature_v1_is_accepted() {
    let sls = fake().await;
    let mut sink = keyed(&sls, "&signatureVersion=v1");
    let outcomes = sink.send(&shared(recent_events(10))).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Delivered)), "{outcomes:?}");
    assert_eq!(sls.writes()[0].signature_version, 1);
}

#[tokio::test]
async fn a_batch_is_split_within_the_size_limit() {
    let sls = fake().await;
    let mut sink = keyed(&sls, "&maxBatchBytes=65536");
    let outcomes = sink.send(&shared(recent_events(1000))).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Delivered)));
    let writes = sls.writes();
    assert!(writes.len() > 1);
    assert!(writes.iter().all(|w| w.raw_size <= 65536), "{:?}", writes.iter().map(|w| w.raw_size).collect::<Vec<_>>());
    assert_eq!(uids(&sls).iter().collect::<HashSet<_>>().len(), 1000);
}

#[tokio::test]
async fn a_stream_of_events_fills_every_request_to_the_byte_limit() {
    // 2,000 logs of one size: each request holds as many as 64 KiB takes, and only the
    // last holds fewer. Without batches cut by bytes, each batch of 100 would go out as a
    // full request and a partial one.
    let sls = fake().await;
    let at = Timestamp::now() - SignedDuration::from_mins(1);
    let events: Vec<Event> = (0..2000)
        .map(|i| {
            Event::builder()
                .meta("prod", &format!("web-{i:04}.17b2c3d4e5f6"), &format!("uid-{i:04}"))
                .kind("Pod")
                .object("prod", &format!("web-{i:04}"))
                .reason("BackOff")
                .message(&format!("Back-off restarting failed container app in pod web-{i:04}"))
                .warning()
                .at(at, at)
                .source("kubelet", "node-1")
                .build()
        })
        .collect();
    let report = run_pipeline(keyed(&sls, "&maxBatchBytes=65536&maxBatchLogs=100&batchWindow=10m"), events).await;
    assert_eq!((report.sinks[0].delivered, report.sinks[0].retried), (2000, 0));

    let writes = sls.writes();
    let logs: Vec<_> = writes.iter().flat_map(|w| &w.group.logs).collect();
    let expected: Vec<String> = (0..2000).map(|i| format!("uid-{i:04}")).collect();
    assert_eq!(
        logs.iter().map(|l| l.get("event_uid").unwrap()).collect::<Vec<_>>(),
        expected,
        "every log once, in order"
    );
    let size = prost::encoding::message::encoded_len(1, logs[0]);
    assert!(logs.iter().all(|l| prost::encoding::message::encoded_len(1, *l) == size));
    let per = writes[0].group.logs.len();
    assert!(per < 100, "{per} logs of {size} bytes fill 64 KiB");
    assert_eq!(writes.len(), 2000usize.div_ceil(per), "{per} logs per request");
    for w in &writes[..writes.len() - 1] {
        assert_eq!(w.group.logs.len(), per);
        assert!(w.raw_size <= 65536 && w.raw_size + size > 65536, "a request of {} bytes had room", w.raw_size);
    }
}

#[tokio::test]
async fn an_oversized_event_is_truncated_and_delivered() {
    let sls = fake().await;
    let mut sink = keyed(&sls, "&maxBatchBytes=65536");
    let mut events = recent_events(2);
    events[1].message = "x".repeat(200_000).into();
    let outcomes = sink.send(&shared(events)).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Delivered)), "{outcomes:?}");
    let logs = sls.logs();
    assert_eq!(logs.len(), 2);
    let big = logs.iter().find(|l| l.get("event_uid") == Some("uid-1")).unwrap();
    assert!(big.get("message").unwrap().ends_with(" bytes]"));
    assert_eq!(big.get("reason"), Some("BackOff"));
    assert!(sls.writes().iter().all(|w| w.raw_size <= 65536));
}

#[tokio::test]
async fn connection_errors_are_retried() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut sink = sink(&format!(
        "http://127.0.0.1:{port}?project=p&logStore=l&regionId=cn-hangzhou&accessKeyId={KEY_ID}&accessKeySecret={KEY_SECRET}"
    ));
    let outcomes = sink.send(&shared(recent_events(2))).await;
    for o in &outcomes {
        let Outcome::Retry(e) = o else { panic!("{o:?}") };
        assert!(e.to_string().starts_with("cannot reach SLS at http://127.0.0.1:"), "{e}");
        assert!(!e.chain().contains(KEY_SECRET) && !e.chain().contains(KEY_ID));
    }
}

/// Serve `first` from the metadata service; the fake SLS accepts `first` and `second`.
async fn ram_role(first: &StsCredentials, second: &StsCredentials) -> (FakeSls, FakeMetadata, SlsSink) {
    let sls = FakeSls::start().await;
    sls.add_sts(first);
    sls.add_sts(second);
    let metadata = FakeMetadata::start("EventerRole", "cn-hangzhou", first.clone()).await;
    let sink = sink(&format!("{}?project=p&logStore=l&metadataEndpoint={}", sls.endpoint(), metadata.endpoint()));
    (sls, metadata, sink)
}

#[tokio::test]
async fn sts_credentials_are_used_and_refreshed_before_expiry() {
    // Valid for another hour: used as they are.
    let a = StsCredentials::generate(1, Duration::from_secs(3600));
    let b = StsCredentials::generate(2, Duration::from_secs(3600));
    let (sls, metadata, mut sink) = ram_role(&a, &b).await;
    sink.start().await.unwrap();
    assert_eq!(metadata.credential_requests(), 1);
    for _ in 0..2 {
        assert!(matches!(sink.send(&shared(recent_events(1))).await[0], Outcome::Delivered));
    }
    assert_eq!(metadata.credential_requests(), 1, "no refresh while far from expiry");
    let w = &sls.writes()[1];
    assert_eq!(
        (w.access_key_id.as_str(), w.security_token.as_deref()),
        (a.access_key_id.as_str(), Some(a.security_token.as_str()))
    );
    assert_eq!(w.signature_version, 4, "region cn-hangzhou came from the metadata service");

    // Two minutes left: replaced before they expire.
    let a = StsCredentials::generate(3, Duration::from_secs(120));
    let (sls, metadata, mut sink) = ram_role(&a, &b).await;
    sink.start().await.unwrap();
    metadata.set_credentials(b.clone());
    assert!(matches!(sink.send(&shared(recent_events(1))).await[0], Outcome::Delivered));
    assert_eq!(metadata.credential_requests(), 2);
    let w = &sls.writes()[0];
    assert_eq!(
        (w.access_key_id.as_str(), w.security_token.as_deref()),
        (b.access_key_id.as_str(), Some(b.security_token.as_str()))
    );
    let shown = format!("{sink:?}");
    for secret in [&b.access_key_id, &b.access_key_secret, &b.security_token] {
        assert!(!shown.contains(secret.as_str()), "{shown}");
    }
}

#[tokio::test]
async fn a_refused_sts_token_is_refreshed_and_the_request_resent() {
    let a = StsCredentials::generate(1, Duration::from_secs(3600));
    let b = StsCredentials::generate(2, Duration::from_secs(3600));
    let (sls, metadata, mut sink) = ram_role(&a, &b).await;
    sink.start().await.unwrap();
    sls.revoke(&a.access_key_id);
    metadata.set_credentials(b.clone());
    let outcomes = sink.send(&shared(recent_events(5))).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Delivered)), "{outcomes:?}");
    assert_eq!(sls.refusals().iter().map(|r| r.code.as_str()).collect::<Vec<_>>(), ["Unauthorized"]);
    assert_eq!(sls.writes()[0].access_key_id, b.access_key_id);
    assert_eq!(sls.logs().len(), 5);
}

#[tokio::test]
async fn metadata_without_imdsv2_still_works() {
    let a = StsCredentials::generate(1, Duration::from_secs(3600));
    let sls = FakeSls::start().await;
    sls.add_sts(&a);
    let metadata = FakeMetadata::start("EventerRole", "cn-hangzhou", a.clone()).await.without_imdsv2();
    let mut sink = sink(&format!("{}?project=p&logStore=l&metadataEndpoint={}", sls.endpoint(), metadata.endpoint()));
    assert!(matches!(sink.send(&shared(recent_events(1))).await[0], Outcome::Delivered));
    assert_eq!(metadata.credential_requests(), 1);
}

#[tokio::test]
async fn no_credentials_and_metadata_unreachable_is_a_clear_start_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut sink = sink(&format!(
        "http://127.0.0.1:1?project=p&logStore=l&regionId=cn-hangzhou&metadataEndpoint=http://127.0.0.1:{port}"
    ));
    let err = sink.start().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(!err.is_temporary());
    assert_eq!(
        err.to_string(),
        format!(
            "no SLS credentials found; tried: the accessKeyId/accessKeySecret options (not set), the \
             AccessKeyId/AccessKeySecret environment variables (not set), the ALIBABA_CLOUD_ACCESS_KEY_ID/\
             ALIBABA_CLOUD_ACCESS_KEY_SECRET environment variables (not set), RRSA (ALIBABA_CLOUD_ROLE_ARN \
             not set), ACK's add-on token file /nonexistent/eventer-test/token-config (absent), the ECS RAM \
             role (ECS metadata service http://127.0.0.1:{port}: cannot reach it)"
        )
    );
}

#[tokio::test]
async fn registry_builds_the_sink_offline_and_names_bad_options() {
    let mut registry = Registry::with_builtins();
    eventer_sink_sls::register(&mut registry);
    assert!(registry.sink_schemes().contains(&eventer_sink_sls::SCHEME));
    let cx = BuildContext::default().with_frequency(Some(Duration::from_secs(7)));
    let uri = "sls:https://sls.aliyuncs.com?project=p&logStore=l&accessKeyId=AKIDX&accessKeySecret=SKX&level=Warning";
    let built = registry.build_sink(&uri.parse().unwrap(), &cx).unwrap();
    assert_eq!(built.sink.batching().window, Duration::from_secs(7), "--frequency is the batch window");
    assert_eq!(built.sink.batching().max_events, 4096);
    assert!(!built.uri.contains("SKX") && !built.uri.contains("AKIDX"));
    let built = registry.build_sink(&"sls:?project=p&logStore=l&batchWindow=2s".parse().unwrap(), &cx).unwrap();
    assert_eq!(built.sink.batching().window, Duration::from_secs(2));
    let built = registry.build_sink(&"sls:?project=p&logStore=l".parse().unwrap(), &BuildContext::default()).unwrap();
    assert_eq!(built.sink.batching().window, Duration::from_secs(1), "near real time by default");

    let err = |u: &str| registry.build_sink(&u.parse().unwrap(), &cx).unwrap_err();
    let e = err("sls:?logStore=l");
    assert_eq!((e.kind(), e.to_string().as_str()), (ErrorKind::Config, "missing required option project"));
    assert!(err("sls:?project=p&logStore=l&logstore=x").to_string().starts_with("unknown option logstore for sls"));
}

#[tokio::test]
async fn preview_renders_the_log_fields() {
    let mut sink = sink("?project=p&logStore=l&regionId=cn-hangzhou&topic=t&label=cluster,prod");
    let lines = sink.preview(&shared(sample_events())).unwrap();
    assert_eq!(lines.len(), 4);
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(
        (&first["__topic__"], &first["__tag__:cluster"], &first["reason"]),
        (&"t".into(), &"prod".into(), &"BackOff".into())
    );
    assert!(first["__time__"].is_u64() && first["eventId"].is_string());
}

const ROLE_ARN: &str = "acs:ram::1234567890:role/eventer-sls";
const PROVIDER_ARN: &str = "acs:ram::1234567890:oidc-provider/ack-rrsa-c0ffee";

/// RRSA's variables as ACK's webhook sets them, pointing at `sts` and a token file in `dir`.
fn rrsa_env(sts: &FakeSts, dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("ALIBABA_CLOUD_ROLE_ARN", ROLE_ARN.to_owned()),
        ("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", PROVIDER_ARN.to_owned()),
        ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", dir.join("token").display().to_string()),
        ("ALIBABA_CLOUD_STS_ENDPOINT", sts.endpoint()),
        ("ALIBABA_CLOUD_ROLE_SESSION_NAME", "eventer-test".to_owned()),
    ]
}

fn signed_with(w: &eventer_fake_sls::Write) -> (&str, Option<&str>) {
    (w.access_key_id.as_str(), w.security_token.as_deref())
}

#[tokio::test]
async fn rrsa_exchanges_the_projected_token_with_sts_and_refreshes_before_expiry() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "eyJhbGciOiJSUzI1NiJ9.token-1.sig\n").unwrap();
    // Two minutes left: due for a refresh at the first request.
    let a = StsCredentials::generate(1, Duration::from_secs(120));
    let b = StsCredentials::generate(2, Duration::from_secs(3600));
    let sts = FakeSts::start(ROLE_ARN, PROVIDER_ARN, "eyJhbGciOiJSUzI1NiJ9.token-1.sig", a.clone()).await;
    let sls = FakeSls::start().await;
    sls.add_sts(&a);
    sls.add_sts(&b);
    let uri = format!("{}?project=p&logStore=l&regionId=cn-hangzhou", sls.endpoint());
    let mut sink = sink_with_env(&uri, &rrsa_env(&sts, dir.path()));
    sink.start().await.unwrap();
    let calls = sts.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].role_arn.as_str(), calls[0].provider_arn.as_str(), calls[0].token.as_str()),
        (ROLE_ARN, PROVIDER_ARN, "eyJhbGciOiJSUzI1NiJ9.token-1.sig"),
        "the token as kubelet wrote it, without its newline"
    );
    assert_eq!((calls[0].session_name.as_str(), calls[0].duration_seconds), ("eventer-test", 3600));

    // kubelet rotated the projected token; STS now hands out other credentials.
    std::fs::write(dir.path().join("token"), "eyJhbGciOiJSUzI1NiJ9.token-2.sig").unwrap();
    sts.set_token("eyJhbGciOiJSUzI1NiJ9.token-2.sig");
    sts.set_credentials(b.clone());
    assert!(matches!(sink.send(&shared(recent_events(1))).await[0], Outcome::Delivered));
    assert_eq!(sts.calls().len(), 2, "refreshed before expiry, with the file's new token");
    assert_eq!(signed_with(&sls.writes()[0]), (b.access_key_id.as_str(), Some(b.security_token.as_str())));
    // Far from expiry now: no more calls.
    assert!(matches!(sink.send(&shared(recent_events(1))).await[0], Outcome::Delivered));
    assert_eq!(sts.requests(), 2);
    let shown = format!("{sink:?}");
    for secret in [&b.access_key_id, &b.access_key_secret, &b.security_token] {
        assert!(!shown.contains(secret.as_str()), "{shown}");
    }
}

#[tokio::test]
async fn rrsa_refused_by_sts_is_a_start_error_naming_sts_and_not_the_token() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "eyJ.stale-token.sig").unwrap();
    let sts = FakeSts::start(
        ROLE_ARN,
        PROVIDER_ARN,
        "eyJ.current-token.sig",
        StsCredentials::generate(1, Duration::from_secs(3600)),
    )
    .await;
    let sls = fake().await;
    let uri = format!("{}?project=p&logStore=l&regionId=cn-hangzhou", sls.endpoint());
    let mut sink = sink_with_env(&uri, &rrsa_env(&sts, dir.path()));
    let err = sink.start().await.unwrap_err().chain();
    assert!(err.contains(&format!("STS {}", sts.endpoint())), "{err}");
    assert!(err.contains("AuthenticationFail.OIDCToken.Invalid"), "{err}");
    assert!(!err.contains("stale-token"), "{err}");
    assert!(sls.writes().is_empty());
}

#[tokio::test]
async fn the_ack_addon_token_file_is_read_and_read_again_before_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token-config");
    let a = StsCredentials::generate(1, Duration::from_secs(120));
    let b = StsCredentials::generate(2, Duration::from_secs(3600));
    std::fs::write(&path, addon_token_config(&a, "0123456789abcdef")).unwrap();
    let sls = FakeSls::start().await;
    sls.add_sts(&a);
    sls.add_sts(&b);
    // A metadata service is there too: the token file comes first, as in kube-eventer.
    let metadata = FakeMetadata::start("EventerRole", "cn-hangzhou", b.clone()).await;
    let uri = format!(
        "{}?project=p&logStore=l&regionId=cn-hangzhou&metadataEndpoint={}",
        sls.endpoint(),
        metadata.endpoint()
    );
    let mut sink = sink(&uri).with_addon_token_config(&path);
    sink.start().await.unwrap();
    // ACK rewrites the file before the credentials in it expire.
    std::fs::write(&path, addon_token_config(&b, "fedcba9876543210fedcba9876543210")).unwrap();
    assert!(matches!(sink.send(&shared(recent_events(1))).await[0], Outcome::Delivered));
    assert_eq!(signed_with(&sls.writes()[0]), (b.access_key_id.as_str(), Some(b.security_token.as_str())));
    assert_eq!(metadata.credential_requests(), 0);
}

#[tokio::test]
async fn alibaba_cloud_sdk_variables_are_read() {
    let c = StsCredentials::generate(7, Duration::from_secs(3600));
    let sls = FakeSls::start().await;
    sls.add_sts(&c);
    let uri = format!("{}?project=p&logStore=l&regionId=cn-hangzhou", sls.endpoint());
    let env = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", c.access_key_id.clone()),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", c.access_key_secret.clone()),
        ("ALIBABA_CLOUD_SECURITY_TOKEN", c.security_token.clone()),
    ];
    let mut sink = sink_with_env(&uri, &env);
    assert!(matches!(sink.send(&shared(recent_events(1))).await[0], Outcome::Delivered));
    assert_eq!(signed_with(&sls.writes()[0]), (c.access_key_id.as_str(), Some(c.security_token.as_str())));
}

#[tokio::test]
async fn the_credential_chain_takes_the_first_source_that_applies() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "eyJ.token.sig").unwrap();
    let [sdk, oidc, addon, role] = [1, 2, 3, 4].map(|n| StsCredentials::generate(n, Duration::from_secs(3600)));
    let sts = FakeSts::start(ROLE_ARN, PROVIDER_ARN, "eyJ.token.sig", oidc.clone()).await;
    let metadata = FakeMetadata::start("EventerRole", "cn-hangzhou", role.clone()).await;
    let addon_file = dir.path().join("token-config");
    std::fs::write(&addon_file, addon_token_config(&addon, "0123456789abcdef")).unwrap();
    let sls = fake().await;
    for c in [&sdk, &oidc, &addon, &role] {
        sls.add_sts(c);
    }
    let sdk_env = vec![
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", sdk.access_key_id.clone()),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", sdk.access_key_secret.clone()),
        ("ALIBABA_CLOUD_SECURITY_TOKEN", sdk.security_token.clone()),
    ];
    let uri = format!(
        "{}?project=p&logStore=l&regionId=cn-hangzhou&metadataEndpoint={}",
        sls.endpoint(),
        metadata.endpoint()
    );
    let all = [sdk_env.clone(), rrsa_env(&sts, dir.path())].concat();
    let cases = [
        ("accessKeyId option", all.clone(), Some(&addon_file), &sdk),
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", all.clone(), Some(&addon_file), &sdk),
        ("RRSA", rrsa_env(&sts, dir.path()), Some(&addon_file), &oidc),
        ("add-on token file", Vec::new(), Some(&addon_file), &addon),
        ("ECS RAM role", Vec::new(), None, &role),
    ];
    for (i, (name, env, file, expected)) in cases.into_iter().enumerate() {
        let uri = if i == 0 { format!("{uri}&accessKeyId={KEY_ID}&accessKeySecret={KEY_SECRET}") } else { uri.clone() };
        let mut sink = sink_with_env(&uri, &env);
        if let Some(file) = file {
            sink = sink.with_addon_token_config(file);
        }
        assert!(matches!(sink.send(&shared(recent_events(1))).await[0], Outcome::Delivered), "{name}");
        let writes = sls.writes();
        let used = writes.last().unwrap().access_key_id.as_str();
        let expected = if i == 0 { KEY_ID } else { expected.access_key_id.as_str() };
        assert_eq!(used, expected, "{name}");
    }
}
