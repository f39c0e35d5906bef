//! The notification operations: turning an order notice into one pending notification
//! per enabled channel (inside the consumer's transaction, so the inbox row and the
//! notifications commit together), and listing them.

use std::sync::Arc;

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    domain::{
        contact::{Address, Contact, Email, Phone},
        delivery::ChannelKind,
        notice::{Notice, OrderNotice},
    },
    error::NotificationError,
    store::{self, ContactRecord, NewNotification, NotificationRecord},
    templates::Templates,
};

type Tx = Transaction<'static, Postgres>;

/// Which notifications to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListFilter {
    Order(Uuid),
    /// A normalised phone number or e-mail address.
    Recipient(Address),
}

/// The notification service's operations over its database.
#[derive(Clone, Debug)]
pub struct Notifications {
    pool: PgPool,
    templates: Arc<Templates>,
    channels: Vec<ChannelKind>,
}

impl Notifications {
    /// Notifications rendered with `templates` for each of `channels`.
    pub fn new(pool: PgPool, templates: Arc<Templates>, channels: Vec<ChannelKind>) -> Self {
        Self {
            pool,
            templates,
            channels,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Records the notifications `notice` causes, in `tx`. Returns how many were
    /// created: one per enabled channel that can reach the shopper (e-mail only when
    /// the shopper gave an address), none for a repeated event.
    pub async fn record(
        &self,
        tx: &mut Tx,
        source_event_id: Uuid,
        notice: &OrderNotice,
    ) -> Result<usize, NotificationError> {
        let order_id = notice.order_id;
        let (order_code, contact) = match &notice.notice {
            Notice::Received(order) => {
                store::save_contact(tx, order_id, &order.order_code, &order.contact).await?;
                (order.order_code.clone(), order.contact.clone())
            }
            _ => {
                let record = store::contact(tx, order_id)
                    .await?
                    .ok_or(NotificationError::OrderUnknown(order_id))?;
                stored_contact(record)?
            }
        };
        let rendered = self
            .templates
            .render(&notice.notice, &order_code, &contact.name)?;
        let template = notice.notice.template().name();
        // What SMS and ZNS deliver: no subject line of their own.
        let headed_body = format!("{}\n\n{}", rendered.subject, rendered.body);

        let mut created = 0;
        for channel in &self.channels {
            let address = if channel.uses_email() {
                match &contact.email {
                    Some(email) => Address::Email(email.clone()),
                    None => continue,
                }
            } else {
                Address::Phone(contact.phone.clone())
            };
            let (subject, body) = if channel.has_subject() {
                (rendered.subject.as_str(), rendered.body.as_str())
            } else {
                ("", headed_body.as_str())
            };
            let recipient = address.masked();
            let inserted = store::insert_notification(
                tx,
                &NewNotification {
                    order_id,
                    recipient: &recipient,
                    address: address.as_str(),
                    channel: *channel,
                    template,
                    subject,
                    body,
                    source_event_id,
                },
            )
            .await?;
            if inserted {
                created += 1;
                tracing::info!(order_id = %order_id, event_id = %source_event_id, channel = %channel, template, "notification queued");
            }
        }
        Ok(created)
    }

    /// A page of notifications, newest first, older than `before` when given.
    pub async fn list(
        &self,
        filter: &ListFilter,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<NotificationRecord>, NotificationError> {
        let mut conn = self.pool.acquire().await?;
        Ok(match filter {
            ListFilter::Order(order_id) => {
                store::list_by_order(&mut conn, *order_id, before, limit).await?
            }
            ListFilter::Recipient(address) => {
                store::list_by_address(&mut conn, address.as_str(), before, limit).await?
            }
        })
    }
}

/// A stored contact back as a domain value. The row was written from a validated
/// contact, so a failure means the table was edited by hand.
fn stored_contact(record: ContactRecord) -> Result<(String, Contact), NotificationError> {
    let phone = Phone::parse("order_contacts.phone", &record.phone)?;
    let email = record
        .email
        .as_deref()
        .map(|email| Email::parse("order_contacts.email", email))
        .transpose()?;
    Ok((
        record.order_code,
        Contact {
            name: record.customer_name,
            phone,
            email,
        },
    ))
}
