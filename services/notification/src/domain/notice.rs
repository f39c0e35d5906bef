//! What happened to an order that the shopper should hear about: one [`Notice`] per
//! consumed event worth a message, carrying exactly what its template shows.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::contact::Contact;

/// A notice about one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderNotice {
    pub order_id: Uuid,
    pub notice: Notice,
}

/// The steps of an order that matter to the shopper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `OrderPlaced`: the only event with the shopper's contact, kept for the others.
    Received(OrderReceived),
    /// `PaymentInitiated`: how to pay and until when.
    PaymentInstructions(PaymentInstructions),
    /// `OrderConfirmed`: paid.
    Confirmed { total_vnd: i64 },
    /// `OrderCancelled`.
    Cancelled {
        reason: CancellationReason,
        /// Free text that goes with the reason (the shopper's words, the provider's).
        detail: String,
    },
    /// `OrderShipped`.
    Shipped {
        carrier: String,
        tracking_code: String,
    },
    /// `OrderDelivered`.
    Delivered,
    /// `OrderRefunded`.
    Refunded {
        amount_vnd: i64,
        refunded_total_vnd: i64,
        full: bool,
    },
}

impl Notice {
    /// The template that tells it.
    pub fn template(&self) -> TemplateKind {
        match self {
            Self::Received(_) => TemplateKind::OrderReceived,
            Self::PaymentInstructions(_) => TemplateKind::PaymentInstructions,
            Self::Confirmed { .. } => TemplateKind::OrderConfirmed,
            Self::Cancelled { .. } => TemplateKind::OrderCancelled,
            Self::Shipped { .. } => TemplateKind::OrderShipped,
            Self::Delivered => TemplateKind::OrderDelivered,
            Self::Refunded { .. } => TemplateKind::OrderRefunded,
        }
    }
}

/// A placed order, with the price snapshot of its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderReceived {
    pub order_code: String,
    pub contact: Contact,
    pub lines: Vec<Line>,
    pub subtotal_vnd: i64,
    pub shipping_fee_vnd: i64,
    pub total_vnd: i64,
}

/// One line of a placed order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Line {
    pub name: String,
    /// Sales unit, e.g. "gói 500g".
    pub unit: String,
    pub quantity: i64,
    pub unit_price_vnd: i64,
    pub line_total_vnd: i64,
}

/// What the shopper needs to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentInstructions {
    pub amount_vnd: i64,
    pub provider: Provider,
    pub pay_by: PayBy,
    /// Absent only if the payment service sent none (then the template says nothing
    /// about a deadline).
    pub expires_at: Option<DateTime<Utc>>,
}

/// How the shopper pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayBy {
    /// The provider's payment page.
    Link(String),
    /// A VietQR (NAPAS 247) bank transfer.
    Transfer(BankTransfer),
}

/// The details of a VietQR bank transfer, as a shopper types them into a banking app.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BankTransfer {
    pub bank_bin: String,
    /// The bank's usual name when its BIN is a well-known one.
    pub bank_name: Option<&'static str>,
    pub account_number: String,
    pub account_name: String,
    /// Identifies the order; the shopper must keep it unchanged.
    pub memo: String,
    /// A rendered QR image, when the provider offers one; empty otherwise.
    pub image_url: String,
}

/// The NAPAS BINs of the banks most shoppers use, so a message can say "Vietcombank"
/// rather than only "970436". Unknown BINs are shown as they are.
pub fn bank_name(bin: &str) -> Option<&'static str> {
    Some(match bin {
        "970436" => "Vietcombank",
        "970415" => "VietinBank",
        "970418" => "BIDV",
        "970405" => "Agribank",
        "970422" => "MB Bank",
        "970407" => "Techcombank",
        "970416" => "ACB",
        "970432" => "VPBank",
        "970423" => "TPBank",
        "970403" => "Sacombank",
        _ => return None,
    })
}

/// Who takes the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    VietQr,
    VnPay,
    MoMo,
    ZaloPay,
    Sandbox,
    Unknown,
}

impl Provider {
    /// The name a shopper knows it by.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::VietQr => "VietQR",
            Self::VnPay => "VNPay",
            Self::MoMo => "MoMo",
            Self::ZaloPay => "ZaloPay",
            Self::Sandbox => "cổng thanh toán thử nghiệm",
            Self::Unknown => "cổng thanh toán",
        }
    }
}

/// Why an order was cancelled. The Vietnamese wording lives in the template, keyed by
/// [`CancellationReason::code`], so that all text a shopper reads is in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancellationReason {
    OutOfStock,
    PaymentFailed,
    PaymentExpired,
    CustomerRequest,
    Operator,
    Unspecified,
}

impl CancellationReason {
    pub fn code(self) -> &'static str {
        match self {
            Self::OutOfStock => "out_of_stock",
            Self::PaymentFailed => "payment_failed",
            Self::PaymentExpired => "payment_expired",
            Self::CustomerRequest => "customer_request",
            Self::Operator => "operator",
            Self::Unspecified => "unspecified",
        }
    }
}

/// The message kinds, one template file each (`templates/<name>.txt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateKind {
    OrderReceived,
    PaymentInstructions,
    OrderConfirmed,
    OrderCancelled,
    OrderShipped,
    OrderDelivered,
    OrderRefunded,
}

impl TemplateKind {
    pub const ALL: [Self; 7] = [
        Self::OrderReceived,
        Self::PaymentInstructions,
        Self::OrderConfirmed,
        Self::OrderCancelled,
        Self::OrderShipped,
        Self::OrderDelivered,
        Self::OrderRefunded,
    ];

    /// The template's name: its file stem, the `template` column and event field.
    pub fn name(self) -> &'static str {
        match self {
            Self::OrderReceived => "order_received",
            Self::PaymentInstructions => "payment_instructions",
            Self::OrderConfirmed => "order_confirmed",
            Self::OrderCancelled => "order_cancelled",
            Self::OrderShipped => "order_shipped",
            Self::OrderDelivered => "order_delivered",
            Self::OrderRefunded => "order_refunded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_names_are_unique_file_stems() {
        let mut names: Vec<_> = TemplateKind::ALL.iter().map(|kind| kind.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TemplateKind::ALL.len());
        assert!(
            names
                .iter()
                .all(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }

    #[test]
    fn well_known_bins_have_bank_names() {
        assert_eq!(bank_name("970436"), Some("Vietcombank"));
        assert_eq!(bank_name("123456"), None);
    }
}
