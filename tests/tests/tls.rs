//! `wss://` end to end: the relay serves TLS itself; devices trust it by a
//! pinned self-signed certificate or by a certificate authority's file; a
//! wrong pin, an expired certificate or an unknown issuer fails with one
//! sentence before any frame is sent; and a renewed certificate is taken up
//! without dropping devices that are connected.

use cove_client::device::Device;
use cove_client::sync;
use cove_client::transport::{RelayConnection, TransportError};
use cove_shared::{DeviceSecret, DocId, OsEntropy};
use cove_tests::devices::{PASSPHRASE, couple, get, put, sync_now};
use cove_tests::harness::{TempDir, TestRelay};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A certificate and key on disk, and the certificate's fingerprint.
struct Pair {
    cert: PathBuf,
    key: PathBuf,
    fingerprint: String,
}

fn write(dir: &Path, name: &str, cert: &rcgen::Certificate, key: &KeyPair) -> Pair {
    let (cert_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let fingerprint = cove_client::transport::tls::fingerprint(cert.der());
    Pair { cert: cert_path, key: key_path, fingerprint }
}

fn hosts() -> Vec<String> {
    vec!["127.0.0.1".into(), "localhost".into()]
}

/// A self-signed certificate for this machine; `expired`: valid only in 2020.
fn self_signed(dir: &Path, name: &str, expired: bool) -> Pair {
    let mut params = CertificateParams::new(hosts()).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 12, 31);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    write(dir, name, &cert, &key)
}

/// A certificate authority (its certificate written to `ca.pem`) and a
/// certificate it issued for this machine.
fn issued(dir: &Path) -> (PathBuf, Pair) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "A couple's test authority");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(hosts()).unwrap().signed_by(&key, &issuer).unwrap();
    (ca_path, write(dir, "issued", &cert, &key))
}

async fn relay_with(pair: &Pair) -> (TestRelay, String) {
    let (cert, key) = (pair.cert.clone(), pair.key.clone());
    let relay = TestRelay::start_with(move |s| {
        s.tls_cert = Some(cert);
        s.tls_key = Some(key);
    })
    .await;
    let wss = relay.url.replacen("ws://", "wss://", 1);
    (relay, wss)
}

async fn refused(address: &str) -> String {
    let device = DeviceSecret::generate(&mut OsEntropy);
    match RelayConnection::connect(address, &device).await {
        Err(TransportError::Certificate(sentence)) => sentence,
        other => panic!("expected the certificate to be refused: {other:?}"),
    }
}

#[tokio::test]
async fn pairing_and_sync_over_wss_with_a_pinned_self_signed_certificate() {
    let root = TempDir::new("tls-pinned");
    let pair = self_signed(root.path(), "relay", false);
    let (_relay, wss) = relay_with(&pair).await;
    let address = format!("{wss}#sha256={}", pair.fingerprint);
    let (mut a, mut b) = couple(&root, &address, &address).await;
    put(&mut a, DocId::Shared, "over", "wss").await;
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    assert_eq!(get(&b, DocId::Shared, "over").as_deref(), Some("wss"));
    assert!(cove_client::transport::tls::describe(a.relay()).contains(&pair.fingerprint));

    // Without the pin, this machine's authorities do not know it (or the
    // machine has none installed, which is said too).
    let sentence = refused(&wss).await;
    let unknown = sentence.contains("not signed by an authority this machine trusts")
        && sentence.contains(&pair.fingerprint);
    assert!(unknown || sentence.contains("no trusted root certificates"), "{sentence}");
}

