//! What one checkpoint save costs: `FileCheckpoint::save` (write, fsync, rename, fsync of
//! the directory), which sets how often the pipeline saves to a file.
//!
//! `cargo bench -p eventer-core --bench checkpoint`; to measure the
//! disk a deployment writes to, point `CHECKPOINT_BENCH_DIR` at a directory on it.

use criterion::{Criterion, criterion_group, criterion_main};
use eventer_core::{Position, checkpoint::CheckpointStore, checkpoint::FileCheckpoint};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let dir = match std::env::var_os("CHECKPOINT_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("temporary directory");
    let store = FileCheckpoint::new(dir.path().join("cp.json"));
    let mut group = c.benchmark_group("checkpoint");
    // A Kubernetes position: one cursor, and one per watched namespace for a dozen.
    let one = Position(format!(r#"{{"v":1,"rv":"{}"}}"#, 123_456_789));
    let many = Position(format!(
        r#"{{"v":1,"ns":{{{}}}}}"#,
        (0..12).map(|i| format!(r#""ns-{i}":{{"rv":"{}"}}"#, 123_456_789 + i)).collect::<Vec<_>>().join(",")
    ));
    for (name, position) in [("file-save-small", one), ("file-save-12-namespaces", many)] {
        group.bench_function(name, |b| b.iter(|| rt.block_on(store.save(&position)).expect("save")));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
