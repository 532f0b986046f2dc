//! The envelope log, written once for both backends: plans, membership,
//! access, fetching, acknowledgements, snapshots and compaction, deletion
//! and expiry. The group commit is in [`super::append`].

use super::dialect::{self, Arg, Backend, Col, Tx};
use super::{
    Access, AppendError, Appended, EnvelopeLog, NewEnvelope, NewSnapshot, Page, Quota,
    RegistryChange, SnapshotStored, StoreError,
};
use cove_shared::wire::{Blob, Cursor, StoredEnvelope, StoredSnapshot};
use cove_shared::{DeviceId, DocId, EnvelopeHash, Kind, PlanId, Seq};

/// A `u64` the database stores as `i64`.
pub(super) fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt("integer out of range"))
}

/// A stored cursor.
pub(super) fn to_cursor(v: i64) -> Result<Cursor, StoreError> {
    u64::try_from(v).map(Cursor).map_err(|_| StoreError::Corrupt("negative cursor"))
}

/// A stored device id.
pub(super) fn device(bytes: &[u8]) -> Result<DeviceId, StoreError> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| StoreError::Corrupt("device id length"))?;
    DeviceId::from_bytes(bytes).map_err(|_| StoreError::Corrupt("device id"))
}

/// A stored plan id.
pub(super) fn plan_id(bytes: &[u8]) -> Result<PlanId, StoreError> {
    let bytes: [u8; 16] = bytes.try_into().map_err(|_| StoreError::Corrupt("plan id"))?;
    Ok(PlanId::from_bytes(bytes))
}

pub(super) fn kind_code(kind: Kind) -> i64 {
    i64::from(kind.code())
}

pub(super) fn doc_code(doc: DocId) -> i64 {
    i64::from(doc.code())
}

