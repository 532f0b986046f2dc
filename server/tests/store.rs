//! The conformance chapters every storage backend must pass: SQLite always,
//! and PostgreSQL when `COVE_TEST_POSTGRES_URL` is set (CI sets it). Each
//! chapter sets up what it needs and runs on one shared store, so that the
//! chapters also show that one concern leaves the others alone.

mod common;

use bytes::Bytes;
use cove_server::settings::SqliteSync;
use cove_server::store::SqliteOptions;
use cove_server::store::{
    Access, AppendError, Appended, EnvelopeLog, NewEnvelope, NewSnapshot, PairError, PairState,
    PostgresStore, Quota, RegistryChange, Side, SnapshotStored, SqliteStore, Store, StoreError,
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
    store.append(&[e], ROOMY).await.unwrap().remove(0)
}

/// Two plans with their members, for the chapters that need them: plan
/// `x` (a1 its creator, then b1 and a2) and plan `y` (a stranger's).
struct Plans {
    x: PlanId,
    y: PlanId,
    a1: DeviceId,
    a2: DeviceId,
    b1: DeviceId,
    stranger: DeviceId,
}

async fn plans<S: Store>(store: &S, tag: u8) -> Plans {
    let (a1, a2, b1, stranger) = (device("a1"), device("a2"), device("b1"), device("stranger"));
    let (x, y) = (PlanId::from_bytes([tag; 16]), PlanId::from_bytes([tag + 1; 16]));
    store.create_plan(x, b"genesis-x", a1, device("identity"), NOW).await.unwrap();
    store.create_plan(y, b"genesis-y", stranger, device("identity"), NOW).await.unwrap();
    let add_b = RegistryChange {
        added: vec![b1],
        identities: vec![device("identity-b")],
        ..Default::default()
    };
    store.append_membership(x, 1, b"add-b1", &add_b).await.unwrap();
    let add_a2 = RegistryChange { added: vec![a2], ..Default::default() };
    store.append_membership(x, 2, b"add-a2", &add_a2).await.unwrap();
    Plans { x, y, a1, a2, b1, stranger }
}

/// Chapter: plans, their membership log, and who may act on them.
async fn plans_and_membership<S: Store>(store: &S) {
    let Plans { x, a1, b1, stranger, .. } = plans(store, 0x10).await;
    assert!(matches!(
        store.create_plan(x, b"again", a1, device("identity"), NOW).await,
        Err(StoreError::PlanExists)
    ));
    assert_eq!(store.membership(x, 0).await.unwrap()[0], b"genesis-x".to_vec());
    let add_b = RegistryChange {
        added: vec![b1],
        identities: vec![device("identity-b")],
        ..Default::default()
    };
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
    assert_eq!(store.membership(x, 1).await.unwrap(), vec![b"add-b1".to_vec(), b"add-a2".to_vec()]);
    assert_eq!(store.access(x, a1).await.unwrap(), Access::Active);
    assert_eq!(store.access(x, b1).await.unwrap(), Access::Active);
    assert_eq!(store.access(x, stranger).await.unwrap(), Access::Unknown);
    assert_eq!(store.access(nowhere, a1).await.unwrap(), Access::Unknown);
    // The identities the logs pinned lead a recovering device to its plans.
    let y = PlanId::from_bytes([0x11; 16]);
    assert_eq!(store.identity_plans(device("identity")).await.unwrap(), vec![x, y]);
    assert_eq!(store.identity_plans(device("identity-b")).await.unwrap(), vec![x]);
    assert!(store.identity_plans(device("nobody")).await.unwrap().is_empty());
}

