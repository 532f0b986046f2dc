//! The store logic both backends share.
//!
//! SQLite and PostgreSQL run exactly the same statements here: numbered
//! `$N` parameters (sqlx's SQLite driver maps `$N` to argument N), 64-bit
//! integers, byte strings, and only portable SQL (`CASE` instead of
//! `MAX(a, b)` / `GREATEST`, `CAST(SUM(..) AS BIGINT)` because PostgreSQL
//! sums BIGINT as NUMERIC). [`store_methods!`] expands the method bodies
//! into each backend's `impl Store`, over that backend's concrete pool
//! types; writing them generically over `sqlx::Database` would need a
//! dozen higher-ranked bounds on every function.

use super::StoreError;
use cove_shared::wire::Cursor;

/// Grace period after a pairing mailbox expires before its nameplate can be
/// reused, so that a late joiner with an old code cannot burn a new mailbox.
pub(super) const PAIRING_GRACE_SECS: i64 = 600;

pub(super) fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt("integer out of range"))
}

pub(super) fn to_cursor(v: i64) -> Result<Cursor, StoreError> {
    u64::try_from(v)
        .map(Cursor)
        .map_err(|_| StoreError::Corrupt("negative cursor"))
}

pub(super) fn device(bytes: &[u8]) -> Result<cove_shared::DeviceId, StoreError> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("device id length"))?;
    cove_shared::DeviceId::from_bytes(bytes).map_err(|_| StoreError::Corrupt("device id"))
}

pub(super) fn kind_code(kind: cove_shared::Kind) -> i64 {
    i64::from(kind.code())
}

pub(super) fn doc_code(doc: cove_shared::DocId) -> i64 {
    i64::from(doc.code())
}

pub(super) fn outcome_state(outcome: cove_shared::wire::PairOutcome) -> super::PairState {
    match outcome {
        cove_shared::wire::PairOutcome::Completed => super::PairState::Done,
        cove_shared::wire::PairOutcome::Failed => super::PairState::Burned,
    }
}

