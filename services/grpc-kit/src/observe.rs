//! A span and RED metrics for every gRPC call a server handles.
//!
//! The span continues the caller's trace (`traceparent` in the metadata) and follows the
//! OpenTelemetry RPC conventions; the metrics are `ocop_rpc_server_requests_total` and
//! `ocop_rpc_server_duration_seconds` by service, method and status code.

use std::{
    task::{Context, Poll},
    time::Instant,
};

use tracing::Instrument as _;

/// Tower layer adding [`ObserveService`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ObserveLayer;

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = ObserveService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ObserveService { inner }
    }
}

/// See [`ObserveLayer`].
#[derive(Clone, Debug)]
pub struct ObserveService<S> {
    inner: S,
}

/// `/pkg.Service/Method` → (`pkg.Service`, `Method`).
fn split_path(path: &str) -> (String, String) {
    let trimmed = path.trim_start_matches('/');
    match trimmed.split_once('/') {
        Some((service, method)) => (service.to_owned(), method.to_owned()),
        None => (trimmed.to_owned(), String::new()),
    }
}

/// The gRPC status code of a response: in the headers for trailers-only (error)
/// responses, otherwise OK (errors after the first message are not our RPC style).
fn status_code<B>(response: &http::Response<B>) -> i32 {
    response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

impl<S, B, RB> tower::Service<http::Request<B>> for ObserveService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method) = split_path(request.uri().path());
        let span = tracing::info_span!(
            "rpc",
            otel.name = format!("{service}/{method}"),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        ocop_telemetry::propagation::set_parent_from_http(&span, request.headers());
        let started = Instant::now();
        let future = self.inner.call(request).instrument(span.clone());
        Box::pin(async move {
            let result = future.await;
            let code = match &result {
                Ok(response) => status_code(response),
                Err(_) => tonic::Code::Internal as i32,
            };
            span.record("rpc.grpc.status_code", code);
            let code_name = format!("{:?}", tonic::Code::from_i32(code));
            metrics::counter!(
                "ocop_rpc_server_requests_total",
                "service" => service.clone(),
                "method" => method.clone(),
                "code" => code_name.clone(),
            )
            .increment(1);
            metrics::histogram!(
                "ocop_rpc_server_duration_seconds",
                "service" => service,
                "method" => method,
                "code" => code_name,
            )
            .record(started.elapsed().as_secs_f64());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn grpc_path_splits_into_service_and_method() {
        assert_eq!(
            super::split_path("/ocop.catalog.v1.CatalogService/GetProduct"),
            (
                "ocop.catalog.v1.CatalogService".to_owned(),
                "GetProduct".to_owned()
            )
        );
    }
}
