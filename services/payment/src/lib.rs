//! The payment service (work in progress).
