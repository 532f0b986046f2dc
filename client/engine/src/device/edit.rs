//! Edits and signals: each change is sealed into the outbox in the same
//! local transaction that makes it.

use super::{Device, DeviceError, SentSignal};
use crate::localdb::LocalTx;
use crate::payload::{Payload, SignalPayload};
use automerge::ChangeHash;
use automerge::transaction::Transaction;
use cove_shared::envelope::{self, Seal, Sealed};
use cove_shared::wire::Blob;
use cove_shared::{DocId, Kind, OsEntropy, Partner};

impl Device {
    fn require_writable(&self, doc: DocId) -> Result<(), DeviceError> {
        if !self.is_active() {
            return Err(DeviceError::Revoked);
        }
        match doc.owner() {
            Some(owner) if owner != self.partner() => Err(self.not_yours(owner)),
            _ => Ok(()),
        }
    }

    /// Whether this device may change `doc` now.
    pub(crate) fn may_write(&self, doc: DocId) -> bool {
        self.require_writable(doc).is_ok()
    }

    /// The refusal to change what is `owner`'s.
    pub fn not_yours(&self, owner: Partner) -> DeviceError {
        let name = self.current_plan().name(owner);
        DeviceError::NotYours { partner: owner, name }
    }

    /// Seals the next envelope of this device's (`kind`, `doc`) stream,
    /// with the current epoch's key and this device's membership view.
    pub(super) fn seal_next(
        &mut self,
        kind: Kind,
        doc: DocId,
        payload: &[u8],
    ) -> Result<Sealed, DeviceError> {
        if self.sync.sealing_stopped {
            return Err(DeviceError::StateBehind);
        }
        self.must_sync = true;
        let state = self.log.state();
        let keys = self.keyring.keys(state.epoch()).ok_or(DeviceError::NoKey)?;
        let (seq, prev) = self.sync.tip(kind, doc);
        let seq = seq.next().ok_or(DeviceError::NoKey)?;
        let request = Seal { kind, doc, seq, prev, view: state.view(), payload };
        let sealed = envelope::seal(keys, self.keystore.device(), request, &mut OsEntropy)?;
        self.sync.set_tip(kind, doc, seq, sealed.hash);
        self.own.made(kind, doc, seq, sealed.hash, self.clock.now_ms());
        Ok(sealed)
    }

