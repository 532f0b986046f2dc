//! Test harness: temporary directories, relays in-process and as real
//! processes, throwaway PostgreSQL databases, and a plan fixture that seals
//! real envelopes.

use cove_client::transport::{Push, RelayConnection};
use cove_server::Settings;
use cove_shared::clock::SharedClock;
use cove_shared::envelope::{self, Seal};
use cove_shared::random::{Entropy, OsEntropy};
use cove_shared::{
    DeviceSecret, DocId, EnvelopeHash, Keyring, Kind, MembershipLog, Partner, PlanId, Seq, Stream,
    SymmetricKey,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory.
    pub fn new(name: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("cove-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A relay served by this test process, on 127.0.0.1 with an ephemeral port
/// and SQLite in a temporary directory (unless the settings say otherwise).
/// It shuts down when dropped.
pub struct TestRelay {
    /// `ws://127.0.0.1:PORT`.
    pub url: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: Option<TempDir>,
}

impl TestRelay {
    /// A relay with default settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A relay with settings adjusted by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::start_with_clock(cove_shared::clock::system(), tweak).await
    }

    /// A relay that reads the time from `clock` (a test's manual clock),
    /// with settings adjusted by `tweak`.
    pub async fn start_with_clock(clock: SharedClock, tweak: impl FnOnce(&mut Settings)) -> Self {
        let dir = TempDir::new("relay");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("local addr: {e}"));
        let mut settings = Settings {
            listen: addr,
            database: format!("sqlite://{}", dir.path().join("relay.db").display()),
            ..Settings::default()
        };
        tweak(&mut settings);
        Self::launch(settings, listener, clock, Some(dir))
    }

    /// A relay on a free port with the SQLite database at `database`; start
    /// it again with [`Self::start_at`] on its `addr` to restart it.
    pub async fn start_on_file(database: &Path) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("local addr: {e}"));
        let settings = Settings {
            listen: addr,
            database: format!("sqlite://{}", database.display()),
            ..Settings::default()
        };
        Self::launch(settings, listener, cove_shared::clock::system(), None)
    }

    /// A relay on `addr` with the SQLite database at `database`: starting
    /// one again on the same address and file is a relay restart.
    pub async fn start_at(addr: SocketAddr, database: &Path) -> Self {
        let mut listener = None;
        // The old listener's port may take a moment to be free again.
        for _ in 0..200 {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
        let listener = listener.unwrap_or_else(|| panic!("cannot bind {addr} again"));
        let settings = Settings {
            listen: addr,
            database: format!("sqlite://{}", database.display()),
            ..Settings::default()
        };
        Self::launch(settings, listener, cove_shared::clock::system(), None)
    }

    fn launch(
        settings: Settings,
        listener: tokio::net::TcpListener,
        clock: SharedClock,
        dir: Option<TempDir>,
    ) -> Self {
        let addr = settings.listen;
        let (stop, stopped) = oneshot::channel::<()>();
        let task =
            tokio::spawn(cove_server::launch_with_listener(settings, listener, clock, async {
                let _ = stopped.await;
            }));
        Self { url: format!("ws://{addr}"), addr, stop: Some(stop), task: Some(task), _dir: dir }
    }

    /// Shuts down and waits until every connection has drained.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Connects and authenticates `device`.
    pub async fn connect(&self, device: &DeviceSecret) -> (RelayConnection, mpsc::Receiver<Push>) {
        RelayConnection::connect(&self.url, device).await.unwrap_or_else(|e| panic!("connect: {e}"))
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The path of a debug binary of this workspace, built if needed.
pub fn workspace_binary(package: &str, name: &str) -> PathBuf {
    workspace_binary_in(package, name, false)
}

/// The path of a binary of this workspace (release or debug), built if needed.
pub fn workspace_binary_in(package: &str, name: &str, release: bool) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, bool)>> = std::sync::Mutex::new(Vec::new());
    let root =
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let path = target.join(if release { "release" } else { "debug" }).join(name);
    let mut built = BUILT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !built.iter().any(|(b, r)| b == name && *r == release) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut args = vec!["build", "--quiet", "-p", package, "--bin", name];
        if release {
            args.push("--release");
        }
        let status = Command::new(cargo)
            .args(&args)
            .current_dir(&root)
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo build: {e}"));
        assert!(status.success(), "cargo build -p {package} --bin {name} failed");
        built.push((name.to_owned(), release));
    }
    path
}

