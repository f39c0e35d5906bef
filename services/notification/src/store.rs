//! PostgreSQL access for the notification service. Writes take the caller's
//! transaction: the consumer's (with its inbox row) or the dispatcher's (with the
//! outbox event of the status change).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::domain::{
    contact::Contact,
    delivery::{ChannelKind, Status},
};

type Tx = Transaction<'static, Postgres>;

/// Keeps the contact of an order. The first `OrderPlaced` wins: a redelivery or a
/// replay changes nothing.
#[tracing::instrument(name = "INSERT order_contacts", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "order_contacts"))]
pub async fn save_contact(
    tx: &mut Tx,
    order_id: Uuid,
    order_code: &str,
    contact: &Contact,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_contacts (order_id, order_code, customer_name, phone, email)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(order_code)
    .bind(&contact.name)
    .bind(contact.phone.as_str())
    .bind(contact.email.as_ref().map(|email| email.as_str()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A stored order contact, as written by [`save_contact`].
#[derive(Clone, sqlx::FromRow)]
pub struct ContactRecord {
    pub order_code: String,
    pub customer_name: String,
    pub phone: String,
    pub email: Option<String>,
}

/// The contact of an order, if its `OrderPlaced` has been seen.
#[tracing::instrument(name = "SELECT order_contacts", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "order_contacts"))]
pub async fn contact(tx: &mut Tx, order_id: Uuid) -> Result<Option<ContactRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_code, customer_name, phone, email FROM order_contacts WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await
}

/// A notification to create.
pub struct NewNotification<'a> {
    pub order_id: Uuid,
    pub recipient: &'a str,
    pub address: &'a str,
    pub channel: ChannelKind,
    pub template: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub source_event_id: Uuid,
}

/// Inserts a pending notification, due now. `false` when this event already has one on
/// this channel.
#[tracing::instrument(name = "INSERT notifications", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "notifications"))]
pub async fn insert_notification(
    tx: &mut Tx,
    new: &NewNotification<'_>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO notifications
            (id, order_id, recipient, address, channel, template, subject, body, status, source_event_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9)
         ON CONFLICT (source_event_id, channel) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(new.order_id)
    .bind(new.recipient)
    .bind(new.address)
    .bind(new.channel.as_str())
    .bind(new.template)
    .bind(new.subject)
    .bind(new.body)
    .bind(new.source_event_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// A notification as lists and events show it (no real address).
#[derive(Clone, sqlx::FromRow)]
pub struct NotificationRecord {
    pub id: Uuid,
    pub order_id: Uuid,
    pub recipient: String,
    pub channel: String,
    pub template: String,
    pub subject: String,
    pub body: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub source_event_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

// The subject and body hold personal data: a stray `{:?}` shows neither.
impl std::fmt::Debug for NotificationRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationRecord")
            .field("id", &self.id)
            .field("order_id", &self.order_id)
            .field("recipient", &self.recipient)
            .field("channel", &self.channel)
            .field("template", &self.template)
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl NotificationRecord {
    pub fn channel(&self) -> Option<ChannelKind> {
        self.channel.parse().ok()
    }

    pub fn status(&self) -> Option<Status> {
        Status::parse(&self.status)
    }
}

/// Notifications of an order, newest first, older than `before` when given.
#[tracing::instrument(name = "SELECT notifications", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "notifications"))]
pub async fn list_by_order(
    conn: &mut PgConnection,
    order_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<NotificationRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, order_id, recipient, channel, template, subject, body, status, attempts,
                last_error, source_event_id, created_at, sent_at
         FROM notifications
         WHERE order_id = $1 AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC
         LIMIT $3",
    )
    .bind(order_id)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Notifications sent to a normalised address, newest first, older than `before`.
#[tracing::instrument(name = "SELECT notifications", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "notifications"))]
pub async fn list_by_address(
    conn: &mut PgConnection,
    address: &str,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<NotificationRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, order_id, recipient, channel, template, subject, body, status, attempts,
                last_error, source_event_id, created_at, sent_at
         FROM notifications
         WHERE address = $1 AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC
         LIMIT $3",
    )
    .bind(address)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A due notification with what its channel needs to send it.
#[derive(Clone, sqlx::FromRow)]
pub struct DueNotification {
    pub id: Uuid,
    pub order_id: Uuid,
    pub address: String,
    pub recipient: String,
    pub channel: String,
    pub template: String,
    pub subject: String,
    pub body: String,
    pub attempts: i32,
    pub order_code: String,
    pub customer_name: String,
}

/// Locks up to `limit` pending notifications of `channels` whose time has come, oldest
/// first. Rows another dispatcher (another replica) holds are skipped.
pub async fn claim_due(
    tx: &mut Tx,
    channels: &[ChannelKind],
    limit: i64,
) -> Result<Vec<DueNotification>, sqlx::Error> {
    let channels: Vec<&str> = channels.iter().map(|kind| kind.as_str()).collect();
    sqlx::query_as(
        "SELECT n.id, n.order_id, n.address, n.recipient, n.channel, n.template, n.subject,
                n.body, n.attempts, c.order_code, c.customer_name
         FROM notifications n
         JOIN order_contacts c ON c.order_id = n.order_id
         WHERE n.status = 'pending' AND n.next_attempt_at <= now() AND n.channel = ANY($1)
         ORDER BY n.next_attempt_at, n.id
         LIMIT $2
         FOR UPDATE OF n SKIP LOCKED",
    )
    .bind(&channels)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// Records one delivery attempt.
#[tracing::instrument(name = "INSERT notification_attempts", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "notification_attempts"))]
pub async fn record_attempt(
    tx: &mut Tx,
    notification_id: Uuid,
    attempt: i32,
    outcome: &str,
    error: Option<&str>,
    duration_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notification_attempts (notification_id, attempt, outcome, error, duration_ms)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(notification_id)
    .bind(attempt)
    .bind(outcome)
    .bind(error)
    .bind(duration_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks a notification sent after `attempts` attempts; returns it as it now is.
#[tracing::instrument(name = "UPDATE notifications", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "notifications"))]
pub async fn mark_sent(
    tx: &mut Tx,
    id: Uuid,
    attempts: i32,
    provider_ref: Option<&str>,
) -> Result<NotificationRecord, sqlx::Error> {
    sqlx::query_as(
        "UPDATE notifications
         SET status = 'sent', attempts = $2, provider_ref = $3, sent_at = now()
         WHERE id = $1
         RETURNING id, order_id, recipient, channel, template, subject, body, status, attempts,
                   last_error, source_event_id, created_at, sent_at",
    )
    .bind(id)
    .bind(attempts)
    .bind(provider_ref)
    .fetch_one(&mut **tx)
    .await
}

/// Leaves a notification pending for another attempt after `delay_ms`.
#[tracing::instrument(name = "UPDATE notifications", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "notifications"))]
pub async fn schedule_retry(
    tx: &mut Tx,
    id: Uuid,
    attempts: i32,
    error: &str,
    delay_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications
         SET attempts = $2, last_error = $3,
             next_attempt_at = now() + $4::bigint * interval '1 millisecond'
         WHERE id = $1",
    )
    .bind(id)
    .bind(attempts)
    .bind(error)
    .bind(delay_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Gives a notification up; returns it as it now is.
#[tracing::instrument(name = "UPDATE notifications", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", db.collection.name = "notifications"))]
pub async fn mark_failed(
    tx: &mut Tx,
    id: Uuid,
    attempts: i32,
    error: &str,
) -> Result<NotificationRecord, sqlx::Error> {
    sqlx::query_as(
        "UPDATE notifications
         SET status = 'failed', attempts = $2, last_error = $3
         WHERE id = $1
         RETURNING id, order_id, recipient, channel, template, subject, body, status, attempts,
                   last_error, source_event_id, created_at, sent_at",
    )
    .bind(id)
    .bind(attempts)
    .bind(error)
    .fetch_one(&mut **tx)
    .await
}
