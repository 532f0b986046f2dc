//! Every type that holds key material prints without it: a `{:?}` in a log
//! line or a panic message must never carry a key.

mod common;

use common::Plan;
use cove_shared::codec::to_hex;
use cove_shared::envelope::{self, Seal};
use cove_shared::{
    DocId, EnvelopeHash, Epoch, EpochKeys, Keyring, Kind, Recipient, Seq, SymmetricKey,
};

/// Whether `printed` shows any six bytes of `secret` in a row, as hex
/// (either case) or as a list of decimal numbers.
fn shows(printed: &str, secret: &[u8]) -> bool {
    let lower = printed.to_lowercase();
    secret.windows(6).any(|w| {
        let decimal = w.iter().map(u8::to_string).collect::<Vec<_>>().join(", ");
        lower.contains(&to_hex(w)) || printed.contains(&decimal)
    })
}

#[test]
fn key_material_never_appears_in_debug_output() {
    let plan = Plan::new(b"redaction");
    let device_secret = plan.a1.to_secret_bytes();
    let ring = Keyring::from_log(&plan.log, &plan.a1);
    let epoch_key = ring.key(Epoch::FIRST).expect("the first epoch's key").clone();
    let epoch_bytes = *epoch_key.as_bytes();
    let keys = EpochKeys::derive(plan.plan, Epoch::FIRST, &epoch_key);
    let recipient = Recipient { membership: plan.log.state(), keyring: &ring };

    let printed = [
        format!("{:?}", plan.a1),
        format!("{:#?}", plan.a1),
        format!("{epoch_key:?}"),
        format!("{keys:?}"),
        format!("{keys:#?}"),
        format!("{ring:?}"),
        format!("{ring:#?}"),
        format!("{recipient:?}"),
        format!("{recipient:#?}"),
        format!("{:?}", SymmetricKey::from_bytes([0xA7; 32])),
    ];
    for text in &printed {
        assert!(!shows(text, device_secret.as_slice()), "a device secret in {text}");
        assert!(!shows(text, &epoch_bytes), "an epoch key in {text}");
        assert!(!shows(text, &[0xA7; 32]), "a symmetric key in {text}");
    }
    // What they do print is still useful: which epochs, which device.
    assert!(printed[5].contains("epochs"), "{}", printed[5]);
    assert!(printed[0].contains("DeviceSecret"), "{}", printed[0]);

    // The checker itself finds a key that is printed.
    assert!(shows(&format!("{epoch_bytes:?}"), &epoch_bytes));
    assert!(shows(&to_hex(&epoch_bytes).to_uppercase(), &epoch_bytes));
}

#[test]
fn an_identity_prints_without_its_seed_or_keys() {
    let seed = cove_shared::IdentitySeed::from_bytes(&[0x5C; 32]);
    let identity = cove_shared::PartnerSecret::from_seed(&seed).expect("an identity");
    let keys = identity.as_signer().to_secret_bytes();
    for text in [format!("{seed:?}"), format!("{identity:?}"), format!("{identity:#?}")] {
        assert!(!shows(&text, &[0x5C; 32]), "a seed in {text}");
        assert!(!shows(&text, keys.as_slice()), "identity keys in {text}");
    }
}

#[test]
fn an_opened_envelope_prints_without_its_plaintext() {
    let mut plan = Plan::new(b"redaction-opened");
    let secret_text = b"a private note that must stay private";
    let ring = Keyring::from_log(&plan.log, &plan.a1);
    let state = plan.log.state();
    let keys = ring.keys(state.epoch()).expect("the current key");
    let request = Seal {
        kind: Kind::Changes,
        doc: DocId::Shared,
        seq: Seq(1),
        prev: EnvelopeHash::GENESIS,
        view: state.view(),
        payload: secret_text,
    };
    let sealed = envelope::seal(keys, &plan.a1, request, &mut plan.rng).expect("seal");
    let reader = Keyring::from_log(&plan.log, &plan.b1);
    let opened = envelope::open(&sealed.bytes, &Recipient { membership: state, keyring: &reader })
        .expect("open");
    let printed = format!("{opened:?} {opened:#?}");
    assert!(!shows(&printed, secret_text), "{printed}");
    assert!(!printed.contains("private note"), "{printed}");
}
