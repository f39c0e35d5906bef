//! The notification service (work in progress).
