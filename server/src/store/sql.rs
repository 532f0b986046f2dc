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

use super::{AppendError, Appended, NewEnvelope, Quota, StoreError};
use cove_shared::wire::Cursor;
use cove_shared::{DeviceId, PlanId};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Grace period after a pairing mailbox expires before its nameplate can be
/// reused, so that a late joiner with an old code cannot burn a new mailbox.
pub(super) const PAIRING_GRACE_SECS: i64 = 600;

pub(super) fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt("integer out of range"))
}

pub(super) fn to_cursor(v: i64) -> Result<Cursor, StoreError> {
    u64::try_from(v).map(Cursor).map_err(|_| StoreError::Corrupt("negative cursor"))
}

pub(super) fn device(bytes: &[u8]) -> Result<DeviceId, StoreError> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| StoreError::Corrupt("device id length"))?;
    DeviceId::from_bytes(bytes).map_err(|_| StoreError::Corrupt("device id"))
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

/// Rows per multi-row statement: well under both databases' bind limits
/// (SQLite 32,766, PostgreSQL 65,535) at ten columns a row.
pub(super) const CHUNK: usize = 200;

/// How a backend numbers the parameters of the statements built at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placeholders {
    /// `$1, $2, …` (PostgreSQL).
    Numbered,
    /// `?` in order (SQLite). sqlx looks a named SQLite parameter up by name,
    /// which SQLite does by a linear scan: a statement with thousands of
    /// `$N` would bind in quadratic time.
    Positional,
}

impl Placeholders {
    pub(super) fn push(self, out: &mut String, n: usize) {
        match self {
            Self::Numbered => {
                out.push('$');
                out.push_str(&n.to_string());
            }
            Self::Positional => out.push('?'),
        }
    }
}

/// `$1, $2, …, $n` (or `?, ?, …`).
pub(super) fn list(style: Placeholders, n: usize) -> String {
    rows(style, 1, n).trim_start_matches('(').trim_end_matches(')').to_owned()
}

/// `($1, $2, …), (…), …`: `n` rows of `columns` parameters, numbered in order.
pub(super) fn rows(style: Placeholders, n: usize, columns: usize) -> String {
    let mut out = String::with_capacity(n * columns * 5);
    for r in 0..n {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..columns {
            if c > 0 {
                out.push_str(", ");
            }
            style.push(&mut out, r * columns + c + 1);
        }
        out.push(')');
    }
    out
}

/// `CASE id WHEN p1 THEN v1 … END` over `n` (id, value) pairs whose
/// parameters start at `first` with `stride` parameters per pair, the id
/// first and the value `offset` after it.
pub(super) fn case_by_id(
    style: Placeholders,
    n: usize,
    first: usize,
    stride: usize,
    offset: usize,
) -> String {
    let mut out = String::from("CASE id");
    for i in 0..n {
        out.push_str(" WHEN ");
        style.push(&mut out, first + i * stride);
        out.push_str(" THEN ");
        style.push(&mut out, first + i * stride + offset);
    }
    out.push_str(" END");
    out
}

type Position = (PlanId, DeviceId, i64, i64, i64);

fn plan_id(bytes: &[u8]) -> Result<PlanId, StoreError> {
    let bytes: [u8; 16] = bytes.try_into().map_err(|_| StoreError::Corrupt("plan id"))?;
    Ok(PlanId::from_bytes(bytes))
}

/// The bookkeeping of one group commit, apart from the SQL: which envelopes
/// are resends or equivocations, which cursor each new one gets, which the
/// quota refuses, and what to count.
#[derive(Debug)]
pub(super) struct BatchPlan<'a> {
    batch: &'a [NewEnvelope],
    results: Vec<Option<Result<Appended, AppendError>>>,
    /// The first index in this batch at each stream position.
    first: HashMap<Position, usize>,
    /// Later indices that repeat an earlier one in this batch.
    repeats: Vec<(usize, usize)>,
    /// New envelopes and their cursors, once assigned.
    cursors: Vec<(usize, i64)>,
    /// Cursors the insert actually wrote, by plan.
    written: HashSet<(PlanId, i64)>,
}

