//! The health and metrics server on `--healthz-ip`/`--healthz-port`: `/healthz` (alive;
//! also as `/healtz`, kube-eventer's spelling, so that its probes keep working), `/readyz`
//! (every component ready), `/metrics` (Prometheus text).

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
    let alive = get(|| async { "ok\n" });
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
