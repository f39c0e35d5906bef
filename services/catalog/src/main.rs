use clap::Parser as _;
use ocop_catalog::{App, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = ocop_telemetry::init("catalog", &config.telemetry)?;
    if config
        .database
        .migrate_only("catalog", &ocop_catalog::MIGRATOR)
        .await?
    {
        return Ok(());
    }
    let app = App::build(config).await?;
    tracing::info!(grpc = %app.grpc_addr(), http = %app.http_addr(), "catalog listening");
    app.run_until_stopped(ocop_grpc_kit::shutdown::shutdown_signal())
        .await
}