/// Chapter: appends get cursors per plan; a resend is a duplicate, a
/// different envelope at a taken position an equivocation; the quota holds;
/// one batch may repeat a position.
async fn appends<S: Store>(store: &S) {
    let Plans { x, y, a1, b1, stranger, .. } = plans(store, 0x20).await;
    let batch = vec![
        envelope(x, a1, Kind::Changes, 1, DocId::Shared, b"x-a1-1"),
        envelope(y, stranger, Kind::Changes, 1, DocId::Shared, b"y-s-1"),
        envelope(x, b1, Kind::Changes, 1, DocId::PartnerB, b"x-b1-1"),
        envelope(x, a1, Kind::Changes, 2, DocId::Shared, b"x-a1-2"),
    ];
    assert_eq!(
        store.append(&batch, ROOMY).await.unwrap(),
        vec![
            Ok(Appended::New(Cursor(1))),
            Ok(Appended::New(Cursor(1))),
            Ok(Appended::New(Cursor(2))),
            Ok(Appended::New(Cursor(3))),
        ]
    );
    let resend = envelope(x, b1, Kind::Changes, 1, DocId::PartnerB, b"x-b1-1");
    assert_eq!(append_one(store, resend).await, Ok(Appended::Duplicate(Cursor(2))));
    let forked = envelope(x, b1, Kind::Changes, 1, DocId::PartnerB, b"x-b1-1-different");
    assert_eq!(append_one(store, forked).await, Err(AppendError::Equivocation));
    // The same seq in another stream (kind) is not a conflict.
    let signal = envelope(x, b1, Kind::Signal, 1, DocId::Shared, b"pause");
    assert_eq!(append_one(store, signal).await, Ok(Appended::New(Cursor(4))));
    let ghost = envelope(PlanId::from_bytes([9; 16]), a1, Kind::Changes, 1, DocId::Shared, b"g");
    assert_eq!(append_one(store, ghost).await, Err(AppendError::NoSuchPlan));
    let tight = Quota { max_envelopes: 4, max_bytes: 1 << 20 };
    let over = envelope(x, a1, Kind::Changes, 3, DocId::Shared, b"x-a1-3");
    assert_eq!(
        store.append(std::slice::from_ref(&over), tight).await.unwrap(),
        vec![Err(AppendError::QuotaExceeded)]
    );
    // 23 bytes are stored; six more would make 29.
    let tiny = Quota { max_envelopes: 100, max_bytes: 28 };
    assert_eq!(
        store.append(std::slice::from_ref(&over), tiny).await.unwrap(),
        vec![Err(AppendError::QuotaExceeded)]
    );
    assert_eq!(append_one(store, over).await, Ok(Appended::New(Cursor(5))));

    // One batch that repeats a position: the copy is a resend, a different
    // envelope at that position an equivocation, and both share one cursor.
    let z = PlanId::from_bytes([0x2f; 16]);
    store.create_plan(z, b"genesis-z", a1, device("identity"), NOW).await.unwrap();
    let first = envelope(z, a1, Kind::Changes, 1, DocId::Shared, b"z-1");
    let other = envelope(z, a1, Kind::Changes, 1, DocId::Shared, b"z-1-other");
    let next = envelope(z, a1, Kind::Changes, 2, DocId::Shared, b"z-2");
    assert_eq!(
        store.append(&[first.clone(), first, other, next], ROOMY).await.unwrap(),
        vec![
            Ok(Appended::New(Cursor(1))),
            Ok(Appended::Duplicate(Cursor(1))),
            Err(AppendError::Equivocation),
            Ok(Appended::New(Cursor(2))),
        ]
    );
}

/// Chapter: pages, their byte bound, the head, expired signals left out.
async fn fetching<S: Store>(store: &S) {
    let Plans { x, a1, b1, .. } = plans(store, 0x30).await;
    let batch = vec![
        envelope(x, a1, Kind::Changes, 1, DocId::Shared, b"x-a1-1"),
        envelope(x, b1, Kind::Changes, 1, DocId::PartnerB, b"x-b1-1"),
        envelope(x, a1, Kind::Changes, 2, DocId::Shared, b"x-a1-2"),
        envelope(x, b1, Kind::Signal, 1, DocId::Shared, b"pause"),
        envelope(x, a1, Kind::Changes, 3, DocId::Shared, b"x-a1-3"),
    ];
    assert!(store.append(&batch, ROOMY).await.unwrap().iter().all(Result::is_ok));
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
    let nowhere = PlanId::from_bytes([9; 16]);
    assert!(matches!(
        store.fetch(nowhere, Cursor(0), 10, 1 << 20, NOW).await,
        Err(StoreError::NoSuchPlan)
    ));
    assert_eq!(store.envelope(x, Cursor(3)).await.unwrap(), Some(b"x-a1-2".to_vec()));
    assert_eq!(store.envelope(x, Cursor(99)).await.unwrap(), None);
}

