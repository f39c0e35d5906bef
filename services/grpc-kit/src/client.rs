//! Outgoing gRPC: channels whose calls carry the caller's trace context.

use std::time::Duration;

use tonic::{
    metadata::{MetadataKey, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

/// A channel that injects `traceparent`/`tracestate` into every call.
pub type TracedChannel = InterceptedService<Channel, TraceContext>;

/// Interceptor writing the current span's W3C context into the request metadata.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContext;

impl Interceptor for TraceContext {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        for (name, value) in ocop_telemetry::propagation::current_context_headers() {
            if let (Ok(key), Ok(value)) = (
                MetadataKey::from_bytes(name.as_bytes()),
                MetadataValue::try_from(value.as_str()),
            ) {
                request.metadata_mut().insert(key, value);
            }
        }
        Ok(request)
    }
}

/// A lazily connecting channel to `uri` (e.g. `http://catalog:50051`): the service
/// starts even when a dependency is not up yet, and calls fail with `UNAVAILABLE` until
/// it is.
pub fn traced_channel(uri: &str, connect_timeout: Duration) -> anyhow::Result<TracedChannel> {
    let channel = Endpoint::from_shared(uri.to_owned())?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .connect_lazy();
    Ok(InterceptedService::new(channel, TraceContext))
}
