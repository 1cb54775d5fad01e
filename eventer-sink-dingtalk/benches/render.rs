//! Rendering cost per event: a single alert in text and markdown, and a 100-alert digest.
//! `cargo bench -p eventer-sink-dingtalk --bench render`

use std::{hint::black_box, sync::Arc};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eventer_core::{Event, SharedEvent, Sink, testing::sample_events, uri::ComponentUri};
use eventer_sink_dingtalk::{ChatConfig, DingTalkConfig, DingTalkSink};

fn sink(options: &str) -> DingTalkSink {
    let uri: ComponentUri =
        format!("dingtalk:http://127.0.0.1:9/robot/send?access_token=t&label=prod&timezone=Asia/Shanghai&{options}")
            .parse()
            .expect("valid URI");
    DingTalkSink::new(DingTalkConfig::from_options(uri.target(), &mut uri.options()).expect("valid options"))
        .expect("valid config")
}

fn pods(n: usize) -> Vec<SharedEvent> {
    let template = sample_events().remove(0);
    (0..n)
        .map(|i| {
            let mut ev: Event = template.clone();
            ev.involved_object.name = format!("web-{i}").into();
            ev.name = format!("web-{i}.17b2c3d4e5f6a7b8").into();
            Arc::new(ev)
        })
        .collect()
}

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    let one = pods(1);
    group.throughput(Throughput::Elements(1));
    let mut text = sink("msg_type=text");
    group.bench_function("text", |b| b.iter(|| black_box(text.preview(black_box(&one)))));
    let mut markdown = sink("msg_type=markdown&cluster_id=c1&region=cn-hangzhou");
    group.bench_function("markdown", |b| b.iter(|| black_box(markdown.preview(black_box(&one)))));
    let hundred = pods(100);
    group.throughput(Throughput::Elements(100));
    let mut digest = sink("msg_type=markdown");
    group.bench_function("digest_100", |b| b.iter(|| black_box(digest.preview(black_box(&hundred)))));
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
