//! One connection to the cluster, shared by every part of a pipeline that talks to it.

use std::{fmt, sync::Arc};

use eventer_core::{BuildContext, Error, ErrorKind, Result};
use tokio::sync::OnceCell;

use crate::SourceConfig;

/// A handle on one [`kube::Client`]: the `kubernetes:` source shares it through the
/// [`BuildContext`], and the `configmap:` checkpoint store, leader election and sinks that
/// read the cluster use it, so the kubeconfig or service account is resolved once and the
/// apiserver sees one client (one connection pool, one TLS setup, one token refresh).
///
/// Clones are the same connection. One made from a [`SourceConfig`] connects on first
/// use, so building a pipeline needs neither the network nor a runtime.
///
/// ```
/// use eventer_core::{BuildContext, Registry};
/// use eventer_source_k8s::Cluster;
/// let mut registry = Registry::with_builtins();
/// eventer_source_k8s::register(&mut registry);
/// let cx = BuildContext::default();
/// registry.build_source(&"kubernetes:http://127.0.0.1:8001?inClusterConfig=false".parse()?, &cx)?;
/// assert!(Cluster::of(&cx).is_some(), "the source shared its connection");
/// registry.build_checkpoint(&"configmap:kube-system/eventer".parse()?, &cx)?; // uses it
/// # Ok::<(), eventer_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    /// How to connect; `None` when made from a ready client.
    config: Option<SourceConfig>,
    client: OnceCell<kube::Client>,
}

impl Cluster {
    /// The cluster a `kubernetes:` source config reaches; connects on first use.
    pub fn connect(config: SourceConfig) -> Cluster {
        Cluster { inner: Arc::new(Inner { config: Some(config), client: OnceCell::new() }) }
    }

    /// The cluster `client` reaches.
    pub fn from_client(client: kube::Client) -> Cluster {
        Cluster { inner: Arc::new(Inner { config: None, client: OnceCell::new_with(Some(client)) }) }
    }

    /// The cluster shared in `cx` by the `kubernetes:` source, if the pipeline has one.
    pub fn of(cx: &BuildContext) -> Option<Cluster> {
        cx.shared::<Cluster>()
    }

    /// Share this cluster with the components built from `cx` after now.
    pub fn share(&self, cx: &BuildContext) {
        cx.share(self.clone());
    }

    /// The client, built on the first call (reading the kubeconfig or the service
    /// account; no network I/O) and the same one after.
    ///
    /// # Errors
    /// A configuration error when the connection settings cannot be resolved (see
    /// [`SourceConfig::client`]); the next call tries again.
    pub async fn client(&self) -> Result<kube::Client> {
        let client = self
            .inner
            .client
            .get_or_try_init(|| async {
                match &self.inner.config {
                    Some(config) => config.client().await,
                    // `from_client` filled the cell: this is never called.
                    None => Err(Error::new(ErrorKind::Unexpected, "cluster handle without a client")),
                }
            })
            .await?;
        Ok(client.clone())
    }

    /// The namespace of the connection's context (the kubeconfig context's, else the pod's
    /// service account's, else `default`), for parts that need one and were given none.
    ///
    /// # Errors
    /// As [`Cluster::client`].
    pub async fn default_namespace(&self) -> Result<String> {
        Ok(self.client().await?.default_namespace().to_owned())
    }

    /// Whether `other` is this same connection.
    pub fn same_as(&self, other: &Cluster) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config names files and URLs, never a credential.
        f.debug_struct("Cluster")
            .field("config", &self.inner.config)
            .field("connected", &self.inner.client.initialized())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clones_share_one_client_built_once() {
        let cluster = Cluster::connect(SourceConfig::for_url("http://127.0.0.1:1"));
        let clone = cluster.clone();
        assert!(cluster.same_as(&clone));
        assert!(!cluster.same_as(&Cluster::connect(SourceConfig::for_url("http://127.0.0.1:1"))));
        assert!(format!("{cluster:?}").ends_with("connected: false }"), "{cluster:?}");
        clone.client().await.unwrap();
        assert!(format!("{cluster:?}").ends_with("connected: true }"), "the clone connected it: {cluster:?}");
        assert_eq!(cluster.default_namespace().await.unwrap(), "default");

        let cx = BuildContext::default();
        assert!(Cluster::of(&cx).is_none());
        cluster.share(&cx.clone());
        assert!(Cluster::of(&cx).unwrap().same_as(&cluster), "clones of a context share");
    }

    #[tokio::test]
    async fn a_failed_connection_is_retried_on_the_next_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        let uri: eventer_core::uri::ComponentUri = format!("kubernetes:?auth={}", path.display()).parse().unwrap();
        let cluster = Cluster::connect(SourceConfig::parse(uri.target(), &mut uri.options()).unwrap());
        let err = cluster.client().await.map(drop).unwrap_err();
        assert!(err.to_string().starts_with("cannot read kubeconfig"), "{err}");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: http://127.0.0.1:1\n\
             contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n    namespace: ops\nusers:\n- name: u\n  user: {}\n",
        )
        .unwrap();
        assert_eq!(cluster.default_namespace().await.unwrap(), "ops");
    }
}
