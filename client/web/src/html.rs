//! HTML building blocks: escaping, the page frame, forms.

use crate::Note;
use crate::assets::{SCRIPT_PATH, STYLE_PATH};
use std::fmt::Write;

/// Text made safe for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// `text` as one segment of a path: every byte but letters, digits, `-`,
/// `_` and `~` percent-encoded, so that an id can never add a segment or a
/// query. (A segment of dots alone would still read as `..`; the plan
/// reader drops every key that is not an item id, so none reaches here.)
pub fn seg(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// The navigation: (path, label).
pub const NAV: &[(&str, &str)] = &[
    ("/", "Plan"),
    ("/now", "Right now"),
    ("/s/needs", "Needs"),
    ("/s/boundaries", "Boundaries"),
    ("/s/menu", "Menu"),
    ("/s/sequence", "Sequence"),
    ("/s/signals", "Signals"),
    ("/s/vocabulary", "Vocabulary"),
    ("/checkin", "Check-in"),
    ("/deescalation", "De-escalation"),
    ("/sessions", "Sessions"),
    ("/reviews", "Reviews"),
    ("/journal", "Journal"),
    ("/status", "Status"),
];

/// A whole page. `body` is already HTML; `note` is a form's outcome.
pub fn page(title: &str, path: &str, body: &str, note: Option<&Note>, class: &str) -> String {
    let mut nav = String::new();
    for (href, label) in NAV {
        let current = if *href == path { " aria-current=\"page\"" } else { "" };
        let _ = write!(nav, "<a href=\"{href}\"{current}>{label}</a>");
    }
    let flash = match note {
        Some(Note { text, error: true }) => {
            format!("<p class=\"error\" role=\"alert\">{}</p>", esc(text))
        }
        Some(Note { text, error: false }) => {
            format!("<p class=\"flash\" role=\"status\">{}</p>", esc(text))
        }
        None => String::new(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Cove</title><link rel=\"stylesheet\" href=\"{STYLE_PATH}\">\
         <script src=\"{SCRIPT_PATH}\" defer></script></head>\
         <body class=\"{class}\"><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header><nav aria-label=\"Sections\">{nav}</nav></header>\
         <div id=\"stop\" role=\"alertdialog\" aria-live=\"assertive\" hidden></div>\
         <div id=\"signal\" role=\"alert\" aria-live=\"assertive\"></div>\
         <div id=\"notice\" role=\"status\" aria-live=\"polite\"></div>\
         <main id=\"main\" tabindex=\"-1\"><h1>{title}</h1>{flash}{body}</main></body></html>",
        title = esc(title),
    )
}

/// A POST form with the page's anti-forgery field.
pub fn form(action: &str, csrf: &str, inner: &str, button: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">{inner}<button type=\"submit\">{}</button></form>",
        esc(action),
        esc(csrf),
        esc(button)
    )
}

/// A small inline form with one button (archive, restore, and the like).
pub fn button(action: &str, csrf: &str, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" class=\"quiet\">{}</button></form>",
        esc(action),
        esc(csrf),
        esc(label)
    )
}

/// A labelled text input.
pub fn text_input(name: &str, label: &str, value: &str, required: bool) -> String {
    let required = if required { " required" } else { "" };
    format!(
        "<label>{}<input type=\"text\" name=\"{name}\" value=\"{}\" maxlength=\"4000\"{required}></label>",
        esc(label),
        esc(value)
    )
}

/// A labelled textarea.
pub fn textarea(name: &str, label: &str, value: &str) -> String {
    format!(
        "<label>{}<textarea name=\"{name}\" rows=\"3\" maxlength=\"20000\">{}</textarea></label>",
        esc(label),
        esc(value)
    )
}

/// A labelled select; `none` adds an empty first choice with that label.
pub fn select(
    name: &str,
    label: &str,
    choices: &[&str],
    current: &str,
    none: Option<&str>,
) -> String {
    let mut options = String::new();
    if let Some(none) = none {
        let _ = write!(options, "<option value=\"\">{}</option>", esc(none));
    }
    for c in choices {
        let selected = if *c == current { " selected" } else { "" };
        let _ = write!(options, "<option value=\"{c}\"{selected}>{c}</option>");
    }
    format!("<label>{}<select name=\"{name}\">{options}</select></label>", esc(label))
}
