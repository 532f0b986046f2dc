//! What the sync has reached on this device, and the named steps that move
//! it: the sync engine (`crate::sync`) reads and moves progress only
//! through these, each one local transaction.

use super::{Alarm, CursorMark, Device, DeviceError};
use cove_shared::wire::Cursor;

impl Device {
    /// Every envelope up to this relay cursor has been handled.
    pub fn cursor(&self) -> Cursor {
        Cursor(self.sync.cursor)
    }

    /// The highest cursor the relay has reported.
    pub fn relay_head(&self) -> Cursor {
        Cursor(self.sync.relay_head)
    }

    /// What this device read at its cursor, to check that the relay still
    /// holds the same envelope there.
    pub(crate) fn cursor_probe(&self) -> Option<CursorMark> {
        self.sync.cursor_mark.clone().filter(|m| m.cursor == self.sync.cursor && m.cursor > 0)
    }

    /// Whether the relay is known to have the plan's genesis.
    pub(crate) fn is_registered(&self) -> bool {
        self.sync.registered
    }

    /// The relay has the plan's genesis.
    pub(crate) async fn mark_registered(&mut self) -> Result<(), DeviceError> {
        self.update(|s| s.registered = true).await
    }

    /// The relay served a membership log of `served` entries: one shorter
    /// than it served before is a rollback, and raises an alarm.
    pub(crate) async fn note_relay_membership(&mut self, served: u64) -> Result<(), DeviceError> {
        let now = self.now_ms();
        // Only what this device verified counts as seen: entries it refused
        // (forged, say) must not make an honest log look shorter later.
        let verified = served.min(self.log.state().len());
        self.update(|s| {
            s.registered = true;
            if served < s.relay_membership {
                s.raise(Alarm::MembershipRollback { seen: s.relay_membership, served }, now);
            }
            s.relay_membership = s.relay_membership.max(verified);
        })
        .await
    }

    /// A page said the relay's head and compaction point.
    pub(crate) async fn note_relay_page(
        &mut self,
        head: Cursor,
        compacted: Cursor,
    ) -> Result<(), DeviceError> {
        self.update(|s| {
            s.relay_head = head.0;
            s.relay_compacted = compacted.0;
        })
        .await
    }

    /// The relay rolled back or rewrote its log (`alarm` says which): read
    /// it again from the start. Nothing applied is undone; what comes back
    /// is recognised as already applied.
    pub(crate) async fn read_again(
        &mut self,
        alarm: Alarm,
        head: Cursor,
    ) -> Result<(), DeviceError> {
        let now = self.now_ms();
        self.update(|s| {
            s.raise(alarm, now);
            s.cursor = 0;
            s.cursor_mark = None;
            s.relay_head = head.0;
        })
        .await
    }

    /// Where to fetch again after a gap, once: taken, so that the next pass
    /// does not fetch it again unless a new gap is seen.
    pub(crate) async fn take_refetch(&mut self) -> Result<Option<Cursor>, DeviceError> {
        if self.sync.refetch_after.is_none() {
            return Ok(None);
        }
        self.update(|s| s.refetch_after.take().map(Cursor)).await
    }

    /// Fetches again from `from` at the next pass (or from earlier, if a
    /// gap already asks for that).
    pub(crate) async fn refetch_from(&mut self, from: Cursor) -> Result<(), DeviceError> {
        self.update(|s| s.refetch_after = Some(s.refetch_after.map_or(from.0, |r| r.min(from.0))))
            .await
    }

    /// A sync pass finished.
    pub(crate) async fn finish_sync(&mut self) -> Result<(), DeviceError> {
        let now = self.now_s();
        self.update(|s| s.last_sync = Some(now)).await
    }
}
