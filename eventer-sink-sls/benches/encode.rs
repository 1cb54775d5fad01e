//! Build + compress + sign one 4096-event PutLogs request: the sink's CPU cost per event,
//! then each stage alone (`stage_*`, the whole batch each).
//!
//! `cargo bench -p eventer-sink-sls --features bench --bench encode`

use std::{collections::BTreeMap, hint::black_box, sync::Arc};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eventer_core::SharedEvent;
use eventer_sink_sls::{
    SignatureVersion,
    bench::{Compressor, Credentials, Schema, SignableRequest, content_md5, sign},
};
use jiff::Timestamp;
use sha2::{Digest as _, Sha256};

const EVENTS: usize = 4096;

/// Realistic kubelet events as the apiserver sends them (about 900 bytes of JSON each).
fn events(now: Timestamp) -> Vec<SharedEvent> {
    (0..EVENTS)
        .map(|i| {
            let json = format!(
                r#"{{"kind":"Event","apiVersion":"v1","metadata":{{"name":"web-{i}.17b2c3d4e5f6{i:04x}","namespace":"prod","uid":"6a1f6c0e-6d0b-4a55-9f0e-{i:012}","resourceVersion":"{rv}","creationTimestamp":"{now}","managedFields":[{{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"{now}"}}]}},"involvedObject":{{"kind":"Pod","namespace":"prod","name":"web-{i}","uid":"0d9e8f7a-1b2c-4d3e-8f9a-{i:012}","apiVersion":"v1","resourceVersion":"99{i}","fieldPath":"spec.containers{{app}}"}},"reason":"BackOff","message":"Back-off restarting failed container app in pod web-{i}_prod(0d9e8f7a-1b2c-4d3e-8f9a-{i:012})","source":{{"component":"kubelet","host":"node-{node}"}},"firstTimestamp":"{now}","lastTimestamp":"{now}","count":{count},"type":"Warning","eventTime":null,"reportingComponent":"kubelet","reportingInstance":"node-{node}"}}"#,
                rv = 100_000 + i,
                node = i % 16,
                count = i % 30 + 1,
            );
            Arc::new(eventer_core::decode::event_from_json(&json).expect("valid event"))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let now = Timestamp::now();
    let batch = events(now);
    let mut schema =
        Schema::new("k8s-event", &BTreeMap::from([("cluster".to_owned(), "prod".to_owned())]), "eventer-0");
    let credentials = Credentials::new("LTAI5tExampleKeyId", "ExampleSecretExampleSecret");
    let mut compressor = Compressor::default();
    let mut group = c.benchmark_group("put_logs");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("build_compress_sign_4096_events", |b| {
        b.iter(|| {
            // The default 3 MiB limit splits these events into a few requests, as the sink does.
            let mut plan = schema.plan(black_box(&batch), now, 4096, 3 << 20);
            while let Some(planned) = plan.next() {
                let body = compressor.compress(&planned.raw);
                let mut request = SignableRequest::new("POST", "/logstores/k8s-events/shards/lb");
                request
                    .header("content-type", "application/x-protobuf")
                    .header("content-md5", body.md5.clone())
                    .header("host", "my-project.cn-hangzhou.log.aliyuncs.com")
                    .header("x-log-apiversion", "0.6.0")
                    .header("x-log-bodyrawsize", body.raw_size.to_string())
                    .header("x-log-compresstype", "lz4");
                sign(&mut request, &body.bytes, SignatureVersion::V4, "cn-hangzhou", &credentials, now);
                black_box((&request, &body));
                plan.recycle(planned);
            }
        });
    });
    // The stages alone, to see where the time goes.
    let raw: Vec<u8> = schema.plan(&batch, now, 4096, 3 << 20).flat_map(|g| g.raw).collect();
    group.bench_function("stage_plan", |b| {
        b.iter(|| {
            let mut plan = schema.plan(black_box(&batch), now, 4096, 3 << 20);
            while let Some(planned) = plan.next() {
                plan.recycle(black_box(planned));
            }
        });
    });
    group.bench_function("stage_lz4", |b| b.iter(|| black_box(compressor.compress(black_box(&raw)))));
    let body = compressor.compress(&raw);
    group.bench_function("stage_md5", |b| b.iter(|| black_box(content_md5(black_box(&body.bytes)))));
    group.bench_function("stage_sha256", |b| b.iter(|| black_box(Sha256::digest(black_box(&body.bytes)))));
    println!("{EVENTS} events: {} bytes of protobuf, {} compressed", raw.len(), body.bytes.len());
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
