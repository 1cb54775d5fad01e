//! Decoding one watch line (a ~1 KB core/v1 Event) into the core event.
//!
//! `cargo bench -p eventer-source-k8s --bench decode`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eventer_source_k8s::{WatchLine, decode_watch_line};

/// A typical kubelet BackOff event as the apiserver sends it, with managedFields.
const LINE: &str = r#"{"type":"MODIFIED","object":{"kind":"Event","apiVersion":"v1","metadata":{"name":"web-7f9c6d5b8-x2x4k.17b2c3d4e5f6a7b8","namespace":"production","uid":"7c1a2b3c-4d5e-4f60-8a1b-2c3d4e5f6a7b","resourceVersion":"123456789","creationTimestamp":"2024-05-01T10:00:00Z","managedFields":[{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"2024-05-01T10:05:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:count":{},"f:firstTimestamp":{},"f:involvedObject":{},"f:lastTimestamp":{},"f:message":{},"f:reason":{},"f:reportingComponent":{},"f:reportingInstance":{},"f:source":{"f:component":{},"f:host":{}},"f:type":{}}}]},"involvedObject":{"kind":"Pod","namespace":"production","name":"web-7f9c6d5b8-x2x4k","uid":"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d","apiVersion":"v1","resourceVersion":"123450000","fieldPath":"spec.containers{app}"},"reason":"BackOff","message":"Back-off restarting failed container app in pod web-7f9c6d5b8-x2x4k_production(0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d)","source":{"component":"kubelet","host":"ip-10-0-12-34.eu-west-1.compute.internal"},"firstTimestamp":"2024-05-01T10:00:00Z","lastTimestamp":"2024-05-01T10:05:00Z","count":7,"type":"Warning","eventTime":null,"reportingComponent":"kubelet","reportingInstance":"ip-10-0-12-34.eu-west-1.compute.internal"}}"#;

fn decode(c: &mut Criterion) {
    assert!(matches!(decode_watch_line(LINE), Ok(WatchLine::Upsert(e)) if e.count == 7));
    let mut group = c.benchmark_group("watch_line");
    group.throughput(Throughput::Bytes(LINE.len() as u64));
    group.bench_function("decode_1kb_event", |b| b.iter(|| decode_watch_line(std::hint::black_box(LINE)).unwrap()));
    // The core decoder alone on the object, to separate the line wrapper's cost.
    let object = &LINE[LINE.find(r#""object":"#).unwrap() + 9..LINE.len() - 1];
    group.bench_function("core_event_from_json", |b| {
        b.iter(|| eventer_core::decode::event_from_json(std::hint::black_box(object)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
