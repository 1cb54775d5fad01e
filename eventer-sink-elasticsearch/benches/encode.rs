//! Encoding events as bulk lines: `cargo bench -p eventer-sink-elasticsearch --bench encode`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eventer_core::decode::event_from_json;
use eventer_sink_elasticsearch::EsConfig;

fn events(n: usize) -> Vec<eventer_core::Event> {
    (0..n)
        .map(|i| {
            event_from_json(&format!(
                r#"{{"kind":"Event","apiVersion":"v1","metadata":{{"name":"web-{i}.17d5","namespace":"shop","uid":"uid-{i}","resourceVersion":"{i}"}},"involvedObject":{{"kind":"Pod","namespace":"shop","name":"web-{i}","uid":"pod-{i}","apiVersion":"v1"}},"reason":"BackOff","message":"Back-off restarting failed container web in pod web-{i}","source":{{"component":"kubelet","host":"node-{}"}},"firstTimestamp":"2026-11-30T08:10:00Z","lastTimestamp":"2026-11-30T08:14:30Z","count":3,"type":"Warning"}}"#,
                i % 50
            ))
            .expect("a valid event")
        })
        .collect()
}

fn encode(c: &mut Criterion) {
    let uri: eventer_core::uri::ComponentUri =
        "elasticsearch:http://127.0.0.1:9200?use_namespace=true".parse().unwrap();
    let config = EsConfig::from_options(uri.target(), &mut uri.options()).unwrap();
    let events = events(1000);
    let mut group = c.benchmark_group("elasticsearch");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("encode_1000", |b| {
        let mut out = String::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            eventer_sink_elasticsearch::bench::encode(&config, &events, &mut out);
            std::hint::black_box(out.len())
        });
    });
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
