//! What a device checks of every frame the relay sends, before anything
//! else reads it: positions within the range the protocol allows, an origin
//! no longer than it allows, and text that is safe to print.

use super::TransportError;
use cove_shared::wire::{self, Cursor, RelayToClient};

/// The largest cursor the protocol allows (section 1): every store holds
/// cursors as signed 64-bit integers.
const MAX_CURSOR: u64 = i64::MAX as u64;

/// Text from the relay, fit to print: control characters and invisible
/// formatting characters (bidirectional overrides and isolates, zero-width
/// characters) dropped, length capped. A relay must not be able to make a
/// terminal show text in an order other than the one it sent.
pub(super) fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() && !invisible(*c))
        .take(wire::MAX_ERROR_TEXT_LEN)
        .collect()
}

/// Unicode format characters that change how text around them is shown.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// `message` with its text made printable, or an error if it breaks the
/// protocol's bounds.
pub(super) fn checked(message: RelayToClient) -> Result<RelayToClient, TransportError> {
    let cursor_ok = |c: &Cursor| c.0 <= MAX_CURSOR;
    let bounded = match &message {
        RelayToClient::Challenge { origin, .. } => origin.len() <= wire::MAX_ORIGIN_LEN,
        RelayToClient::Stored { cursor, .. } => cursor_ok(cursor),
        RelayToClient::Page { items, head, compacted, .. } => {
            cursor_ok(head) && cursor_ok(compacted) && items.iter().all(|i| cursor_ok(&i.cursor))
        }
        RelayToClient::Deliver { item, .. } => cursor_ok(&item.cursor),
        RelayToClient::Snapshot { snapshot, .. } => {
            snapshot.as_ref().is_none_or(|s| cursor_ok(&s.covers))
        }
        _ => true,
    };
    if !bounded {
        return Err(TransportError::Protocol("a value beyond the bounds of the protocol"));
    }
    Ok(match message {
        RelayToClient::Error { request, code, message } => {
            RelayToClient::Error { request, code, message: printable(&message) }
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cove_shared::PlanId;
    use cove_shared::wire::{ErrorCode, Nonce32};

    #[test]
    fn relay_text_cannot_reorder_a_terminal() {
        let text = "fine\u{202E}txt.exe\u{2066}\u{200B}\u{0007}\nend";
        assert_eq!(printable(text), "finetxt.exeend");
        let error =
            RelayToClient::Error { request: None, code: ErrorCode::Internal, message: text.into() };
        match checked(error).unwrap() {
            RelayToClient::Error { message, .. } => assert_eq!(message, "finetxt.exeend"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn positions_and_origins_beyond_the_protocol_are_refused() {
        let plan = PlanId::from_bytes([1; 16]);
        let page = |head: u64| RelayToClient::Page {
            request: 1,
            plan,
            items: Vec::new(),
            head: Cursor(head),
            compacted: Cursor(0),
        };
        assert!(checked(page(MAX_CURSOR)).is_ok());
        assert!(checked(page(MAX_CURSOR + 1)).is_err());
        let stored =
            RelayToClient::Stored { request: 1, cursor: Cursor(u64::MAX), duplicate: false };
        assert!(checked(stored).is_err());
        let challenge = |n: usize| RelayToClient::Challenge {
            version: wire::PROTOCOL_VERSION,
            origin: "w".repeat(n),
            nonce: Nonce32([0; 32]),
        };
        assert!(checked(challenge(wire::MAX_ORIGIN_LEN)).is_ok());
        assert!(checked(challenge(wire::MAX_ORIGIN_LEN + 1)).is_err());
    }
}
