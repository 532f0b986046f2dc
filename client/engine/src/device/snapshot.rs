//! Snapshots: a sealed copy of one document, so that a new device loads it
//! instead of replaying history, and the relay can drop what it covers.

use super::{Device, DeviceError, SNAPSHOT_EVERY};
use crate::payload::{Payload, SnapshotPayload};
use cove_shared::freshness::StreamTip;
use cove_shared::wire::{Blob, Cursor};
use cove_shared::{DocId, Kind};
use std::collections::BTreeMap;

impl Device {
    /// A sealed snapshot of `doc` covering everything up to the current
    /// cursor, if one is due and this device may make it. Everything the
    /// snapshot claims to cover must be in it: so nothing may wait in the
    /// outbox (this device's own changes would be newer than the cursor),
    /// nothing may be held back or missing (the relay would drop what the
    /// snapshot claims, and later devices would never see it), and the
    /// relay must have been seen to store everything this device sent.
    pub(crate) async fn snapshot_if_due(
        &mut self,
        doc: DocId,
    ) -> Result<Option<(Cursor, Vec<u8>)>, DeviceError> {
        let due = self.sync.since_snapshot[usize::from(doc.code())] >= SNAPSHOT_EVERY;
        // Not while edits are held back, nor while an active device's
        // stream holds a position without changes: receivers would refuse
        // its claim for that stream as more than the snapshot holds.
        if !due || !self.may_write(doc) || self.must_hold_back() || self.has_hollow_stream(doc) {
            return Ok(None);
        }
        self.write(async |device, tx| {
            let complete = tx.outbox_len() == 0
                && tx.unconfirmed() == 0
                && tx.pending() == 0
                && device.sync.refetch_after.is_none()
                && device.sync.unsealed.is_empty()
                && device.sync.own_cursor <= device.sync.cursor;
            if !complete {
                return Ok(None);
            }
            let mut coverage = BTreeMap::new();
            for (stream, tip) in device.freshness.tips() {
                if stream.kind == Kind::Changes && stream.doc == doc {
                    coverage.insert(stream.sender, tip);
                }
            }
            let (seq, hash) = device.sync.tip(Kind::Changes, doc);
            if seq.0 > 0 {
                coverage.insert(device.id(), StreamTip { seq, hash });
            }
            let covers = Cursor(device.sync.cursor);
            let payload = Payload::Snapshot(SnapshotPayload {
                covers,
                coverage,
                document: Blob(device.docs.save(doc)),
            });
            let sealed = device.seal_next(Kind::Snapshot, doc, &payload.encode())?;
            device.sync.since_snapshot[usize::from(doc.code())] = 0;
            Ok(Some((covers, sealed.bytes)))
        })
        .await
    }

    /// Test hook: seals a snapshot of `doc` as this device would, covering
    /// `covers`, after `alter` has changed its content: what a modified
    /// client of a member device could produce. Nothing is stored.
    #[cfg(feature = "test-hooks")]
    pub async fn seal_snapshot_altered(
        &mut self,
        doc: DocId,
        covers: Cursor,
        alter: impl FnOnce(&mut SnapshotPayload),
    ) -> Result<Vec<u8>, DeviceError> {
        self.write(async |device, _| {
            let mut coverage = BTreeMap::new();
            for (stream, tip) in device.freshness.tips() {
                if stream.kind == Kind::Changes && stream.doc == doc {
                    coverage.insert(stream.sender, tip);
                }
            }
            let mut payload =
                SnapshotPayload { covers, coverage, document: Blob(device.docs.save(doc)) };
            alter(&mut payload);
            let payload = Payload::Snapshot(payload);
            Ok(device.seal_next(Kind::Snapshot, doc, &payload.encode())?.bytes)
        })
        .await
    }
}
