//! The connection to a relay: one WebSocket, authenticated with the device
//! key, carrying requests and their answers, and live pushes.
//!
//! A background task owns the socket. Requests are numbered, sent in order,
//! and matched to their answers by number; everything the relay sends on
//! its own (live envelopes, membership changes, pairing messages, a
//! revocation) arrives on the [`Push`] channel. The task keeps the
//! connection alive with WebSocket pings and reports how it ended.

//!
//! # Layout
//! - this module: connecting, authenticating, and one request's round trip.
//! - [`requests`]: each request the relay answers, by name.
//! - [`socket`]: the task that owns the socket.
//! - [`tls`]: `wss://`, and what a device trusts for a relay's certificate.

mod checks;
mod requests;
mod socket;
pub mod tls;

use socket::{drive, read, write};

use cove_shared::wire::{
    self, ClientToRelay, ErrorCode, MAX_FRAME_LEN, PairOutcome, RelayToClient, RequestId,
    StoredEnvelope,
};
use cove_shared::{DeviceId, DeviceSecret, PlanId};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// How long a request may wait for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting and authenticating may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The most membership entries a device takes from a relay: far beyond any
/// couple's devices, short of what would exhaust memory.
pub const MAX_MEMBERSHIP_ENTRIES: usize = 4096;

/// How long a request may keep waiting out the relay's rate limit.
pub const RATE_LIMIT_PATIENCE: Duration = Duration::from_secs(60);
/// How often an idle connection pings the relay.
pub const KEEPALIVE: Duration = Duration::from_secs(30);

/// Talking to the relay failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The relay address is not a `ws://` or `wss://` URL.
    #[error("{0:?} is not a relay address; use ws://HOST:PORT or wss://HOST")]
    BadUrl(String),
    /// The relay could not be reached.
    #[error(
        "cannot reach the relay at {url} ({reason}); check that it is running and that the address is right"
    )]
    Unreachable {
        /// The address tried.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The relay refused the request (or the connection).
    #[error("the relay refused: {message} ({code})")]
    Refused {
        /// The relay's stable code.
        code: ErrorCode,
        /// The relay's sentence.
        message: String,
    },
    /// The relay refused to sign this device in at the address it dialed,
    /// and names another address it expects.
    #[error(
        "the relay at {dialed} expects to be reached as {expected}, so it refused this device's sign-in; use {expected} as the relay address, or ask the relay's operator to add {dialed} to its origins"
    )]
    WrongOrigin {
        /// The address this device dialed (and signed).
        dialed: String,
        /// The address the relay announced.
        expected: String,
    },
    /// The relay's TLS certificate was refused; no frame was sent.
    #[error("{0}")]
    Certificate(String),
    /// The relay, dialed over `wss://`, signs devices in only over `ws://`.
    #[error(
        "the relay at {dialed} signs devices in only over plain ws://, and this device will not drop to an unencrypted connection; ask the relay's operator to list {dialed} among its origins"
    )]
    PlainOnly {
        /// The address this device dialed (and signed).
        dialed: String,
    },
    /// The relay revoked this device from a plan.
    #[error("this device has been removed from the plan")]
    Revoked,
    /// The connection closed.
    #[error("the connection to the relay closed")]
    Closed,
    /// No answer in time.
    #[error("the relay did not answer in time")]
    Timeout,
    /// The relay sent something the protocol does not allow here.
    #[error("the relay broke the protocol: {0}")]
    Protocol(&'static str),
}

impl TransportError {
    /// The relay's error code, if the relay refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// What the relay sends without being asked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Push {
    /// A new envelope of a subscribed plan.
    Deliver {
        /// The plan.
        plan: PlanId,
        /// The envelope and its cursor.
        item: StoredEnvelope,
    },
    /// The plan's membership log grew.
    MembershipChanged {
        /// The plan.
        plan: PlanId,
        /// Its new length.
        len: u64,
    },
    /// The other side of a pairing sent a message.
    PairMessage {
        /// The mailbox.
        nameplate: String,
        /// The message.
        body: Vec<u8>,
    },
    /// The other side closed a pairing.
    PairClosed {
        /// The mailbox.
        nameplate: String,
        /// How.
        outcome: PairOutcome,
    },
    /// This device was revoked from a plan.
    Revoked {
        /// The plan.
        plan: PlanId,
    },
    /// Live deliveries were dropped because nobody took them in time; fetch
    /// to catch up.
    Lagged,
    /// The connection ended, and why.
    Closed(TransportError),
}

