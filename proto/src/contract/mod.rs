//! What the services, tools and tests share besides the generated messages, defined
//! once: the Kafka topics and their partition counts, the consumer groups and their
//! dead-letter topics, the payment-method codes, the protobuf `Timestamp` ↔ chrono
//! conversion and the Vietnamese phone-number rule.
//!
//! Plain data and pure functions only: this crate cannot depend on rdkafka or sqlx, so
//! each service turns [`topics::Topic`]s into the Kafka kit's `TopicSpec`s itself.
//!
//! The CloudEvent `type` of an event is not listed here: it is the protobuf full name
//! of its message (`prost::Name::full_name`, e.g. `ocop.order.v1.OrderPlaced`), which
//! the generated code already defines once; `CloudEvent::is::<M>()` and
//! `CloudEvent::decode::<M>()` compare against it, so no string constant could drift
//! from the message.

pub mod consumer_groups;
pub mod payment_methods;
pub mod phone;
pub mod timestamp;
pub mod topics;
