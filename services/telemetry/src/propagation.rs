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

/// Makes `span` a child of the context found in `headers` (if any). Call it before the
/// span is first entered: a started span keeps the parent it has.
pub fn set_parent_from_pairs<'a>(
    span: &tracing::Span,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    let pairs = PairExtractor(headers.into_iter().collect());
    let parent =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&pairs));
    if let Err(err) = span.set_parent(parent) {
        // A missing parent is normal (the span stays a root); a refused one is a bug.
        tracing::debug!(error = %err, "span parent not set");
    }
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

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn context_written_to_headers_makes_the_reader_a_child_of_the_same_trace() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let (headers, writer_trace) = tracing::info_span!("writer").in_scope(|| {
                (
                    current_context_headers(),
                    current_trace_id().expect("writer has a trace"),
                )
            });
            let traceparent = headers
                .iter()
                .find(|(name, _)| name == "traceparent")
                .map(|(_, value)| value.clone())
                .expect("traceparent written");
            assert!(traceparent.contains(&writer_trace), "{traceparent}");
            assert!(
                headers.iter().all(|(_, value)| !value.is_empty()),
                "{headers:?}"
            );

            let reader = tracing::info_span!("reader");
            set_parent_from_pairs(
                &reader,
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            let reader_trace = reader.in_scope(current_trace_id);
            assert_eq!(reader_trace.as_deref(), Some(writer_trace.as_str()));

            let unrelated = tracing::info_span!("unrelated").in_scope(current_trace_id);
            assert_ne!(unrelated.as_deref(), Some(writer_trace.as_str()));
        });
    }
}