fn position(e: &NewEnvelope) -> Position {
    (e.plan, e.sender, kind_code(e.kind), doc_code(e.doc), e.seq.0 as i64)
}

impl<'a> BatchPlan<'a> {
    pub(super) fn new(batch: &'a [NewEnvelope]) -> Self {
        let mut first = HashMap::new();
        let mut repeats = Vec::new();
        for (i, e) in batch.iter().enumerate() {
            match first.entry(position(e)) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(i);
                }
                std::collections::hash_map::Entry::Occupied(o) => repeats.push((i, *o.get())),
            }
        }
        Self {
            batch,
            results: vec![None; batch.len()],
            first,
            repeats,
            cursors: Vec::new(),
            written: HashSet::new(),
        }
    }

    /// A position the database already holds.
    pub(super) fn stored(
        &mut self,
        (plan, sender, kind, doc, seq, cursor, hash): (
            Vec<u8>,
            Vec<u8>,
            i64,
            i64,
            i64,
            i64,
            Vec<u8>,
        ),
    ) -> Result<(), StoreError> {
        let key = (plan_id(&plan)?, device(&sender)?, kind, doc, seq);
        let Some(&i) = self.first.get(&key) else { return Ok(()) };
        let result = if hash == self.batch[i].hash.0 {
            Ok(Appended::Duplicate(to_cursor(cursor)?))
        } else {
            Err(AppendError::Equivocation)
        };
        self.results[i] = Some(result);
        Ok(())
    }

    /// The envelopes still to decide: new, and first at their position.
    fn pending(&self) -> impl Iterator<Item = (usize, &NewEnvelope)> {
        self.batch
            .iter()
            .enumerate()
            .filter(|(i, e)| self.results[*i].is_none() && self.first.get(&position(e)) == Some(i))
    }

    /// The plans the pending envelopes belong to.
    pub(super) fn plans(&self) -> Vec<PlanId> {
        let plans: std::collections::BTreeSet<PlanId> =
            self.pending().map(|(_, e)| e.plan).collect();
        plans.into_iter().collect()
    }

    /// Refuses, in batch order, what the quota or a missing plan refuses.
    /// Rows are (plan, envelope count, envelope bytes) as stored.
    pub(super) fn admit(
        &mut self,
        usage: &[(Vec<u8>, i64, i64)],
        quota: Quota,
    ) -> Result<(), StoreError> {
        let mut usage: HashMap<PlanId, (i64, i64)> = usage
            .iter()
            .map(|(plan, count, bytes)| Ok((plan_id(plan)?, (*count, *bytes))))
            .collect::<Result<_, StoreError>>()?;
        let max_envelopes = to_i64(quota.max_envelopes)?;
        let max_bytes = to_i64(quota.max_bytes)?;
        let pending: Vec<(usize, PlanId, i64)> =
            self.pending().map(|(i, e)| (i, e.plan, e.body.len() as i64)).collect();
        for (i, plan, size) in pending {
            let Some((count, bytes)) = usage.get_mut(&plan) else {
                self.results[i] = Some(Err(AppendError::NoSuchPlan));
                continue;
            };
            if *count >= max_envelopes || *bytes + size > max_bytes {
                self.results[i] = Some(Err(AppendError::QuotaExceeded));
                continue;
            }
            *count += 1;
            *bytes += size;
        }
        Ok(())
    }

    /// How many cursors each plan needs for the admitted envelopes.
    pub(super) fn new_per_plan(&self) -> Vec<(PlanId, usize)> {
        let mut counts: BTreeMap<PlanId, usize> = BTreeMap::new();
        for (_, e) in self.pending() {
            *counts.entry(e.plan).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// Hands out the reserved cursors in batch order. Rows are (plan, new
    /// head): each plan reserved exactly as many as it needs.
    pub(super) fn assign(&mut self, reserved: &[(Vec<u8>, i64)]) -> Result<(), StoreError> {
        let counts: BTreeMap<PlanId, usize> = self.new_per_plan().into_iter().collect();
        let mut next: HashMap<PlanId, i64> = HashMap::new();
        for (plan, head) in reserved {
            let plan = plan_id(plan)?;
            let n = counts.get(&plan).copied().unwrap_or(0) as i64;
            next.insert(plan, head - n + 1);
        }
        let pending: Vec<(usize, PlanId)> = self.pending().map(|(i, e)| (i, e.plan)).collect();
        for (i, plan) in pending {
            match next.get_mut(&plan) {
                Some(cursor) => {
                    self.cursors.push((i, *cursor));
                    *cursor += 1;
                }
                // Deleted between the quota check and the reservation.
                None => self.results[i] = Some(Err(AppendError::NoSuchPlan)),
            }
        }
        Ok(())
    }

    /// The envelopes to insert, with their cursors.
    pub(super) fn to_insert(&self) -> Vec<(usize, i64)> {
        self.cursors.clone()
    }

    /// A row the insert wrote.
    pub(super) fn inserted(&mut self, (plan, cursor): (Vec<u8>, i64)) {
        if let Ok(plan) = <[u8; 16]>::try_from(plan.as_slice()) {
            self.written.insert((PlanId::from_bytes(plan), cursor));
        }
    }

    /// Envelopes whose insert found the position taken by another process.
    pub(super) fn lost_races(&self) -> Vec<usize> {
        self.cursors
            .iter()
            .filter(|(i, c)| !self.written.contains(&(self.batch[*i].plan, *c)))
            .map(|(i, _)| *i)
            .collect()
    }

    /// The outcome of a lost race, from the row that won it.
    pub(super) fn raced(&mut self, i: usize, winner: Option<(Cursor, Vec<u8>)>) {
        self.results[i] = Some(match winner {
            Some((cursor, hash)) if hash == self.batch[i].hash.0 => Ok(Appended::Duplicate(cursor)),
            Some(_) => Err(AppendError::Equivocation),
            None => Err(AppendError::Unavailable),
        });
    }

    /// Envelopes and bytes added to each plan.
    pub(super) fn added_per_plan(&self) -> Vec<(PlanId, i64, i64)> {
        let mut added: BTreeMap<PlanId, (i64, i64)> = BTreeMap::new();
        for (i, c) in &self.cursors {
            let e = &self.batch[*i];
            if self.written.contains(&(e.plan, *c)) {
                let entry = added.entry(e.plan).or_default();
                entry.0 += 1;
                entry.1 += e.body.len() as i64;
            }
        }
        added.into_iter().map(|(p, (n, b))| (p, n, b)).collect()
    }

    /// Every envelope's outcome, in batch order.
    pub(super) fn results(mut self) -> Vec<Result<Appended, AppendError>> {
        for (i, c) in std::mem::take(&mut self.cursors) {
            if self.results[i].is_none() && self.written.contains(&(self.batch[i].plan, c)) {
                self.results[i] =
                    Some(to_cursor(c).map(Appended::New).map_err(|_| AppendError::Unavailable));
            }
        }
        // A repeat within the batch shares its first copy's fate, unless its
        // content differs.
        for (i, first) in std::mem::take(&mut self.repeats) {
            self.results[i] = Some(if self.batch[i].hash != self.batch[first].hash {
                Err(AppendError::Equivocation)
            } else {
                match self.results[first] {
                    Some(Ok(Appended::New(c) | Appended::Duplicate(c))) => {
                        Ok(Appended::Duplicate(c))
                    }
                    Some(Err(e)) => Err(e),
                    None => Err(AppendError::Unavailable),
                }
            });
        }
        self.results.into_iter().map(|r| r.unwrap_or(Err(AppendError::Unavailable))).collect()
    }
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
        ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
            self.append_batch(batch, quota).await
        }

        async fn probe_write(&self) -> Result<(), StoreError> {
            let body = vec![0u8; $crate::store::PROBE_BYTES];
            sqlx::query(
                "INSERT INTO write_probe (id, body) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            )
            .bind(body)
            .execute(&self.writer)
            .await?;
            sqlx::query("DELETE FROM write_probe").execute(&self.writer).await?;
            Ok(())
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
                // Logged once, as the relay's store health.
                tracing::debug!(error = %e, "pairing join failed in storage");
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

        async fn pair_post(&self, nameplate: &str, from: Side, body: &[u8]) -> Result<Option<i64>, StoreError> {
            // One statement, so that two posts at once cannot both pass the count.
            let row: Option<(i64,)> = sqlx::query_as(
                "INSERT INTO pairing_messages (nameplate, side, body) \
                 SELECT $1, $2, $3 WHERE (SELECT COUNT(*) FROM pairing_messages \
                 WHERE nameplate = $1 AND side = $2) < $4 RETURNING id",
            )
            .bind(nameplate)
            .bind(from.code())
            .bind(body)
            .bind(cove_shared::wire::MAX_PAIR_MESSAGES as i64)
            .fetch_optional(&self.writer)
            .await?;
            Ok(row.map(|(id,)| id))
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
            /// Appends a batch in a handful of statements, whatever its size
            /// (see [`crate::store::sql::BatchPlan`]).
            async fn append_batch(
                &self,
                batch: &[NewEnvelope],
                quota: Quota,
            ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
                let style = Self::PLACEHOLDERS;
                use $crate::store::sql::{BatchPlan, list, rows, to_i64, kind_code, doc_code, to_cursor, CHUNK};
                let mut plan = BatchPlan::new(batch);
                let mut tx = self.writer.begin().await?;

                // 1. Positions already stored: resends and equivocations.
                for chunk in batch.chunks(CHUNK) {
                    let sql = format!(
                        "SELECT plan, sender, kind, doc, seq, cursor, hash FROM envelopes
                         WHERE (plan, sender, kind, doc, seq) IN (VALUES {})",
                        rows(style, chunk.len(), 5)
                    );
                    let mut query = sqlx::query_as::<_, (Vec<u8>, Vec<u8>, i64, i64, i64, i64, Vec<u8>)>(
                        sqlx::AssertSqlSafe(sql),
                    );
                    for e in chunk {
                        query = query
                            .bind(e.plan.as_bytes().as_slice())
                            .bind(e.sender.as_bytes().as_slice())
                            .bind(kind_code(e.kind))
                            .bind(doc_code(e.doc))
                            .bind(to_i64(e.seq.0)?);
                    }
                    for row in query.fetch_all(&mut *tx).await? {
                        plan.stored(row)?;
                    }
                }

                // 2. The quota, then cursors for what it admits, for every
                //    plan at once. The reservation is atomic; the quota check
                //    may be a moment stale when several relays share a
                //    database, which only loosens a bound.
                let plans = plan.plans();
                if !plans.is_empty() {
                    let sql = format!(
                        "SELECT id, envelope_count, envelope_bytes FROM plans WHERE id IN ({})",
                        list(style, plans.len())
                    );
                    let mut query = sqlx::query_as::<_, (Vec<u8>, i64, i64)>(sqlx::AssertSqlSafe(sql));
                    for p in &plans {
                        query = query.bind(p.as_bytes().as_slice());
                    }
                    let usage = query.fetch_all(&mut *tx).await?;
                    plan.admit(&usage, quota)?;
                }
                let counts = plan.new_per_plan();
                if !counts.is_empty() {
                    // Parameters: (id, count) pairs, then the ids again for IN.
                    let n = counts.len();
                    let ids: Vec<String> = (0..n).map(|i| {
                        let mut p = String::new();
                        style.push(&mut p, 2 * n + i + 1);
                        p
                    }).collect();
                    let sql = format!(
                        "UPDATE plans SET head = head + {} WHERE id IN ({}) RETURNING id, head",
                        $crate::store::sql::case_by_id(style, n, 1, 2, 1),
                        ids.join(", ")
                    );
                    let mut query = sqlx::query_as::<_, (Vec<u8>, i64)>(sqlx::AssertSqlSafe(sql));
                    for (plan_id, n) in &counts {
                        query = query.bind(plan_id.as_bytes().as_slice()).bind(to_i64(*n as u64)?);
                    }
                    for (plan_id, _) in &counts {
                        query = query.bind(plan_id.as_bytes().as_slice());
                    }
                    let reserved = query.fetch_all(&mut *tx).await?;
                    plan.assign(&reserved)?;
                }

                // 3. Insert; a position another relay process took meanwhile
                //    comes back missing and is looked up again.
                let inserts = plan.to_insert();
                for chunk in inserts.chunks(CHUNK) {
                    let sql = format!(
                        "INSERT INTO envelopes (plan, cursor, sender, kind, seq, doc, hash, size, expires_at, body)
                         VALUES {} ON CONFLICT (plan, sender, kind, doc, seq) DO NOTHING RETURNING plan, cursor",
                        rows(style, chunk.len(), 10)
                    );
                    let mut query = sqlx::query_as::<_, (Vec<u8>, i64)>(sqlx::AssertSqlSafe(sql));
                    for (i, cursor) in chunk {
                        let e = &batch[*i];
                        query = query
                            .bind(e.plan.as_bytes().as_slice())
                            .bind(*cursor)
                            .bind(e.sender.as_bytes().as_slice())
                            .bind(kind_code(e.kind))
                            .bind(to_i64(e.seq.0)?)
                            .bind(doc_code(e.doc))
                            .bind(e.hash.0.as_slice())
                            .bind(to_i64(e.body.len() as u64)?)
                            .bind(e.expires_at)
                            .bind(e.body.as_ref());
                    }
                    for row in query.fetch_all(&mut *tx).await? {
                        plan.inserted(row);
                    }
                }
                for i in plan.lost_races() {
                    let e = &batch[i];
                    let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
                        "SELECT cursor, hash FROM envelopes
                         WHERE plan = $1 AND sender = $2 AND kind = $3 AND doc = $4 AND seq = $5",
                    )
                    .bind(e.plan.as_bytes().as_slice())
                    .bind(e.sender.as_bytes().as_slice())
                    .bind(kind_code(e.kind))
                    .bind(doc_code(e.doc))
                    .bind(to_i64(e.seq.0)?)
                    .fetch_optional(&mut *tx)
                    .await?;
                    plan.raced(i, row.map(|(c, h)| (to_cursor(c), h)).map(|(c, h)| c.map(|c| (c, h))).transpose()?);
                }

                // 4. Count what was stored, for the quotas.
                let added = plan.added_per_plan();
                if !added.is_empty() {
                    // Parameters: (id, count) pairs, (id, bytes) pairs, ids.
                    let n = added.len();
                    let ids: Vec<String> = (0..n).map(|i| {
                        let mut p = String::new();
                        style.push(&mut p, 4 * n + i + 1);
                        p
                    }).collect();
                    let sql = format!(
                        "UPDATE plans SET envelope_count = envelope_count + {},
                           envelope_bytes = envelope_bytes + {}
                         WHERE id IN ({})",
                        $crate::store::sql::case_by_id(style, n, 1, 2, 1),
                        $crate::store::sql::case_by_id(style, n, 2 * n + 1, 2, 1),
                        ids.join(", ")
                    );
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for (plan_id, count, _) in &added {
                        query = query.bind(plan_id.as_bytes().as_slice()).bind(*count);
                    }
                    for (plan_id, _, bytes) in &added {
                        query = query.bind(plan_id.as_bytes().as_slice()).bind(*bytes);
                    }
                    for (plan_id, _, _) in &added {
                        query = query.bind(plan_id.as_bytes().as_slice());
                    }
                    query.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(plan.results())
            }
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
    fn placeholders_are_numbered_row_by_row() {
        use Placeholders::{Numbered, Positional};
        assert_eq!(list(Numbered, 3), "$1, $2, $3");
        assert_eq!(list(Positional, 2), "?, ?");
        assert_eq!(rows(Numbered, 2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(rows(Positional, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(case_by_id(Numbered, 2, 1, 2, 1), "CASE id WHEN $1 THEN $2 WHEN $3 THEN $4 END");
        assert_eq!(case_by_id(Numbered, 2, 5, 2, 1), "CASE id WHEN $5 THEN $6 WHEN $7 THEN $8 END");
    }

    #[test]
    fn nameplates_fill_the_smallest_gap() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(free_nameplate(&[]), "1");
        assert_eq!(free_nameplate(&s(&["1", "2", "4"])), "3");
        assert_eq!(free_nameplate(&s(&["2", "3"])), "1");
        assert_eq!(free_nameplate(&s(&["1", "x", "2"])), "3");
    }
}
