use clap::Parser as _;
use ocop_order::{App, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = ocop_telemetry::init("order", &config.telemetry)?;
    if config
        .database
        .migrate_only("order", &ocop_order::MIGRATOR)
        .await?
    {
        return Ok(());
    }
    let app = App::build(config).await?;
    tracing::info!(grpc = %app.grpc_addr(), http = %app.http_addr(), "order listening");
    app.run_until_stopped(ocop_grpc_kit::shutdown::shutdown_signal())
        .await
}
