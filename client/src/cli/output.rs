//! What commands print: text for people, JSON for scripts.

use serde::Serialize;

/// Prints either human text or JSON.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    json: bool,
}

impl Printer {
    /// A printer; `json` selects JSON output.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether output is JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Prints `value` as one line of JSON, or `human()` as text.
    pub fn emit<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
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
    pub fn say(&self, text: &str) {
        if !self.json {
            println!("{}", terminal_safe(text));
        }
    }
}

/// Text as it may reach a terminal: plan text comes from the other partner's
/// device, and escape sequences in it could hide or fake lines, or reach the
/// clipboard. Control characters are dropped, except line breaks, tabs, and
/// the bell that announces a signal.
pub fn terminal_safe(text: &str) -> String {
    text.chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\x07')).collect()
}

/// A Unix time (seconds) as "3 minutes ago" and similar.
pub fn ago(then: i64, now: i64) -> String {
    let secs = (now - then).max(0);
    match secs {
        0..=59 => "just now".into(),
        60..=3599 => plural(secs / 60, "minute"),
        3600..=86_399 => plural(secs / 3600, "hour"),
        _ => plural(secs / 86_400, "day"),
    }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 { format!("1 {unit} ago") } else { format!("{n} {unit}s ago") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_never_reach_the_terminal() {
        let hostile = "Tea\x1b]52;c;aGVsbG8=\x07\x1b[2K\u{9b}31m done\nnext\tline\r";
        assert_eq!(terminal_safe(hostile), "Tea]52;c;aGVsbG8=\x07[2K31m done\nnext\tline");
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago(100, 100), "just now");
        assert_eq!(ago(0, 60), "1 minute ago");
        assert_eq!(ago(0, 7200), "2 hours ago");
        assert_eq!(ago(0, 3 * 86_400), "3 days ago");
        assert_eq!(ago(100, 50), "just now");
    }
}
