//! The aftercare plan: its schema over the three Automerge documents.
//!
//! # Layout
//! - [`schema`]: document shapes and genesis.

pub mod schema;

use crate::docs::Docs;
use automerge::{ROOT, ReadDoc};
use cove_shared::Partner;

/// A partner's display name, as their own document holds it.
pub fn display_name(docs: &Docs, partner: Partner) -> Option<String> {
    let doc = docs.get(partner.doc());
    let (_, profile) = doc.get(ROOT, schema::partner::PROFILE).ok()??;
    let (value, _) = doc.get(&profile, "display_name").ok()??;
    value.as_str().map(str::to_owned)
}
