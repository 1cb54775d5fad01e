//! Kubernetes Events to a sink of the application's own, on Kubernetes 1.35's API.
//!
//! `cargo run -- 'kubernetes:?inClusterConfig=false'` prints the cluster's events until Ctrl-C.

use async_trait::async_trait;
use eventer_core::{Outcome, Pipeline, Route, SharedEvent, Sink, uri::ComponentUri};
use eventer_source_k8s::{KubernetesSource, SourceConfig};

// The application's version feature is the one in effect.
k8s_openapi::k8s_if_le_1_34! {
    compile_error!("k8s-openapi is not on the application's Kubernetes version (1.35)");
}

/// Prints one line per event.
struct Print;

#[async_trait]
impl Sink for Print {
    async fn send(&mut self, batch: &[SharedEvent]) -> Vec<Outcome> {
        for e in batch {
            println!(
                "{} {}/{} {}: {}",
                e.namespace, e.involved_object.kind, e.involved_object.name, e.reason, e.message
            );
        }
        vec![Outcome::Delivered; batch.len()]
    }
}

#[tokio::main]
async fn main() -> Result<(), eventer_core::Error> {
    let uri: ComponentUri = std::env::args().nth(1).as_deref().unwrap_or("kubernetes:").parse()?;
    let mut options = uri.options();
    let config = SourceConfig::parse(uri.target(), &mut options)?;
    options.finish()?;
    let report = Pipeline::new(Box::new(KubernetesSource::new(config)))
        .route(Route::new("print", Box::new(Print)))
        .run(async {
            // Without a signal handler there is nothing to wait for but the source's end.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await?;
    eprintln!("{report:?}");
    Ok(())
}
