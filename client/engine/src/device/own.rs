//! This device's own envelopes: the outbox, and what the relay said it
//! stored, kept as unconfirmed until a fetched page shows it byte for byte.

use super::{Device, DeviceError, SENT_KEPT, SentEnvelope};
use crate::localdb::ListTable;
use crate::payload::Payload;
use cove_shared::envelope;
use cove_shared::wire::{Blob, Cursor};

impl Device {
    /// The outbox, oldest first.
    pub async fn outbox(&self) -> Result<Vec<(i64, Vec<u8>)>, DeviceError> {
        Ok(self.db.outbox().await?)
    }

    /// Records that the relay said it stored outbox entry `id` (`envelope`)
    /// under `cursor`. That is a hint, not proof: the envelope is kept as
    /// unconfirmed until a fetched page shows it (see [`Self::confirm_own`]
    /// and `sync::settle_own`), and sent again if the device reads past
    /// that position without seeing it.
    pub async fn sent(
        &mut self,
        id: i64,
        envelope: &[u8],
        cursor: Cursor,
    ) -> Result<(), DeviceError> {
        self.write(async |device, tx| {
            tx.remove_outbox(id);
            if let Ok(header) = envelope::header_of(envelope) {
                let record = SentEnvelope {
                    doc: header.doc.code(),
                    seq: header.seq.0,
                    cursor: cursor.0,
                    envelope: Blob(envelope.to_vec()),
                };
                tx.push_unconfirmed(&record)?;
            }
            device.sync.own_cursor = device.sync.own_cursor.max(cursor.0);
            Ok(())
        })
        .await
    }

    /// A fetched page showed one of this device's envelopes where `record`
    /// now says: receipts count from there.
    pub(super) fn note_shown(&mut self, record: &SentEnvelope) {
        let Ok(header) = envelope::header_of(&record.envelope.0) else { return };
        self.own.shown(header.kind, header.doc, header.seq, record.cursor);
    }

    /// This device's envelopes that no fetched page has shown yet, oldest
    /// first.
    pub async fn unconfirmed(&self) -> Result<Vec<(i64, SentEnvelope)>, DeviceError> {
        Ok(self.db.unconfirmed().await?)
    }

    /// How many of this device's envelopes no fetched page has shown yet.
    pub async fn unconfirmed_count(&self) -> Result<u64, DeviceError> {
        Ok(self.db.unconfirmed_len().await?)
    }

    /// How many envelopes are held back until what comes before them
    /// arrives.
    pub async fn held_count(&self) -> Result<u64, DeviceError> {
        Ok(self.db.count(ListTable::Pending).await?)
    }

    /// A page showed kept envelope `id` at `cursor`: it is confirmed.
    pub(crate) async fn confirm_own(
        &mut self,
        id: i64,
        mut record: SentEnvelope,
        cursor: Cursor,
    ) -> Result<(), DeviceError> {
        self.write(async |device, tx| {
            record.cursor = cursor.0;
            device.note_shown(&record);
            tx.set_sent(id, &record, true)?;
            tx.prune_confirmed(SENT_KEPT);
            Ok(())
        })
        .await
    }

    /// Kept envelope `id` was sent again, and the relay now says `cursor`;
    /// it stays unconfirmed until a page shows it.
    pub(crate) async fn sent_again(
        &mut self,
        id: i64,
        mut record: SentEnvelope,
        cursor: Cursor,
    ) -> Result<(), DeviceError> {
        self.write(async |device, tx| {
            record.cursor = cursor.0;
            tx.set_sent(id, &record, false)?;
            device.sync.own_cursor = device.sync.own_cursor.max(cursor.0);
            Ok(())
        })
        .await
    }

    /// Whether one of this device's own signal envelopes is past its time
    /// to live at `now` (Unix milliseconds); one it cannot read counts as
    /// expired.
    pub(crate) fn own_signal_expired(&self, bytes: &[u8], now: i64) -> bool {
        let policy =
            cove_shared::Recipient { membership: self.log.state(), keyring: &self.keyring };
        let Ok(opened) = envelope::open(bytes, &policy) else { return true };
        match Payload::decode(&opened.payload) {
            Some(Payload::Signal(signal)) => now > signal.expires_at,
            // An answer is worth sending again for as long as its signal
            // may still stand on the other side.
            Some(Payload::Answer(answer)) => {
                now > answer.at.saturating_add(super::signals::ANSWER_RESENT_MS)
            }
            _ => true,
        }
    }

    /// Drops kept envelope `id`: a signal past its time to live, which
    /// sending again would serve nobody.
    pub(crate) async fn forget_own(&mut self, id: i64) -> Result<(), DeviceError> {
        self.write(async |_, tx| {
            tx.remove(ListTable::Sent, id);
            Ok(())
        })
        .await
    }

    /// After the relay was seen to roll back or rewrite its log: every kept
    /// envelope it may have lost is unconfirmed again, to be checked as the
    /// log is read again. What lies at or below the relay's compaction
    /// point was replaced by a snapshot on purpose.
    pub(crate) async fn reopen_own(&mut self, compacted: u64) -> Result<(), DeviceError> {
        let rows: Vec<(i64, SentEnvelope)> = self.db.list(ListTable::Sent).await?;
        self.write(async |_, tx| {
            for (id, record) in rows.iter().filter(|(_, r)| r.cursor > compacted) {
                tx.set_sent(*id, record, false)?;
            }
            Ok(())
        })
        .await
    }

    /// Removes an outbox entry that can never be sent (it does not even
    /// parse: a local fault).
    pub(crate) async fn discard(&mut self, id: i64) -> Result<(), DeviceError> {
        self.write(async |_, tx| {
            tx.remove_outbox(id);
            Ok(())
        })
        .await
    }
}
