//! `ocopctl order …`: place an order and follow it through the saga.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use ocop_proto::catalog::v1::catalog_service_client::CatalogServiceClient;
use ocop_proto::contract::payment_methods;
use ocop_proto::order::v1::{self as pb, order_service_client::OrderServiceClient};
use tonic::transport::Channel;

use ocop_proto::money::format_vnd;

#[derive(Debug, clap::Subcommand)]
pub enum OrderCommand {
    /// Place an order (prints the order, then follows it with --follow).
    Place(Box<PlaceArgs>),
    /// Show an order.
    Get {
        id: String,
        #[command(flatten)]
        access: OrderAccess,
    },
    /// Print each status change of an order until it settles (or --timeout passes).
    Follow {
        id: String,
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        access: OrderAccess,
    },
    /// Cancel an unpaid order.
    Cancel {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        access: OrderAccess,
    },
}

/// How a command opens one order: as its shopper, with the access token `order place`
/// printed, or else as an operator (a token from OCOP_TOKEN or minted from
/// OCOP_AUTH_JWT_SECRET).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OrderAccess {
    /// The order's access token, as `order place` printed it.
    #[arg(long, env = "OCOP_ORDER_ACCESS_TOKEN", hide_env_values = true)]
    access_token: Option<String>,
}

/// The credentials of the calls on one order: the shopper's access token, or else the
/// operator's bearer token.
struct Credentials {
    access_token: String,
    operator: Option<String>,
}

impl Credentials {
    fn new(access: &OrderAccess, operator: Option<String>) -> anyhow::Result<Self> {
        match &access.access_token {
            Some(token) => Ok(Self {
                access_token: token.clone(),
                operator: None,
            }),
            None if operator.is_some() => Ok(Self {
                access_token: String::new(),
                operator,
            }),
            None => anyhow::bail!(
                "this needs the order's --access-token (printed by `order place`), or an operator's \
                 --token / OCOP_AUTH_JWT_SECRET"
            ),
        }
    }

    fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        match &self.operator {
            Some(token) => crate::authorized(message, token),
            None => Ok(tonic::Request::new(message)),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct PlaceArgs {
    /// A line as PRODUCT:QUANTITY, the product by id or by SKU (e.g.
    /// BLI-MIEN-DONG-500G:2); repeat for several products.
    #[arg(long = "line", required = true, value_parser = parse_line)]
    lines: Vec<(String, i32)>,
    #[arg(long, default_value = "Nguyễn Văn An")]
    name: String,
    #[arg(long, default_value = "0912345678")]
    phone: String,
    #[arg(long, default_value = "")]
    email: String,
    #[arg(long, default_value = "Quảng Ninh")]
    province: String,
    #[arg(long, default_value = "Hạ Long")]
    district: String,
    #[arg(long, default_value = "Bạch Đằng")]
    ward: String,
    #[arg(long, default_value = "1 Đường 25 Tháng 4")]
    street: String,
    /// standard, express or pickup.
    #[arg(long, default_value = "standard", value_parser = ["standard", "express", "pickup"])]
    delivery: String,
    /// sandbox, vietqr, vnpay, momo or zalopay.
    #[arg(long, default_value = payment_methods::SANDBOX, value_parser = payment_methods::ALL)]
    payment: String,
    /// web, postmart, voso or other.
    #[arg(long, default_value = "web", value_parser = ["web", "postmart", "voso", "other"])]
    channel: String,
    /// Idempotency key (a new UUID when omitted); reuse it to retry safely.
    #[arg(long)]
    key: Option<String>,
    /// Follow the order until it settles.
    #[arg(long)]
    follow: bool,
}

fn parse_line(raw: &str) -> Result<(String, i32), String> {
    let (id, quantity) = raw
        .rsplit_once(':')
        .ok_or_else(|| format!("`{raw}` is not PRODUCT:QUANTITY"))?;
    let quantity = quantity
        .parse()
        .map_err(|_| format!("`{quantity}` is not a quantity"))?;
    Ok((id.to_owned(), quantity))
}

fn status_name(raw: i32) -> String {
    pb::OrderStatus::try_from(raw)
        .map(|status| {
            status
                .as_str_name()
                .trim_start_matches("ORDER_STATUS_")
                .to_owned()
        })
        .unwrap_or_else(|_| raw.to_string())
}

fn settled(status: i32) -> bool {
    matches!(
        pb::OrderStatus::try_from(status),
        Ok(pb::OrderStatus::Confirmed | pb::OrderStatus::Cancelled | pb::OrderStatus::Delivered)
    )
}

fn print_order(order: &pb::Order) {
    println!(
        "order {} ({})  {}  total {}",
        order.id,
        order.code,
        status_name(order.status),
        format_vnd(order.total_vnd)
    );
    for line in &order.lines {
        println!(
            "  {:>3} × {:<40} {:>12}  = {}",
            line.quantity,
            line.name,
            format_vnd(line.unit_price_vnd),
            format_vnd(line.line_total_vnd)
        );
    }
    if let Some(instructions) = &order.payment_instructions {
        match &instructions.method {
            Some(pb::payment_instructions::Method::PayUrl(url)) => println!("  pay at: {url}"),
            Some(pb::payment_instructions::Method::Vietqr(qr)) => {
                println!("  VietQR: {} (memo {})", qr.payload, qr.memo);
                println!(
                    "  (the QR code: `ocopctl payment get {}` prints its page)",
                    order.id
                );
            }
            None => {}
        }
    }
    if order.status == pb::OrderStatus::Cancelled as i32 {
        let reason = pb::CancellationReason::try_from(order.cancellation_reason)
            .map(|reason| reason.as_str_name().to_owned())
            .unwrap_or_default();
        println!("  cancelled: {reason} {}", order.cancellation_detail);
    }
}

async fn get(
    client: &mut OrderServiceClient<Channel>,
    id: &str,
    credentials: &Credentials,
) -> anyhow::Result<pb::Order> {
    client
        .get_order(credentials.request(pb::GetOrderRequest {
            order_id: id.to_owned(),
            access_token: credentials.access_token.clone(),
        })?)
        .await?
        .into_inner()
        .order
        .context("order service returned no order")
}

async fn follow(
    client: &mut OrderServiceClient<Channel>,
    id: &str,
    credentials: &Credentials,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut seen = 0;
    loop {
        let order = get(client, id, credentials).await?;
        for change in order.history.iter().skip(seen) {
            println!(
                "  +{:>6} ms  {} → {}  ({})",
                started.elapsed().as_millis(),
                status_name(change.from),
                status_name(change.to),
                change.cause
            );
        }
        seen = order.history.len();
        if settled(order.status) {
            print_order(&order);
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "order {id} did not settle within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The product id of each line, a SKU looked up in the catalogue.
async fn product_ids(catalog: &str, lines: &[(String, i32)]) -> anyhow::Result<Vec<String>> {
    let mut client = None;
    let mut ids = Vec::with_capacity(lines.len());
    for (product, _) in lines {
        if uuid::Uuid::parse_str(product).is_ok() {
            ids.push(product.clone());
            continue;
        }
        let client = match &mut client {
            Some(client) => client,
            None => client.insert(
                CatalogServiceClient::<Channel>::connect(catalog.to_owned())
                    .await
                    .with_context(|| format!("connect to the catalog at {catalog}"))?,
            ),
        };
        ids.push(crate::catalog::product_id(client, product).await?);
    }
    Ok(ids)
}

/// Runs an order command; `operator` is the operator's token for the order service, when
/// one is at hand.
pub async fn run(
    address: &str,
    catalog: &str,
    command: &OrderCommand,
    operator: Option<String>,
) -> anyhow::Result<()> {
    let mut client = OrderServiceClient::<Channel>::connect(address.to_owned())
        .await
        .with_context(|| format!("connect to the order service at {address}"))?;
    match command {
        OrderCommand::Place(args) => {
            let product_ids = product_ids(catalog, &args.lines).await?;
            let enum_value = |name: &str| name.to_ascii_uppercase();
            let request = pb::PlaceOrderRequest {
                idempotency_key: args
                    .key
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                customer: Some(pb::Customer {
                    name: args.name.clone(),
                    phone: args.phone.clone(),
                    email: args.email.clone(),
                    address: Some(pb::Address {
                        province: args.province.clone(),
                        district: args.district.clone(),
                        ward: args.ward.clone(),
                        street: args.street.clone(),
                    }),
                }),
                lines: product_ids
                    .into_iter()
                    .zip(&args.lines)
                    .map(|(product_id, (_, quantity))| pb::LineItem {
                        product_id,
                        quantity: *quantity,
                    })
                    .collect(),
                delivery_method: pb::DeliveryMethod::from_str_name(&format!(
                    "DELIVERY_METHOD_{}",
                    enum_value(&args.delivery)
                ))
                .context("delivery method")? as i32,
                payment_method: pb::PaymentMethod::from_str_name(&format!(
                    "PAYMENT_METHOD_{}",
                    enum_value(&args.payment)
                ))
                .context("payment method")? as i32,
                sales_channel: pb::SalesChannel::from_str_name(&format!(
                    "SALES_CHANNEL_{}",
                    enum_value(&args.channel)
                ))
                .context("sales channel")? as i32,
                note: String::new(),
            };
            let response = client.place_order(request).await?.into_inner();
            let order = response.order.context("order service returned no order")?;
            print_order(&order);
            if !response.created {
                println!("  (already placed with this idempotency key)");
            }
            // The shopper's key to the order: `order get|follow|cancel --access-token`.
            println!("  access token: {}", response.access_token);
            if args.follow {
                let credentials = Credentials {
                    access_token: response.access_token,
                    operator: None,
                };
                follow(
                    &mut client,
                    &order.id,
                    &credentials,
                    Duration::from_secs(120),
                )
                .await?;
            }
        }
        OrderCommand::Get { id, access } => {
            let credentials = Credentials::new(access, operator)?;
            print_order(&get(&mut client, id, &credentials).await?)
        }
        OrderCommand::Follow {
            id,
            timeout,
            access,
        } => {
            let credentials = Credentials::new(access, operator)?;
            follow(&mut client, id, &credentials, *timeout).await?
        }
        OrderCommand::Cancel { id, reason, access } => {
            let credentials = Credentials::new(access, operator)?;
            let order = client
                .cancel_order(credentials.request(pb::CancelOrderRequest {
                    order_id: id.clone(),
                    reason: reason.clone(),
                    access_token: credentials.access_token.clone(),
                })?)
                .await?
                .into_inner()
                .order
                .context("order service returned no order")?;
            print_order(&order);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn line_is_product_colon_quantity() {
        assert_eq!(super::parse_line("abc:3").unwrap(), ("abc".to_owned(), 3));
        assert!(super::parse_line("abc").is_err());
        assert!(super::parse_line("abc:x").is_err());
    }
}
