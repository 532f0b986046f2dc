//! The golden vectors in `tests/vectors/` decode and verify, and the code
//! still produces them byte for byte. A failure here means the wire format
//! changed: every deployed device and relay would stop understanding it.

use cove_shared::codec::{from_hex, from_hex_vec, to_hex};
use cove_shared::envelope::{self, HEADER_LEN, NONCE_LEN};
use cove_shared::kdf::Purpose;
use cove_shared::wire::{self, ClientToRelay, Nonce32, RelayToClient, Signature64};
use cove_shared::{
    DeviceBundle, DeviceId, DeviceSecret, EnvelopeHash, Epoch, EpochKeys, KeyWrap, Keyring,
    MembershipLog, PlanId, Recipient, SymmetricKey,
};
use cove_tests::vectors::{
    self, AuthVector, DeviceVector, EnvelopeVector, EpochVector, IdentitiesVector,
    MembershipVector, PairingVector, RejectionVector, WireVector, WrapVector,
};
use serde::de::DeserializeOwned;
use x25519_dalek::{PublicKey, StaticSecret};

fn load<T: DeserializeOwned>(name: &str) -> T {
    let path = vectors::dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn hex(s: &str) -> Vec<u8> {
    from_hex_vec(s).unwrap()
}

struct Files {
    devices: Vec<DeviceVector>,
    epochs: Vec<EpochVector>,
    envelopes: Vec<EnvelopeVector>,
    wraps: Vec<WrapVector>,
    membership: MembershipVector,
    wire: Vec<WireVector>,
    auth: AuthVector,
    identities: IdentitiesVector,
    rejections: Vec<RejectionVector>,
    membership_more: MembershipVector,
    pairing: PairingVector,
}

fn files() -> Files {
    Files {
        devices: load("devices.json"),
        epochs: load("epochs.json"),
        envelopes: load("envelopes.json"),
        wraps: load("wraps.json"),
        membership: load("membership.json"),
        wire: load("wire.json"),
        auth: load("auth.json"),
        identities: load("identities.json"),
        rejections: load("rejections.json"),
        membership_more: load("membership-more.json"),
        pairing: load("pairing.json"),
    }
}

impl Files {
    fn secret(&self, name: &str) -> DeviceSecret {
        let d = self.devices.iter().find(|d| d.name == name).unwrap();
        DeviceSecret::from_secret_bytes(&from_hex::<64>(&d.secret).unwrap()).unwrap()
    }
}

#[test]
fn the_code_still_produces_the_vectors_byte_for_byte() {
    let built = vectors::build();
    let f = files();
    assert_eq!(built.devices, f.devices, "devices.json");
    assert_eq!(built.epochs, f.epochs, "epochs.json");
    assert_eq!(built.envelopes, f.envelopes, "envelopes.json");
    assert_eq!(built.wraps, f.wraps, "wraps.json");
    assert_eq!(built.membership, f.membership, "membership.json");
    assert_eq!(built.auth, f.auth, "auth.json");
    assert_eq!(built.pairing, f.pairing, "pairing.json");
    // The `message` text is for people; the frame is the format.
    let frames = |w: &[WireVector]| {
        w.iter().map(|v| (v.direction.clone(), v.frame.clone())).collect::<Vec<_>>()
    };
    assert_eq!(frames(&built.wire), frames(&f.wire), "wire.json");
}

/// The pairing keys, derived again here from section 11's formulas alone
/// (HKDF and SHA-256, not the pairing code), match the vector.
#[test]
fn the_pairing_keys_follow_from_the_spake2_output_as_written() {
    use hkdf::Hkdf;
    use sha2::{Digest, Sha256};
    let p = files().pairing;
    let transcript: [u8; 32] =
        Sha256::new().chain_update(hex(&p.msg_a)).chain_update(hex(&p.msg_b)).finalize().into();
    assert_eq!(to_hex(&transcript), p.transcript);
    let salt = [b"cove/v1/pair".as_slice(), p.nameplate.as_bytes()].concat();
    let (prk, hkdf) = Hkdf::<Sha256>::extract(Some(&salt), &hex(&p.shared_key));
    assert_eq!(to_hex(&prk), p.prk);
    let expand = |label: &str, n: usize| {
        let mut out = vec![0u8; n];
        hkdf.expand(&[label.as_bytes(), &transcript].concat(), &mut out).unwrap();
        out
    };
    assert_eq!(to_hex(&expand("cove/v1/pair/confirm-inviter", 32)), p.confirm_inviter);
    assert_eq!(to_hex(&expand("cove/v1/pair/confirm-joiner", 32)), p.confirm_joiner);
    assert_eq!(to_hex(&expand("cove/v1/pair/seal-inviter", 32)), p.seal_inviter);
    assert_eq!(to_hex(&expand("cove/v1/pair/seal-joiner", 32)), p.seal_joiner);
    let four: [u8; 4] = expand("cove/v1/pair/safety", 4).try_into().unwrap();
    assert_eq!(format!("{:06}", u32::from_be_bytes(four) % 1_000_000), p.safety_code);
    let msg_b = hex(&p.msg_b);
    let bundle = files().secret(&p.joiner).bundle().encode();
    let commitment: [u8; 32] = Sha256::new()
        .chain_update(b"cove/v1/pair/commit")
        .chain_update((msg_b.len() as u32).to_be_bytes())
        .chain_update(&msg_b)
        .chain_update(&bundle)
        .finalize()
        .into();
    assert_eq!(to_hex(&commitment), p.commitment);
    // The code is the nameplate and two words of the list.
    let words: Vec<&str> = p.code.split('-').collect();
    assert_eq!(words[0], p.nameplate);
    assert!(words[1..].iter().all(|w| p.word_list.iter().any(|l| l == w)));
    assert_eq!(p.word_list.len(), 256);
}

#[test]
fn devices_and_bundles_decode_from_their_secrets() {
    let f = files();
    for d in &f.devices {
        let secret = f.secret(&d.name);
        assert_eq!(to_hex(secret.id().as_bytes()), d.device_id);
        assert_eq!(to_hex(&secret.exchange_public()), d.exchange_public);
        assert_eq!(secret.id().fingerprint(), d.fingerprint);
        let bundle = DeviceBundle::decode(&hex(&d.bundle)).unwrap();
        assert_eq!(bundle.device, secret.id());
        assert_eq!(bundle.exchange, secret.exchange_public());
    }
}

#[test]
fn epoch_subkeys_follow_from_the_epoch_key() {
    for e in files().epochs {
        let plan: PlanId = e.plan.parse().unwrap();
        let keys = EpochKeys::derive(
            plan,
            Epoch(e.epoch),
            &SymmetricKey::from_bytes(from_hex(&e.epoch_key).unwrap()),
        );
        assert_eq!(to_hex(&keys.key_id().0), e.key_id);
        assert_eq!(to_hex(keys.subkey(Purpose::Changes).as_bytes()), e.changes_key);
        assert_eq!(to_hex(keys.subkey(Purpose::Snapshot).as_bytes()), e.snapshot_key);
        assert_eq!(to_hex(keys.subkey(Purpose::Signal).as_bytes()), e.signal_key);
        assert_eq!(to_hex(keys.subkey(Purpose::Checkpoint).as_bytes()), e.checkpoint_key);
    }
}

fn membership(f: &Files) -> MembershipLog {
    let entries: Vec<Vec<u8>> = f.membership.entries.iter().map(|e| hex(e)).collect();
    MembershipLog::decode(entries.iter().map(Vec::as_slice), None).unwrap()
}

/// A chain verifies from its first entry to the state its vector records.
fn check_chain(f: &Files, v: &MembershipVector) -> MembershipLog {
    let entries: Vec<Vec<u8>> = v.entries.iter().map(|e| hex(e)).collect();
    let log = MembershipLog::decode(entries.iter().map(Vec::as_slice), None).unwrap();
    let state = log.state();
    assert_eq!(state.plan().to_string(), v.plan);
    assert_eq!(state.epoch(), Epoch(v.epoch));
    let hashes: Vec<String> = log.entries().iter().map(|e| to_hex(&e.hash().0)).collect();
    assert_eq!(hashes, v.hashes);
    let name_of = |id: DeviceId| {
        f.devices.iter().find(|d| d.device_id == to_hex(id.as_bytes())).unwrap().name.clone()
    };
    let active: Vec<(String, String)> =
        state.active().map(|m| (name_of(m.device), m.partner.to_string())).collect();
    assert_eq!(active, v.active);
    for (i, e) in log.entries().iter().enumerate().skip(1) {
        assert_eq!(e.prev(), log.entries()[i - 1].hash(), "entry {i} chains to {}", i - 1);
    }
    assert_eq!(v.story.len(), v.entries.len());
    log
}

#[test]
fn the_membership_chain_verifies_to_the_recorded_state() {
    let f = files();
    check_chain(&f, &f.membership);
}

#[test]
fn the_second_chain_leaves_rotates_and_revokes_as_recorded() {
    let f = files();
    let log = check_chain(&f, &f.membership_more);
    let state = log.state();
    let alex2 = f.secret("device-alex-2").id();
    let left = state.member(&alex2).unwrap().revoked.clone().unwrap();
    assert_eq!((left.by, left.cutoffs.len()), (alex2, 2), "it left, naming two cutoffs");
    assert!(!state.rotation_due(), "the rotation that the leave made due is there");
    let blair = f.secret("device-blair").id();
    assert!(state.member(&blair).unwrap().revoked.as_ref().unwrap().cutoffs.is_empty());
}

/// The vector plan's keyring: every epoch key of `epochs.json`.
fn keyring(f: &Files, log: &MembershipLog) -> Keyring {
    let mut ring = Keyring::new(log.state().plan());
    for e in &f.epochs {
        ring.insert(Epoch(e.epoch), SymmetricKey::from_bytes(from_hex(&e.epoch_key).unwrap()));
    }
    ring
}

#[test]
fn envelopes_open_with_the_recorded_keys() {
    let f = files();
    let log = membership(&f);
    let ring = keyring(&f, &log);
    let policy = Recipient { membership: log.state(), keyring: &ring };
    for v in &f.envelopes {
        let bytes = hex(&v.envelope);
        let opened =
            envelope::open(&bytes, &policy).unwrap_or_else(|_| panic!("{} does not open", v.name));
        assert_eq!(to_hex(&opened.payload), v.payload, "{}", v.name);
        assert_eq!(to_hex(&opened.hash.0), v.hash);
        let h = opened.header;
        assert_eq!(
            (h.kind.code(), h.doc.code(), h.epoch.0, h.seq.0),
            (v.kind, v.doc, v.epoch, v.seq)
        );
        assert_eq!(h.prev, EnvelopeHash(from_hex(&v.prev).unwrap()));
        assert_eq!((h.view.len, to_hex(&h.view.head.0)), (v.view_len, v.view_head.clone()));
        assert_eq!(log.state().epoch_at(h.view), Some(h.epoch));

        assert_eq!(h.sender, f.secret(&v.sender).id());
        assert_eq!(to_hex(&bytes[HEADER_LEN..HEADER_LEN + NONCE_LEN]), v.nonce);
    }
    // Each stream chains on its own: the first names zeros, each later one
    // the hash of the same stream's envelope before it.
    for v in &f.envelopes {
        let before = f.envelopes.iter().find(|w| {
            (w.sender.as_str(), w.kind, w.doc, w.seq + 1)
                == (v.sender.as_str(), v.kind, v.doc, v.seq)
        });
        match before {
            Some(w) => assert_eq!(v.prev, w.hash, "{}", v.name),
            None => {
                assert_eq!(v.seq, 1, "{}: its predecessor is among the vectors", v.name);
                assert_eq!(v.prev, to_hex(&[0; 32]), "{}", v.name);
            }
        }
    }
}

/// The checkpoint vector's payload is a section 10 value, byte for byte,
/// naming the `changes` stream it holds by the hash of its second envelope.
#[test]
fn the_checkpoint_vector_holds_what_it_says() {
    use cove_client::payload::Payload;
    use cove_shared::Kind;
    let f = files();
    let checkpoint = f.envelopes.iter().find(|v| v.kind == Kind::Checkpoint.code()).unwrap();
    let Some(Payload::Checkpoint(payload)) = Payload::decode(&hex(&checkpoint.payload)) else {
        panic!("not a checkpoint payload");
    };
    assert_eq!(Payload::Checkpoint(payload.clone()).encode(), hex(&checkpoint.payload));
    assert_eq!((payload.made_at, payload.read_through.0), (1_796_342_400_000, 7));
    let second = f
        .envelopes
        .iter()
        .find(|v| v.kind == Kind::Changes.code() && v.doc == 2 && v.seq == 2)
        .unwrap();
    let [tip] = payload.tips.as_slice() else { panic!("one tip") };
    assert_eq!(tip.device, f.secret(&second.sender).id());
    assert_eq!((tip.kind, tip.doc, tip.tip.seq.0), (second.kind, second.doc, second.seq));
    assert_eq!(to_hex(&tip.tip.hash.0), second.hash);
}

#[test]
fn the_key_wrap_unwraps_for_its_recipient() {
    let f = files();
    for w in &f.wraps {
        let wrap = KeyWrap::decode(&hex(&w.wrap)).unwrap();
        let recipient = f.secret(&w.recipient);
        assert_eq!(to_hex(wrap.unwrap(&recipient).unwrap().as_bytes()), w.key);
        assert_eq!(wrap.wrapper(), f.secret(&w.wrapper).id());
        assert_eq!((wrap.plan().to_string(), wrap.epoch().0), (w.plan.clone(), w.epoch));
        let ephemeral = StaticSecret::from(from_hex::<32>(&w.ephemeral_secret).unwrap());
        assert_eq!(&wrap.encode()[89..121], PublicKey::from(&ephemeral).as_bytes());
        assert_eq!(to_hex(&wrap.encode()[121..145]), w.nonce);
    }
}

#[test]
fn every_wire_frame_decodes_and_re_encodes_identically() {
    let f = files();
    let (mut client, mut relay) = (0u8, 0u8);
    for v in &f.wire {
        let frame = hex(&v.frame);
        let again = match v.direction.as_str() {
            "client-to-relay" => {
                assert_eq!(frame[0], client, "variants appear in order");
                client += 1;
                wire::encode(&wire::decode::<ClientToRelay>(&frame).unwrap()).unwrap()
            }
            "relay-to-client" => {
                // One of each variant in order, then other shapes of some.
                if relay < 16 {
                    assert_eq!(frame[0], relay, "variants appear in order");
                }
                relay += 1;
                wire::encode(&wire::decode::<RelayToClient>(&frame).unwrap()).unwrap()
            }
            other => panic!("unknown direction {other}"),
        };
        assert_eq!(again, frame, "{}", v.message);
    }
    assert_eq!((client, relay), (17, 18), "one sample of every message, and two more shapes");
    let shapes: Vec<&str> = f.wire.iter().rev().take(2).map(|v| v.message.as_str()).collect();
    assert!(shapes[0].starts_with("Error { request: None"), "{shapes:?}");
    assert!(shapes[1].contains("snapshot: None"), "{shapes:?}");
}

#[test]
fn the_auth_signature_verifies_for_its_origin_only() {
    let f = files();
    let a = &f.auth;
    let device = f.secret(&a.device).id();
    let nonce = Nonce32(from_hex(&a.nonce).unwrap());
    let signature = Signature64(from_hex(&a.signature).unwrap());
    assert_eq!(to_hex(&wire::auth_message(&a.origin, &nonce, &device).unwrap()), a.message);
    assert!(wire::verify_challenge(&a.origin, &nonce, &device, &signature));
    assert!(!wire::verify_challenge("wss://other.example", &nonce, &device, &signature));
    let mut other_nonce = nonce;
    other_nonce.0[0] ^= 1;
    assert!(!wire::verify_challenge(&a.origin, &other_nonce, &device, &signature));
}

/// The wire sample's `Authenticate` answers its `Challenge`.
#[test]
fn the_wire_samples_authenticate_answers_the_challenge() {
    let f = files();
    let decode = |direction: &str, starts: &str| {
        let v = f
            .wire
            .iter()
            .find(|v| v.direction == direction && v.message.starts_with(starts))
            .unwrap();
        hex(&v.frame)
    };
    let Ok(RelayToClient::Challenge { origin, nonce, .. }) =
        wire::decode::<RelayToClient>(&decode("relay-to-client", "Challenge"))
    else {
        panic!("no challenge");
    };
    let Ok(ClientToRelay::Authenticate { device, signature }) =
        wire::decode::<ClientToRelay>(&decode("client-to-relay", "Authenticate"))
    else {
        panic!("no authenticate");
    };
    assert_eq!(device, f.secret("device-alex").id());
    assert!(wire::verify_challenge(&origin, &nonce, &device, &signature));
}

/// Every envelope's payload is the section 10 value its kind says: changes
/// made by the sender's actor, a snapshot whose document loads and whose
/// coverage names a real envelope, a signal, a checkpoint.
#[test]
fn envelope_payloads_are_section_10_values() {
    use cove_client::payload::Payload;
    use cove_shared::Kind;
    let f = files();
    for v in &f.envelopes {
        let payload = Payload::decode(&hex(&v.payload)).unwrap_or_else(|| panic!("{}", v.name));
        let sender = f.secret(&v.sender).id();
        match (Kind::from_code(v.kind).unwrap(), payload) {
            (Kind::Changes, Payload::Changes(raw)) => {
                let raw: Vec<Vec<u8>> = raw.into_iter().map(|b| b.0).collect();
                assert!(!raw.is_empty(), "{}", v.name);
                cove_client::documents::decode_changes(&raw, &sender)
                    .unwrap_or_else(|e| panic!("{}: {e}", v.name));
            }
            (Kind::Snapshot, Payload::Snapshot(s)) => {
                automerge::Automerge::load(&s.document.0).unwrap();
                let (device, tip) = s.coverage.iter().next().unwrap();
                let covered = f
                    .envelopes
                    .iter()
                    .find(|e| {
                        (e.kind, e.doc, e.seq) == (1, v.doc, tip.seq.0)
                            && f.secret(&e.sender).id() == *device
                    })
                    .unwrap();
                assert_eq!(to_hex(&tip.hash.0), covered.hash);
            }
            (Kind::Signal, Payload::Signal(s)) => assert_eq!(s.signal, "pause"),
            (Kind::Checkpoint, Payload::Checkpoint(_)) => {}
            (kind, _) => panic!("{}: not a {kind:?} payload", v.name),
        }
    }
}

/// Identities derive from their seeds as documented (HKDF-SHA256, computed
/// here with the `hkdf` crate directly), phrases encode the seeds, and
/// certificates and the recovery proof verify with the recorded keys.
#[test]
fn identities_certificates_and_the_recovery_proof_verify() {
    use cove_shared::{Certificate, PartnerIdentity};
    let f = files();
    let id = &f.identities;
    for v in &id.identities {
        let seed = hex(&v.seed);
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"cove/v1/identity"), &seed);
        let mut secret = [0u8; 64];
        hk.expand(b"cove/v1/identity/sign", &mut secret[..32]).unwrap();
        hk.expand(b"cove/v1/identity/exchange", &mut secret[32..]).unwrap();
        let keys = DeviceSecret::from_secret_bytes(&secret).unwrap();
        assert_eq!(to_hex(keys.id().as_bytes()), v.key, "{}", v.name);
        assert_eq!(to_hex(&keys.exchange_public()), v.exchange_public, "{}", v.name);
        let public = PartnerIdentity::decode(&hex(&v.identity)).unwrap();
        assert_eq!(to_hex(public.key.as_bytes()), v.key);
        let decoded = cove_shared::phrase::decode(&v.phrase).unwrap();
        assert_eq!(to_hex(decoded.as_bytes()), v.seed);
    }
    let key_of = |name: &str| id.identities.iter().find(|i| i.name == name).unwrap().key.clone();
    let device_of =
        |name: &str| f.devices.iter().find(|d| d.name == name).unwrap().device_id.clone();
    for c in &id.certificates {
        let cert = Certificate::decode(&hex(&c.certificate)).unwrap();
        assert_eq!(to_hex(cert.identity.as_bytes()), key_of(&c.identity));
        assert_eq!(to_hex(cert.device.as_bytes()), device_of(&c.device));
        assert_eq!(cert.partner.to_string(), c.partner);
        assert_eq!(to_hex(&cert.genesis.0), c.genesis);
        let mut tampered = hex(&c.certificate);
        tampered[40] ^= 1;
        assert!(Certificate::decode(&tampered).is_err());
    }
    let identity = DeviceId::from_bytes(from_hex(&key_of(&id.recovery_identity)).unwrap()).unwrap();
    let device = DeviceId::from_bytes(from_hex(&device_of(&id.recovery_device)).unwrap()).unwrap();
    assert_eq!(to_hex(&cove_shared::identity::recovery_message(&device)), id.recovery_message);
    let proof = from_hex::<64>(&id.recovery_proof).unwrap();
    assert!(cove_shared::identity::verify_recovery_proof(&identity, &device, &proof));
    assert!(!cove_shared::identity::verify_recovery_proof(&device, &device, &proof));
}

