//! The `cove` command line: flags, and one handler per command.
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

pub mod alarms;
pub mod args;
pub mod devices;
pub mod journal;
pub mod output;
pub mod plan;
pub mod plan_args;
pub mod prompt;
pub mod reviews;
pub mod sessions;
pub mod setup;
pub mod signals;
pub mod syncing;
pub mod transfer;
pub mod views;

use crate::device::Device;
use crate::home::Home;
use anyhow::Context;
pub use args::{Cli, Command};
use output::Printer;

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
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
        Command::Status => syncing::status(&home, &out).await,
        Command::Sync => syncing::sync(&home, &out).await,
        Command::Alarms { command } => match command {
            None => alarms::list(&home, &out, false).await,
            Some(args::AlarmsCommand::List { history }) => alarms::list(&home, &out, history).await,
            Some(args::AlarmsCommand::Ack { ids, all }) => {
                alarms::ack(&home, &out, &ids, all).await
            }
        },
        Command::Daemon => syncing::daemon(&home, &out).await,
        Command::Device(args::DeviceCommand::List) => devices::list(&home, &out).await,
        Command::Device(args::DeviceCommand::Revoke { device, yes }) => {
            devices::revoke(&home, &out, &device, yes).await
        }
        Command::Leave { yes } => devices::leave(&home, &out, yes).await,
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
        Command::Signals => signals::list(&home, &out).await,
        Command::Ui { port, no_open } => serve_ui(&home, &out, port, no_open).await,
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
        return Err(crate::keystore::KeystoreError::Missing.into());
    }
    let passphrase = prompt::passphrase(false)?;
    Ok(Device::open(home, &passphrase).await?)
}

/// `cove ui`: serves until Ctrl-C.
async fn serve_ui(home: &Home, out: &Printer, port: u16, no_open: bool) -> anyhow::Result<()> {
    if !home.exists() {
        return Err(crate::keystore::KeystoreError::Missing.into());
    }
    let passphrase = prompt::passphrase(false)?;
    let running = crate::ui::start(home, &passphrase, port).await?;
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
