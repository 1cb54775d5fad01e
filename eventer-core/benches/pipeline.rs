//! The core per-event path: filter, route, queue, batch, hand to a no-op sink.
//!
//! `cargo bench -p eventer-core --features test-util --bench pipeline`

use std::sync::Arc;

use async_trait::async_trait;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use eventer_core::{
    Event, FilterSpec, Outcome, Pipeline, Route, SharedEvent, Sink,
    filter::Threshold,
    testing::{VecSource, sample_events},
};

const EVENTS: usize = 50_000;

struct Nop;

#[async_trait]
impl Sink for Nop {
    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        vec![Outcome::Delivered; batch.len()]
    }
}

fn events() -> Vec<Event> {
    let samples = sample_events();
    (0..EVENTS).map(|i| samples[i % samples.len()].clone()).collect()
}

fn pipeline(events: Vec<Event>, sinks: usize) -> Pipeline {
    let mut p = Pipeline::new(Box::new(VecSource::new(events)));
    for i in 0..sinks {
        let filter = FilterSpec {
            level: Some(if i % 2 == 0 { Threshold::Warning } else { Threshold::Normal }),
            exclude_namespaces: vec!["kube-system".into()],
            ..FilterSpec::default()
        };
        p = p.route(Route::new(format!("nop-{i}"), Box::new(Nop)).filter(filter.build().expect("valid filter")));
    }
    p
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let template = Arc::new(events());
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(20);
    for sinks in [1, 2] {
        group.bench_function(format!("{sinks}-sink"), |b| {
            b.iter_batched(
                || pipeline((*template).clone(), sinks),
                |p| rt.block_on(p.run(std::future::pending())).expect("run"),
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
