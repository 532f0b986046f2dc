//! Delivery receipts, as faces show them: which of this device's changes
//! and signals each other device holds, by its own signed word.

use crate::device::Device;
use crate::human::{ago, moment};
use cove_shared::{DeviceId, DocId, Kind, Seq};
use serde::{Deserialize, Serialize};

/// What one other device holds of this device's changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// The device, named.
    pub device: String,
    /// Whose it is: "A" or "B".
    pub partner: String,
    /// When it last checkpointed (Unix milliseconds), if it ever did.
    pub last_seen: Option<i64>,
    /// When this device made the newest of its changes the device holds.
    pub holds_upto: Option<i64>,
    /// When this device made the oldest of its changes the relay has shown
    /// and the device does not hold yet.
    pub lacks_since: Option<i64>,
    /// All of it, in one sentence.
    pub text: String,
}

/// A signal this device sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentSignal {
    /// Its position in this device's signal stream.
    pub seq: u64,
    /// Which signal.
    pub signal: String,
    /// When it was sent (Unix milliseconds).
    pub sent_at: i64,
    /// When it stops being live.
    pub expires_at: i64,
    /// Whether one of the other partner's devices has said it holds it.
    pub seen: bool,
}

impl Device {
    /// A receipt for every other active device, this partner's first.
    pub fn receipts(&self) -> Vec<Receipt> {
        let me = self.id();
        let now = self.now_ms();
        let mut members: Vec<_> = self.membership().active().filter(|m| m.device != me).collect();
        members.sort_by_key(|m| (m.partner != self.partner(), m.device));
        members.into_iter().map(|m| self.receipt(&m.device, m.partner.to_string(), now)).collect()
    }

    fn receipt(&self, device: &DeviceId, partner: String, now: i64) -> Receipt {
        let me = self.id();
        let label = self.device_label(device);
        let Some(theirs) = self.book.theirs(device) else {
            return Receipt {
                text: format!("{label} has not said what it holds yet"),
                device: label,
                partner,
                last_seen: None,
                holds_upto: None,
                lacks_since: None,
            };
        };
        let mut holds_upto = None;
        let mut lacks_since = None;
        for own in self.own.iter().filter(|o| o.kind == Kind::Changes.code()) {
            let Some(doc) = DocId::from_code(own.doc) else { continue };
            if Seq(own.seq) <= theirs.holds(me, Kind::Changes, doc) {
                holds_upto = holds_upto.max(Some(own.made_at));
            } else if own.cursor > 0 {
                lacks_since = Some(lacks_since.map_or(own.made_at, |s: i64| s.min(own.made_at)));
            }
        }
        let seen = theirs.last_seen();
        let heard = ago(seen.div_euclid(1000), now.div_euclid(1000));
        let text = match (holds_upto, lacks_since) {
            (_, None) => format!("{label} has all your changes; last heard {heard}"),
            (Some(upto), Some(since)) => format!(
                "{label} has your changes up to {}, not yet those since {}; last heard {heard}",
                moment(upto, now),
                moment(since, now)
            ),
            (None, Some(since)) => format!(
                "{label} does not have your changes since {} yet; last heard {heard}",
                moment(since, now)
            ),
        };
        Receipt { device: label, partner, last_seen: Some(seen), holds_upto, lacks_since, text }
    }

    /// The signals this device sent, newest last, each marked seen once a
    /// device of the other partner has said it holds it.
    pub fn sent_signals(&self) -> Vec<SentSignal> {
        self.book.signals.clone()
    }
}
