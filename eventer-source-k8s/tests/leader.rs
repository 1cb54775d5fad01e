//! Leader election against the fake apiserver, with short durations (3 s lease, 2 s
//! renew deadline, 0.5 s retry period).

use std::{
    future::Future,
    time::{Duration, Instant},
};

use eventer_core::ErrorKind;
use eventer_fake_apiserver::FakeApiServer;
use eventer_source_k8s::{LeaderElector, Leadership, LeaseConfig, SourceConfig};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, api::PostParams};
use tokio::task::JoinHandle;

/// Bound on every wait; tests wait on conditions, this only turns a hang into a failure.
const PATIENCE: Duration = Duration::from_secs(30);
const LEASE: Duration = Duration::from_secs(3);
const RENEW_DEADLINE: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_millis(500);
/// Scheduling and request latency allowed on top of the protocol's own bounds.
const SLACK: Duration = Duration::from_millis(500);
const NAMESPACE: &str = "kube-system";
const NAME: &str = "eventer";

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f).await.expect("timed out waiting")
}

fn config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        lease_duration: LEASE,
        renew_deadline: RENEW_DEADLINE,
        retry_period: RETRY,
        ..LeaseConfig::new(NAMESPACE, NAME, identity)
    }
}

async fn elector(server: &FakeApiServer, identity: &str) -> LeaderElector {
    LeaderElector::for_source(&SourceConfig::for_url(server.url()), config(identity)).await.unwrap()
}

/// Compete in the background.
fn compete(elector: &LeaderElector) -> JoinHandle<eventer_core::Result<Leadership>> {
    let elector = elector.clone();
    tokio::spawn(async move { elector.acquire().await })
}

async fn leases(server: &FakeApiServer) -> Api<Lease> {
    Api::namespaced(SourceConfig::for_url(server.url()).client().await.unwrap(), NAMESPACE)
}

/// (holderIdentity, leaseTransitions) as stored.
async fn holder(api: &Api<Lease>) -> (Option<String>, Option<i32>) {
    let spec = api.get(NAME).await.unwrap().spec.unwrap();
    (spec.holder_identity, spec.lease_transitions)
}

/// Wait until the leader has renewed `n` more times (`renewTime` moved).
async fn renewals(api: &Api<Lease>, n: usize) {
    within(async {
        let mut last = api.get(NAME).await.unwrap().spec.unwrap().renew_time;
        let mut seen = 0;
        while seen < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = api.get(NAME).await.unwrap().spec.unwrap().renew_time;
            if now != last {
                seen += 1;
                last = now;
            }
        }
    })
    .await;
}

/// Lease GETs so far: a leader renews with PUTs only, so new GETs come from standbys.
fn lease_reads(server: &FakeApiServer) -> usize {
    let path = format!("GET /apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{NAME}");
    server.requests().iter().filter(|r| **r == path).count()
}

