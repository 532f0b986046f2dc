//! The relay, driven through the real client transport (and raw sockets
//! where a test must misbehave): storage and live delivery, authentication,
//! isolation between plans, bounds, pairing, compaction and metrics.

use cove_client::transport::{Push, RelayConnection, TransportError};
use cove_shared::wire::{self, ClientToRelay, Cursor, ErrorCode, PairOutcome, RelayToClient};
use cove_shared::{DeviceSecret, DocId, Kind, ManualClock, OsEntropy, PlanId};
use cove_tests::harness::{TestPlan, TestRelay, http_get, next_push};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Raw =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw(relay: &TestRelay) -> Raw {
    let (socket, _) =
        tokio_tungstenite::connect_async(format!("{}/v1/ws", relay.url)).await.unwrap();
    socket
}

async fn read(socket: &mut Raw) -> Option<RelayToClient> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.ok()?? {
            Ok(Message::Binary(frame)) => return Some(wire::decode(&frame).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

async fn send(socket: &mut Raw, message: &ClientToRelay) {
    socket.send(Message::Binary(wire::encode(message).unwrap().into())).await.unwrap();
}

fn error_code(message: Option<RelayToClient>) -> Option<ErrorCode> {
    match message {
        Some(RelayToClient::Error { code, .. }) => Some(code),
        _ => None,
    }
}

fn refused(result: Result<impl std::fmt::Debug, TransportError>) -> ErrorCode {
    match result {
        Err(TransportError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Authenticates a raw socket as `device`.
async fn raw_auth(relay: &TestRelay, device: &DeviceSecret) -> Raw {
    let mut socket = raw(relay).await;
    let Some(RelayToClient::Challenge { nonce, .. }) = read(&mut socket).await else {
        panic!("no challenge")
    };
    send(&mut socket, &wire::answer_challenge(device, &relay.url, &nonce).unwrap()).await;
    assert!(matches!(read(&mut socket).await, Some(RelayToClient::Authenticated { .. })));
    socket
}

#[tokio::test]
async fn members_store_fetch_and_receive_envelopes_live() {
    let relay = TestRelay::start().await;
    let mut plan = TestPlan::new();
    let (a, mut a_pushes) = relay.connect(&plan.a).await;
    plan.register(&a).await;
    let (b, mut b_pushes) = relay.connect(&plan.b).await;
    a.subscribe(plan.plan).await.unwrap();
    b.subscribe(plan.plan).await.unwrap();

    let first = plan.change_by_a(b"menu: warm tea");
    assert_eq!(a.push(plan.plan, &first).await.unwrap(), (Cursor(1), false));
    let item = next_push(&mut b_pushes, |p| match p {
        Push::Deliver { item, .. } => Some(item),
        _ => None,
    })
    .await;
    assert_eq!((item.cursor, item.envelope.0.as_slice()), (Cursor(1), first.as_slice()));

    // A resend is answered with the original cursor; nothing new is pushed.
    assert_eq!(a.push(plan.plan, &first).await.unwrap(), (Cursor(1), true));
    let second = plan.change_by_b(b"sequence: water first");
    assert_eq!(b.push(plan.plan, &second).await.unwrap(), (Cursor(2), false));
    let item = next_push(&mut a_pushes, |p| match p {
        Push::Deliver { item, .. } => Some(item),
        _ => None,
    })
    .await;
    assert_eq!(item.cursor, Cursor(2), "A gets B's envelope, and never its own");

    let (items, head, compacted) = b.fetch(plan.plan, Cursor(0), 100).await.unwrap();
    assert_eq!(items.iter().map(|i| i.cursor).collect::<Vec<_>>(), [Cursor(1), Cursor(2)]);
    assert_eq!((head, compacted), (Cursor(2), Cursor(0)));
    let (items, _, _) = b.fetch(plan.plan, Cursor(1), 100).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(a.fetch_membership(plan.plan, 0).await.unwrap().len(), 2);
}

#[tokio::test]
async fn equivocation_and_envelopes_the_log_does_not_admit_are_refused() {
    let relay = TestRelay::start().await;
    let mut plan = TestPlan::new();
    let (a, _) = relay.connect(&plan.a).await;
    plan.register(&a).await;
    let (b, _) = relay.connect(&plan.b).await;

    let envelope = plan.change_by_a(b"one");
    a.push(plan.plan, &envelope).await.unwrap();
    // The same position signed again with other content.
    let a_copy = DeviceSecret::from_secret_bytes(&plan.a.to_secret_bytes()).unwrap();
    let other = plan.equivocate(&a_copy, Kind::Changes, DocId::Shared, b"two");
    assert_eq!(refused(a.push(plan.plan, &other).await), ErrorCode::Equivocation);

    // B writes A's document: the log says B does not own it.
    let b_copy = DeviceSecret::from_secret_bytes(&plan.b.to_secret_bytes()).unwrap();
    let trespass = plan.seal(&b_copy, Kind::Changes, DocId::PartnerA, b"rewritten boundary");
    assert_eq!(refused(b.push(plan.plan, &trespass).await), ErrorCode::InvalidEnvelope);
    // A uploads an envelope B signed: the sender is not the connection's device.
    let from_b = plan.change_by_b(b"b's change");
    assert_eq!(refused(a.push(plan.plan, &from_b).await), ErrorCode::InvalidEnvelope);
    // A flipped bit.
    let mut tampered = plan.change_by_a(b"three");
    tampered[200] ^= 1;
    assert_eq!(refused(a.push(plan.plan, &tampered).await), ErrorCode::InvalidEnvelope);
    // A snapshot pushed as an envelope.
    let a_copy = DeviceSecret::from_secret_bytes(&plan.a.to_secret_bytes()).unwrap();
    let snapshot = plan.seal(&a_copy, Kind::Snapshot, DocId::Shared, b"saved doc");
    assert_eq!(refused(a.push(plan.plan, &snapshot).await), ErrorCode::InvalidEnvelope);
    // The connection carries on.
    a.ping().await.unwrap();
}

#[tokio::test]
async fn authentication_refuses_bad_replayed_late_and_missing_answers() {
    let relay = TestRelay::start_with(|s| s.limits.auth_timeout = Duration::from_millis(300)).await;
    let device = DeviceSecret::generate(&mut OsEntropy);

    // A signature over the wrong origin.
    let mut socket = raw(&relay).await;
    let Some(RelayToClient::Challenge { nonce, .. }) = read(&mut socket).await else { panic!() };
    send(&mut socket, &wire::answer_challenge(&device, "wss://another.example", &nonce).unwrap())
        .await;
    assert_eq!(error_code(read(&mut socket).await), Some(ErrorCode::AuthFailed));

    // A valid answer, replayed on a new connection with a new nonce.
    let mut first = raw(&relay).await;
    let Some(RelayToClient::Challenge { nonce, .. }) = read(&mut first).await else { panic!() };
    let answer = wire::answer_challenge(&device, &relay.url, &nonce).unwrap();
    send(&mut first, &answer).await;
    assert!(matches!(read(&mut first).await, Some(RelayToClient::Authenticated { .. })));
    let mut second = raw(&relay).await;
    let _ = read(&mut second).await;
    send(&mut second, &answer).await;
    assert_eq!(error_code(read(&mut second).await), Some(ErrorCode::AuthFailed));

    // No answer within the window: the relay gives up, and a late answer is too late.
    let mut slow = raw(&relay).await;
    let Some(RelayToClient::Challenge { nonce, .. }) = read(&mut slow).await else { panic!() };
    assert_eq!(error_code(read(&mut slow).await), Some(ErrorCode::AuthTimeout));
    let late = wire::answer_challenge(&device, &relay.url, &nonce).unwrap();
    let _ = slow.send(Message::Binary(wire::encode(&late).unwrap().into())).await;
    assert!(read(&mut slow).await.is_none(), "the connection is closed");

    // A request before authenticating.
    let mut eager = raw(&relay).await;
    let _ = read(&mut eager).await;
    send(&mut eager, &ClientToRelay::Ping { request: 1 }).await;
    assert_eq!(error_code(read(&mut eager).await), Some(ErrorCode::AuthRequired));
}

#[tokio::test]
async fn unknown_and_revoked_devices_are_refused() {
    let relay = TestRelay::start().await;
    let plan = TestPlan::new();
    let (a, _) = relay.connect(&plan.a).await;
    plan.register(&a).await;

    // A device that authenticates but belongs to no plan.
    let stranger = DeviceSecret::generate(&mut OsEntropy);
    let (s, _) = relay.connect(&stranger).await;
    assert_eq!(refused(s.fetch(plan.plan, Cursor(0), 10).await), ErrorCode::NotFound);

    // B is connected and subscribed when A revokes it: B is told and
    // disconnected at once, and refused from then on.
    let (b, mut b_pushes) = relay.connect(&plan.b).await;
    b.subscribe(plan.plan).await.unwrap();
    let new_key = cove_shared::SymmetricKey::random(&mut OsEntropy);
    let revoke = plan.log.revoke(&plan.a, plan.b.id(), vec![], &new_key, &mut OsEntropy).unwrap();
    a.append_membership(plan.plan, revoke.encode()).await.unwrap();
    let revoked_plan = next_push(&mut b_pushes, |p| match p {
        Push::Revoked { plan } => Some(plan),
        _ => None,
    })
    .await;
    assert_eq!(revoked_plan, plan.plan);
    assert!(b.ping().await.is_err(), "the connection was closed");
    let (b2, _) = relay.connect(&plan.b).await;
    assert_eq!(refused(b2.fetch(plan.plan, Cursor(0), 10).await), ErrorCode::Revoked);
}

#[tokio::test]
async fn a_device_cannot_touch_another_plan_and_cannot_tell_it_exists() {
    let relay = TestRelay::start().await;
    let x = TestPlan::new();
    let mut y = TestPlan::new();
    let (xa, _) = relay.connect(&x.a).await;
    x.register(&xa).await;
    let (ya, _) = relay.connect(&y.a).await;
    y.register(&ya).await;
    let y_envelope = y.change_by_a(b"private to y");
    ya.push(y.plan, &y_envelope).await.unwrap();
    let ghost = PlanId::random(&mut OsEntropy);

    // Every plan-scoped request, against plan Y and against a plan that does
    // not exist: the same answer, word for word.
    for target in [y.plan, ghost] {
        let mut answers = Vec::new();
        answers.push(xa.fetch(target, Cursor(0), 10).await.map(|_| ()));
        answers.push(xa.push(target, &y_envelope).await.map(|_| ()));
        answers.push(xa.subscribe(target).await);
        answers.push(xa.ack(target, Cursor(1)).await);
        answers.push(xa.put_snapshot(target, Cursor(1), &y_envelope).await.map(|_| ()));
        answers.push(xa.get_snapshot(target, DocId::Shared).await.map(|_| ()));
        answers.push(xa.fetch_membership(target, 0).await.map(|_| ()));
        answers.push(xa.append_membership(target, x.log.entries()[1].encode()).await.map(|_| ()));
        answers.push(xa.delete_plan(target).await);
        for answer in answers {
            match answer {
                Err(TransportError::Refused { code, message }) => {
                    assert_eq!(code, ErrorCode::NotFound);
                    assert_eq!(message, ErrorCode::NotFound.describe());
                }
                other => panic!("expected not_found for {target}, got {other:?}"),
            }
        }
    }
    // Plan Y is untouched.
    let (items, _, _) = ya.fetch(y.plan, Cursor(0), 10).await.unwrap();
    assert_eq!(items.len(), 1);
}

#[tokio::test]
async fn a_snapshot_replaces_envelopes_only_after_every_device_acknowledged() {
    let relay = TestRelay::start().await;
    let mut plan = TestPlan::new();
    let (a, _) = relay.connect(&plan.a).await;
    plan.register(&a).await;
    let (b, _) = relay.connect(&plan.b).await;
    for i in 0..3 {
        let e = plan.change_by_a(format!("change {i}").as_bytes());
        a.push(plan.plan, &e).await.unwrap();
    }
    let a_copy = DeviceSecret::from_secret_bytes(&plan.a.to_secret_bytes()).unwrap();
    let snapshot = plan.seal(&a_copy, Kind::Snapshot, DocId::Shared, b"the saved document");
    assert_eq!(
        refused(a.put_snapshot(plan.plan, Cursor(9), &snapshot).await),
        ErrorCode::InvalidSnapshot
    );
    assert!(!a.put_snapshot(plan.plan, Cursor(3), &snapshot).await.unwrap());
    a.ack(plan.plan, Cursor(3)).await.unwrap();
    let (items, _, compacted) = b.fetch(plan.plan, Cursor(0), 10).await.unwrap();
    assert_eq!((items.len(), compacted), (3, Cursor(0)), "B has not acknowledged yet");
    b.ack(plan.plan, Cursor(3)).await.unwrap();
    let (items, head, compacted) = b.fetch(plan.plan, Cursor(0), 10).await.unwrap();
    assert_eq!((items.len(), head, compacted), (0, Cursor(3), Cursor(3)));
    let stored = b.get_snapshot(plan.plan, DocId::Shared).await.unwrap().unwrap();
    assert_eq!((stored.covers, stored.envelope.0), (Cursor(3), snapshot));
}

#[tokio::test]
async fn signals_expire_after_their_time_to_live() {
    // On a second boundary, so that the relay's seconds are exact.
    let clock = ManualClock::at(1_900_000_000_000);
    let relay = TestRelay::start_with_clock(Arc::new(clock.clone()), |s| {
        s.limits.signal_ttl = Duration::from_secs(1)
    })
    .await;
    let mut plan = TestPlan::new();
    let (a, _) = relay.connect(&plan.a).await;
    plan.register(&a).await;
    let a_copy = DeviceSecret::from_secret_bytes(&plan.a.to_secret_bytes()).unwrap();
    let signal = plan.seal(&a_copy, Kind::Signal, DocId::Shared, b"pause");
    a.push(plan.plan, &signal).await.unwrap();
    let (items, _, _) = a.fetch(plan.plan, Cursor(0), 10).await.unwrap();
    assert_eq!(items.len(), 1, "kept for a device that is offline");
    clock.advance(999);
    let (items, _, _) = a.fetch(plan.plan, Cursor(0), 10).await.unwrap();
    assert_eq!(items.len(), 1, "still within its time to live");
    clock.advance(1);
    let (items, _, _) = a.fetch(plan.plan, Cursor(0), 10).await.unwrap();
    assert!(items.is_empty(), "the signal outlived its time to live");
}

#[tokio::test]
async fn bad_frames_end_only_their_own_connection() {
    let relay = TestRelay::start_with(|s| s.limits.max_frame_bytes = 64 * 1024).await;
    let mut plan = TestPlan::new();
    let (a, _) = relay.connect(&plan.a).await;
    plan.register(&a).await;

    // A known message (push, 4) whose body is garbage.
    let mut garbage = raw_auth(&relay, &plan.b).await;
    garbage.send(Message::Binary(vec![0x04, 0xff, 0xff, 0xff, 0x13].into())).await.unwrap();
    assert_eq!(error_code(read(&mut garbage).await), Some(ErrorCode::BadFrame));
    // Random bytes, many times over: each gets an answer the protocol
    // defines (almost always an error; now and then random bytes happen to
    // spell a request), never a crash or a frame that does not decode.
    use cove_shared::random::Entropy;
    let mut rng = OsEntropy;
    let mut errors = 0;
    for _ in 0..64 {
        let len = 1 + usize::from(rng.array::<1>()[0]);
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes);
        let mut random = raw_auth(&relay, &plan.b).await;
        random.send(Message::Binary(bytes.into())).await.unwrap();
        match read(&mut random).await {
            Some(RelayToClient::Error { .. }) => errors += 1,
            Some(_) => {}
            None => panic!("the relay closed without a word"),
        }
    }
    assert!(errors > 32, "random bytes should mostly be refused ({errors} of 64)");
    // A text frame.
    let mut text = raw_auth(&relay, &plan.b).await;
    text.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(error_code(read(&mut text).await), Some(ErrorCode::BadFrame));
    // A message from a newer protocol.
    let mut newer = raw_auth(&relay, &plan.b).await;
    newer.send(Message::Binary(vec![0x40, 1, 2].into())).await.unwrap();
    assert_eq!(error_code(read(&mut newer).await), Some(ErrorCode::Unsupported));
    // An oversized frame.
    let mut big = raw_auth(&relay, &plan.b).await;
    let _ = big.send(Message::Binary(vec![0u8; 256 * 1024].into())).await;
    assert_eq!(error_code(read(&mut big).await), Some(ErrorCode::FrameTooLarge));

    // Everyone else carries on.
    let e = plan.change_by_a(b"still here");
    a.push(plan.plan, &e).await.unwrap();
}

/// Reads until the peer closes the socket (`true`) or `within` passes.
async fn closed_within(socket: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn sockets_that_never_finish_their_request_are_closed_and_capped() {
    use tokio::io::AsyncWriteExt;
    let relay = TestRelay::start_with(|s| {
        s.limits.handshake_timeout = Duration::from_millis(600);
        s.limits.max_pending_connections = 8;
    })
    .await;
    let mut plan = TestPlan::new();
    let (a, _) = relay.connect(&plan.a).await;
    plan.register(&a).await;

    // TCP and nothing else; a request that trickles in a byte at a time.
    let mut silent = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let mut trickle = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: relay\r\nX-Slow: ";
    let dripping = async {
        for byte in request.iter().chain(std::iter::repeat(&b'a')) {
            if trickle.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), dripping).await;
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await, "a silent socket stays");
    assert!(closed_within(&mut trickle, Duration::from_secs(3)).await, "a trickle stays");

    // Past the cap of sockets in their handshake, new ones are closed at once.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(tokio::net::TcpStream::connect(relay.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    assert!(closed_within(&mut over, Duration::from_millis(400)).await, "over the cap");
    // Once the held sockets have timed out, new ones are served again; the
    // request for the metrics is then the only socket in its handshake.
    for socket in &mut held {
        assert!(closed_within(socket, Duration::from_secs(3)).await, "held past the timeout");
    }
    let metrics = http_get(&relay.addr.to_string(), "/metrics").await.unwrap();
    assert!(metrics.contains("\ncove_sockets_pending 1\n"), "{metrics}");
    assert!(metrics.contains("\ncove_sockets 2\n"), "A's WebSocket and this request: {metrics}");

    // Authenticated devices never noticed.
    let e = plan.change_by_a(b"still here");
    a.push(plan.plan, &e).await.unwrap();
}

#[tokio::test]
async fn an_answered_socket_is_closed_after_it_falls_silent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let relay = TestRelay::start_with(|s| s.limits.idle_timeout = Duration::from_millis(250)).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n";
    let mut buf = [0u8; 1024];
    // A keep-alive socket that asks again every 200 ms stays open past the
    // socket idle bound (twice the idle timeout: 500 ms)...
    let mut busy = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    for _ in 0..6 {
        busy.write_all(request).await.unwrap();
        let n = busy.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ...and is closed once it falls silent.
    assert!(closed_within(&mut busy, Duration::from_secs(3)).await, "a silent socket stays");
}

/// A TCP socket to the relay from another loopback address than the
/// devices' 127.0.0.1: another client, as far as the relay can tell.
async fn from_elsewhere(relay: &TestRelay) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    socket.connect(relay.addr).await.unwrap()
}

/// One address that holds many silent sockets takes only its own share:
/// everyone else still connects. Before, it took every place for sockets
/// in their handshake, and honest devices were turned away.
#[tokio::test]
async fn one_address_cannot_lock_out_the_others() {
    let relay = TestRelay::start_with(|s| {
        s.limits.max_pending_connections = 32;
        s.limits.max_pending_per_address = 8;
    })
    .await;
    let mut hogs = Vec::new();
    for _ in 0..64 {
        hogs.push(from_elsewhere(&relay).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let metrics = http_get(&relay.addr.to_string(), "/metrics").await.unwrap();
    assert!(
        metrics.contains("\ncove_sockets_pending 9\n"),
        "eight of theirs and this one: {metrics}"
    );
    // An honest device from another address gets through, over and over.
    let mut plan = TestPlan::new();
    let (a, _) = relay.connect(&plan.a).await;
    plan.register(&a).await;
    for _ in 0..10 {
        let (a, _) = relay.connect(&plan.a).await;
        a.push(plan.plan, &plan.change_by_a(b"honest")).await.unwrap();
    }
    // The hog's extra sockets were closed at once.
    let mut closed = 0;
    for hog in &mut hogs {
        if closed_within(hog, Duration::from_millis(20)).await {
            closed += 1;
        }
    }
    assert!(closed >= 56, "only {closed} of the 56 sockets over the cap were closed");
}

/// After one answered request, a second one on the same socket that
/// trickles in a byte at a time is closed once the handshake timeout has
/// passed. Before, every byte moved the socket's idle timer on, and such a
/// socket was never closed.
#[tokio::test]
async fn a_later_request_on_a_kept_socket_must_arrive_within_the_handshake_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let relay =
        TestRelay::start_with(|s| s.limits.handshake_timeout = Duration::from_millis(600)).await;
    let mut socket = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = socket.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let (mut reading, mut writing) = socket.into_split();
    let dripping = tokio::spawn(async move {
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: ".iter().chain(std::iter::repeat(&b'a')) {
            if writing.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match reading.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    dripping.abort();
    assert!(closed.is_ok(), "a trickled second request kept its socket");
}

/// Devices that ask for large pages and never read the answers are
/// dropped once the write timeout passes, rather than holding the relay's
/// memory; others carry on. Before, they stayed until the relay restarted.
#[tokio::test]
async fn a_reader_that_never_reads_is_dropped() {
    let relay = TestRelay::start_with(|s| {
        s.limits.write_timeout = Duration::from_millis(500);
        s.limits.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let mut plan = TestPlan::new();
    let (a, _) = relay.connect(&plan.a).await;
    plan.register(&a).await;
    for _ in 0..4 {
        a.push(plan.plan, &plan.change_by_a(&vec![9u8; 900_000])).await.unwrap();
    }
    let fetch = ClientToRelay::Fetch { request: 1, plan: plan.plan, after: Cursor(0), limit: 512 };
    let mut stalled = Vec::new();
    for _ in 0..6 {
        let mut socket = raw_auth(&relay, &plan.a).await;
        for _ in 0..8 {
            // Sent without waiting: the answers are never read.
            let frame = Message::Binary(wire::encode(&fetch).unwrap().into());
            if tokio::time::timeout(Duration::from_millis(200), socket.send(frame)).await.is_err() {
                break;
            }
        }
        stalled.push(socket);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = http_get(&relay.addr.to_string(), "/metrics").await.unwrap();
        if metrics.contains("\ncove_connections 1\n") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stalled readers are still connected: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.push(plan.plan, &plan.change_by_a(b"still served")).await.unwrap();
    drop(stalled);
}

#[tokio::test]
async fn values_a_store_cannot_hold_are_refused_and_others_are_stored() {
    let relay = TestRelay::start().await;
    let mut plan = TestPlan::new();
    let (a, _) = relay.connect(&plan.a).await;
    plan.register(&a).await;
    let mut other = TestPlan::new();
    let (x, _) = relay.connect(&other.a).await;
    other.register(&x).await;

    // A sequence number past 2^63 - 1, re-signed by the sender itself.
    let mut beyond = plan.change_by_a(b"far");
    beyond[91..99].copy_from_slice(&(1u64 << 63).to_be_bytes());
    let at = beyond.len() - 64;
    let signature = plan.a.sign(&beyond[..at]);
    beyond[at..].copy_from_slice(&signature);
    let unaffected = other.change_by_a(b"unaffected");
    let (pushed, fine) = tokio::join!(a.push(plan.plan, &beyond), x.push(other.plan, &unaffected));
    assert_eq!(refused(pushed), ErrorCode::InvalidEnvelope);
    fine.unwrap();
    // Cursors past 2^63 - 1.
    let mut socket = raw_auth(&relay, &plan.a).await;
    for message in [
        ClientToRelay::Ack { request: 1, plan: plan.plan, cursor: Cursor(u64::MAX) },
        ClientToRelay::Fetch { request: 2, plan: plan.plan, after: Cursor(1 << 63), limit: 1 },
    ] {
        send(&mut socket, &message).await;
        assert_eq!(error_code(read(&mut socket).await), Some(ErrorCode::BadFrame));
    }
    send(&mut socket, &ClientToRelay::Ping { request: 3 }).await;
    assert!(matches!(read(&mut socket).await, Some(RelayToClient::Pong { .. })));
    // The plan's own next envelope is stored as usual.
    a.push(plan.plan, &plan.change_by_a(b"next")).await.unwrap();
    x.push(other.plan, &other.change_by_a(b"again")).await.unwrap();
}

#[tokio::test]
async fn a_flooding_device_is_limited_and_others_are_served() {
    let relay = TestRelay::start_with(|s| {
        s.limits.device_rate_per_sec = 50;
        s.limits.device_rate_burst = 50;
    })
    .await;
    let mut plan = TestPlan::new();
    let (a, _) = relay.connect(&plan.a).await;
    plan.register(&a).await;
    let flooder = DeviceSecret::generate(&mut OsEntropy);
    let (f, _) = relay.connect(&flooder).await;
    let f = f.impatient();
    let mut limited = 0;
    for _ in 0..300 {
        match f.ping().await {
            Ok(()) => {}
            Err(TransportError::Refused { code: ErrorCode::RateLimited, .. }) => limited += 1,
            Err(_) => break,
        }
    }
    assert!(limited >= 200, "only {limited} of 300 requests were limited");
    // The member is unaffected: its device has its own bucket.
    let e = plan.change_by_a(b"unaffected");
    a.push(plan.plan, &e).await.unwrap();
}

#[tokio::test]
async fn a_plan_over_its_quota_is_refused() {
    let relay = TestRelay::start_with(|s| s.limits.plan_max_envelopes = 2).await;
    let mut plan = TestPlan::new();
    let (a, _) = relay.connect(&plan.a).await;
    plan.register(&a).await;
    for i in 0..2 {
        let e = plan.change_by_a(format!("{i}").as_bytes());
        a.push(plan.plan, &e).await.unwrap();
    }
    let e = plan.change_by_a(b"one too many");
    assert_eq!(refused(a.push(plan.plan, &e).await), ErrorCode::QuotaExceeded);
    a.ping().await.unwrap();
}

#[tokio::test]
async fn an_idle_connection_is_closed_with_a_reason() {
    let relay = TestRelay::start_with(|s| s.limits.idle_timeout = Duration::from_millis(300)).await;
    let device = DeviceSecret::generate(&mut OsEntropy);
    let mut idle = raw_auth(&relay, &device).await;
    assert_eq!(error_code(read(&mut idle).await), Some(ErrorCode::IdleTimeout));
}

#[tokio::test]
async fn connections_beyond_the_cap_are_turned_away() {
    let relay = TestRelay::start_with(|s| s.limits.max_connections = 2).await;
    let device = DeviceSecret::generate(&mut OsEntropy);
    let _first = raw_auth(&relay, &device).await;
    // The cap counts connections that have not authenticated yet, too.
    let mut second = raw(&relay).await;
    assert!(matches!(read(&mut second).await, Some(RelayToClient::Challenge { .. })));
    let mut third = raw(&relay).await;
    assert_eq!(error_code(read(&mut third).await), Some(ErrorCode::TooManyConnections));
}

#[tokio::test]
async fn pairing_mailboxes_relay_work_once_burn_and_expire() {
    let relay = TestRelay::start_with(|s| s.limits.pairing_ttl = Duration::from_secs(1)).await;
    let opener = DeviceSecret::generate(&mut OsEntropy);
    let joiner = DeviceSecret::generate(&mut OsEntropy);
    let intruder = DeviceSecret::generate(&mut OsEntropy);
    let (o, mut o_pushes) = relay.connect(&opener).await;
    let (j, mut j_pushes) = relay.connect(&joiner).await;

    // The opener speaks first; the joiner receives it on joining.
    let nameplate = o.pair_open().await.unwrap();
    o.pair_send(&nameplate, b"spake2 message A").await.unwrap();
    j.pair_join(&nameplate).await.unwrap();
    let body = next_push(&mut j_pushes, |p| match p {
        Push::PairMessage { body, .. } => Some(body),
        _ => None,
    })
    .await;
    assert_eq!(body, b"spake2 message A");
    j.pair_send(&nameplate, b"spake2 message B").await.unwrap();
    let body = next_push(&mut o_pushes, |p| match p {
        Push::PairMessage { body, .. } => Some(body),
        _ => None,
    })
    .await;
    assert_eq!(body, b"spake2 message B");
    // A third device cannot join or write.
    let (x, _) = relay.connect(&intruder).await;
    assert_eq!(refused(x.pair_send(&nameplate, b"hi").await), ErrorCode::PairingUnknown);
    o.pair_close(&nameplate, PairOutcome::Completed).await.unwrap();
    let outcome = next_push(&mut j_pushes, |p| match p {
        Push::PairClosed { outcome, .. } => Some(outcome),
        _ => None,
    })
    .await;
    assert_eq!(outcome, PairOutcome::Completed);
    // Spent: it works once.
    assert_eq!(refused(x.pair_join(&nameplate).await), ErrorCode::PairingBurned);

    // A failed attempt burns it: both sides are told, and it cannot be retried.
    let nameplate = o.pair_open().await.unwrap();
    j.pair_join(&nameplate).await.unwrap();
    j.pair_close(&nameplate, PairOutcome::Failed).await.unwrap();
    let outcome = next_push(&mut o_pushes, |p| match p {
        Push::PairClosed { outcome, .. } => Some(outcome),
        _ => None,
    })
    .await;
    assert_eq!(outcome, PairOutcome::Failed);
    assert_eq!(refused(o.pair_send(&nameplate, b"again").await), ErrorCode::PairingBurned);

    // A second joiner burns it too, and the opener hears of it.
    let nameplate = o.pair_open().await.unwrap();
    j.pair_join(&nameplate).await.unwrap();
    assert_eq!(refused(x.pair_join(&nameplate).await), ErrorCode::PairingBurned);
    let outcome = next_push(&mut o_pushes, |p| match p {
        Push::PairClosed { outcome, .. } => Some(outcome),
        _ => None,
    })
    .await;
    assert_eq!(outcome, PairOutcome::Failed);
}

#[tokio::test]
async fn an_unjoined_mailbox_expires() {
    let clock = ManualClock::at(1_900_000_000_000);
    let relay = TestRelay::start_with_clock(Arc::new(clock.clone()), |s| {
        s.limits.pairing_ttl = Duration::from_secs(1)
    })
    .await;
    let opener = DeviceSecret::generate(&mut OsEntropy);
    let joiner = DeviceSecret::generate(&mut OsEntropy);
    let (o, _) = relay.connect(&opener).await;
    let (j, _) = relay.connect(&joiner).await;
    let nameplate = o.pair_open().await.unwrap();
    clock.advance(999);
    o.pair_send(&nameplate, b"still there?").await.unwrap();
    clock.advance(1);
    match o.pair_send(&nameplate, b"still there?").await {
        Err(TransportError::Refused { code: ErrorCode::PairingUnknown, .. }) => {}
        other => panic!("the mailbox outlived its time: {other:?}"),
    }
    assert_eq!(refused(j.pair_join(&nameplate).await), ErrorCode::PairingUnknown);
}

#[tokio::test]
async fn pairing_attempts_are_limited_per_address() {
    let relay = TestRelay::start_with(|s| s.limits.pairing_attempts_per_address = 3).await;
    let device = DeviceSecret::generate(&mut OsEntropy);
    let (d, _) = relay.connect(&device).await;
    for _ in 0..3 {
        d.pair_open().await.unwrap();
    }
    assert_eq!(refused(d.pair_open().await), ErrorCode::PairingRateLimited);
    assert_eq!(refused(d.pair_join("1").await), ErrorCode::PairingRateLimited);
}

#[tokio::test]
async fn deleting_a_plan_removes_it_for_everyone() {
    let relay = TestRelay::start().await;
    let mut plan = TestPlan::new();
    let (a, _) = relay.connect(&plan.a).await;
    plan.register(&a).await;
    let (b, mut b_pushes) = relay.connect(&plan.b).await;
    b.subscribe(plan.plan).await.unwrap();
    let e = plan.change_by_a(b"soon gone");
    a.push(plan.plan, &e).await.unwrap();
    a.delete_plan(plan.plan).await.unwrap();
    let closed = next_push(&mut b_pushes, |p| match p {
        Push::Closed(error) => Some(error),
        _ => None,
    })
    .await;
    assert_eq!(closed.code(), Some(ErrorCode::NotFound));
    assert_eq!(refused(a.fetch(plan.plan, Cursor(0), 10).await), ErrorCode::NotFound);
}

#[tokio::test]
async fn health_and_metrics_are_served() {
    let relay = TestRelay::start().await;
    let mut plan = TestPlan::new();
    let (a, _) = relay.connect(&plan.a).await;
    plan.register(&a).await;
    let e = plan.change_by_a(b"counted");
    a.push(plan.plan, &e).await.unwrap();
    let host = relay.addr.to_string();
    let health = http_get(&host, "/healthz").await.unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = http_get(&host, "/metrics").await.unwrap();
    assert!(metrics.contains("cove_envelopes_stored_total 1\n"), "{metrics}");
    assert!(metrics.contains("cove_connections 1\n"), "{metrics}");
    assert!(metrics.contains("cove_store_seconds_count{op=\"append\"} 1\n"), "{metrics}");
    assert!(!metrics.contains(&plan.plan.to_string()), "metrics never name a plan");
}

#[tokio::test]
async fn shutdown_tells_connected_devices_and_drains() {
    let relay = TestRelay::start().await;
    let (relay_url, addr) = (relay.url.clone(), relay.addr);
    let plan = TestPlan::new();
    let (a, mut pushes) = relay.connect(&plan.a).await;
    plan.register(&a).await;
    relay.stop().await;
    let closed = next_push(&mut pushes, |p| match p {
        Push::Closed(error) => Some(error),
        _ => None,
    })
    .await;
    assert_eq!(closed.code(), Some(ErrorCode::ShuttingDown));
    // Drained and gone: the stopped relay's own address answers no more.
    assert!(RelayConnection::connect(&relay_url, &plan.a).await.is_err());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
