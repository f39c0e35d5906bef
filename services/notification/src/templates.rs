//! The message texts: one minijinja template per [`TemplateKind`], a file in
//! `templates/` whose first rendered line is the subject and the rest the body.
//!
//! The files are compiled into the binary (`include_str!`), so a deployment cannot lose
//! them; `NOTIFICATION_TEMPLATES_DIR` may point at a folder with edited copies (every
//! kind must be there). Either way every template is compiled and rendered against
//! sample notices at start-up, so a broken template stops the service before it
//! consumes anything rather than dead-lettering real events.

use std::{collections::BTreeMap, path::Path};

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use crate::domain::{
    format,
    notice::{Notice, PayBy, TemplateKind},
};

/// A rendered message.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

// Rendered texts hold personal data (names, amounts, addresses): never in logs.
impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rendered(<message text>)")
    }
}

/// Why a template could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {name}: cannot read {path}: {source}")]
    Read {
        name: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("template {name}: {source:#}")]
    Syntax {
        name: &'static str,
        source: minijinja::Error,
    },
    #[error("template {name}: rendering failed: {source:#}")]
    Render {
        name: &'static str,
        source: minijinja::Error,
    },
    #[error("template {name}: the first line (the subject) is empty")]
    NoSubject { name: &'static str },
}

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

fn embedded(kind: TemplateKind) -> &'static str {
    match kind {
        TemplateKind::OrderReceived => include_str!("../templates/order_received.txt"),
        TemplateKind::PaymentInstructions => {
            include_str!("../templates/payment_instructions.txt")
        }
        TemplateKind::OrderConfirmed => include_str!("../templates/order_confirmed.txt"),
        TemplateKind::OrderCancelled => include_str!("../templates/order_cancelled.txt"),
        TemplateKind::OrderShipped => include_str!("../templates/order_shipped.txt"),
        TemplateKind::OrderDelivered => include_str!("../templates/order_delivered.txt"),
        TemplateKind::OrderRefunded => include_str!("../templates/order_refunded.txt"),
    }
}

/// The `vnd` filter: `1250000 | vnd` → `1.250.000 ₫`.
fn vnd_filter(amount: i64) -> String {
    ocop_proto::money::format_vnd(amount)
}

impl Templates {
    /// The templates built into the binary, or those of `dir` when given; checked.
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut sources = Vec::with_capacity(TemplateKind::ALL.len());
        for kind in TemplateKind::ALL {
            let source = match dir {
                None => embedded(kind).to_owned(),
                Some(dir) => {
                    let path = dir.join(format!("{}.txt", kind.name()));
                    std::fs::read_to_string(&path).map_err(|source| TemplateError::Read {
                        name: kind.name(),
                        path: path.display().to_string(),
                        source,
                    })?
                }
            };
            sources.push((kind, source));
        }
        let templates = Self::compile(sources)?;
        templates.check()?;
        Ok(templates)
    }

    /// The built-in templates.
    pub fn embedded() -> Result<Self, TemplateError> {
        Self::load(None)
    }

    fn compile(sources: Vec<(TemplateKind, String)>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        // Plain text: nothing to escape (an e-mail is sent as text/plain).
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // A misspelt variable is an error, not an empty string in a shopper's message.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Block tags on their own line leave no blank line behind.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("vnd", vnd_filter);
        for (kind, source) in sources {
            env.add_template_owned(kind.name(), source)
                .map_err(|source| TemplateError::Syntax {
                    name: kind.name(),
                    source,
                })?;
        }
        Ok(Self { env })
    }

    /// Renders every template against sample notices of every shape.
    fn check(&self) -> Result<(), TemplateError> {
        for notice in samples() {
            self.render(&notice, "OCOP7K2QF9", "Nguyễn Thị Hoa")?;
        }
        Ok(())
    }

    /// The message telling `notice` about order `order_code` to `customer_name`.
    pub fn render(
        &self,
        notice: &Notice,
        order_code: &str,
        customer_name: &str,
    ) -> Result<Rendered, TemplateError> {
        let name = notice.template().name();
        let template = self
            .env
            .get_template(name)
            .map_err(|source| TemplateError::Render { name, source })?;
        let text = template
            .render(context(notice, order_code, customer_name))
            .map_err(|source| TemplateError::Render { name, source })?;
        let (subject, body) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        let subject = subject.trim();
        if subject.is_empty() {
            return Err(TemplateError::NoSubject { name });
        }
        Ok(Rendered {
            subject: subject.to_owned(),
            body: body.trim().to_owned(),
        })
    }
}

