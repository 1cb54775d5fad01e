//! The third-party sink passes core's conformance helper and works through the registry.

use eventer_core::{
    BuildContext, Pipeline, Registry,
    testing::{VecSource, assert_sink_conformance, sample_events},
};
use eventer_examples::{JsonlSink, register};

#[tokio::test]
async fn conforms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let outcomes = assert_sink_conformance(&mut JsonlSink::new(&path, false), sample_events()).await;
    assert!(outcomes.iter().all(|o| matches!(o, eventer_core::Outcome::Delivered)));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 4);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["reason"], "BackOff");
}

#[tokio::test]
async fn plugs_into_the_registry_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warnings.jsonl");
    let mut registry = Registry::with_builtins();
    register(&mut registry);
    let uri = format!("jsonl:{}?level=Warning&kinds=Node", path.display()).parse().unwrap();
    let built = registry.build_sink(&uri, &BuildContext::default()).unwrap();
    let report = Pipeline::new(Box::new(VecSource::new(sample_events())))
        .route(built.into_route().unwrap())
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!(report.sinks[0].delivered, 1);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("KernelOops"));

    let err = registry.build_sink(&"jsonl:/tmp/x?rawr=1".parse().unwrap(), &BuildContext::default()).unwrap_err();
    assert!(err.to_string().starts_with("unknown option rawr for jsonl"), "{err}");
}
