//! Sealing the outbox again after the plan moved to a new key.
//!
//! An edit is sealed when it is made. A device that was offline while
//! another revoked a device (or rotated the key) holds edits sealed under a
//! key the removed device has; sending those bytes would let it read them.
//! So once this device learns of a new epoch, what it has not yet offered
//! the relay is opened and sealed again, at the same positions in its
//! streams, under the current key and membership view. What it has offered
//! may already be stored (a resend is then a duplicate); that is sealed
//! again only when the relay says it does not hold it (`stale_epoch`). The
//! mark of what was offered is saved before the offer, so a process that
//! stops half way and a new one that starts agree on it.

use super::{Device, DeviceError};
use cove_shared::envelope::{self, EnvelopeHash, Seal};
use cove_shared::{OsEntropy, Recipient};
use std::collections::HashMap;

impl Device {
    /// Records, durably and before any is sent, that the outbox entries up
    /// to `id` are being offered to the relay.
    pub(crate) async fn offering_upto(&mut self, id: i64) -> Result<(), DeviceError> {
        if id <= self.sync.offered_upto {
            return Ok(());
        }
        self.update(|s| s.offered_upto = id).await
    }

    /// Seals again, under the current epoch, every outbox entry sealed in
    /// an earlier one: those never offered to the relay, or all of them
    /// when `offered_too` (the relay said it holds none). An entry whose
    /// predecessor in its stream was sealed again follows it, so that each
    /// stream stays one chain. Returns how many were sealed again.
    pub(crate) async fn reseal_outbox(&mut self, offered_too: bool) -> Result<usize, DeviceError> {
        let current = self.log.state().epoch();
        let rows = self.outbox().await?;
        let offered = self.sync.offered_upto;
        let marked: Vec<bool> = rows
            .iter()
            .map(|(id, bytes)| {
                (offered_too || *id > offered)
                    && envelope::header_of(bytes).is_ok_and(|h| h.epoch < current)
            })
            .collect();
        if !marked.contains(&true) {
            return Ok(0);
        }
        self.must_sync = true;
        self.write(async |device, tx| {
            let state = device.log.state().clone();
            let keys = device.keyring.keys(current).ok_or(DeviceError::NoKey)?.clone();
            let mut renamed: HashMap<EnvelopeHash, EnvelopeHash> = HashMap::new();
            let mut count = 0;
            for ((id, bytes), stale) in rows.iter().zip(&marked) {
                let Ok(header) = envelope::header_of(bytes) else { continue };
                let prev = renamed.get(&header.prev).copied();
                if !stale && prev.is_none() {
                    continue;
                }
                let policy = Recipient { membership: &state, keyring: &device.keyring };
                let opened = envelope::open(bytes, &policy).map_err(|_| {
                    DeviceError::Invalid(
                        "an outbox envelope no longer opens with this device's keys".into(),
                    )
                })?;
                let request = Seal {
                    kind: header.kind,
                    doc: header.doc,
                    seq: header.seq,
                    prev: prev.unwrap_or(header.prev),
                    view: state.view(),
                    payload: &opened.payload,
                };
                let sealed =
                    envelope::seal(&keys, device.keystore.device(), request, &mut OsEntropy)?;
                renamed.insert(opened.hash, sealed.hash);
                tx.replace_outbox(*id, &sealed.bytes)?;
                // Receipts and checkpoints compare against the new hash.
                device.own.resealed(header.kind, header.doc, header.seq, sealed.hash);
                if device.sync.tip(header.kind, header.doc) == (header.seq, opened.hash) {
                    device.sync.set_tip(header.kind, header.doc, header.seq, sealed.hash);
                }
                count += 1;
            }
            Ok(count)
        })
        .await
    }
}
