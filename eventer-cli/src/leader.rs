//! `--leader-elect`: run only while holding a coordination.k8s.io Lease, through the
//! source's cluster connection.

use eventer_core::BuildContext;

use crate::{
    Failure,
    config::{Leader, Located},
};

/// Reject leader election where it cannot work, before any I/O (so `eventer check` does
/// too): `cx` is the context the source was built with.
pub(crate) fn validate(source: &Located, leader: Option<&Leader>, cx: &BuildContext) -> Result<(), Failure> {
    match leader {
        Some(_) if !cfg!(feature = "source-k8s") => {
            Err(Failure::usage("--leader-elect: this build of eventer has no Kubernetes support"))
        }
        Some(_) if !has_cluster(cx) => Err(Failure::usage(format!(
            "--leader-elect: needs the kubernetes source, whose connection holds the lease (got {})",
            source.origin
        ))),
        _ => Ok(()),
    }
}

#[cfg(feature = "source-k8s")]
fn has_cluster(cx: &BuildContext) -> bool {
    eventer_source_k8s::Cluster::of(cx).is_some()
}

#[cfg(not(feature = "source-k8s"))]
fn has_cluster(_: &BuildContext) -> bool {
    false
}

#[cfg(feature = "source-k8s")]
pub(crate) use k8s::{acquire, release};

#[cfg(feature = "source-k8s")]
mod k8s {
    use eventer_core::BuildContext;
    use eventer_source_k8s::{Cluster, LeaderElector, LeaseConfig, default_identity, default_namespace};
    use tracing::info;

    use crate::{Failure, config::Leader, logging::StartGate};

    pub(crate) use eventer_source_k8s::Leadership;

    /// Wait until this process holds the lease, talking through the cluster connection the
    /// source shared in `cx`; `gate` opens when the wait begins.
    pub(crate) async fn acquire(cx: &BuildContext, leader: &Leader, gate: &StartGate) -> Result<Leadership, Failure> {
        let fail = |e: eventer_core::Error| Failure::usage(format!("--leader-elect: {}", e.chain()));
        // `validate` refused leader election without one.
        let cluster = Cluster::of(cx).ok_or_else(|| Failure::usage("--leader-elect: needs the kubernetes source"))?;
        let namespace = leader.namespace.clone().unwrap_or_else(default_namespace);
        let lease = LeaseConfig::new(namespace, &leader.lease_name, default_identity());
        let elector = LeaderElector::for_cluster(&cluster, lease).await.map_err(fail)?;
        let lease = elector.config();
        // A standby may wait for hours: its log must show that it does.
        gate.open();
        info!(lease = %format_args!("{}/{}", lease.namespace, lease.name), identity = %lease.identity, "Waiting for the leader-election lease.");
        // Only refusals (401/403, an invalid lease) end the wait; outages are retried inside.
        elector.acquire().await.map_err(|e| Failure::runtime(format!("--leader-elect: {}", e.chain())))
    }

    /// Step down so that a standby takes over at once.
    pub(crate) async fn release(leadership: Leadership) {
        leadership.release().await;
    }
}

#[cfg(not(feature = "source-k8s"))]
pub(crate) use none::{acquire, release};

#[cfg(not(feature = "source-k8s"))]
mod none {
    use eventer_core::BuildContext;

    use crate::{Failure, config::Leader, logging::StartGate};

    /// No leadership exists without Kubernetes support ([`super::validate`] refuses it).
    pub(crate) enum Leadership {}

    impl Leadership {
        pub(crate) fn lost(&self) -> std::future::Pending<()> {
            match *self {}
        }
    }

    pub(crate) async fn acquire(_: &BuildContext, _: &Leader, _: &StartGate) -> Result<Leadership, Failure> {
        Err(Failure::usage("--leader-elect: this build of eventer has no Kubernetes support"))
    }

    pub(crate) async fn release(leadership: Leadership) {
        match leadership {}
    }
}
