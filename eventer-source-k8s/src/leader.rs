//! Leader election with a `coordination.k8s.io/v1` Lease, compatible with client-go's
//! `leaderelection` package (LeaseLock): replicas of eventer and of any client-go program
//! configured with the same Lease see one another's records the same way.
//!
//! Timing follows client-go: a standby takes over once the holder's record has not
//! changed for `leaseDurationSeconds` *by its own clock* (never comparing `renewTime`
//! with its clock, so clock skew between nodes does not matter); the leader gives up
//! when it has not renewed for `renew_deadline`, which is shorter than the lease, so it
//! stops before anyone may take over.
//!
//! Verbs used: leases `get`, `create`, `update` in the Lease's namespace.

use std::{
    fmt,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use eventer_core::{Error, ErrorKind, Result};
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
    time::{Instant, sleep, sleep_until, timeout, timeout_at},
};
use tracing::{debug, info, warn};

use crate::{Cluster, SourceConfig};

/// The Lease name used unless configured.
pub const DEFAULT_LEASE_NAME: &str = "eventer";

/// Where a pod finds its namespace.
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Which Lease to hold, as whom, and how fast to act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity, unique among the replicas (the pod name).
    pub identity: String,
    /// How long a standby waits, after the record last changed, before taking over
    /// (written as whole seconds, rounded up). Default 15 s.
    pub lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal. Default 10 s.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew. Default 2 s.
    pub retry_period: Duration,
}

impl Default for LeaseConfig {
    /// [`DEFAULT_LEASE_NAME`] in [`default_namespace`], as [`default_identity`],
    /// with client-go's durations.
    fn default() -> Self {
        LeaseConfig::new(default_namespace(), DEFAULT_LEASE_NAME, default_identity())
    }
}

impl LeaseConfig {
    /// A config with client-go's default durations (15 s, 10 s, 2 s).
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Check the names and that `retry_period < renew_deadline < lease_duration`.
    ///
    /// # Errors
    /// A configuration error naming the problem.
    pub fn validate(&self) -> Result<()> {
        for (what, value) in [("namespace", &self.namespace), ("name", &self.name), ("identity", &self.identity)] {
            if value.trim().is_empty() {
                return Err(Error::config(format!("leader election: the lease {what} is empty")));
            }
        }
        if self.retry_period.is_zero() {
            return Err(Error::config("leader election: the retry period must be positive"));
        }
        if self.renew_deadline <= self.retry_period {
            return Err(Error::config(format!(
                "leader election: the renew deadline ({:?}) must be longer than the retry period ({:?})",
                self.renew_deadline, self.retry_period
            )));
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(Error::config(format!(
                "leader election: the lease duration ({:?}) must be longer than the renew deadline ({:?})",
                self.lease_duration, self.renew_deadline
            )));
        }
        if i32::try_from(self.lease_duration.as_secs()).is_err() {
            return Err(Error::config("leader election: the lease duration is too long"));
        }
        Ok(())
    }

    /// `leaseDurationSeconds`, rounded up so that standbys never wait less than configured.
    fn lease_seconds(&self) -> i32 {
        let secs = self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }
}

/// This replica's default identity: `POD_NAME` (set from the downward API), else the
/// hostname (which is the pod name in a pod).
pub fn default_identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
}

/// The default Lease namespace: `POD_NAMESPACE`, else the service account's namespace
/// file, else `default`.
pub fn default_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| std::fs::read_to_string(NAMESPACE_FILE).ok())
        .map(|ns| ns.trim().to_owned())
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// Competes for a Lease; see [`LeaderElector::acquire`].
#[derive(Clone)]
pub struct LeaderElector {
    inner: Arc<Inner>,
}

impl fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderElector").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

struct Inner {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Mutex<Observed>,
}

/// The Lease as last read or written, and when its record last changed by our clock.
struct Observed {
    lease: Option<Lease>,
    changed_at: Instant,
}

/// What one attempt to acquire or renew found.
enum Attempt {
    /// We hold the Lease (the write started at this instant).
    Holding(Instant),
    /// Someone else holds it.
    HeldBy(String),
    /// Another replica wrote between our read and our write.
    Raced,
}

