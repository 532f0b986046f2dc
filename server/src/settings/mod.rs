//! Relay settings, layered in increasing precedence: built-in defaults, then
//! `cove-server.toml`, then `COVE_*` environment variables, then flags.//!
//! # Layout
//! - this module: the settings as the relay uses them, and their defaults.
//! - [`file`]: the file and environment layers, and the commented default
//!   file that `cove-server print-config` writes.

mod file;

pub use file::default_config;
use file::{FileLimits, FileSettings};

use crate::proxies::IpNet;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `trust_forwarded_for`, which trusted the header from anyone, became.
const REPLACED_TRUST: &str = "trust_forwarded_for (COVE_TRUST_FORWARDED_FOR) was replaced by trusted_proxies (COVE_TRUSTED_PROXIES): list the addresses of your reverse proxies, such as trusted_proxies = [\"127.0.0.1\"]";

/// The port the relay listens on by default ("COVE" on a phone keypad).
pub const DEFAULT_PORT: u16 = 2683;

/// Everything the relay can be told.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://...`.
    pub database: String,
    /// The origins devices may sign in their authentication response, such
    /// as `wss://relay.example.org`. The first is announced in challenges.
    /// Empty means "derive from `listen`".
    pub origins: Vec<String>,
    /// SQLite `synchronous`: `full` survives power loss, `normal` survives a
    /// killed process (both survive SIGKILL of the relay).
    pub sqlite_synchronous: SqliteSync,
    /// The most bytes the SQLite database file may grow to; `None` for no
    /// bound but the disk's. At the bound, writes are refused as
    /// `unavailable` (and reported) until space is freed, exactly as on a
    /// full disk.
    pub sqlite_max_bytes: Option<u64>,
    /// Reverse proxies (addresses or networks) whose X-Forwarded-For names
    /// the client, for the per-address limits. Sockets from them are exempt
    /// from the per-address socket caps: every client arrives through them.
    pub trusted_proxies: Vec<IpNet>,
    /// The TLS certificate chain (PEM) the relay serves itself; with
    /// `tls_key`, the relay speaks `wss://`.
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Limits.
    pub limits: Limits,
}

/// SQLite durability level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// fsync at every commit.
    Full,
    /// fsync at checkpoints; a killed process loses nothing, a power cut may
    /// lose the last commits.
    Normal,
}

/// The bounds the relay enforces. Going over any of them ends only the
/// request or connection concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest WebSocket message accepted.
    pub max_frame_bytes: usize,
    /// Largest envelope accepted.
    pub max_envelope_bytes: usize,
    /// Sustained requests per second per device.
    pub device_rate_per_sec: u32,
    /// Burst of requests per device above the sustained rate.
    pub device_rate_burst: u32,
    /// Envelopes a plan may store.
    pub plan_max_envelopes: u64,
    /// Bytes of envelopes a plan may store.
    pub plan_max_bytes: u64,
    /// Time a new socket has to finish its HTTP request (the WebSocket
    /// upgrade, or a request for health or metrics).
    pub handshake_timeout: Duration,
    /// Sockets still in their HTTP handshake; more are closed at once.
    pub max_pending_connections: usize,
    /// Sockets from one address still in their handshake.
    pub max_pending_per_address: usize,
    /// Sockets from one address in all.
    pub max_connections_per_address: usize,
    /// Time a peer has to take one frame the relay writes, before the
    /// connection is closed as not keeping up.
    pub write_timeout: Duration,
    /// Bytes of live deliveries queued for one connection before it counts
    /// as fallen behind and is closed (it reconnects and fetches).
    pub send_queue_bytes: usize,
    /// Time a new connection has to authenticate.
    pub auth_timeout: Duration,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Simultaneous connections.
    pub max_connections: usize,
    /// How long an undelivered signal is kept.
    pub signal_ttl: Duration,
    /// How long a pairing mailbox stays open.
    pub pairing_ttl: Duration,
    /// Pairing mailboxes opened or joined per source address per pairing TTL.
    pub pairing_attempts_per_address: u32,
    /// WebSocket read buffer per connection.
    pub read_buffer_bytes: usize,
    /// WebSocket write buffer per connection.
    pub write_buffer_bytes: usize,
    /// Time allowed for connections to finish after a shutdown signal.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: cove_shared::wire::MAX_FRAME_LEN,
            max_envelope_bytes: cove_shared::envelope::MAX_ENVELOPE_LEN,
            device_rate_per_sec: 200,
            device_rate_burst: 400,
            plan_max_envelopes: 100_000,
            plan_max_bytes: 256 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            max_pending_connections: 1024,
            max_pending_per_address: 32,
            max_connections_per_address: 256,
            write_timeout: Duration::from_secs(30),
            send_queue_bytes: 4 * 1024 * 1024,
            auth_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            max_connections: 20_000,
            signal_ttl: Duration::from_secs(24 * 3600),
            pairing_ttl: Duration::from_secs(600),
            pairing_attempts_per_address: 20,
            read_buffer_bytes: 2 * 1024,
            write_buffer_bytes: 4 * 1024,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            database: "sqlite://cove-relay.db".into(),
            origins: Vec::new(),
            sqlite_synchronous: SqliteSync::Full,
            sqlite_max_bytes: None,
            trusted_proxies: Vec::new(),
            tls_cert: None,
            tls_key: None,
            limits: Limits::default(),
        }
    }
}

