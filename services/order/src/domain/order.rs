//! A shopper's order request, checked on construction: a `Phone` is a normalised
//! Vietnamese mobile number, a line quantity is positive, and so on.

use ocop_grpc_kit::validation::{multi_line, quote, single_line};
use ocop_proto::contract::{payment_methods, phone};
use uuid::Uuid;

use super::Invalid;

/// The most lines one order may have.
pub const MAX_LINES: usize = 50;
/// The most units of one product in one order.
pub const MAX_QUANTITY: i32 = 1_000;

/// Trimmed single-line text of 1..=`max` characters.
fn text(field: &str, raw: &str, max: usize) -> Result<String, Invalid> {
    single_line(field, raw)?;
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(Invalid::new(field, "is required"));
    }
    let length = trimmed.chars().count();
    if length > max {
        return Err(Invalid::new(
            field,
            format!("is {length} characters long; the limit is {max}"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// A Vietnamese mobile number in the contract's canonical national form (`0` + 9
/// digits): `+84 912 345 678`, `84912345678` and `0912.345.678` are all `0912345678`.
/// The rule is `ocop_proto::contract::phone`, which the notification service applies
/// to the same field, so a phone taken here is never refused there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        phone::normalise(raw)
            .map(Self)
            .map_err(|error| Invalid::new(field, error.describe(&quote(raw))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An e-mail address, lower-cased; only its shape is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Option<Self>, Invalid> {
        single_line(field, raw)?;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        let shaped = trimmed.len() <= 254
            && trimmed.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !trimmed.chars().any(char::is_whitespace);
        if shaped {
            Ok(Some(Self(trimmed.to_lowercase())))
        } else {
            Err(Invalid::new(
                field,
                format!("{} is not an e-mail address", quote(trimmed)),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How the goods reach the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMethod {
    Standard,
    Express,
    Pickup,
}

impl DeliveryMethod {
    /// The shipping fee in VND. Flat rates: a regional marketplace ships mostly within
    /// the province; free standard delivery above 500.000 ₫.
    pub fn fee(self, subtotal_vnd: i64) -> i64 {
        match self {
            Self::Standard if subtotal_vnd >= 500_000 => 0,
            Self::Standard => 30_000,
            Self::Express => 50_000,
            Self::Pickup => 0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Express => "express",
            Self::Pickup => "pickup",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "standard" => Self::Standard,
            "express" => Self::Express,
            "pickup" => Self::Pickup,
            _ => return None,
        })
    }
}

/// How the shopper pays; stored and configured as the contract's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentMethod {
    VietQr,
    VnPay,
    MoMo,
    ZaloPay,
    Sandbox,
}

impl PaymentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VietQr => payment_methods::VIETQR,
            Self::VnPay => payment_methods::VNPAY,
            Self::MoMo => payment_methods::MOMO,
            Self::ZaloPay => payment_methods::ZALOPAY,
            Self::Sandbox => payment_methods::SANDBOX,
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            payment_methods::VIETQR => Self::VietQr,
            payment_methods::VNPAY => Self::VnPay,
            payment_methods::MOMO => Self::MoMo,
            payment_methods::ZALOPAY => Self::ZaloPay,
            payment_methods::SANDBOX => Self::Sandbox,
            _ => return None,
        })
    }
}

/// Where the order was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SalesChannel {
    Web,
    Postmart,
    Voso,
    Other,
}

impl SalesChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Postmart => "postmart",
            Self::Voso => "voso",
            Self::Other => "other",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "web" => Self::Web,
            "postmart" => Self::Postmart,
            "voso" => Self::Voso,
            "other" => Self::Other,
            _ => return None,
        })
    }
}

/// Where the goods go. For pickup only the province is required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub province: String,
    pub district: String,
    pub ward: String,
    pub street: String,
}

/// Who ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub name: String,
    pub phone: Phone,
    pub email: Option<Email>,
    pub address: Address,
}

/// Units of one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedLine {
    pub product_id: Uuid,
    pub quantity: i32,
}

/// Raw fields of a PlaceOrder request, before validation.
#[derive(Debug, Clone, Default)]
pub struct OrderInput<'a> {
    pub idempotency_key: &'a str,
    pub name: &'a str,
    pub phone: &'a str,
    pub email: &'a str,
    pub province: &'a str,
    pub district: &'a str,
    pub ward: &'a str,
    pub street: &'a str,
    /// (product id text, quantity) per line.
    pub lines: Vec<(&'a str, i32)>,
    pub delivery: Option<DeliveryMethod>,
    pub payment: Option<PaymentMethod>,
    pub channel: Option<SalesChannel>,
    pub note: &'a str,
}

/// A valid order request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    pub idempotency_key: String,
    pub customer: Customer,
    pub lines: Vec<RequestedLine>,
    pub delivery: DeliveryMethod,
    pub payment: PaymentMethod,
    pub channel: SalesChannel,
    pub note: String,
}

