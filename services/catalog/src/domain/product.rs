//! Producers and products as operators submit them, checked on construction.

use ocop_grpc_kit::validation::{multi_line, quote, single_line};
use uuid::Uuid;

use super::Invalid;

/// The UUIDv5 namespace of product ids. A product's id follows from its SKU, so every
/// install seeded from the same file has the same ids (those in the README and in the
/// partner documents), and an id still means the same product after a re-seed elsewhere.
const PRODUCT_ID_NAMESPACE: Uuid = Uuid::from_u128(0xdf6a52d2_eaa9_44f6_9b97_667b81332cf9);

/// Trimmed single-line text of 1..=`max` characters.
fn text(field: &str, raw: &str, max: usize) -> Result<String, Invalid> {
    single_line(field, raw)?;
    required_within(field, raw, max)
}

/// Trimmed text of 1..=`max` characters whose lines are separated by LF.
fn multi_line_text(field: &str, raw: &str, max: usize) -> Result<String, Invalid> {
    multi_line(field, raw)?;
    required_within(field, raw, max)
}

fn required_within(field: &str, raw: &str, max: usize) -> Result<String, Invalid> {
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

/// An upper-case business key: `A-Z`, `0-9` and `-`, 1 to 64 characters.
fn code(field: &str, raw: &str) -> Result<String, Invalid> {
    let value = text(field, raw, 64)?;
    if !value
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(Invalid::new(
            field,
            format!("{} may contain only A-Z, 0-9 and '-'", quote(&value)),
        ));
    }
    Ok(value)
}

/// A SKU as a client names a product by it (the same rules as when it was created).
pub fn sku(raw: &str) -> Result<String, Invalid> {
    code("sku", raw)
}

/// OCOP rating: 3, 4 or 5 stars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stars(u8);

impl Stars {
    pub fn new(raw: i32) -> Result<Self, Invalid> {
        match raw {
            3..=5 => Ok(Self(raw as u8)),
            _ => Err(Invalid::new(
                "stars",
                format!("{raw} is not an OCOP rating (3 to 5)"),
            )),
        }
    }

    pub fn get(self) -> i16 {
        i16::from(self.0)
    }
}

/// The highest unit price accepted (one billion VND): anything above is a typo.
pub const MAX_PRICE_VND: i64 = 1_000_000_000;

/// A unit price in VND (no minor unit), positive and plausible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceVnd(i64);

impl PriceVnd {
    pub fn new(raw: i64) -> Result<Self, Invalid> {
        if raw <= 0 {
            Err(Invalid::new("price_vnd", format!("{raw} must be positive")))
        } else if raw > MAX_PRICE_VND {
            Err(Invalid::new(
                "price_vnd",
                format!("{raw} is above the limit of {MAX_PRICE_VND}"),
            ))
        } else {
            Ok(Self(raw))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// Who makes a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerKind {
    Cooperative,
    Household,
    Enterprise,
}

impl ProducerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cooperative => "cooperative",
            Self::Household => "household",
            Self::Enterprise => "enterprise",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "cooperative" => Some(Self::Cooperative),
            "household" => Some(Self::Household),
            "enterprise" => Some(Self::Enterprise),
            _ => None,
        }
    }
}

/// Whether a product is for sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductStatus {
    Active,
    Hidden,
}

impl ProductStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Hidden => "hidden",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(Self::Active),
            "hidden" => Some(Self::Hidden),
            _ => None,
        }
    }
}

/// A producer as an operator submits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerDraft {
    pub code: String,
    pub name: String,
    pub kind: ProducerKind,
    pub district: String,
    pub province: String,
}

impl ProducerDraft {
    pub fn new(
        code_raw: &str,
        name: &str,
        kind: Option<ProducerKind>,
        district: &str,
        province: &str,
    ) -> Result<Self, Invalid> {
        Ok(Self {
            code: code("code", code_raw)?,
            name: text("name", name, 200)?,
            kind: kind.ok_or_else(|| Invalid::new("kind", "is required"))?,
            district: text("district", district, 100)?,
            province: text("province", province, 100)?,
        })
    }
}

/// Raw fields of a product upsert, before validation.
#[derive(Debug, Clone, Default)]
pub struct ProductInput<'a> {
    pub sku: &'a str,
    pub producer_code: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub category: &'a str,
    pub stars: i32,
    pub unit: &'a str,
    pub price_vnd: i64,
    pub status: Option<ProductStatus>,
    pub initial_stock: i64,
}

/// The most units one product may hold on hand.
pub const MAX_STOCK: i64 = 1_000_000;

/// A product as an operator submits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductDraft {
    pub sku: String,
    pub producer_code: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub stars: Stars,
    pub unit: String,
    pub price: PriceVnd,
    pub status: ProductStatus,
    /// Stock on hand when the product is new; ignored for existing products.
    pub initial_stock: i64,
}

impl ProductDraft {
    /// The id a new product with this SKU gets (an existing product keeps the id it has).
    pub fn id(&self) -> Uuid {
        Uuid::new_v5(&PRODUCT_ID_NAMESPACE, self.sku.as_bytes())
    }

    pub fn new(input: ProductInput<'_>) -> Result<Self, Invalid> {
        if !(0..=MAX_STOCK).contains(&input.initial_stock) {
            return Err(Invalid::new(
                "initial_stock",
                format!("{} is outside 0..={MAX_STOCK}", input.initial_stock),
            ));
        }
        Ok(Self {
            sku: code("sku", input.sku)?,
            producer_code: code("producer_code", input.producer_code)?,
            name: text("name", input.name, 200)?,
            description: multi_line_text("description", input.description, 2000)?,
            category: text("category", input.category, 100)?,
            stars: Stars::new(input.stars)?,
            unit: text("unit", input.unit, 50)?,
            price: PriceVnd::new(input.price_vnd)?,
            status: input.status.unwrap_or(ProductStatus::Active),
            initial_stock: input.initial_stock,
        })
    }
}