/// Chapter: snapshots, and compaction only once every active device has
/// acknowledged a cursor at or past the snapshot; then signal expiry frees
/// the quota.
async fn snapshots_compaction_and_expiry<S: Store>(store: &S) {
    let Plans { x, a1, a2, b1, .. } = plans(store, 0x40).await;
    let batch = vec![
        envelope(x, a1, Kind::Changes, 1, DocId::Shared, b"x-a1-1"),
        envelope(x, b1, Kind::Changes, 1, DocId::PartnerB, b"x-b1-1"),
        envelope(x, a1, Kind::Changes, 2, DocId::Shared, b"x-a1-2"),
        envelope(x, b1, Kind::Signal, 1, DocId::Shared, b"pause"),
        envelope(x, a1, Kind::Changes, 3, DocId::Shared, b"x-a1-3"),
    ];
    assert!(store.append(&batch, ROOMY).await.unwrap().iter().all(Result::is_ok));
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
    let revoke = RegistryChange { revoked: vec![a2], ..Default::default() };
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
    // Other chapters' signals on this store expire too; this plan's page
    // and quota below show exactly what went here.
    assert!(store.expire_signals(NOW + 3600).await.unwrap() >= 1);
    let page = store.fetch(x, Cursor(0), 100, 1 << 20, NOW).await.unwrap();
    assert_eq!(page.items.iter().map(|i| i.cursor.0).collect::<Vec<_>>(), [2, 5]);
    let two_left = Quota { max_envelopes: 3, max_bytes: 1 << 20 };
    let next = envelope(x, a1, Kind::Changes, 4, DocId::Shared, b"x-a1-4");
    assert_eq!(store.append(&[next], two_left).await.unwrap(), vec![Ok(Appended::New(Cursor(6)))]);
}

/// Chapter: a device's newer checkpoint makes its older ones expire, and
/// only its own; expiry then frees their quota.
async fn checkpoints_superseded<S: Store>(store: &S) {
    let Plans { x, a1, b1, .. } = plans(store, 0x60).await;
    let checkpoint = |sender, seq: u64, body: &[u8]| NewEnvelope {
        expires_at: Some(NOW + 30 * 86_400),
        ..envelope(x, sender, Kind::Checkpoint, seq, DocId::Shared, body)
    };
    let batch = vec![
        checkpoint(a1, 1, b"a1-checkpoint-1"),
        checkpoint(b1, 1, b"b1-checkpoint-1"),
        checkpoint(a1, 2, b"a1-checkpoint-2"),
    ];
    assert!(store.append(&batch, ROOMY).await.unwrap().iter().all(Result::is_ok));
    store.supersede_checkpoints(x, a1, Seq(2), NOW).await.unwrap();
    assert!(store.expire_signals(NOW).await.unwrap() >= 1);
    let page = store.fetch(x, Cursor(0), 100, 1 << 20, NOW).await.unwrap();
    let bodies: Vec<&[u8]> = page.items.iter().map(|i| i.envelope.0.as_slice()).collect();
    assert_eq!(bodies, [&b"b1-checkpoint-1"[..], &b"a1-checkpoint-2"[..]]);
}

