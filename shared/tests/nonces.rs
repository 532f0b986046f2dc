//! One million seals, no repeated nonce.

mod common;

use common::Plan;
use cove_shared::envelope::{self, HEADER_LEN, NONCE_LEN, Seal};
use cove_shared::{DocId, EnvelopeHash, Epoch, Kind, OsEntropy, Seq};
use std::collections::HashSet;

#[test]
fn one_million_seals_produce_no_repeated_nonce() {
    const SEALS: usize = 1_000_000;
    const THREADS: usize = 2;
    let plan = Plan::new(b"nonces");
    let ring = plan.ring(&plan.a1);
    let keys = ring.keys(Epoch(1)).unwrap();
    let payload = [0u8; 16];
    let view = plan.log.state().view();
    // Seal on both cores, each with the production entropy source (the
    // operating system's), then look for a repeat across all of them.
    let nonces: Vec<Vec<[u8; NONCE_LEN]>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (keys, a1, payload) = (keys, &plan.a1, &payload);
                scope.spawn(move || {
                    let mut rng = OsEntropy;
                    (0..SEALS / THREADS)
                        .map(|i| {
                            let request = Seal {
                                kind: Kind::Signal,
                                doc: DocId::Shared,
                                seq: Seq((t * SEALS + i) as u64 + 1),
                                prev: EnvelopeHash::GENESIS,
                                view,
                                payload,
                            };
                            let sealed = envelope::seal(keys, a1, request, &mut rng).unwrap();
                            sealed.bytes[HEADER_LEN..HEADER_LEN + NONCE_LEN].try_into().unwrap()
                        })
                        .collect()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut seen = HashSet::with_capacity(SEALS);
    for nonce in nonces.iter().flatten() {
        assert!(seen.insert(*nonce), "a nonce repeated");
    }
    assert_eq!(seen.len(), SEALS);
}
