//! Prometheus metrics: one process-wide recorder behind the `metrics` facade, rendered
//! on `GET /metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets in seconds, from a fast cache hit to a slow provider call.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder, installed on first use (tests start several services in
/// one process, so this must be idempotent).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("latency buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// An axum router serving `GET /metrics` in the Prometheus text format; services merge
/// their own HTTP routes (probes, provider callbacks) into it.
pub fn router() -> axum::Router {
    let handle = handle();
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    )
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Handlers may read the peer's address (`ConnectInfo<SocketAddr>`), e.g. to rate
    // limit per address.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn recorded_counter_is_rendered_in_prometheus_text() {
        let handle = super::handle();
        metrics::counter!("ocop_telemetry_selftest_total", "kind" => "unit").increment(3);
        let text = handle.render();
        assert!(
            text.contains(r#"ocop_telemetry_selftest_total{kind="unit"} 3"#),
            "{text}"
        );
    }
}
