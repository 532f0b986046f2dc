//! The layers a person writes: `cove-server.toml` and `COVE_*` variables,
//! each field optional, unknown ones refused.

use super::{REPLACED_TRUST, Settings, SettingsError, SqliteSync};
use crate::proxies::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSettings {
    pub(super) listen: Option<SocketAddr>,
    pub(super) database: Option<String>,
    pub(super) origins: Option<Vec<String>>,
    pub(super) sqlite_synchronous: Option<SqliteSync>,
    pub(super) sqlite_max_bytes: Option<u64>,
    pub(super) trusted_proxies: Option<Vec<IpNet>>,
    pub(super) trust_forwarded_for: Option<toml::Value>,
    pub(super) tls_cert: Option<std::path::PathBuf>,
    pub(super) tls_key: Option<std::path::PathBuf>,
    pub(super) limits: Option<FileLimits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    pub(super) max_frame_bytes: Option<usize>,
    pub(super) max_envelope_bytes: Option<usize>,
    pub(super) device_rate_per_sec: Option<u32>,
    pub(super) device_rate_burst: Option<u32>,
    pub(super) plan_max_envelopes: Option<u64>,
    pub(super) plan_max_bytes: Option<u64>,
    pub(super) handshake_timeout_secs: Option<u64>,
    pub(super) max_pending_connections: Option<usize>,
    pub(super) max_pending_per_address: Option<usize>,
    pub(super) max_connections_per_address: Option<usize>,
    pub(super) write_timeout_secs: Option<u64>,
    pub(super) send_queue_bytes: Option<usize>,
    pub(super) auth_timeout_secs: Option<u64>,
    pub(super) idle_timeout_secs: Option<u64>,
    pub(super) max_connections: Option<usize>,
    pub(super) signal_ttl_secs: Option<u64>,
    pub(super) pairing_ttl_secs: Option<u64>,
    pub(super) pairing_attempts_per_address: Option<u32>,
    pub(super) read_buffer_bytes: Option<usize>,
    pub(super) write_buffer_bytes: Option<usize>,
    pub(super) drain_timeout_secs: Option<u64>,
}

impl FileLimits {
    pub(super) fn set(&mut self, name: &str, value: &str) -> Result<(), ()> {
        fn p<T: std::str::FromStr>(v: &str) -> Result<Option<T>, ()> {
            v.parse().map(Some).map_err(|_| ())
        }
        match name {
            "max_frame_bytes" => self.max_frame_bytes = p(value)?,
            "max_envelope_bytes" => self.max_envelope_bytes = p(value)?,
            "device_rate_per_sec" => self.device_rate_per_sec = p(value)?,
            "device_rate_burst" => self.device_rate_burst = p(value)?,
            "plan_max_envelopes" => self.plan_max_envelopes = p(value)?,
            "plan_max_bytes" => self.plan_max_bytes = p(value)?,
            "handshake_timeout_secs" => self.handshake_timeout_secs = p(value)?,
            "max_pending_connections" => self.max_pending_connections = p(value)?,
            "max_pending_per_address" => self.max_pending_per_address = p(value)?,
            "max_connections_per_address" => self.max_connections_per_address = p(value)?,
            "write_timeout_secs" => self.write_timeout_secs = p(value)?,
            "send_queue_bytes" => self.send_queue_bytes = p(value)?,
            "auth_timeout_secs" => self.auth_timeout_secs = p(value)?,
            "idle_timeout_secs" => self.idle_timeout_secs = p(value)?,
            "max_connections" => self.max_connections = p(value)?,
            "signal_ttl_secs" => self.signal_ttl_secs = p(value)?,
            "pairing_ttl_secs" => self.pairing_ttl_secs = p(value)?,
            "pairing_attempts_per_address" => self.pairing_attempts_per_address = p(value)?,
            "read_buffer_bytes" => self.read_buffer_bytes = p(value)?,
            "write_buffer_bytes" => self.write_buffer_bytes = p(value)?,
            "drain_timeout_secs" => self.drain_timeout_secs = p(value)?,
            _ => return Err(()),
        }
        Ok(())
    }
}

