//! `cove journal add|list`: private notes that never leave this device.

use crate::output::Printer;
use crate::unlock;
use cove_client::home::Home;
use cove_client::journal;

/// `cove journal add`.
pub(crate) async fn add(home: &Home, out: &Printer, text: &str) -> anyhow::Result<()> {
    let text = super::prompt::text_or_stdin(text)?;
    let device = unlock(home).await?;
    let entry = journal::add(&device, &text).await?;
    out.emit(&entry, || "Written in this device's journal. It is never sent anywhere.".to_owned());
    Ok(())
}

/// `cove journal list`.
pub(crate) async fn list(home: &Home, out: &Printer) -> anyhow::Result<()> {
    let device = unlock(home).await?;
    let entries = journal::list(&device).await?;
    out.emit(&entries, || {
        if entries.is_empty() {
            return "The journal on this device is empty.".to_owned();
        }
        entries
            .iter()
            .map(|e| {
                let day = cove_client::plan::calendar::format_day(
                    cove_client::plan::calendar::today(e.at),
                );
                format!("{day}\n{}\n", e.text)
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}
