use clap::Parser as _;
use ocop_partner_example::{Config, run};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config::parse();
    let stop = CancellationToken::new();
    let stopping = stop.clone();
    tokio::spawn(async move {
        // Ctrl-C, or SIGTERM from a container runtime: finish the record in hand, stop.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        stopping.cancel();
    });
    run(config, stop).await
}
