//! The plan's three Automerge documents on this device.
//!
//! Each device writes with an Automerge actor id equal to its device id (its
//! Ed25519 public key), so a receiving device can check that every change in
//! an envelope carries the sender's actor id: who made a change is verified,
//! not claimed.
//!
//! Remote changes are applied in one batch per document. Automerge 0.12
//! applies changes one at a time in time quadratic in the history (10,000
//! changes take 7–22 s that way, 80 ms in one batch), so callers collect
//! everything they have verified and apply it once.

use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Automerge, AutomergeError, Change, ChangeHash, ReadDoc};
use cove_shared::{DeviceId, DocId};
use std::collections::BTreeMap;

/// A document operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    /// Automerge refused the operation or the data.
    #[error("document error: {0}")]
    Automerge(#[from] AutomergeError),
    /// A change names another author than the device that sent it.
    #[error("a change was not made by the device that sent it")]
    WrongAuthor,
    /// A saved document holds a change by a device not allowed to write it.
    #[error("a saved document holds a change by a device not allowed to write it")]
    ForeignAuthor,
    /// A saved document holds changes that do not apply yet (their
    /// dependencies are missing), which no honest save does.
    #[error("a saved document holds changes that wait on others it does not hold")]
    QueuedChanges,
    /// A snapshot claims more envelopes from a device than the document it
    /// carries holds changes from that device (every envelope carries at
    /// least one).
    #[error("a snapshot claims more changes from a device than it holds")]
    CoverageUnbacked,
}

/// The plan's synced documents.
#[derive(Debug)]
pub struct Documents {
    docs: [Automerge; 3],
    actor: ActorId,
    /// Each document's heads when it was last stored locally.
    saved: [Vec<ChangeHash>; 3],
}

fn index(doc: DocId) -> usize {
    usize::from(doc.code())
}

/// The actor id a device writes with.
pub fn actor_of(device: &DeviceId) -> ActorId {
    ActorId::from(device.as_bytes().as_slice())
}

impl Documents {
    /// Empty documents for `device`.
    pub fn new(device: &DeviceId) -> Self {
        let actor = actor_of(device);
        let new = || Automerge::new().with_actor(actor.clone());
        Self { docs: [new(), new(), new()], actor, saved: Default::default() }
    }

    /// Documents loaded from saved bytes (`None` for a document not yet held).
    pub fn load(device: &DeviceId, saved: [Option<&[u8]>; 3]) -> Result<Self, DocError> {
        let actor = actor_of(device);
        let mut docs = Self::new(device);
        for (i, bytes) in saved.into_iter().enumerate() {
            if let Some(bytes) = bytes {
                docs.docs[i] = Automerge::load(bytes)?.with_actor(actor.clone());
                docs.saved[i] = docs.docs[i].get_heads();
            }
        }
        Ok(docs)
    }

    /// One document.
    pub fn get(&self, doc: DocId) -> &Automerge {
        &self.docs[index(doc)]
    }

    /// Merges a saved document into one of ours (starting from a snapshot:
    /// into an empty document this is a load; into one with history, the
    /// snapshot's changes are added and nothing of ours is lost), if every
    /// change in it was made by a device `allowed` to write `doc`, and it
    /// holds at least `claimed` changes of each device that map names.
    pub fn merge_checked(
        &mut self,
        doc: DocId,
        bytes: &[u8],
        allowed: impl Fn(&DeviceId) -> bool,
        claimed: &BTreeMap<DeviceId, u64>,
    ) -> Result<(), DocError> {
        let mut other = Automerge::load(bytes)?;
        // Automerge keeps, unapplied, any change whose dependencies are
        // missing; such a change would escape the author check below and
        // apply once its dependency arrives.
        if !other.get_missing_deps(&[]).is_empty() {
            return Err(DocError::QueuedChanges);
        }
        let mut held: BTreeMap<DeviceId, u64> = BTreeMap::new();
        for change in other.get_changes_meta(&[]) {
            let author: Option<DeviceId> = <[u8; 32]>::try_from(change.actor.to_bytes())
                .ok()
                .and_then(|b| DeviceId::from_bytes(b).ok());
            match author {
                Some(a) if allowed(&a) => *held.entry(a).or_default() += 1,
                _ => return Err(DocError::ForeignAuthor),
            }
        }
        if claimed.iter().any(|(device, n)| held.get(device).copied().unwrap_or(0) < *n) {
            return Err(DocError::CoverageUnbacked);
        }
        let mine = &mut self.docs[index(doc)];
        if mine.get_heads().is_empty() {
            *mine = other.with_actor(self.actor.clone());
        } else {
            mine.merge(&mut other)?;
        }
        Ok(())
    }

