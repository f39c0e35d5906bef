//! `google.protobuf.Timestamp` ↔ `chrono::DateTime<Utc>`: every event's `occurred_at`,
//! deadlines and the API's `created_at`/`updated_at`.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

/// The protobuf form of `time` (nanosecond precision kept).
pub fn to_proto(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        // Below 2·10⁹ even in a leap second, so it always fits.
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// The time `timestamp` stands for, or `None` when it is not a valid timestamp
/// (negative nanos, or out of chrono's range).
pub fn from_proto(timestamp: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(timestamp.nanos).ok()?;
    DateTime::from_timestamp(timestamp.seconds, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_survives_the_round_trip_to_the_nanosecond() {
        let time = DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap();
        let proto = to_proto(time);
        assert_eq!((proto.seconds, proto.nanos), (1_800_000_000, 123_456_789));
        assert_eq!(from_proto(&proto), Some(time));
    }

    #[test]
    fn invalid_timestamps_are_no_time() {
        let negative_nanos = Timestamp {
            seconds: 1,
            nanos: -1,
        };
        assert_eq!(from_proto(&negative_nanos), None);
        let out_of_range = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(from_proto(&out_of_range), None);
    }
}
