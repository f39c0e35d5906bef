//! `ocop-loadgen`: a shopper population for an ocop-market platform. See README.md.

mod broker;
mod catalogue;
mod check;
mod cli;
mod drive;
mod follow;
mod mix;
mod probe;
mod report;
mod run;
mod shop;
mod tracker;

fn main() {
    let cli = cli::Cli::parse_args();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ocop-loadgen: start the runtime: {err}");
            std::process::exit(2);
        }
    };
    let code = match runtime.block_on(run::run(cli)) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(err) => {
            eprintln!("ocop-loadgen: {err:#}");
            2
        }
    };
    // Exit without waiting for the Kafka clients to close: the report is out.
    std::process::exit(code);
}