/// Wait until a standby has tried (and failed) to acquire `n` more times.
async fn standby_tries(server: &FakeApiServer, n: usize) {
    let start = lease_reads(server);
    within(async {
        while lease_reads(server) < start + n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

async fn acquired(task: JoinHandle<eventer_core::Result<Leadership>>) -> Leadership {
    within(task).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_two_leads() {
    let server = FakeApiServer::start().await.unwrap();
    let api = leases(&server).await;
    let (a, b) = (elector(&server, "a").await, elector(&server, "b").await);
    let mut tasks = [compete(&a), compete(&b)];
    within(async {
        while !tasks.iter().any(JoinHandle::is_finished) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let (winner, loser) = if tasks[0].is_finished() { (0, 1) } else { (1, 0) };
    let ids = ["a", "b"];
    let leadership = within(&mut tasks[winner]).await.unwrap().unwrap();
    // The leader keeps renewing while the standby keeps trying, and never wins.
    renewals(&api, 3).await;
    standby_tries(&server, 2).await;
    assert!(!tasks[loser].is_finished(), "both lead");
    assert!(leadership.is_leader());
    assert_eq!(holder(&api).await, (Some(ids[winner].to_owned()), Some(0)));
    let spec = api.get(NAME).await.unwrap().spec.unwrap();
    assert_eq!(spec.lease_duration_seconds, Some(3));
    assert!(spec.acquire_time.is_some_and(|t| Some(t) < spec.renew_time));
    tasks[loser].abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_over_when_the_leader_stops_renewing() {
    let server = FakeApiServer::start().await.unwrap();
    let api = leases(&server).await;
    let a = acquired(compete(&elector(&server, "a").await)).await;
    let b = compete(&elector(&server, "b").await);
    standby_tries(&server, 2).await;
    let lost = a.lost();
    // As a crash would: no release.
    let stopped = Instant::now();
    drop(a);
    within(lost).await;
    let b = acquired(b).await;
    let took = stopped.elapsed();
    println!("takeover after the leader stopped renewing: {took:?}");
    assert!(took >= LEASE - RETRY - SLACK, "took over a live lease after {took:?}");
    assert!(took <= LEASE + RETRY + SLACK, "took over after {took:?}");
    assert!(b.is_leader());
    assert_eq!(holder(&api).await, (Some("b".to_owned()), Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_release_hands_over_at_once() {
    let server = FakeApiServer::start().await.unwrap();
    let api = leases(&server).await;
    let a = acquired(compete(&elector(&server, "a").await)).await;
    let b = compete(&elector(&server, "b").await);
    standby_tries(&server, 2).await;
    let lost = a.lost();
    let released = Instant::now();
    within(a.release()).await;
    within(lost).await;
    let spec = api.get(NAME).await.unwrap().spec.unwrap();
    // Unless b already took it, the record is the one client-go's ReleaseOnCancel writes.
    if spec.holder_identity.is_none() {
        assert_eq!((spec.lease_duration_seconds, spec.lease_transitions), (Some(1), Some(0)));
    }
    let b = acquired(b).await;
    let took = released.elapsed();
    println!("takeover after a graceful release: {took:?}");
    assert!(took <= RETRY + SLACK, "took over after {took:?}");
    assert!(b.is_leader());
    assert_eq!(holder(&api).await, (Some("b".to_owned()), Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_takeover_is_noticed() {
    let server = FakeApiServer::start().await.unwrap();
    let api = leases(&server).await;
    let a = acquired(compete(&elector(&server, "a").await)).await;
    let mut lease = api.get(NAME).await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("intruder".to_owned());
    spec.lease_transitions = Some(1);
    let taken = Instant::now();
    api.replace(NAME, &PostParams::default(), &lease).await.unwrap();
    within(a.lost()).await;
    let noticed = taken.elapsed();
    println!("external takeover noticed after {noticed:?}");
    assert!(noticed <= RETRY + SLACK, "noticed after {noticed:?}");
    assert!(!a.is_leader());
    // The old leader must not write the lease back.
    assert_eq!(holder(&api).await, (Some("intruder".to_owned()), Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_apiserver_loses_leadership() {
    let server = FakeApiServer::start().await.unwrap();
    let api = leases(&server).await;
    let a = acquired(compete(&elector(&server, "a").await)).await;
    renewals(&api, 1).await;
    let cut = Instant::now();
    server.set_unreachable(true);
    within(a.lost()).await;
    let lost = cut.elapsed();
    println!("leadership lost after the apiserver became unreachable: {lost:?}");
    assert!(server.refused() > 0, "no renewal was tried");
    // Not at the first failed renewal, and before a standby could take over.
    assert!(lost >= RENEW_DEADLINE - RETRY - SLACK, "gave up after {lost:?}");
    assert!(lost <= RENEW_DEADLINE + SLACK, "still leading after {lost:?}");
    assert!(!a.is_leader());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_is_an_error_not_a_wait() {
    let server = FakeApiServer::start().await.unwrap();
    server.set_forbidden(true);
    let err = within(elector(&server, "a").await.acquire()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(err.to_string(), "cannot read lease kube-system/eventer");
}

#[tokio::test]
async fn config_is_validated() {
    let client = SourceConfig::for_url("http://127.0.0.1:1").client().await.unwrap();
    let bad = |f: fn(&mut LeaseConfig)| {
        let mut c = config("a");
        f(&mut c);
        LeaderElector::new(client.clone(), c).unwrap_err()
    };
    let err = bad(|c| c.renew_deadline = LEASE);
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("lease duration (3s) must be longer than the renew deadline (3s)"), "{err}");
    let err = bad(|c| c.retry_period = RENEW_DEADLINE);
    assert!(err.to_string().contains("renew deadline (2s) must be longer than the retry period (2s)"), "{err}");
    assert!(bad(|c| c.retry_period = Duration::ZERO).to_string().contains("retry period must be positive"));
    assert!(bad(|c| c.identity.clear()).to_string().contains("identity is empty"));
    assert!(bad(|c| c.namespace = " ".into()).to_string().contains("namespace is empty"));
    let defaults = LeaseConfig::new("ns", "n", "id");
    assert_eq!(
        (defaults.lease_duration, defaults.renew_deadline, defaults.retry_period),
        (Duration::from_secs(15), Duration::from_secs(10), Duration::from_secs(2))
    );
    LeaderElector::new(client, defaults).unwrap();
}
