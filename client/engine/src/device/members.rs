//! The membership log on a device: taking entries from the relay, and
//! making the entries that enrol, revoke and rotate.

use super::{Alarm, Device, DeviceError};
use cove_shared::freshness::StreamTip;
use cove_shared::membership::{Appended, Cutoff, Entry, MembershipError};
use cove_shared::{
    Certificate, DeviceBundle, DeviceId, DocId, IdentitySeed, Kind, OsEntropy, Partner,
    PartnerIdentity, PartnerSecret, Stream, SymmetricKey,
};

impl Device {
    /// Appends membership entries from the relay, after checking each.
    /// Returns how many were new. Picks up new epoch keys, and notices when
    /// this device has been revoked. An entry that forks from this device's
    /// log, or breaks its rules, is refused (with everything after it) and
    /// raises an alarm.
    pub async fn apply_membership(&mut self, entries: &[Vec<u8>]) -> Result<usize, DeviceError> {
        let outcome = self
            .write(async |device, _| {
                let was_active: Vec<DeviceId> =
                    device.log.state().active().map(|m| m.device).collect();
                let had_left = device.log.state().has_left(device.partner().other());
                let mut added = 0;
                for bytes in entries {
                    let appended = Entry::decode(bytes)
                        .map_err(MembershipError::from)
                        .and_then(|entry| device.log.append(entry));
                    match appended {
                        Ok(Appended::New) => added += 1,
                        Ok(Appended::Duplicate) => {}
                        Err(error) => {
                            // Keep what was valid before it, and say so.
                            let alarm = match &error {
                                MembershipError::Fork { .. } | MembershipError::WrongPlan => {
                                    Alarm::MembershipFork
                                }
                                other => Alarm::RefusedEntry { reason: other.to_string() },
                            };
                            device.sync.raise(alarm, device.clock.now_ms());
                            device.after_membership_change(&was_active, had_left)?;
                            return Ok(Err(error));
                        }
                    }
                }
                if added > 0 {
                    device.after_membership_change(&was_active, had_left)?;
                }
                Ok(Ok(added))
            })
            .await?;
        Ok(outcome?)
    }

    fn after_membership_change(
        &mut self,
        was_active: &[DeviceId],
        had_left: bool,
    ) -> Result<(), DeviceError> {
        self.rebuild_keyring()?;
        self.forget_replaced_identity()?;
        if !self.is_active() {
            self.sync.raise(Alarm::Revoked, self.clock.now_ms());
        }
        let other = self.partner().other();
        let by = self.log.state().identity(other).and_then(|i| i.ended.as_ref()).map(|e| e.by);
        // Told to the partner who did not do it themselves on this device.
        if !had_left && self.log.state().has_left(other) && by != Some(self.id()) {
            let removed =
                by.and_then(|by| self.log.state().member(&by)).is_some_and(|m| m.partner != other);
            let name = self.current_plan().name(other);
            self.sync.raise(Alarm::PartnerLeft { name, removed }, self.clock.now_ms());
        }
        self.check_cutoffs(was_active);
        Ok(())
    }

    /// For devices revoked just now: says so if this device had already
    /// applied changes from them past the cutoff the revocation pinned.
    /// Those stay here; devices that had not received them never will.
    fn check_cutoffs(&mut self, was_active: &[DeviceId]) {
        let now = self.now_ms();
        for device in was_active {
            if *device == self.id() {
                continue;
            }
            let Some(revocation) = self.log.state().member(device).and_then(|m| m.revoked.clone())
            else {
                continue;
            };
            for doc in DocId::ALL {
                let stream = Stream { sender: *device, kind: Kind::Changes, doc };
                let cutoff = revocation.cutoff(doc);
                let past = self.freshness.tip(stream).is_some_and(|tip| {
                    tip.seq > cutoff.seq || (tip.seq == cutoff.seq && tip.hash != cutoff.hash)
                });
                if past {
                    self.sync.raise(Alarm::PastCutoff { device: *device, doc }, now);
                }
            }
        }
    }

