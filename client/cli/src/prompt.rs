//! Asking a person for the passphrase, or for confirmation.

use anyhow::bail;
use std::io::{BufRead, IsTerminal, Write};
use zeroize::Zeroizing;

/// The passphrase: `COVE_PASSPHRASE` if set, else asked for on the terminal
/// (twice when `new`, so that a typo does not lock the person out).
pub(crate) fn passphrase(new: bool) -> anyhow::Result<Zeroizing<String>> {
    if let Some(value) = std::env::var_os("COVE_PASSPHRASE") {
        let Ok(value) = value.into_string() else {
            bail!("COVE_PASSPHRASE is not valid text");
        };
        return Ok(Zeroizing::new(value));
    }
    if !std::io::stdin().is_terminal() {
        bail!("a passphrase is needed: set COVE_PASSPHRASE, or run this in a terminal");
    }
    let first = Zeroizing::new(rpassword::prompt_password(if new {
        "Choose a passphrase for this device: "
    } else {
        "Passphrase: "
    })?);
    if new {
        let again = Zeroizing::new(rpassword::prompt_password("Type it again: ")?);
        if *first != *again {
            bail!("the two passphrases differ; nothing was changed, so try again");
        }
    }
    Ok(first)
}

/// The recovery phrase: `COVE_RECOVERY_PHRASE` if set, else asked for on
/// the terminal without echo, else the first line of standard input.
pub(crate) fn recovery_phrase() -> anyhow::Result<Zeroizing<String>> {
    if let Some(value) = std::env::var_os("COVE_RECOVERY_PHRASE") {
        let Ok(value) = value.into_string() else {
            bail!("COVE_RECOVERY_PHRASE is not valid text");
        };
        return Ok(Zeroizing::new(value));
    }
    if std::io::stdin().is_terminal() {
        return Ok(Zeroizing::new(rpassword::prompt_password("Recovery phrase (24 words): ")?));
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line)
}

/// Asks whether the two screens show the same safety code: a line that
/// says `yes` confirms; anything else, or no answer, refuses.
pub(crate) fn safety_code_matches() -> anyhow::Result<bool> {
    eprint!("Does the other screen show the same six digits? Type yes to add the device: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().eq_ignore_ascii_case("yes"))
}

/// Asks the person to confirm by typing `word`, unless `yes` was given.
pub(crate) fn confirm(what: &str, word: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("this cannot be undone, so it needs confirmation: run it again with --yes");
    }
    eprintln!("{what}");
    eprint!("Type {word} to go ahead: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != word {
        bail!("not confirmed, so nothing was changed");
    }
    Ok(())
}

/// `text`, or, if it is `-`, what standard input holds: private words need
/// not pass through the shell's history or the process list.
pub(crate) fn text_or_stdin(text: &str) -> anyhow::Result<String> {
    if text != "-" {
        return Ok(text.to_owned());
    }
    let mut input = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(std::io::stdin(), 1 << 20), &mut input)
        .map_err(|e| anyhow::anyhow!("cannot read standard input: {e}"))?;
    Ok(input.trim_end_matches(['\n', '\r']).to_owned())
}