impl LeaderElector {
    /// An elector for `config`, talking through `client`; no network I/O here.
    ///
    /// # Errors
    /// A configuration error when `config` is invalid ([`LeaseConfig::validate`]).
    pub fn new(client: Client, config: LeaseConfig) -> Result<LeaderElector> {
        config.validate()?;
        let api = Api::namespaced(client, &config.namespace);
        let observed = Mutex::new(Observed { lease: None, changed_at: Instant::now() });
        Ok(LeaderElector { inner: Arc::new(Inner { api, config, observed }) })
    }

    /// An elector with a connection of its own, made the way the `kubernetes:` source
    /// `source` makes one (a pipeline's elector shares the source's: [`LeaderElector::for_cluster`]).
    ///
    /// # Errors
    /// As [`SourceConfig::client`] and [`LeaderElector::new`].
    pub async fn for_source(source: &SourceConfig, config: LeaseConfig) -> Result<LeaderElector> {
        LeaderElector::for_cluster(&Cluster::connect(source.clone()), config).await
    }

    /// An elector talking through `cluster`, the connection the pipeline's source shares.
    ///
    /// # Errors
    /// As [`Cluster::client`] and [`LeaderElector::new`].
    pub async fn for_cluster(cluster: &Cluster, config: LeaseConfig) -> Result<LeaderElector> {
        // Before connecting, so that a bad lease config is reported as such.
        config.validate()?;
        LeaderElector::new(cluster.client().await?, config)
    }

    /// The config.
    pub fn config(&self) -> &LeaseConfig {
        &self.inner.config
    }

    /// Wait until this replica holds the Lease, trying every `retry_period`, then keep
    /// renewing it in the background. Drop the future to stop competing.
    ///
    /// # Errors
    /// When the apiserver refuses the request itself (401/403: RBAC, 400/422: an invalid
    /// name, 404 on create: no such namespace). Unreachable apiservers and lost races are
    /// retried.
    pub async fn acquire(&self) -> Result<Leadership> {
        let inner = &self.inner;
        let config = &inner.config;
        let mut waiting_on = None;
        loop {
            // Bounded so that a hung request does not hold up the next try.
            match timeout(config.renew_deadline, inner.try_acquire(false)).await {
                Ok(Ok(Attempt::Holding(at))) => {
                    info!(lease = %inner.lease_name(), identity = %config.identity, "Acquired the leader lease.");
                    return Ok(Leadership::start(inner.clone(), at));
                }
                Ok(Ok(Attempt::HeldBy(holder))) => {
                    if waiting_on.as_ref() != Some(&holder) {
                        info!(lease = %inner.lease_name(), identity = %config.identity, leader = %holder,
                              "The leader lease is held by another replica; standing by.");
                        waiting_on = Some(holder);
                    }
                }
                Ok(Ok(Attempt::Raced)) => {
                    debug!(lease = %inner.lease_name(), "Another replica wrote the lease first; retrying.");
                }
                Ok(Err(e)) if !e.is_temporary() => return Err(e),
                Ok(Err(e)) => {
                    warn!(lease = %inner.lease_name(), error = %e.chain(), "Cannot acquire the leader lease; retrying.");
                }
                Err(_) => warn!(lease = %inner.lease_name(), "Acquiring the leader lease timed out; retrying."),
            }
            sleep(config.retry_period).await;
        }
    }
}