impl OrderRequest {
    /// The request's content in a stable encoding, for its idempotency fingerprint: a
    /// version tag, then every field but the key in a fixed order, each as a 4-byte
    /// big-endian length and its UTF-8 bytes (enums by their stored names, lines as
    /// product id and quantity), so no two different requests encode alike and the
    /// encoding never changes with a compiler or a field's Rust name. Changing it changes
    /// every stored fingerprint: make it `v2` and accept both while keys live.
    pub fn canonical_encoding(&self) -> Vec<u8> {
        let customer = &self.customer;
        let address = &customer.address;
        let mut fields: Vec<String> = vec![
            "ocop.order.request.v1".to_owned(),
            customer.name.clone(),
            customer.phone.as_str().to_owned(),
            customer
                .email
                .as_ref()
                .map_or_else(String::new, |email| email.as_str().to_owned()),
            address.province.clone(),
            address.district.clone(),
            address.ward.clone(),
            address.street.clone(),
            self.delivery.as_str().to_owned(),
            self.payment.as_str().to_owned(),
            self.channel.as_str().to_owned(),
            self.note.clone(),
            self.lines.len().to_string(),
        ];
        for line in &self.lines {
            fields.push(line.product_id.to_string());
            fields.push(line.quantity.to_string());
        }
        let mut encoded = Vec::new();
        for field in &fields {
            let length = u32::try_from(field.len()).expect("validated fields are short");
            encoded.extend_from_slice(&length.to_be_bytes());
            encoded.extend_from_slice(field.as_bytes());
        }
        encoded
    }

    pub fn new(input: OrderInput<'_>) -> Result<Self, Invalid> {
        let idempotency_key = text("idempotency_key", input.idempotency_key, 128)?;
        let delivery = input
            .delivery
            .ok_or_else(|| Invalid::new("delivery_method", "is required"))?;
        let payment = input
            .payment
            .ok_or_else(|| Invalid::new("payment_method", "is required"))?;
        let pickup = delivery == DeliveryMethod::Pickup;
        let optional_for_pickup = |field: &str, raw: &str, max| {
            if pickup && raw.trim().is_empty() {
                Ok(String::new())
            } else {
                text(field, raw, max)
            }
        };
        let customer = Customer {
            name: text("customer.name", input.name, 100)?,
            phone: Phone::parse("customer.phone", input.phone)?,
            email: Email::parse("customer.email", input.email)?,
            address: Address {
                province: text("customer.address.province", input.province, 100)?,
                district: optional_for_pickup("customer.address.district", input.district, 100)?,
                ward: optional_for_pickup("customer.address.ward", input.ward, 100)?,
                street: optional_for_pickup("customer.address.street", input.street, 200)?,
            },
        };
        if input.lines.is_empty() {
            return Err(Invalid::new("lines", "at least one line is required"));
        }
        if input.lines.len() > MAX_LINES {
            return Err(Invalid::new(
                "lines",
                format!("{} lines; the limit is {MAX_LINES}", input.lines.len()),
            ));
        }
        let mut lines: Vec<RequestedLine> = Vec::with_capacity(input.lines.len());
        for (index, (raw_id, quantity)) in input.lines.iter().enumerate() {
            let field = format!("lines[{index}].product_id");
            let product_id: Uuid = raw_id
                .parse()
                .map_err(|_| Invalid::new(&field, format!("{} is not a UUID", quote(raw_id))))?;
            if lines.iter().any(|line| line.product_id == product_id) {
                return Err(Invalid::new(
                    field,
                    "names a product already on another line",
                ));
            }
            if !(1..=MAX_QUANTITY).contains(quantity) {
                return Err(Invalid::new(
                    format!("lines[{index}].quantity"),
                    format!("{quantity} is outside 1..={MAX_QUANTITY}"),
                ));
            }
            lines.push(RequestedLine {
                product_id,
                quantity: *quantity,
            });
        }
        multi_line("note", input.note)?;
        let note = input.note.trim();
        if note.chars().count() > 500 {
            return Err(Invalid::new("note", "is longer than 500 characters"));
        }
        Ok(Self {
            idempotency_key,
            customer,
            lines,
            delivery,
            payment,
            channel: input.channel.unwrap_or(SalesChannel::Web),
            note: note.to_owned(),
        })
    }
}