/// A `cove-server` process. Killed when dropped.
pub struct RelayProcess {
    /// The child process.
    pub child: Child,
    /// `ws://127.0.0.1:PORT`.
    pub url: String,
    /// `http://127.0.0.1:PORT`.
    pub http: String,
}

impl RelayProcess {
    /// Starts `cove-server` on `port` with `database`, waiting until it serves.
    pub async fn start(port: u16, database: &str, extra_env: &[(&str, &str)]) -> Self {
        let binary = workspace_binary("cove-server", "cove-server");
        Self::start_binary(&binary, port, database, extra_env).await
    }

    /// As [`Self::start`], with everything it logs at debug level written
    /// to `log`.
    pub async fn start_logged(port: u16, database: &str, log: &Path) -> Self {
        let binary = workspace_binary("cove-server", "cove-server");
        let file = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let env = [("RUST_LOG", "debug")];
        Self::spawn(&binary, port, database, &env, Stdio::from(file)).await
    }

    /// As [`Self::start_logged`], with more environment.
    pub async fn start_logged_with(
        port: u16,
        database: &str,
        log: &Path,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let binary = workspace_binary("cove-server", "cove-server");
        let file = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let mut env = vec![("RUST_LOG", "debug")];
        env.extend_from_slice(extra_env);
        Self::spawn(&binary, port, database, &env, Stdio::from(file)).await
    }

    /// As [`Self::start`], listening on `listen` (reached on 127.0.0.1 at
    /// `port`).
    pub async fn start_listening(
        listen: &str,
        port: u16,
        database: &str,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let binary = workspace_binary("cove-server", "cove-server");
        Self::spawn_command(
            Command::new(binary),
            listen,
            port,
            database,
            extra_env,
            Stdio::inherit(),
        )
        .await
    }

    /// As [`Self::start`], with a given `cove-server` binary.
    pub async fn start_binary(
        binary: &Path,
        port: u16,
        database: &str,
        extra_env: &[(&str, &str)],
    ) -> Self {
        Self::spawn(binary, port, database, extra_env, Stdio::inherit()).await
    }

    /// As [`Self::start`], ready for [`Self::limit_file_size`]: the
    /// process ignores SIGXFSZ, so that a write past the limit fails the
    /// way a write to a full disk does, instead of killing it.
    pub async fn start_for_full_disk(port: u16, database: &str) -> Self {
        let binary = workspace_binary("cove-server", "cove-server");
        let mut command = Command::new("sh");
        // An ignored signal stays ignored across exec.
        command.args(["-c", "trap '' XFSZ; exec \"$0\" \"$@\""]).arg(&binary);
        let listen = format!("127.0.0.1:{port}");
        Self::spawn_command(command, &listen, port, database, &[], Stdio::inherit()).await
    }

    /// Bounds the size of every file the process writes, from now on
    /// (`None`: no bound), as a disk with that much room would; through
    /// `prlimit`, from util-linux.
    pub fn limit_file_size(&self, bytes: Option<u64>) {
        // The soft limit only: it can be raised again without privileges.
        let limit = bytes.map_or_else(|| "unlimited:".to_owned(), |b| format!("{b}:"));
        let pid = self.child.id().to_string();
        let status = Command::new("prlimit")
            .args(["--pid", &pid, &format!("--fsize={limit}")])
            .status()
            .unwrap_or_else(|e| panic!("cannot run prlimit (util-linux): {e}"));
        assert!(status.success(), "prlimit --pid {pid} --fsize={limit} failed");
    }

