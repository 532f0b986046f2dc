//! Starting a document from a snapshot the relay served, instead of
//! replaying its history.

use super::super::{Alarm, Device, DeviceError};
use crate::payload::{Payload, SnapshotPayload};
use cove_shared::envelope::{self, Header};
use cove_shared::freshness::Verdict;
use cove_shared::wire::{Cursor, StoredSnapshot};
use cove_shared::{DeviceId, DocId, Kind, Recipient, Stream};

impl Device {
    /// Starts a document from a snapshot the relay served: checks it, loads
    /// it, and starts each of the document's streams where it says. Returns
    /// the cursor it covers, or `None` if it does not check out (the device
    /// then replays the document's history instead).
    pub async fn start_from_snapshot(
        &mut self,
        doc: DocId,
        stored: &StoredSnapshot,
    ) -> Result<Option<Cursor>, DeviceError> {
        self.write(async |device, tx| {
            let used = device.use_snapshot(doc, stored);
            if used.is_none() {
                let now = device.now_ms();
                device.sync.raise(Alarm::BadSnapshot { doc }, now);
                return Ok(None);
            }
            tx.put_doc(doc, &device.docs.save(doc))?;
            device.docs.mark_saved(doc);
            Ok(used)
        })
        .await
    }

    /// The checks, and loading: `None` if the snapshot is not usable.
    fn use_snapshot(&mut self, doc: DocId, stored: &StoredSnapshot) -> Option<Cursor> {
        let policy = Recipient { membership: self.log.state(), keyring: &self.keyring };
        let opened = envelope::open(&stored.envelope.0, &policy).ok()?;
        let header: Header = opened.header;
        let SnapshotPayload { covers, coverage, document } = match Payload::decode(&opened.payload)
        {
            Some(Payload::Snapshot(p))
                if header.kind == Kind::Snapshot
                    && header.doc == doc
                    && p.covers == stored.covers =>
            {
                p
            }
            _ => return None,
        };
        // Not older than a snapshot of this sender already used, and not
        // claiming less of any stream than this device has already seen.
        match self.freshness.classify(&header, opened.hash) {
            Verdict::New | Verdict::NewAfterGap { .. } | Verdict::Gap { .. } => {}
            Verdict::Duplicate => return Some(covers),
            Verdict::Rollback { .. } | Verdict::Fork => return None,
        }
        if self.freshness.check_not_behind(doc, &coverage).is_err() {
            return None;
        }
        // Every change in it must be by a device allowed to write `doc`.
        let state = self.log.state();
        let allowed = |author: &DeviceId| {
            state.member(author).is_some_and(|m| doc.owner().is_none_or(|owner| m.partner == owner))
        };
        // Every envelope carries at least one change: a snapshot that
        // claims more envelopes from a device than it holds changes from
        // it would make this device drop that device's next ones as
        // duplicates. (A removed device's stream is closed: a claim for it
        // hides nothing still to come, and may count positions its refused
        // envelopes used up.)
        let claimed = coverage
            .iter()
            .filter(|(d, _)| state.is_active(d))
            .map(|(d, t)| (*d, t.seq.0))
            .collect();
        if self.docs.merge_checked(doc, &document.0, allowed, &claimed).is_err() {
            return None;
        }
        for (sender, tip) in coverage {
            if sender == self.id() || state.member(&sender).is_none() {
                continue;
            }
            self.freshness.seed(Stream { sender, kind: Kind::Changes, doc }, tip);
        }
        self.freshness.record(&header, opened.hash);
        self.sync.snapshot_covers[usize::from(doc.code())] = covers.0;
        Some(covers)
    }
}
