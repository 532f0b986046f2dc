//! Seal and open, beside the bare primitives they are built from.
//!
//! Run: `cargo bench -p cove-shared --bench envelope`
//!
//! Each size is the padded plaintext size (a bucket), so the payload is four
//! bytes less: the length prefix. The bare baseline for a size is one
//! Ed25519 sign + verify over a message of the envelope's signed length and
//! one XChaCha20-Poly1305 seal + open of that many bytes.

#![allow(missing_docs)]

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use cove_shared::envelope::{self, OVERHEAD, SIGNATURE_LEN, Seal};
use cove_shared::{
    DeviceSecret, DocId, Epoch, Keyring, Kind, MembershipLog, OsEntropy, PlanId, Recipient, Seq,
    SymmetricKey,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut rng = OsEntropy;
    let device = DeviceSecret::generate(&mut rng);
    let plan = PlanId::random(&mut rng);
    // A real plan of one device, opened as a receiving device opens it: the
    // membership state admits the sender (with the key it decompressed once,
    // at enrolment), the keyring holds the epoch's keys.
    let first = SymmetricKey::random(&mut rng);
    let identity =
        cove_shared::PartnerSecret::from_seed(&cove_shared::IdentitySeed::random(&mut rng))
            .unwrap();
    let genesis = MembershipLog::genesis(plan, &device, &identity, &first, &mut rng).unwrap();
    let log = MembershipLog::from_genesis(genesis).unwrap();
    let keyring = Keyring::from_log(&log, &device);
    let keys = keyring.keys(Epoch(1)).unwrap().clone();
    let policy = Recipient { membership: log.state(), keyring: &keyring };
    let signing = SigningKey::from_bytes(&[3; 32]);
    let verifying = signing.verifying_key();
    let cipher = XChaCha20Poly1305::new(&[5u8; 32].into());

    let mut group = c.benchmark_group("envelope");
    for padded in [256usize, 4096, 65536] {
        let payload = vec![0x5a; padded - 4];
        let request = Seal {
            kind: Kind::Changes,
            doc: DocId::Shared,
            seq: Seq(1),
            prev: cove_shared::EnvelopeHash::GENESIS,
            view: log.state().view(),
            payload: &payload,
        };
        let sealed = envelope::seal(&keys, &device, request, &mut rng).unwrap();
        assert_eq!(sealed.bytes.len(), padded + OVERHEAD);
        group.throughput(Throughput::Bytes(padded as u64));

        group.bench_with_input(BenchmarkId::new("seal", padded), &padded, |b, _| {
            b.iter(|| envelope::seal(&keys, &device, black_box(request), &mut rng).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("open", padded), &padded, |b, _| {
            b.iter(|| envelope::open(black_box(&sealed.bytes), &policy).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("seal+open", padded), &padded, |b, _| {
            b.iter(|| {
                let s = envelope::seal(&keys, &device, black_box(request), &mut rng).unwrap();
                envelope::open(&s.bytes, &policy).unwrap()
            })
        });

        let signed_len = sealed.bytes.len() - SIGNATURE_LEN;
        let message = vec![0xa5u8; signed_len];
        let plain = vec![0x5au8; padded];
        let nonce = XNonce::from([7u8; 24]);
        group.bench_with_input(BenchmarkId::new("bare-primitives", padded), &padded, |b, _| {
            b.iter(|| {
                let signature = signing.sign(black_box(&message));
                verifying.verify_strict(&message, &signature).unwrap();
                let mut buf = plain.clone();
                let tag = cipher.encrypt_inout_detached(&nonce, b"aad", buf.as_mut_slice().into());
                let tag = tag.unwrap();
                cipher
                    .decrypt_inout_detached(&nonce, b"aad", buf.as_mut_slice().into(), &tag)
                    .unwrap();
                buf
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
