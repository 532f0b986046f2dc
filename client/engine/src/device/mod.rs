//! One device: its unlocked keys, its copy of the plan, and its sync state.
//!
//! A [`Device`] is the only way plan data is read or written, and its state
//! is its own: other modules ask it to do something by name. Every write is
//! one local transaction (see [`store`]): an edit, the envelope that
//! carries it to the partner (in the outbox) and the stream position it used
//! all commit together, so a crash never loses an edit and never reuses a
//! sequence number. Two processes may share a state directory (a `cove
//! daemon` and a one-off command): each write first takes SQLite's write
//! lock and reloads what the other process wrote since.
//!
//! # Layout
//! - [`setup`]: making, joining and unlocking a device.
//! - [`edit`]: edits and signals, sealed into the outbox.
//! - [`own`]: this device's own envelopes, from the outbox until a fetched
//!   page confirms them.
//! - [`receive`]: what the device does with envelopes from the relay.
//! - [`progress`]: what the sync has reached, and the steps that move it.
//! - [`state`]: the sync state as it is stored.
//! - [`checkpoints`]: each device's signed account of what it holds;
//!   receipts, and what a relay that withholds or forks gives away.
//! - [`alarms`]: what a person should know, and what they acknowledged.
//! - [`attention`]: alarms and quarantined envelopes, as a person reads them.
//! - [`error`]: what can go wrong.
//! - [`store`]: the write discipline, loading and saving.
//! - [`members`]: the membership log: enrol, revoke, rotate.
//! - [`snapshot`]: sealed snapshots.
//! - [`signals`]: signals as a person sees them: answers, the safe word,
//!   and how far each of this partner's got.
//! - [`reminders`]: check-ins and reviews that come due, given once each.

mod alarms;
mod attention;
mod checkpoints;
mod edit;
mod error;
mod members;
mod own;
mod progress;
pub mod receive;
mod reminders;
mod reseal;
mod setup;
mod signals;
mod snapshot;
mod standing;
mod state;
mod store;

pub use alarms::{ALARM_HISTORY, Alarm, AlarmLog, AlarmRecord};
pub use attention::{AlarmNote, Attention, DeviceRow, QuarantineNote};
pub use checkpoints::{
    CHECKPOINT_EVERY_MS, CHECKPOINT_GAP_MS, Receipt, SentSignal, WITHHELD_AFTER,
};
pub use error::DeviceError;
pub use receive::{Quarantined, Received};
pub use reminders::Reminder;
pub use signals::{AnswerRecord, Board, IncomingSignal, OutgoingSignal, Progress};
pub use state::{
    CursorMark, OwnTip, ReceivedSignal, SENT_KEPT, SIGNALS_KEPT, SNAPSHOT_EVERY, SentEnvelope,
    SyncState,
};
pub use store::LOCAL_FORMAT;

use crate::documents::Documents;
use crate::home::Home;
use crate::keystore::{Keystore, PlanKeys};
use crate::localdb::LocalDb;
use cove_shared::clock::SharedClock;
use cove_shared::freshness::Freshness;
use cove_shared::{
    DeviceId, DeviceSecret, Keyring, MembershipLog, MembershipState, Partner, PlanId,
};

/// Appends `item` to a list kept to its newest `kept`.
fn push_bounded<T>(list: &mut Vec<T>, item: T, kept: usize) {
    list.push(item);
    let excess = list.len().saturating_sub(kept);
    list.drain(..excess);
}

/// An unlocked device.
pub struct Device {
    home: Home,
    keystore: Keystore,
    db: LocalDb,
    log: MembershipLog,
    keyring: Keyring,
    docs: Documents,
    sync: SyncState,
    freshness: Freshness,
    /// Others' checkpoints, and what this device sent, for comparing.
    book: checkpoints::Book,
    /// This device's newest envelopes, for receipts and comparisons.
    own: checkpoints::OwnLog,
    /// Answers to signals, and the stops that stand.
    desk: signals::Desk,
    /// The reminders given.
    reminded: reminders::Given,
    clock: SharedClock,
    /// The token of the last write this process saw; `None` forces a reload
    /// before the next write.
    generation: Option<u64>,
    /// How many membership entries are saved locally.
    log_saved: u64,
    /// The state rows as this process last wrote them.
    written: store::Written,
    /// The write under way must reach the disk before it returns (it holds
    /// an edit, or used a sequence number).
    must_sync: bool,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id())
            .field("plan", &self.plan())
            .finish_non_exhaustive()
    }
}

impl Device {
    /// This device's id.
    pub fn id(&self) -> DeviceId {
        self.keystore.device().id()
    }

    pub(crate) fn secret(&self) -> &DeviceSecret {
        self.keystore.device()
    }

    fn keys(&self) -> &PlanKeys {
        // `open`, `init` and `join` all refuse a keystore without a plan.
        self.keystore.plan.as_ref().unwrap_or_else(|| unreachable!("a device always has a plan"))
    }

    /// The plan.
    pub fn plan(&self) -> PlanId {
        self.keys().plan
    }

    /// The relay address.
    pub fn relay(&self) -> &str {
        &self.keys().relay
    }

    /// Whose device this is.
    pub fn partner(&self) -> Partner {
        self.keys().partner
    }

    /// The partner identity this device holds, if it holds one.
    pub(crate) fn identity(&self) -> Option<cove_shared::PartnerSecret> {
        self.keys().identity()
    }

    /// The seed of that identity, to hand to a new device of the same
    /// partner over a pairing channel.
    pub(crate) fn identity_seed(&self) -> Option<&[u8; 32]> {
        self.keys().identity.as_ref()
    }

    /// The recovery phrase of this device's partner, to show to them right
    /// after it was made (at `init`, at their first `join`, after a new
    /// phrase). It is kept only inside the sealed keystore.
    pub fn recovery_phrase(&self) -> Option<zeroize::Zeroizing<String>> {
        let seed = cove_shared::IdentitySeed::from_bytes(self.identity_seed()?);
        Some(cove_shared::phrase::encode(&seed))
    }

    /// The verified membership.
    pub fn membership(&self) -> &MembershipState {
        self.log.state()
    }

    /// The membership log.
    pub fn log(&self) -> &MembershipLog {
        &self.log
    }

    /// The documents.
    pub fn docs(&self) -> &Documents {
        &self.docs
    }

    /// The plan as it reads now, merged from all three documents.
    pub fn current_plan(&self) -> crate::plan::model::Plan {
        crate::plan::current(&self.docs)
    }

    /// The sync state.
    pub fn sync_state(&self) -> &SyncState {
        &self.sync
    }

    /// The state directory.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The local database.
    pub fn local(&self) -> &LocalDb {
        &self.db
    }

    /// Whether this device is still a member.
    pub fn is_active(&self) -> bool {
        self.log.state().is_active(&self.id())
    }

    /// Where this device reads the time.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Reads the time from `clock` from now on: a test's manual clock, so
    /// that nothing that depends on time needs the test to wait.
    pub fn set_clock(&mut self, clock: SharedClock) {
        self.clock = clock;
    }

    /// Now, in Unix milliseconds, by this device's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Now, in Unix seconds, by this device's clock.
    pub fn now_s(&self) -> i64 {
        self.clock.now_s()
    }

    /// How many envelopes failed verification since this device was set up.
    pub fn quarantined(&self) -> u64 {
        self.sync.quarantined_total
    }
}
