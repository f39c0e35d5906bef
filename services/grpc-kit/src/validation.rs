//! Request validation errors: `INVALID_ARGUMENT` naming the field, with a
//! `google.rpc.BadRequest` detail that clients can read programmatically.

use tonic_types::{ErrorDetails, StatusExt as _};

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {description}")]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `lines[2].quantity`.
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }

    /// The same violation under a parent path: `price` in `lines[2]` → `lines[2].price`.
    pub fn within(self, parent: &str) -> Self {
        Self {
            field: format!("{parent}.{}", self.field),
            description: self.description,
        }
    }
}

impl From<FieldViolation> for tonic::Status {
    fn from(violation: FieldViolation) -> Self {
        tonic::Status::with_error_details(
            tonic::Code::InvalidArgument,
            violation.to_string(),
            ErrorDetails::with_bad_request_violation(violation.field, violation.description),
        )
    }
}

/// Reads the field violations of an `INVALID_ARGUMENT` status (for clients and tests).
pub fn violations(status: &tonic::Status) -> Vec<FieldViolation> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad_request| {
            bad_request
                .field_violations
                .iter()
                .map(|violation| FieldViolation::new(&violation.field, &violation.description))
                .collect()
        })
        .unwrap_or_default()
}

/// Parses a UUID field, naming it on failure.
pub fn parse_uuid(field: &str, raw: &str) -> Result<uuid::Uuid, FieldViolation> {
    if raw.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    raw.parse()
        .map_err(|_| FieldViolation::new(field, format!("`{raw}` is not a UUID")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violation_becomes_invalid_argument_with_bad_request_detail() {
        let status: tonic::Status = FieldViolation::new("stars", "must be 3 to 5").into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "stars: must be 3 to 5");
        assert_eq!(
            violations(&status),
            vec![FieldViolation::new("stars", "must be 3 to 5")]
        );
    }

    #[test]
    fn nested_violation_names_the_full_path() {
        let violation = FieldViolation::new("quantity", "must be positive").within("lines[2]");
        assert_eq!(violation.field, "lines[2].quantity");
    }
}
