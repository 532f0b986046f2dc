//! Pairing mailboxes, written once for both backends.

use super::dialect::{self, Arg, Backend, Col};
use super::log::device;
use super::{Mailbox, Mailboxes, PairError, PairState, Side, StoreError};
use cove_shared::random::Entropy;
use cove_shared::wire::{MAX_PAIR_MESSAGES, PairOutcome};
use cove_shared::{DeviceId, OsEntropy};

/// Grace period after a pairing mailbox expires before its nameplate can be
/// reused, so that a late joiner with an old code cannot burn a new mailbox.
pub(super) const PAIRING_GRACE_SECS: i64 = 600;

/// The range nameplates are drawn from: six digits, easy to read aloud.
const NAMEPLATES: std::ops::Range<u32> = 100_000..1_000_000;

/// A nameplate drawn uniformly at random, so that a stranger cannot guess a
/// couple's open mailbox and burn it: with a few mailboxes open among
/// 900,000 numbers and joins limited per address, a guess almost never
/// lands.
fn random_nameplate(rng: &mut impl Entropy) -> String {
    let span = NAMEPLATES.end - NAMEPLATES.start;
    // Rejection sampling: no number is likelier than another.
    let limit = u32::MAX - u32::MAX % span;
    loop {
        let n = u32::from_be_bytes(rng.array());
        if n < limit {
            return (NAMEPLATES.start + n % span).to_string();
        }
    }
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
        // A number still taken (open, or within its grace period), or taken
        // by another relay process at the same moment: the primary key
        // decides, and a fresh number is drawn.
        for _ in 0..8 {
            let nameplate = random_nameplate(&mut OsEntropy);
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
    use super::{NAMEPLATES, random_nameplate};
    use cove_shared::random::SeededEntropy;

    #[test]
    fn nameplates_are_six_random_digits() {
        let mut rng = SeededEntropy::new(b"nameplates");
        let drawn: Vec<String> = (0..1000).map(|_| random_nameplate(&mut rng)).collect();
        for n in &drawn {
            let value: u32 = n.parse().unwrap();
            assert!(NAMEPLATES.contains(&value) && n.len() == 6, "{n}");
        }
        let distinct: std::collections::BTreeSet<&String> = drawn.iter().collect();
        assert!(distinct.len() > 990, "{} distinct of 1000", distinct.len());
    }
}
