//! Pairing mailboxes, written once for both backends.

use super::dialect::{self, Arg, Backend, Col};
use super::log::device;
use super::{Mailbox, Mailboxes, PairError, PairState, Side, StoreError};
use cove_shared::DeviceId;
use cove_shared::wire::{MAX_PAIR_MESSAGES, PairOutcome};

/// Grace period after a pairing mailbox expires before its nameplate can be
/// reused, so that a late joiner with an old code cannot burn a new mailbox.
pub(super) const PAIRING_GRACE_SECS: i64 = 600;

/// The smallest positive integer, as text, that is not taken.
fn free_nameplate(taken: &[String]) -> String {
    let mut numbers: Vec<u64> = taken.iter().filter_map(|t| t.parse().ok()).collect();
    numbers.sort_unstable();
    let mut candidate = 1;
    for n in numbers {
        if n == candidate {
            candidate += 1;
        } else if n > candidate {
            break;
        }
    }
    candidate.to_string()
}

fn outcome_state(outcome: PairOutcome) -> PairState {
    match outcome {
        PairOutcome::Completed => PairState::Done,
        PairOutcome::Failed => PairState::Burned,
    }
}

impl<B: Backend> Mailboxes for B {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn pair_open(&self, opener: DeviceId, expires_at: i64) -> Result<String, StoreError> {
        // Another relay process may take the same number at the same
        // moment; the primary key decides, and the loser tries again.
        for _ in 0..8 {
            let taken = dialect::write(self, "SELECT nameplate FROM pairings", &[], &[Col::Text])
                .await?
                .into_iter()
                .map(|mut r| r.text(0))
                .collect::<Result<Vec<String>, _>>()?;
            let nameplate = free_nameplate(&taken);
            let inserted = dialect::write(
                self,
                "INSERT INTO pairings (nameplate, state, expires_at, opener, joiner)
                 VALUES ($1, 0, $2, $3, NULL) ON CONFLICT DO NOTHING RETURNING nameplate",
                &[Arg::Text(&nameplate), Arg::Int(expires_at), Arg::Bytes(opener.as_bytes())],
                &[Col::Text],
            )
            .await?;
            if !inserted.is_empty() {
                return Ok(nameplate);
            }
        }
        Err(StoreError::Conflict)
    }

