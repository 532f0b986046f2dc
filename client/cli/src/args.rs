//! The command line's flags.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Cove keeps a couple's shared aftercare plan on each partner's device,
/// encrypted, and syncs it through a relay the couple runs themselves.
///
/// The passphrase that unlocks this device is read from COVE_PASSPHRASE if
/// set, and asked for otherwise. Data lives in COVE_HOME (or --home).
#[derive(Debug, Parser)]
#[command(name = "cove", version)]
pub(crate) struct Cli {
    /// The state directory [default: $COVE_HOME, else the platform's data
    /// directory followed by /cove].
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Make this device and start a new plan on a relay.
    Init(InitArgs),
    /// Invite a device: your partner's first device, or another of yours.
    Pair(PairArgs),
    /// Join a plan with the code another device shows.
    Join(JoinArgs),
    /// Make a new device of yours from your recovery phrase, when every
    /// device is lost or the passphrase forgotten.
    Recover(RecoverArgs),
    /// Your recovery phrase: replace it with a new one.
    #[command(subcommand)]
    Phrase(PhraseCommand),
    /// Show the relay, the last sync with each device, alarms and quarantine.
    Status,
    /// Alarms and envelopes that failed verification: list them, or
    /// acknowledge them.
    Alarms {
        /// What to do [default: list].
        #[command(subcommand)]
        command: Option<AlarmsCommand>,
    },
    /// Send local changes, receive the partner's, and exit.
    Sync,
    /// Stay connected and apply changes as they arrive; tell of signals,
    /// answers and reminders (check-ins and reviews that come due).
    Daemon {
        /// Run this command (with `sh -c`) for each signal, answer and
        /// reminder; it gets COVE_EVENT and COVE_TEXT in its environment.
        #[arg(long, value_name = "CMD")]
        exec: Option<String>,
        /// Put the plan's own words in notifications and COVE_TEXT; without
        /// this, they say only what kind of event it is ("Cove: a check-in
        /// is due").
        #[arg(long)]
        notify_content: bool,
        /// No desktop notifications (by default each event raises one,
        /// where there is a desktop session bus).
        #[arg(long)]
        no_desktop: bool,
    },
    /// List or revoke devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Your partner's part in the plan.
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Remove all of your devices from the plan.
    Leave {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Act on the relay's copy of the plan.
    #[command(subcommand)]
    Relay(RelayCommand),
    /// The aftercare plan: show it, or change a section of it.
    #[command(subcommand)]
    Plan(crate::plan_args::PlanCommand),
    /// Right now: the sequence, each partner's picks and the signals.
    Now,
    /// The session log: record a session, list them, see whose turn it is.
    #[command(subcommand)]
    Session(crate::plan_args::SessionCommand),
    /// Answer the check-in questions for a session, in your own document;
    /// without an answer, show both partners' answers.
    Debrief(crate::plan_args::DebriefArgs),
    /// Reviews: what changed since the last one, recording one, confirming.
    Review {
        /// What to do [default: show].
        #[command(subcommand)]
        command: Option<crate::plan_args::ReviewCommand>,
    },
    /// Send a signal to your partner now: stop (the safe word: stop
    /// everything), pause, space, check-on-me, all-clear (lifts your stop),
    /// or the name of a signal you agreed on (`cove plan signal list`).
    Signal {
        /// The signal.
        name: String,
        /// How long it stays current, in minutes; after that it is dropped
        /// everywhere.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=1440))]
        ttl_minutes: i64,
    },
    /// Your partner's current signals, and yours with how far each got;
    /// `ack` or `dismiss` answers your partner's.
    Signals {
        /// What to do [default: list].
        #[command(subcommand)]
        command: Option<SignalsCommand>,
    },
    /// Write the plan out: Markdown to print, complete JSON, or the raw
    /// Automerge documents. The output is not encrypted.
    Export(ExportArgs),
    /// Start a new plan from a JSON export (or, on a device that already
    /// has a plan, bring in your own part of one).
    Import(ImportArgs),
    /// Open the plan as a web page on this computer (127.0.0.1 only), kept
    /// in sync live.
    Ui {
        /// The port to serve on [default: any free port].
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Print the address without opening a browser.
        #[arg(long)]
        no_open: bool,
        /// Lock the page after this many minutes without use (0: never;
        /// not on a computer others use).
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(0..=1440))]
        lock_after: u64,
        /// No desktop notifications (by default a partner's signal, an
        /// answer and a reminder each raise a discreet one).
        #[arg(long)]
        no_desktop: bool,
    },
    /// Private notes kept on this device only; never sent anywhere.
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Remove everything Cove keeps on this device.
    Wipe {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// `cove alarms`.
#[derive(Debug, Subcommand)]
pub(crate) enum AlarmsCommand {
    /// What needs attention now.
    List {
        /// Also the alarms acknowledged, or ended, before.
        #[arg(long)]
        history: bool,
    },
    /// Acknowledge alarms by number, or everything at once.
    Ack {
        /// The alarms' numbers, as `cove alarms` shows them.
        ids: Vec<u64>,
        /// Every open alarm, and every quarantined envelope so far.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

/// `cove init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The relay's address, such as wss://relay.example.org or (on this
    /// machine) ws://127.0.0.1:2683.
    #[arg(long, value_name = "URL")]
    pub(crate) relay: String,
    #[command(flatten)]
    pub(crate) trust: crate::relay_address::TrustArgs,
    /// Your name, as your partner will see it in the plan.
    #[arg(long)]
    pub(crate) name: String,
    /// This device's name, as device lists and messages show it [default:
    /// the computer's host name].
    #[arg(long, value_name = "NAME")]
    pub(crate) device: Option<String>,
    /// Seed the plan from a template, for the two of you to personalise.
    #[arg(long, value_parser = cove_client::plan::template::TEMPLATES)]
    pub(crate) template: Option<String>,
}

/// What `cove export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// A printable plan.
    Md,
    /// Everything, in the documented JSON format.
    Json,
    /// The three Automerge documents, as saved.
    Automerge,
}

/// `cove export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The format.
    #[arg(long, value_enum)]
    pub(crate) format: ExportFormat,
    /// Where to write: a file (md, json; default standard output) or a
    /// directory (automerge; required).
    #[arg(long, value_name = "PATH")]
    pub(crate) output: Option<PathBuf>,
}

