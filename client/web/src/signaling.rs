//! Sending a signal and answering one. Unlike other forms, these wait (a
//! few seconds at most) for the relay: the page then says truthfully
//! whether the signal was sent, and never that it was when it was not.

use crate::Ui;
use crate::actions::{Form, back, forged, genuine, return_to};
use crate::pages::fresh;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use cove_client::device::Device;
use cove_client::payload::Answer;
use cove_client::plan;
use cove_client::sync::{self, DELIVER_WITHIN, Delivery};
use cove_shared::DeviceId;
use std::sync::Arc;

/// Sends what was just saved and says how far it got: `done` on success,
/// and on failure a sentence that leaves no doubt it was not sent.
async fn deliver(device: &mut Device, done: String, what: &str) -> Result<String, String> {
    let partner = device.current_plan().name(device.partner().other());
    match sync::deliver(device, DELIVER_WITHIN).await {
        Delivery::Sent => Ok(done),
        Delivery::NotSent(reason) => Err(format!(
            "{what} was NOT sent: {reason}. It is saved on this device and goes out as soon as the relay answers; if it is urgent, reach {partner} another way."
        )),
        Delivery::Removed(removal) => {
            Err(format!("{what} was not sent, and will not be: {removal}"))
        }
    }
}

/// `POST /signal` with `name`.
pub async fn signal(State(ui): State<Arc<Ui>>, body: Bytes) -> Response {
    let form = Form::parse(&body);
    if !genuine(&ui, &form) {
        return forged();
    }
    let path = return_to(&form, "/now");
    let mut device = fresh(&ui).await;
    let given = form.get("name").unwrap_or("");
    let Some(name) = plan::signals::agreed(&device.current_plan(), given) else {
        let refused = format!(
            "'{}' is not a signal you have agreed on; the Signals page lists them.",
            given.trim()
        );
        return back(&ui, &path, Err(refused));
    };
    let outcome = match device.signal(&name, 30 * 60_000).await {
        Err(error) => Err(format!("Signal '{name}' was not sent: {error}.")),
        Ok(_) => {
            let partner = device.current_plan().name(device.partner().other());
            let done = format!(
                "Signal '{name}' sent: the relay stored it. This page shows when {partner}'s device has it."
            );
            deliver(&mut device, done, &format!("Signal '{name}'")).await
        }
    };
    drop(device);
    ui.changed();
    back(&ui, &path, outcome)
}

/// `POST /signal/answer` with `from` (the device), `sent_at` and `answer`
/// (`acknowledge` or `dismiss`).
pub async fn answer(State(ui): State<Arc<Ui>>, body: Bytes) -> Response {
    let form = Form::parse(&body);
    if !genuine(&ui, &form) {
        return forged();
    }
    let path = return_to(&form, "/now");
    let from = form.get("from").and_then(|f| f.parse::<DeviceId>().ok());
    let sent_at = form.get("sent_at").and_then(|t| t.parse::<i64>().ok());
    let answer = match form.get("answer") {
        Some("acknowledge") => Some(Answer::Acknowledged),
        Some("dismiss") => Some(Answer::Dismissed),
        _ => None,
    };
    let (Some(from), Some(sent_at), Some(answer)) = (from, sent_at, answer) else {
        return back(&ui, &path, Err("That answer names no signal: reload the page.".into()));
    };
    let mut device = fresh(&ui).await;
    let partner = device.current_plan().name(device.partner().other());
    let (done, what) = match answer {
        Answer::Acknowledged => (
            format!(
                "You acknowledged it: the relay has your answer, and {partner}'s device shows it when it next syncs."
            ),
            "Your acknowledgement".to_owned(),
        ),
        Answer::Dismissed => (
            format!(
                "You dismissed it: the relay has your answer, and {partner}'s device shows it when it next syncs."
            ),
            "Your answer".to_owned(),
        ),
    };
    let outcome = match device.answer_signal(from, sent_at, answer).await {
        Err(error) => Err(format!("{what} counts on this device, but was not sent: {error}.")),
        Ok(_) => deliver(&mut device, done, &what).await,
    };
    drop(device);
    ui.changed();
    back(&ui, &path, outcome)
}
