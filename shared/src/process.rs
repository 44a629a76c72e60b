//! What every Gatehouse binary does the same way: logging to stderr, and stopping on
//! SIGTERM or Ctrl-C.

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Logs to stderr (stdout is for what a binary reports), filtered by a RUST_LOG-style filter.
pub fn init_logging(filter: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            // Targets tell audit and access lines (gatehouse::audit, gatehouse::access) apart.
            .with_target(true)
            // Colour codes only for people; files and log collectors get plain text.
            .with_ansi(std::io::stderr().is_terminal())
            .init(),
        LogFormat::Json => builder.json().with_target(true).with_current_span(false).init(),
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutdown requested");
}

/// The end of every binary's `main`: run, and on failure print one line (with the causes) on
/// stderr and exit 1.
pub async fn exit_on_error<F>(binary: &str, run: F)
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    if let Err(error) = run.await {
        eprintln!("{binary}: {error:#}");
        std::process::exit(1);
    }
}