/// The variables a template sees. Every key a template of that kind may use is always
/// present (empty or none when it does not apply), as strict mode requires.
fn context(
    notice: &Notice,
    order_code: &str,
    customer_name: &str,
) -> BTreeMap<&'static str, Value> {
    let mut vars: BTreeMap<&'static str, Value> = BTreeMap::new();
    vars.insert("order_code", Value::from(order_code));
    vars.insert("customer_name", Value::from(customer_name));
    match notice {
        Notice::Received(order) => {
            vars.insert("lines", Value::from_serialize(&order.lines));
            vars.insert("subtotal_vnd", Value::from(order.subtotal_vnd));
            vars.insert("shipping_fee_vnd", Value::from(order.shipping_fee_vnd));
            vars.insert("total_vnd", Value::from(order.total_vnd));
        }
        Notice::PaymentInstructions(payment) => {
            vars.insert("amount_vnd", Value::from(payment.amount_vnd));
            vars.insert("provider", Value::from(payment.provider.display_name()));
            vars.insert(
                "expires_at",
                Value::from(payment.expires_at.map(format::time).unwrap_or_default()),
            );
            match &payment.pay_by {
                PayBy::Link(url) => {
                    vars.insert("pay_url", Value::from(url.as_str()));
                    vars.insert("transfer", Value::from(()));
                }
                PayBy::Transfer(transfer) => {
                    vars.insert("pay_url", Value::from(""));
                    vars.insert("transfer", Value::from_serialize(transfer));
                }
            }
        }
        Notice::Confirmed { total_vnd } => {
            vars.insert("total_vnd", Value::from(*total_vnd));
        }
        Notice::Cancelled { reason, detail } => {
            vars.insert("reason", Value::from(reason.code()));
            vars.insert("detail", Value::from(detail.as_str()));
        }
        Notice::Shipped {
            carrier,
            tracking_code,
        } => {
            vars.insert("carrier", Value::from(carrier.as_str()));
            vars.insert("tracking_code", Value::from(tracking_code.as_str()));
        }
        Notice::Delivered => {}
        Notice::Refunded {
            amount_vnd,
            refunded_total_vnd,
            full,
        } => {
            vars.insert("amount_vnd", Value::from(*amount_vnd));
            vars.insert("refunded_total_vnd", Value::from(*refunded_total_vnd));
            vars.insert("full", Value::from(*full));
        }
    }
    vars
}

