//! Signals as a person sees them: the other partner's, with this
//! partner's answers; this partner's own, with how far each got (waiting,
//! sent, seen, answered); and the safe word, which stands in front of the
//! partner until they acknowledge it, and is lifted only by its sender's
//! all-clear (see [`crate::plan::signals`]).
//!
//! "Sent" means a fetched page showed the envelope (the relay's word alone
//! is a hint); "seen" means a device of the other partner said it holds it,
//! in its signed checkpoint or in a signed answer.
//!
//! What is kept here (answers, standing stops, all-clears) is stored apart
//! from the sync state, so that a state directory made before answers
//! existed still opens, with none.

use super::{Device, DeviceError, ReceivedSignal};
use crate::payload::{Answer, AnswerPayload, Payload};
use crate::plan::signals as words;
use cove_shared::envelope;
use cove_shared::{DeviceId, DocId, Kind, Partner};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How many answers a device keeps, given and received.
pub(super) const ANSWERS_KEPT: usize = 100;

/// How long this partner's own signals stay listed after they were sent.
pub(super) const OWN_LISTED_MS: i64 = 24 * 60 * 60 * 1000;

/// One answer to a signal, given or received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRecord {
    /// The device that answered.
    pub by: DeviceId,
    /// The device that sent the signal.
    pub to: DeviceId,
    /// The signal's `sent_at`, which names it among its sender's signals.
    pub sent_at: i64,
    /// The answer.
    pub answer: Answer,
    /// When it was given (the answering device's clock).
    pub at: i64,
}

/// A stop of the other partner's that no device of this partner has
/// answered, and that no all-clear has lifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Standing {
    from: DeviceId,
    sent_at: i64,
}

/// What a device keeps about answers and stops.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Desk {
    /// Answers, oldest first: this partner's to the other's signals, and the
    /// other partner's to this partner's.
    answers: Vec<AnswerRecord>,
    /// The other partner's stops that stand.
    standing: Vec<Standing>,
    /// Per partner (A, B): the `sent_at` of their newest all-clear.
    cleared: [i64; 2],
}

fn index(partner: Partner) -> usize {
    match partner {
        Partner::A => 0,
        Partner::B => 1,
    }
}

impl Desk {
    fn answer_to(
        &self,
        to: DeviceId,
        sent_at: i64,
        by_partner: impl Fn(&DeviceId) -> bool,
    ) -> Option<&AnswerRecord> {
        self.answers.iter().rev().find(|a| a.to == to && a.sent_at == sent_at && by_partner(&a.by))
    }

    fn record(&mut self, answer: AnswerRecord) {
        self.standing.retain(|s| !(s.from == answer.to && s.sent_at == answer.sent_at));
        self.answers.push(answer);
        let excess = self.answers.len().saturating_sub(ANSWERS_KEPT);
        self.answers.drain(..excess);
    }

    /// Whether the signal `from` sent at `sent_at` is a stop that still
    /// stands.
    pub(super) fn stands(&self, from: DeviceId, sent_at: i64) -> bool {
        self.standing.iter().any(|s| s.from == from && s.sent_at == sent_at)
    }
}

/// One of the other partner's signals, as this partner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncomingSignal {
    /// The device that sent it.
    pub from: DeviceId,
    /// The signal, as the couple wrote it.
    pub name: String,
    /// What it means, from the plan.
    pub meaning: Option<String>,
    /// The response the couple agreed on, from the plan.
    pub response: Option<String>,
    /// Whether it is a safe word.
    pub stop: bool,
    /// When it was sent (the sender's clock), in Unix milliseconds.
    pub sent_at: i64,
    /// When it arrived here.
    pub received_at: i64,
    /// Whether it is still current (within its time to live).
    pub live: bool,
    /// Earlier signals from the same device never arrived.
    pub after_gap: bool,
    /// This partner's answer, and when, if one was given.
    pub answer: Option<(Answer, i64)>,
    /// For a stop: whether its sender has lifted it with the all-clear.
    pub lifted: bool,
}

/// How far one of this partner's signals got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Progress {
    /// Saved on this device, not yet handed to the relay.
    Waiting,
    /// The relay said it stored it; no fetched page has shown it yet.
    Unconfirmed,
    /// The relay stored it: a fetched page showed it.
    Sent,
    /// A device of the other partner holds it.
    Seen,
    /// The other partner acknowledged it.
    Acknowledged,
    /// The other partner dismissed it.
    Dismissed,
}

