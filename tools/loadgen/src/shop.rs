//! The shopper's side of the public API: PlaceOrder (retried with the same idempotency
//! key, as a careful client does), CancelOrder, and paying or declining on the sandbox
//! gateway's pages.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use ocop_proto::order::v1::{self as pb, order_service_client::OrderServiceClient};
use tokio::sync::{mpsc, oneshot};
use tonic::{Code, transport::Channel};
use uuid::Uuid;

use crate::{
    mix::Plan,
    tracker::{Action, NewOrder, PhaseId, Tracker},
};

/// PlaceOrder attempts per order (the first and two retries with the same key).
const PLACE_ATTEMPTS: u32 = 3;
/// Attempts to reach the sandbox gateway.
const SETTLE_ATTEMPTS: u32 = 3;

/// A product the shoppers can order.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: String,
    pub available: i64,
}

/// The shopper population's connections and what it needs to build orders.
#[derive(Debug)]
pub struct Shop {
    orders: Vec<OrderServiceClient<Channel>>,
    next: AtomicUsize,
    http: reqwest::Client,
    sandbox: String,
    timeout: Duration,
    tracker: Arc<Tracker>,
    products: Arc<Vec<Product>>,
    key_prefix: String,
    sequence: AtomicU64,
    actions: mpsc::UnboundedSender<Action>,
}

/// A channel to `address` with Nagle off (small calls would otherwise wait ~40 ms).
pub async fn channel(address: &str, timeout: Duration) -> anyhow::Result<Channel> {
    tonic::transport::Endpoint::from_shared(address.to_owned())
        .with_context(|| format!("`{address}` is not a URI"))?
        .tcp_nodelay(true)
        .connect_timeout(timeout)
        .connect()
        .await
        .with_context(|| format!("connect to {address}"))
}

/// The gRPC status code as the gRPC spec spells it, e.g. `DEADLINE_EXCEEDED`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Whether a careful client sends the same request again (same key: no double order).
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Internal
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled
    )
}

impl Shop {
    /// Connects `connections` channels to the order service, spread over its
    /// `order_addresses` (at least one each). Actions the follower decides go to
    /// `actions`; [`Shop::serve_actions`] carries them out.
    #[allow(clippy::too_many_arguments)]
    pub async fn connect(
        order_addresses: &[String],
        connections: usize,
        sandbox: &str,
        timeout: Duration,
        tracker: Arc<Tracker>,
        products: Arc<Vec<Product>>,
        key_prefix: String,
        actions: mpsc::UnboundedSender<Action>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!order_addresses.is_empty(), "no order service address");
        let mut orders = Vec::new();
        for address in order_addresses
            .iter()
            .cycle()
            .take(connections.max(order_addresses.len()))
        {
            orders.push(OrderServiceClient::new(
                channel(address, timeout)
                    .await
                    .with_context(|| format!("the order service at {address}"))?,
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .tcp_nodelay(true)
            .build()
            .context("build the HTTP client")?;
        Ok(Self {
            orders,
            next: AtomicUsize::new(0),
            http,
            sandbox: sandbox.to_owned(),
            timeout,
            tracker,
            products,
            key_prefix,
            sequence: AtomicU64::new(0),
            actions,
        })
    }

    /// The idempotency keys of this run all start with this.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    fn client(&self) -> OrderServiceClient<Channel> {
        let next = self.next.fetch_add(1, Ordering::Relaxed);
        self.orders[next % self.orders.len()].clone()
    }

    /// Places one order meant to be sent at `intended`; its latency counts from then.
    /// Returns whether an order was placed. `waiter` is woken when the shopper is done
    /// with it (closed loop).
    pub async fn place(
        self: Arc<Self>,
        plan: Plan,
        intended: Instant,
        phase: PhaseId,
        waiter: Option<oneshot::Sender<()>>,
    ) -> bool {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let key = format!("{}{sequence}", self.key_prefix);
        let request = place_request(&plan, &self.products, &key);
        self.tracker.attempted(phase, plan.fate);
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let mut call = tonic::Request::new(request.clone());
            call.set_timeout(self.timeout);
            match self.client().place_order(call).await {
                Ok(response) => break response.into_inner(),
                Err(status) => {
                    self.tracker.record_error(phase, code_name(status.code()));
                    if attempt < PLACE_ATTEMPTS && retryable(status.code()) {
                        tokio::time::sleep(Duration::from_millis(200) * 5u32.pow(attempt - 1))
                            .await;
                        continue;
                    }
                    self.tracker.record_failed(phase);
                    return false;
                }
            }
        };
        self.tracker.record_place(phase, intended.elapsed());
        let Some(id) = response
            .order
            .as_ref()
            .and_then(|order| order.id.parse::<Uuid>().ok())
        else {
            self.tracker
                .record_other_error(phase, "PlaceOrder: answer without an order id".into());
            self.tracker.record_failed(phase);
            return false;
        };
        let actions = self.tracker.register(
            id,
            NewOrder {
                phase,
                intended,
                fate: plan.fate,
                key: key.clone(),
                access_token: response.access_token.clone(),
                waiter,
            },
        );
        for action in actions {
            let _ = self.actions.send(action);
        }
        if plan.retry {
            self.resend(request, id, phase).await;
        }
        true
    }

