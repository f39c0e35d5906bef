//! Deny by default, checked against the contract itself: every method of every gRPC
//! service in `proto/` has an explicit entry in the policy of the service that serves it,
//! and no policy admits a method of a service it does not serve.

use ocop_grpc_kit::auth::Policy;
use prost::Message as _;
use prost_types::FileDescriptorSet;

/// Which server serves the services of each package, and that server's policy.
const SERVERS: [(&str, Policy); 4] = [
    ("ocop.catalog.v1", ocop_catalog::grpc::policy),
    ("ocop.order.v1", ocop_order::grpc::policy),
    ("ocop.payment.v1", ocop_payment::grpc::policy),
    ("ocop.notification.v1", ocop_notification::grpc::policy),
];

/// Every RPC of the contract: (package, `/package.Service/Method`).
fn every_method() -> Vec<(String, String)> {
    let set = FileDescriptorSet::decode(ocop_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let mut methods = Vec::new();
    for file in set.file {
        let package = file.package().to_owned();
        for service in &file.service {
            for method in &service.method {
                methods.push((
                    package.clone(),
                    format!("/{package}.{}/{}", service.name(), method.name()),
                ));
            }
        }
    }
    methods
}

#[test]
fn every_method_of_every_service_has_an_explicit_policy_on_its_server_only() {
    let methods = every_method();
    assert!(
        methods.len() >= 18,
        "the contract's services were not found: {methods:?}"
    );
    let mut missing = Vec::new();
    for (package, method) in &methods {
        for (served, policy) in SERVERS {
            let known = policy(method).is_some();
            if served == package && !known {
                missing.push(format!("{method} is missing from its server's policy"));
            }
            if served != package && known {
                missing.push(format!("{method} is admitted by the {served} server"));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}