    async fn spawn(
        binary: &Path,
        port: u16,
        database: &str,
        extra_env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Self {
        let listen = format!("127.0.0.1:{port}");
        Self::spawn_command(Command::new(binary), &listen, port, database, extra_env, stderr).await
    }

    async fn spawn_command(
        mut command: Command,
        listen: &str,
        port: u16,
        database: &str,
        extra_env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Self {
        command
            .args(["--listen", listen, "--database", database])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start cove-server: {e}"));
        let process = Self {
            child,
            url: format!("ws://127.0.0.1:{port}"),
            http: format!("127.0.0.1:{port}"),
        };
        process.wait_ready().await;
        process
    }

    async fn wait_ready(&self) {
        for _ in 0..400 {
            if http_get(&self.http, "/healthz").await.is_some_and(|b| b.starts_with("HTTP/1.1 200"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("cove-server on {} did not become healthy", self.http);
    }

    /// Kills the process with SIGKILL: no chance to flush or clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (as systemd or `docker stop` would) and waits up to
    /// `within` for the process to exit; returns its exit status, if it did.
    pub async fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "cannot send SIGTERM to {pid}");
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Resident memory of the process, in KiB (Linux).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.child.id())
    }

    /// CPU seconds the process has used so far (Linux).
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(self.child.id())
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// CPU time (user + system) a process has used, from /proc, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // Linux reports clock ticks of 1/100 s on every platform Cove supports.
    Some(ticks / 100.0)
}

/// CPU time a process's live threads have used, in nanoseconds, from
/// /proc (Linux): finer than [`cpu_seconds`], which counts 10 ms ticks.
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// VmRSS of a process, in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    // Below Linux's range for outgoing connections (32768 and up), so that
    // a connection another test opens cannot take the port between this
    // check and the relay binding it; both loopback and the wildcard
    // address must be free, since some relays listen on 0.0.0.0.
    for _ in 0..1000 {
        let [a, b]: [u8; 2] = OsEntropy.array();
        let port = 20_000 + u16::from_be_bytes([a, b]) % 12_000;
        let free = |host: &str| std::net::TcpListener::bind((host, port)).is_ok();
        if free("0.0.0.0") && free("127.0.0.1") {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000")
}

/// A minimal HTTP/1.1 GET; returns the whole response.
pub async fn http_get(host: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).await.ok()?;
    Some(out)
}

/// A throwaway PostgreSQL database, dropped at the end, for tests that start
/// relay processes (each process connects by URL, so schemas won't do).
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    /// Creates one on the server behind `COVE_TEST_POSTGRES_URL`, if set.
    pub async fn create() -> Option<Self> {
        let admin = std::env::var("COVE_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())?;
        let name = format!("cove_test_{}", cove_shared::codec::to_hex(&OsEntropy.array::<6>()));
        let pool = sqlx::PgPool::connect(&admin).await.unwrap_or_else(|e| panic!("postgres: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("create database: {e}"));
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Some(Self { url: format!("{base}/{name}"), admin, name })
    }

    /// Drops it.
    pub async fn drop_now(self) {
        if let Ok(pool) = sqlx::PgPool::connect(&self.admin).await {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
        }
    }
}

/// A plan with partner A's and partner B's first devices, built through the
/// real membership log, that seals correctly chained envelopes.
pub struct TestPlan {
    /// The plan.
    pub plan: PlanId,
    /// Partner A's device (the creator).
    pub a: DeviceSecret,
    /// Partner B's device.
    pub b: DeviceSecret,
    /// The membership log.
    pub log: MembershipLog,
    /// Per stream: the last sequence number, its hash, and its `prev`.
    tips: HashMap<Stream, (Seq, EnvelopeHash, EnvelopeHash)>,
    /// Each device's keyring, for the log length it was built at.
    rings: HashMap<cove_shared::DeviceId, (u64, Keyring)>,
}

impl TestPlan {
    /// A new plan with fresh random devices.
    pub fn new() -> Self {
        let mut rng = OsEntropy;
        let a = DeviceSecret::generate(&mut rng);
        let b = DeviceSecret::generate(&mut rng);
        let plan = PlanId::random(&mut rng);
        let key = SymmetricKey::random(&mut rng);
        let identity = || {
            let seed = cove_shared::IdentitySeed::random(&mut OsEntropy);
            cove_shared::PartnerSecret::from_seed(&seed).unwrap_or_else(|| panic!("identity"))
        };
        let genesis = MembershipLog::genesis(plan, &a, &identity(), &key, &mut rng)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut log = MembershipLog::from_genesis(genesis).unwrap_or_else(|e| panic!("{e}"));
        let ring = Keyring::from_log(&log, &a);
        let idb = identity();
        let cert = idb.certify(plan, log.state().genesis(), Partner::B, b.id());
        let add = log.add_device(
            &a,
            Partner::B,
            &b.bundle(),
            &idb.public(),
            &cert,
            |e| ring.key(e),
            &mut rng,
        );
        log.append(add.unwrap_or_else(|e| panic!("{e}"))).unwrap_or_else(|e| panic!("{e}"));
        Self { plan, a, b, log, tips: HashMap::new(), rings: HashMap::new() }
    }

    /// Registers the plan and its membership on a relay, through A's connection.
    pub async fn register(&self, a: &RelayConnection) {
        let entries = self.log.entries();
        a.create_plan(entries[0].encode()).await.unwrap_or_else(|e| panic!("create plan: {e}"));
        for entry in &entries[1..] {
            a.append_membership(self.plan, entry.encode())
                .await
                .unwrap_or_else(|e| panic!("membership: {e}"));
        }
    }

    /// Seals the next envelope of `device`'s stream for `kind` and `doc`.
    pub fn seal(
        &mut self,
        device: &DeviceSecret,
        kind: Kind,
        doc: DocId,
        payload: &[u8],
    ) -> Vec<u8> {
        let stream = Stream { sender: device.id(), kind, doc };
        let (seq, prev) = self
            .tips
            .get(&stream)
            .map_or((Seq(1), EnvelopeHash::GENESIS), |(s, h, _)| (Seq(s.0 + 1), *h));
        self.seal_at(device, stream, seq, prev, payload)
    }

    /// Seals a *different* envelope for the latest position of a stream, as
    /// an equivocating sender would.
    pub fn equivocate(
        &mut self,
        device: &DeviceSecret,
        kind: Kind,
        doc: DocId,
        payload: &[u8],
    ) -> Vec<u8> {
        let stream = Stream { sender: device.id(), kind, doc };
        let (seq, _, prev) = self.tips[&stream];
        let tip = self.tips[&stream];
        let bytes = self.seal_at(device, stream, seq, prev, payload);
        self.tips.insert(stream, tip);
        bytes
    }

    fn seal_at(
        &mut self,
        device: &DeviceSecret,
        stream: Stream,
        seq: Seq,
        prev: EnvelopeHash,
        payload: &[u8],
    ) -> Vec<u8> {
        let len = self.log.state().len();
        let fresh = self.rings.get(&device.id()).is_some_and(|(at, _)| *at == len);
        if !fresh {
            self.rings.insert(device.id(), (len, Keyring::from_log(&self.log, device)));
        }
        let ring = &self.rings[&device.id()].1;
        let state = self.log.state();
        let keys =
            ring.keys(state.epoch()).unwrap_or_else(|| panic!("no key for the current epoch"));
        let request =
            Seal { kind: stream.kind, doc: stream.doc, seq, prev, view: state.view(), payload };
        let sealed =
            envelope::seal(keys, device, request, &mut OsEntropy).unwrap_or_else(|e| panic!("{e}"));
        self.tips.insert(stream, (seq, sealed.hash, prev));
        sealed.bytes
    }

    /// Seals A's next shared-document change.
    pub fn change_by_a(&mut self, payload: &[u8]) -> Vec<u8> {
        let a = DeviceSecret::from_secret_bytes(&self.a.to_secret_bytes())
            .unwrap_or_else(|| panic!("copy"));
        self.seal(&a, Kind::Changes, DocId::Shared, payload)
    }

    /// Seals B's next shared-document change.
    pub fn change_by_b(&mut self, payload: &[u8]) -> Vec<u8> {
        let b = DeviceSecret::from_secret_bytes(&self.b.to_secret_bytes())
            .unwrap_or_else(|| panic!("copy"));
        self.seal(&b, Kind::Changes, DocId::Shared, payload)
    }
}

impl Default for TestPlan {
    fn default() -> Self {
        Self::new()
    }
}

/// Waits for the next push that `pick` accepts, skipping others, for at most
/// five seconds.
pub async fn next_push<T>(
    pushes: &mut mpsc::Receiver<Push>,
    mut pick: impl FnMut(Push) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match pushes.recv().await {
                Some(push) => {
                    if let Some(found) = pick(push) {
                        return found;
                    }
                }
                None => panic!("the push channel closed"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no matching push within five seconds"))
}

/// Copies a relay's SQLite files (database, log, index) from `from` to `to`,
/// as an operator's cold copy would.
pub fn copy_database(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let source = PathBuf::from(format!("{}{suffix}", from.display()));
        let target = PathBuf::from(format!("{}{suffix}", to.display()));
        let _ = std::fs::remove_file(&target);
        if source.exists() {
            std::fs::copy(&source, &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", source.display()));
        }
    }
}
