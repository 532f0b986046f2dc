//! The relay as a real process: SIGKILL durability, a clean SIGTERM,
//! memory under a flood, and two processes sharing one PostgreSQL database.

use cove_client::transport::{Push, RelayConnection};
use cove_shared::wire::{self, Blob, ClientToRelay, Cursor, ErrorCode, PairOutcome};
use cove_shared::{DeviceSecret, OsEntropy};
use cove_tests::harness::{
    RelayProcess, TempDir, TestDatabase, TestPlan, free_port, http_get, next_push,
};
use futures_util::SinkExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn every_acknowledged_envelope_survives_sigkill() {
    let dir = TempDir::new("durable");
    let database = format!("sqlite://{}", dir.path().join("relay.db").display());
    let mut relay = RelayProcess::start(free_port(), &database, &[]).await;
    let mut plan = TestPlan::new();
    let (a, _) = RelayConnection::connect(&relay.url, &plan.a).await.unwrap();
    plan.register(&a).await;

    // Four writers push concurrently; the relay is killed while they are
    // still pushing, right after the 150th acknowledgement.
    let envelopes: Vec<Vec<u8>> =
        (0..400).map(|i| plan.change_by_a(format!("change {i}").as_bytes())).collect();
    let acked: Arc<Mutex<BTreeMap<Cursor, Vec<u8>>>> = Arc::default();
    let (enough, mut enough_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut writers = Vec::new();
    for chunk in envelopes.chunks(100).map(<[Vec<u8>]>::to_vec) {
        let (a, acked, enough) = (a.clone(), acked.clone(), enough.clone());
        let plan_id = plan.plan;
        writers.push(tokio::spawn(async move {
            for envelope in chunk {
                let Ok((cursor, _)) = a.push(plan_id, &envelope).await else {
                    return;
                };
                let count = {
                    let mut acked = acked.lock().unwrap();
                    acked.insert(cursor, envelope);
                    acked.len()
                };
                if count == 150 {
                    let _ = enough.try_send(());
                }
            }
        }));
    }
    enough_rx.recv().await;
    relay.kill();
    for writer in writers {
        let _ = writer.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 150);

    let relay = RelayProcess::start(free_port(), &database, &[]).await;
    let (a, _) = RelayConnection::connect(&relay.url, &plan.a).await.unwrap();
    let mut stored = BTreeMap::new();
    let mut after = Cursor(0);
    loop {
        let (items, _, _) = a.fetch(plan.plan, after, 512).await.unwrap();
        let Some(last) = items.last() else { break };
        after = last.cursor;
        stored.extend(items.into_iter().map(|i| (i.cursor, i.envelope.0)));
    }
    for (cursor, envelope) in &acked {
        assert_eq!(stored.get(cursor), Some(envelope), "acknowledged cursor {cursor} was lost");
    }
}

/// `systemctl reload` sends SIGHUP; a relay without TLS keeps running, with
/// its devices connected.
#[tokio::test]
async fn sighup_without_tls_leaves_the_relay_running() {
    let dir = TempDir::new("sighup");
    let database = format!("sqlite://{}", dir.path().join("relay.db").display());
    let relay = RelayProcess::start(free_port(), &database, &[]).await;
    let mut plan = TestPlan::new();
    let (a, _pushes) = RelayConnection::connect(&relay.url, &plan.a).await.unwrap();
    plan.register(&a).await;
    let hangup = std::process::Command::new("kill")
        .args(["-HUP", &relay.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hangup.success());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (cursor, _) = a.push(plan.plan, &plan.change_by_a(b"after the hangup")).await.unwrap();
    assert!(cursor.0 > 0);
}

#[tokio::test]
async fn sigterm_tells_devices_drains_and_exits_cleanly() {
    let dir = TempDir::new("sigterm");
    let database = format!("sqlite://{}", dir.path().join("relay.db").display());
    let mut relay = RelayProcess::start(free_port(), &database, &[]).await;
    let mut plan = TestPlan::new();
    let (a, mut pushes) = RelayConnection::connect(&relay.url, &plan.a).await.unwrap();
    plan.register(&a).await;
    let (cursor, _) = a.push(plan.plan, &plan.change_by_a(b"before")).await.unwrap();

    let status = relay.terminate(std::time::Duration::from_secs(15)).await;
    let status = status.expect("cove-server did not exit within 15 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    let closed = next_push(&mut pushes, |p| match p {
        Push::Closed(error) => Some(error),
        _ => None,
    })
    .await;
    assert_eq!(closed.code(), Some(ErrorCode::ShuttingDown));

    // What it acknowledged is there after a restart.
    let relay = RelayProcess::start(free_port(), &database, &[]).await;
    let (a, _) = RelayConnection::connect(&relay.url, &plan.a).await.unwrap();
    let (items, _, _) = a.fetch(plan.plan, Cursor(0), 10).await.unwrap();
    assert_eq!(items.last().map(|i| i.cursor), Some(cursor));
}

#[tokio::test]
async fn a_flood_leaves_relay_memory_bounded_and_others_served() {
    let dir = TempDir::new("flood");
    let database = format!("sqlite://{}", dir.path().join("relay.db").display());
    let relay = RelayProcess::start(free_port(), &database, &[]).await;
    let mut plan = TestPlan::new();
    let (a, _) = RelayConnection::connect(&relay.url, &plan.a).await.unwrap();
    plan.register(&a).await;
    let before = relay.rss_kib().unwrap();

    // A device that writes 600 frames of 512 KiB as fast as the socket takes
    // them, never reading an answer: 300 MiB offered in all.
    let flooder = DeviceSecret::generate(&mut OsEntropy);
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{}/v1/ws", relay.url)).await.unwrap();
    use futures_util::StreamExt;
    let Some(Ok(Message::Binary(frame))) = socket.next().await else { panic!("no challenge") };
    let wire::RelayToClient::Challenge { nonce, .. } = wire::decode(&frame).unwrap() else {
        panic!()
    };
    let answer = wire::answer_challenge(&flooder, &relay.url, &nonce).unwrap();
    socket.send(Message::Binary(wire::encode(&answer).unwrap().into())).await.unwrap();
    let junk = wire::encode(&ClientToRelay::Push {
        request: 1,
        plan: plan.plan,
        envelope: Blob(vec![7; 512 * 1024]),
    })
    .unwrap();
    let flood = tokio::spawn(async move {
        for _ in 0..600 {
            if socket.send(Message::Binary(junk.clone().into())).await.is_err() {
                break;
            }
        }
        socket
    });
    // Meanwhile, a member keeps working.
    for i in 0..20 {
        let e = plan.change_by_a(format!("during the flood {i}").as_bytes());
        a.push(plan.plan, &e).await.unwrap();
    }
    let _ = flood.await;
    let after = relay.rss_kib().unwrap();
    let grown = after.saturating_sub(before);
    assert!(
        grown < 96 * 1024,
        "relay memory grew by {grown} KiB under the flood ({before} → {after} KiB)"
    );
}

#[tokio::test]
async fn two_relays_on_one_postgres_database_deliver_to_each_others_devices() {
    let Some(database) = TestDatabase::create().await else {
        eprintln!("COVE_TEST_POSTGRES_URL is not set: skipping the two-relay test");
        return;
    };
    let one = RelayProcess::start(free_port(), &database.url, &[]).await;
    let two = RelayProcess::start(free_port(), &database.url, &[]).await;
    let mut plan = TestPlan::new();
    let (a, mut a_pushes) = RelayConnection::connect(&one.url, &plan.a).await.unwrap();
    plan.register(&a).await;
    let (b, mut b_pushes) = RelayConnection::connect(&two.url, &plan.b).await.unwrap();
    b.subscribe(plan.plan).await.unwrap();
    a.subscribe(plan.plan).await.unwrap();

    // Live delivery crosses processes, both ways.
    let from_a = plan.change_by_a(b"written through relay one");
    let (cursor, _) = a.push(plan.plan, &from_a).await.unwrap();
    let item = next_push(&mut b_pushes, |p| match p {
        Push::Deliver { item, .. } => Some(item),
        _ => None,
    })
    .await;
    assert_eq!((item.cursor, item.envelope.0), (cursor, from_a));
    let from_b = plan.change_by_b(b"written through relay two");
    b.push(plan.plan, &from_b).await.unwrap();
    let item = next_push(&mut a_pushes, |p| match p {
        Push::Deliver { item, .. } => Some(item),
        _ => None,
    })
    .await;
    assert_eq!(item.envelope.0, from_b);

    // So does pairing: the opener on one relay, the joiner on the other.
    let joiner = DeviceSecret::generate(&mut OsEntropy);
    let (j, mut j_pushes) = RelayConnection::connect(&two.url, &joiner).await.unwrap();
    let nameplate = a.pair_open().await.unwrap();
    j.pair_join(&nameplate).await.unwrap();
    j.pair_send(&nameplate, b"hello from relay two").await.unwrap();
    let body = next_push(&mut a_pushes, |p| match p {
        Push::PairMessage { body, .. } => Some(body),
        _ => None,
    })
    .await;
    assert_eq!(body, b"hello from relay two");
    a.pair_send(&nameplate, b"hello from relay one").await.unwrap();
    let body = next_push(&mut j_pushes, |p| match p {
        Push::PairMessage { body, .. } => Some(body),
        _ => None,
    })
    .await;
    assert_eq!(body, b"hello from relay one");
    a.pair_close(&nameplate, PairOutcome::Completed).await.unwrap();

    // And revocation: B, on relay two, is disconnected at once.
    let key = cove_shared::SymmetricKey::random(&mut OsEntropy);
    let revoke = plan.log.revoke(&plan.a, plan.b.id(), vec![], &key, &mut OsEntropy).unwrap();
    a.append_membership(plan.plan, revoke.encode()).await.unwrap();
    let revoked = next_push(&mut b_pushes, |p| match p {
        Push::Revoked { plan } => Some(plan),
        _ => None,
    })
    .await;
    assert_eq!(revoked, plan.plan);
    drop((one, two));
    database.drop_now().await;
}

/// Two relays on one database; relay two's connection for notifications
/// from relay one is cut (as a PostgreSQL restart or a network blip would)
/// while relay one stores envelopes. Whatever was published meanwhile never
/// reaches relay two, so it tells its connected devices to catch up, and
/// they fetch what live delivery skipped. Before, the listener reconnected
/// silently and the envelope was simply never delivered.
#[tokio::test]
async fn a_lost_listener_connection_makes_the_devices_on_that_relay_catch_up() {
    let Some(database) = TestDatabase::create().await else {
        eprintln!("COVE_TEST_POSTGRES_URL is not set: skipping the listener test");
        return;
    };
    let one = RelayProcess::start(free_port(), &database.url, &[]).await;
    let two = RelayProcess::start(free_port(), &database.url, &[]).await;
    let mut plan = TestPlan::new();
    let (a, _) = RelayConnection::connect(&one.url, &plan.a).await.unwrap();
    plan.register(&a).await;
    let (b, mut b_pushes) = RelayConnection::connect(&two.url, &plan.b).await.unwrap();
    b.subscribe(plan.plan).await.unwrap();
    let mut seen: BTreeMap<Cursor, Vec<u8>> = BTreeMap::new();
    let first = plan.change_by_a(b"before the cut");
    a.push(plan.plan, &first).await.unwrap();
    let item = next_push(&mut b_pushes, |p| match p {
        Push::Deliver { item, .. } => Some(item),
        _ => None,
    })
    .await;
    seen.insert(item.cursor, item.envelope.0);

    // Cut every listener on this database, and store envelopes meanwhile.
    let admin = sqlx::PgPool::connect(&database.url).await.unwrap();
    let cut: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity          WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(!cut.is_empty(), "no listener was found to cut");
    let mut pushed = vec![first];
    for i in 0..20 {
        let e = plan.change_by_a(format!("around the cut {i}").as_bytes());
        a.push(plan.plan, &e).await.unwrap();
        pushed.push(e);
    }
    // Relay two tells B to catch up ...
    let closed = next_push(&mut b_pushes, |p| match p {
        Push::Deliver { item, .. } => {
            seen.insert(item.cursor, item.envelope.0);
            None
        }
        Push::Closed(error) => Some(error),
        _ => None,
    })
    .await;
    assert_eq!(closed.code(), Some(ErrorCode::Overloaded), "{closed}");
    // ... and B, reconnecting, fetches what it missed.
    let (b, _) = RelayConnection::connect(&two.url, &plan.b).await.unwrap();
    seen.extend(everything(&b, plan.plan).await);
    let seen: Vec<Vec<u8>> = seen.into_values().collect();
    for e in &pushed {
        assert!(seen.contains(e), "an envelope never reached B");
    }
    let metrics = http_get(&two.http, "/metrics").await.unwrap();
    assert!(!metrics.contains("cove_notification_gaps_total 0\n"), "{metrics}");
    admin.close().await;
    drop((one, two));
    database.drop_now().await;
}

/// An operator's first run: a relay that listens on every interface (as in
/// a container) takes devices that dial it by its loopback names, and a
/// relay configured for another address tells a device, in one sentence,
/// which address it expects, and logs the mismatch once with both.
#[tokio::test]
async fn a_relay_at_an_address_it_does_not_expect_says_which_one_it_does() {
    use cove_client::transport::TransportError;
    let dir = TempDir::new("origins");
    let database = format!("sqlite://{}", dir.path().join("relay.db").display());
    let port = free_port();
    let everywhere =
        RelayProcess::start_listening(&format!("0.0.0.0:{port}"), port, &database, &[]).await;
    let device = DeviceSecret::generate(&mut OsEntropy);
    for url in [format!("ws://127.0.0.1:{port}"), format!("ws://localhost:{port}")] {
        RelayConnection::connect(&url, &device).await.unwrap_or_else(|e| panic!("{url}: {e}"));
    }
    drop(everywhere);

    let log = dir.path().join("relay.log");
    let port = free_port();
    let relay = RelayProcess::start_logged_with(
        port,
        &database,
        &log,
        &[("COVE_ORIGINS", "wss://relay.example.org")],
    )
    .await;
    for _ in 0..3 {
        let refused = RelayConnection::connect(&relay.url, &device).await.unwrap_err();
        assert_eq!(
            refused,
            TransportError::WrongOrigin {
                dialed: relay.url.clone(),
                expected: "wss://relay.example.org".into()
            }
        );
        let sentence = refused.to_string();
        assert!(
            sentence.contains("expects to be reached as wss://relay.example.org"),
            "{sentence}"
        );
    }
    drop(relay);
    let logged = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = logged.lines().filter(|l| l.contains("does not accept")).collect();
    assert_eq!(lines.len(), 1, "once, however often: {logged}");
    assert!(lines[0].contains(&format!("ws://127.0.0.1:{port}")), "{}", lines[0]);
    assert!(lines[0].contains("wss://relay.example.org"), "{}", lines[0]);
}

/// Every envelope the relay holds for `plan`, by cursor.
async fn everything(
    conn: &RelayConnection,
    plan: cove_shared::PlanId,
) -> BTreeMap<Cursor, Vec<u8>> {
    let mut stored = BTreeMap::new();
    let mut after = Cursor(0);
    loop {
        let (items, _, _) = conn.fetch(plan, after, 512).await.unwrap();
        let Some(last) = items.last() else { return stored };
        after = last.cursor;
        stored.extend(items.into_iter().map(|i| (i.cursor, i.envelope.0)));
    }
}

/// The relay's disk fills up (its files may not grow any more, as on a full
/// disk): it refuses pushes as unavailable, acknowledges none that it did
/// not commit, says so at /healthz and in its metrics, and takes pushes
/// again once there is room, without a restart. Before the fix, a commit
/// that failed left the writer connection inside a transaction that was
/// never committed, and every later push was acknowledged and lost.
#[tokio::test]
async fn a_full_disk_loses_no_acknowledged_push_and_writes_resume_by_themselves() {
    let dir = TempDir::new("full-disk");
    let path = dir.path().join("relay.db");
    let database = format!("sqlite://{}", path.display());
    let port = free_port();
    let relay = RelayProcess::start_for_full_disk(port, &database).await;
    let mut plan = TestPlan::new();
    let (a, _) = RelayConnection::connect(&relay.url, &plan.a).await.unwrap();
    plan.register(&a).await;
    let big = |plan: &mut TestPlan, n: u32| {
        let mut payload = vec![0u8; 60_000];
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte = (i as u32 ^ n.wrapping_mul(2_654_435_761)) as u8;
        }
        plan.change_by_a(&payload)
    };
    let mut acked: BTreeMap<Cursor, Vec<u8>> = BTreeMap::new();
    for n in 0..4 {
        let envelope = big(&mut plan, n);
        let (cursor, _) = a.push(plan.plan, &envelope).await.unwrap();
        acked.insert(cursor, envelope);
    }

    // The disk has room for about half a megabyte more.
    let size = |suffix: &str| {
        std::fs::metadata(format!("{}{suffix}", path.display())).map_or(0, |m| m.len())
    };
    relay.limit_file_size(Some(size("").max(size("-wal")) + 512 * 1024));
    let mut refused = 0;
    for n in 4..64 {
        let envelope = big(&mut plan, n);
        match a.push(plan.plan, &envelope).await {
            Ok((cursor, _)) => {
                acked.insert(cursor, envelope);
            }
            Err(cove_client::transport::TransportError::Refused {
                code: ErrorCode::Unavailable,
                ..
            }) => refused += 1,
            Err(other) => panic!("unexpected failure: {other}"),
        }
    }
    assert!(refused >= 30, "only {refused} of 60 pushes were refused on a full disk");
    let health = http_get(&relay.http, "/healthz").await.unwrap();
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    assert!(health.contains("not accepting writes"), "{health}");
    let metrics = http_get(&relay.http, "/metrics").await.unwrap();
    assert!(metrics.contains("cove_store_writable 0\n"), "{metrics}");
    let (reader, _) = RelayConnection::connect(&relay.url, &plan.a).await.unwrap();
    let stored = everything(&reader, plan.plan).await;
    for (cursor, envelope) in &acked {
        assert_eq!(
            stored.get(cursor),
            Some(envelope),
            "acknowledged cursor {cursor} is not stored"
        );
    }

    // Room again: the next push is stored, and health follows.
    relay.limit_file_size(None);
    let envelope = big(&mut plan, 64);
    let (cursor, _) = a.push(plan.plan, &envelope).await.unwrap();
    acked.insert(cursor, envelope);
    let health = http_get(&relay.http, "/healthz").await.unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // And all of it survives a restart.
    drop((a, reader, relay));
    let relay = RelayProcess::start(port, &database, &[]).await;
    let (a, _) = RelayConnection::connect(&relay.url, &plan.a).await.unwrap();
    let stored = everything(&a, plan.plan).await;
    for (cursor, envelope) in &acked {
        assert_eq!(stored.get(cursor), Some(envelope), "acknowledged cursor {cursor} was lost");
    }
}
