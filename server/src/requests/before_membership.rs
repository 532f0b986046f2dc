//! Requests made before (or instead of) membership: pairing mailboxes, and
//! a recovering device proving it acts for a partner identity. Both are
//! limited per address, since anyone may try them.

use super::Session;
use crate::error::ApiError;
use crate::events::Event;
use crate::hub::Outbound;
use crate::metrics::StoreOp;
use crate::store::{Side, Store};
use bytes::Bytes;
use cove_shared::wire::{
    self, Blob, ErrorCode, MAX_NAMEPLATE_LEN, MAX_PAIR_MESSAGE_LEN, MAX_PAIR_MESSAGES, PairOutcome,
    RelayToClient, RequestId, Signature64,
};
use cove_shared::{DeviceId, Entry, EntryBody, PlanId};
use std::time::Instant;

impl<S: Store> Session<'_, S> {
    pub(super) fn pairing_allowed(&self) -> Result<(), ApiError> {
        if self.relay.pairing_limits.allow(self.peer, Instant::now()) {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::PairingRateLimited))
        }
    }

    pub(super) async fn pair_open(
        &mut self,
        request: RequestId,
    ) -> Result<Vec<RelayToClient>, ApiError> {
        self.pairing_allowed()?;
        let expires_at =
            self.relay.now_s() + self.relay.settings.limits.pairing_ttl.as_secs() as i64;
        let nameplate = self
            .relay
            .write(StoreOp::Pairing, self.relay.store.pair_open(self.device, expires_at))
            .await?;
        self.relay.hub.pair_attach(&nameplate, Side::Opener, self.conn);
        Ok(vec![RelayToClient::PairOpened { request, nameplate }])
    }

    pub(super) async fn pair_join(
        &mut self,
        request: RequestId,
        nameplate: String,
    ) -> Result<Vec<RelayToClient>, ApiError> {
        self.pairing_allowed()?;
        if nameplate.is_empty() || nameplate.len() > MAX_NAMEPLATE_LEN {
            return Err(ApiError::new(ErrorCode::PairingUnknown));
        }
        // Attach before joining, so that a message the opener sends while the
        // join commits is delivered live rather than lost; duplicates are
        // dropped by message id.
        self.relay.hub.pair_attach(&nameplate, Side::Joiner, self.conn);
        let joined = self
            .relay
            .timed(
                StoreOp::Pairing,
                self.relay.store.pair_join(&nameplate, self.device, self.relay.now_s()),
            )
            .await;
        let waiting = match joined {
            Ok(waiting) => {
                self.relay.health.writes.succeeded();
                waiting
            }
            Err(error) => {
                if error == crate::store::PairError::Unavailable {
                    self.relay.health.writes.failed(&"a pairing join could not be committed");
                }
                self.relay.hub.pair_detach(&nameplate, self.conn);
                if error == crate::store::PairError::Burned {
                    // A second join burns the mailbox: tell the opener.
                    self.notify_closed(&nameplate, Side::Opener, PairOutcome::Failed).await;
                }
                return Err(error.into());
            }
        };
        let mut replies = vec![RelayToClient::Done { request }];
        for (id, body) in waiting {
            if self.delivered.insert(id) {
                replies.push(RelayToClient::PairMessage {
                    nameplate: nameplate.clone(),
                    body: Blob(body),
                });
            }
        }
        Ok(replies)
    }

    /// The mailbox and this device's side of it, if it is still usable.
    async fn my_side(&self, nameplate: &str) -> Result<Side, ApiError> {
        let mailbox = self
            .relay
            .read(StoreOp::Pairing, self.relay.store.pair_get(nameplate, self.relay.now_s()))
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::PairingUnknown))?;
        let side =
            mailbox.side_of(self.device).ok_or_else(|| ApiError::new(ErrorCode::PairingUnknown))?;
        use crate::store::PairState;
        match mailbox.state {
            PairState::Open | PairState::Joined => Ok(side),
            PairState::Done | PairState::Burned => Err(ApiError::new(ErrorCode::PairingBurned)),
        }
    }

    pub(super) async fn pair_send(
        &mut self,
        request: RequestId,
        nameplate: String,
        body: Blob,
    ) -> Result<Vec<RelayToClient>, ApiError> {
        if body.0.len() > MAX_PAIR_MESSAGE_LEN {
            return Err(ApiError::with(
                ErrorCode::FrameTooLarge,
                "pairing messages are limited to 8 KiB",
            ));
        }
        let side = self.my_side(&nameplate).await?;
        let Some(id) = self
            .relay
            .write(StoreOp::Pairing, self.relay.store.pair_post(&nameplate, side, &body.0))
            .await?
        else {
            return Err(ApiError::with(
                ErrorCode::QuotaExceeded,
                format!(
                    "a pairing mailbox takes at most {MAX_PAIR_MESSAGES} messages from each side"
                ),
            ));
        };
        let to = side.other();
        let message = RelayToClient::PairMessage { nameplate: nameplate.clone(), body };
        let local = wire::encode(&message)
            .map(|frame| {
                self.relay.hub.pair_send(
                    &nameplate,
                    to,
                    Outbound::PairMessage { id, frame: Bytes::from(frame) },
                )
            })
            .unwrap_or(false);
        if !local {
            self.relay.store.publish(&Event::PairMessage { nameplate, to, id }).await;
        }
        Ok(vec![RelayToClient::Done { request }])
    }

    pub(super) async fn pair_close(
        &mut self,
        request: RequestId,
        nameplate: String,
        outcome: PairOutcome,
    ) -> Result<Vec<RelayToClient>, ApiError> {
        let side = self.my_side(&nameplate).await?;
        self.relay
            .write(StoreOp::Pairing, self.relay.store.pair_close(&nameplate, outcome))
            .await?;
        self.relay.hub.pair_detach(&nameplate, self.conn);
        self.notify_closed(&nameplate, side.other(), outcome).await;
        Ok(vec![RelayToClient::Done { request }])
    }

    async fn notify_closed(&self, nameplate: &str, to: Side, outcome: PairOutcome) {
        let message = RelayToClient::PairClosed { nameplate: nameplate.to_owned(), outcome };
        let local = wire::encode(&message)
            .map(|frame| {
                self.relay.hub.pair_send(nameplate, to, Outbound::Frame(Bytes::from(frame)))
            })
            .unwrap_or(false);
        if !local {
            self.relay
                .store
                .publish(&Event::PairClosed { nameplate: nameplate.to_owned(), to, outcome })
                .await;
        }
    }

    /// The connection ended while in a mailbox: an unfinished pairing is
    /// burned, and the other side is told.
    pub async fn abandon_pairing(&mut self, nameplate: &str, side: Side) {
        if self.my_side(nameplate).await.is_ok() {
            let _ = self.relay.store.pair_close(nameplate, PairOutcome::Failed).await;
            self.notify_closed(nameplate, side.other(), PairOutcome::Failed).await;
        }
    }

    /// Whether `entry` is the one a recovering device may append although it
    /// is not a member yet: its proven identity enrolling this very device.
    pub(super) fn recovers_itself(&self, plan: PlanId, entry: &Entry) -> bool {
        let Some((recovering, identity)) = self.recovering else { return false };
        recovering == plan
            && entry.signer() == identity
            && matches!(entry.body(), EntryBody::AddDevice { bundle, .. } if bundle.device == self.device)
    }

    /// A device that is not a member proves it acts for a partner identity:
    /// the relay names the plan that pins that identity, and lets this
    /// connection read its membership and enrol itself. The rules of the
    /// log still decide whether that enrolment is allowed.
    pub(super) async fn recover(
        &mut self,
        request: RequestId,
        identity: DeviceId,
        proof: &Signature64,
    ) -> Result<Vec<RelayToClient>, ApiError> {
        self.pairing_allowed()?;
        if !cove_shared::identity::verify_recovery_proof(&identity, &self.device, &proof.0) {
            return Err(ApiError::new(ErrorCode::NotFound));
        }
        let plans =
            self.relay.read(StoreOp::Other, self.relay.store.identity_plans(identity)).await?;
        for plan in plans {
            let state = self.relay.membership(plan, true).await?;
            let live = [cove_shared::Partner::A, cove_shared::Partner::B]
                .into_iter()
                .any(|p| state.live_identity(p).is_some_and(|i| i.key == identity));
            if live {
                self.recovering = Some((plan, identity));
                return Ok(vec![RelayToClient::Recovering { request, plan }]);
            }
        }
        // No plan, or only plans where this identity no longer speaks for
        // anyone: the same answer as for an unknown plan.
        Err(ApiError::new(ErrorCode::NotFound))
    }
}