/// `cove signals ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum SignalsCommand {
    /// Acknowledge your partner's current signals (a stop among them): they
    /// see that you took them in.
    Ack,
    /// Dismiss your partner's current signals: they see that you did.
    Dismiss,
}

/// `cove import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// A JSON export (`cove export --format json`), or the directory
    /// `cove export --format automerge` wrote.
    pub(crate) file: PathBuf,
    /// For a new plan: the relay's address.
    #[arg(long, value_name = "URL")]
    pub(crate) relay: Option<String>,
    /// For a new plan: your name, as your partner will see it.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Which partner of the export you are: your needs, boundaries and
    /// preferences come from that part [default: a for a new plan, else
    /// your own letter].
    #[arg(long = "as", value_enum)]
    pub(crate) part: Option<Letter>,
}

/// A partner, as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Letter {
    /// Partner A (who made the plan).
    A,
    /// Partner B (who joined it).
    B,
}

impl Letter {
    /// The partner.
    pub(crate) fn partner(self) -> cove_shared::Partner {
        match self {
            Self::A => cove_shared::Partner::A,
            Self::B => cove_shared::Partner::B,
        }
    }
}

/// `cove pair`.
#[derive(Debug, Args)]
pub(crate) struct PairArgs {
    /// Add another device of yours instead of your partner's first device.
    #[arg(long)]
    pub(crate) own_device: bool,
    /// Add the device without asking whether the safety codes match (for
    /// scripts that compare them some other way).
    #[arg(long)]
    pub(crate) yes: bool,
}

/// `cove recover`.
#[derive(Debug, Args)]
pub(crate) struct RecoverArgs {
    /// The relay's address, as for `cove join`.
    pub(crate) relay: String,
    #[command(flatten)]
    pub(crate) trust: crate::relay_address::TrustArgs,
    /// Your name, shown if your own part of the plan has to be made anew.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// This device's name [default: the computer's host name].
    #[arg(long, value_name = "NAME")]
    pub(crate) device: Option<String>,
}

/// `cove partner`.
#[derive(Debug, Subcommand)]
pub(crate) enum PartnerCommand {
    /// Remove your partner from the plan: revoke all of their devices, and
    /// end their recovery phrase's access (uncoupling).
    Remove {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// `cove phrase`.
#[derive(Debug, Subcommand)]
pub(crate) enum PhraseCommand {
    /// Replace your recovery phrase (if it may have been seen by someone
    /// else). The old one stops working.
    New {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// `cove join`.
#[derive(Debug, Args)]
pub(crate) struct JoinArgs {
    /// The relay's address (wss://HOST, or ws://127.0.0.1:PORT on this
    /// machine), or the whole text of the QR code (cove-join:CODE@URL).
    pub(crate) relay: String,
    #[command(flatten)]
    pub(crate) trust: crate::relay_address::TrustArgs,
    /// The code the other device shows, such as 482913-lantern-river.
    pub(crate) code: Option<String>,
    /// Your name, as your partner will see it. When adding another device of
    /// your own, where you already have a name, it names this device
    /// instead (unless --device does).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// This device's name, as device lists and messages show it [default:
    /// the computer's host name].
    #[arg(long, value_name = "NAME")]
    pub(crate) device: Option<String>,
}

/// `cove device`.
#[derive(Debug, Subcommand)]
pub(crate) enum DeviceCommand {
    /// List the plan's devices.
    List,
    /// Name this device, as device lists and messages show it.
    Name {
        /// The name, such as "Sam's phone".
        name: String,
    },
    /// Remove a device from the plan: it can read nothing written afterwards.
    Revoke {
        /// The device's fingerprint (as `cove device list` shows it), or its id.
        device: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// `cove journal`.
#[derive(Debug, Subcommand)]
pub(crate) enum JournalCommand {
    /// Write an entry.
    Add {
        /// The note, or - to read it from standard input (so that it stays
        /// out of the shell's history).
        text: String,
    },
    /// Show every entry, oldest first.
    List,
}

/// `cove relay`.
#[derive(Debug, Subcommand)]
pub(crate) enum RelayCommand {
    /// Reach the same relay another way: a new address, or the certificate
    /// it serves after a renewal (pin the new fingerprint).
    Set {
        /// The relay's address, such as wss://relay.example.org.
        relay: String,
        #[command(flatten)]
        trust: crate::relay_address::TrustArgs,
    },
    /// Delete the plan and all of its data from the relay.
    DeletePlan {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}
