//! `cove recover`, `cove phrase new`, and how a recovery phrase is shown.

use crate::args::RecoverArgs;
use crate::output::Printer;
use crate::{prompt, unlock};
use cove_client::home::Home;
use cove_client::keystore::KdfParams;
use serde_json::json;

/// A recovery phrase as a person should first see it: numbered words, and
/// what it is for, where to keep it, and what to do if it leaks.
pub(crate) fn phrase_text(phrase: &str) -> String {
    let mut text =
        String::from("Your recovery phrase. It is shown once; write it down on paper now:\n\n");
    let words: Vec<&str> = phrase.split_whitespace().collect();
    for (row, chunk) in words.chunks(4).enumerate() {
        let cells: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{:>2}. {w:<9}", row * 4 + i + 1))
            .collect();
        text.push_str("  ");
        text.push_str(cells.join(" ").trim_end());
        text.push('\n');
    }
    text.push_str(
        "\nWith it, and nothing else, you can make a new device of yours (`cove recover`) if you \
         lose every device or forget your passphrase; your partner cannot do that for you. \
         Keep it somewhere private and away from your devices. Anyone who has it can read the \
         plan and add a device as you: if someone else may have seen it, run `cove phrase new` \
         on one of your devices.\n",
    );
    text
}

/// `cove recover`.
pub(crate) async fn recover(home: &Home, out: &Printer, args: RecoverArgs) -> anyhow::Result<()> {
    // The phrase is checked before anything else is asked or made.
    let phrase = prompt::recovery_phrase()?;
    cove_shared::phrase::decode(&phrase)
        .map_err(|e| anyhow::anyhow!("{e}; nothing was created"))?;
    if home.exists() {
        return Err(cove_client::device::DeviceError::AlreadyExists(
            home.root().display().to_string(),
        )
        .into());
    }
    let device_name = crate::devices::device_name(args.device)?;
    let passphrase = prompt::passphrase(true)?;
    let name = args.name.as_deref().unwrap_or("Partner");
    let recovered = cove_client::recovery::recover(
        home,
        &passphrase,
        &crate::relay_address::with_trust(&args.relay, &args.trust)?,
        &phrase,
        name,
        KdfParams::default(),
    )
    .await?;
    let mut recovered = recovered;
    crate::devices::name_new_device(&mut recovered.device, &device_name, &mut recovered.sync_error)
        .await;
    let device = &recovered.device;
    let fingerprint = device.id().fingerprint();
    out.emit(
        &json!({
            "plan": device.plan().to_string(),
            "device": device.id().to_string(),
            "fingerprint": fingerprint,
            "partner": recovered.partner.to_string(),
            "device_name": device_name,
            "synced": recovered.sync_error.is_none(),
            "error": recovered.sync_error.as_ref().map(ToString::to_string),
        }),
        || {
            let mut text = format!(
                "This device, {device_name:?} ({fingerprint}), is back in the plan as one of your devices.\n\
                 If a lost device might be found by someone else, remove it: `cove device list`, then `cove device revoke`.",
            );
            if let Some(error) = &recovered.sync_error {
                text.push_str(&format!(
                    "\nThe first sync did not finish ({error}); run `cove sync` to bring the plan over."
                ));
            }
            text
        },
    );
    Ok(())
}

/// `cove phrase new`.
pub(crate) async fn new_phrase(home: &Home, out: &Printer, yes: bool) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    prompt::confirm(
        "Your recovery phrase will be replaced: the old one stops working, and every device moves to a new key.",
        "replace",
        yes,
    )?;
    let phrase = cove_client::sync::new_phrase(&mut device).await?;
    out.emit(&json!({ "recovery_phrase": phrase.as_str() }), || {
        format!("The old phrase no longer works.\n\n{}", phrase_text(&phrase))
    });
    Ok(())
}
