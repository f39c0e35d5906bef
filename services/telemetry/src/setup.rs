//! Subscriber and tracer-provider set-up.

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracerProvider},
};
use tracing_subscriber::{
    EnvFilter, Layer as _, filter::LevelFilter, layer::SubscriberExt as _,
    util::SubscriberInitExt as _,
};

/// Telemetry settings, read from flags or the standard OpenTelemetry variables.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryConfig {
    /// OTLP/gRPC endpoint for traces (e.g. `http://otel-collector:4317`); traces are
    /// not exported when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Fraction of new traces to sample (parent-based: a sampled caller is always followed).
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG", default_value_t = 1.0, value_parser = parse_ratio)]
    pub trace_sample_ratio: f64,

    /// Log filter in `tracing` syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,

    /// Instance id reported as `service.instance.id` (the pod name on Kubernetes).
    #[arg(long, env = "OCOP_INSTANCE_ID", default_value = "local")]
    pub instance_id: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            trace_sample_ratio: 1.0,
            log_filter: "info".into(),
            instance_id: "local".into(),
        }
    }
}

fn parse_ratio(raw: &str) -> Result<f64, String> {
    let ratio: f64 = raw
        .parse()
        .map_err(|_| format!("`{raw}` is not a number"))?;
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(format!("{ratio} is outside 0.0..=1.0"))
    }
}

/// Flushes and shuts the tracer provider down when dropped (end of `main`).
#[must_use = "traces are lost unless the guard lives until the end of main"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("telemetry shutdown failed: {err}");
        }
    }
}

/// Installs the global subscriber (JSON logs, optional OTLP traces), the W3C propagator
/// and the metrics recorder. Call once, at the top of `main`.
pub fn init(
    service_name: &'static str,
    config: &TelemetryConfig,
) -> anyhow::Result<TelemetryGuard> {
    // Before anything records: a metric registered while no recorder is installed goes
    // nowhere, and counters exported at zero from start-up would be missing.
    crate::metrics::handle();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_new(&config.log_filter)
        .with_context(|| format!("invalid log filter `{}`", config.log_filter))?;
    let dispatch = crate::log_format::DispatchSlot::default();
    let logs = tracing_subscriber::fmt::layer()
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .event_format(crate::log_format::WithTraceIds {
            inner: tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false),
            dispatch: dispatch.clone(),
        });

    // The provider exists even without an exporter: spans still get W3C ids, so the
    // context travels through gRPC and Kafka and log lines carry a trace id.
    let provider = tracer_provider(service_name, config)?;
    let traces = tracing_opentelemetry::layer().with_tracer(provider.tracer(service_name));
    opentelemetry::global::set_tracer_provider(provider.clone());

    // The log filter applies to log lines only: `RUST_LOG=warn` must not switch off the
    // INFO-level spans that carry the trace from service to service.
    tracing_subscriber::registry()
        .with(crate::log_format::CaptureDispatch(dispatch))
        .with(logs.with_filter(filter))
        .with(traces.with_filter(LevelFilter::INFO))
        .try_init()
        .context("install tracing subscriber")?;
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}

fn tracer_provider(
    service_name: &'static str,
    config: &TelemetryConfig,
) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig as _;
    let resource = Resource::builder()
        .with_service_name(service_name)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            config.instance_id.clone(),
        ))
        .build();
    let mut builder = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.trace_sample_ratio,
        ))));
    if let Some(endpoint) = &config.otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .context("build OTLP span exporter")?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::parse_ratio;

    #[test]
    fn sample_ratio_outside_zero_to_one_is_refused() {
        assert_eq!(parse_ratio("0.25"), Ok(0.25));
        assert!(parse_ratio("1.5").unwrap_err().contains("outside"));
        assert!(parse_ratio("half").unwrap_err().contains("not a number"));
    }
}
