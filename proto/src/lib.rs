//! Generated types of the ocop-market contract: one module per `ocop.<area>.v1`
//! package, holding both the gRPC service and the event messages of that area;
//! [`money`], how the contract's amounts read to people; and [`codec`], the generated
//! code's codec (a request that does not decode is `INVALID_ARGUMENT`); and
//! [`contract`], what the services share besides the messages (topics, consumer groups,
//! payment-method codes, the timestamp conversion, the phone-number rule).

pub mod codec;
pub mod contract;
pub mod money;

/// The encoded `FileDescriptorSet` of every proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ocop_descriptor.bin"));

pub mod catalog {
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("ocop.catalog.v1");
    }
}

pub mod order {
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("ocop.order.v1");
    }
}

pub mod payment {
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("ocop.payment.v1");
    }
}

pub mod notification {
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("ocop.notification.v1");
    }
}
