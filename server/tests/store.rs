//! One conformance story for every storage backend: SQLite always, and
//! PostgreSQL when `COVE_TEST_POSTGRES_URL` is set (CI sets it).

mod common;

use bytes::Bytes;
use cove_server::settings::SqliteSync;
use cove_server::store::{
    Access, AppendError, Appended, NewEnvelope, NewSnapshot, PairError, PairState, PostgresStore,
    Quota, RegistryChange, Side, SnapshotStored, SqliteStore, Store, StoreError,
};
use cove_shared::random::SeededEntropy;
use cove_shared::wire::{Cursor, MAX_PAIR_MESSAGES, PairOutcome};
use cove_shared::{DeviceId, DeviceSecret, DocId, EnvelopeHash, Kind, PlanId, Seq};

const NOW: i64 = 1_800_000_000;
const ROOMY: Quota = Quota { max_envelopes: 1000, max_bytes: 1 << 20 };

fn device(seed: &str) -> DeviceId {
    DeviceSecret::generate(&mut SeededEntropy::new(seed.as_bytes())).id()
}

fn envelope(
    plan: PlanId,
    sender: DeviceId,
    kind: Kind,
    seq: u64,
    doc: DocId,
    body: &[u8],
) -> NewEnvelope {
    let mut hash = [0u8; 32];
    hash[..body.len().min(32)].copy_from_slice(&body[..body.len().min(32)]);
    NewEnvelope {
        plan,
        sender,
        kind,
        seq: Seq(seq),
        doc,
        hash: EnvelopeHash(hash),
        expires_at: (kind == Kind::Signal).then_some(NOW + 60),
        body: Bytes::copy_from_slice(body),
    }
}

async fn append_one<S: Store>(store: &S, e: NewEnvelope) -> Result<Appended, AppendError> {
    store.append(&[e], ROOMY).await.remove(0)
}

