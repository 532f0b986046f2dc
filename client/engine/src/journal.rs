//! The journal: private notes kept on this device only.
//!
//! Entries live in the local database's `journal` table, sealed with the
//! storage key like everything else there. They are never put in a
//! document or an envelope, so nothing of them reaches the relay or the
//! partner; `cove wipe` removes them with the rest.

use crate::device::{Device, DeviceError};
use crate::localdb::ListTable;
use serde::{Deserialize, Serialize};

/// The longest entry, in characters.
pub const MAX_ENTRY_CHARS: usize = 20_000;

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When it was written (Unix milliseconds).
    pub at: i64,
    /// The note.
    pub text: String,
}

/// Adds an entry, synced to disk before returning.
pub async fn add(device: &Device, text: &str) -> Result<Entry, DeviceError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DeviceError::Invalid("a journal entry needs some text".to_owned()));
    }
    if text.chars().count() > MAX_ENTRY_CHARS {
        return Err(DeviceError::Invalid(format!(
            "a journal entry holds at most {MAX_ENTRY_CHARS} characters"
        )));
    }
    let entry = Entry { at: device.now_ms(), text: text.to_owned() };
    // Not through `Device::write`: the journal is not part of the state the
    // device holds in memory, so no other process needs to reload for it.
    let mut tx = device.local().begin().await?;
    tx.push(ListTable::Journal, &entry)?;
    tx.commit().await?;
    Ok(entry)
}

/// Every entry, oldest first.
pub async fn list(device: &Device) -> Result<Vec<Entry>, DeviceError> {
    Ok(device
        .local()
        .list::<Entry>(ListTable::Journal)
        .await?
        .into_iter()
        .map(|(_, e)| e)
        .collect())
}
