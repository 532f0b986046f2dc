//! Group commit: appends from many connections share one transaction.
//!
//! Each push waits for its own result, and that result is sent only after
//! the transaction that holds the envelope committed. While one batch
//! commits, the next one gathers, so the batch size grows with the load
//! and commits per second stay bounded by the disk, not by the request rate.
//! A batch whose commit fails answers `unavailable` to every push in it.

use crate::health::StoreHealth;
use crate::metrics::{Metrics, StoreOp};
use crate::store::{AppendError, Appended, NewEnvelope, Quota, Store};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// The most envelopes in one transaction.
pub const MAX_BATCH: usize = 512;

type Job = (NewEnvelope, oneshot::Sender<Result<Appended, AppendError>>);

/// Hands envelopes to the committing task.
#[derive(Debug, Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the committing task.
    pub fn start<S: Store>(
        store: S,
        quota: Quota,
        metrics: Arc<Metrics>,
        health: Arc<StoreHealth>,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = rx.recv().await {
                jobs.push(first);
                while jobs.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                let envelopes: Vec<NewEnvelope> = jobs.iter().map(|(e, _)| e.clone()).collect();
                let started = Instant::now();
                let results = match store.append(&envelopes, quota).await {
                    Ok(results) => {
                        health.writes.succeeded();
                        results
                    }
                    Err(error) => {
                        // Nothing of this batch committed: each push hears so.
                        health.writes.failed(&error);
                        vec![Err(AppendError::Unavailable); envelopes.len()]
                    }
                };
                metrics.store_latency(StoreOp::Append, started.elapsed());
                metrics.batch();
                for ((_, reply), result) in jobs.drain(..).zip(results) {
                    // The requester may have gone; the envelope is stored anyway
                    // and a resend will be answered as a duplicate.
                    let _ = reply.send(result);
                }
            }
        });
        Self { tx }
    }

    /// Appends one envelope; resolves once it is committed (or refused).
    pub async fn append(&self, envelope: NewEnvelope) -> Result<Appended, AppendError> {
        let (reply, result) = oneshot::channel();
        self.tx.send((envelope, reply)).await.map_err(|_| AppendError::Unavailable)?;
        result.await.unwrap_or(Err(AppendError::Unavailable))
    }
}
