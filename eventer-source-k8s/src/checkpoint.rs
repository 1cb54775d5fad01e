//! `--checkpoint=configmap:<namespace>/<name>`: the position in a ConfigMap.

use std::{collections::BTreeMap, sync::Mutex, time::Duration};

use async_trait::async_trait;
use eventer_core::{
    BuildContext, Error, ErrorKind, Position, Result,
    checkpoint::{BoxCheckpointStore, CheckpointStore},
    registry::CheckpointFactory,
    uri::Options,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};

use crate::Cluster;

/// The data key holding the position.
const KEY: &str = "position";

/// A checkpoint in a ConfigMap, written with optimistic concurrency (create, or update
/// at the version last seen; on a conflict, re-read and write again).
///
/// Needs `get`, `create` and `update` on configmaps in its namespace.
pub struct ConfigMapCheckpoint {
    cluster: Cluster,
    namespace: String,
    name: String,
    /// resourceVersion of the ConfigMap as last written or read.
    version: Mutex<Option<String>>,
}

impl std::fmt::Debug for ConfigMapCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMapCheckpoint")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ConfigMapCheckpoint {
    /// A store using `client`.
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        ConfigMapCheckpoint::for_cluster(Cluster::from_client(client), namespace, name)
    }

    /// A store in `cluster`, the connection the pipeline's source shares; it connects on
    /// first use if the source has not.
    pub fn for_cluster(cluster: Cluster, namespace: &str, name: &str) -> Self {
        ConfigMapCheckpoint {
            cluster,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            version: Mutex::new(None),
        }
    }

    async fn api(&self) -> Result<Api<ConfigMap>> {
        Ok(Api::namespaced(self.cluster.client().await?, &self.namespace))
    }

    fn error(&self, doing: &str, e: kube::Error) -> Error {
        let kind = match &e {
            kube::Error::Api(s) if s.code == 401 || s.code == 403 => ErrorKind::Unauthorized,
            _ => ErrorKind::Unavailable,
        };
        Error::new(kind, format!("cannot {doing} checkpoint configmap {}/{}", self.namespace, self.name))
            .with_source(e)
            .temporary()
    }

    fn remember(&self, cm: &ConfigMap) {
        *self.version.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = cm.metadata.resource_version.clone();
    }

    fn known_version(&self) -> Option<String> {
        self.version.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

#[async_trait]
impl CheckpointStore for ConfigMapCheckpoint {
    /// Each write is an etcd write replicated across the control plane: one a second at
    /// most, whatever the event rate (a crash repeats at most a second of events).
    fn min_interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    async fn load(&self) -> Result<Option<Position>> {
        let api = self.api().await?;
        match api.get_opt(&self.name).await {
            Ok(Some(cm)) => {
                self.remember(&cm);
                Ok(cm.data.and_then(|mut d| d.remove(KEY)).map(Position))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(self.error("read", e)),
        }
    }

    async fn save(&self, position: &Position) -> Result<()> {
        let api = self.api().await?;
        let data = BTreeMap::from([
            (KEY.to_owned(), position.0.clone()),
            ("savedAt".to_owned(), jiff::Timestamp::now().to_string()),
        ]);
        // Someone else (an operator, a second replica) may write too: re-read and retry.
        for _ in 0..3 {
            let version = match self.known_version() {
                Some(v) => Some(v),
                None => match api.get_opt(&self.name).await {
                    Ok(found) => found.and_then(|cm| cm.metadata.resource_version),
                    Err(e) => return Err(self.error("read", e)),
                },
            };
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    resource_version: version.clone(),
                    labels: Some(BTreeMap::from([("app.kubernetes.io/managed-by".to_owned(), "eventer".to_owned())])),
                    ..ObjectMeta::default()
                },
                data: Some(data.clone()),
                ..ConfigMap::default()
            };
            let written = match &version {
                Some(_) => api.replace(&self.name, &PostParams::default(), &cm).await,
                None => api.create(&PostParams::default(), &cm).await,
            };
            match written {
                Ok(cm) => {
                    self.remember(&cm);
                    return Ok(());
                }
                Err(e) if is_status(&e, 409) || is_status(&e, 404) => {
                    self.version.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
                }
                Err(e) => return Err(self.error("write", e)),
            }
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            format!("checkpoint configmap {}/{} keeps changing under us", self.namespace, self.name),
        )
        .temporary())
    }
}

/// Builds [`ConfigMapCheckpoint`]s from `configmap:<namespace>/<name>`, in the [`Cluster`]
/// the `kubernetes:` source shared: build the source first, with the same `BuildContext`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfigMapCheckpointFactory;

impl CheckpointFactory for ConfigMapCheckpointFactory {
    fn build(&self, target: &str, _options: &mut Options, cx: &BuildContext) -> Result<BoxCheckpointStore> {
        // Without the kubernetes source there is no cluster to hold the ConfigMap, nor a
        // position worth keeping there.
        let Some(cluster) = Cluster::of(cx) else {
            return Err(Error::config(
                "configmap checkpoint needs the kubernetes source, whose cluster holds the ConfigMap",
            ));
        };
        match target.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Box::new(ConfigMapCheckpoint::for_cluster(cluster, ns, name)))
            }
            _ => Err(Error::config(format!("configmap checkpoint needs configmap:<namespace>/<name>, got `{target}`"))),
        }
    }
}