    /// Appends an entry this device made (after the relay accepted it).
    pub(crate) async fn append_own_entry(&mut self, entry: Entry) -> Result<(), DeviceError> {
        self.apply_membership(&[entry.encode().to_vec()]).await.map(|_| ())
    }

    /// An entry that revokes `device`: its changes are accepted up to what
    /// this device has applied, and the remaining devices get a new key. A
    /// device revoking itself leaves instead (no new key).
    pub fn revocation(&self, device: DeviceId) -> Result<Entry, DeviceError> {
        let cutoffs: Vec<Cutoff> = DocId::ALL
            .into_iter()
            .filter_map(|doc| {
                let stream = Stream { sender: device, kind: Kind::Changes, doc };
                let tip = if device == self.id() {
                    let (seq, hash) = self.sync.tip(Kind::Changes, doc);
                    (seq.0 > 0).then_some(StreamTip { seq, hash })
                } else {
                    self.freshness.tip(stream)
                };
                tip.map(|t| Cutoff { doc, seq: t.seq, hash: t.hash })
            })
            .collect();
        if device == self.id() {
            return Ok(self.log.leave(self.keystore.device(), cutoffs)?);
        }
        let key = SymmetricKey::random(&mut OsEntropy);
        Ok(self.log.revoke(self.keystore.device(), device, cutoffs, &key, &mut OsEntropy)?)
    }

    /// An entry that enrols `bundle` as a device of `partner`, as the
    /// partner's `identity` certified, with every epoch key wrapped for it.
    pub fn enrolment(
        &self,
        partner: Partner,
        bundle: &DeviceBundle,
        identity: &PartnerIdentity,
        certificate: &Certificate,
    ) -> Result<Entry, DeviceError> {
        let ring = &self.keyring;
        Ok(self.log.add_device(
            self.keystore.device(),
            partner,
            bundle,
            identity,
            certificate,
            |e| ring.key(e),
            &mut OsEntropy,
        )?)
    }

    /// An entry that gives this device's partner the identity `new` (a new
    /// recovery phrase); the old identity stops speaking for them.
    pub fn identity_rotation(&self, new: &PartnerSecret) -> Result<Entry, DeviceError> {
        let ring = &self.keyring;
        Ok(self.log.rotate_identity(
            self.keystore.device(),
            self.partner(),
            new,
            |e| ring.key(e),
            &mut OsEntropy,
        )?)
    }

    /// Keeps `seed` as this partner's identity, once the log pins it.
    pub(crate) fn adopt_identity(&mut self, seed: &IdentitySeed) -> Result<(), DeviceError> {
        let key = PartnerSecret::from_seed(seed).map(|s| s.key());
        let pinned = self.log.state().live_identity(self.partner()).map(|i| i.key);
        if key.is_none() || key != pinned {
            return Err(DeviceError::Invalid("the plan does not list this identity".into()));
        }
        if let Some(plan) = self.keystore.plan.as_mut() {
            plan.identity = Some(*seed.as_bytes());
        }
        Ok(self.keystore.save(&self.home.keystore())?)
    }

    /// Drops an identity the log no longer pins (another device of this
    /// partner made a new phrase): keeping it would offer a phrase that
    /// recovers nothing.
    fn forget_replaced_identity(&mut self) -> Result<(), DeviceError> {
        let live = self.log.state().live_identity(self.partner()).map(|i| i.key);
        let held = self.identity().map(|i| i.key());
        if held.is_some() && held != live {
            if let Some(plan) = self.keystore.plan.as_mut() {
                plan.identity = None;
            }
            self.keystore.save(&self.home.keystore())?;
        }
        Ok(())
    }

    /// An entry that retires `partner`'s identity: they leave the plan (from
    /// one of their own devices), or are removed from it (by the other
    /// partner, once none of their devices remains).
    pub fn retirement(&self, partner: Partner) -> Result<Entry, DeviceError> {
        Ok(self.log.retire(self.keystore.device(), partner)?)
    }

    /// An entry that moves every active device to a new key.
    pub fn rotation(&self) -> Result<Entry, DeviceError> {
        let key = SymmetricKey::random(&mut OsEntropy);
        Ok(self.log.rotate(self.keystore.device(), &key, &mut OsEntropy)?)
    }
}