impl Progress {
    /// The words for it, naming the other partner.
    pub fn words(self, partner: &str) -> String {
        match self {
            Self::Waiting => {
                "not sent yet: it is saved on this device and goes out when the relay answers"
                    .into()
            }
            Self::Unconfirmed => {
                "handed to the relay, which has not yet shown that it stored it".into()
            }
            Self::Sent => format!(
                "sent: the relay stored it; {partner}'s devices have not said they have it yet"
            ),
            Self::Seen => format!("seen: {partner}'s device has it"),
            Self::Acknowledged => format!("acknowledged by {partner}"),
            Self::Dismissed => format!("dismissed by {partner}"),
        }
    }
}

/// One of this partner's own signals, sent from this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutgoingSignal {
    /// The signal.
    pub name: String,
    /// Whether it is a safe word.
    pub stop: bool,
    /// When it was sent.
    pub sent_at: i64,
    /// When it stops being current.
    pub expires_at: i64,
    /// How far it got.
    pub progress: Progress,
    /// When the other partner answered, if they did.
    pub answered_at: Option<i64>,
}

/// Signals as both faces show them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Board {
    /// The other partner's stop that stands, if any: it outranks everything,
    /// and is shown until this partner acknowledges it.
    pub stop: Option<IncomingSignal>,
    /// The other partner's signals that are current or standing, and not
    /// dismissed, newest first (a standing stop among them).
    pub incoming: Vec<IncomingSignal>,
    /// This device's signals of the last day, newest first.
    pub outgoing: Vec<OutgoingSignal>,
    /// Whether this partner's newest stop is current and not yet lifted:
    /// the all-clear is theirs to send.
    pub all_clear_due: bool,
}

impl Device {
    /// The signals, as a person sees them: see [`Board`].
    pub async fn signal_board(&self) -> Result<Board, DeviceError> {
        let now = self.now_ms();
        let plan = self.current_plan();
        let state = self.log.state();
        let mine = |d: &DeviceId| state.member(d).is_some_and(|m| m.partner == self.partner());
        let theirs = |d: &DeviceId| state.member(d).is_some_and(|m| m.partner != self.partner());
        let other = self.partner().other();
        let mut incoming: Vec<IncomingSignal> = self
            .sync
            .signals
            .iter()
            .rev()
            .map(|s| self.incoming(&plan, s, now, other, &mine))
            .filter(|s| {
                (s.live || self.desk.stands(s.from, s.sent_at))
                    && !matches!(s.answer, Some((Answer::Dismissed, _)))
            })
            .collect();
        incoming.retain(|s| theirs(&s.from));
        let stop = incoming.iter().find(|s| self.desk.stands(s.from, s.sent_at)).cloned();

        let (waiting, unconfirmed) = self.signals_in_flight().await?;
        let me = self.id();
        let mut outgoing = Vec::new();
        for s in self.book.signals.iter().rev().filter(|s| now - s.sent_at <= OWN_LISTED_MS) {
            let answer = self.desk.answer_to(me, s.sent_at, theirs);
            let progress = match answer {
                Some(a) if a.answer == Answer::Acknowledged => Progress::Acknowledged,
                Some(_) => Progress::Dismissed,
                None if s.seen => Progress::Seen,
                None if waiting.contains(&s.seq) => Progress::Waiting,
                None if unconfirmed.contains(&s.seq) => Progress::Unconfirmed,
                None => Progress::Sent,
            };
            outgoing.push(OutgoingSignal {
                name: s.signal.clone(),
                stop: words::is_stop(&plan, &s.signal),
                sent_at: s.sent_at,
                expires_at: s.expires_at,
                progress,
                answered_at: answer.map(|a| a.at),
            });
        }
        let newest_stop = outgoing.iter().find(|s| s.stop);
        let lifted = self.desk.cleared[index(self.partner())];
        let all_clear_due = newest_stop.is_some_and(|s| s.sent_at > lifted && s.expires_at >= now);
        Ok(Board { stop, incoming, outgoing, all_clear_due })
    }