/// The entry that enrols a device for partner B with partner A's
/// identity's certificate is refused after the recorded chain.
#[test]
fn a_device_certified_by_the_wrong_partner_is_refused() {
    let f = files();
    let mut log = membership(&f);
    let entry = cove_shared::Entry::decode(&hex(&f.identities.rejected_entry)).unwrap();
    let refused = log.append(entry).unwrap_err();
    assert_eq!(refused.to_string(), f.identities.rejected_because);
    assert_eq!(log.entries().len(), f.membership.entries.len());
}

/// Every rejection vector is refused by the check it names; the envelope
/// each envelope case was made from opens, so nothing else refuses it.
#[test]
fn every_rejection_vector_is_refused() {
    let f = files();
    let log = membership(&f);
    let ring = keyring(&f, &log);
    let policy = Recipient { membership: log.state(), keyring: &ring };
    assert!(envelope::open(&hex(&f.envelopes[0].envelope), &policy).is_ok());
    let formats: Vec<&str> = f.rejections.iter().map(|r| r.format.as_str()).collect();
    assert!(formats.contains(&"envelope") && formats.contains(&"bundle"));
    for r in &f.rejections {
        let bytes = hex(&r.bytes);
        let refused = match r.format.as_str() {
            "envelope" => envelope::open(&bytes, &policy).is_err(),
            "bundle" => DeviceBundle::decode(&bytes).is_err(),
            other => panic!("unknown format {other}"),
        };
        assert!(refused, "{} was accepted ({})", r.name, r.check);
    }
    // The bundle is refused for its key alone: its signature is valid.
    let bundle = f.rejections.iter().find(|r| r.format == "bundle").unwrap();
    let bytes = hex(&bundle.bytes);
    let device = DeviceId::from_bytes(bytes[5..37].try_into().unwrap()).unwrap();
    let signature: [u8; 64] = bytes[69..].try_into().unwrap();
    assert!(cove_shared::keys::verify_signature(&device, &bytes[..69], &signature));
}
