//! What commands print: text for people, JSON for scripts.

use serde::Serialize;

/// Prints either human text or JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Printer {
    json: bool,
}

impl Printer {
    /// A printer; `json` selects JSON output.
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints `value` as one line of JSON, or `human()` as text.
    pub(crate) fn emit<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            match serde_json::to_string(value) {
                Ok(line) => write_out(&format!("{line}\n")),
                Err(error) => eprintln!("cove: cannot print JSON: {error}"),
            }
        } else {
            let text = human();
            if !text.is_empty() {
                write_out(&format!("{}\n", terminal_safe(&text)));
            }
        }
    }

    /// Prints a line of text for people; nothing in JSON mode.
    pub(crate) fn say(&self, text: &str) {
        if !self.json {
            write_out(&format!("{}\n", terminal_safe(text)));
        }
    }
}

/// Writes `text` to standard output. A reader that has gone away
/// (`cove plan show | head -1`) ends the command quietly and successfully:
/// what was done is done, and the reader took what it wanted. Any other
/// failure to write says so in one sentence.
pub(crate) fn write_out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("cove: cannot write to standard output: {error}");
        std::process::exit(1);
    }
}

/// Text as it may reach a terminal: plan text comes from the other partner's
/// device, and escape sequences in it could hide or fake lines, or reach the
/// clipboard. Control characters are dropped, except line breaks, tabs, and
/// the bell that announces a signal.
pub(crate) fn terminal_safe(text: &str) -> String {
    text.chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\x07')).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_never_reach_the_terminal() {
        let hostile = "Tea\x1b]52;c;aGVsbG8=\x07\x1b[2K\u{9b}31m done\nnext\tline\r";
        assert_eq!(terminal_safe(hostile), "Tea]52;c;aGVsbG8=\x07[2K31m done\nnext\tline");
    }
}