/// An operator's change to stock on hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockAdjustment {
    pub delta: i64,
    pub reason: String,
}

impl StockAdjustment {
    pub fn new(delta: i64, reason: &str) -> Result<Self, Invalid> {
        if delta == 0 {
            return Err(Invalid::new("delta", "must not be zero"));
        }
        if delta.unsigned_abs() > MAX_STOCK as u64 {
            return Err(Invalid::new(
                "delta",
                format!("{delta} is beyond ±{MAX_STOCK}"),
            ));
        }
        Ok(Self {
            delta,
            reason: text("reason", reason, 500)?,
        })
    }

    /// Stock on hand after the adjustment, refused when it would drop below zero or
    /// below what is reserved for orders.
    pub fn apply(&self, on_hand: i64, reserved: i64) -> Result<i64, Invalid> {
        let after = on_hand + self.delta;
        if after < reserved {
            return Err(Invalid::new(
                "delta",
                format!("would leave {after} on hand, below the {reserved} reserved for orders"),
            ));
        }
        if after > MAX_STOCK {
            return Err(Invalid::new(
                "delta",
                format!("would leave {after} on hand, above the limit of {MAX_STOCK}"),
            ));
        }
        Ok(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ProductInput<'static> {
        ProductInput {
            sku: "BLI-MIEN-DONG-500G",
            producer_code: "HTX-MIEN-DONG-BINH-LIEU",
            name: "  Miến dong Bình Liêu ",
            description: "Miến làm từ củ dong riềng.",
            category: "Thực phẩm",
            stars: 4,
            unit: "gói 500g",
            price_vnd: 75_000,
            status: None,
            initial_stock: 10,
        }
    }

    #[test]
    fn valid_product_is_trimmed_and_active_by_default() {
        let draft = ProductDraft::new(input()).unwrap();
        assert_eq!(draft.name, "Miến dong Bình Liêu");
        assert_eq!(draft.status, ProductStatus::Active);
    }

    #[test]
    fn product_id_is_the_uuid_v5_of_the_sku() {
        let draft = ProductDraft::new(input()).unwrap();
        // RFC 9562 name-based id; Python's uuid.uuid5(namespace, sku) gives the same.
        assert_eq!(
            draft.id().to_string(),
            "a059a972-06c8-5391-b2e7-5d77793363d0"
        );
        let other = ProductDraft::new(ProductInput {
            sku: "BLI-MIEN-DONG-1KG",
            ..input()
        })
        .unwrap();
        assert_ne!(other.id(), draft.id());
    }

    #[test]
    fn stars_outside_three_to_five_name_the_field() {
        for stars in [0, 2, 6] {
            let err = ProductDraft::new(ProductInput { stars, ..input() }).unwrap_err();
            assert_eq!(err.field, "stars");
        }
    }

    #[test]
    fn zero_or_negative_price_is_refused() {
        for price_vnd in [0, -1_000] {
            let err = ProductDraft::new(ProductInput {
                price_vnd,
                ..input()
            })
            .unwrap_err();
            assert_eq!(err.field, "price_vnd");
        }
    }

    #[test]
    fn empty_and_oversized_text_is_refused() {
        let empty = ProductDraft::new(ProductInput {
            name: "   ",
            ..input()
        })
        .unwrap_err();
        assert_eq!(empty, Invalid::new("name", "is required"));
        let long = "ă".repeat(201);
        let err = ProductDraft::new(ProductInput {
            name: &long,
            ..input()
        })
        .unwrap_err();
        assert_eq!(err.field, "name");
        assert!(err.reason.contains("201 characters"), "{err}");
    }

    #[test]
    fn control_characters_are_refused_and_descriptions_may_have_line_feeds() {
        for (name, description) in [("Miến\0dong", "x"), ("Miến\u{1b}[2J", "x"), ("a", "b\0c")]
        {
            let err = ProductDraft::new(ProductInput {
                name,
                description,
                ..input()
            })
            .unwrap_err();
            assert!(err.field == "name" || err.field == "description", "{err}");
        }
        let draft = ProductDraft::new(ProductInput {
            description: "Dòng một.\nDòng hai.",
            ..input()
        })
        .unwrap();
        assert_eq!(draft.description, "Dòng một.\nDòng hai.");
        let err = ProductDraft::new(ProductInput {
            unit: "gói\n500g",
            ..input()
        })
        .unwrap_err();
        assert_eq!(err.field, "unit");
    }

    #[test]
    fn sku_with_lower_case_or_spaces_is_refused() {
        let err = ProductDraft::new(ProductInput {
            sku: "mien dong",
            ..input()
        })
        .unwrap_err();
        assert_eq!(err.field, "sku");
    }

    #[test]
    fn negative_initial_stock_is_refused() {
        let err = ProductDraft::new(ProductInput {
            initial_stock: -1,
            ..input()
        })
        .unwrap_err();
        assert_eq!(err.field, "initial_stock");
    }

    #[test]
    fn adjustment_cannot_take_stock_below_what_is_reserved() {
        let take = StockAdjustment::new(-8, "hỏng").unwrap();
        assert_eq!(take.apply(10, 2), Ok(2));
        assert_eq!(take.apply(10, 3).unwrap_err().field, "delta");
        assert_eq!(StockAdjustment::new(0, "x").unwrap_err().field, "delta");
    }
}
