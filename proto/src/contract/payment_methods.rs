//! The payment-method codes: what `PAYMENT_METHODS` lists in the order and payment
//! services' settings, what `orders.payment_method` and `payment_intents.method` store
//! (their database `CHECK`s name the same five) and what `ocopctl order --payment`
//! takes. The protobuf `PaymentMethod` enum is the wire's form of the same choice.

pub const VIETQR: &str = "vietqr";
pub const VNPAY: &str = "vnpay";
pub const MOMO: &str = "momo";
pub const ZALOPAY: &str = "zalopay";
/// The sandbox gateway's method: development, tests and load runs only.
pub const SANDBOX: &str = "sandbox";

/// Every code, real providers first.
pub const ALL: [&str; 5] = [VIETQR, VNPAY, MOMO, ZALOPAY, SANDBOX];