impl Settings {
    /// The origins to accept: the configured ones, or else those the
    /// listen address implies: `ws://` and the address itself, with
    /// `localhost` beside a loopback address; and for an address that
    /// listens everywhere (`0.0.0.0`, as in a container), the loopback
    /// names, which is how a published port is reached on its host. Any
    /// other name must be configured.
    pub fn accepted_origins(&self) -> Vec<String> {
        if !self.origins.is_empty() {
            return self.origins.clone();
        }
        let port = self.listen.port();
        let ip = self.listen.ip();
        let scheme = if self.serves_tls() { "wss" } else { "ws" };
        if ip.is_unspecified() {
            return vec![
                format!("{scheme}://127.0.0.1:{port}"),
                format!("{scheme}://localhost:{port}"),
                format!("{scheme}://[::1]:{port}"),
            ];
        }
        let mut out = vec![format!("{scheme}://{}", self.listen)];
        if ip.is_loopback() {
            out.push(format!("{scheme}://localhost:{port}"));
        }
        out
    }

    /// Whether the relay serves TLS itself.
    pub fn serves_tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }

    /// Applies a `cove-server.toml` document over these settings.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), SettingsError> {
        let file: FileSettings =
            toml::from_str(text).map_err(|e| SettingsError::Toml(e.to_string()))?;
        file.apply(self)
    }

    /// Applies `COVE_*` variables from `vars` over these settings.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), SettingsError> {
        let mut file = FileSettings::default();
        let mut limits = FileLimits::default();
        for (key, value) in vars {
            let Some(name) = key.strip_prefix("COVE_") else {
                continue;
            };
            let bad = || SettingsError::Env { name: key.clone(), value: value.clone() };
            match name {
                "LISTEN" => file.listen = Some(value.parse().map_err(|_| bad())?),
                "DATABASE" | "DATABASE_URL" => file.database = Some(value.clone()),
                "ORIGINS" => {
                    file.origins = Some(value.split(',').map(|s| s.trim().to_owned()).collect())
                }
                "TRUSTED_PROXIES" => {
                    file.trusted_proxies = Some(
                        value
                            .split(',')
                            .filter(|s| !s.trim().is_empty())
                            .map(|s| s.parse().map_err(|_| bad()))
                            .collect::<Result<_, _>>()?,
                    )
                }
                "TRUST_FORWARDED_FOR" => return Err(SettingsError::Replaced(REPLACED_TRUST)),
                "TLS_CERT" => file.tls_cert = Some(value.clone().into()),
                "TLS_KEY" => file.tls_key = Some(value.clone().into()),
                "SQLITE_MAX_BYTES" => {
                    file.sqlite_max_bytes = Some(value.parse().map_err(|_| bad())?)
                }
                "SQLITE_SYNCHRONOUS" => {
                    file.sqlite_synchronous = Some(match value.as_str() {
                        "full" => SqliteSync::Full,
                        "normal" => SqliteSync::Normal,
                        _ => return Err(bad()),
                    })
                }
                _ => {
                    if let Some(limit) = name.strip_prefix("LIMIT_") {
                        limits.set(&limit.to_ascii_lowercase(), &value).map_err(|()| bad())?;
                    }
                }
            }
        }
        file.limits = Some(limits);
        file.apply(self)
    }

    /// Loads defaults, then the file (if any), then the environment.
    pub fn load(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut settings = Self::default();
        let path = file.map(Path::to_path_buf).or_else(|| {
            let default = Path::new("cove-server.toml");
            default.exists().then(|| default.to_path_buf())
        });
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path).map_err(|e| SettingsError::File {
                path: path.display().to_string(),
                error: e.to_string(),
            })?;
            settings.apply_toml(&text)?;
        }
        settings.apply_env(vars)?;
        Ok(settings)
    }
}