    /// The same PlaceOrder again: it must answer the same order, not a new one.
    async fn resend(&self, request: pb::PlaceOrderRequest, id: Uuid, phase: PhaseId) {
        let key = request.idempotency_key.clone();
        let mut call = tonic::Request::new(request);
        call.set_timeout(self.timeout);
        self.tracker.record_retry(phase);
        match self.client().place_order(call).await {
            Ok(response) => {
                let response = response.into_inner();
                let again = response.order.map(|order| order.id).unwrap_or_default();
                if again != id.to_string() || response.created {
                    self.tracker.problem(format!(
                        "idempotency key {key}: first answered order {id}, the retry answered \
                         order {again} (created: {})",
                        response.created
                    ));
                }
            }
            Err(status) => self.tracker.record_other_error(
                phase,
                format!("PlaceOrder retry: {}", code_name(status.code())),
            ),
        }
    }

    /// Carries out the shopper's actions as they come, each on its own task.
    pub fn serve_actions(
        self: &Arc<Self>,
        mut actions: mpsc::UnboundedReceiver<Action>,
    ) -> tokio::task::JoinHandle<()> {
        let shop = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(action) = actions.recv().await {
                tokio::spawn(Arc::clone(&shop).act(action));
            }
        })
    }

    async fn act(self: Arc<Self>, action: Action) {
        match action {
            Action::Settle {
                order_id,
                payment_id,
                succeed,
            } => self.settle(order_id, payment_id, succeed).await,
            Action::Cancel {
                order_id,
                access_token,
            } => self.cancel(order_id, access_token).await,
        }
    }

    fn phase_of(&self, order_id: Uuid) -> PhaseId {
        self.tracker.phase_of(order_id).unwrap_or(0)
    }

    /// Pays or declines on the sandbox gateway's control API, as the shopper's click on
    /// the provider's page does: the gateway signs and sends the provider's callback.
    async fn settle(&self, order_id: Uuid, payment_id: Uuid, succeed: bool) {
        let verb = if succeed { "succeed" } else { "fail" };
        let url = format!("{}/sandbox/payments/{payment_id}/{verb}", self.sandbox);
        self.tracker.paid(order_id);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.http.post(&url).send().await {
                // 200: the payment service acknowledged the callback (or, for a provider
                // that sends nothing on a failure, the decline was recorded).
                Ok(response) if response.status().is_success() => return,
                Ok(response) => {
                    let status = response.status().as_u16();
                    let page = response.text().await.unwrap_or_default();
                    self.tracker.record_other_error(
                        self.phase_of(order_id),
                        format!("sandbox {verb}: {}", refusal(status, &page)),
                    );
                    return;
                }
                Err(err) if attempt < SETTLE_ATTEMPTS && (err.is_connect() || err.is_timeout()) => {
                    tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                }
                Err(err) => {
                    let kind = if err.is_timeout() {
                        "timeout"
                    } else if err.is_connect() {
                        "unreachable"
                    } else {
                        "failed"
                    };
                    self.tracker.record_other_error(
                        self.phase_of(order_id),
                        format!("sandbox {verb}: {kind}"),
                    );
                    return;
                }
            }
        }
    }

    async fn cancel(&self, order_id: Uuid, access_token: String) {
        let mut call = tonic::Request::new(pb::CancelOrderRequest {
            order_id: order_id.to_string(),
            reason: "Khách đổi ý".into(),
            access_token,
        });
        call.set_timeout(self.timeout);
        if let Err(status) = self.client().cancel_order(call).await {
            self.tracker.record_other_error(
                self.phase_of(order_id),
                format!("CancelOrder: {}", code_name(status.code())),
            );
        }
    }
}

/// Why the sandbox gateway did not settle, from its answer: its pages are for people, so
/// the reason is read from the page's title (the gateway's own wording).
fn refusal(status: u16, page: &str) -> String {
    let reason = if page.contains("Giao dịch đã được xử lý") {
        "already settled"
    } else if page.contains("Cửa hàng từ chối kết quả") {
        // The payment service answered the callback with a 4xx (e.g. the payment expired).
        "callback refused by the payment service"
    } else if page.contains("Cửa hàng tạm thời không phản hồi") {
        // Not delivered; the gateway retries it by itself.
        "callback not delivered yet"
    } else if page.contains("Không tìm thấy giao dịch") {
        "unknown payment"
    } else {
        "refused"
    };
    format!("{reason} (HTTP {status})")
}