impl FileSettings {
    pub(super) fn apply(self, s: &mut Settings) -> Result<(), SettingsError> {
        if let Some(v) = self.listen {
            s.listen = v;
        }
        if let Some(v) = self.database {
            s.database = v;
        }
        if let Some(v) = self.origins {
            s.origins = v;
        }
        if let Some(v) = self.sqlite_synchronous {
            s.sqlite_synchronous = v;
        }
        if let Some(v) = self.sqlite_max_bytes {
            s.sqlite_max_bytes = Some(v);
        }
        if self.trust_forwarded_for.is_some() {
            return Err(SettingsError::Replaced(REPLACED_TRUST));
        }
        if let Some(v) = self.trusted_proxies {
            s.trusted_proxies = v;
        }
        if let Some(v) = self.tls_cert {
            s.tls_cert = Some(v);
        }
        if let Some(v) = self.tls_key {
            s.tls_key = Some(v);
        }
        let Some(l) = self.limits else { return Ok(()) };
        let t = &mut s.limits;
        let secs = Duration::from_secs;
        t.max_frame_bytes = l.max_frame_bytes.unwrap_or(t.max_frame_bytes);
        t.max_envelope_bytes = l.max_envelope_bytes.unwrap_or(t.max_envelope_bytes);
        t.device_rate_per_sec = l.device_rate_per_sec.unwrap_or(t.device_rate_per_sec);
        t.device_rate_burst = l.device_rate_burst.unwrap_or(t.device_rate_burst);
        t.plan_max_envelopes = l.plan_max_envelopes.unwrap_or(t.plan_max_envelopes);
        t.plan_max_bytes = l.plan_max_bytes.unwrap_or(t.plan_max_bytes);
        t.max_connections = l.max_connections.unwrap_or(t.max_connections);
        t.max_pending_connections = l.max_pending_connections.unwrap_or(t.max_pending_connections);
        t.max_pending_per_address = l.max_pending_per_address.unwrap_or(t.max_pending_per_address);
        t.max_connections_per_address =
            l.max_connections_per_address.unwrap_or(t.max_connections_per_address);
        t.write_timeout = l.write_timeout_secs.map_or(t.write_timeout, secs);
        t.send_queue_bytes = l.send_queue_bytes.unwrap_or(t.send_queue_bytes);
        t.handshake_timeout = l.handshake_timeout_secs.map_or(t.handshake_timeout, secs);
        t.pairing_attempts_per_address =
            l.pairing_attempts_per_address.unwrap_or(t.pairing_attempts_per_address);
        t.read_buffer_bytes = l.read_buffer_bytes.unwrap_or(t.read_buffer_bytes);
        t.write_buffer_bytes = l.write_buffer_bytes.unwrap_or(t.write_buffer_bytes);
        t.auth_timeout = l.auth_timeout_secs.map_or(t.auth_timeout, secs);
        t.idle_timeout = l.idle_timeout_secs.map_or(t.idle_timeout, secs);
        t.signal_ttl = l.signal_ttl_secs.map_or(t.signal_ttl, secs);
        t.pairing_ttl = l.pairing_ttl_secs.map_or(t.pairing_ttl, secs);
        t.drain_timeout = l.drain_timeout_secs.map_or(t.drain_timeout, secs);
        if t.max_envelope_bytes > cove_shared::envelope::MAX_ENVELOPE_LEN {
            return Err(SettingsError::Toml(format!(
                "limits.max_envelope_bytes cannot exceed the protocol's {} bytes",
                cove_shared::envelope::MAX_ENVELOPE_LEN
            )));
        }
        if t.send_queue_bytes < t.max_frame_bytes {
            return Err(SettingsError::Toml(format!(
                "limits.send_queue_bytes must hold at least one frame of limits.max_frame_bytes ({} bytes)",
                t.max_frame_bytes
            )));
        }
        if t.max_frame_bytes > cove_shared::wire::MAX_FRAME_LEN {
            return Err(SettingsError::Toml(format!(
                "limits.max_frame_bytes cannot exceed the protocol's {} bytes",
                cove_shared::wire::MAX_FRAME_LEN
            )));
        }
        Ok(())
    }
}

