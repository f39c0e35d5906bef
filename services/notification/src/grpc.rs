//! The notification service's gRPC API: the only module besides `events.rs` that sees
//! prost types. Requests become domain values here (`INVALID_ARGUMENT` naming the field
//! when they cannot), records become messages.

use ocop_grpc_kit::{
    auth::Access,
    page_token,
    validation::{FieldViolation, parse_uuid},
};
use ocop_proto::notification::v1::{
    self as pb, list_notifications_request::Filter,
    notification_service_server::NotificationService,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    domain::{
        Invalid,
        contact::Address,
        delivery::{ChannelKind, Status as DeliveryStatus},
    },
    error::NotificationError,
    service::{ListFilter, Notifications},
    store::NotificationRecord,
};
use ocop_proto::contract::timestamp;

/// The scope to read notifications: they hold personal data, so every method of the
/// service needs it.
pub const READ_SCOPE: &str = "notification:read";

/// Which calls need which scope.
pub fn policy(method: &str) -> Option<Access> {
    match method.strip_prefix("/ocop.notification.v1.NotificationService/")? {
        "ListNotifications" => Some(Access::Scope(READ_SCOPE)),
        _ => None,
    }
}

const MAX_PAGE_SIZE: i32 = 100;
const DEFAULT_PAGE_SIZE: i32 = 20;

impl From<Invalid> for FieldViolation {
    fn from(invalid: Invalid) -> Self {
        FieldViolation::new(invalid.field, invalid.reason)
    }
}

impl From<NotificationError> for Status {
    fn from(err: NotificationError) -> Self {
        match err {
            NotificationError::Invalid(invalid) => FieldViolation::from(invalid).into(),
            NotificationError::OrderUnknown(order_id) => {
                Status::not_found(format!("order_id: no order {order_id}"))
            }
            NotificationError::Template(err) => {
                tracing::error!(error = %err, "template error");
                Status::internal("internal error")
            }
            NotificationError::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "internal error");
                Status::internal("internal error")
            }
        }
    }
}

pub fn channel_to_proto(channel: Option<ChannelKind>) -> pb::NotificationChannel {
    match channel {
        Some(ChannelKind::Log) => pb::NotificationChannel::Log,
        Some(ChannelKind::Email) => pb::NotificationChannel::Email,
        Some(ChannelKind::Sms) => pb::NotificationChannel::Sms,
        Some(ChannelKind::ZaloZns) => pb::NotificationChannel::ZaloZns,
        None => pb::NotificationChannel::Unspecified,
    }
}

fn status_to_proto(status: Option<DeliveryStatus>) -> pb::NotificationStatus {
    match status {
        Some(DeliveryStatus::Pending) => pb::NotificationStatus::Pending,
        Some(DeliveryStatus::Sent) => pb::NotificationStatus::Sent,
        Some(DeliveryStatus::Failed) => pb::NotificationStatus::Failed,
        None => pb::NotificationStatus::Unspecified,
    }
}

pub fn notification_to_proto(record: &NotificationRecord) -> pb::Notification {
    pb::Notification {
        id: record.id.to_string(),
        order_id: record.order_id.to_string(),
        recipient: record.recipient.clone(),
        channel: channel_to_proto(record.channel()) as i32,
        template: record.template.clone(),
        subject: record.subject.clone(),
        body: record.body.clone(),
        status: status_to_proto(record.status()) as i32,
        attempts: record.attempts,
        last_error: record.last_error.clone().unwrap_or_default(),
        source_event_id: record.source_event_id.to_string(),
        created_at: Some(timestamp::to_proto(record.created_at)),
        sent_at: record.sent_at.map(timestamp::to_proto),
    }
}

/// The list `ListNotifications` pages through (a token of another list is refused).
const NOTIFICATION_LIST: &str = "notification.notifications";

/// Page tokens carry the id of the last notification of the previous page (ids are
/// time-ordered UUIDv7).
fn encode_page_token(last: Uuid) -> String {
    page_token::encode(NOTIFICATION_LIST, &last.to_string())
}

