//! Encoding events as Kafka messages: `cargo bench -p eventer-sink-kafka --bench encode`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eventer_core::decode::event_from_json;
use eventer_sink_kafka::Format;

fn events(n: usize) -> Vec<eventer_core::Event> {
    (0..n)
        .map(|i| {
            event_from_json(&format!(
                r#"{{"kind":"Event","apiVersion":"v1","metadata":{{"name":"web-{i}.17d5","namespace":"shop","uid":"uid-{i}","resourceVersion":"{i}","creationTimestamp":"2026-11-30T08:10:00Z"}},"involvedObject":{{"kind":"Pod","namespace":"shop","name":"web-{i}","uid":"pod-{i}","apiVersion":"v1","resourceVersion":"81","fieldPath":"spec.containers{{web}}"}},"reason":"BackOff","message":"Back-off restarting failed container web in pod web-{i}","source":{{"component":"kubelet","host":"node-{}"}},"firstTimestamp":"2026-11-30T08:10:00Z","lastTimestamp":"2026-11-30T08:14:30Z","count":3,"type":"Warning","eventTime":null,"reportingComponent":"kubelet","reportingInstance":"node-{}"}}"#,
                i % 50,
                i % 50
            ))
            .expect("a valid event")
        })
        .collect()
}

fn encode(c: &mut Criterion) {
    let events = events(1000);
    let mut group = c.benchmark_group("kafka");
    group.throughput(Throughput::Elements(events.len() as u64));
    for (name, format) in [("kube_eventer_1000", Format::KubeEventer), ("event_1000", Format::Event)] {
        group.bench_function(name, |b| {
            let mut out = String::with_capacity(4 << 10);
            b.iter(|| std::hint::black_box(eventer_sink_kafka::bench::encode(format, &events, &mut out)));
        });
    }
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
