//! A plan with two partners, built through the real membership log.

#![allow(dead_code, unreachable_pub)]

use cove_shared::envelope::{self, Seal, Sealed};
use cove_shared::random::SeededEntropy;
use cove_shared::{
    DeviceSecret, DocId, EnvelopeHash, IdentitySeed, Keyring, Kind, MembershipLog, Partner,
    PartnerSecret, PlanId, Recipient, Seq, SymmetricKey,
};

pub struct Plan {
    pub rng: SeededEntropy,
    pub plan: PlanId,
    /// Partner A's first device, the creator.
    pub a1: DeviceSecret,
    /// Partner B's first device.
    pub b1: DeviceSecret,
    pub log: MembershipLog,
}

/// A second handle on a device's secret, for tests that need to lend the
/// fixture's devices while it is borrowed mutably.
pub fn copy(device: &DeviceSecret) -> DeviceSecret {
    DeviceSecret::from_secret_bytes(&device.to_secret_bytes()).unwrap()
}

/// A partner identity from the test's entropy.
pub fn identity(rng: &mut SeededEntropy) -> PartnerSecret {
    PartnerSecret::from_seed(&IdentitySeed::random(rng)).unwrap()
}

impl Plan {
    pub fn new(seed: &[u8]) -> Self {
        let mut rng = SeededEntropy::new(seed);
        let a1 = DeviceSecret::generate(&mut rng);
        let b1 = DeviceSecret::generate(&mut rng);
        let plan = PlanId::random(&mut rng);
        let key = SymmetricKey::random(&mut rng);
        let genesis =
            MembershipLog::genesis(plan, &a1, &identity(&mut rng), &key, &mut rng).unwrap();
        let mut log = MembershipLog::from_genesis(genesis).unwrap();
        let ring = Keyring::from_log(&log, &a1);
        let idb = identity(&mut rng);
        let cert = idb.certify(plan, log.state().genesis(), Partner::B, b1.id());
        let add = log
            .add_device(
                &a1,
                Partner::B,
                &b1.bundle(),
                &idb.public(),
                &cert,
                |e| ring.key(e),
                &mut rng,
            )
            .unwrap();
        log.append(add).unwrap();
        Self { rng, plan, a1, b1, log }
    }

    pub fn ring(&self, device: &DeviceSecret) -> Keyring {
        Keyring::from_log(&self.log, device)
    }

    /// Seals with the sender's view of the current log and its epoch's key.
    pub fn seal(
        &mut self,
        sender: &DeviceSecret,
        kind: Kind,
        doc: DocId,
        seq: u64,
        payload: &[u8],
    ) -> Sealed {
        self.seal_after(sender, kind, doc, seq, EnvelopeHash::GENESIS, payload)
    }

    /// As `seal`, continuing a chain.
    pub fn seal_after(
        &mut self,
        sender: &DeviceSecret,
        kind: Kind,
        doc: DocId,
        seq: u64,
        prev: EnvelopeHash,
        payload: &[u8],
    ) -> Sealed {
        let ring = self.ring(sender);
        let state = self.log.state();
        let keys = ring.keys(state.epoch()).unwrap();
        let request = Seal { kind, doc, seq: Seq(seq), prev, view: state.view(), payload };
        envelope::seal(keys, sender, request, &mut self.rng).unwrap()
    }

    /// Opens as `receiver`, with the current membership.
    pub fn open(
        &self,
        receiver: &DeviceSecret,
        bytes: &[u8],
    ) -> Result<Vec<u8>, cove_shared::IntegrityError> {
        let ring = self.ring(receiver);
        let policy = Recipient { membership: self.log.state(), keyring: &ring };
        envelope::open(bytes, &policy).map(|o| o.payload.to_vec())
    }
}
