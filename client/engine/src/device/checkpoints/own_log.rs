//! This device's newest envelopes, for receipts and comparisons, each kept
//! in a row of its own.
//!
//! A device makes one with every edit, and a fetched page then shows it, so
//! the list changes in every transaction. Kept as one value, all of it
//! (512 records, about 23 KiB) was encoded, sealed and written twice per
//! edit; as rows, a transaction writes only the records that changed.

use super::{OWN_KEPT, OwnEnvelope};
use crate::localdb::{ListTable, LocalError, LocalTx};
use cove_shared::{DocId, EnvelopeHash, Kind, Seq};

/// The records, oldest first, with what changed since they were written.
#[derive(Debug, Default)]
pub(in crate::device) struct OwnLog {
    rows: Vec<Row>,
    /// Rows to delete at the next write.
    dropped: Vec<i64>,
}

#[derive(Debug)]
struct Row {
    /// Its row, once written.
    id: Option<i64>,
    own: OwnEnvelope,
    /// Changed since it was written.
    dirty: bool,
}

impl OwnLog {
    /// The records as stored. `legacy` holds those of a database written
    /// before they had rows of their own (inside the checkpoint book): they
    /// are moved into rows at the next write.
    pub(in crate::device) fn load(
        stored: Vec<(i64, OwnEnvelope)>,
        legacy: Vec<OwnEnvelope>,
    ) -> Self {
        let mut rows: Vec<Row> =
            stored.into_iter().map(|(id, own)| Row { id: Some(id), own, dirty: false }).collect();
        if rows.is_empty() {
            rows = legacy.into_iter().map(|own| Row { id: None, own, dirty: true }).collect();
        }
        Self { rows, dropped: Vec::new() }
    }

    /// This device sealed an envelope.
    pub(in crate::device) fn made(
        &mut self,
        kind: Kind,
        doc: DocId,
        seq: Seq,
        hash: EnvelopeHash,
        at: i64,
    ) {
        if !matches!(kind, Kind::Changes | Kind::Signal) {
            return;
        }
        let dropped = &mut self.dropped;
        self.rows.retain(|r| {
            let same = r.own.is(kind, doc, seq);
            if same {
                dropped.extend(r.id);
            }
            !same
        });
        let (kind, doc) = (kind.code(), doc.code());
        let own = OwnEnvelope { kind, doc, seq: seq.0, hash: hash.0, made_at: at, cursor: 0 };
        self.rows.push(Row { id: None, own, dirty: true });
        let excess = self.rows.len().saturating_sub(OWN_KEPT);
        self.dropped.extend(self.rows.drain(..excess).filter_map(|r| r.id));
    }

    /// An outbox envelope was sealed again, at the same position.
    pub(in crate::device) fn resealed(
        &mut self,
        kind: Kind,
        doc: DocId,
        seq: Seq,
        hash: EnvelopeHash,
    ) {
        if let Some(row) = self.row_mut(kind, doc, seq) {
            row.own.hash = hash.0;
            row.dirty = true;
        }
    }

    /// A fetched page showed one of this device's envelopes at `cursor`.
    pub(in crate::device) fn shown(&mut self, kind: Kind, doc: DocId, seq: Seq, cursor: u64) {
        if let Some(row) = self.row_mut(kind, doc, seq)
            && row.own.cursor != cursor
        {
            row.own.cursor = cursor;
            row.dirty = true;
        }
    }

    fn row_mut(&mut self, kind: Kind, doc: DocId, seq: Seq) -> Option<&mut Row> {
        self.rows.iter_mut().find(|r| r.own.is(kind, doc, seq))
    }

    /// The record of one envelope, if it is still kept.
    pub(in crate::device) fn get(&self, kind: Kind, doc: DocId, seq: Seq) -> Option<&OwnEnvelope> {
        self.iter().find(|o| o.is(kind, doc, seq))
    }

    /// Every record, oldest first.
    pub(in crate::device) fn iter(&self) -> impl Iterator<Item = &OwnEnvelope> {
        self.rows.iter().map(|r| &r.own)
    }

    /// Writes what changed since the last write. If the transaction then
    /// fails, the device reloads, and with it this list.
    pub(in crate::device) fn persist(&mut self, tx: &mut LocalTx) -> Result<(), LocalError> {
        for row in self.rows.iter_mut().filter(|r| r.dirty) {
            match row.id {
                Some(id) => tx.replace(ListTable::Own, id, &row.own)?,
                None => row.id = Some(tx.push(ListTable::Own, &row.own)?),
            }
            row.dirty = false;
        }
        for id in self.dropped.drain(..) {
            tx.remove(ListTable::Own, id);
        }
        Ok(())
    }
}

impl OwnEnvelope {
    /// Whether it is the envelope at this position of this device's streams.
    fn is(&self, kind: Kind, doc: DocId, seq: Seq) -> bool {
        self.kind == kind.code() && self.doc == doc.code() && self.seq == seq.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made(log: &mut OwnLog, seq: u64) {
        log.made(Kind::Changes, DocId::Shared, Seq(seq), EnvelopeHash([seq as u8; 32]), 0);
    }

    #[test]
    fn the_oldest_records_and_a_replaced_position_are_dropped_by_row() {
        let stored = (1..=OWN_KEPT as u64)
            .map(|seq| {
                let own = OwnEnvelope {
                    kind: Kind::Changes.code(),
                    doc: DocId::Shared.code(),
                    seq,
                    hash: [0; 32],
                    made_at: 0,
                    cursor: seq,
                };
                (seq as i64 + 100, own)
            })
            .collect();
        let mut log = OwnLog::load(stored, Vec::new());
        made(&mut log, OWN_KEPT as u64 + 1);
        assert_eq!(log.dropped, vec![101], "the oldest row goes");
        made(&mut log, 7);
        assert_eq!(log.dropped, vec![101, 107], "a position sealed again replaces its row");
        assert_eq!(log.iter().count(), OWN_KEPT);
        assert_eq!(log.rows.iter().filter(|r| r.dirty).count(), 2, "only the new records");
        log.shown(Kind::Changes, DocId::Shared, Seq(9), 9);
        assert_eq!(log.rows.iter().filter(|r| r.dirty).count(), 2, "unchanged: not written");
        log.shown(Kind::Changes, DocId::Shared, Seq(9), 900);
        assert_eq!(log.get(Kind::Changes, DocId::Shared, Seq(9)).map(|o| o.cursor), Some(900));
        assert_eq!(log.rows.iter().filter(|r| r.dirty).count(), 3);
    }

    #[test]
    fn records_from_the_older_layout_are_moved_into_rows() {
        let legacy = vec![OwnEnvelope {
            kind: Kind::Signal.code(),
            doc: DocId::Shared.code(),
            seq: 3,
            hash: [1; 32],
            made_at: 5,
            cursor: 0,
        }];
        let log = OwnLog::load(Vec::new(), legacy);
        assert!(log.rows.iter().all(|r| r.dirty && r.id.is_none()));
        assert!(log.get(Kind::Signal, DocId::Shared, Seq(3)).is_some());
    }
}
