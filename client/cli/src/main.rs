//! `cove`: the command line, one face over the `cove-client` engine: flags,
//! one handler per command, and the words a terminal shows.
//!
//! Every command a person can get wrong ends with one sentence that says
//! what happened and what to do; read commands take `--json` for scripts.
//!
//! # Layout
//! - [`args`]: the flags, parsed by clap.
//! - [`prompt`]: the passphrase and confirmations.
//! - [`output`]: human text or JSON.
//! - [`setup`]: `init`, `pair`, `join`.
//! - [`syncing`]: `status`, `sync`, `daemon`.
//! - [`devices`]: `device list|revoke`, `leave`, `relay delete-plan`, `wipe`.
//! - [`plan_args`], [`plan`]: `plan <section> add|edit|archive|restore|list`.
//! - [`views`]: `plan show`, `now`.
//! - [`journal`]: `journal add|list`.
//! - [`reviews`]: `review show|record|confirm|cadence|list`.
//! - [`signals`]: `signal NAME`, `signals`.
//! - [`transfer`]: `export`, `import`.
//! - [`sessions`]: `session log|list|notes|archive|restore`, `debrief`.
//! - [`alarms`]: `alarms list|ack`.
//! - [`advice`]: the next step to take, after an error.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod advice;
mod alarms;
mod args;
mod daemon;
mod devices;
mod journal;
mod notify;
mod output;
mod plan;
mod plan_args;
mod prompt;
mod recovery;
mod relay_address;
mod reviews;
mod sessions;
mod setup;
mod signals;
mod syncing;
mod transfer;
mod views;

use anyhow::Context;
use args::{Cli, Command};
use clap::Parser;
use cove_client::device::Device;
use cove_client::home::Home;
use output::Printer;
use std::process::ExitCode;
use std::time::Duration;

/// Runs one command.
async fn run(cli: Cli) -> anyhow::Result<()> {
    let home = match &cli.home {
        Some(dir) => Home::at(dir),
        None => Home::from_env()
            .context("cannot tell where to keep Cove's data; set COVE_HOME to a directory")?,
    };
    let out = Printer::new(cli.json);
    match cli.command {
        Command::Init(args) => setup::init(&home, &out, args).await,
        Command::Pair(args) => setup::pair(&home, &out, args).await,
        Command::Join(args) => setup::join(&home, &out, args).await,
        Command::Recover(args) => recovery::recover(&home, &out, args).await,
        Command::Phrase(args::PhraseCommand::New { yes }) => {
            recovery::new_phrase(&home, &out, yes).await
        }
        Command::Status => syncing::status(&home, &out).await,
        Command::Sync => syncing::sync(&home, &out).await,
        Command::Alarms { command } => match command {
            None => alarms::list(&home, &out, false).await,
            Some(args::AlarmsCommand::List { history }) => alarms::list(&home, &out, history).await,
            Some(args::AlarmsCommand::Ack { ids, all }) => {
                alarms::ack(&home, &out, &ids, all).await
            }
        },
        Command::Daemon { exec, notify_content, no_desktop } => {
            let hook = notify::Hook::new(exec, notify_content, !no_desktop);
            daemon::daemon(&home, &out, hook).await
        }
        Command::Device(args::DeviceCommand::List) => devices::list(&home, &out).await,
        Command::Device(args::DeviceCommand::Name { name }) => {
            devices::name(&home, &out, &name).await
        }
        Command::Device(args::DeviceCommand::Revoke { device, yes }) => {
            devices::revoke(&home, &out, &device, yes).await
        }
        Command::Leave { yes } => devices::leave(&home, &out, yes).await,
        Command::Partner(args::PartnerCommand::Remove { yes }) => {
            devices::remove_partner(&home, &out, yes).await
        }
        Command::Relay(args::RelayCommand::Set { relay, trust }) => {
            setup::set_relay(&home, &out, &relay, &trust).await
        }
        Command::Relay(args::RelayCommand::DeletePlan { yes }) => {
            devices::delete_plan(&home, &out, yes).await
        }
        Command::Plan(command) => plan::run(&home, &out, command).await,
        Command::Now => views::now(&home, &out).await,
        Command::Review { command } => {
            reviews::run(&home, &out, command.unwrap_or(plan_args::ReviewCommand::Show)).await
        }
        Command::Signal { name, ttl_minutes } => {
            signals::send(&home, &out, &name, ttl_minutes).await
        }
        Command::Signals { command: None } => signals::list(&home, &out).await,
        Command::Signals { command: Some(command) } => signals::answer(&home, &out, command).await,
        Command::Ui { port, no_open, lock_after, no_desktop } => {
            let lock_after = (lock_after > 0).then(|| Duration::from_secs(lock_after * 60));
            let options = cove_web::Options { port, lock_after, desktop: !no_desktop };
            serve_ui(&home, &out, options, no_open).await
        }
        Command::Export(args) => transfer::export(&home, &out, args).await,
        Command::Import(args) => transfer::import(&home, &out, args).await,
        Command::Session(command) => sessions::run(&home, &out, command).await,
        Command::Debrief(args) => sessions::debrief(&home, &out, args).await,
        Command::Journal(args::JournalCommand::Add { text }) => {
            journal::add(&home, &out, &text).await
        }
        Command::Journal(args::JournalCommand::List) => journal::list(&home, &out).await,
        Command::Wipe { yes } => devices::wipe(&home, &out, yes),
    }
}

/// Unlocks the device in `home`, asking for the passphrase if needed.
pub(crate) async fn unlock(home: &Home) -> anyhow::Result<Device> {
    if !home.exists() {
        return Err(cove_client::keystore::KeystoreError::Missing.into());
    }
    let passphrase = prompt::passphrase(false)?;
    Ok(Device::open(home, &passphrase).await?)
}

/// `cove ui`: serves until Ctrl-C.
async fn serve_ui(
    home: &Home,
    out: &Printer,
    options: cove_web::Options,
    no_open: bool,
) -> anyhow::Result<()> {
    if !home.exists() {
        return Err(cove_client::keystore::KeystoreError::Missing.into());
    }
    let passphrase = prompt::passphrase(false)?;
    let running = cove_web::start_with(home, &passphrase, options).await?;
    // Wiped now, not when the page server stops.
    drop(passphrase);
    out.emit(&serde_json::json!({ "url": running.url }), || {
        format!(
            "Cove is open at {}\nThe address works once, in one browser on this computer. Stop with Ctrl-C.",
            running.url
        )
    });
    if !no_open {
        // Best effort: a desktop's default browser, opened on an owner-only
        // file that forwards to the address, never on the address itself
        // (see `Running::launcher`).
        match running.launcher() {
            Ok(page) => {
                let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
                let _ = std::process::Command::new(opener)
                    .arg(&page)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn();
            }
            Err(error) => tracing::warn!(%error, "cannot write the page that opens the browser"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    running.stop().await;
    out.say("Stopped.");
    Ok(())
}

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
    let json = cli.json;
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One sentence: what happened, and where a command helps,
            // which one to run. With --json, the same as one JSON line on
            // standard output, where a script reads.
            if json {
                let next = advice::next_step(&error);
                let value = serde_json::json!({ "error": error.to_string(), "next": next });
                output::write_out(&format!("{value}\n"));
            } else {
                eprintln!("{}", advice::message(&error));
            }
            ExitCode::FAILURE
        }
    }
}
