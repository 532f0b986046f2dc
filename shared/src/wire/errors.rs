//! Why the relay refused a request or closed a connection: stable numbers,
//! each with a short name for metrics and a sentence for people.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, $text:literal; )*) => {
        /// Why the relay refused a request or closed a connection. The
        /// numbers are stable: they never change meaning and are never reused.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $name, )*
            /// A code this version does not know.
            Unrecognized(u16),
        }

        impl ErrorCode {
            /// Every known code.
            pub const ALL: &'static [ErrorCode] = &[$(Self::$name),*];

            /// The stable number.
            pub const fn code(self) -> u16 {
                match self {
                    $( Self::$name => $code, )*
                    Self::Unrecognized(c) => c,
                }
            }

            /// The code with this number.
            pub const fn from_code(code: u16) -> Self {
                match code {
                    $( $code => Self::$name, )*
                    c => Self::Unrecognized(c),
                }
            }

            /// The default sentence for people.
            pub const fn describe(self) -> &'static str {
                match self {
                    $( Self::$name => $text, )*
                    Self::Unrecognized(_) => "the relay reported an error this version does not know",
                }
            }

            /// The short name used in metrics and logs, such as `rate_limited`.
            pub fn name(self) -> String {
                match self {
                    $( Self::$name => to_snake(stringify!($name)), )*
                    Self::Unrecognized(c) => format!("unrecognized_{c}"),
                }
            }
        }
    };
}

error_codes! {
    /// The frame is not a valid message.
    BadFrame = 1, "the message could not be decoded";
    /// The frame exceeds the size limit.
    FrameTooLarge = 2, "the message is larger than the relay accepts";
    /// The message kind or protocol version is not supported.
    Unsupported = 3, "the relay does not support this message or protocol version";
    /// The request needs an authenticated connection.
    AuthRequired = 10, "authenticate before sending requests";
    /// The authentication response did not verify.
    AuthFailed = 11, "authentication failed";
    /// The authentication response came too late.
    AuthTimeout = 12, "authentication took too long";
    /// The plan does not exist, or this device is not one of its members.
    /// The two cases are deliberately indistinguishable.
    NotFound = 20, "no such plan for this device";
    /// This device was revoked from the plan.
    Revoked = 21, "this device has been removed from the plan";
    /// A plan with this id already exists.
    PlanExists = 22, "a plan with this id already exists";
    /// The envelope is malformed, its signature fails, or its sender is not this device.
    InvalidEnvelope = 30, "the envelope is not valid";
    /// A different envelope with this sender and sequence number is already stored.
    Equivocation = 31, "a different envelope with this sequence number is already stored";
    /// The membership entry breaks a rule of the log.
    InvalidMembership = 32, "the membership entry is not valid";
    /// The membership entry does not extend the current log (another entry won).
    MembershipConflict = 33, "the membership log has changed; fetch it and retry";
    /// The snapshot is invalid or older than the one stored.
    InvalidSnapshot = 34, "the snapshot is not valid";
    /// The envelope is sealed under an epoch the membership has moved past
    /// (a revocation or rotation since): fetch membership and seal again.
    StaleEpoch = 35, "the envelope is sealed under an earlier key; fetch the membership and seal it again";
    /// Too many requests from this device; slow down.
    RateLimited = 40, "too many requests; slow down";
    /// The plan has reached its storage quota.
    QuotaExceeded = 41, "the plan has reached its storage quota on this relay";
    /// The relay is at its connection limit.
    TooManyConnections = 42, "the relay has too many connections; try again later";
    /// The connection was idle too long.
    IdleTimeout = 43, "the connection was idle for too long";
    /// The device could not keep up with live delivery; it reconnects and fetches.
    Overloaded = 44, "the connection fell behind; reconnect to catch up";
    /// No open pairing mailbox has this nameplate (never opened, or expired).
    PairingUnknown = 50, "no pairing is waiting under this code; it may have expired";
    /// The pairing mailbox was burned by a failed attempt or already used.
    PairingBurned = 51, "this pairing code has been used or burned; start a new one";
    /// Too many pairing attempts from this address.
    PairingRateLimited = 53, "too many pairing attempts; wait a few minutes";
    /// The relay's storage is unavailable.
    Unavailable = 60, "the relay cannot reach its storage right now; try again later";
    /// The relay failed unexpectedly.
    Internal = 61, "the relay failed unexpectedly";
    /// The relay is shutting down.
    ShuttingDown = 62, "the relay is restarting; reconnect shortly";
}

fn to_snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.code())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u16::deserialize(d).map(Self::from_code)
    }
}