    async fn pair_get(&self, nameplate: &str, now: i64) -> Result<Option<Mailbox>, StoreError> {
        let rows = dialect::write(
            self,
            "SELECT state, expires_at, opener, joiner FROM pairings WHERE nameplate = $1",
            &[Arg::Text(nameplate)],
            &[Col::Int, Col::Int, Col::Bytes, Col::OptBytes],
        )
        .await?;
        let Some(mut row) = rows.into_iter().next() else { return Ok(None) };
        let expires_at = row.int(1)?;
        if expires_at <= now {
            return Ok(None);
        }
        Ok(Some(Mailbox {
            nameplate: nameplate.to_owned(),
            state: PairState::from_code(row.int(0)?).ok_or(StoreError::Corrupt("pairing state"))?,
            expires_at,
            opener: device(&row.bytes(2)?)?,
            joiner: row.opt_bytes(3)?.as_deref().map(device).transpose()?,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn pair_join(
        &self,
        nameplate: &str,
        joiner: DeviceId,
        now: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, PairError> {
        let unavailable = |e: StoreError| {
            // Logged once, as the relay's store health.
            tracing::debug!(error = %e, "pairing join failed in storage");
            PairError::Unavailable
        };
        let mut tx = dialect::begin(self).await.map_err(unavailable)?;
        let row = dialect::row::<B>(
            &mut tx,
            "SELECT state, expires_at, opener FROM pairings WHERE nameplate = $1",
            &[Arg::Text(nameplate)],
            &[Col::Int, Col::Int, Col::Bytes],
        )
        .await
        .map_err(unavailable)?;
        let Some(mut row) = row else { return Err(PairError::Unknown) };
        let (state, expires_at) =
            (row.int(0).map_err(unavailable)?, row.int(1).map_err(unavailable)?);
        let opener = row.bytes(2).map_err(unavailable)?;
        if expires_at <= now {
            return Err(PairError::Unknown);
        }
        if state != PairState::Open.code() || opener == joiner.as_bytes() {
            dialect::execute::<B>(
                &mut tx,
                "UPDATE pairings SET state = $2 WHERE nameplate = $1",
                &[Arg::Text(nameplate), Arg::Int(PairState::Burned.code())],
            )
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(|e| unavailable(e.into()))?;
            return Err(PairError::Burned);
        }
        dialect::execute::<B>(
            &mut tx,
            "UPDATE pairings SET state = $2, joiner = $3 WHERE nameplate = $1",
            &[
                Arg::Text(nameplate),
                Arg::Int(PairState::Joined.code()),
                Arg::Bytes(joiner.as_bytes()),
            ],
        )
        .await
        .map_err(unavailable)?;
        let waiting = dialect::rows::<B>(
            &mut tx,
            "SELECT id, body FROM pairing_messages WHERE nameplate = $1 AND side = $2 ORDER BY id",
            &[Arg::Text(nameplate), Arg::Int(Side::Opener.code())],
            &[Col::Int, Col::Bytes],
        )
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(|e| unavailable(e.into()))?;
        waiting
            .into_iter()
            .map(|mut r| Ok((r.int(0)?, r.bytes(1)?)))
            .collect::<Result<_, StoreError>>()
            .map_err(unavailable)
    }

    async fn pair_post(
        &self,
        nameplate: &str,
        from: Side,
        body: &[u8],
    ) -> Result<Option<i64>, StoreError> {
        // One statement, so that two posts at once cannot both pass the count.
        let rows = dialect::write(
            self,
            "INSERT INTO pairing_messages (nameplate, side, body)
             SELECT $1, $2, $3 WHERE (SELECT COUNT(*) FROM pairing_messages
             WHERE nameplate = $1 AND side = $2) < $4 RETURNING id",
            &[
                Arg::Text(nameplate),
                Arg::Int(from.code()),
                Arg::Bytes(body),
                Arg::Int(MAX_PAIR_MESSAGES as i64),
            ],
            &[Col::Int],
        )
        .await?;
        rows.first().map(|r| r.int(0)).transpose()
    }

    async fn pair_message(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = dialect::write(
            self,
            "SELECT body FROM pairing_messages WHERE id = $1",
            &[Arg::Int(id)],
            &[Col::Bytes],
        )
        .await?;
        rows.into_iter().next().map(|mut r| r.bytes(0)).transpose()
    }

    async fn pair_close(&self, nameplate: &str, outcome: PairOutcome) -> Result<(), StoreError> {
        dialect::write(
            self,
            "UPDATE pairings SET state = $2 WHERE nameplate = $1 AND state IN (0, 1)",
            &[Arg::Text(nameplate), Arg::Int(outcome_state(outcome).code())],
            &[],
        )
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn expire_mailboxes(&self, now: i64) -> Result<u64, StoreError> {
        let cutoff = now - PAIRING_GRACE_SECS;
        let mut tx = dialect::begin(self).await?;
        dialect::execute::<B>(
            &mut tx,
            "DELETE FROM pairing_messages WHERE nameplate IN
               (SELECT nameplate FROM pairings WHERE expires_at <= $1)",
            &[Arg::Int(cutoff)],
        )
        .await?;
        let mailboxes = dialect::execute::<B>(
            &mut tx,
            "DELETE FROM pairings WHERE expires_at <= $1",
            &[Arg::Int(cutoff)],
        )
        .await?;
        tx.commit().await?;
        Ok(mailboxes)
    }
}

#[cfg(test)]
mod tests {
    use super::free_nameplate;

    #[test]
    fn nameplates_fill_the_smallest_gap() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(free_nameplate(&[]), "1");
        assert_eq!(free_nameplate(&s(&["1", "2", "4"])), "3");
        assert_eq!(free_nameplate(&s(&["2", "3"])), "1");
        assert_eq!(free_nameplate(&s(&["1", "x", "2"])), "3");
    }
}
