//! `ocopctl payment …`: an order's payment and its refunds; operator refunds.

use anyhow::Context as _;
use ocop_proto::payment::v1::{self as pb, payment_service_client::PaymentServiceClient};
use tonic::transport::Channel;

use ocop_proto::money::format_vnd;

#[derive(Debug, clap::Subcommand)]
pub enum PaymentCommand {
    /// Show the payment of an order, with its refunds (needs payment:read).
    Get {
        /// The order id.
        order_id: String,
    },
    /// Give back part or all of what an order paid (needs payment:write). Retrying with
    /// the same --key returns the first refund instead of refunding twice.
    Refund {
        /// The order id.
        order_id: String,
        /// VND to give back: more than 0, at most what was paid and not yet refunded.
        #[arg(long)]
        amount: i64,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: String,
        /// Idempotency key (a new UUID when omitted).
        #[arg(long)]
        key: Option<String>,
    },
}

fn enum_name(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_owned()
}

fn status_name(raw: i32) -> String {
    pb::PaymentStatus::try_from(raw)
        .map(|s| enum_name(s.as_str_name(), "PAYMENT_STATUS_"))
        .unwrap_or_else(|_| raw.to_string())
}

fn provider_name(raw: i32) -> String {
    pb::PaymentProvider::try_from(raw)
        .map(|p| enum_name(p.as_str_name(), "PAYMENT_PROVIDER_"))
        .unwrap_or_else(|_| raw.to_string())
}

fn refund_status(raw: i32) -> String {
    pb::RefundStatus::try_from(raw)
        .map(|s| enum_name(s.as_str_name(), "REFUND_STATUS_"))
        .unwrap_or_else(|_| raw.to_string())
}

fn print_refund(refund: &pb::Refund) {
    println!(
        "  refund {}  {}  {}  {}{}",
        refund.id,
        refund_status(refund.status),
        format_vnd(refund.amount_vnd),
        refund.reason,
        if refund.provider_refund_id.is_empty() {
            String::new()
        } else {
            format!("  (provider ref {})", refund.provider_refund_id)
        }
    );
}

fn print_payment(payment: &pb::Payment, payment_http: &str) {
    println!(
        "payment {} of order {}  {}  {}",
        payment.id,
        payment.order_id,
        provider_name(payment.provider),
        status_name(payment.status)
    );
    println!(
        "  amount {}  captured {}  refunded {}",
        format_vnd(payment.amount_vnd),
        format_vnd(payment.captured_vnd),
        format_vnd(payment.refunded_vnd)
    );
    // The payment's own link; a VietQR payment has none (the code is the instruction),
    // but our page shows its QR code.
    if payment.pay_url.is_empty() {
        println!(
            "  pay page: {}/pay/{}",
            payment_http.trim_end_matches('/'),
            payment.id
        );
    } else {
        println!("  pay page: {}", payment.pay_url);
    }
    if !payment.vietqr_payload.is_empty() {
        println!("  VietQR payload: {}", payment.vietqr_payload);
    }
    if !payment.provider_transaction_id.is_empty() {
        println!(
            "  provider transaction: {}",
            payment.provider_transaction_id
        );
    }
    for refund in &payment.refunds {
        print_refund(refund);
    }
}

pub async fn run(
    address: &str,
    payment_http: &str,
    command: &PaymentCommand,
    token: impl Fn(&[&str]) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let mut client = PaymentServiceClient::<Channel>::connect(address.to_owned())
        .await
        .with_context(|| format!("connect to payment at {address}"))?;
    match command {
        PaymentCommand::Get { order_id } => {
            let payment = client
                .get_payment(crate::authorized(
                    pb::GetPaymentRequest {
                        order_id: order_id.clone(),
                    },
                    &token(&["payment:read"])?,
                )?)
                .await?
                .into_inner()
                .payment
                .context("payment service returned no payment")?;
            print_payment(&payment, payment_http);
        }
        PaymentCommand::Refund {
            order_id,
            amount,
            reason,
            key,
        } => {
            let key = key
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let refund = client
                .refund(crate::authorized(
                    pb::RefundRequest {
                        order_id: order_id.clone(),
                        amount_vnd: *amount,
                        reason: reason.clone(),
                        idempotency_key: key.clone(),
                    },
                    &token(&["payment:write"])?,
                )?)
                .await?
                .into_inner()
                .refund
                .context("payment service returned no refund")?;
            print_refund(&refund);
            println!("  (idempotency key {key}: reuse it to retry safely)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_are_short() {
        assert_eq!(
            status_name(pb::PaymentStatus::PartiallyRefunded as i32),
            "PARTIALLY_REFUNDED"
        );
        assert_eq!(provider_name(pb::PaymentProvider::Vnpay as i32), "VNPAY");
        assert_eq!(refund_status(pb::RefundStatus::Failed as i32), "FAILED");
        assert_eq!(status_name(99), "99");
    }
}
