//! Desktop notifications, on a private D-Bus session bus (Debian's
//! `dbus-daemon`, which `.ci/run` installs) with a notification service
//! started in the test: `cove daemon` and `cove ui` raise one for a
//! partner's signal and for a reminder, in discreet words unless
//! `--notify-content`.

use cove_tests::cli::{Cove, pair_couple, sqlite_relay, today};
use cove_tests::harness::TempDir;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zbus::zvariant::Value;

/// The notification service: keeps what it was asked to show.
struct Service {
    shown: Arc<Mutex<Vec<(String, String)>>>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Service {
    #[allow(clippy::too_many_arguments)]
    async fn notify(
        &self,
        app_name: &str,
        _replaces_id: u32,
        _app_icon: &str,
        summary: &str,
        _body: &str,
        _actions: Vec<&str>,
        _hints: HashMap<&str, Value<'_>>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut shown = self.shown.lock().unwrap();
        shown.push((app_name.to_owned(), summary.to_owned()));
        u32::try_from(shown.len()).unwrap()
    }

    async fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into()]
    }

    async fn get_server_information(&self) -> (String, String, String, String) {
        ("test".into(), "cove".into(), "1".into(), "1.2".into())
    }
}

/// A private session bus: its process and address.
struct Bus {
    child: Child,
    address: String,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn private_bus() -> Option<Bus> {
    let mut child = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take()?).read_line(&mut line).ok()?;
    Some(Bus { child, address: line.trim().to_owned() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_raises_discreet_desktop_notifications_on_a_session_bus() {
    let Some(bus) = private_bus() else {
        assert!(
            std::env::var_os("COVE_REQUIRE_DBUS").is_none(),
            "dbus-daemon is not installed, and this run requires the notification test"
        );
        eprintln!("skipped: dbus-daemon is not installed (.ci/run installs it)");
        return;
    };
    let shown = Arc::new(Mutex::new(Vec::new()));
    let _service = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .name("org.freedesktop.Notifications")
        .unwrap()
        .serve_at("/org/freedesktop/Notifications", Service { shown: Arc::clone(&shown) })
        .unwrap()
        .build()
        .await
        .unwrap();

    let root = TempDir::new("notifications");
    let relay = sqlite_relay(&root).await;
    let (mut alex, mut sam) =
        (Cove::new(root.path().join("alex")), Cove::new(root.path().join("sam")));
    pair_couple(&mut alex, &mut sam, &relay.url);
    sam.json(&["review", "next", &today()]);
    alex.json(&["sync"]);
    let mut daemon = alex
        .command(&["daemon"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let has = |needle: &str| shown.lock().unwrap().iter().any(|(_, s)| s == needle);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !has("Cove: a review is due") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sam.json(&["signal", "stop"]);
    while !has("Cove: your partner used the safe word") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    daemon.kill().unwrap();
    let _ = daemon.wait();

    // `cove ui` raises them too, from the sync engine inside it.
    let signals_before = |shown: &[(String, String)]| {
        shown.iter().filter(|(_, s)| s == "Cove: a signal from your partner").count()
    };
    let before = signals_before(&shown.lock().unwrap());
    let mut page = alex
        .command(&["ui", "--no-open", "--lock-after", "0"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // It is serving once it prints its address.
    let mut line = String::new();
    BufReader::new(page.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("http://127.0.0.1:"), "{line}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    sam.json(&["signal", "pause"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while signals_before(&shown.lock().unwrap()) == before && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    page.kill().unwrap();
    let _ = page.wait();
    assert!(signals_before(&shown.lock().unwrap()) > before, "cove ui raised no notification");

    let shown = shown.lock().unwrap().clone();
    assert!(shown.iter().all(|(app, _)| app == "Cove"), "{shown:?}");
    assert!(shown.iter().any(|(_, s)| s == "Cove: a review is due"), "{shown:?}");
    assert!(shown.iter().any(|(_, s)| s == "Cove: your partner used the safe word"), "{shown:?}");
    assert!(
        shown.iter().all(|(_, s)| !s.contains("stop everything") && !s.contains("since")),
        "no plan content without --notify-content: {shown:?}"
    );
}