    fn incoming(
        &self,
        plan: &crate::plan::model::Plan,
        s: &ReceivedSignal,
        now: i64,
        sender: Partner,
        mine: &impl Fn(&DeviceId) -> bool,
    ) -> IncomingSignal {
        let name = s.signal.signal.clone();
        let sent_at = s.signal.sent_at;
        IncomingSignal {
            from: s.from,
            meaning: words::meaning(plan, &name),
            response: words::response(plan, &name),
            stop: words::is_stop(plan, &name),
            sent_at,
            received_at: s.received_at,
            live: !s.expired(now),
            after_gap: s.after_gap,
            answer: self.desk.answer_to(s.from, sent_at, mine).map(|a| (a.answer, a.at)),
            lifted: sent_at <= self.desk.cleared[index(sender)],
            name,
        }
    }

    /// The sequence numbers of this device's signals still in the outbox,
    /// and of those the relay has not yet been seen to store.
    async fn signals_in_flight(&self) -> Result<(BTreeSet<u64>, BTreeSet<u64>), DeviceError> {
        let signal_seq = |bytes: &[u8]| {
            envelope::header_of(bytes).ok().filter(|h| h.kind == Kind::Signal).map(|h| h.seq.0)
        };
        let waiting = self.outbox().await?.iter().filter_map(|(_, e)| signal_seq(e)).collect();
        let unconfirmed = self
            .unconfirmed()
            .await?
            .iter()
            .filter_map(|(_, e)| signal_seq(&e.envelope.0))
            .collect();
        Ok((waiting, unconfirmed))
    }

    /// Answers one of the other partner's signals (the one `from` sent at
    /// `sent_at`): the answer goes to the outbox, for sending at once, and
    /// a stop it answers no longer stands on this partner's devices.
    pub async fn answer_signal(
        &mut self,
        from: DeviceId,
        sent_at: i64,
        answer: Answer,
    ) -> Result<Vec<u8>, DeviceError> {
        let state = self.log.state();
        if state.member(&from).is_none_or(|m| m.partner == self.partner()) {
            return Err(DeviceError::Invalid("that signal is not one of your partner's".into()));
        }
        self.require_signals()?;
        self.write(async |device, tx| {
            let at = device.now_ms();
            let payload = Payload::Answer(AnswerPayload { to: from, sent_at, answer, at });
            let sealed = device.seal_next(Kind::Signal, DocId::Shared, &payload.encode())?;
            tx.push_outbox(&sealed.bytes)?;
            let me = device.id();
            device.desk.record(AnswerRecord { by: me, to: from, sent_at, answer, at });
            Ok(sealed.bytes)
        })
        .await
    }

    /// A received answer: recorded if it is the other partner's answer to
    /// this partner's signal, or another device of this partner's answer to
    /// the other partner's. A device of the other partner holding the
    /// signal is a receipt: the signal is seen.
    pub(super) fn take_answer(
        &mut self,
        by: DeviceId,
        answer: AnswerPayload,
    ) -> Option<AnswerRecord> {
        let state = self.log.state();
        let (by_partner, to_partner) =
            (state.member(&by)?.partner, state.member(&answer.to)?.partner);
        if by_partner == to_partner {
            return None;
        }
        if answer.to == self.id() {
            self.book.answered(answer.sent_at);
        }
        let record = AnswerRecord {
            by,
            to: answer.to,
            sent_at: answer.sent_at,
            answer: answer.answer,
            at: answer.at,
        };
        self.desk.record(record);
        Some(record)
    }

    /// A received signal (current on arrival): a stop of the other
    /// partner's starts to stand; an all-clear lifts its sender's stops.
    pub(super) fn take_signal(&mut self, signal: &ReceivedSignal) {
        let state = self.log.state();
        let Some(sender) = state.member(&signal.from).map(|m| m.partner) else { return };
        let name = &signal.signal.signal;
        let sent_at = signal.signal.sent_at;
        if words::is_all_clear(name) {
            let cleared = &mut self.desk.cleared[index(sender)];
            *cleared = (*cleared).max(sent_at);
            let members: Vec<DeviceId> =
                state.members().filter(|m| m.partner == sender).map(|m| m.device).collect();
            self.desk.standing.retain(|s| !(members.contains(&s.from) && s.sent_at <= sent_at));
        } else if sender != self.partner()
            && sent_at > self.desk.cleared[index(sender)]
            && words::is_stop(&self.current_plan(), name)
        {
            self.desk.standing.push(Standing { from: signal.from, sent_at });
        }
    }

    /// This partner sent an all-clear: their own stops are lifted here too.
    pub(super) fn lift_own_stops(&mut self, sent_at: i64) {
        let cleared = &mut self.desk.cleared[index(self.partner())];
        *cleared = (*cleared).max(sent_at);
    }
}
