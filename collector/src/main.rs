//! The `collector` binary: the command line (`cli`) merged with the
//! configuration file (`config`), and logging set up as they ask (text or
//! JSON lines on stderr, filtered by `RUST_LOG`).

use clap::{CommandFactory, FromArgMatches};
use collector::cli::{Cli, LogFormat};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let file = match &cli.config {
        Some(path) => match collector::config::load(path) {
            Ok(file) => file,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        None => collector::config::File::default(),
    };
    collector::config::apply(&mut cli, &matches, &file);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        // One JSON object per line, with the request span's fields (request_id).
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
    }
    match collector::cli::run(cli, &file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
