//! The `cove-server` binary: parses flags, sets up logging, runs the relay.

use anyhow::Context;
use clap::{Parser, Subcommand};
use cove_server::Settings;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Cove's relay: stores and forwards sealed envelopes between a couple's
/// devices. It never holds a key and never sees a plan in the clear.
///
/// Settings are read, lowest precedence first, from built-in defaults,
/// `cove-server.toml` (or --config), COVE_* environment variables, and
/// these flags. `cove-server default-config` prints every setting.
#[derive(Debug, Parser)]
#[command(name = "cove-server", version)]
struct Cli {
    /// Address to listen on [default: 127.0.0.1:2683].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Storage: sqlite://PATH (created if missing) or postgres://USER:PASSWORD@HOST/DB
    /// [default: sqlite://cove-relay.db].
    #[arg(long, value_name = "URL")]
    database: Option<String>,

    /// Settings file [default: ./cove-server.toml if present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// A public origin devices connect to, such as wss://relay.example.org;
    /// repeat for several [default: derived from --listen].
    #[arg(long = "origin", value_name = "URL")]
    origins: Vec<String>,

    /// Serve TLS with this certificate chain (PEM), so devices use wss://
    /// with no reverse proxy; needs --tls-key. Reloaded on SIGHUP and when
    /// the file changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a commented cove-server.toml with every default.
    DefaultConfig,
    /// Ask the relay at the configured listen address whether it is healthy
    /// (exit status 0 if it is), over TLS when it serves TLS: for container
    /// and service health checks.
    Health,
    /// Write a self-signed TLS certificate and key for this relay, and
    /// print the fingerprint devices pin (cove init --relay-cert-sha256).
    GenCert {
        /// A name (or address) devices reach the relay by; repeat for several.
        #[arg(long = "host", value_name = "NAME", required = true)]
        hosts: Vec<String>,
        /// Where to write cove-relay.crt and cove-relay.key.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Replace an existing certificate and key (every device that
        /// pinned the old one must then pin the new fingerprint).
        #[arg(long)]
        force: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::DefaultConfig) = cli.command {
        print!("{}", cove_server::settings::default_config());
        return Ok(());
    }
    if let Some(Command::GenCert { hosts, out, force }) = &cli.command {
        let made = cove_server::tls::generate(hosts, out, *force).map_err(anyhow::Error::msg)?;
        println!(
            "Wrote {} and {} (the key is readable by its owner only).",
            made.cert.display(),
            made.key.display()
        );
        println!(
            "Serve it with: cove-server --tls-cert {} --tls-key {}",
            made.cert.display(),
            made.key.display()
        );
        println!("Devices pin it with: --relay-cert-sha256 {}", made.fingerprint);
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut settings =
        Settings::load(cli.config.as_deref(), std::env::vars()).context("cannot load settings")?;
    if let Some(listen) = cli.listen {
        settings.listen = listen;
    }
    if let Some(database) = cli.database {
        settings.database = database;
    }
    if !cli.origins.is_empty() {
        settings.origins = cli.origins;
    }
    if let (Some(cert), Some(key)) = (cli.tls_cert, cli.tls_key) {
        settings.tls_cert = Some(cert);
        settings.tls_key = Some(key);
    }
    if let Some(Command::Health) = cli.command {
        cove_server::probe::health(settings.listen, settings.tls_cert.as_deref())
            .map_err(anyhow::Error::msg)?;
        println!("healthy");
        return Ok(());
    }
    cove_server::launch(settings).await
}
