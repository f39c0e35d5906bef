//! CloudEvents 1.0 in Kafka binary mode: attributes travel as `ce_*` headers, the
//! protobuf message is the record value.

use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::message::{BorrowedMessage, Header, Headers as _, Message as _, OwnedHeaders};
use uuid::Uuid;

/// The content type of every ocop-market event value.
pub const CONTENT_TYPE: &str = "application/protobuf";
const SPEC_VERSION: &str = "1.0";

/// One event: CloudEvents attributes plus the encoded protobuf payload.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    /// `ce_id`: unique per event, the consumers' dedupe key.
    pub id: Uuid,
    /// `ce_source`: the producing service, e.g. `/ocop/catalog`.
    pub source: String,
    /// `ce_type`: the protobuf full name, e.g. `ocop.catalog.v1.ProductSnapshot`.
    pub event_type: String,
    /// `ce_subject`: what the event is about, e.g. `product/<id>`.
    pub subject: Option<String>,
    /// `ce_time`: when the change happened (not when it was published).
    pub time: DateTime<Utc>,
    /// The Kafka record key (order id or product id): all events of one entity share a
    /// partition and stay in order.
    pub key: String,
    /// The protobuf-encoded message.
    pub data: Vec<u8>,
    /// W3C trace context (`traceparent`, `tracestate`) of the code that caused the event.
    pub trace_headers: Vec<(String, String)>,
}