    /// Runs `edit` as one transaction on `doc`; returns its result and the
    /// changes it made (none if it changed nothing).
    pub fn edit<T, E>(
        &mut self,
        doc: DocId,
        time: i64,
        edit: impl FnOnce(&mut Transaction<'_>) -> Result<T, E>,
    ) -> Result<(T, Vec<Change>), E>
    where
        E: From<DocError>,
    {
        let automerge = &mut self.docs[index(doc)];
        let before = automerge.get_heads();
        let mut tx = automerge.transaction();
        match edit(&mut tx) {
            Ok(value) => {
                tx.commit_with(CommitOptions::default().with_time(time));
                Ok((value, automerge.get_changes(&before)))
            }
            Err(error) => {
                tx.rollback();
                Err(error)
            }
        }
    }

    /// Applies changes on a copy first, and keeps the result only if all of
    /// them applied: slower, for when a batch failed.
    pub fn try_apply(&mut self, doc: DocId, changes: Vec<Change>) -> Result<(), DocError> {
        let mut trial = self.docs[index(doc)].clone();
        trial.apply_changes(changes)?;
        self.docs[index(doc)] = trial;
        Ok(())
    }

    /// Applies changes that have been verified, in one batch.
    pub fn apply(&mut self, doc: DocId, changes: Vec<Change>) -> Result<(), DocError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.docs[index(doc)].apply_changes(changes)?;
        Ok(())
    }

    /// The changes of `doc` made after `heads`.
    pub fn changes_since(&self, doc: DocId, heads: &[ChangeHash]) -> Vec<Change> {
        self.docs[index(doc)].get_changes(heads)
    }

    /// The heads a document had when it was last stored locally.
    pub fn saved_heads(&self, doc: DocId) -> &[ChangeHash] {
        &self.saved[index(doc)]
    }

    /// The changes made to a document since it was last stored, as bytes
    /// that Automerge loads after its full save.
    pub fn unsaved(&self, doc: DocId) -> Vec<u8> {
        self.docs[index(doc)].save_after(&self.saved[index(doc)])
    }

    /// Records that a document is stored as it is now.
    pub fn mark_saved(&mut self, doc: DocId) {
        self.saved[index(doc)] = self.docs[index(doc)].get_heads();
    }

    /// The saved form of a document.
    pub fn save(&self, doc: DocId) -> Vec<u8> {
        self.docs[index(doc)].save()
    }

    /// A document's heads.
    pub fn heads(&self, doc: DocId) -> Vec<ChangeHash> {
        self.docs[index(doc)].get_heads()
    }
}