/// The commented configuration printed by `cove-server default-config`.
pub fn default_config() -> String {
    let d = Settings::default();
    let l = &d.limits;
    format!(
        r#"# cove-server.toml: settings for the Cove relay.
# Precedence, lowest first: built-in defaults, this file, COVE_* environment
# variables (COVE_LISTEN, COVE_DATABASE, COVE_ORIGINS, COVE_SQLITE_SYNCHRONOUS,
# COVE_SQLITE_MAX_BYTES, COVE_TRUSTED_PROXIES, COVE_TLS_CERT, COVE_TLS_KEY,
# COVE_LIMIT_<NAME> for each limit below), then command-line flags.

# Address and port to listen on.
listen = "{listen}"

# Serve TLS (wss://) with this certificate chain and key (PEM), reloaded on
# SIGHUP and when either file changes. `cove-server gen-cert --host NAME`
# writes a self-signed pair and prints the fingerprint devices pin. Unset:
# plain ws://, for this machine or behind a TLS reverse proxy.
# tls_cert = "/var/lib/cove-relay/cove-relay.crt"
# tls_key = "/var/lib/cove-relay/cove-relay.key"

# Storage: "sqlite://PATH" (created if missing) or "postgres://USER:PASSWORD@HOST/DB".
database = "{database}"

# The public addresses devices connect to; their authentication response
# signs this, so a response is useless at any other relay. Empty: derived
# from `listen` (ws://ADDRESS, plus ws://localhost:PORT on loopback; for
# 0.0.0.0, the loopback names only; wss:// when the relay serves TLS).
# origins = ["wss://relay.example.org"]

# SQLite durability: "full" fsyncs every commit (survives power loss);
# "normal" survives a killed relay but may lose the last commits on power loss.
sqlite_synchronous = "full"

# The most bytes the SQLite file may grow to (unset: the disk is the bound).
# At the bound, pushes are refused as "unavailable" and /healthz says so,
# exactly as on a full disk, until space is freed.
# sqlite_max_bytes = 1073741824

# Reverse proxies in front of the relay (addresses or networks). Only from
# them is X-Forwarded-For believed, and its rightmost address that is not
# one of them taken as the client's; their sockets are exempt from the
# per-address socket caps. Empty: no proxy, the TCP peer is the client.
trusted_proxies = []

[limits]
max_frame_bytes = {max_frame}            # largest WebSocket message
max_envelope_bytes = {max_env}         # largest envelope (the protocol's maximum)
device_rate_per_sec = {rate}             # sustained requests per second per device
device_rate_burst = {burst}               # burst above the sustained rate
plan_max_envelopes = {plan_env}         # envelopes a plan may store
plan_max_bytes = {plan_bytes}         # bytes a plan may store
handshake_timeout_secs = {handshake}           # time a new socket has to finish its HTTP request
max_pending_connections = {pending}       # sockets still in that handshake; more are closed
max_pending_per_address = {pending_addr}         # of those, from one address (trusted proxies exempt)
max_connections_per_address = {open_addr}    # sockets from one address in all (trusted proxies exempt)
write_timeout_secs = {write}              # time a peer has to take a frame before it is closed as too slow
send_queue_bytes = {queue}         # live deliveries queued for one connection before it is told to catch up
auth_timeout_secs = {auth}                # time to authenticate after connecting
idle_timeout_secs = {idle}                # close a connection silent for this long (any socket: twice this)
max_connections = {conns}              # simultaneous connections
signal_ttl_secs = {signal}              # how long an undelivered signal is kept
pairing_ttl_secs = {pairing}               # how long a pairing code stays open
pairing_attempts_per_address = {attempts}     # pairing opens and joins per address per TTL
read_buffer_bytes = {rbuf}              # WebSocket read buffer per connection
write_buffer_bytes = {wbuf}             # WebSocket write buffer per connection
drain_timeout_secs = {drain}               # time connections get to finish on shutdown
"#,
        listen = d.listen,
        database = d.database,
        max_frame = l.max_frame_bytes,
        max_env = l.max_envelope_bytes,
        rate = l.device_rate_per_sec,
        burst = l.device_rate_burst,
        plan_env = l.plan_max_envelopes,
        plan_bytes = l.plan_max_bytes,
        handshake = l.handshake_timeout.as_secs(),
        pending = l.max_pending_connections,
        pending_addr = l.max_pending_per_address,
        open_addr = l.max_connections_per_address,
        write = l.write_timeout.as_secs(),
        queue = l.send_queue_bytes,
        auth = l.auth_timeout.as_secs(),
        idle = l.idle_timeout.as_secs(),
        conns = l.max_connections,
        signal = l.signal_ttl.as_secs(),
        pairing = l.pairing_ttl.as_secs(),
        attempts = l.pairing_attempts_per_address,
        rbuf = l.read_buffer_bytes,
        wbuf = l.write_buffer_bytes,
        drain = l.drain_timeout.as_secs(),
    )
}
