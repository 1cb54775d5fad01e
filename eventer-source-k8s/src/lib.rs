//! Kubernetes Events source for eventer: list/watch with nothing lost across
//! reconnects, compactions and restarts, in bounded memory.
//!
//! `--source=kubernetes:<apiserver-url>?<options>` (kube-eventer's syntax; see
//! [`SourceConfig::parse`]): `inClusterConfig` (default true), `insecure`,
//! `auth=<kubeconfig>`, `useServiceAccount`; and beyond kube-eventer, `namespaces=a,b`,
//! `api=core|events`, `fieldSelector=type=Warning`, `startFrom=now|all|<duration>`,
//! `requestTimeout`, `watchIdleTimeout` and `maxLineSize`.
//!
//! Delivery:
//! - watches resume from the last seen resourceVersion (object or bookmark); a normal
//!   end of the stream is followed by a re-watch, not a relist;
//! - a 410 (as a watch ERROR event or as an HTTP status) triggers a paged relist
//!   (500 per page) that emits only what the position does not cover;
//! - ADDED and MODIFIED are occurrences (with their count), DELETED is not; the same
//!   (uid, resourceVersion) is never emitted twice;
//! - the position is a few bytes per namespace (see `cursor.rs`): no cache of Events.
//!
//! Every request phase is bounded (`requestTimeout`, `watchIdleTimeout`), and watch lines
//! are capped (`maxLineSize`): a stalled apiserver is retried and shown on `/readyz`, never
//! waited on for ever. The position carries the cluster's identity (the uid of namespace
//! `kube-system`); a checkpoint from another cluster, or ahead of this one, is set aside.
//!
//! One [`Cluster`] connection serves the source, the ConfigMap checkpoint and leader
//! election: the source's factory shares it through the `BuildContext`.
//!
//! Verbs used: events `list`, `watch`; namespaces `get` on `kube-system` (optional); for
//! `--checkpoint=configmap:<ns>/<name>`,
//! configmaps `get`, `create`, `update` in that namespace; for leader election
//! ([`LeaderElector`]), leases `get`, `create`, `update` in the lease's namespace.

mod checkpoint;
mod cluster;
mod config;
mod cursor;
mod http;
mod leader;
mod source;
mod stream;
mod wire;

use std::sync::Arc;

use eventer_core::{BoxSource, BuildContext, Registry, Result, SourceFactory, uri::Options};

pub use checkpoint::{ConfigMapCheckpoint, ConfigMapCheckpointFactory};
pub use cluster::Cluster;
pub use config::{
    Connection, DEFAULT_MAX_LINE_SIZE, DEFAULT_REQUEST_TIMEOUT, DEFAULT_WATCH_IDLE_TIMEOUT, EventsApi,
    SERVICE_ACCOUNT_TOKEN, SourceConfig, StartFrom,
};
pub use leader::{DEFAULT_LEASE_NAME, LeaderElector, Leadership, LeaseConfig, default_identity, default_namespace};
pub use source::{KubernetesSource, Readiness};
pub use wire::{WatchLine, decode_watch_line};

/// The source scheme.
pub const SCHEME: &str = "kubernetes";

/// The checkpoint scheme.
pub const CHECKPOINT_SCHEME: &str = "configmap";

/// Builds [`KubernetesSource`]s from `kubernetes:` URIs; no network I/O here. The source's
/// [`Cluster`] connection is shared in the build context for the other parts to use.
#[derive(Debug, Clone, Default)]
pub struct KubernetesFactory {
    readiness: Readiness,
}

impl KubernetesFactory {
    /// A factory whose sources report to `readiness` (for a health endpoint).
    pub fn with_readiness(readiness: Readiness) -> Self {
        KubernetesFactory { readiness }
    }
}

impl SourceFactory for KubernetesFactory {
    fn options(&self) -> Vec<&'static str> {
        eventer_core::config::names::<config::Settings>().to_vec()
    }

    fn build(&self, target: &str, options: &mut Options, cx: &BuildContext) -> Result<BoxSource> {
        let config = SourceConfig::parse(target, options)?;
        self.readiness.report_to(&cx.health, &cx.metrics);
        config.check_files()?;
        let cluster = Cluster::connect(config.clone());
        cluster.share(cx);
        Ok(Box::new(KubernetesSource::with_readiness(config, self.readiness.clone()).with_cluster(cluster)))
    }
}

/// Register the `kubernetes` source and the `configmap` checkpoint store.
pub fn register(registry: &mut Registry) {
    registry.register_source(SCHEME, Arc::new(KubernetesFactory::default()));
    registry.register_checkpoint(CHECKPOINT_SCHEME, Arc::new(ConfigMapCheckpointFactory));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_builds_without_network() {
        let mut registry = Registry::with_builtins();
        register(&mut registry);
        let cx = BuildContext::default();
        registry
            .build_source(&"kubernetes:https://10.0.0.1:6443?inClusterConfig=false&namespaces=a".parse().unwrap(), &cx)
            .unwrap();
        let err = registry.build_source(&"kubernetes?startFrom=soon".parse().unwrap(), &cx).unwrap_err();
        assert_eq!(err.kind(), eventer_core::ErrorKind::Config);
        assert!(err.to_string().starts_with("option startFrom"), "{err}");
        let err = registry.build_source(&"kubernetes:?auth=/no/such/kubeconfig".parse().unwrap(), &cx).unwrap_err();
        assert!(err.to_string().starts_with("cannot read kubeconfig /no/such/kubeconfig (option auth)"), "{err}");
        let err = registry.build_source(&"kubernetes?colour=red".parse().unwrap(), &cx).unwrap_err();
        assert!(err.to_string().starts_with("unknown option colour for kubernetes"), "{err}");
        registry.build_checkpoint(&"configmap:kube-system/eventer".parse().unwrap(), &cx).unwrap();
        let err = registry.build_checkpoint(&"configmap:eventer".parse().unwrap(), &cx).unwrap_err();
        assert_eq!(err.to_string(), "configmap checkpoint needs configmap:<namespace>/<name>, got `eventer`");
    }

    #[test]
    fn the_source_shares_one_cluster_connection() {
        let mut registry = Registry::with_builtins();
        register(&mut registry);
        let cx = BuildContext::default();
        let checkpoint: eventer_core::uri::ComponentUri = "configmap:kube-system/eventer".parse().unwrap();
        // Before the kubernetes source (or with another one) there is no cluster to use.
        let err = registry.build_checkpoint(&checkpoint, &cx).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configmap checkpoint needs the kubernetes source, whose cluster holds the ConfigMap"
        );
        assert!(Cluster::of(&cx).is_none());
        registry.build_source(&"kubernetes:http://127.0.0.1:1?inClusterConfig=false".parse().unwrap(), &cx).unwrap();
        let cluster = Cluster::of(&cx).unwrap();
        registry.build_checkpoint(&checkpoint, &cx.clone()).unwrap();
        assert!(Cluster::of(&cx).unwrap().same_as(&cluster), "building the checkpoint made no other");
    }
}
