//! The codec of every generated client and server: tonic-prost's, except that a request
//! body that does not decode answers `INVALID_ARGUMENT` (the caller sent it) instead of
//! tonic-prost's `INTERNAL` (which says the server failed, and which alerts watch).
//!
//! One codec serves both directions, and a decoder cannot tell which side it runs on;
//! the message type can: every RPC request type is named `…Request` (buf's
//! `RPC_REQUEST_STANDARD_NAME` lint holds the contract to it). A response that does not
//! decode stays `INTERNAL`.

use std::marker::PhantomData;

use prost::{Message, Name};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder},
};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct OcopCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Default for OcopCodec<T, U> {
    fn default() -> Self {
        Self {
            inner: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for OcopCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = OcopDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        OcopDecoder {
            inner: self.inner.decoder(),
            _message: PhantomData,
        }
    }
}

/// Decodes `U` as tonic-prost does, naming a request that does not decode as the
/// caller's error.
#[derive(Debug)]
pub struct OcopDecoder<U> {
    inner: ProstDecoder<U>,
    _message: PhantomData<U>,
}

/// Whether `U` is what a client sends (see the module documentation).
fn is_request<U: Name>() -> bool {
    U::NAME.ends_with("Request")
}

impl<U: Message + Name + Default> Decoder for OcopDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.inner.decode(buf).map_err(|status| {
            if is_request::<U>() && status.code() == tonic::Code::Internal {
                Status::invalid_argument(format!(
                    "the request body is not a valid {}",
                    U::full_name()
                ))
            } else {
                status
            }
        })
    }

    fn buffer_settings(&self) -> tonic::codec::BufferSettings {
        self.inner.buffer_settings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_are_told_apart_by_their_names() {
        assert!(is_request::<crate::catalog::v1::GetProductRequest>());
        assert!(!is_request::<crate::catalog::v1::GetProductResponse>());
    }
}