const FAMILY: &[&str] = &[
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Ngô",
];
const MIDDLE: &[&str] = &["Văn", "Thị", "Minh", "Thu", "Đức", "Ngọc", "Hải"];
const GIVEN: &[&str] = &[
    "An", "Bình", "Chi", "Dũng", "Hà", "Hùng", "Lan", "Mai", "Nam", "Phương", "Quân", "Thảo",
    "Tuấn", "Vy",
];
/// Districts of Quảng Ninh.
const DISTRICTS: &[&str] = &[
    "Hạ Long",
    "Cẩm Phả",
    "Uông Bí",
    "Móng Cái",
    "Đông Triều",
    "Quảng Yên",
    "Bình Liêu",
    "Tiên Yên",
    "Vân Đồn",
    "Ba Chẽ",
];

fn pick<'a>(list: &[&'a str], value: u64) -> &'a str {
    list[(value % list.len() as u64) as usize]
}

/// The PlaceOrder request of `plan`, with a shopper made up from `plan.shopper`.
pub fn place_request(plan: &Plan, products: &[Product], key: &str) -> pb::PlaceOrderRequest {
    let who = plan.shopper;
    let district = pick(DISTRICTS, who >> 8);
    pb::PlaceOrderRequest {
        idempotency_key: key.to_owned(),
        customer: Some(pb::Customer {
            name: format!(
                "{} {} {}",
                pick(FAMILY, who),
                pick(MIDDLE, who >> 16),
                pick(GIVEN, who >> 24)
            ),
            phone: format!("09{:08}", (who >> 32) % 100_000_000),
            email: if who.is_multiple_of(3) {
                format!("khach{}@example.com", (who >> 32) % 1_000_000)
            } else {
                String::new()
            },
            address: Some(pb::Address {
                province: "Quảng Ninh".into(),
                district: district.into(),
                ward: format!("Phường {}", 1 + (who >> 40) % 12),
                street: format!("{} Đường 25 Tháng 4", 1 + (who >> 48) % 300),
            }),
        }),
        lines: plan
            .lines
            .iter()
            .map(|(product, quantity)| pb::LineItem {
                product_id: products[*product].id.clone(),
                quantity: *quantity,
            })
            .collect(),
        delivery_method: plan.delivery as i32,
        payment_method: plan.method as i32,
        sales_channel: plan.channel as i32,
        note: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::Fate;

    #[test]
    fn a_request_carries_the_plan_and_a_valid_shopper() {
        let products = vec![
            Product {
                id: "p0".into(),
                available: 5,
            },
            Product {
                id: "p1".into(),
                available: 5,
            },
        ];
        let plan = Plan {
            fate: Fate::Pay,
            method: pb::PaymentMethod::Momo,
            lines: vec![(1, 2), (0, 1)],
            retry: false,
            delivery: pb::DeliveryMethod::Express,
            channel: pb::SalesChannel::Web,
            shopper: 0x1234_5678_9abc_def0,
        };
        let request = place_request(&plan, &products, "lg-x-1");
        assert_eq!(request.idempotency_key, "lg-x-1");
        assert_eq!(request.lines[0].product_id, "p1");
        assert_eq!(request.lines[0].quantity, 2);
        assert_eq!(request.payment_method, pb::PaymentMethod::Momo as i32);
        let customer = request.customer.unwrap();
        assert_eq!(customer.phone.len(), 10);
        assert!(customer.phone.starts_with("09"));
        assert!(customer.phone.chars().all(|c| c.is_ascii_digit()));
        assert_eq!(customer.address.unwrap().province, "Quảng Ninh");
    }

    #[test]
    fn the_gateways_refusals_are_named() {
        assert_eq!(
            refusal(409, "<h1>Giao dịch đã được xử lý</h1>"),
            "already settled (HTTP 409)"
        );
        assert_eq!(
            refusal(409, "<h1>Cửa hàng từ chối kết quả</h1>"),
            "callback refused by the payment service (HTTP 409)"
        );
        assert_eq!(refusal(500, "oops"), "refused (HTTP 500)");
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(retryable(Code::Unavailable));
        assert!(retryable(Code::DeadlineExceeded));
        assert!(!retryable(Code::InvalidArgument));
        assert!(!retryable(Code::AlreadyExists));
        assert_eq!(code_name(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
    }
}