/// Why a Kafka record is not a valid ocop-market event.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("missing header `{0}`")]
    MissingHeader(&'static str),
    #[error("header `{name}` is invalid: {reason}")]
    InvalidHeader { name: &'static str, reason: String },
    #[error("record has no value")]
    MissingValue,
    #[error("record has no key")]
    MissingKey,
    #[error("payload is not a valid {expected}: {reason}")]
    Payload { expected: String, reason: String },
}

impl CloudEvent {
    /// A new event about `key` carrying `message`, stamped now, with the current trace
    /// context.
    pub fn new<M: prost::Name>(
        source: impl Into<String>,
        key: impl Into<String>,
        subject: Option<String>,
        message: &M,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            source: source.into(),
            event_type: M::full_name(),
            subject,
            time: Utc::now(),
            key: key.into(),
            data: message.encode_to_vec(),
            trace_headers: ocop_telemetry::propagation::current_context_headers(),
        }
    }

    /// Whether the payload is a `M`.
    pub fn is<M: prost::Name>(&self) -> bool {
        self.event_type == M::full_name()
    }

    /// Decodes the payload as `M`, checking `ce_type` first.
    pub fn decode<M: prost::Name + Default>(&self) -> Result<M, DecodeError> {
        if !self.is::<M>() {
            return Err(DecodeError::Payload {
                expected: M::full_name(),
                reason: format!("ce_type is `{}`", self.event_type),
            });
        }
        M::decode(self.data.as_slice()).map_err(|err| DecodeError::Payload {
            expected: M::full_name(),
            reason: err.to_string(),
        })
    }

    /// The Kafka headers of binary mode.
    pub fn headers(&self) -> OwnedHeaders {
        let time = self.time.to_rfc3339_opts(SecondsFormat::Micros, true);
        let id = self.id.to_string();
        let mut headers = OwnedHeaders::new_with_capacity(8 + self.trace_headers.len())
            .insert(header("ce_specversion", SPEC_VERSION))
            .insert(header("ce_id", &id))
            .insert(header("ce_source", &self.source))
            .insert(header("ce_type", &self.event_type))
            .insert(header("ce_time", &time))
            .insert(header("content-type", CONTENT_TYPE));
        if let Some(subject) = &self.subject {
            headers = headers.insert(header("ce_subject", subject));
        }
        for (name, value) in &self.trace_headers {
            headers = headers.insert(header(name, value));
        }
        headers
    }

    /// Reads an event from a consumed record.
    pub fn from_message(message: &BorrowedMessage<'_>) -> Result<Self, DecodeError> {
        let mut pairs = Vec::new();
        if let Some(headers) = message.headers() {
            for header in headers.iter() {
                if let Some(value) = header.value {
                    pairs.push((
                        header.key.to_owned(),
                        String::from_utf8_lossy(value).into_owned(),
                    ));
                }
            }
        }
        let key = message
            .key()
            .map(|key| String::from_utf8_lossy(key).into_owned())
            .ok_or(DecodeError::MissingKey)?;
        let data = message.payload().ok_or(DecodeError::MissingValue)?.to_vec();
        Self::from_parts(key, data, &pairs)
    }

    /// Reads an event from a record's key, value and headers.
    pub fn from_parts(
        key: String,
        data: Vec<u8>,
        headers: &[(String, String)],
    ) -> Result<Self, DecodeError> {
        let find = |name: &'static str| {
            headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let require = |name: &'static str| find(name).ok_or(DecodeError::MissingHeader(name));

        let version = require("ce_specversion")?;
        if version != SPEC_VERSION {
            return Err(DecodeError::InvalidHeader {
                name: "ce_specversion",
                reason: format!("`{version}` is not {SPEC_VERSION}"),
            });
        }
        let id =
            require("ce_id")?
                .parse()
                .map_err(|err: uuid::Error| DecodeError::InvalidHeader {
                    name: "ce_id",
                    reason: err.to_string(),
                })?;
        let time = DateTime::parse_from_rfc3339(require("ce_time")?)
            .map_err(|err| DecodeError::InvalidHeader {
                name: "ce_time",
                reason: err.to_string(),
            })?
            .with_timezone(&Utc);
        let trace_headers = headers
            .iter()
            .filter(|(name, _)| name == "traceparent" || name == "tracestate")
            .cloned()
            .collect();
        Ok(Self {
            id,
            source: require("ce_source")?.to_owned(),
            event_type: require("ce_type")?.to_owned(),
            subject: find("ce_subject").map(str::to_owned),
            time,
            key,
            data,
            trace_headers,
        })
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a [u8]> {
    Header {
        key,
        value: Some(value.as_bytes()),
    }
}

/// All headers of an `OwnedHeaders` as string pairs (for tests and tools).
pub fn header_pairs(headers: &impl rdkafka::message::Headers) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|header| {
            Some((
                header.key.to_owned(),
                String::from_utf8_lossy(header.value?).into_owned(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CloudEvent {
        CloudEvent::new(
            "/ocop/test",
            "key-1",
            Some("thing/1".into()),
            &prost_types::Duration {
                seconds: 7,
                nanos: 0,
            },
        )
    }

    #[test]
    fn headers_round_trip_through_binary_mode() {
        let event = sample();
        let pairs = header_pairs(&event.headers());
        let names: Vec<_> = pairs.iter().map(|(name, _)| name.as_str()).collect();
        for required in [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "ce_subject",
            "content-type",
        ] {
            assert!(names.contains(&required), "{required} missing in {names:?}");
        }
        let back = CloudEvent::from_parts(event.key.clone(), event.data.clone(), &pairs).unwrap();
        assert_eq!(back.id, event.id);
        assert_eq!(back.event_type, "google.protobuf.Duration");
        assert_eq!(back.subject.as_deref(), Some("thing/1"));
        assert_eq!(back.decode::<prost_types::Duration>().unwrap().seconds, 7);
    }

    #[test]
    fn record_without_ce_id_is_rejected_naming_the_header() {
        let event = sample();
        let pairs: Vec<_> = header_pairs(&event.headers())
            .into_iter()
            .filter(|(name, _)| name != "ce_id")
            .collect();
        assert_eq!(
            CloudEvent::from_parts(event.key, event.data, &pairs),
            Err(DecodeError::MissingHeader("ce_id"))
        );
    }

    #[test]
    fn decoding_as_another_type_is_refused() {
        let err = sample().decode::<prost_types::Timestamp>().unwrap_err();
        assert!(matches!(err, DecodeError::Payload { .. }), "{err}");
    }
}