impl Inner {
    fn lease_name(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.name)
    }

    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remember `lease`; the clock restarts only when its record changed.
    fn observe(&self, lease: Lease, at: Instant) {
        let mut observed = self.observed();
        if observed.lease.as_ref().map(|l| &l.spec) != Some(&lease.spec) {
            observed.changed_at = at;
        }
        observed.lease = Some(lease);
    }

    /// Whether the observed record is still within its lease duration by our clock.
    fn observed_valid(&self, now: Instant) -> bool {
        let observed = self.observed();
        let seconds = observed.lease.as_ref().and_then(|l| l.spec.as_ref()?.lease_duration_seconds);
        let duration =
            seconds.map_or(self.config.lease_duration, |s| Duration::from_secs(u64::try_from(s).unwrap_or(0)));
        observed.changed_at + duration > now
    }

    fn our_record(&self, now: &MicroTime) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.lease_seconds()),
            acquire_time: Some(now.clone()),
            renew_time: Some(now.clone()),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }
    }

    /// client-go's `tryAcquireOrRenew`, read first. While `leading`, any other holder means
    /// we lost; otherwise another holder is waited out until its record expires.
    async fn try_acquire(&self, leading: bool) -> Result<Attempt> {
        let start = Instant::now();
        let now = MicroTime(jiff::Timestamp::now());
        let Some(current) = self.api.get_opt(&self.config.name).await.map_err(|e| self.error("read", e))? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.our_record(&now)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(created, start);
                    Ok(Attempt::Holding(start))
                }
                Err(e) if status(&e) == Some(409) => Ok(Attempt::Raced),
                Err(e) => Err(self.error("create", e)),
            };
        };
        // Seen now, not at `start`: a change is never dated before the read that saw it.
        self.observe(current.clone(), Instant::now());
        let old = current.spec.clone().unwrap_or_default();
        let holder = old.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.config.identity.as_str());
        if let Some(holder) = holder.filter(|_| !ours)
            && (leading || self.observed_valid(Instant::now()))
        {
            return Ok(Attempt::HeldBy(holder));
        }
        let mut record = self.our_record(&now);
        if ours {
            record.acquire_time = old.acquire_time.or(record.acquire_time);
            record.lease_transitions = old.lease_transitions.or(Some(0));
        } else {
            record.lease_transitions = Some(old.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        self.update(current, record, start).await
    }

    /// Renew: write from the observed Lease without reading (client-go's fast path); on
    /// any failure, read and try again.
    async fn renew(&self) -> Result<Attempt> {
        let start = Instant::now();
        let observed = self.observed().lease.clone();
        if let Some(lease) = observed
            && let Some(old) = lease.spec.clone()
            && old.holder_identity.as_deref() == Some(self.config.identity.as_str())
        {
            let record = LeaseSpec {
                renew_time: Some(MicroTime(jiff::Timestamp::now())),
                lease_duration_seconds: Some(self.config.lease_seconds()),
                ..old
            };
            match self.update(lease, record, start).await {
                Ok(Attempt::Holding(at)) => return Ok(Attempt::Holding(at)),
                Ok(_) => debug!(lease = %self.lease_name(), "The lease changed since the last renewal; re-reading."),
                Err(e) => debug!(lease = %self.lease_name(), error = %e.chain(), "Renewal failed; re-reading."),
            }
        }
        self.try_acquire(true).await
    }

    /// Write `record` into `lease` at the version read (a 409 means another writer won).
    async fn update(&self, mut lease: Lease, record: LeaseSpec, start: Instant) -> Result<Attempt> {
        lease.spec = Some(record);
        match self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
            Ok(written) => {
                self.observe(written, start);
                Ok(Attempt::Holding(start))
            }
            // 404: deleted since we read it; the next try creates it.
            Err(e) if matches!(status(&e), Some(409 | 404)) => Ok(Attempt::Raced),
            Err(e) => Err(self.error("update", e)),
        }
    }

    /// client-go's ReleaseOnCancel: clear the holder and shorten the lease so that a
    /// standby takes over at its next try.
    async fn release(&self) -> Result<()> {
        for _ in 0..3 {
            let observed = self.observed().lease.clone();
            let Some(lease) = observed else { return Ok(()) };
            let old = lease.spec.clone().unwrap_or_default();
            if old.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(());
            }
            let now = MicroTime(jiff::Timestamp::now());
            let record = LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: old.lease_transitions,
                ..LeaseSpec::default()
            };
            if let Attempt::Holding(_) = self.update(lease, record, Instant::now()).await? {
                return Ok(());
            }
            // Raced: read what is there now and release that if it is still ours.
            match self.api.get_opt(&self.config.name).await.map_err(|e| self.error("read", e))? {
                Some(current) => self.observe(current, Instant::now()),
                None => return Ok(()),
            }
        }
        Err(Error::new(ErrorKind::Unavailable, format!("lease {} keeps changing under us", self.lease_name())))
    }

    fn error(&self, doing: &str, e: kube::Error) -> Error {
        let kind = match status(&e) {
            Some(401 | 403) => ErrorKind::Unauthorized,
            Some(400 | 404 | 422) => ErrorKind::Rejected,
            _ => ErrorKind::Unavailable,
        };
        let error = Error::new(kind, format!("cannot {doing} lease {}", self.lease_name())).with_source(e);
        if kind == ErrorKind::Unavailable { error.temporary() } else { error.permanent() }
    }
}

