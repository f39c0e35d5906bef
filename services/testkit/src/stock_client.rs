//! What a stock gRPC client sees: the checks the bad-input tests share (the code, the
//! field named in `BadRequest`, a small status), a request body that does not decode,
//! and the service list a `v1alpha` reflection client gets.

use ocop_grpc_kit::validation::violations;
use tonic::{Code, Status, transport::Channel};

/// A status larger than this would crowd a stock client's 8 kB metadata limit (the
/// message and the `BadRequest` detail both travel in the trailers).
pub const SMALL_STATUS_BYTES: usize = 1024;

/// Asserts that `status` is a small `INVALID_ARGUMENT` whose first field violation is
/// `field`; returns its message for further checks.
pub fn assert_invalid(status: &Status, field: &str) -> String {
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "expected INVALID_ARGUMENT on {field}, got {:?}: {}",
        status.code(),
        truncated(status.message())
    );
    let found = violations(status);
    assert_eq!(
        found.first().map(|violation| violation.field.as_str()),
        Some(field),
        "{}",
        truncated(status.message())
    );
    assert!(
        status.message().starts_with(&format!("{field}: ")),
        "the message names the field: {}",
        truncated(status.message())
    );
    let size = status.message().len() + status.details().len();
    assert!(
        size <= SMALL_STATUS_BYTES,
        "status of {size} bytes: {}",
        truncated(status.message())
    );
    status.message().to_owned()
}

fn truncated(text: &str) -> String {
    text.chars().take(200).collect()
}

/// A message whose field 1 is a varint: sent where field 1 is a string, its body is not
/// a valid message of the request type.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongWireType {
    #[prost(uint64, tag = "1")]
    one: u64,
}

/// Calls the unary method at `path` (`/pkg.Service/Method`, whose request has a string
/// or message field 1) with a body that does not decode as its request; returns the
/// status the server answers.
pub async fn call_with_undecodable_body(channel: Channel, path: &'static str) -> Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("channel ready");
    grpc.unary::<WrongWireType, WrongWireType, _>(
        tonic::Request::new(WrongWireType { one: 7 }),
        http::uri::PathAndQuery::from_static(path),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .expect_err("an undecodable body is refused")
}

/// The services a `grpc.reflection.v1alpha` client is told about, sorted; the status
/// when the server answers none.
pub async fn reflected_services(channel: Channel) -> Result<Vec<String>, Status> {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await?
        .into_inner();
    let response = responses
        .message()
        .await?
        .expect("one answer to one request");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list: {response:?}");
    };
    let mut names: Vec<String> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    names.sort();
    Ok(names)
}

/// What [`reflected_services`] lists on a server of `service`.
pub fn expected_reflection(service: &str) -> Vec<String> {
    let mut names = vec![
        service.to_owned(),
        "grpc.health.v1.Health".to_owned(),
        "grpc.reflection.v1.ServerReflection".to_owned(),
        "grpc.reflection.v1alpha.ServerReflection".to_owned(),
    ];
    names.sort();
    names
}