/// Decodes the changes of an envelope sent by `sender`, refusing any change
/// that another device made.
pub fn decode_changes(raw: &[Vec<u8>], sender: &DeviceId) -> Result<Vec<Change>, DocError> {
    let actor = actor_of(sender);
    raw.iter()
        .map(|bytes| {
            let change =
                Change::from_bytes(bytes.clone()).map_err(|e| DocError::Automerge(e.into()))?;
            if change.actor_id() == &actor { Ok(change) } else { Err(DocError::WrongAuthor) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ROOT;
    use automerge::transaction::Transactable;
    use cove_shared::DeviceSecret;
    use cove_shared::random::SeededEntropy;

    #[test]
    fn changes_carry_the_devices_actor_and_are_checked() {
        let a = DeviceSecret::generate(&mut SeededEntropy::new(b"a")).id();
        let b = DeviceSecret::generate(&mut SeededEntropy::new(b"b")).id();
        let mut docs = Documents::new(&a);
        let ((), changes) = docs
            .edit(DocId::Shared, 0, |tx| tx.put(ROOT, "k", "v").map_err(DocError::from))
            .unwrap();
        assert_eq!(changes.len(), 1);
        let raw: Vec<Vec<u8>> = changes.iter().map(|c| c.raw_bytes().to_vec()).collect();
        assert_eq!(decode_changes(&raw, &a).unwrap().len(), 1);
        assert!(matches!(decode_changes(&raw, &b), Err(DocError::WrongAuthor)));

        let mut other = Documents::new(&b);
        other.apply(DocId::Shared, decode_changes(&raw, &a).unwrap()).unwrap();
        assert_eq!(other.heads(DocId::Shared), docs.heads(DocId::Shared));
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;
    use automerge::ROOT;
    use automerge::transaction::Transactable;
    use cove_shared::DeviceSecret;
    use cove_shared::random::SeededEntropy;

    #[test]
    fn a_saved_document_with_a_change_by_someone_not_allowed_is_refused() {
        let a = DeviceSecret::generate(&mut SeededEntropy::new(b"a")).id();
        let stranger = DeviceSecret::generate(&mut SeededEntropy::new(b"s")).id();
        let mut theirs = Documents::new(&stranger);
        theirs.edit(DocId::Shared, 0, |tx| tx.put(ROOT, "k", "v").map_err(DocError::from)).unwrap();
        let saved = theirs.save(DocId::Shared);
        let mut mine = Documents::new(&a);
        let refused = mine.merge_checked(DocId::Shared, &saved, |d| *d == a, &BTreeMap::new());
        assert!(matches!(refused, Err(DocError::ForeignAuthor)));
        assert!(mine.heads(DocId::Shared).is_empty());
        mine.merge_checked(DocId::Shared, &saved, |d| *d == stranger, &BTreeMap::new()).unwrap();
        assert_eq!(mine.heads(DocId::Shared), theirs.heads(DocId::Shared));
    }

    #[test]
    fn a_saved_document_with_a_queued_change_is_refused() {
        let a = DeviceSecret::generate(&mut SeededEntropy::new(b"a")).id();
        let stranger = DeviceSecret::generate(&mut SeededEntropy::new(b"s")).id();
        let put = |docs: &mut Documents, key: &str| {
            docs.edit(DocId::Shared, 0, |tx| tx.put(ROOT, key, "v").map_err(DocError::from))
        };
        let mut theirs = Documents::new(&a);
        put(&mut theirs, "one").unwrap();
        let only_first = theirs.save(DocId::Shared);
        put(&mut theirs, "two").unwrap();
        // A stranger's change on top of the second, which the save leaves out.
        let mut forked = Documents::new(&stranger);
        forked
            .merge_checked(DocId::Shared, &theirs.save(DocId::Shared), |_| true, &BTreeMap::new())
            .unwrap();
        let (_, foreign) = put(&mut forked, "three").unwrap();
        let mut bytes = only_first;
        bytes.extend_from_slice(foreign[0].raw_bytes());
        let mut mine = Documents::new(&a);
        let refused = mine.merge_checked(DocId::Shared, &bytes, |d| *d == a, &BTreeMap::new());
        assert!(matches!(refused, Err(DocError::QueuedChanges)), "{refused:?}");
        assert!(mine.heads(DocId::Shared).is_empty());
    }

    #[test]
    fn a_snapshot_claiming_more_changes_than_it_holds_is_refused() {
        let a = DeviceSecret::generate(&mut SeededEntropy::new(b"a")).id();
        let mut theirs = Documents::new(&a);
        for key in ["one", "two"] {
            theirs
                .edit(DocId::Shared, 0, |tx| tx.put(ROOT, key, "v").map_err(DocError::from))
                .unwrap();
        }
        let saved = theirs.save(DocId::Shared);
        let claim = |n: u64| BTreeMap::from([(a, n)]);
        let mut mine = Documents::new(&a);
        let refused = mine.merge_checked(DocId::Shared, &saved, |_| true, &claim(1 << 40));
        assert!(matches!(refused, Err(DocError::CoverageUnbacked)), "{refused:?}");
        assert!(mine.heads(DocId::Shared).is_empty());
        mine.merge_checked(DocId::Shared, &saved, |_| true, &claim(2)).unwrap();
        assert_eq!(mine.heads(DocId::Shared), theirs.heads(DocId::Shared));
    }
}
