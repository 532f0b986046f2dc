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
//! An all-clear lifts the stops of its sender's partner that this device
//! holds when it arrives: arrival, not anyone's clock, decides. A stop
//! stands whatever its age: one that arrives late is shown all the same,
//! with when it was sent. A signal is named by its sender and `sent_at`.
//!
//! What is kept here (answers, standing and lifted stops) is stored apart
//! from the sync state, so that a state directory made before answers
//! existed still opens, with none.

use super::{Device, DeviceError, ReceivedSignal, push_bounded};
use crate::payload::{Answer, AnswerPayload, Payload};
use crate::plan::signals as words;
use cove_shared::envelope;
use cove_shared::{DeviceId, DocId, Kind, Seq};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How many answers a device keeps, of each side.
pub(super) const ANSWERS_KEPT: usize = 100;

/// How many stops may stand at once, and how many lifted ones are kept.
const STOPS_KEPT: usize = 20;

/// How long this partner's own signals stay listed after they were sent.
pub(super) const OWN_LISTED_MS: i64 = 24 * 60 * 60 * 1000;

/// How long an answer of this device's is sent again if the relay loses
/// it: as long as the relay keeps signals by default.
pub(crate) const ANSWER_RESENT_MS: i64 = 24 * 60 * 60 * 1000;

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

/// A stop of the other partner's, by its sender and `sent_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Standing {
    from: DeviceId,
    sent_at: i64,
}

/// What a device keeps about answers and stops.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Desk {
    /// Answers this partner's devices gave to the other's signals, oldest
    /// first.
    given: Vec<AnswerRecord>,
    /// Answers the other partner's devices gave to this device's signals.
    received: Vec<AnswerRecord>,
    /// The other partner's stops that stand.
    standing: Vec<Standing>,
    /// The other partner's stops this device received, answered or not.
    stops: Vec<Standing>,
    /// Stops their sender lifted with the all-clear.
    lifted: Vec<Standing>,
}

impl Desk {
    fn answer(list: &[AnswerRecord], to: DeviceId, sent_at: i64) -> Option<&AnswerRecord> {
        list.iter().rev().find(|a| a.to == to && a.sent_at == sent_at)
    }

    fn given(&mut self, answer: AnswerRecord) {
        self.standing.retain(|s| !(s.from == answer.to && s.sent_at == answer.sent_at));
        push_bounded(&mut self.given, answer, ANSWERS_KEPT);
    }

    /// Whether the signal `from` sent at `sent_at` is a stop that still
    /// stands.
    pub(super) fn stands(&self, from: DeviceId, sent_at: i64) -> bool {
        self.standing.iter().any(|s| s.from == from && s.sent_at == sent_at)
    }

    fn lifted(&self, from: DeviceId, sent_at: i64) -> bool {
        self.lifted.iter().any(|s| s.from == from && s.sent_at == sent_at)
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
    /// Whether this device sent a stop in the last day and no all-clear
    /// since: the all-clear is this partner's to send.
    pub all_clear_due: bool,
}

impl Device {
    /// The signals, as a person sees them: see [`Board`].
    pub async fn signal_board(&self) -> Result<Board, DeviceError> {
        let now = self.now_ms();
        let plan = self.current_plan();
        let state = self.log.state();
        let theirs = |d: &DeviceId| state.member(d).is_some_and(|m| m.partner != self.partner());
        let incoming: Vec<IncomingSignal> = self
            .sync
            .signals
            .iter()
            .rev()
            .filter(|s| theirs(&s.from))
            .map(|s| self.incoming(&plan, s, now))
            .filter(|s| {
                (s.live || self.desk.stands(s.from, s.sent_at))
                    && !matches!(s.answer, Some((Answer::Dismissed, _)))
            })
            .collect();
        let stop = incoming.iter().find(|s| self.desk.stands(s.from, s.sent_at)).cloned();

        let (waiting, unconfirmed) = self.signals_in_flight().await?;
        let me = self.id();
        let mut outgoing = Vec::new();
        // Newest first: the all-clear is due if a stop comes before any
        // all-clear.
        let mut all_clear_due = None;
        for s in self.book.signals.iter().rev().filter(|s| now - s.sent_at <= OWN_LISTED_MS) {
            let answer = Desk::answer(&self.desk.received, me, s.sent_at);
            // "Sent" only where a fetched page showed it.
            let shown =
                self.own.get(Kind::Signal, DocId::Shared, Seq(s.seq)).is_some_and(|o| o.cursor > 0);
            let progress = match answer {
                Some(a) if a.answer == Answer::Acknowledged => Progress::Acknowledged,
                Some(_) => Progress::Dismissed,
                None if s.seen => Progress::Seen,
                None if waiting.contains(&s.seq) => Progress::Waiting,
                None if unconfirmed.contains(&s.seq) || !shown => Progress::Unconfirmed,
                None => Progress::Sent,
            };
            let stop = words::is_stop(&plan, &s.signal);
            if all_clear_due.is_none() && (stop || words::is_all_clear(&s.signal)) {
                all_clear_due = Some(stop);
            }
            outgoing.push(OutgoingSignal {
                name: s.signal.clone(),
                stop,
                sent_at: s.sent_at,
                expires_at: s.expires_at,
                progress,
                answered_at: answer.map(|a| a.at),
            });
        }
        let all_clear_due = all_clear_due.unwrap_or(false);
        Ok(Board { stop, incoming, outgoing, all_clear_due })
    }