#[tokio::test]
async fn pairing_sync_and_live_delivery_over_wss_with_a_certificate_authority() {
    let root = TempDir::new("tls-ca");
    let (ca, pair) = issued(root.path());
    let (_relay, wss) = relay_with(&pair).await;
    let address = format!("{wss}#ca={}", ca.display());
    let (mut a, mut b) = couple(&root, &address, &address).await;
    put(&mut b, DocId::Shared, "from", "sam, over wss").await;
    sync_now(&mut b).await;
    sync_now(&mut a).await;
    assert_eq!(get(&a, DocId::Shared, "from").as_deref(), Some("sam, over wss"));

    // Live: Sam's daemon applies Alex's next change as it is pushed.
    let (applied, mut events) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(async move {
        let report = |event: &sync::Event| {
            if matches!(event, sync::Event::Synced(_) | sync::Event::Applied(_)) {
                let _ = applied.send(());
            }
        };
        let stop = Box::pin(async {
            let _ = stopped.await;
        });
        let result = sync::run_daemon(&mut b, report, stop).await;
        (b, result)
    });
    events.recv().await;
    put(&mut a, DocId::Shared, "live", "over wss").await;
    sync_now(&mut a).await;
    tokio::time::timeout(Duration::from_secs(10), events.recv()).await.unwrap();
    while tokio::time::timeout(Duration::from_secs(1), events.recv()).await.is_ok() {}
    let _ = stop.send(());
    let (b, result) = daemon.await.unwrap();
    result.unwrap();
    assert_eq!(get(&b, DocId::Shared, "live").as_deref(), Some("over wss"));
}

