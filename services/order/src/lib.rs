//! The order service (work in progress).