    fn incoming(
        &self,
        plan: &crate::plan::model::Plan,
        s: &ReceivedSignal,
        now: i64,
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
            answer: Desk::answer(&self.desk.given, s.from, sent_at).map(|a| (a.answer, a.at)),
            lifted: self.desk.lifted(s.from, sent_at),
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
    /// a stop it answers no longer stands on this partner's devices. When
    /// this device may not send now (the error says why), the answer still
    /// counts here, so that a stop never stays in front of its person.
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
        let me = self.id();
        if let Err(refused) = self.require_signals() {
            self.write(async |device, _| {
                let at = device.now_ms();
                device.desk.given(AnswerRecord { by: me, to: from, sent_at, answer, at });
                Ok(())
            })
            .await?;
            return Err(refused);
        }
        self.write(async |device, tx| {
            let at = device.now_ms();
            let payload = Payload::Answer(AnswerPayload { to: from, sent_at, answer, at });
            let sealed = device.seal_next(Kind::Signal, DocId::Shared, &payload.encode())?;
            tx.push_outbox(&sealed.bytes)?;
            device.desk.given(AnswerRecord { by: me, to: from, sent_at, answer, at });
            Ok(sealed.bytes)
        })
        .await
    }

    /// A received answer, kept if it is the other partner's answer to a
    /// signal this device sent (a receipt: the signal is seen), or another
    /// device of this partner's answer to the other partner's signal.
    pub(super) fn take_answer(
        &mut self,
        by: DeviceId,
        answer: AnswerPayload,
    ) -> Option<AnswerRecord> {
        let state = self.log.state();
        let by_partner = state.member(&by)?.partner;
        if by_partner == state.member(&answer.to)?.partner {
            return None;
        }
        let record = AnswerRecord {
            by,
            to: answer.to,
            sent_at: answer.sent_at,
            answer: answer.answer,
            at: answer.at,
        };
        if answer.to == self.id() {
            if !self.book.signals.iter().any(|s| s.sent_at == answer.sent_at) {
                return None;
            }
            self.book.answered(answer.sent_at);
            push_bounded(&mut self.desk.received, record, ANSWERS_KEPT);
        } else if by_partner == self.partner() {
            // Another device of this partner's: taken even for a signal
            // that arrives later in the same batch.
            self.desk.given(record);
        } else {
            return None;
        }
        Some(record)
    }

    /// A received signal of the other partner's, whatever its age: a stop
    /// (`stop`) starts to stand, unless a device of this partner already
    /// answered it; an all-clear lifts the stops of its sender's partner
    /// that this device holds.
    pub(super) fn take_signal(&mut self, signal: &ReceivedSignal, stop: bool) {
        let state = self.log.state();
        let Some(sender) = state.member(&signal.from).map(|m| m.partner) else { return };
        if sender == self.partner() {
            return;
        }
        let sent_at = signal.signal.sent_at;
        if words::is_all_clear(&signal.signal.signal) {
            let members: Vec<DeviceId> =
                state.members().filter(|m| m.partner == sender).map(|m| m.device).collect();
            let desk = &mut self.desk;
            desk.standing.retain(|s| !members.contains(&s.from));
            let lifted: Vec<Standing> = desk
                .stops
                .iter()
                .filter(|s| members.contains(&s.from) && !desk.lifted.contains(s))
                .copied()
                .collect();
            for s in lifted {
                push_bounded(&mut desk.lifted, s, STOPS_KEPT);
            }
        } else if stop {
            let this = Standing { from: signal.from, sent_at };
            if !self.desk.stops.contains(&this) {
                push_bounded(&mut self.desk.stops, this, STOPS_KEPT);
            }
            if Desk::answer(&self.desk.given, signal.from, sent_at).is_none()
                && !self.desk.stands(signal.from, sent_at)
            {
                push_bounded(&mut self.desk.standing, this, STOPS_KEPT);
            }
        }
    }
}