/// Everything a backend must do, in one story.
async fn store_story<S: Store>(store: S) {
    let (a1, a2, b1, stranger) = (device("a1"), device("a2"), device("b1"), device("stranger"));
    let x = PlanId::from_bytes([1; 16]);
    let y = PlanId::from_bytes([2; 16]);

    // Plans and membership.
    store.create_plan(x, b"genesis-x", a1, NOW).await.unwrap();
    store.create_plan(y, b"genesis-y", stranger, NOW).await.unwrap();
    assert!(matches!(store.create_plan(x, b"again", a1, NOW).await, Err(StoreError::PlanExists)));
    assert_eq!(store.membership(x, 0).await.unwrap(), vec![b"genesis-x".to_vec()]);
    let add_b = RegistryChange { added: vec![b1], revoked: vec![] };
    store.append_membership(x, 1, b"add-b1", &add_b).await.unwrap();
    assert!(matches!(
        store.append_membership(x, 1, b"other", &add_b).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store.append_membership(x, 5, b"gap", &add_b).await,
        Err(StoreError::Conflict)
    ));
    let nowhere = PlanId::from_bytes([9; 16]);
    assert!(matches!(
        store.append_membership(nowhere, 1, b"e", &add_b).await,
        Err(StoreError::NoSuchPlan)
    ));
    let add_a2 = RegistryChange { added: vec![a2], revoked: vec![] };
    store.append_membership(x, 2, b"add-a2", &add_a2).await.unwrap();
    assert_eq!(store.membership(x, 1).await.unwrap(), vec![b"add-b1".to_vec(), b"add-a2".to_vec()]);
    assert_eq!(store.access(x, a1).await.unwrap(), Access::Active);
    assert_eq!(store.access(x, b1).await.unwrap(), Access::Active);
    assert_eq!(store.access(x, stranger).await.unwrap(), Access::Unknown);
    assert_eq!(store.access(nowhere, a1).await.unwrap(), Access::Unknown);

    // Appends: cursors per plan, dedupe, equivocation, quota.
    let batch = vec![
        envelope(x, a1, Kind::Changes, 1, DocId::Shared, b"x-a1-1"),
        envelope(y, stranger, Kind::Changes, 1, DocId::Shared, b"y-s-1"),
        envelope(x, b1, Kind::Changes, 1, DocId::PartnerB, b"x-b1-1"),
        envelope(x, a1, Kind::Changes, 2, DocId::Shared, b"x-a1-2"),
    ];
    let results = store.append(&batch, ROOMY).await;
    assert_eq!(
        results,
        vec![
            Ok(Appended::New(Cursor(1))),
            Ok(Appended::New(Cursor(1))),
            Ok(Appended::New(Cursor(2))),
            Ok(Appended::New(Cursor(3))),
        ]
    );
    let resend = envelope(x, b1, Kind::Changes, 1, DocId::PartnerB, b"x-b1-1");
    assert_eq!(append_one(&store, resend).await, Ok(Appended::Duplicate(Cursor(2))));
    let forked = envelope(x, b1, Kind::Changes, 1, DocId::PartnerB, b"x-b1-1-different");
    assert_eq!(append_one(&store, forked).await, Err(AppendError::Equivocation));
    // The same seq in another stream (kind) is not a conflict.
    let signal = envelope(x, b1, Kind::Signal, 1, DocId::Shared, b"pause");
    assert_eq!(append_one(&store, signal).await, Ok(Appended::New(Cursor(4))));
    let ghost = envelope(nowhere, a1, Kind::Changes, 1, DocId::Shared, b"g");
    assert_eq!(append_one(&store, ghost).await, Err(AppendError::NoSuchPlan));
    let tight = Quota { max_envelopes: 4, max_bytes: 1 << 20 };
    let over = envelope(x, a1, Kind::Changes, 3, DocId::Shared, b"x-a1-3");
    assert_eq!(
        store.append(std::slice::from_ref(&over), tight).await,
        vec![Err(AppendError::QuotaExceeded)]
    );
    // 23 bytes are stored; six more would make 29.
    let tiny = Quota { max_envelopes: 100, max_bytes: 28 };
    assert_eq!(
        store.append(std::slice::from_ref(&over), tiny).await,
        vec![Err(AppendError::QuotaExceeded)]
    );
    assert_eq!(append_one(&store, over).await, Ok(Appended::New(Cursor(5))));

    // One batch that repeats a position: the copy is a resend, a different
    // envelope at that position an equivocation, and both share one cursor.
    let z = PlanId::from_bytes([4; 16]);
    store.create_plan(z, b"genesis-z", a1, NOW).await.unwrap();
    let first = envelope(z, a1, Kind::Changes, 1, DocId::Shared, b"z-1");
    let other = envelope(z, a1, Kind::Changes, 1, DocId::Shared, b"z-1-other");
    let next = envelope(z, a1, Kind::Changes, 2, DocId::Shared, b"z-2");
    let results = store.append(&[first.clone(), first, other, next], ROOMY).await;
    assert_eq!(
        results,
        vec![
            Ok(Appended::New(Cursor(1))),
            Ok(Appended::Duplicate(Cursor(1))),
            Err(AppendError::Equivocation),
            Ok(Appended::New(Cursor(2))),
        ]
    );
    store.delete_plan(z).await.unwrap();

    // Fetch: pages, byte bound, head, expired signals left out.
    let page = store.fetch(x, Cursor(0), 100, 1 << 20, NOW).await.unwrap();
    let cursors: Vec<u64> = page.items.iter().map(|i| i.cursor.0).collect();
    assert_eq!(cursors, [1, 2, 3, 4, 5]);
    assert_eq!(page.items[1].envelope.0, b"x-b1-1");
    assert_eq!((page.head, page.compacted), (Cursor(5), Cursor(0)));
    let page = store.fetch(x, Cursor(2), 2, 1 << 20, NOW).await.unwrap();
    assert_eq!(page.items.iter().map(|i| i.cursor.0).collect::<Vec<_>>(), [3, 4]);
    let page = store.fetch(x, Cursor(0), 100, 1, NOW).await.unwrap();
    assert_eq!(page.items.len(), 1, "at least one item, however small the byte bound");
    let later = store.fetch(x, Cursor(0), 100, 1 << 20, NOW + 3600).await.unwrap();
    assert_eq!(later.items.iter().map(|i| i.cursor.0).collect::<Vec<_>>(), [1, 2, 3, 5]);
    assert!(matches!(
        store.fetch(nowhere, Cursor(0), 10, 1 << 20, NOW).await,
        Err(StoreError::NoSuchPlan)
    ));
    assert_eq!(store.envelope(x, Cursor(3)).await.unwrap(), Some(b"x-a1-2".to_vec()));
    assert_eq!(store.envelope(x, Cursor(99)).await.unwrap(), None);

    // Snapshots and compaction: nothing goes until every active device has
    // acknowledged a cursor at or past the snapshot.
    let snap = |covers: u64, seq: u64, body: &[u8]| NewSnapshot {
        plan: x,
        doc: DocId::Shared,
        covers: Cursor(covers),
        sender: a1,
        seq: Seq(seq),
        hash: EnvelopeHash([seq as u8; 32]),
        body: body.to_vec(),
    };
    assert_eq!(
        store.put_snapshot(&snap(3, 1, b"snap-1")).await.unwrap(),
        SnapshotStored::New { compacted: 0 }
    );
    assert_eq!(
        store.put_snapshot(&snap(3, 1, b"snap-1")).await.unwrap(),
        SnapshotStored::Duplicate
    );
    assert_eq!(store.put_snapshot(&snap(2, 2, b"older")).await.unwrap(), SnapshotStored::Stale);
    assert_eq!(
        store.put_snapshot(&snap(99, 4, b"future")).await.unwrap(),
        SnapshotStored::BeyondHead
    );
    assert_eq!(store.ack(x, a1, Cursor(5)).await.unwrap(), 0);
    assert_eq!(store.ack(x, b1, Cursor(5)).await.unwrap(), 0, "a2 has not acknowledged");
    assert_eq!(store.ack(x, a2, Cursor(2)).await.unwrap(), 0, "a2 is behind the snapshot");
    // Revoking a2 leaves only devices that are past the snapshot.
    let revoke = RegistryChange { added: vec![], revoked: vec![a2] };
    store.append_membership(x, 3, b"revoke-a2", &revoke).await.unwrap();
    assert_eq!(store.access(x, a2).await.unwrap(), Access::Revoked);
    assert_eq!(
        store.put_snapshot(&snap(3, 3, b"snap-3")).await.unwrap(),
        SnapshotStored::New { compacted: 2 }
    );
    let page = store.fetch(x, Cursor(0), 100, 1 << 20, NOW).await.unwrap();
    assert_eq!(
        page.items.iter().map(|i| i.cursor.0).collect::<Vec<_>>(),
        [2, 4, 5],
        "only shared-doc changes went"
    );
    assert_eq!(page.compacted, Cursor(3));
    let stored = store.snapshot(x, DocId::Shared).await.unwrap().unwrap();
    assert_eq!((stored.covers, stored.envelope.0.as_slice()), (Cursor(3), &b"snap-3"[..]));
    assert_eq!(store.snapshot(x, DocId::PartnerA).await.unwrap(), None);
    // An acknowledgement never moves backwards.
    assert_eq!(store.ack(x, a1, Cursor(1)).await.unwrap(), 0);

    // Expiry frees the quota that signals used.
    let expired = store.expire(NOW + 3600).await.unwrap();
    assert_eq!(expired.signals, 1);
    let page = store.fetch(x, Cursor(0), 100, 1 << 20, NOW).await.unwrap();
    assert_eq!(page.items.iter().map(|i| i.cursor.0).collect::<Vec<_>>(), [2, 5]);
    let two_left = Quota { max_envelopes: 3, max_bytes: 1 << 20 };
    let next = envelope(x, a1, Kind::Changes, 4, DocId::Shared, b"x-a1-4");
    assert_eq!(store.append(&[next], two_left).await, vec![Ok(Appended::New(Cursor(6)))]);

    // Pairing mailboxes.
    let n1 = store.pair_open(a1, NOW + 600).await.unwrap();
    let n2 = store.pair_open(stranger, NOW + 600).await.unwrap();
    assert_eq!((n1.as_str(), n2.as_str()), ("1", "2"));
    store.pair_post(&n1, Side::Opener, b"spake-a").await.unwrap();
    let waiting = store.pair_join(&n1, b1, NOW).await.unwrap();
    let bodies: Vec<Vec<u8>> = waiting.into_iter().map(|(_, body)| body).collect();
    assert_eq!(bodies, vec![b"spake-a".to_vec()]);
    let mailbox = store.pair_get(&n1, NOW).await.unwrap().unwrap();
    assert_eq!((mailbox.state, mailbox.joiner), (PairState::Joined, Some(b1)));
    assert_eq!(mailbox.side_of(a1), Some(Side::Opener));
    assert_eq!(mailbox.side_of(stranger), None);
    let id = store.pair_post(&n1, Side::Joiner, b"spake-b").await.unwrap().unwrap();
    assert_eq!(store.pair_message(id).await.unwrap(), Some(b"spake-b".to_vec()));
    // Each side may post a bounded number of messages: a mailbox cannot
    // become storage. The other side's count is its own.
    for _ in 1..MAX_PAIR_MESSAGES {
        assert!(store.pair_post(&n1, Side::Joiner, b"more").await.unwrap().is_some());
    }
    assert_eq!(store.pair_post(&n1, Side::Joiner, b"one too many").await.unwrap(), None);
    assert!(store.pair_post(&n1, Side::Opener, b"confirm").await.unwrap().is_some());
    // A second join burns it.
    assert_eq!(store.pair_join(&n1, stranger, NOW).await, Err(PairError::Burned));
    assert_eq!(store.pair_get(&n1, NOW).await.unwrap().unwrap().state, PairState::Burned);
    // Closing a burned mailbox does not revive it.
    store.pair_close(&n1, PairOutcome::Completed).await.unwrap();
    assert_eq!(store.pair_get(&n1, NOW).await.unwrap().unwrap().state, PairState::Burned);
    // Completed is spent: joining again fails.
    store.pair_close(&n2, PairOutcome::Completed).await.unwrap();
    assert_eq!(store.pair_join(&n2, b1, NOW).await, Err(PairError::Burned));
    // The opener cannot join its own mailbox.
    let n3 = store.pair_open(a1, NOW + 600).await.unwrap();
    assert_eq!(n3, "3");
    assert_eq!(store.pair_join(&n3, a1, NOW).await, Err(PairError::Burned));
    // Expired: unknown, then gone after the grace period, freeing the number.
    assert_eq!(store.pair_get(&n2, NOW + 601).await.unwrap(), None);
    assert_eq!(store.pair_join("2", b1, NOW + 601).await, Err(PairError::Unknown));
    assert_eq!(store.pair_join("77", b1, NOW).await, Err(PairError::Unknown));
    let expired = store.expire(NOW + 600 + 600).await.unwrap();
    assert_eq!(expired.mailboxes, 3);
    assert_eq!(store.pair_open(b1, NOW + 2000).await.unwrap(), "1");

    // Deleting a plan removes everything, and leaves other plans alone.
    store.delete_plan(x).await.unwrap();
    assert_eq!(store.access(x, a1).await.unwrap(), Access::Unknown);
    assert!(matches!(
        store.fetch(x, Cursor(0), 10, 1 << 20, NOW).await,
        Err(StoreError::NoSuchPlan)
    ));
    assert!(store.membership(x, 0).await.unwrap().is_empty());
    assert_eq!(store.snapshot(x, DocId::Shared).await.unwrap(), None);
    assert_eq!(store.fetch(y, Cursor(0), 10, 1 << 20, NOW).await.unwrap().items.len(), 1);
    store.ping().await.unwrap();
}

