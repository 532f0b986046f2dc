//! The `cove` binary: parses flags, sets up logging, runs one command.

use clap::Parser;
use cove_client::cli::{self, Cli};
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One sentence: the library's errors already say what to do.
            eprintln!("cove: {error}");
            ExitCode::FAILURE
        }
    }
}