    /// Runs `edit` as one transaction on `doc`, and puts the changes it made
    /// in the outbox, in one local commit.
    ///
    /// While a key rotation is due (a device left, and no remaining device
    /// has moved the plan to a new key yet), the change is kept on this
    /// device but not sealed: the departed device still holds the current
    /// key. It is sealed under the new key once the rotation is done. The
    /// same holds while the relay withholds part of the list of devices
    /// that others signed against (see [`Self::log_withheld`]).
    pub async fn edit<T>(
        &mut self,
        doc: DocId,
        edit: impl FnOnce(&mut Transaction<'_>) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        self.require_writable(doc)?;
        self.write(async |device, tx| {
            let before = device.docs.heads(doc);
            let (value, changes) = device.docs.edit(doc, device.now_ms(), edit)?;
            if changes.is_empty() {
                return Ok(value);
            }
            // A person's edit must survive a power cut, sealed or not.
            device.must_sync = true;
            device.sync.since_snapshot[usize::from(doc.code())] += changes.len() as u64;
            // Behind edits already held back, so that changes go out in order.
            let behind = device.sync.unsealed.iter().any(|(d, _)| *d == doc.code());
            if device.must_hold_back() || behind {
                if !device.sync.unsealed.iter().any(|(d, _)| *d == doc.code()) {
                    let heads = before.iter().map(|h| h.0).collect();
                    device.sync.unsealed.push((doc.code(), heads));
                }
            } else {
                device.seal_changes(tx, doc, &changes).await?;
            }
            device.store_doc(tx, doc).await?;
            Ok(value)
        })
        .await
    }

    /// Seals `changes` of `doc` into as many envelopes as they need, into
    /// the outbox.
    async fn seal_changes(
        &mut self,
        tx: &mut LocalTx,
        doc: DocId,
        changes: &[automerge::Change],
    ) -> Result<(), DeviceError> {
        for chunk in chunks(changes.iter().map(|c| c.raw_bytes().to_vec()).collect()) {
            let sealed = self.seal_next(Kind::Changes, doc, &Payload::Changes(chunk).encode())?;
            tx.push_outbox(&sealed.bytes)?;
        }
        Ok(())
    }

    /// Test hook: seals `changes` to `doc` exactly as an edit would, but
    /// without checking that this device may write `doc`, and without
    /// storing anything: what a modified client of a member device could
    /// produce. Receiving devices must refuse it on their own.
    #[cfg(feature = "test-hooks")]
    pub fn seal_unchecked(
        &mut self,
        doc: DocId,
        changes: &[automerge::Change],
    ) -> Result<Vec<Vec<u8>>, DeviceError> {
        chunks(changes.iter().map(|c| c.raw_bytes().to_vec()).collect())
            .into_iter()
            .map(|chunk| {
                self.seal_next(Kind::Changes, doc, &Payload::Changes(chunk).encode())
                    .map(|sealed| sealed.bytes)
            })
            .collect()
    }

    /// Seals the changes kept back while a rotation was due (see
    /// [`Self::edit`]), now that it is done.
    pub(crate) async fn seal_held_back(&mut self) -> Result<(), DeviceError> {
        if self.sync.unsealed.is_empty() || self.must_hold_back() {
            return Ok(());
        }
        self.write(async |device, tx| {
            for (code, heads) in std::mem::take(&mut device.sync.unsealed) {
                let Some(doc) = DocId::ALL.into_iter().find(|d| d.code() == code) else {
                    continue;
                };
                let heads: Vec<ChangeHash> = heads.into_iter().map(ChangeHash).collect();
                let changes = device.docs.changes_since(doc, &heads);
                device.seal_changes(tx, doc, &changes).await?;
            }
            Ok(())
        })
        .await
    }

    /// Whether this device may send a signal (or an answer to one) now.
    pub(super) fn require_signals(&self) -> Result<(), DeviceError> {
        self.require_writable(DocId::Shared)?;
        if self.log.state().rotation_due() {
            return Err(DeviceError::Invalid(
                "a device has just left the plan; sync once so that the plan moves to a new key, then send the signal".into(),
            ));
        }
        if self.log_withheld() {
            return Err(DeviceError::Invalid(
                "the relay is withholding part of the plan's list of devices, which may hold a removal; so the signal was not sent; the device's status says more".into(),
            ));
        }
        Ok(())
    }

    /// Puts a signal in the outbox and returns it, sealed, for sending at
    /// once.
    pub async fn signal(&mut self, signal: &str, ttl_ms: i64) -> Result<Vec<u8>, DeviceError> {
        self.require_signals()?;
        self.write(async |device, tx| {
            // A signal is named by its sender and `sent_at` (answers point at
            // it so): each of this device's is later than the one before,
            // even within a millisecond or after the clock stepped back.
            let last = device.book.signals.last().map_or(i64::MIN, |s| s.sent_at);
            let now = device.now_ms().max(last.saturating_add(1));
            let payload = Payload::Signal(SignalPayload {
                signal: signal.to_owned(),
                sent_at: now,
                expires_at: now + ttl_ms,
            });
            let sealed = device.seal_next(Kind::Signal, DocId::Shared, &payload.encode())?;
            tx.push_outbox(&sealed.bytes)?;
            device.book.sent_signal(SentSignal {
                seq: sealed.header.seq.0,
                signal: signal.to_owned(),
                sent_at: now,
                expires_at: now + ttl_ms,
                seen: false,
            });
            Ok(sealed.bytes)
        })
        .await
    }
}

/// Splits raw changes into payloads that each fit in one envelope.
fn chunks(changes: Vec<Vec<u8>>) -> Vec<Vec<Blob>> {
    // Leave room for postcard's framing around each change.
    let budget = cove_shared::padding::MAX_PAYLOAD_LEN - 1024;
    let mut out: Vec<Vec<Blob>> = Vec::new();
    let mut size = 0;
    for change in changes {
        let len = change.len() + 10;
        if out.is_empty() || size + len > budget {
            out.push(Vec::new());
            size = 0;
        }
        size += len;
        if let Some(last) = out.last_mut() {
            last.push(Blob(change));
        }
    }
    out
}
