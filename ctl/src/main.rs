//! `gatehousectl`: see `gatehousectl --help`.

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = gatehouse_ctl::Cli::parse();
    if let Err(error) = gatehouse_ctl::run(cli).await {
        eprintln!("gatehousectl: {error:#}");
        std::process::exit(1);
    }
}
