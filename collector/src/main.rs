//! The `collector` binary: the command line (`cli`), and logging set up as it
//! asks (text or JSON lines on stderr, filtered by `RUST_LOG`).

use clap::Parser;
use collector::cli::{Cli, LogFormat};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        // One JSON object per line, with the request span's fields (request_id).
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
    }
    match collector::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
