//! What a received checkpoint says about this device's history.

use super::{Theirs, WITHHELD_AFTER};
use crate::device::{Alarm, Device};
use crate::payload::{CheckpointPayload, TipClaim};
use cove_shared::{DeviceId, DocId, Kind, Seq};

impl Device {
    /// A verified, fresh checkpoint from `from` (number `seq` of its
    /// checkpoint stream), read at relay cursor `cursor`: keeps it, then
    /// compares it with what this device holds.
    pub(in crate::device) fn take_checkpoint(
        &mut self,
        from: DeviceId,
        seq: Seq,
        cursor: u64,
        checkpoint: CheckpointPayload,
    ) {
        let now = self.now_ms();
        let mut positions =
            self.book.theirs(&from).map(|t| t.positions.clone()).unwrap_or_default();
        positions.push(cursor);
        let excess = positions.len().saturating_sub(WITHHELD_AFTER);
        positions.drain(..excess);
        let theirs = Theirs {
            device: from,
            seq: seq.0,
            made_at: checkpoint.made_at,
            received_at: now,
            read_through: checkpoint.read_through.0,
            positions,
            tips: checkpoint.tips,
        };
        if self.contradicts(&theirs.tips) {
            self.sync.raise(Alarm::Diverged { device: from }, now);
        }
        self.fetch_what_it_holds(&theirs.tips, now);
        match self.withheld_since(&theirs) {
            Some(since) => self.sync.raise(Alarm::Withheld { device: from, since }, now),
            None => self
                .sync
                .alarm_log
                .resolve(now, |a| matches!(a, Alarm::Withheld { device, .. } if *device == from)),
        }
        self.mark_seen(&theirs);
        self.book.theirs.retain(|t| t.device != from);
        self.book.theirs.push(theirs);
    }

    /// A signal of this device's is seen once a device of the other partner
    /// says its newest signal from this device is that very one. (Holding a
    /// later one proves nothing: signals are taken after a gap, so the
    /// relay may have withheld the earlier.)
    fn mark_seen(&mut self, theirs: &Theirs) {
        let me = self.id();
        let state = self.log.state();
        if state.member(&theirs.device).is_none_or(|m| m.partner == self.partner()) {
            return;
        }
        let newest = theirs.holds(me, Kind::Signal, DocId::Shared);
        for signal in self.book.signals.iter_mut().filter(|s| s.seq == newest.0) {
            signal.seen = true;
        }
    }

    /// Whether `tips` name another hash for a position this device holds:
    /// of its own streams (or a position it never sealed), or the tip of
    /// another device's stream.
    fn contradicts(&self, tips: &[TipClaim]) -> bool {
        let me = self.id();
        tips.iter().any(|claim| {
            let Some(stream) = claim.stream() else { return true };
            if claim.device == me {
                let (sealed, _) = self.sync.tip(stream.kind, stream.doc);
                return claim.tip.seq > sealed
                    || self
                        .own
                        .get(stream.kind, stream.doc, claim.tip.seq)
                        .is_some_and(|own| own.hash != claim.tip.hash.0);
            }
            self.freshness
                .tip(stream)
                .is_some_and(|mine| mine.seq == claim.tip.seq && mine.hash != claim.tip.hash)
        })
    }

    /// Changes another device holds that this one never received, although
    /// they lie before the checkpoint in the log: the relay left them out.
    /// They are missing, as after a gap, and fetched again.
    fn fetch_what_it_holds(&mut self, tips: &[TipClaim], now: i64) {
        let me = self.id();
        for claim in tips {
            let Some(stream) = claim.stream() else { continue };
            // Only streams that exist: an active device's, of a document it
            // may write.
            let writes = self.log.state().member(&stream.sender).is_some_and(|m| {
                m.is_active() && stream.doc.owner().is_none_or(|owner| owner == m.partner)
            });
            if stream.kind != Kind::Changes || stream.sender == me || !writes {
                continue;
            }
            let held = self.freshness.tip(stream).map_or(0, |t| t.seq.0);
            if claim.tip.seq.0 <= held {
                continue;
            }
            let gap = Alarm::Gap { device: stream.sender, doc: stream.doc, missing_from: held + 1 };
            self.sync.raise(gap, now);
            let from = self.sync.stream_cursor(stream).unwrap_or(0);
            self.sync.refetch_after = Some(self.sync.refetch_after.map_or(from, |r| r.min(from)));
        }
    }

    /// When this device made the oldest of its changes that `theirs` should
    /// hold by now and does not: one a page showed this device before the
    /// cursor the other device says it read through, or before each of its
    /// [`WITHHELD_AFTER`] newest checkpoints. (The first one it lacks, or,
    /// if this device no longer remembers that one, the oldest it does.)
    fn withheld_since(&self, theirs: &Theirs) -> Option<i64> {
        let me = self.id();
        DocId::ALL
            .into_iter()
            .filter_map(|doc| {
                let held = theirs.holds(me, Kind::Changes, doc);
                let next = self
                    .own
                    .iter()
                    .filter(|o| o.kind == Kind::Changes.code() && o.doc == doc.code())
                    .filter(|o| o.seq > held.0)
                    .min_by_key(|o| o.seq)?;
                let shown = next.cursor;
                let read_past = theirs.read_through >= shown;
                let checkpointed_past = theirs.positions.len() >= WITHHELD_AFTER
                    && theirs.positions.iter().all(|p| *p > shown);
                (shown > 0 && (read_past || checkpointed_past)).then_some(next.made_at)
            })
            .min()
    }
}
