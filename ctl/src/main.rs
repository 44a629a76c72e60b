//! `gatehousectl`: see `gatehousectl --help`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = gatehouse_ctl::Cli::from_command_line();
    let failure = cli.failure_code();
    match gatehouse_ctl::run(cli).await {
        Ok(status) => status,
        Err(error) => {
            eprintln!("gatehousectl: {error:#}");
            std::process::ExitCode::from(failure)
        }
    }
}