type Reply = oneshot::Sender<Result<RelayToClient, TransportError>>;

/// An authenticated connection to a relay.
#[derive(Debug, Clone)]
pub struct RelayConnection {
    outgoing: mpsc::Sender<(ClientToRelay, Reply)>,
    next: Arc<AtomicU64>,
    device: DeviceId,
    /// How long a request waits out the relay's rate limit.
    patience: Duration,
}

/// The relay's WebSocket endpoint and the origin to sign, from an address
/// such as `ws://127.0.0.1:2683` or `wss://relay.example.org`.
pub fn endpoint(url: &str) -> Result<(String, String), TransportError> {
    let bad = || TransportError::BadUrl(url.to_owned());
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "ws" && scheme != "wss" {
        return Err(bad());
    }
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    if authority.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    let origin = format!("{scheme}://{}", authority.to_ascii_lowercase());
    let path = path.trim_end_matches('/');
    let endpoint =
        if path.is_empty() { format!("{origin}/v1/ws") } else { format!("{origin}/{path}") };
    Ok((endpoint, origin))
}

impl RelayConnection {
    /// Connects to the relay at `url` and authenticates as `device`.
    /// Pushes arrive on the returned receiver.
    pub async fn connect(
        url: &str,
        device: &DeviceSecret,
    ) -> Result<(Self, mpsc::Receiver<Push>), TransportError> {
        let (address, trust) = tls::split(url)?;
        let (endpoint, origin) = endpoint(address)?;
        let open = Box::pin(Self::open(&endpoint, &origin, &trust, device));
        tokio::time::timeout(CONNECT_TIMEOUT, open).await.map_err(|_| {
            TransportError::Unreachable { url: url.to_owned(), reason: "timed out".into() }
        })?
    }