fn decode_page_token(token: &str) -> Result<Option<Uuid>, FieldViolation> {
    page_token::decode(NOTIFICATION_LIST, token, |id| Uuid::try_parse(id).ok())
}

fn page_size(raw: i32) -> Result<i64, FieldViolation> {
    match raw {
        0 => Ok(i64::from(DEFAULT_PAGE_SIZE)),
        1..=MAX_PAGE_SIZE => Ok(i64::from(raw)),
        _ => Err(FieldViolation::new(
            "page_size",
            format!("{raw} is outside 1..={MAX_PAGE_SIZE}"),
        )),
    }
}

fn filter(raw: Option<Filter>) -> Result<ListFilter, FieldViolation> {
    match raw {
        Some(Filter::OrderId(order_id)) => {
            Ok(ListFilter::Order(parse_uuid("order_id", &order_id)?))
        }
        Some(Filter::Recipient(recipient)) => Ok(ListFilter::Recipient(Address::parse(
            "recipient",
            &recipient,
        )?)),
        None => Err(FieldViolation::new("filter", "set order_id or recipient")),
    }
}

/// The gRPC face of [`Notifications`].
#[derive(Clone, Debug)]
pub struct NotificationApi {
    notifications: Notifications,
}

impl NotificationApi {
    pub fn new(notifications: Notifications) -> Self {
        Self { notifications }
    }
}

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let request = request.into_inner();
        let filter = filter(request.filter)?;
        let limit = page_size(request.page_size)?;
        let before = decode_page_token(&request.page_token)?;
        // One extra row tells whether another page exists.
        let mut records = self.notifications.list(&filter, before, limit + 1).await?;
        let next_page_token = if records.len() as i64 > limit {
            records.truncate(limit as usize);
            records
                .last()
                .map(|last| encode_page_token(last.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications: records.iter().map(notification_to_proto).collect(),
            next_page_token,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_token_round_trips_and_garbage_is_refused() {
        let id = Uuid::now_v7();
        assert_eq!(decode_page_token(&encode_page_token(id)).unwrap(), Some(id));
        assert_eq!(decode_page_token("").unwrap(), None);
        let untagged = id.simple().to_string();
        let other_list = page_token::encode("order.orders", &id.to_string());
        for garbage in [
            "zz",
            &id.to_string(),
            &"g".repeat(32),
            &untagged,
            &other_list,
            "aéa",
        ] {
            assert_eq!(decode_page_token(garbage).unwrap_err().field, "page_token");
        }
    }

    #[test]
    fn page_size_defaults_to_twenty_and_is_bounded() {
        assert_eq!(page_size(0).unwrap(), 20);
        assert_eq!(page_size(100).unwrap(), 100);
        assert_eq!(page_size(101).unwrap_err().field, "page_size");
        assert_eq!(page_size(-1).unwrap_err().field, "page_size");
    }

    #[test]
    fn filter_names_the_field_it_cannot_read() {
        assert_eq!(filter(None).unwrap_err().field, "filter");
        assert_eq!(
            filter(Some(Filter::OrderId("42".into())))
                .unwrap_err()
                .field,
            "order_id"
        );
        assert_eq!(
            filter(Some(Filter::Recipient("not a phone".into())))
                .unwrap_err()
                .field,
            "recipient"
        );
        assert!(matches!(
            filter(Some(Filter::Recipient("+84 912 345 123".into()))).unwrap(),
            ListFilter::Recipient(Address::Phone(phone)) if phone.as_str() == "0912345123"
        ));
    }

    #[test]
    fn every_method_needs_the_read_scope() {
        assert_eq!(
            policy("/ocop.notification.v1.NotificationService/ListNotifications"),
            Some(Access::Scope("notification:read"))
        );
        assert_eq!(policy("/ocop.x.v1.Other/Method"), None);
    }
}
