//! A panic inside a handler answers that one call `INTERNAL` and is logged; the
//! connection and the server carry on. Without it the call's task dies mid-stream and the
//! client reads a reset stream (an opaque `UNKNOWN`/`INTERNAL` from the transport), with
//! nothing in our logs but the default panic hook's stderr line.

use std::{
    any::Any,
    panic::AssertUnwindSafe,
    task::{Context, Poll},
};

use futures::FutureExt as _;

/// Tower layer adding [`CatchPanicService`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CatchPanicLayer;

impl<S> tower::Layer<S> for CatchPanicLayer {
    type Service = CatchPanicService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanicService { inner }
    }
}

/// See [`CatchPanicLayer`].
#[derive(Clone, Debug)]
pub struct CatchPanicService<S> {
    inner: S,
}

/// The panic's message, when it has one (`panic!("…")` gives `&str` or `String`).
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

fn internal<RB: Default>(path: &str, payload: &(dyn Any + Send)) -> http::Response<RB> {
    tracing::error!(
        rpc.path = %path,
        panic = panic_message(payload),
        "handler panicked; the call answers INTERNAL"
    );
    tonic::Status::internal("internal error").into_http()
}

impl<S, B, RB> tower::Service<http::Request<B>> for CatchPanicService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Default + Send + 'static,
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
        let path = request.uri().path().to_owned();
        // The handler's state is dropped with the call, so nothing half-updated is seen
        // again: unwind safety holds for what outlives the call (pools, channels).
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(future) => Box::pin(async move {
                match AssertUnwindSafe(future).catch_unwind().await {
                    Ok(result) => result,
                    Err(payload) => Ok(internal(&path, payload.as_ref())),
                }
            }),
            Err(payload) => {
                let response = internal(&path, payload.as_ref());
                Box::pin(async move { Ok(response) })
            }
        }
    }
}