/// A short code for people (and bank transfer memos): `OCOP` and ten characters of
/// Crockford base32 from the random part of the order id.
pub fn order_code(id: Uuid) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut bits = id.as_u128();
    let mut code = String::from("OCOP");
    for _ in 0..10 {
        code.push(ALPHABET[(bits & 31) as usize] as char);
        bits >>= 5;
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> OrderInput<'static> {
        OrderInput {
            idempotency_key: "key-1",
            name: "Nguyễn Thị Lan",
            phone: "+84 912 345 678",
            email: "Lan@Example.com",
            province: "Quảng Ninh",
            district: "Hạ Long",
            ward: "Bãi Cháy",
            street: "12 Hạ Long",
            lines: vec![("01a2267f-4cf3-7032-bf48-bbcafb0524d4", 2)],
            delivery: Some(DeliveryMethod::Standard),
            payment: Some(PaymentMethod::Sandbox),
            channel: None,
            note: "",
        }
    }

    #[test]
    fn canonical_encoding_is_the_same_for_two_spellings_of_one_request() {
        let first = OrderRequest::new(input()).unwrap();
        let second = OrderRequest::new(OrderInput {
            idempotency_key: "key-2",
            name: "  Nguyễn Thị Lan ",
            phone: "0912.345.678",
            ..input()
        })
        .unwrap();
        assert_eq!(first.canonical_encoding(), second.canonical_encoding());
    }

    #[test]
    fn canonical_encoding_keeps_field_boundaries() {
        let moved = OrderRequest::new(OrderInput {
            ward: "Bãi Cháy 12",
            street: "Hạ Long",
            ..input()
        })
        .unwrap();
        let original = OrderRequest::new(input()).unwrap();
        assert_ne!(original.canonical_encoding(), moved.canonical_encoding());
        let more = OrderRequest::new(OrderInput {
            lines: vec![("01a2267f-4cf3-7032-bf48-bbcafb0524d4", 3)],
            ..input()
        })
        .unwrap();
        assert_ne!(original.canonical_encoding(), more.canonical_encoding());
    }

    #[test]
    fn phone_numbers_are_normalised_to_national_form() {
        for raw in [
            "+84 912 345 678",
            "84912345678",
            "0912.345.678",
            "0912-345-678",
        ] {
            assert_eq!(
                Phone::parse("p", raw).unwrap().as_str(),
                "0912345678",
                "{raw}"
            );
        }
    }

    #[test]
    fn landlines_short_numbers_and_letters_are_not_mobile_numbers() {
        for raw in [
            "0203 3825 123",
            "091234567",
            "09123456789",
            "0112345678",
            "abc",
        ] {
            let err = Phone::parse("customer.phone", raw).unwrap_err();
            assert_eq!(err.field, "customer.phone", "{raw}");
        }
    }

    #[test]
    fn valid_request_defaults_the_channel_and_lowercases_the_email() {
        let request = OrderRequest::new(input()).unwrap();
        assert_eq!(request.channel, SalesChannel::Web);
        assert_eq!(request.customer.email.unwrap().as_str(), "lan@example.com");
    }

    #[test]
    fn bad_lines_name_the_offending_line() {
        let mut zero = input();
        zero.lines = vec![("01a2267f-4cf3-7032-bf48-bbcafb0524d4", 0)];
        assert_eq!(
            OrderRequest::new(zero).unwrap_err().field,
            "lines[0].quantity"
        );
        let mut twice = input();
        twice.lines = vec![
            ("01a2267f-4cf3-7032-bf48-bbcafb0524d4", 1),
            ("01a2267f-4cf3-7032-bf48-bbcafb0524d4", 1),
        ];
        assert_eq!(
            OrderRequest::new(twice).unwrap_err().field,
            "lines[1].product_id"
        );
        let mut too_many = input();
        too_many.lines = vec![("x", 1); MAX_LINES + 1];
        assert_eq!(OrderRequest::new(too_many).unwrap_err().field, "lines");
        let mut none = input();
        none.lines.clear();
        assert_eq!(OrderRequest::new(none).unwrap_err().field, "lines");
    }

    #[test]
    fn pickup_needs_only_the_province() {
        let mut pickup = input();
        pickup.delivery = Some(DeliveryMethod::Pickup);
        pickup.street = "";
        pickup.ward = "";
        assert!(OrderRequest::new(pickup).is_ok());
        let mut standard = input();
        standard.street = " ";
        assert_eq!(
            OrderRequest::new(standard).unwrap_err().field,
            "customer.address.street"
        );
    }

    #[test]
    fn free_standard_delivery_from_five_hundred_thousand() {
        assert_eq!(DeliveryMethod::Standard.fee(499_000), 30_000);
        assert_eq!(DeliveryMethod::Standard.fee(500_000), 0);
        assert_eq!(DeliveryMethod::Express.fee(900_000), 50_000);
        assert_eq!(DeliveryMethod::Pickup.fee(1), 0);
    }

    #[test]
    fn order_code_is_short_stable_and_readable() {
        let id = Uuid::parse_str("01a2267f-4cf3-7032-bf48-bbcafb0524d4").unwrap();
        let code = order_code(id);
        assert_eq!(code.len(), 14);
        assert!(code.starts_with("OCOP"));
        assert_eq!(code, order_code(id));
        assert!(!code[4..].contains(['I', 'L', 'O', 'U']), "{code}");
    }
}
