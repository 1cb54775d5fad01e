//! The health and metrics server on `--healthz-ip`/`--healthz-port`: `/healthz` (alive:
//! nothing wedged for `--liveness-timeout`; also as `/healtz`, kube-eventer's spelling, so
//! that its probes keep working), `/readyz` (every component ready), `/metrics`
//! (Prometheus text).

use std::net::SocketAddr;

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use eventer_core::{
    Telemetry,
    telemetry::{Check, Health},
    uri::redact,
};
use tokio::net::TcpListener;
use tracing::{error, info};

/// Bind `addr`; returns the bound address (useful with port 0).
///
/// # Errors
/// When the address cannot be bound.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serve until the process ends.
pub(crate) async fn serve(listener: TcpListener, telemetry: Telemetry) {
    let alive = get(healthz);
    let app = Router::new()
        .route("/healthz", alive.clone())
        .route("/healtz", alive)
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(telemetry);
    if let Err(e) = axum::serve(listener, app).await {
        error!(error = %e, "The health and metrics server stopped.");
    }
    info!("Health and metrics server stopped.");
}

/// `503` with one line per wedged part, so that the kubelet restarts the process and it
/// resumes from its checkpoint.
async fn healthz(State(telemetry): State<Telemetry>) -> impl IntoResponse {
    let wedged = telemetry.health.liveness();
    if wedged.is_empty() {
        return (StatusCode::OK, "ok\n".to_owned());
    }
    let body: String = wedged.iter().map(|why| format!("wedged {}\n", redact(why))).collect();
    error!(reasons = %wedged.join("; "), "Liveness check failing: the pipeline is wedged.");
    (StatusCode::SERVICE_UNAVAILABLE, body)
}

/// `eventer_build_info{version,target}`, always 1: which build each replica runs.
pub(crate) fn build_info(telemetry: &Telemetry) {
    let target = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS);
    telemetry
        .metrics
        .with_label("version", env!("CARGO_PKG_VERSION"))
        .with_label("target", target)
        .gauge("build_info", "The eventer build: version and target, always 1")
        .set(1);
}

async fn readyz(State(telemetry): State<Telemetry>) -> impl IntoResponse {
    let status = if telemetry.health.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, describe(&telemetry.health))
}

/// One line per component: `ok source`, `not ready source: listing`, `failing sink/x: ...`.
fn describe(health: &Health) -> String {
    let mut out = String::new();
    for (name, check) in health.report() {
        // Reasons come from errors, which may quote URLs: redact as everywhere else.
        out.push_str(&match check {
            Check::Ready => format!("ok {name}\n"),
            Check::NotReady(why) => format!("not ready {name}: {}\n", redact(&why)),
            Check::Failing(why) => format!("failing {name}: {}\n", redact(&why)),
        });
    }
    out
}

async fn metrics(State(telemetry): State<Telemetry>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], telemetry.metrics.encode())
}
