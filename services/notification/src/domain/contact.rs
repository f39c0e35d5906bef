//! How to reach a shopper: a normalised phone number and an optional e-mail address,
//! each able to show itself masked (for lists, events and anything an operator sees).

use std::fmt;

use ocop_grpc_kit::validation::quote;
use ocop_proto::contract::phone;

use super::Invalid;

/// A Vietnamese mobile number in the contract's canonical national form (`0` + 9
/// digits): `+84 912 345 123`, `84912345123`, `0912.345.123` and `0912345123` are the
/// same number. The rule is `ocop_proto::contract::phone`, the one the order service
/// applied before the number reached us, so every order's phone is one we accept.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        phone::normalise(raw)
            .map(Self)
            .map_err(|error| Invalid::new(field, error.describe(&quote(raw))))
    }

    /// National form, e.g. `0912345123`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// International form without `+`, as Zalo and most SMS gateways want it:
    /// `84912345123`.
    pub fn international(&self) -> String {
        phone::international(&self.0)
    }

    /// `09xx xxx 123`: the network prefix and the last three digits.
    pub fn masked(&self) -> String {
        format!("{}xx xxx {}", &self.0[..2], &self.0[self.0.len() - 3..])
    }
}

// Personal data: a stray `{:?}` in a log line shows the masked form only.
impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

/// An e-mail address, trimmed and in lower case.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let address = raw.trim().to_lowercase();
        let Some((local, domain)) = address.split_once('@') else {
            return Err(Invalid::new(field, "is not an e-mail address (no `@`)"));
        };
        let valid = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && address.len() <= 254
            && !address.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid {
            return Err(Invalid::new(field, "is not an e-mail address"));
        }
        Ok(Self(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `n***@example.com`: the first character of the mailbox and the domain.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.split_once('@').expect("parsed address has an @");
        let first = local.chars().next().expect("parsed mailbox is not empty");
        format!("{first}***@{domain}")
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.masked())
    }
}

/// Where one notification goes: a phone (SMS, Zalo, the log channel) or a mailbox.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Address {
    Phone(Phone),
    Email(Email),
}

impl Address {
    /// A phone or an e-mail address, told apart by the `@` (list filters take either).
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        if raw.trim().is_empty() {
            return Err(Invalid::new(field, "is required"));
        }
        if raw.contains('@') {
            Email::parse(field, raw).map(Self::Email)
        } else {
            Phone::parse(field, raw).map(Self::Phone)
        }
    }

    /// The normalised address, as stored and as the sender uses it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Phone(phone) => phone.as_str(),
            Self::Email(email) => email.as_str(),
        }
    }

    pub fn masked(&self) -> String {
        match self {
            Self::Phone(phone) => phone.masked(),
            Self::Email(email) => email.masked(),
        }
    }

    /// `text` with every spelling of this address replaced by its masked form: for
    /// provider errors, which often echo the recipient, before they are stored, logged
    /// or published.
    pub fn redact(&self, text: &str) -> String {
        let masked = self.masked();
        match self {
            // International first: the national form's digits are not a substring of
            // it, but `84…` is of `+84…`.
            Self::Phone(phone) => text
                .replace(&format!("+{}", phone.international()), &masked)
                .replace(&phone.international(), &masked)
                .replace(phone.as_str(), &masked),
            Self::Email(email) => text.replace(email.as_str(), &masked),
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Phone(phone) => phone.fmt(f),
            Self::Email(email) => email.fmt(f),
        }
    }
}

/// The shopper of one order, as `OrderPlaced` gave it.
#[derive(Clone, PartialEq, Eq)]
pub struct Contact {
    pub name: String,
    pub phone: Phone,
    pub email: Option<Email>,
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contact")
            .field("name", &"<redacted>")
            .field("phone", &self.phone)
            .field("email", &self.email)
            .finish()
    }
}

impl Contact {
    /// The contact of an order. The phone is required (every order has one); an e-mail
    /// address that does not parse is dropped rather than failing the order: the
    /// shopper still hears from us by phone.
    pub fn new(name: &str, phone: &str, email: &str) -> Result<Self, Invalid> {
        let phone = Phone::parse("customer.phone", phone)?;
        let email = if email.trim().is_empty() {
            None
        } else {
            Email::parse("customer.email", email).ok()
        };
        Ok(Self {
            name: name.trim().to_owned(),
            phone,
            email,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_number_is_the_same_phone() {
        for raw in [
            "0912345123",
            "+84912345123",
            "+84 912 345 123",
            "84912345123",
            "0912.345.123",
            "(0912) 345-123",
            "0084912345123",
        ] {
            assert_eq!(
                Phone::parse("phone", raw).unwrap().as_str(),
                "0912345123",
                "{raw}"
            );
        }
        assert_eq!(
            Phone::parse("phone", "0912345123").unwrap().international(),
            "84912345123"
        );
    }

    #[test]
    fn malformed_phones_are_refused_naming_the_field() {
        for raw in [
            "",
            "12345",
            "+1 415 555 0100",
            "0912abc123",
            "091234512345",
            "00912345123",
        ] {
            let err = Phone::parse("recipient", raw).unwrap_err();
            assert_eq!(err.field, "recipient", "{raw}");
        }
    }

    #[test]
    fn phone_is_masked_keeping_prefix_and_last_three_digits() {
        assert_eq!(
            Phone::parse("p", "0912345123").unwrap().masked(),
            "09xx xxx 123"
        );
        assert_eq!(
            format!("{:?}", Phone::parse("p", "0912345678").unwrap()),
            "Phone(09xx xxx 678)"
        );
    }

    #[test]
    fn email_is_normalised_and_masked() {
        let email = Email::parse("e", "  Nguyen.Van.A@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "nguyen.van.a@example.com");
        assert_eq!(email.masked(), "n***@example.com");
        for raw in [
            "no-at-sign",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@@b.vn",
        ] {
            assert!(Email::parse("e", raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn address_is_a_phone_or_an_email_by_its_at_sign() {
        assert!(matches!(
            Address::parse("recipient", "+84 912 345 123").unwrap(),
            Address::Phone(_)
        ));
        assert!(matches!(
            Address::parse("recipient", "A@b.vn").unwrap(),
            Address::Email(_)
        ));
        assert_eq!(
            Address::parse("recipient", " ").unwrap_err().field,
            "recipient"
        );
    }

    #[test]
    fn redact_hides_every_spelling_of_the_address() {
        let phone = Address::parse("p", "0912345123").unwrap();
        assert_eq!(
            phone.redact("to 0912345123 / 84912345123 / +84912345123 refused"),
            "to 09xx xxx 123 / 09xx xxx 123 / 09xx xxx 123 refused"
        );
        let email = Address::parse("e", "hoa@example.com").unwrap();
        assert_eq!(
            email.redact("550 <hoa@example.com>: unknown user"),
            "550 <h***@example.com>: unknown user"
        );
    }

    #[test]
    fn contact_keeps_the_phone_and_drops_an_unusable_email() {
        let contact = Contact::new(" Nguyễn Thị Hoa ", "0912345123", "not-an-email").unwrap();
        assert_eq!(contact.name, "Nguyễn Thị Hoa");
        assert_eq!(contact.email, None);
        let shown = format!("{contact:?}");
        assert!(
            !shown.contains("Hoa") && !shown.contains("0912345123"),
            "{shown}"
        );
        assert_eq!(
            Contact::new("A", "12", "").unwrap_err().field,
            "customer.phone"
        );
    }
}