/// Chapter: pairing mailboxes: open, join once, post within a bound, burn,
/// close, expire.
async fn pairing_mailboxes<S: Store>(store: &S) {
    let (a1, b1, stranger) = (device("a1"), device("b1"), device("stranger"));
    let n1 = store.pair_open(a1, NOW + 600).await.unwrap();
    let n2 = store.pair_open(stranger, NOW + 600).await.unwrap();
    // Six random digits each, never the same twice while both are open.
    assert!(n1.len() == 6 && n2.len() == 6 && n1 != n2, "{n1} {n2}");
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
    assert!(n3 != n1 && n3 != n2, "{n3} is taken");
    assert_eq!(store.pair_join(&n3, a1, NOW).await, Err(PairError::Burned));
    // Expired: unknown, then gone after the grace period, freeing the number.
    assert_eq!(store.pair_get(&n2, NOW + 601).await.unwrap(), None);
    assert_eq!(store.pair_join(&n2, b1, NOW + 601).await, Err(PairError::Unknown));
    assert_eq!(store.pair_join("77", b1, NOW).await, Err(PairError::Unknown));
    assert_eq!(store.expire_mailboxes(NOW + 600 + 600).await.unwrap(), 3);
    assert_eq!(store.pair_open(b1, NOW + 2000).await.unwrap().len(), 6);
}

