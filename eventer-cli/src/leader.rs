//! `--leader-elect`: run only while holding a coordination.k8s.io Lease.

use crate::{
    Failure,
    config::{Leader, Located},
};

/// Reject leader election where it cannot work, before any I/O (so `eventer check` does too).
pub(crate) fn validate(source: &Located, leader: Option<&Leader>) -> Result<(), Failure> {
    match leader {
        Some(_) if !cfg!(feature = "source-k8s") => {
            Err(Failure::usage("--leader-elect: this build of eventer has no Kubernetes support"))
        }
        Some(_) if source.uri.scheme() != "kubernetes" => Err(Failure::usage(format!(
            "--leader-elect: needs the kubernetes source, whose connection holds the lease (got {})",
            source.origin
        ))),
        _ => Ok(()),
    }
}

#[cfg(feature = "source-k8s")]
pub(crate) use k8s::{acquire, release};

#[cfg(feature = "source-k8s")]
mod k8s {
    use eventer_source_k8s::{LeaderElector, LeaseConfig, SourceConfig, default_identity, default_namespace};
    use tracing::info;

    use crate::{
        Failure,
        config::{Leader, Located},
        logging::StartGate,
    };

    pub(crate) use eventer_source_k8s::Leadership;

    /// Wait until this process holds the lease; `gate` opens when the wait begins.
    pub(crate) async fn acquire(source: &Located, leader: &Leader, gate: &StartGate) -> Result<Leadership, Failure> {
        let fail = |e: eventer_core::Error| Failure::usage(format!("--leader-elect: {}", e.chain()));
        let config = SourceConfig::parse(source.uri.target(), &mut source.uri.options()).map_err(fail)?;
        let namespace = leader.namespace.clone().unwrap_or_else(default_namespace);
        let lease = LeaseConfig::new(namespace, &leader.lease_name, default_identity());
        let elector = LeaderElector::for_source(&config, lease).await.map_err(fail)?;
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
    use crate::{
        Failure,
        config::{Leader, Located},
        logging::StartGate,
    };

    /// No leadership exists without Kubernetes support ([`super::validate`] refuses it).
    pub(crate) enum Leadership {}

    impl Leadership {
        pub(crate) fn lost(&self) -> std::future::Pending<()> {
            match *self {}
        }
    }

    pub(crate) async fn acquire(_: &Located, _: &Leader, _: &StartGate) -> Result<Leadership, Failure> {
        Err(Failure::usage("--leader-elect: this build of eventer has no Kubernetes support"))
    }

    pub(crate) async fn release(leadership: Leadership) {
        match leadership {}
    }
}