impl<B: Backend> EnvelopeLog for B {
    #[tracing::instrument(level = "debug", skip_all, fields(%plan))]
    async fn create_plan(
        &self,
        plan: PlanId,
        genesis: &[u8],
        creator: DeviceId,
        identity: DeviceId,
        now: i64,
    ) -> Result<(), StoreError> {
        let id = plan.as_bytes().as_slice();
        let mut tx = dialect::begin(self).await?;
        let created = dialect::execute::<B>(
            &mut tx,
            "INSERT INTO plans (id, head, compacted, envelope_count, envelope_bytes, created_at)
             VALUES ($1, 0, 0, 0, 0, $2) ON CONFLICT DO NOTHING",
            &[Arg::Bytes(id), Arg::Int(now)],
        )
        .await?;
        if created == 0 {
            return Err(StoreError::PlanExists);
        }
        dialect::execute::<B>(
            &mut tx,
            "INSERT INTO membership (plan, idx, entry) VALUES ($1, 0, $2)",
            &[Arg::Bytes(id), Arg::Bytes(genesis)],
        )
        .await?;
        dialect::execute::<B>(
            &mut tx,
            "INSERT INTO devices (plan, device, active, acked) VALUES ($1, $2, 1, 0)",
            &[Arg::Bytes(id), Arg::Bytes(creator.as_bytes())],
        )
        .await?;
        pin_identity::<B>(&mut tx, id, &identity).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn identity_plans(&self, identity: DeviceId) -> Result<Vec<PlanId>, StoreError> {
        let rows = dialect::read(
            self,
            "SELECT plan FROM identities WHERE identity = $1 ORDER BY plan",
            &[Arg::Bytes(identity.as_bytes())],
            &[Col::Bytes],
        )
        .await?;
        rows.into_iter().map(|mut r| plan_id(&r.bytes(0)?)).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%plan))]
    async fn membership(&self, plan: PlanId, from: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows = dialect::read(
            self,
            "SELECT entry FROM membership WHERE plan = $1 AND idx >= $2 ORDER BY idx",
            &[Arg::Bytes(plan.as_bytes()), Arg::Int(to_i64(from)?)],
            &[Col::Bytes],
        )
        .await?;
        rows.into_iter().map(|mut r| r.bytes(0)).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%plan, index))]
    async fn append_membership(
        &self,
        plan: PlanId,
        index: u64,
        entry: &[u8],
        change: &RegistryChange,
    ) -> Result<(), StoreError> {
        let id = plan.as_bytes().as_slice();
        let mut tx = dialect::begin(self).await?;
        let len = dialect::row::<B>(
            &mut tx,
            "SELECT COUNT(*) FROM membership WHERE plan = $1",
            &[Arg::Bytes(id)],
            &[Col::Int],
        )
        .await?
        .map_or(Ok(0), |r| r.int(0))?;
        if len == 0 {
            return Err(StoreError::NoSuchPlan);
        }
        let index = to_i64(index)?;
        if len != index {
            return Err(StoreError::Conflict);
        }
        let inserted = dialect::execute::<B>(
            &mut tx,
            "INSERT INTO membership (plan, idx, entry) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[Arg::Bytes(id), Arg::Int(index), Arg::Bytes(entry)],
        )
        .await?;
        if inserted == 0 {
            return Err(StoreError::Conflict);
        }
        for device in &change.added {
            dialect::execute::<B>(
                &mut tx,
                "INSERT INTO devices (plan, device, active, acked) VALUES ($1, $2, 1, 0)
                 ON CONFLICT DO NOTHING",
                &[Arg::Bytes(id), Arg::Bytes(device.as_bytes())],
            )
            .await?;
        }
        for device in &change.revoked {
            dialect::execute::<B>(
                &mut tx,
                "UPDATE devices SET active = 0 WHERE plan = $1 AND device = $2",
                &[Arg::Bytes(id), Arg::Bytes(device.as_bytes())],
            )
            .await?;
        }
        for identity in &change.identities {
            pin_identity::<B>(&mut tx, id, identity).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn access(&self, plan: PlanId, device: DeviceId) -> Result<Access, StoreError> {
        let rows = dialect::read(
            self,
            "SELECT active FROM devices WHERE plan = $1 AND device = $2",
            &[Arg::Bytes(plan.as_bytes()), Arg::Bytes(device.as_bytes())],
            &[Col::Int],
        )
        .await?;
        Ok(match rows.first().map(|r| r.int(0)).transpose()? {
            Some(1) => Access::Active,
            Some(_) => Access::Revoked,
            None => Access::Unknown,
        })
    }

    async fn append(
        &self,
        batch: &[NewEnvelope],
        quota: Quota,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        super::append::append_batch(self, batch, quota).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%plan, after = after.0))]
    async fn fetch(
        &self,
        plan: PlanId,
        after: Cursor,
        limit: u32,
        max_bytes: usize,
        now: i64,
    ) -> Result<Page, StoreError> {
        let id = plan.as_bytes().as_slice();
        let mut conn = self.reader().acquire().await?;
        let head = B::rows(
            &mut conn,
            "SELECT head, compacted FROM plans WHERE id = $1",
            &[Arg::Bytes(id)],
            &[Col::Int, Col::Int],
        )
        .await?;
        let Some(head) = head.first() else { return Err(StoreError::NoSuchPlan) };
        let (head, compacted) = (head.int(0)?, head.int(1)?);
        let rows = B::rows(
            &mut conn,
            "SELECT cursor, body FROM envelopes
             WHERE plan = $1 AND cursor > $2 AND (expires_at IS NULL OR expires_at > $3)
             ORDER BY cursor LIMIT $4",
            &[
                Arg::Bytes(id),
                Arg::Int(to_i64(after.0)?),
                Arg::Int(now),
                Arg::Int(i64::from(limit)),
            ],
            &[Col::Int, Col::Bytes],
        )
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        let mut bytes = 0usize;
        for mut row in rows {
            let body = row.bytes(1)?;
            bytes += body.len() + 16;
            if bytes > max_bytes && !items.is_empty() {
                break;
            }
            items.push(StoredEnvelope { cursor: to_cursor(row.int(0)?)?, envelope: Blob(body) });
        }
        Ok(Page { items, head: to_cursor(head)?, compacted: to_cursor(compacted)? })
    }

    async fn stored_at(
        &self,
        plan: PlanId,
        sender: DeviceId,
        (kind, doc, seq): (Kind, DocId, Seq),
    ) -> Result<Option<(Cursor, EnvelopeHash)>, StoreError> {
        let rows = dialect::read(
            self,
            "SELECT cursor, hash FROM envelopes
             WHERE plan = $1 AND sender = $2 AND kind = $3 AND doc = $4 AND seq = $5",
            &[
                Arg::Bytes(plan.as_bytes()),
                Arg::Bytes(sender.as_bytes()),
                Arg::Int(kind_code(kind)),
                Arg::Int(doc_code(doc)),
                Arg::Int(to_i64(seq.0)?),
            ],
            &[Col::Int, Col::Bytes],
        )
        .await?;
        let Some(mut row) = rows.into_iter().next() else { return Ok(None) };
        let cursor = to_cursor(row.int(0)?)?;
        let hash: [u8; 32] = row
            .bytes(1)?
            .try_into()
            .map_err(|_| StoreError::Corrupt("a stored hash is not 32 bytes"))?;
        Ok(Some((cursor, EnvelopeHash(hash))))
    }

    async fn envelope(&self, plan: PlanId, cursor: Cursor) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = dialect::read(
            self,
            "SELECT body FROM envelopes WHERE plan = $1 AND cursor = $2",
            &[Arg::Bytes(plan.as_bytes()), Arg::Int(to_i64(cursor.0)?)],
            &[Col::Bytes],
        )
        .await?;
        rows.into_iter().next().map(|mut r| r.bytes(0)).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%plan, cursor = cursor.0))]
    async fn ack(&self, plan: PlanId, device: DeviceId, cursor: Cursor) -> Result<u64, StoreError> {
        let mut tx = dialect::begin(self).await?;
        let moved = dialect::execute::<B>(
            &mut tx,
            "UPDATE devices SET acked = $3 WHERE plan = $1 AND device = $2 AND acked < $3",
            &[
                Arg::Bytes(plan.as_bytes()),
                Arg::Bytes(device.as_bytes()),
                Arg::Int(to_i64(cursor.0)?),
            ],
        )
        .await?;
        let compacted = if moved > 0 { compact::<B>(&mut tx, plan).await? } else { 0 };
        tx.commit().await?;
        Ok(compacted)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(plan = %s.plan, doc = %s.doc))]
    async fn put_snapshot(&self, s: &NewSnapshot) -> Result<SnapshotStored, StoreError> {
        let id = s.plan.as_bytes().as_slice();
        let doc = doc_code(s.doc);
        let covers = to_i64(s.covers.0)?;
        let seq = to_i64(s.seq.0)?;
        let mut tx = dialect::begin(self).await?;
        let existing = dialect::row::<B>(
            &mut tx,
            "SELECT covers, sender, seq, hash FROM snapshots WHERE plan = $1 AND doc = $2",
            &[Arg::Bytes(id), Arg::Int(doc)],
            &[Col::Int, Col::Bytes, Col::Int, Col::Bytes],
        )
        .await?;
        let head = dialect::row::<B>(
            &mut tx,
            "SELECT head FROM plans WHERE id = $1",
            &[Arg::Bytes(id)],
            &[Col::Int],
        )
        .await?;
        match head {
            None => return Err(StoreError::NoSuchPlan),
            Some(head) if covers > head.int(0)? => return Ok(SnapshotStored::BeyondHead),
            Some(_) => {}
        }
        if let Some(mut old) = existing {
            let (old_covers, old_seq) = (old.int(0)?, old.int(2)?);
            let (sender, hash) = (old.bytes(1)?, old.bytes(3)?);
            if sender == s.sender.as_bytes() && old_seq == seq && hash == s.hash.0 {
                return Ok(SnapshotStored::Duplicate);
            }
            if old_covers > covers {
                return Ok(SnapshotStored::Stale);
            }
        }
        dialect::execute::<B>(
            &mut tx,
            "INSERT INTO snapshots (plan, doc, covers, sender, seq, hash, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (plan, doc) DO UPDATE SET covers = excluded.covers,
               sender = excluded.sender, seq = excluded.seq, hash = excluded.hash,
               body = excluded.body",
            &[
                Arg::Bytes(id),
                Arg::Int(doc),
                Arg::Int(covers),
                Arg::Bytes(s.sender.as_bytes()),
                Arg::Int(seq),
                Arg::Bytes(&s.hash.0),
                Arg::Bytes(&s.body),
            ],
        )
        .await?;
        let compacted = compact::<B>(&mut tx, s.plan).await?;
        tx.commit().await?;
        Ok(SnapshotStored::New { compacted })
    }

    async fn snapshot(
        &self,
        plan: PlanId,
        doc: DocId,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        let rows = dialect::read(
            self,
            "SELECT covers, body FROM snapshots WHERE plan = $1 AND doc = $2",
            &[Arg::Bytes(plan.as_bytes()), Arg::Int(doc_code(doc))],
            &[Col::Int, Col::Bytes],
        )
        .await?;
        rows.into_iter()
            .next()
            .map(|mut r| {
                Ok(StoredSnapshot { covers: to_cursor(r.int(0)?)?, envelope: Blob(r.bytes(1)?) })
            })
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%plan))]
    async fn delete_plan(&self, plan: PlanId) -> Result<(), StoreError> {
        let id = plan.as_bytes().as_slice();
        let mut tx = dialect::begin(self).await?;
        for sql in [
            "DELETE FROM envelopes WHERE plan = $1",
            "DELETE FROM snapshots WHERE plan = $1",
            "DELETE FROM devices WHERE plan = $1",
            "DELETE FROM membership WHERE plan = $1",
            "DELETE FROM plans WHERE id = $1",
        ] {
            dialect::execute::<B>(&mut tx, sql, &[Arg::Bytes(id)]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%plan))]
    async fn supersede_checkpoints(
        &self,
        plan: PlanId,
        sender: DeviceId,
        seq: Seq,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = dialect::begin(self).await?;
        dialect::execute::<B>(
            &mut tx,
            "UPDATE envelopes SET expires_at = $5
             WHERE plan = $1 AND sender = $2 AND kind = $3 AND seq < $4 AND expires_at > $5",
            &[
                Arg::Bytes(plan.as_bytes()),
                Arg::Bytes(sender.as_bytes()),
                Arg::Int(kind_code(Kind::Checkpoint)),
                Arg::Int(to_i64(seq.0)?),
                Arg::Int(now),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn expire_signals(&self, now: i64) -> Result<u64, StoreError> {
        let mut tx = dialect::begin(self).await?;
        let per_plan = dialect::rows::<B>(
            &mut tx,
            "SELECT plan, COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM envelopes
             WHERE expires_at IS NOT NULL AND expires_at <= $1 GROUP BY plan",
            &[Arg::Int(now)],
            &[Col::Bytes, Col::Int, Col::Int],
        )
        .await?;
        dialect::execute::<B>(
            &mut tx,
            "DELETE FROM envelopes WHERE expires_at IS NOT NULL AND expires_at <= $1",
            &[Arg::Int(now)],
        )
        .await?;
        let mut signals = 0;
        for mut row in per_plan {
            let (count, bytes) = (row.int(1)?, row.int(2)?);
            dialect::execute::<B>(
                &mut tx,
                "UPDATE plans SET envelope_count = envelope_count - $2,
                   envelope_bytes = envelope_bytes - $3 WHERE id = $1",
                &[Arg::Bytes(&row.bytes(0)?), Arg::Int(count), Arg::Int(bytes)],
            )
            .await?;
            signals += u64::try_from(count).unwrap_or(0);
        }
        tx.commit().await?;
        Ok(signals)
    }
}

/// Records that `plan`'s log pins `identity` (once; a repeat is harmless).
async fn pin_identity<B: Backend>(
    tx: &mut Tx<B>,
    plan: &[u8],
    identity: &DeviceId,
) -> Result<(), StoreError> {
    dialect::execute::<B>(
        tx,
        "INSERT INTO identities (identity, plan) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[Arg::Bytes(identity.as_bytes()), Arg::Bytes(plan)],
    )
    .await?;
    Ok(())
}

/// Deletes the changes envelopes that a stored snapshot covers, for every
/// document whose snapshot every active device has acknowledged.
async fn compact<B: Backend>(tx: &mut Tx<B>, plan: PlanId) -> Result<u64, StoreError> {
    let id = plan.as_bytes().as_slice();
    let min_acked = dialect::row::<B>(
        tx,
        "SELECT MIN(acked) FROM devices WHERE plan = $1 AND active = 1",
        &[Arg::Bytes(id)],
        &[Col::OptInt],
    )
    .await?
    .map(|r| r.opt_int(0))
    .transpose()?
    .flatten();
    let Some(min_acked) = min_acked else { return Ok(0) };
    let snapshots = dialect::rows::<B>(
        tx,
        "SELECT doc, covers FROM snapshots WHERE plan = $1 AND covers <= $2",
        &[Arg::Bytes(id), Arg::Int(min_acked)],
        &[Col::Int, Col::Int],
    )
    .await?;
    let changes = kind_code(Kind::Changes);
    let mut total = 0;
    for snapshot in snapshots {
        let (doc, covers) = (snapshot.int(0)?, snapshot.int(1)?);
        let args = [Arg::Bytes(id), Arg::Int(doc), Arg::Int(changes), Arg::Int(covers)];
        let counted = dialect::row::<B>(
            tx,
            "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM envelopes
             WHERE plan = $1 AND doc = $2 AND kind = $3 AND cursor <= $4",
            &args,
            &[Col::Int, Col::Int],
        )
        .await?;
        let (count, bytes) = match counted {
            Some(r) => (r.int(0)?, r.int(1)?),
            None => (0, 0),
        };
        if count == 0 {
            continue;
        }
        dialect::execute::<B>(
            tx,
            "DELETE FROM envelopes WHERE plan = $1 AND doc = $2 AND kind = $3 AND cursor <= $4",
            &args,
        )
        .await?;
        dialect::execute::<B>(
            tx,
            "UPDATE plans SET envelope_count = envelope_count - $2,
               envelope_bytes = envelope_bytes - $3,
               compacted = CASE WHEN compacted < $4 THEN $4 ELSE compacted END
             WHERE id = $1",
            &[Arg::Bytes(id), Arg::Int(count), Arg::Int(bytes), Arg::Int(covers)],
        )
        .await?;
        total += u64::try_from(count).unwrap_or(0);
    }
    Ok(total)
}