/// Chapter: deleting a plan removes everything, and leaves other plans
/// alone.
async fn deletion<S: Store>(store: &S) {
    let Plans { x, y, a1, stranger, .. } = plans(store, 0x50).await;
    let batch = vec![
        envelope(x, a1, Kind::Changes, 1, DocId::Shared, b"x-a1-1"),
        envelope(y, stranger, Kind::Changes, 1, DocId::Shared, b"y-s-1"),
    ];
    assert!(store.append(&batch, ROOMY).await.unwrap().iter().all(Result::is_ok));
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

/// Every chapter, on one store, in turn.
async fn conformance<S: Store>(store: S) {
    plans_and_membership(&store).await;
    appends(&store).await;
    fetching(&store).await;
    snapshots_compaction_and_expiry(&store).await;
    checkpoints_superseded(&store).await;
    pairing_mailboxes(&store).await;
    deletion(&store).await;
}

#[tokio::test]
async fn sqlite_conformance() {
    let dir = common::TempDir::new("store");
    let store =
        SqliteStore::open(&dir.path().join("relay.db"), SqliteOptions::new(SqliteSync::Full))
            .await
            .unwrap();
    conformance(store).await;
}

#[tokio::test]
async fn sqlite_store_reopens_with_its_data() {
    let dir = common::TempDir::new("reopen");
    let path = dir.path().join("relay.db");
    let plan = PlanId::from_bytes([3; 16]);
    {
        let store = SqliteStore::open(&path, SqliteOptions::new(SqliteSync::Normal)).await.unwrap();
        store.create_plan(plan, b"g", device("a"), device("identity"), NOW).await.unwrap();
        let e = envelope(plan, device("a"), Kind::Changes, 1, DocId::Shared, b"kept");
        assert_eq!(append_one(&store, e).await, Ok(Appended::New(Cursor(1))));
    }
    let store = SqliteStore::open(&path, SqliteOptions::new(SqliteSync::Full)).await.unwrap();
    let page = store.fetch(plan, Cursor(0), 10, 1 << 20, NOW).await.unwrap();
    assert_eq!(page.items[0].envelope.0, b"kept");
}

#[tokio::test]
async fn postgres_conformance() {
    let Some(url) = common::postgres_url() else {
        eprintln!(
            "COVE_TEST_POSTGRES_URL is not set: skipping the PostgreSQL conformance chapters"
        );
        return;
    };
    let schema = common::fresh_schema("store");
    let store = PostgresStore::connect_in_schema(&url, Some(&schema)).await.unwrap();
    conformance(store).await;
    common::drop_schema(&url, &schema).await;
}

/// Chapter, PostgreSQL only: events between relay processes. What one
/// publishes, the other hears (never its own); and when the listening
/// connection is lost, the listener says that something may have been
/// missed.
#[tokio::test]
async fn postgres_events_between_relays() {
    use cove_server::events::{Event, Heard};
    use cove_server::store::Events;
    let Some(url) = common::postgres_url() else {
        eprintln!("COVE_TEST_POSTGRES_URL is not set: skipping the PostgreSQL events chapter");
        return;
    };
    let schema = common::fresh_schema("events");
    let one = PostgresStore::connect_in_schema(&url, Some(&schema)).await.unwrap();
    let two = PostgresStore::connect_in_schema(&url, Some(&schema)).await.unwrap();
    let mut heard_by_two = two.listen().unwrap();
    let mut heard_by_one = one.listen().unwrap();
    let within = std::time::Duration::from_secs(10);
    let event = Event::PlanDeleted { plan: PlanId::from_bytes([0x60; 16]) };
    // The listener connects in the background: publish until it hears.
    let heard = tokio::time::timeout(within, async {
        loop {
            one.publish(&event).await;
            if let Ok(Some(heard)) =
                tokio::time::timeout(std::time::Duration::from_millis(200), heard_by_two.recv())
                    .await
            {
                return heard;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(heard, Heard::Event(event.clone()));
    assert!(heard_by_one.try_recv().is_err(), "a process does not hear itself");

    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let channel = format!("LISTEN \"cove_events_{schema}\"");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1")
        .bind(channel)
        .execute(&admin)
        .await
        .unwrap();
    let gap = tokio::time::timeout(within, async {
        loop {
            match heard_by_two.recv().await {
                Some(Heard::Gap) => return true,
                Some(_) => continue,
                None => return false,
            }
        }
    })
    .await
    .unwrap();
    assert!(gap, "the listener said nothing of the lost connection");
    admin.close().await;
    common::drop_schema(&url, &schema).await;
}

/// The envelopes of `plan` that `store` holds: (cursor, first 8 bytes).
async fn held<S: Store>(store: &S, plan: PlanId) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut after = Cursor(0);
    loop {
        let page = store.fetch(plan, after, 500, 64 << 20, NOW).await.unwrap();
        let Some(last) = page.items.last().map(|i| i.cursor) else { return out };
        out.extend(page.items.into_iter().map(|i| (i.cursor.0, i.envelope.0[..8].to_vec())));
        after = last;
    }
}

/// A 64 KiB body that starts with `seq` and shares no page with another.
fn big_body(seq: u64) -> Vec<u8> {
    let mut body = vec![0u8; 64 * 1024];
    body[..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in body.iter_mut().enumerate().skip(8) {
        *b = (i as u64).wrapping_mul(seq | 1).wrapping_mul(2_654_435_761) as u8;
    }
    body
}

/// Checks that every acknowledged (cursor, seq) is stored.
async fn all_stored<S: Store>(store: &S, plan: PlanId, acknowledged: &[(u64, u64)]) {
    let held = held(store, plan).await;
    for (cursor, seq) in acknowledged {
        let found = held.iter().find(|(c, _)| c == cursor).map(|(_, b)| b.clone());
        assert_eq!(
            found,
            Some(seq.to_be_bytes().to_vec()),
            "acknowledged envelope {seq} at cursor {cursor} is not stored ({} acknowledged, {} held)",
            acknowledged.len(),
            held.len()
        );
    }
}

/// The chapter on a store whose writes fail (a full disk): it acknowledges
/// only what it really stored, fails the whole of a batch whose commit
/// fails, and resumes by itself once `recover` has made room. After
/// `start_failing`, appends must fail within 60 tries.
async fn a_failing_store_acknowledges_only_what_it_stored<S: Store>(
    store: &S,
    reopen: impl AsyncFn() -> S,
    start_failing: impl AsyncFn(&S),
    recover: impl AsyncFn(&S),
) {
    let a = device("full-a");
    let plan = PlanId::from_bytes([0x46; 16]);
    store.create_plan(plan, b"genesis-full", a, device("identity"), NOW).await.unwrap();
    let quota = Quota { max_envelopes: 1 << 20, max_bytes: 1 << 40 };
    let mut acknowledged: Vec<(u64, u64)> = Vec::new();
    let mut refused = 0;
    let mut seq = 0;
    let mut push = async |count: u64, acknowledged: &mut Vec<(u64, u64)>| {
        let batch: Vec<NewEnvelope> = (seq + 1..=seq + count)
            .map(|n| envelope(plan, a, Kind::Changes, n, DocId::Shared, &big_body(n)))
            .collect();
        seq += count;
        match store.append(&batch, quota).await {
            Ok(results) => {
                for (e, result) in batch.iter().zip(results) {
                    match result {
                        Ok(Appended::New(cursor)) => acknowledged.push((cursor.0, e.seq.0)),
                        other => panic!("unexpected outcome {other:?}"),
                    }
                }
                0
            }
            Err(_) => count,
        }
    };
    for _ in 0..3 {
        assert_eq!(push(1, &mut acknowledged).await, 0, "a healthy store takes an append");
    }
    start_failing(store).await;
    // Keep pushing well past the first failure, alone and in batches: the
    // store must not acknowledge anything it does not commit.
    for round in 0..40 {
        refused += push(1 + round % 3, &mut acknowledged).await;
    }
    assert!(refused > 0, "the store never failed");
    all_stored(store, plan, &acknowledged).await;
    all_stored(&reopen().await, plan, &acknowledged).await;

    // Room is made: writes resume without a restart.
    recover(store).await;
    assert_eq!(push(2, &mut acknowledged).await, 0, "writes did not resume");
    assert!(store.probe_write().await.is_ok());
    all_stored(store, plan, &acknowledged).await;
    all_stored(&reopen().await, plan, &acknowledged).await;
}

#[tokio::test]
async fn sqlite_at_its_size_bound_loses_no_acknowledged_append() {
    let dir = common::TempDir::new("full");
    let path = dir.path().join("relay.db");
    let bounded = SqliteOptions { synchronous: SqliteSync::Normal, max_bytes: Some(2 << 20) };
    let store = SqliteStore::open(&path, bounded).await.unwrap();
    // Another plan's envelopes: the room that is freed later.
    let other = PlanId::from_bytes([0x47; 16]);
    let b = device("full-b");
    store.create_plan(other, b"genesis-other", b, device("identity"), NOW).await.unwrap();
    let filler: Vec<NewEnvelope> = (1..=8)
        .map(|n| envelope(other, b, Kind::Changes, n, DocId::Shared, &big_body(1000 + n)))
        .collect();
    assert!(store.append(&filler, ROOMY_BIG).await.unwrap().iter().all(Result::is_ok));

    let reopen =
        async || SqliteStore::open(&path, SqliteOptions::new(SqliteSync::Normal)).await.unwrap();
    // The bound fills up by itself.
    let start_failing = async |_: &SqliteStore| {};
    let recover = async |store: &SqliteStore| store.delete_plan(other).await.unwrap();
    a_failing_store_acknowledges_only_what_it_stored(&store, reopen, start_failing, recover).await;
}

const ROOMY_BIG: Quota = Quota { max_envelopes: 1 << 20, max_bytes: 1 << 40 };

#[tokio::test]
async fn postgres_failing_commits_lose_no_acknowledged_append() {
    let Some(url) = common::postgres_url() else {
        eprintln!(
            "COVE_TEST_POSTGRES_URL is not set: skipping the PostgreSQL failing-commit chapter"
        );
        return;
    };
    let schema = common::fresh_schema("failing");
    let store = PostgresStore::connect_in_schema(&url, Some(&schema)).await.unwrap();
    // While `failing_commits` has a row, every commit that stored an
    // envelope fails, at COMMIT itself, the way a full disk fails it.
    for sql in [
        "CREATE TABLE failing_commits (on_purpose BOOLEAN)".to_owned(),
        "CREATE FUNCTION fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF EXISTS (SELECT 1 FROM failing_commits) THEN RAISE EXCEPTION 'no space left (simulated)'; END IF; \
           RETURN NULL; END $$"
            .to_owned(),
        "CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON envelopes \
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_commit()"
            .to_owned(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
    }
    let reopen = async || PostgresStore::connect_in_schema(&url, Some(&schema)).await.unwrap();
    let start_failing = async |store: &PostgresStore| {
        sqlx::query("INSERT INTO failing_commits VALUES (true)")
            .execute(store.pool())
            .await
            .unwrap();
    };
    let recover = async |store: &PostgresStore| {
        sqlx::query("DELETE FROM failing_commits").execute(store.pool()).await.unwrap();
    };
    a_failing_store_acknowledges_only_what_it_stored(&store, reopen, start_failing, recover).await;
    common::drop_schema(&url, &schema).await;
}