/// Credentials in a database URL are never printed.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database", &redact_url(&self.database))
            .field("origins", &self.origins)
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .field("sqlite_max_bytes", &self.sqlite_max_bytes)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("limits", &self.limits)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:…@host/db`; the
/// same for a URL with a misspelt scheme, or none.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let Some((auth, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    let auth = match auth.split_once(':') {
        Some((user, _)) => format!("{user}:…"),
        None => auth.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{auth}@{host}"),
        None => format!("{auth}@{host}"),
    }
}

/// A setting could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The configuration file could not be read.
    #[error("cannot read {path}: {error}")]
    File {
        /// The file.
        path: String,
        /// Why.
        error: String,
    },
    /// The configuration file is not valid.
    #[error("invalid cove-server.toml: {0}")]
    Toml(String),
    /// A setting was replaced by another.
    #[error("{0}")]
    Replaced(&'static str),
    /// An environment variable has a value that does not parse.
    #[error("environment variable {name} has an invalid value {value:?}")]
    Env {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_parses_back_to_the_defaults() {
        let mut s = Settings::default();
        s.apply_toml(&default_config()).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn layers_apply_in_order() {
        let mut s = Settings::default();
        s.apply_toml("database = \"sqlite:///tmp/a.db\"\n[limits]\nidle_timeout_secs = 5\n")
            .unwrap();
        assert_eq!(s.database, "sqlite:///tmp/a.db");
        assert_eq!(s.limits.idle_timeout, Duration::from_secs(5));
        let env = [
            ("COVE_DATABASE".to_owned(), "sqlite:///tmp/b.db".to_owned()),
            ("COVE_LIMIT_IDLE_TIMEOUT_SECS".to_owned(), "7".to_owned()),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        s.apply_env(env).unwrap();
        assert_eq!(s.database, "sqlite:///tmp/b.db");
        assert_eq!(s.limits.idle_timeout, Duration::from_secs(7));
    }

    #[test]
    fn bad_values_are_refused_with_their_name() {
        let mut s = Settings::default();
        let err = s.apply_env([("COVE_LISTEN".to_owned(), "nowhere".to_owned())]).unwrap_err();
        assert!(err.to_string().contains("COVE_LISTEN"));
        assert!(s.apply_toml("unknown_key = 1").is_err());
        assert!(s.apply_toml("[limits]\nmax_envelope_bytes = 99999999").is_err());
        assert!(s.apply_toml("[limits]\nmax_frame_bytes = 99999999").is_err());
        assert!(s.apply_toml("[limits]\nsend_queue_bytes = 1000").is_err());
        let replaced = s.apply_toml("trust_forwarded_for = true").unwrap_err();
        assert!(replaced.to_string().contains("trusted_proxies"), "{replaced}");
        let env = [("COVE_TRUST_FORWARDED_FOR".to_owned(), "true".to_owned())];
        assert!(s.apply_env(env).unwrap_err().to_string().contains("trusted_proxies"));
        let mut s = Settings::default();
        let env = [("COVE_TRUSTED_PROXIES".to_owned(), "127.0.0.1, 10.0.0.0/8".to_owned())];
        s.apply_env(env).unwrap();
        assert_eq!(s.trusted_proxies.len(), 2);
        let env = [("COVE_TRUSTED_PROXIES".to_owned(), "not an address".to_owned())];
        assert!(s.apply_env(env).is_err());
    }

    #[test]
    fn origins_follow_the_listen_address_unless_configured() {
        let at = |listen: &str| Settings { listen: listen.parse().unwrap(), ..Settings::default() };
        assert_eq!(
            at("127.0.0.1:2683").accepted_origins(),
            ["ws://127.0.0.1:2683", "ws://localhost:2683"]
        );
        assert_eq!(
            at("0.0.0.0:2683").accepted_origins(),
            ["ws://127.0.0.1:2683", "ws://localhost:2683", "ws://[::1]:2683"],
            "never ws://0.0.0.0, which no device dials"
        );
        assert_eq!(at("[::]:9").accepted_origins()[1], "ws://localhost:9");
        assert_eq!(at("192.0.2.4:2683").accepted_origins(), ["ws://192.0.2.4:2683"]);
        let configured =
            Settings { origins: vec!["wss://relay.example.org".into()], ..at("0.0.0.0:2683") };
        assert_eq!(configured.accepted_origins(), ["wss://relay.example.org"]);
    }

    #[test]
    fn passwords_in_database_urls_are_redacted() {
        let s =
            Settings { database: "postgres://cove:hunter2@db/cove".into(), ..Settings::default() };
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2"));
        assert!(debug.contains("postgres://cove:…@db/cove"));
        for typo in ["postgress://cove:hunter2@db/cove", "cove:hunter2@db/cove"] {
            let shown = redact_url(typo);
            assert!(!shown.contains("hunter2") && shown.contains("cove:…@db/cove"), "{shown}");
        }
    }
}