    async fn open(
        endpoint: &str,
        origin: &str,
        trust: &tls::Trust,
        device: &DeviceSecret,
    ) -> Result<(Self, mpsc::Receiver<Push>), TransportError> {
        let unreachable =
            |reason: String| TransportError::Unreachable { url: origin.to_owned(), reason };
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(16 * 1024)
            .max_write_buffer_size(2 * MAX_FRAME_LEN)
            .max_message_size(Some(MAX_FRAME_LEN))
            .max_frame_size(Some(MAX_FRAME_LEN));
        let seen = Arc::new(std::sync::Mutex::new(None));
        let connector = match origin.starts_with("wss://") {
            true => Some(Connector::Rustls(tls::client_config(trust, Arc::clone(&seen))?)),
            false => None,
        };
        // A certificate that is refused ends the TLS handshake: no frame
        // has been sent. (Boxed: with TLS the handshake's state is large,
        // and every caller's future would otherwise carry it.)
        let (mut socket, _) = Box::pin(tokio_tungstenite::connect_async_tls_with_config(
            endpoint,
            Some(config),
            true,
            connector,
        ))
        .await
        .map_err(|e| match tls::explain(&e, trust, &seen) {
            Some(sentence) => TransportError::Certificate(sentence),
            None => unreachable(e.to_string()),
        })?;
        let (nonce, announced) = match read(&mut socket).await? {
            RelayToClient::Challenge { version, nonce, origin: announced }
                if version == wire::PROTOCOL_VERSION =>
            {
                (nonce, announced)
            }
            RelayToClient::Challenge { .. } => {
                return Err(TransportError::Refused {
                    code: ErrorCode::Unsupported,
                    message: "the relay speaks a different protocol version".into(),
                });
            }
            RelayToClient::Error { code, message, .. } => {
                return Err(TransportError::Refused { code, message });
            }
            _ => return Err(TransportError::Protocol("expected a challenge")),
        };
        // Sign the origin this device dialed, not the one the relay names:
        // a relay that forwards another relay's challenge gets a useless answer.
        let answer = wire::answer_challenge(device, origin, &nonce)
            .ok_or(TransportError::BadUrl(origin.to_owned()))?;
        write(&mut socket, &answer).await?;
        match read(&mut socket).await? {
            RelayToClient::Authenticated { device: id } if id == device.id() => {}
            // The relay names the address it expects (unauthenticated, but
            // only shown to the person, never signed or trusted).
            // Never a suggestion to drop from wss:// to ws://.
            RelayToClient::Error { code: ErrorCode::AuthFailed, .. }
                if origin.starts_with("wss://") && announced.starts_with("ws://") =>
            {
                return Err(TransportError::PlainOnly { dialed: origin.to_owned() });
            }
            RelayToClient::Error { code: ErrorCode::AuthFailed, .. }
                if !announced.is_empty() && announced != origin =>
            {
                return Err(TransportError::WrongOrigin {
                    dialed: origin.to_owned(),
                    expected: checks::printable(&announced),
                });
            }
            RelayToClient::Error { code, message, .. } => {
                return Err(TransportError::Refused { code, message });
            }
            _ => return Err(TransportError::Protocol("expected authentication")),
        }
        let (outgoing, requests) = mpsc::channel(256);
        let (pushes, push_rx) = mpsc::channel(4096);
        tokio::spawn(drive(socket, requests, pushes));
        let next = Arc::new(AtomicU64::new(1));
        Ok((Self { outgoing, next, device: device.id(), patience: RATE_LIMIT_PATIENCE }, push_rx))
    }

    /// The authenticated device.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// This connection, reporting the relay's rate limit at once instead of
    /// waiting it out (for tools and tests that measure the limit).
    pub fn impatient(mut self) -> Self {
        self.patience = Duration::ZERO;
        self
    }

    /// Sends a request built around a fresh request id and waits for its
    /// answer. A relay error becomes [`TransportError::Refused`].
    ///
    /// A request the relay turns away for the device's rate limit was not
    /// carried out, so it is sent again after a pause, for up to about a
    /// minute: a device coming back with a long outbox slows down instead of
    /// failing.
    pub async fn request(
        &self,
        build: impl Fn(RequestId) -> ClientToRelay,
    ) -> Result<RelayToClient, TransportError> {
        let mut pause = Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        loop {
            match self.request_once(&build).await {
                Err(TransportError::Refused { code: ErrorCode::RateLimited, .. })
                    if waited < self.patience =>
                {
                    tokio::time::sleep(pause).await;
                    waited += pause;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    async fn request_once(
        &self,
        build: &impl Fn(RequestId) -> ClientToRelay,
    ) -> Result<RelayToClient, TransportError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.outgoing.send((build(id), reply)).await.map_err(|_| TransportError::Closed)?;
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, answer)
            .await
            .map_err(|_| TransportError::Timeout)?
            .map_err(|_| TransportError::Closed)??;
        match answer {
            RelayToClient::Error { code, message, .. } => {
                Err(TransportError::Refused { code, message })
            }
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_origins_come_from_the_address() {
        assert_eq!(
            endpoint("ws://127.0.0.1:2683").unwrap(),
            ("ws://127.0.0.1:2683/v1/ws".into(), "ws://127.0.0.1:2683".into())
        );
        assert_eq!(
            endpoint("WSS://Relay.Example.org/").unwrap(),
            ("wss://relay.example.org/v1/ws".into(), "wss://relay.example.org".into())
        );
        assert_eq!(endpoint("wss://r.example/cove/v1/ws").unwrap().0, "wss://r.example/cove/v1/ws");
        assert!(endpoint("https://relay.example").is_err());
        assert!(endpoint("relay.example").is_err());
        assert!(endpoint("ws://user@relay.example").is_err());
    }
}
