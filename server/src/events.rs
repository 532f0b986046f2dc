//! Events that one relay process tells the others sharing its database.
//!
//! Within a process, live delivery goes straight through the [`crate::hub`].
//! Across processes (PostgreSQL only) an event travels as a short text
//! notification that names what changed; the receiving process reads the
//! data itself from the database. Notification payloads stay far below
//! PostgreSQL's 8000-byte limit, whatever the envelope's size.

use crate::store::Side;
use cove_shared::codec::{from_hex, to_hex};
use cove_shared::wire::{Cursor, PairOutcome};
use cove_shared::{DeviceId, PlanId};

/// Something other relay processes must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An envelope was stored: deliver it live.
    Stored {
        /// The plan.
        plan: PlanId,
        /// Its cursor.
        cursor: Cursor,
        /// Its sender, who does not get it back.
        sender: DeviceId,
    },
    /// The membership log grew; revoked devices must be disconnected.
    Membership {
        /// The plan.
        plan: PlanId,
        /// The log's new length.
        len: u64,
        /// Devices the new entry revoked.
        revoked: Vec<DeviceId>,
    },
    /// The plan was deleted.
    PlanDeleted {
        /// The plan.
        plan: PlanId,
    },
    /// A pairing message waits for one side.
    PairMessage {
        /// The mailbox.
        nameplate: String,
        /// Who it is for.
        to: Side,
        /// The stored message's id.
        id: i64,
    },
    /// One side closed a pairing mailbox.
    PairClosed {
        /// The mailbox.
        nameplate: String,
        /// Who is told.
        to: Side,
        /// How it ended.
        outcome: PairOutcome,
    },
}

/// What the listener for other processes' events hands this relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// An event another process published.
    Event(Event),
    /// Events may have been missed: the listener's connection was lost and
    /// made again, and whatever was published in between is gone. Every
    /// device connected here must catch up from the database.
    Gap,
}

fn side(s: Side) -> &'static str {
    match s {
        Side::Opener => "o",
        Side::Joiner => "j",
    }
}

fn parse_side(s: &str) -> Option<Side> {
    match s {
        "o" => Some(Side::Opener),
        "j" => Some(Side::Joiner),
        _ => None,
    }
}

impl Event {
    /// The notification text: `<origin node> <tag> <fields…>`, space-separated.
    pub fn to_notification(&self, node: u64) -> String {
        match self {
            Self::Stored { plan, cursor, sender } => format!("{node} S {plan} {cursor} {sender}"),
            Self::Membership { plan, len, revoked } => {
                let mut s = format!("{node} M {plan} {len}");
                for d in revoked {
                    s.push(' ');
                    s.push_str(&to_hex(d.as_bytes()));
                }
                s
            }
            Self::PlanDeleted { plan } => format!("{node} D {plan}"),
            Self::PairMessage { nameplate, to, id } => {
                format!("{node} P {nameplate} {} {id}", side(*to))
            }
            Self::PairClosed { nameplate, to, outcome } => {
                let o = match outcome {
                    PairOutcome::Completed => "c",
                    PairOutcome::Failed => "f",
                };
                format!("{node} C {nameplate} {} {o}", side(*to))
            }
        }
    }

    /// Parses a notification; returns its origin node and the event.
    pub fn from_notification(text: &str) -> Option<(u64, Self)> {
        let mut parts = text.split(' ');
        let node = parts.next()?.parse().ok()?;
        let tag = parts.next()?;
        let plan = |s: Option<&str>| s?.parse::<PlanId>().ok();
        let device = |s: &str| DeviceId::from_bytes(from_hex(s).ok()?).ok();
        let event = match tag {
            "S" => Self::Stored {
                plan: plan(parts.next())?,
                cursor: Cursor(parts.next()?.parse().ok()?),
                sender: device(parts.next()?)?,
            },
            "M" => Self::Membership {
                plan: plan(parts.next())?,
                len: parts.next()?.parse().ok()?,
                revoked: parts.by_ref().map(device).collect::<Option<_>>()?,
            },
            "D" => Self::PlanDeleted { plan: plan(parts.next())? },
            "P" => Self::PairMessage {
                nameplate: parts.next()?.to_owned(),
                to: parse_side(parts.next()?)?,
                id: parts.next()?.parse().ok()?,
            },
            "C" => Self::PairClosed {
                nameplate: parts.next()?.to_owned(),
                to: parse_side(parts.next()?)?,
                outcome: match parts.next()? {
                    "c" => PairOutcome::Completed,
                    "f" => PairOutcome::Failed,
                    _ => return None,
                },
            },
            _ => return None,
        };
        parts.next().is_none().then_some((node, event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_round_trip() {
        let key =
            cove_shared::DeviceSecret::generate(&mut cove_shared::random::SeededEntropy::new(b"e"));
        let plan = PlanId::from_bytes([7; 16]);
        let events = [
            Event::Stored { plan, cursor: Cursor(42), sender: key.id() },
            Event::Membership { plan, len: 3, revoked: vec![key.id()] },
            Event::Membership { plan, len: 2, revoked: vec![] },
            Event::PlanDeleted { plan },
            Event::PairMessage { nameplate: "7".into(), to: Side::Joiner, id: 9 },
            Event::PairClosed {
                nameplate: "7".into(),
                to: Side::Opener,
                outcome: PairOutcome::Failed,
            },
        ];
        for e in events {
            let text = e.to_notification(5);
            assert!(text.len() < 8000);
            assert_eq!(Event::from_notification(&text), Some((5, e)));
        }
        assert_eq!(Event::from_notification("5 S nonsense"), None);
        assert_eq!(Event::from_notification("5 D 07070707070707070707070707070707 extra"), None);
    }
}
