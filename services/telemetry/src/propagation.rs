//! W3C trace context (`traceparent`, `tracestate`) in and out of carriers: gRPC/HTTP
//! headers and the key/value headers of a Kafka record.

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The current span's context as header pairs, ready to store with an outbox row or
/// to attach to a Kafka record. Empty when there is no current span.
pub fn current_context_headers() -> Vec<(String, String)> {
    let context = tracing::Span::current().context();
    let mut headers = PairInjector(Vec::new());
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut headers);
    });
    headers.0
}

/// Makes `span` a child of the context found in `headers` (if any).
pub fn set_parent_from_pairs<'a>(
    span: &tracing::Span,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    let pairs = PairExtractor(headers.into_iter().collect());
    let parent =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&pairs));
    // A missing or malformed parent leaves the span a root: nothing to report.
    let _ = span.set_parent(parent);
}

/// Makes `span` a child of the context in HTTP/gRPC headers (if any).
pub fn set_parent_from_http(span: &tracing::Span, headers: &http::HeaderMap) {
    set_parent_from_pairs(
        span,
        headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))),
    );
}

/// Writes the current span's context into HTTP/gRPC headers.
pub fn inject_into_http(headers: &mut http::HeaderMap) {
    for (name, value) in current_context_headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(name),
            http::HeaderValue::try_from(value),
        ) {
            headers.insert(name, value);
        }
    }
}

/// The trace id of the current span, for log fields and test assertions.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    let context = tracing::Span::current().context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

struct PairInjector(Vec<(String, String)>);

impl Injector for PairInjector {
    fn set(&mut self, key: &str, value: String) {
        // An empty `tracestate` says nothing; leave it out rather than send a blank header.
        if !value.is_empty() {
            self.0.push((key.to_owned(), value));
        }
    }
}

struct PairExtractor<'a>(Vec<(&'a str, &'a str)>);

impl Extractor for PairExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| *value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| *name).collect()
    }
}
