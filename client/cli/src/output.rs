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
                Ok(line) => println!("{line}"),
                Err(error) => eprintln!("cannot print JSON: {error}"),
            }
        } else {
            let text = human();
            if !text.is_empty() {
                println!("{}", terminal_safe(&text));
            }
        }
    }

    /// Prints a line of text for people; nothing in JSON mode.
    pub(crate) fn say(&self, text: &str) {
        if !self.json {
            println!("{}", terminal_safe(text));
        }
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