fn status(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Holding the Lease: renewed in the background until lost, released or dropped.
///
/// Dropping it stops renewing without releasing (as a crash would): a standby takes
/// over once the lease expires. Prefer [`Leadership::release`] on shutdown.
pub struct Leadership {
    inner: Arc<Inner>,
    leading: watch::Receiver<bool>,
    release: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl fmt::Debug for Leadership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leadership")
            .field("lease", &self.inner.lease_name())
            .field("identity", &self.inner.config.identity)
            .field("leading", &self.is_leader())
            .finish_non_exhaustive()
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Leadership {
    fn start(inner: Arc<Inner>, renewed: Instant) -> Leadership {
        let (leading_tx, leading) = watch::channel(true);
        let (release, release_rx) = oneshot::channel();
        let task = tokio::spawn(keep(inner.clone(), renewed, leading_tx, release_rx));
        Leadership { inner, leading, release: Some(release), task }
    }

    /// Whether this replica still leads.
    pub fn is_leader(&self) -> bool {
        // An error means the renew task is gone: not leading.
        self.leading.has_changed().is_ok() && *self.leading.borrow()
    }

    /// Resolves as soon as leadership is lost (or released): a renewal did not succeed
    /// within `renew_deadline`, or another replica holds the Lease. Independent of
    /// `self`, so it can be the pipeline's stop signal; call it again for more.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut leading = self.leading.clone();
        async move {
            // An error means the renew task is gone, which is lost too.
            drop(leading.wait_for(|leading| !leading).await);
        }
    }

    /// Step down: stop leading, then clear the holder so that a standby takes over at
    /// its next try instead of after the lease expires. Waits at most `renew_deadline`.
    pub async fn release(mut self) {
        if let Some(release) = self.release.take()
            && release.send(()).is_ok()
            && (&mut self.task).await.is_err()
        {
            warn!(lease = %self.inner.lease_name(), "The leader lease renewal task failed.");
        }
    }
}

/// The renew loop: every `retry_period`, renew; lost when no renewal succeeded within
/// `renew_deadline` of the last one, or another replica holds the Lease.
async fn keep(
    inner: Arc<Inner>,
    mut renewed: Instant,
    leading: watch::Sender<bool>,
    mut release: oneshot::Receiver<()>,
) {
    let config = &inner.config;
    let lost = |reason: &str| {
        leading.send_replace(false);
        warn!(lease = %inner.lease_name(), identity = %config.identity, reason, "Lost the leader lease.");
    };
    let mut next = renewed + config.retry_period;
    loop {
        let deadline = renewed + config.renew_deadline;
        tokio::select! {
            biased;
            requested = &mut release => {
                // Ok: release() asked. Err: the Leadership is gone (its drop aborts us anyway).
                if requested.is_ok() {
                    step_down(&inner, &leading).await;
                }
                return;
            }
            () = sleep_until(next.min(deadline)) => {}
        }
        if Instant::now() >= deadline {
            return lost("not renewed within the renew deadline");
        }
        let attempt = tokio::select! {
            biased;
            requested = &mut release => {
                if requested.is_ok() {
                    step_down(&inner, &leading).await;
                }
                return;
            }
            attempt = timeout_at(deadline, inner.renew()) => attempt,
        };
        next = Instant::now() + config.retry_period;
        match attempt {
            Ok(Ok(Attempt::Holding(at))) => renewed = at,
            Ok(Ok(Attempt::HeldBy(holder))) => return lost(&format!("{holder} holds it")),
            Ok(Ok(Attempt::Raced)) => debug!(lease = %inner.lease_name(), "Renewal raced with another writer."),
            Ok(Err(e)) => warn!(lease = %inner.lease_name(), error = %e.chain(), "Cannot renew the leader lease."),
            Err(_) => return lost("not renewed within the renew deadline"),
        }
    }
}

async fn step_down(inner: &Inner, leading: &watch::Sender<bool>) {
    // Stop leading before anyone else can start.
    leading.send_replace(false);
    let name = inner.lease_name();
    let identity = &inner.config.identity;
    match timeout(inner.config.renew_deadline, inner.release()).await {
        Ok(Ok(())) => info!(lease = %name, identity = %identity, "Released the leader lease."),
        Ok(Err(e)) => {
            warn!(lease = %name, identity = %identity, error = %e.chain(),
                  "Cannot release the leader lease; a standby takes over when it expires.");
        }
        Err(_) => {
            warn!(lease = %name, identity = %identity,
                  "Releasing the leader lease timed out; a standby takes over when it expires.");
        }
    }
}