#[tokio::test]
async fn sqlite_store_story() {
    let dir = common::TempDir::new("store");
    let store = SqliteStore::open(&dir.path().join("relay.db"), SqliteSync::Full).await.unwrap();
    store_story(store).await;
}

#[tokio::test]
async fn sqlite_store_reopens_with_its_data() {
    let dir = common::TempDir::new("reopen");
    let path = dir.path().join("relay.db");
    let plan = PlanId::from_bytes([3; 16]);
    {
        let store = SqliteStore::open(&path, SqliteSync::Normal).await.unwrap();
        store.create_plan(plan, b"g", device("a"), NOW).await.unwrap();
        let e = envelope(plan, device("a"), Kind::Changes, 1, DocId::Shared, b"kept");
        assert_eq!(append_one(&store, e).await, Ok(Appended::New(Cursor(1))));
    }
    let store = SqliteStore::open(&path, SqliteSync::Full).await.unwrap();
    let page = store.fetch(plan, Cursor(0), 10, 1 << 20, NOW).await.unwrap();
    assert_eq!(page.items[0].envelope.0, b"kept");
}

#[tokio::test]
async fn postgres_store_story() {
    let Some(url) = common::postgres_url() else {
        eprintln!("COVE_TEST_POSTGRES_URL is not set: skipping the PostgreSQL store story");
        return;
    };
    let schema = common::fresh_schema("store");
    let store = PostgresStore::connect_in_schema(&url, Some(&schema)).await.unwrap();
    store_story(store).await;
    common::drop_schema(&url, &schema).await;
}
