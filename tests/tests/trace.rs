//! One order is one trace: the four services run as real processes exporting OTLP to a
//! receiver of the test's own; after an order settles, every span of its trace must
//! share the trace id, come from all four services, and hang together as one tree.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use ocop_e2e::{
    SECRET, WAIT, place_request,
    processes::{Options, ProcessPlatform},
};
use ocop_proto::order::v1::{self as order};
use ocop_testkit::{
    eventually,
    fixtures::{place_order, wait_for_status},
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
};
use tokio_util::sync::CancellationToken;

/// A span as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(
                    |attribute| match attribute.value.as_ref()?.value.as_ref()? {
                        Value::StringValue(name) => Some(name.clone()),
                        _ => None,
                    },
                )
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        service: service.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

// Multi-threaded: the receiver must keep answering exports while the test blocks on a
// child process's exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_trace_across_all_four_services() {
    // The receiver.
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    let stop_receiver = CancellationToken::new();
    let stopped = stop_receiver.clone();
    let served = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async move { stopped.cancelled().await },
            ),
    );

    // The platform, one process per service, all exporting to the receiver.
    let platform = ProcessPlatform::start(
        "trace",
        Options {
            env: vec![("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), otlp.clone())],
            ..Options::default()
        },
    )
    .await;
    let (mut catalog_client, orders) = platform.clients().await;
    let product_id =
        ocop_testkit::fixtures::seed_product(&mut catalog_client, ocop_e2e::SECRET, 5, 450_000)
            .await;

    let placed = place_order(&orders, place_request("trace-1", &product_id, 1)).await;
    wait_for_status(
        &orders,
        SECRET,
        &placed.id,
        order::OrderStatus::Confirmed,
        WAIT,
    )
    .await;
    let spool = platform.spool.join("notifications.jsonl");
    eventually("the shopper told three times", WAIT, || async {
        let told = std::fs::read_to_string(&spool).unwrap_or_default();
        (told.lines().count() >= 3).then_some(())
    })
    .await;

    // A graceful stop flushes every exporter.
    platform.stop().await;
    let spans = receiver.spans.lock().unwrap().clone();
    stop_receiver.cancel();
    served.await.unwrap().unwrap();

    let place = spans
        .iter()
        .find(|span| span.name == "ocop.order.v1.OrderService/PlaceOrder")
        .unwrap_or_else(|| panic!("no PlaceOrder span among {} spans", spans.len()));
    let trace: Vec<&Received> = spans
        .iter()
        .filter(|span| span.trace_id == place.trace_id)
        .collect();
    let services: HashSet<&str> = trace.iter().map(|span| span.service.as_str()).collect();
    for expected in ["catalog", "order", "payment", "notification"] {
        assert!(
            services.contains(expected),
            "{expected} is missing from the order's trace: {trace:#?}"
        );
    }
    let names: HashSet<&str> = trace.iter().map(|span| span.name.as_str()).collect();
    assert!(
        names.contains("ocop.catalog.v1.CatalogService/QuotePrice"),
        "{names:?}"
    );
    assert!(names.contains("POST /callbacks/sandbox"), "{names:?}");
    // Database calls are client spans named `<operation> <table>` (semantic conventions).
    for database_call in [
        "INSERT orders",
        "SELECT stock",
        "INSERT payment_intents",
        "INSERT inbox",
        "INSERT notifications",
    ] {
        assert!(
            names.contains(database_call),
            "no {database_call}: {names:?}"
        );
    }

    // One tree: a single root (PlaceOrder) and every other span's parent in the trace.
    let ids: HashSet<&[u8]> = trace.iter().map(|span| span.span_id.as_slice()).collect();
    let roots: Vec<&&Received> = trace
        .iter()
        .filter(|span| span.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "roots: {roots:#?}");
    assert_eq!(roots[0].span_id, place.span_id);
    for span in &trace {
        if !span.parent_span_id.is_empty() {
            assert!(
                ids.contains(span.parent_span_id.as_slice()),
                "orphan span: {span:#?}"
            );
        }
    }
    eprintln!("order trace: {} spans from {:?}", trace.len(), services);
}
