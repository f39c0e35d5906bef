use clap::Parser as _;
use ocop_notification::{App, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = ocop_telemetry::init("notification", &config.telemetry)?;
    if config
        .database
        .migrate_only("notification", &ocop_notification::MIGRATOR)
        .await?
    {
        return Ok(());
    }
    let app = App::build(config).await?;
    tracing::info!(grpc = %app.grpc_addr(), http = %app.http_addr(), "notification listening");
    app.run_until_stopped(ocop_grpc_kit::shutdown::shutdown_signal())
        .await
}