/// A relay that serves TLS but is configured to accept only a `ws://`
/// origin: a device that dialed `wss://` signs the `wss://` origin, so it is
/// not signed in, and it is told so without being pointed at `ws://`.
#[tokio::test]
async fn a_device_that_dialed_wss_is_never_signed_in_for_a_ws_origin() {
    let root = TempDir::new("tls-scheme");
    let pair = self_signed(root.path(), "relay", false);
    let (cert, key) = (pair.cert.clone(), pair.key.clone());
    let relay = TestRelay::start_with(move |s| {
        s.origins = vec![format!("ws://{}", s.listen)];
        s.tls_cert = Some(cert);
        s.tls_key = Some(key);
    })
    .await;
    let wss = relay.url.replacen("ws://", "wss://", 1);
    let device = DeviceSecret::generate(&mut OsEntropy);
    let address = format!("{wss}#sha256={}", pair.fingerprint);
    match RelayConnection::connect(&address, &device).await {
        Err(TransportError::PlainOnly { dialed }) => assert_eq!(dialed, wss),
        other => panic!("expected a refusal without a downgrade: {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_pin_or_an_expired_certificate_fails_with_one_sentence() {
    let root = TempDir::new("tls-refused");
    let pair = self_signed(root.path(), "relay", false);
    let other = self_signed(root.path(), "other", false);
    let (_relay, wss) = relay_with(&pair).await;
    let sentence = refused(&format!("{wss}#sha256={}", other.fingerprint)).await;
    assert!(sentence.contains(&pair.fingerprint) && sentence.contains(&other.fingerprint));
    assert!(sentence.starts_with("the relay presented a certificate with SHA-256 fingerprint"));

    let expired = self_signed(root.path(), "expired", true);
    let (_old, old_wss) = relay_with(&expired).await;
    let sentence = refused(&format!("{old_wss}#sha256={}", expired.fingerprint)).await;
    assert!(sentence.contains("has expired"), "{sentence}");
}

/// The operator replaces the certificate files: new connections get the
/// new certificate within the reload interval, while devices that were
/// connected stay connected and keep delivering live.
#[tokio::test]
async fn a_renewed_certificate_is_taken_up_without_dropping_connected_devices() {
    let root = TempDir::new("tls-reload");
    let first = self_signed(root.path(), "relay", false);
    let (_relay, wss) = relay_with(&first).await;
    let address = format!("{wss}#sha256={}", first.fingerprint);
    let (a, b) = couple(&root, &address, &address).await;
    let home_a = a.home().clone();

    let (events, mut seen) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut stops = Vec::new();
    let mut daemons = Vec::new();
    for (name, device) in [("alex", a), ("sam", b)] {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        let events = events.clone();
        daemons.push(tokio::spawn(async move {
            let mut device = device;
            let report = |event: &sync::Event| {
                let what = match event {
                    sync::Event::Synced(_) => "synced",
                    sync::Event::Applied(_) => "applied",
                    sync::Event::Disconnected { .. } => "disconnected",
                    _ => "other",
                };
                let _ = events.send(format!("{name} {what}"));
            };
            let stop = Box::pin(async {
                let _ = stopped.await;
            });
            let result = sync::run_daemon(&mut device, report, stop).await;
            (device, result)
        }));
    }
    for _ in 0..2 {
        assert!(seen.recv().await.unwrap().ends_with("synced"));
    }

    // A renewed certificate, with a new key, in the same files.
    let renewed = self_signed(root.path(), "renewed", false);
    std::fs::copy(&renewed.cert, &first.cert).unwrap();
    std::fs::copy(&renewed.key, &first.key).unwrap();
    let device = DeviceSecret::generate(&mut OsEntropy);
    let new_address = format!("{wss}#sha256={}", renewed.fingerprint);
    let mut taken_up = false;
    for _ in 0..100 {
        if RelayConnection::connect(&new_address, &device).await.is_ok() {
            taken_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(taken_up, "the relay never served the renewed certificate");

    // Alex edits through another handle on the same state directory; the
    // running daemon sends it over its open connection, and Sam's daemon
    // applies it live.
    let mut alex = Device::open(&home_a, PASSPHRASE).await.unwrap();
    put(&mut alex, DocId::Shared, "after", "the renewal").await;
    // The daemon looks at the outbox every second; give both a few.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    let mut applied = false;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, seen.recv()).await {
        assert!(!event.ends_with("disconnected"), "a connected device was dropped: {event}");
        applied |= event == "sam applied";
    }
    assert!(applied, "sam's daemon applied nothing live");
    for stop in stops {
        let _ = stop.send(());
    }
    for daemon in daemons {
        let (device, result) = daemon.await.unwrap();
        result.unwrap();
        if device.partner() != alex.partner() {
            assert_eq!(get(&device, DocId::Shared, "after").as_deref(), Some("the renewal"));
        }
    }
}

/// The commands a couple runs: `cove-server gen-cert` prints the pin, and
/// `cove init --relay-cert-sha256` stores it, shows it and uses it; plain
/// `ws://` to another machine is refused without the flag that consents.
/// (The relay runs in this process: the commands block one worker only.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_make_pin_and_show_a_relay_certificate() {
    use cove_tests::harness::workspace_binary;
    use std::process::Command;
    let root = TempDir::new("tls-cli");
    let dir = root.path().join("tls");
    let made = Command::new(workspace_binary("cove-server", "cove-server"))
        .args(["gen-cert", "--host", "127.0.0.1", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let printed = String::from_utf8_lossy(&made.stdout).into_owned();
    let pin = printed
        .split("--relay-cert-sha256 ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no fingerprint printed: {printed}"))
        .to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("cove-relay.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is its owner's alone");
    }
    // A second run keeps the pair that devices may have pinned.
    let again = Command::new(workspace_binary("cove-server", "cove-server"))
        .args(["gen-cert", "--host", "127.0.0.1", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let pair = Pair {
        cert: dir.join("cove-relay.crt"),
        key: dir.join("cove-relay.key"),
        fingerprint: pin.clone(),
    };
    let (_relay, wss) = relay_with(&pair).await;

    let cove = |home: &str, args: &[&str]| {
        Command::new(workspace_binary("cove-cli", "cove"))
            .args(args)
            .env("COVE_HOME", root.path().join(home))
            .env("COVE_PASSPHRASE", PASSPHRASE)
            .output()
            .unwrap()
    };
    let init =
        cove("alex", &["init", "--relay", &wss, "--relay-cert-sha256", &pin, "--name", "Alex"]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let status = cove("alex", &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["reachable"], true, "{status}");
    assert!(status["relay"].as_str().unwrap().contains(&format!("pinned: SHA-256 {pin}")));

    // Pinned to another certificate, the device says which it was shown.
    let other = "ab".repeat(32);
    let set = cove("alex", &["relay", "set", &wss, "--relay-cert-sha256", &other]);
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let status = cove("alex", &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let error = status["relay_error"].as_str().unwrap_or_default();
    assert!(error.contains(&pin) && error.contains(&other), "{status}");
    cove("alex", &["relay", "set", &wss, "--relay-cert-sha256", &pin]);
    let status = cove("alex", &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["reachable"], true, "{status}");

    let plain = cove("sam", &["init", "--relay", "ws://192.0.2.1:2683", "--name", "Sam"]);
    assert!(!plain.status.success());
    let said = String::from_utf8_lossy(&plain.stderr);
    assert!(said.contains("ws:// is not encrypted") && said.contains("--allow-plain-ws"), "{said}");
    assert!(!root.path().join("sam").join("keystore").exists(), "nothing was made");
}

/// The reverse-proxy route: a proxy terminates TLS (as Caddy does) and
/// forwards to a relay that speaks plain WebSocket on loopback; the device
/// dials the proxy's `wss://` address and signs that origin, which the
/// relay is configured to accept.
#[tokio::test]
async fn behind_a_tls_terminating_proxy_the_device_signs_the_origin_it_dialed() {
    let root = TempDir::new("tls-proxy");
    let pair = self_signed(root.path(), "proxy", false);
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("wss://{}", front.local_addr().unwrap());
    let accepted = origin.clone();
    let relay = TestRelay::start_with(move |s| s.origins = vec![accepted]).await;
    let upstream = relay.addr;
    let acceptor = cove_server::tls::Tls::load(&pair.cert, &pair.key).unwrap().acceptor();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = front.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    let address = format!("{origin}#sha256={}", pair.fingerprint);
    let (mut a, mut b) = couple(&root, &address, &address).await;
    put(&mut a, DocId::Shared, "through", "the proxy").await;
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    assert_eq!(get(&b, DocId::Shared, "through").as_deref(), Some("the proxy"));
}

/// A TLS handshake is no answer: a peer that completes it and then sends
/// nothing stays in its handshake, counted against the cap on such
/// sockets, and is closed at the handshake deadline, as a silent plain
/// socket is.
#[tokio::test]
async fn a_completed_tls_handshake_with_no_request_stays_under_the_handshake_caps() {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::AsyncReadExt;
    let root = TempDir::new("tls-pending");
    let (ca, pair) = issued(root.path());
    let (cert, key) = (pair.cert.clone(), pair.key.clone());
    let relay = TestRelay::start_with(move |s| {
        s.tls_cert = Some(cert);
        s.tls_key = Some(key);
        s.limits.handshake_timeout = Duration::from_secs(2);
        s.limits.max_pending_connections = 4;
    })
    .await;
    let mut roots = rustls::RootCertStore::empty();
    let ca_der = rustls::pki_types::CertificateDer::from_pem_file(&ca).unwrap();
    roots.add(ca_der).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();

    let started = tokio::time::Instant::now();
    let mut held = Vec::new();
    for _ in 0..4 {
        let tcp = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
        held.push(connector.connect(name.clone(), tcp).await.expect("the TLS handshake"));
    }
    // Past the cap, a new socket is closed at once.
    let mut over = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(800), over.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "four silent TLS sockets left room for a fifth: {read:?}"
    );
    // The silent TLS sockets are closed at the handshake deadline.
    for socket in &mut held {
        let read = tokio::time::timeout(Duration::from_secs(4), socket.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "a silent TLS socket stayed: {read:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// `cove-server health` asks a TLS relay over TLS, trusting exactly the
/// relay's own certificate file; plain HTTP, or another certificate, gets
/// no "healthy".
#[tokio::test]
async fn the_health_probe_speaks_tls_to_a_relay_that_serves_it() {
    let root = TempDir::new("tls-health");
    let pair = self_signed(root.path(), "relay", false);
    let other = self_signed(root.path(), "other", false);
    let (relay, _) = relay_with(&pair).await;
    let probe = |cert: Option<PathBuf>| {
        let addr = relay.addr;
        tokio::task::spawn_blocking(move || cove_server::probe::health(addr, cert.as_deref()))
    };
    probe(Some(pair.cert.clone())).await.unwrap().expect("healthy over TLS");
    let plain = probe(None).await.unwrap().expect_err("plain HTTP to a TLS relay");
    assert!(plain.contains(&relay.addr.to_string()), "{plain}");
    probe(Some(other.cert.clone())).await.unwrap().expect_err("another certificate");
}
