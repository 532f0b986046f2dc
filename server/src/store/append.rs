//! The group commit: a batch of envelopes appended in a handful of
//! statements, whatever its size. [`BatchPlan`] is the bookkeeping apart
//! from the SQL (which envelopes are resends or equivocations, which cursor
//! each new one gets, which the quota refuses); [`append_batch`] runs the
//! statements.

use super::dialect::{self, Arg, Backend, Col, Row};
use super::log::{doc_code, kind_code, plan_id, to_cursor, to_i64};
use super::{AppendError, Appended, NewEnvelope, Quota, StoreError};
use cove_shared::wire::Cursor;
use cove_shared::{DeviceId, PlanId};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Rows per multi-row statement: well under both databases' bind limits
/// (SQLite 32,766, PostgreSQL 65,535) at ten columns a row.
const CHUNK: usize = 200;

/// (plan, sender, kind, doc, seq): one stream position.
type Position = (PlanId, DeviceId, i64, i64, i64);

fn position(e: &NewEnvelope) -> Position {
    (e.plan, e.sender, kind_code(e.kind), doc_code(e.doc), e.seq.0 as i64)
}

/// The bookkeeping of one group commit.
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

    /// A position the database already holds: (plan, sender, kind, doc,
    /// seq, cursor, hash).
    fn stored(&mut self, mut row: Row) -> Result<(), StoreError> {
        let key = (
            plan_id(&row.bytes(0)?)?,
            super::log::device(&row.bytes(1)?)?,
            row.int(2)?,
            row.int(3)?,
            row.int(4)?,
        );
        let Some(&i) = self.first.get(&key) else { return Ok(()) };
        let result = if row.bytes(6)? == self.batch[i].hash.0 {
            Ok(Appended::Duplicate(to_cursor(row.int(5)?)?))
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
    fn plans(&self) -> Vec<PlanId> {
        let plans: BTreeSet<PlanId> = self.pending().map(|(_, e)| e.plan).collect();
        plans.into_iter().collect()
    }

    /// Refuses, in batch order, what the quota or a missing plan refuses.
    /// Rows are (plan, envelope count, envelope bytes) as stored.
    fn admit(&mut self, usage: Vec<Row>, quota: Quota) -> Result<(), StoreError> {
        let mut plans: HashMap<PlanId, (i64, i64)> = HashMap::new();
        for mut row in usage {
            plans.insert(plan_id(&row.bytes(0)?)?, (row.int(1)?, row.int(2)?));
        }
        let max_envelopes = to_i64(quota.max_envelopes)?;
        let max_bytes = to_i64(quota.max_bytes)?;
        let pending: Vec<(usize, PlanId, i64)> =
            self.pending().map(|(i, e)| (i, e.plan, e.body.len() as i64)).collect();
        for (i, plan, size) in pending {
            let Some((count, bytes)) = plans.get_mut(&plan) else {
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
    fn new_per_plan(&self) -> Vec<(PlanId, usize)> {
        let mut counts: BTreeMap<PlanId, usize> = BTreeMap::new();
        for (_, e) in self.pending() {
            *counts.entry(e.plan).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// Hands out the reserved cursors in batch order. Rows are (plan, new
    /// head): each plan reserved exactly as many as it needs.
    fn assign(&mut self, reserved: Vec<Row>) -> Result<(), StoreError> {
        let counts: BTreeMap<PlanId, usize> = self.new_per_plan().into_iter().collect();
        let mut next: HashMap<PlanId, i64> = HashMap::new();
        for mut row in reserved {
            let plan = plan_id(&row.bytes(0)?)?;
            let n = counts.get(&plan).copied().unwrap_or(0) as i64;
            next.insert(plan, row.int(1)? - n + 1);
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

    /// A row the insert wrote: (plan, cursor).
    fn inserted(&mut self, mut row: Row) -> Result<(), StoreError> {
        let plan = plan_id(&row.bytes(0)?)?;
        self.written.insert((plan, row.int(1)?));
        Ok(())
    }

    /// Envelopes whose insert found the position taken by another process.
    fn lost_races(&self) -> Vec<usize> {
        self.cursors
            .iter()
            .filter(|(i, c)| !self.written.contains(&(self.batch[*i].plan, *c)))
            .map(|(i, _)| *i)
            .collect()
    }

    /// The outcome of a lost race, from the row that won it.
    fn raced(&mut self, i: usize, winner: Option<(Cursor, Vec<u8>)>) {
        self.results[i] = Some(match winner {
            Some((cursor, hash)) if hash == self.batch[i].hash.0 => Ok(Appended::Duplicate(cursor)),
            Some(_) => Err(AppendError::Equivocation),
            None => Err(AppendError::Unavailable),
        });
    }

    /// Envelopes and bytes added to each plan.
    fn added_per_plan(&self) -> Vec<(PlanId, i64, i64)> {
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
    fn results(mut self) -> Vec<Result<Appended, AppendError>> {
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

/// Appends a batch in one transaction: look up the positions already
/// stored, check the quota and reserve cursors for every plan at once,
/// insert, and count what was stored.
#[tracing::instrument(level = "debug", skip_all, fields(items = batch.len()))]
pub(super) async fn append_batch<B: Backend>(
    backend: &B,
    batch: &[NewEnvelope],
    quota: Quota,
) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
    let style = B::PLACEHOLDERS;
    let mut plan = BatchPlan::new(batch);
    let mut tx = dialect::begin(backend).await?;

    // 1. Positions already stored: resends and equivocations.
    for chunk in batch.chunks(CHUNK) {
        let sql = format!(
            "SELECT plan, sender, kind, doc, seq, cursor, hash FROM envelopes
             WHERE (plan, sender, kind, doc, seq) IN (VALUES {})",
            style.rows(chunk.len(), 5)
        );
        let mut args = Vec::with_capacity(chunk.len() * 5);
        for e in chunk {
            args.extend([
                Arg::Bytes(e.plan.as_bytes()),
                Arg::Bytes(e.sender.as_bytes()),
                Arg::Int(kind_code(e.kind)),
                Arg::Int(doc_code(e.doc)),
                Arg::Int(to_i64(e.seq.0)?),
            ]);
        }
        let cols = [Col::Bytes, Col::Bytes, Col::Int, Col::Int, Col::Int, Col::Int, Col::Bytes];
        for row in dialect::rows::<B>(&mut tx, &sql, &args, &cols).await? {
            plan.stored(row)?;
        }
    }

    // 2. The quota, then cursors for what it admits, for every plan at
    //    once. The reservation is atomic; the quota check may be a moment
    //    stale when several relays share a database, which only loosens a
    //    bound.
    let plans = plan.plans();
    if !plans.is_empty() {
        let sql = format!(
            "SELECT id, envelope_count, envelope_bytes FROM plans WHERE id IN ({})",
            style.list(1, plans.len())
        );
        let args: Vec<Arg> = plans.iter().map(|p| Arg::Bytes(p.as_bytes())).collect();
        let usage =
            dialect::rows::<B>(&mut tx, &sql, &args, &[Col::Bytes, Col::Int, Col::Int]).await?;
        plan.admit(usage, quota)?;
    }
    let counts = plan.new_per_plan();
    if !counts.is_empty() {
        // Parameters: (id, count) pairs, then the ids again for IN.
        let n = counts.len();
        let sql = format!(
            "UPDATE plans SET head = head + {} WHERE id IN ({}) RETURNING id, head",
            style.case_by_id(n, 1),
            style.list(2 * n + 1, n)
        );
        let mut args = Vec::with_capacity(3 * n);
        for (plan_id, n) in &counts {
            args.extend([Arg::Bytes(plan_id.as_bytes()), Arg::Int(to_i64(*n as u64)?)]);
        }
        args.extend(counts.iter().map(|(plan_id, _)| Arg::Bytes(plan_id.as_bytes())));
        let reserved = dialect::rows::<B>(&mut tx, &sql, &args, &[Col::Bytes, Col::Int]).await?;
        plan.assign(reserved)?;
    }

    // 3. Insert; a position another relay process took meanwhile comes
    //    back missing and is looked up again.
    let inserts = plan.cursors.clone();
    for chunk in inserts.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO envelopes (plan, cursor, sender, kind, seq, doc, hash, size, expires_at, body)
             VALUES {} ON CONFLICT (plan, sender, kind, doc, seq) DO NOTHING RETURNING plan, cursor",
            style.rows(chunk.len(), 10)
        );
        let mut args = Vec::with_capacity(chunk.len() * 10);
        for (i, cursor) in chunk {
            let e = &batch[*i];
            args.extend([
                Arg::Bytes(e.plan.as_bytes()),
                Arg::Int(*cursor),
                Arg::Bytes(e.sender.as_bytes()),
                Arg::Int(kind_code(e.kind)),
                Arg::Int(to_i64(e.seq.0)?),
                Arg::Int(doc_code(e.doc)),
                Arg::Bytes(&e.hash.0),
                Arg::Int(to_i64(e.body.len() as u64)?),
                Arg::OptInt(e.expires_at),
                Arg::Bytes(&e.body),
            ]);
        }
        for row in dialect::rows::<B>(&mut tx, &sql, &args, &[Col::Bytes, Col::Int]).await? {
            plan.inserted(row)?;
        }
    }
    for i in plan.lost_races() {
        let e = &batch[i];
        let winner = dialect::row::<B>(
            &mut tx,
            "SELECT cursor, hash FROM envelopes
             WHERE plan = $1 AND sender = $2 AND kind = $3 AND doc = $4 AND seq = $5",
            &[
                Arg::Bytes(e.plan.as_bytes()),
                Arg::Bytes(e.sender.as_bytes()),
                Arg::Int(kind_code(e.kind)),
                Arg::Int(doc_code(e.doc)),
                Arg::Int(to_i64(e.seq.0)?),
            ],
            &[Col::Int, Col::Bytes],
        )
        .await?;
        let winner = match winner {
            Some(mut row) => Some((to_cursor(row.int(0)?)?, row.bytes(1)?)),
            None => None,
        };
        plan.raced(i, winner);
    }

    // 4. Count what was stored, for the quotas.
    let added = plan.added_per_plan();
    if !added.is_empty() {
        // Parameters: (id, count) pairs, (id, bytes) pairs, then the ids.
        let n = added.len();
        let sql = format!(
            "UPDATE plans SET envelope_count = envelope_count + {},
               envelope_bytes = envelope_bytes + {}
             WHERE id IN ({})",
            style.case_by_id(n, 1),
            style.case_by_id(n, 2 * n + 1),
            style.list(4 * n + 1, n)
        );
        let mut args = Vec::with_capacity(5 * n);
        for (plan_id, count, _) in &added {
            args.extend([Arg::Bytes(plan_id.as_bytes()), Arg::Int(*count)]);
        }
        for (plan_id, _, bytes) in &added {
            args.extend([Arg::Bytes(plan_id.as_bytes()), Arg::Int(*bytes)]);
        }
        args.extend(added.iter().map(|(plan_id, _, _)| Arg::Bytes(plan_id.as_bytes())));
        dialect::execute::<B>(&mut tx, &sql, &args).await?;
    }
    tx.commit().await?;
    Ok(plan.results())
}
