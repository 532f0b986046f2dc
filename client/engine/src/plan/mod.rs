//! The aftercare plan: its schema over the three Automerge documents, typed
//! reads and writes, and the merge rules.
//!
//! # Layout
//! - [`schema`]: document shapes and genesis.
//! - [`fields`]: one table per section: every field's key, label, kind,
//!   whether it is needed, its default and its normalisation.
//! - [`model`]: the plan as typed values (what `--json` prints).
//! - [`read`]: documents to [`model::Plan`], with the most-restrictive rule.
//! - [`section`]: the sections that hold items, and their names.
//! - [`settings`]: the whole-number settings and their bounds.
//! - [`write`]: one function per action a person takes.
//! - [`replaced`]: ordinary values set on two devices at once, kept
//!   visible and restorable.
//! - [`review`]: what changed since a review, and who changed it; when a
//!   review is due; recording one.
//! - [`items`]: items as lists show them; finding one by a short id, with
//!   the ownership rule.
//! - [`text`]: how items read in a sentence, in either face.
//! - [`signals`]: the built-in signals, and what a signal means.
//! - [`template`]: the starter template.
//! - [`export`]: Markdown and JSON export, JSON import.
//! - [`ids`]: item ids (ULIDs) and sequence positions.
//! - [`calendar`]: calendar days.

pub mod calendar;
pub mod export;
pub mod fields;
pub mod ids;
pub mod items;
pub mod model;
pub mod read;
pub mod replaced;
pub mod review;
pub mod schema;
pub mod section;
pub mod settings;
pub mod signals;
pub mod template;
pub mod text;
pub mod write;

use crate::documents::Documents;
use automerge::{ROOT, ReadDoc};
use cove_shared::{DeviceId, DocId, Partner};

/// A partner's display name, as their own document holds it.
pub fn display_name(docs: &Documents, partner: Partner) -> Option<String> {
    let doc = docs.get(partner.doc());
    let (_, profile) = doc.get(ROOT, schema::partner::PROFILE).ok()??;
    let (value, _) = doc.get(&profile, "display_name").ok()??;
    value.as_str().map(str::to_owned)
}

/// The name a partner's device gave itself, as that partner's document
/// holds it.
pub fn device_name(docs: &Documents, partner: Partner, device: &DeviceId) -> Option<String> {
    let doc = docs.get(partner.doc());
    let (_, profile) = doc.get(ROOT, schema::partner::PROFILE).ok()??;
    let (_, devices) = doc.get(&profile, schema::partner::DEVICES).ok()??;
    let (value, _) = doc.get(&devices, device.to_string()).ok()??;
    value.as_str().map(str::to_owned)
}

/// The whole plan as this device holds it.
pub fn current(docs: &Documents) -> model::Plan {
    read::plan(docs.get(DocId::Shared), docs.get(DocId::PartnerA), docs.get(DocId::PartnerB))
}