/// The smallest positive integer, as text, that is not taken.
pub(super) fn free_nameplate(taken: &[String]) -> String {
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

/// Expands, inside `impl Store for $store`, every method whose SQL is
/// shared. `$store` has fields `writer` and `reader`, both sqlx pools.
macro_rules! store_methods {
    () => {
        async fn create_plan(
            &self,
            plan: PlanId,
            genesis: &[u8],
            creator: DeviceId,
            now: i64,
        ) -> Result<(), StoreError> {
            let mut tx = self.writer.begin().await?;
            let created = sqlx::query(
                "INSERT INTO plans (id, head, compacted, envelope_count, envelope_bytes, created_at)
                 VALUES ($1, 0, 0, 0, 0, $2) ON CONFLICT DO NOTHING",
            )
            .bind(plan.as_bytes().as_slice())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if created.rows_affected() == 0 {
                return Err(StoreError::PlanExists);
            }
            sqlx::query("INSERT INTO membership (plan, idx, entry) VALUES ($1, 0, $2)")
                .bind(plan.as_bytes().as_slice())
                .bind(genesis)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO devices (plan, device, active, acked) VALUES ($1, $2, 1, 0)")
                .bind(plan.as_bytes().as_slice())
                .bind(creator.as_bytes().as_slice())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }

        async fn membership(&self, plan: PlanId, from: u64) -> Result<Vec<Vec<u8>>, StoreError> {
            let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
                "SELECT entry FROM membership WHERE plan = $1 AND idx >= $2 ORDER BY idx",
            )
            .bind(plan.as_bytes().as_slice())
            .bind($crate::store::sql::to_i64(from)?)
            .fetch_all(&self.reader)
            .await?;
            Ok(rows.into_iter().map(|(e,)| e).collect())
        }

        async fn append_membership(
            &self,
            plan: PlanId,
            index: u64,
            entry: &[u8],
            change: &RegistryChange,
        ) -> Result<(), StoreError> {
            let plan_id = plan.as_bytes().as_slice();
            let mut tx = self.writer.begin().await?;
            let (len,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM membership WHERE plan = $1")
                    .bind(plan_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if len == 0 {
                return Err(StoreError::NoSuchPlan);
            }
            let index = $crate::store::sql::to_i64(index)?;
            if len != index {
                return Err(StoreError::Conflict);
            }
            let inserted = sqlx::query(
                "INSERT INTO membership (plan, idx, entry) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(plan_id)
            .bind(index)
            .bind(entry)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                return Err(StoreError::Conflict);
            }
            for device in &change.added {
                sqlx::query(
                    "INSERT INTO devices (plan, device, active, acked) VALUES ($1, $2, 1, 0)
                     ON CONFLICT DO NOTHING",
                )
                .bind(plan_id)
                .bind(device.as_bytes().as_slice())
                .execute(&mut *tx)
                .await?;
            }
            for device in &change.revoked {
                sqlx::query("UPDATE devices SET active = 0 WHERE plan = $1 AND device = $2")
                    .bind(plan_id)
                    .bind(device.as_bytes().as_slice())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }

        async fn access(&self, plan: PlanId, device: DeviceId) -> Result<Access, StoreError> {
            let row: Option<(i64,)> =
                sqlx::query_as("SELECT active FROM devices WHERE plan = $1 AND device = $2")
                    .bind(plan.as_bytes().as_slice())
                    .bind(device.as_bytes().as_slice())
                    .fetch_optional(&self.reader)
                    .await?;
            Ok(match row {
                Some((1,)) => Access::Active,
                Some(_) => Access::Revoked,
                None => Access::Unknown,
            })
        }

        async fn append(
            &self,
            batch: &[NewEnvelope],
            quota: Quota,
        ) -> Vec<Result<Appended, AppendError>> {
            match self.append_batch(batch, quota).await {
                Ok(results) => results,
                Err(error) => {
                    tracing::warn!(%error, items = batch.len(), "append batch failed");
                    vec![Err(AppendError::Unavailable); batch.len()]
                }
            }
        }

        async fn fetch(
            &self,
            plan: PlanId,
            after: Cursor,
            limit: u32,
            max_bytes: usize,
            now: i64,
        ) -> Result<Page, StoreError> {
            let plan_id = plan.as_bytes().as_slice();
            let mut conn = self.reader.acquire().await?;
            let head: Option<(i64, i64)> =
                sqlx::query_as("SELECT head, compacted FROM plans WHERE id = $1")
                    .bind(plan_id)
                    .fetch_optional(&mut *conn)
                    .await?;
            let Some((head, compacted)) = head else {
                return Err(StoreError::NoSuchPlan);
            };
            let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT cursor, body FROM envelopes
                 WHERE plan = $1 AND cursor > $2 AND (expires_at IS NULL OR expires_at > $3)
                 ORDER BY cursor LIMIT $4",
            )
            .bind(plan_id)
            .bind($crate::store::sql::to_i64(after.0)?)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
            let mut items = Vec::with_capacity(rows.len());
            let mut bytes = 0usize;
            for (cursor, body) in rows {
                bytes += body.len() + 16;
                if bytes > max_bytes && !items.is_empty() {
                    break;
                }
                items.push(StoredEnvelope {
                    cursor: $crate::store::sql::to_cursor(cursor)?,
                    envelope: Blob(body),
                });
            }
            Ok(Page {
                items,
                head: $crate::store::sql::to_cursor(head)?,
                compacted: $crate::store::sql::to_cursor(compacted)?,
            })
        }

        async fn envelope(&self, plan: PlanId, cursor: Cursor) -> Result<Option<Vec<u8>>, StoreError> {
            let row: Option<(Vec<u8>,)> =
                sqlx::query_as("SELECT body FROM envelopes WHERE plan = $1 AND cursor = $2")
                    .bind(plan.as_bytes().as_slice())
                    .bind($crate::store::sql::to_i64(cursor.0)?)
                    .fetch_optional(&self.reader)
                    .await?;
            Ok(row.map(|(b,)| b))
        }

        async fn ack(&self, plan: PlanId, device: DeviceId, cursor: Cursor) -> Result<u64, StoreError> {
            let mut tx = self.writer.begin().await?;
            let moved = sqlx::query(
                "UPDATE devices SET acked = $3 WHERE plan = $1 AND device = $2 AND acked < $3",
            )
            .bind(plan.as_bytes().as_slice())
            .bind(device.as_bytes().as_slice())
            .bind($crate::store::sql::to_i64(cursor.0)?)
            .execute(&mut *tx)
            .await?;
            let compacted = if moved.rows_affected() > 0 { compact(&mut tx, plan).await? } else { 0 };
            tx.commit().await?;
            Ok(compacted)
        }

        async fn put_snapshot(&self, s: &NewSnapshot) -> Result<SnapshotStored, StoreError> {
            let plan_id = s.plan.as_bytes().as_slice();
            let doc = $crate::store::sql::doc_code(s.doc);
            let mut tx = self.writer.begin().await?;
            let existing: Option<(i64, Vec<u8>, i64, Vec<u8>)> = sqlx::query_as(
                "SELECT covers, sender, seq, hash FROM snapshots WHERE plan = $1 AND doc = $2",
            )
            .bind(plan_id)
            .bind(doc)
            .fetch_optional(&mut *tx)
            .await?;
            let covers = $crate::store::sql::to_i64(s.covers.0)?;
            let seq = $crate::store::sql::to_i64(s.seq.0)?;
            let head: Option<(i64,)> = sqlx::query_as("SELECT head FROM plans WHERE id = $1")
                .bind(plan_id)
                .fetch_optional(&mut *tx)
                .await?;
            match head {
                None => return Err(StoreError::NoSuchPlan),
                Some((head,)) if covers > head => return Ok(SnapshotStored::BeyondHead),
                Some(_) => {}
            }

            if let Some((old_covers, sender, old_seq, hash)) = existing {
                if sender == s.sender.as_bytes() && old_seq == seq && hash == s.hash.0 {
                    return Ok(SnapshotStored::Duplicate);
                }
                if old_covers > covers {
                    return Ok(SnapshotStored::Stale);
                }
            }
            sqlx::query(
                "INSERT INTO snapshots (plan, doc, covers, sender, seq, hash, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (plan, doc) DO UPDATE SET covers = excluded.covers,
                   sender = excluded.sender, seq = excluded.seq, hash = excluded.hash,
                   body = excluded.body",
            )
            .bind(plan_id)
            .bind(doc)
            .bind(covers)
            .bind(s.sender.as_bytes().as_slice())
            .bind(seq)
            .bind(s.hash.0.as_slice())
            .bind(s.body.as_slice())
            .execute(&mut *tx)
            .await?;
            let compacted = compact(&mut tx, s.plan).await?;
            tx.commit().await?;
            Ok(SnapshotStored::New { compacted })
        }

        async fn snapshot(&self, plan: PlanId, doc: DocId) -> Result<Option<StoredSnapshot>, StoreError> {
            let row: Option<(i64, Vec<u8>)> =
                sqlx::query_as("SELECT covers, body FROM snapshots WHERE plan = $1 AND doc = $2")
                    .bind(plan.as_bytes().as_slice())
                    .bind($crate::store::sql::doc_code(doc))
                    .fetch_optional(&self.reader)
                    .await?;
            row.map(|(covers, body)| {
                Ok(StoredSnapshot {
                    covers: $crate::store::sql::to_cursor(covers)?,
                    envelope: Blob(body),
                })
            })
            .transpose()
        }

        async fn delete_plan(&self, plan: PlanId) -> Result<(), StoreError> {
            let plan_id = plan.as_bytes().as_slice();
            let mut tx = self.writer.begin().await?;
            for sql in [
                "DELETE FROM envelopes WHERE plan = $1",
                "DELETE FROM snapshots WHERE plan = $1",
                "DELETE FROM devices WHERE plan = $1",
                "DELETE FROM membership WHERE plan = $1",
                "DELETE FROM plans WHERE id = $1",
            ] {
                sqlx::query(sql).bind(plan_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        }

        async fn expire(&self, now: i64) -> Result<Expired, StoreError> {
            let mut tx = self.writer.begin().await?;
            let per_plan: Vec<(Vec<u8>, i64, i64)> = sqlx::query_as(
                "SELECT plan, COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM envelopes
                 WHERE expires_at IS NOT NULL AND expires_at <= $1 GROUP BY plan",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM envelopes WHERE expires_at IS NOT NULL AND expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let mut signals = 0;
            for (plan, count, bytes) in per_plan {
                sqlx::query(
                    "UPDATE plans SET envelope_count = envelope_count - $2,
                       envelope_bytes = envelope_bytes - $3 WHERE id = $1",
                )
                .bind(plan.as_slice())
                .bind(count)
                .bind(bytes)
                .execute(&mut *tx)
                .await?;
                signals += u64::try_from(count).unwrap_or(0);
            }
            let cutoff = now - $crate::store::sql::PAIRING_GRACE_SECS;
            sqlx::query(
                "DELETE FROM pairing_messages WHERE nameplate IN
                   (SELECT nameplate FROM pairings WHERE expires_at <= $1)",
            )
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
            let mailboxes = sqlx::query("DELETE FROM pairings WHERE expires_at <= $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(Expired { signals, mailboxes })
        }

        async fn pair_open(&self, opener: DeviceId, expires_at: i64) -> Result<String, StoreError> {
            // Another relay process may take the same number at the same
            // moment; the primary key decides, and the loser tries again.
            for _ in 0..8 {
                let taken: Vec<(String,)> = sqlx::query_as("SELECT nameplate FROM pairings")
                    .fetch_all(&self.writer)
                    .await?;
                let taken: Vec<String> = taken.into_iter().map(|(n,)| n).collect();
                let nameplate = $crate::store::sql::free_nameplate(&taken);
                let inserted = sqlx::query(
                    "INSERT INTO pairings (nameplate, state, expires_at, opener, joiner)
                     VALUES ($1, 0, $2, $3, NULL) ON CONFLICT DO NOTHING",
                )
                .bind(&nameplate)
                .bind(expires_at)
                .bind(opener.as_bytes().as_slice())
                .execute(&self.writer)
                .await?;
                if inserted.rows_affected() == 1 {
                    return Ok(nameplate);
                }
            }
            Err(StoreError::Conflict)
        }

        async fn pair_get(&self, nameplate: &str, now: i64) -> Result<Option<Mailbox>, StoreError> {
            let row: Option<(i64, i64, Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
                "SELECT state, expires_at, opener, joiner FROM pairings WHERE nameplate = $1",
            )
            .bind(nameplate)
            .fetch_optional(&self.writer)
            .await?;
            let Some((state, expires_at, opener, joiner)) = row else { return Ok(None) };
            if expires_at <= now {
                return Ok(None);
            }
            Ok(Some(Mailbox {
                nameplate: nameplate.to_owned(),
                state: PairState::from_code(state).ok_or(StoreError::Corrupt("pairing state"))?,
                expires_at,
                opener: $crate::store::sql::device(&opener)?,
                joiner: joiner.as_deref().map($crate::store::sql::device).transpose()?,
            }))
        }

        async fn pair_join(
            &self,
            nameplate: &str,
            joiner: DeviceId,
            now: i64,
        ) -> Result<Vec<(i64, Vec<u8>)>, PairError> {
            let unavailable = |e: sqlx::Error| {
                tracing::warn!(error = %e, "pairing join failed in storage");
                PairError::Unavailable
            };
            let mut tx = self.writer.begin().await.map_err(unavailable)?;
            let row: Option<(i64, i64, Vec<u8>)> = sqlx::query_as(
                "SELECT state, expires_at, opener FROM pairings WHERE nameplate = $1",
            )
            .bind(nameplate)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
            let Some((state, expires_at, opener)) = row else { return Err(PairError::Unknown) };
            if expires_at <= now {
                return Err(PairError::Unknown);
            }
            if state != PairState::Open.code() || opener == joiner.as_bytes() {
                sqlx::query("UPDATE pairings SET state = $2 WHERE nameplate = $1")
                    .bind(nameplate)
                    .bind(PairState::Burned.code())
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                return Err(PairError::Burned);
            }
            sqlx::query("UPDATE pairings SET state = $2, joiner = $3 WHERE nameplate = $1")
                .bind(nameplate)
                .bind(PairState::Joined.code())
                .bind(joiner.as_bytes().as_slice())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            let waiting: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT id, body FROM pairing_messages WHERE nameplate = $1 AND side = $2 ORDER BY id",
            )
            .bind(nameplate)
            .bind(Side::Opener.code())
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(waiting)
        }

        async fn pair_post(&self, nameplate: &str, from: Side, body: &[u8]) -> Result<i64, StoreError> {
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO pairing_messages (nameplate, side, body) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(nameplate)
            .bind(from.code())
            .bind(body)
            .fetch_one(&self.writer)
            .await?;
            Ok(id)
        }

        async fn pair_message(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
            let row: Option<(Vec<u8>,)> =
                sqlx::query_as("SELECT body FROM pairing_messages WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.writer)
                    .await?;
            Ok(row.map(|(b,)| b))
        }

        async fn pair_close(&self, nameplate: &str, outcome: PairOutcome) -> Result<(), StoreError> {
            sqlx::query("UPDATE pairings SET state = $2 WHERE nameplate = $1 AND state IN (0, 1)")
                .bind(nameplate)
                .bind($crate::store::sql::outcome_state(outcome).code())
                .execute(&self.writer)
                .await?;
            Ok(())
        }

        async fn ping(&self) -> Result<(), StoreError> {
            sqlx::query("SELECT 1").execute(&self.reader).await?;
            Ok(())
        }
    };
}

/// Expands the helpers the shared methods call: the batch append and
/// compaction, generic only in the transaction type.
macro_rules! store_helpers {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn append_batch(
                &self,
                batch: &[NewEnvelope],
                quota: Quota,
            ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
                // Lock plans in one order in every process, so two relays
                // batching the same plans cannot deadlock.
                let mut order: Vec<usize> = (0..batch.len()).collect();
                order.sort_by_key(|i| batch[*i].plan);
                let mut results = vec![Err(AppendError::Unavailable); batch.len()];
                let mut tx = self.writer.begin().await?;
                for i in order {
                    results[i] = append_one(&mut tx, &batch[i], quota).await?;
                }
                tx.commit().await?;
                Ok(results)
            }
        }

        async fn append_one(
            tx: &mut sqlx::Transaction<'_, $db>,
            e: &NewEnvelope,
            quota: Quota,
        ) -> Result<Result<Appended, AppendError>, StoreError> {
            use $crate::store::sql::{kind_code, doc_code, to_cursor, to_i64};
            let plan_id = e.plan.as_bytes().as_slice();
            let seq = to_i64(e.seq.0)?;
            let existing: Option<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT cursor, hash FROM envelopes
                 WHERE plan = $1 AND sender = $2 AND kind = $3 AND doc = $4 AND seq = $5",
            )
            .bind(plan_id)
            .bind(e.sender.as_bytes().as_slice())
            .bind(kind_code(e.kind))
            .bind(doc_code(e.doc))
            .bind(seq)

            .fetch_optional(&mut **tx)
            .await?;
            if let Some((cursor, hash)) = existing {
                return Ok(if hash == e.hash.0 {
                    Ok(Appended::Duplicate(to_cursor(cursor)?))
                } else {
                    Err(AppendError::Equivocation)
                });
            }
            let size = to_i64(e.body.len() as u64)?;
            let head: Option<(i64,)> = sqlx::query_as(
                "UPDATE plans SET head = head + 1, envelope_count = envelope_count + 1,
                   envelope_bytes = envelope_bytes + $2
                 WHERE id = $1 AND envelope_count < $3 AND envelope_bytes + $2 <= $4
                 RETURNING head",
            )
            .bind(plan_id)
            .bind(size)
            .bind(to_i64(quota.max_envelopes)?)
            .bind(to_i64(quota.max_bytes)?)
            .fetch_optional(&mut **tx)
            .await?;
            let Some((cursor,)) = head else {
                let exists: Option<(i64,)> = sqlx::query_as("SELECT head FROM plans WHERE id = $1")
                    .bind(plan_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                return Ok(Err(if exists.is_some() {
                    AppendError::QuotaExceeded
                } else {
                    AppendError::NoSuchPlan
                }));
            };
            sqlx::query(
                "INSERT INTO envelopes (plan, cursor, sender, kind, seq, doc, hash, size, expires_at, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(plan_id)
            .bind(cursor)
            .bind(e.sender.as_bytes().as_slice())
            .bind(kind_code(e.kind))
            .bind(seq)
            .bind(doc_code(e.doc))
            .bind(e.hash.0.as_slice())
            .bind(size)
            .bind(e.expires_at)
            .bind(e.body.as_ref())
            .execute(&mut **tx)
            .await?;
            Ok(Ok(Appended::New(to_cursor(cursor)?)))
        }

        /// Deletes the changes envelopes that a stored snapshot covers, for
        /// every document whose snapshot every active device has acknowledged.
        async fn compact(tx: &mut sqlx::Transaction<'_, $db>, plan: PlanId) -> Result<u64, StoreError> {
            let plan_id = plan.as_bytes().as_slice();
            let (min_acked,): (Option<i64>,) =
                sqlx::query_as("SELECT MIN(acked) FROM devices WHERE plan = $1 AND active = 1")
                    .bind(plan_id)
                    .fetch_one(&mut **tx)
                    .await?;
            let Some(min_acked) = min_acked else { return Ok(0) };
            let snapshots: Vec<(i64, i64)> =
                sqlx::query_as("SELECT doc, covers FROM snapshots WHERE plan = $1 AND covers <= $2")
                    .bind(plan_id)
                    .bind(min_acked)
                    .fetch_all(&mut **tx)
                    .await?;
            let changes = $crate::store::sql::kind_code(cove_shared::Kind::Changes);
            let mut total = 0;
            for (doc, covers) in snapshots {
                let (count, bytes): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM envelopes
                     WHERE plan = $1 AND doc = $2 AND kind = $3 AND cursor <= $4",
                )
                .bind(plan_id)
                .bind(doc)
                .bind(changes)
                .bind(covers)
                .fetch_one(&mut **tx)
                .await?;
                if count == 0 {
                    continue;
                }
                sqlx::query(
                    "DELETE FROM envelopes WHERE plan = $1 AND doc = $2 AND kind = $3 AND cursor <= $4",
                )
                .bind(plan_id)
                .bind(doc)
                .bind(changes)
                .bind(covers)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "UPDATE plans SET envelope_count = envelope_count - $2,
                       envelope_bytes = envelope_bytes - $3,
                       compacted = CASE WHEN compacted < $4 THEN $4 ELSE compacted END
                     WHERE id = $1",
                )
                .bind(plan_id)
                .bind(count)
                .bind(bytes)
                .bind(covers)
                .execute(&mut **tx)
                .await?;
                total += u64::try_from(count).unwrap_or(0);
            }
            Ok(total)
        }
    };
}

pub(super) use {store_helpers, store_methods};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameplates_fill_the_smallest_gap() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(free_nameplate(&[]), "1");
        assert_eq!(free_nameplate(&s(&["1", "2", "4"])), "3");
        assert_eq!(free_nameplate(&s(&["2", "3"])), "1");
        assert_eq!(free_nameplate(&s(&["1", "x", "2"])), "3");
    }
}
