//! Certificates, identities and recovery phrases: each round-trips, and no
//! changed byte or word is ever taken for the original.

use cove_shared::identity::{CERTIFICATE_LEN, IDENTITY_LEN};
use cove_shared::membership::EntryHash;
use cove_shared::phrase::{self, PhraseError};
use cove_shared::{
    Certificate, DeviceSecret, IdentitySeed, Partner, PartnerIdentity, PartnerSecret, PlanId,
};
use proptest::prelude::*;

fn identity(seed: [u8; 32]) -> PartnerSecret {
    PartnerSecret::from_seed(&IdentitySeed::from_bytes(&seed)).expect("an identity")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_certificate_round_trips_and_any_changed_byte_is_refused(
        seed in any::<[u8; 32]>(),
        device in any::<[u8; 32]>(),
        plan in any::<[u8; 16]>(),
        genesis in any::<[u8; 32]>(),
        b in any::<bool>(),
        at in 0..CERTIFICATE_LEN,
        flip in 1u8..=255,
    ) {
        let id = identity(seed);
        let device = DeviceSecret::from_secret_bytes(&[device, [7; 32]].concat().try_into().unwrap())
            .expect("a device");
        let partner = if b { Partner::B } else { Partner::A };
        let cert = id.certify(PlanId::from_bytes(plan), EntryHash(genesis), partner, device.id());
        let bytes = cert.encode();
        prop_assert_eq!(bytes.len(), CERTIFICATE_LEN);
        prop_assert_eq!(Certificate::decode(&bytes), Ok(cert.clone()));
        let mut tampered = bytes.clone();
        tampered[at] ^= flip;
        prop_assert!(Certificate::decode(&tampered).is_err(), "byte {} changed", at);
        prop_assert!(Certificate::decode(&bytes[..at]).is_err());
    }

    #[test]
    fn an_identity_round_trips_and_any_changed_byte_is_refused(
        seed in any::<[u8; 32]>(),
        at in 0..IDENTITY_LEN,
        flip in 1u8..=255,
    ) {
        let public = identity(seed).public();
        let bytes = public.encode();
        prop_assert_eq!(PartnerIdentity::decode(&bytes), Ok(public));
        let mut tampered = bytes.clone();
        tampered[at] ^= flip;
        prop_assert!(PartnerIdentity::decode(&tampered).is_err(), "byte {} changed", at);
    }

    #[test]
    fn a_phrase_round_trips_and_a_changed_word_is_named_or_caught(
        seed in any::<[u8; 32]>(),
        at in 0..phrase::PHRASE_WORDS,
        other in 0usize..2048,
    ) {
        let text = phrase::encode(&IdentitySeed::from_bytes(&seed));
        prop_assert_eq!(phrase::decode(&text).map(|s| *s.as_bytes()), Ok(seed));
        let mut words: Vec<&str> = text.split(' ').collect();
        let replacement = phrase::words()[other];
        prop_assume!(words[at] != replacement);
        words[at] = replacement;
        match phrase::decode(&words.join(" ")) {
            // The checksum catches all but 1 in 256 of changes; those decode
            // to a different seed, never the original.
            Err(error) => prop_assert_eq!(error, PhraseError::Checksum),
            Ok(decoded) => prop_assert_ne!(*decoded.as_bytes(), seed),
        }
    }
}