/// A notice of every shape each template must handle: both ways to pay, with and
/// without a deadline, every cancellation reason, full and partial refunds.
fn samples() -> Vec<Notice> {
    use crate::domain::{
        contact::Contact,
        notice::{
            BankTransfer, CancellationReason, Line, OrderReceived, PaymentInstructions, Provider,
        },
    };
    let contact = Contact::new("Nguyễn Thị Hoa", "0912345123", "hoa@example.com")
        .expect("sample contact is valid");
    let line = Line {
        name: "Miến dong Bình Liêu".into(),
        unit: "gói 500g".into(),
        quantity: 2,
        unit_price_vnd: 75_000,
        line_total_vnd: 150_000,
    };
    let transfer = BankTransfer {
        bank_bin: "970436".into(),
        bank_name: Some("Vietcombank"),
        account_number: "0011004455667".into(),
        account_name: "HTX OCOP QUANG NINH".into(),
        memo: "OCOP7K2QF9".into(),
        image_url: String::new(),
    };
    let mut notices = vec![
        Notice::Received(OrderReceived {
            order_code: "OCOP7K2QF9".into(),
            contact,
            lines: vec![line],
            subtotal_vnd: 150_000,
            shipping_fee_vnd: 0,
            total_vnd: 150_000,
        }),
        Notice::PaymentInstructions(PaymentInstructions {
            amount_vnd: 150_000,
            provider: Provider::VnPay,
            pay_by: PayBy::Link("https://pay.example/1".into()),
            expires_at: None,
        }),
        Notice::PaymentInstructions(PaymentInstructions {
            amount_vnd: 150_000,
            provider: Provider::VietQr,
            pay_by: PayBy::Transfer(BankTransfer {
                bank_name: None,
                image_url: "https://qr.example/1.png".into(),
                ..transfer
            }),
            expires_at: Some(chrono::Utc::now()),
        }),
        Notice::Confirmed { total_vnd: 150_000 },
        Notice::Shipped {
            carrier: "VNPost".into(),
            tracking_code: String::new(),
        },
        Notice::Delivered,
        Notice::Refunded {
            amount_vnd: 50_000,
            refunded_total_vnd: 50_000,
            full: false,
        },
        Notice::Refunded {
            amount_vnd: 150_000,
            refunded_total_vnd: 150_000,
            full: true,
        },
    ];
    for reason in [
        CancellationReason::OutOfStock,
        CancellationReason::PaymentFailed,
        CancellationReason::PaymentExpired,
        CancellationReason::CustomerRequest,
        CancellationReason::Operator,
        CancellationReason::Unspecified,
    ] {
        notices.push(Notice::Cancelled {
            reason,
            detail: String::new(),
        });
    }
    notices
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::domain::{
        contact::Contact,
        notice::{
            BankTransfer, CancellationReason, Line, OrderReceived, PaymentInstructions, Provider,
        },
    };

    fn templates() -> Templates {
        Templates::embedded().expect("built-in templates compile and render")
    }

    fn render(notice: &Notice) -> Rendered {
        templates()
            .render(notice, "OCOP7K2QF9", "Nguyễn Thị Hoa")
            .unwrap()
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn order_received_lists_lines_and_totals_in_dong() {
        let notice = Notice::Received(OrderReceived {
            order_code: "OCOP7K2QF9".into(),
            contact: Contact::new("Nguyễn Thị Hoa", "0912345123", "").unwrap(),
            lines: vec![
                Line {
                    name: "Miến dong Bình Liêu".into(),
                    unit: "gói 500g".into(),
                    quantity: 3,
                    unit_price_vnd: 75_000,
                    line_total_vnd: 225_000,
                },
                Line {
                    name: "Trà hoa vàng Ba Chẽ".into(),
                    unit: "hộp 100g".into(),
                    quantity: 2,
                    unit_price_vnd: 500_000,
                    line_total_vnd: 1_000_000,
                },
            ],
            subtotal_vnd: 1_225_000,
            shipping_fee_vnd: 25_000,
            total_vnd: 1_250_000,
        });
        let message = render(&notice);
        assert_eq!(
            message.subject,
            "Đã nhận đơn hàng OCOP7K2QF9 – OCOP Quảng Ninh"
        );
        assert_eq!(
            message.body,
            "Xin chào Nguyễn Thị Hoa,\n\
             \n\
             Cảm ơn bạn đã đặt hàng tại sàn OCOP Quảng Ninh. Chúng tôi đã nhận đơn hàng OCOP7K2QF9:\n\
             - Miến dong Bình Liêu (gói 500g): 3 × 75.000 ₫ = 225.000 ₫\n\
             - Trà hoa vàng Ba Chẽ (hộp 100g): 2 × 500.000 ₫ = 1.000.000 ₫\n\
             \n\
             Tạm tính: 1.225.000 ₫\n\
             Phí vận chuyển: 25.000 ₫\n\
             Tổng cộng: 1.250.000 ₫\n\
             \n\
             Chúng tôi đang kiểm tra hàng trong kho và sẽ gửi hướng dẫn thanh toán cho bạn ngay sau đó."
        );
    }

    #[test]
    fn free_shipping_says_so_and_a_missing_name_is_addressed_politely() {
        let Notice::Received(mut order) = samples().remove(0) else {
            panic!("first sample is an order")
        };
        order.shipping_fee_vnd = 0;
        let message = templates()
            .render(&Notice::Received(order), "OCOP1", "")
            .unwrap();
        assert!(
            message.body.contains("Phí vận chuyển: miễn phí\n"),
            "{}",
            message.body
        );
        assert!(
            message.body.starts_with("Xin chào quý khách,"),
            "{}",
            message.body
        );
    }

    #[test]
    fn payment_by_link_names_the_provider_and_the_deadline_in_vietnam_time() {
        let message = render(&Notice::PaymentInstructions(PaymentInstructions {
            amount_vnd: 1_250_000,
            provider: Provider::VnPay,
            pay_by: PayBy::Link("https://sandbox.vnpayment.vn/pay?x=1".into()),
            expires_at: Some(at("2026-12-05T07:30:00Z")),
        }));
        assert_eq!(
            message.subject,
            "Hướng dẫn thanh toán đơn hàng OCOP7K2QF9 – OCOP Quảng Ninh"
        );
        assert_eq!(
            message.body,
            "Xin chào Nguyễn Thị Hoa,\n\
             \n\
             Đơn hàng OCOP7K2QF9 đã sẵn sàng. Vui lòng thanh toán 1.250.000 ₫ trước 14:30 ngày 05/12/2026.\n\
             \n\
             Thanh toán qua VNPay tại đường dẫn:\n\
             https://sandbox.vnpayment.vn/pay?x=1\n\
             \n\
             Nếu chưa thanh toán trước 14:30 ngày 05/12/2026, đơn hàng sẽ tự động bị hủy."
        );
    }

    #[test]
    fn payment_by_vietqr_gives_every_transfer_detail() {
        let message = render(&Notice::PaymentInstructions(PaymentInstructions {
            amount_vnd: 450_000,
            provider: Provider::VietQr,
            pay_by: PayBy::Transfer(BankTransfer {
                bank_bin: "970436".into(),
                bank_name: Some("Vietcombank"),
                account_number: "0011004455667".into(),
                account_name: "HTX OCOP QUANG NINH".into(),
                memo: "OCOP7K2QF9".into(),
                image_url: String::new(),
            }),
            expires_at: None,
        }));
        assert_eq!(
            message.body,
            "Xin chào Nguyễn Thị Hoa,\n\
             \n\
             Đơn hàng OCOP7K2QF9 đã sẵn sàng. Vui lòng thanh toán 450.000 ₫.\n\
             \n\
             Chuyển khoản qua VietQR (NAPAS 247):\n\
             - Ngân hàng: Vietcombank – mã BIN 970436\n\
             - Số tài khoản: 0011004455667\n\
             - Chủ tài khoản: HTX OCOP QUANG NINH\n\
             - Số tiền: 450.000 ₫\n\
             - Nội dung chuyển khoản: OCOP7K2QF9\n\
             \n\
             Vui lòng giữ nguyên nội dung chuyển khoản để đơn hàng được xác nhận tự động."
        );
    }

    #[test]
    fn confirmed_shipped_delivered_and_refunded_read_naturally() {
        let confirmed = render(&Notice::Confirmed {
            total_vnd: 1_250_000,
        });
        assert_eq!(
            confirmed.subject,
            "Đơn hàng OCOP7K2QF9 đã được xác nhận – OCOP Quảng Ninh"
        );
        assert!(
            confirmed.body.contains(
                "Chúng tôi đã nhận được khoản thanh toán 1.250.000 ₫ cho đơn hàng OCOP7K2QF9."
            ),
            "{}",
            confirmed.body
        );

        let shipped = render(&Notice::Shipped {
            carrier: "Viettel Post".into(),
            tracking_code: "VTP123456789".into(),
        });
        assert_eq!(
            shipped.body,
            "Xin chào Nguyễn Thị Hoa,\n\
             \n\
             Đơn hàng OCOP7K2QF9 đã được giao cho đơn vị vận chuyển Viettel Post.\n\
             Mã vận đơn: VTP123456789\n\
             \n\
             Bạn có thể tra cứu hành trình đơn hàng trên trang của Viettel Post bằng mã vận đơn này."
        );

        let delivered = render(&Notice::Delivered);
        assert_eq!(
            delivered.subject,
            "Đơn hàng OCOP7K2QF9 đã giao thành công – OCOP Quảng Ninh"
        );
        assert!(delivered.body.contains("đã được giao thành công"));

        let partial = render(&Notice::Refunded {
            amount_vnd: 200_000,
            refunded_total_vnd: 300_000,
            full: false,
        });
        assert!(
            partial
                .body
                .contains("Chúng tôi đã hoàn 200.000 ₫ cho đơn hàng OCOP7K2QF9.")
        );
        assert!(
            partial
                .body
                .contains("Tổng số tiền đã hoàn cho đơn hàng đến nay: 300.000 ₫.")
        );
        let full = render(&Notice::Refunded {
            amount_vnd: 1_250_000,
            refunded_total_vnd: 1_250_000,
            full: true,
        });
        assert!(full.body.contains("Đơn hàng đã được hoàn tiền toàn bộ."));
    }

    #[test]
    fn cancellation_reasons_are_told_in_vietnamese() {
        let cases = [
            (CancellationReason::OutOfStock, "Lý do: hết hàng."),
            (
                CancellationReason::PaymentFailed,
                "Lý do: thanh toán không thành công.",
            ),
            (
                CancellationReason::PaymentExpired,
                "Lý do: quá hạn thanh toán.",
            ),
            (
                CancellationReason::CustomerRequest,
                "Lý do: theo yêu cầu của bạn.",
            ),
            (
                CancellationReason::Operator,
                "Lý do: ban quản trị sàn đã hủy đơn.",
            ),
            (CancellationReason::Unspecified, "Lý do: không xác định."),
        ];
        for (reason, expected) in cases {
            let message = render(&Notice::Cancelled {
                reason,
                detail: String::new(),
            });
            assert_eq!(
                message.subject,
                "Đơn hàng OCOP7K2QF9 đã bị hủy – OCOP Quảng Ninh"
            );
            assert!(
                message
                    .body
                    .contains(&format!("đã bị hủy.\n{expected}\n\n")),
                "{reason:?}: {}",
                message.body
            );
            assert!(!message.body.contains("Chi tiết"), "{}", message.body);
        }
        let with_detail = render(&Notice::Cancelled {
            reason: CancellationReason::CustomerRequest,
            detail: "đặt nhầm số lượng".into(),
        });
        assert!(
            with_detail
                .body
                .contains("Lý do: theo yêu cầu của bạn.\nChi tiết: đặt nhầm số lượng\n"),
            "{}",
            with_detail.body
        );
    }

    #[test]
    fn templates_are_loaded_from_a_folder_and_a_broken_one_stops_start_up() {
        let dir = std::env::temp_dir().join(format!("ocop-templates-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        for kind in TemplateKind::ALL {
            std::fs::write(dir.join(format!("{}.txt", kind.name())), embedded(kind)).unwrap();
        }
        std::fs::write(
            dir.join("order_delivered.txt"),
            "Đã giao {{ order_code }}\n\nCảm ơn {{ customer_name }}!",
        )
        .unwrap();
        let templates = Templates::load(Some(&dir)).unwrap();
        let message = templates
            .render(&Notice::Delivered, "OCOP1", "Hoa")
            .unwrap();
        assert_eq!(message.subject, "Đã giao OCOP1");
        assert_eq!(message.body, "Cảm ơn Hoa!");

        // A misspelt variable fails at start-up, naming the template.
        std::fs::write(dir.join("order_shipped.txt"), "Giao {{ order_cod }}\n\nx").unwrap();
        let err = Templates::load(Some(&dir)).unwrap_err().to_string();
        assert!(err.starts_with("template order_shipped:"), "{err}");

        std::fs::remove_file(dir.join("order_confirmed.txt")).unwrap();
        let err = Templates::load(Some(&dir)).unwrap_err().to_string();
        assert!(err.contains("order_confirmed"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
