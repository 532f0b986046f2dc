//! `cove journal add|list`: private notes that never leave this device.

use super::output::Printer;
use super::unlock;
use crate::home::Home;
use crate::journal;

/// `cove journal add`.
pub async fn add(home: &Home, out: &Printer, text: &str) -> anyhow::Result<()> {
    let text = super::prompt::text_or_stdin(text)?;
    let device = unlock(home).await?;
    let entry = journal::add(&device, &text).await?;
    out.emit(&entry, || "Written in this device's journal. It is never sent anywhere.".to_owned());
    Ok(())
}

/// `cove journal list`.
pub async fn list(home: &Home, out: &Printer) -> anyhow::Result<()> {
    let device = unlock(home).await?;
    let entries = journal::list(&device).await?;
    out.emit(&entries, || {
        if entries.is_empty() {
            return "The journal on this device is empty.".to_owned();
        }
        entries
            .iter()
            .map(|e| {
                let day = crate::plan::keys::format_day(crate::plan::keys::today(e.at));
                format!("{day}\n{}\n", e.text)
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}
