//! `ocopctl tail TOPIC`: print a topic's events with their CloudEvents attributes and
//! the decoded protobuf payload.

use std::time::Duration;

use anyhow::Context as _;
use ocop_events::{CloudEvent, KafkaConfig};
use ocop_proto::{
    catalog::v1 as catalog, notification::v1 as notification, order::v1 as order,
    payment::v1 as payment,
};
use prost::Message as _;
use rdkafka::{
    Message as _,
    consumer::{Consumer as _, StreamConsumer},
};

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// The topic, e.g. ocop.catalog.products.v1.
    topic: String,
    /// Start from the oldest record instead of only new ones.
    #[arg(long)]
    from_beginning: bool,
    /// Stop after this many records (0 = follow until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    count: usize,
    #[command(flatten)]
    kafka: KafkaConfig,
}

/// The payload as text, for the event types this CLI knows.
fn decode(event: &CloudEvent) -> String {
    macro_rules! known {
        ($($message:ty),* $(,)?) => {
            $(
                if event.is::<$message>() {
                    return match <$message>::decode(event.data.as_slice()) {
                        Ok(message) => format!("{message:#?}"),
                        Err(err) => format!("<undecodable {}: {err}>", event.event_type),
                    };
                }
            )*
        };
    }
    known!(
        catalog::ProductSnapshot,
        catalog::StockReserved,
        catalog::StockRejected,
        catalog::StockCommitted,
        catalog::StockReleased,
        catalog::ReservationExpired,
        catalog::StockAdjusted,
        order::OrderPlaced,
        order::PaymentRequested,
        order::OrderConfirmed,
        order::OrderCancelled,
        order::OrderShipped,
        order::OrderDelivered,
        order::OrderRefunded,
        order::PartnerOrderEvent,
        payment::PaymentInitiated,
        payment::PaymentSucceeded,
        payment::PaymentFailed,
        payment::PaymentExpired,
        payment::RefundSucceeded,
        payment::RefundFailed,
        notification::NotificationSent,
        notification::NotificationFailed,
    );
    format!("<{} bytes of {}>", event.data.len(), event.event_type)
}

pub async fn run(args: &TailArgs) -> anyhow::Result<()> {
    let consumer: StreamConsumer = args
        .kafka
        .client_config("ocopctl-tail")
        .set("group.id", format!("ocopctl-tail-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            if args.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        )
        .create()
        .context("create kafka consumer")?;
    consumer.subscribe(&[&args.topic]).context("subscribe")?;
    let mut seen = 0;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(3600), consumer.recv())
            .await
            .context("no record within an hour")?
            .context("receive")?;
        match CloudEvent::from_message(&message) {
            Ok(event) => println!(
                "── {} p{} @{}  {}  id={}  subject={}  time={}\n{}",
                message.topic(),
                message.partition(),
                message.offset(),
                event.event_type,
                event.id,
                event.subject.as_deref().unwrap_or("-"),
                event.time.to_rfc3339(),
                decode(&event)
            ),
            Err(err) => println!(
                "── {} p{} @{}  not a CloudEvent: {err}",
                message.topic(),
                message.partition(),
                message.offset()
            ),
        }
        seen += 1;
        if args.count != 0 && seen >= args.count {
            return Ok(());
        }
    }
}
