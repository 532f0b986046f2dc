//! `cove init`, `cove pair` and `cove join`.

use crate::args::{InitArgs, JoinArgs, PairArgs};
use crate::output::Printer;
use crate::{devices, prompt, recovery, unlock};
use anyhow::bail;
use cove_client::device::Device;
use cove_client::home::Home;
use cove_client::keystore::KdfParams;
use cove_client::pairing::{self, Invite};
use serde_json::json;

/// The prefix of the text a pairing QR code holds: `cove-join:CODE@RELAY`.
pub(crate) const QR_PREFIX: &str = "cove-join:";

/// `cove init`.
pub(crate) async fn init(home: &Home, out: &Printer, args: InitArgs) -> anyhow::Result<()> {
    if home.exists() {
        return Err(cove_client::device::DeviceError::AlreadyExists(
            home.root().display().to_string(),
        )
        .into());
    }
    let relay = crate::relay_address::with_trust(&args.relay, &args.trust)?;
    let device_name = devices::device_name(args.device)?;
    let passphrase = prompt::passphrase(true)?;
    let mut device =
        Device::init(home, &passphrase, &relay, &args.name, KdfParams::default()).await?;
    if args.template.is_some() {
        let who = cove_client::plan::items::author(&device);
        device
            .edit(cove_shared::DocId::Shared, |tx| {
                cove_client::plan::template::starter(tx, who).map_err(Into::into)
            })
            .await?;
    }
    // The plan is made: nothing after this may keep the phrase from showing.
    let named = device.set_device_name(&device_name).await.err();
    let registered = super::syncing::sync_now(&mut device).await;
    let fingerprint = device.id().fingerprint();
    let phrase = device.recovery_phrase().unwrap_or_default();
    out.emit(
        &json!({
            "plan": device.plan().to_string(),
            "device": device.id().to_string(),
            "fingerprint": fingerprint,
            "relay": device.relay(),
            "registered": registered.is_ok(),
            "error": registered.as_ref().err().map(ToString::to_string),
            "recovery_phrase": phrase.as_str(),
            "device_name": device_name,
        }),
        || {
            let mut text = format!(
                "This device, {device_name:?} ({fingerprint}), is ready, with a new plan.\n\n"
            );
            text.push_str(&recovery::phrase_text(&phrase));
            if let Some(error) = &named {
                text.push_str(&format!(
                    "This device could not be named yet ({error}); `cove device name` names it.\n"
                ));
            }
            match &registered {
                Ok(_) => text.push_str(&format!("The relay at {} now holds the plan, encrypted.\n", device.relay())),
                Err(error) => text.push_str(&format!(
                    "The plan is not on the relay yet: {error}. It is registered at the next `cove sync`.\n"
                )),
            }
            text.push_str("Next: run `cove pair` and read the code it shows to your partner.");
            text
        },
    );
    Ok(())
}

/// `cove pair`.
pub(crate) async fn pair(home: &Home, out: &Printer, args: PairArgs) -> anyhow::Result<()> {
    let mut device = unlock(home).await?;
    let invite = Invite::open(&device, args.own_device).await?;
    let code = invite.code().to_owned();
    let shared = cove_client::transport::tls::shareable(device.relay());
    let qr_text = format!("{QR_PREFIX}{code}@{shared}");
    let whose = if args.own_device { "your other device" } else { "your partner's device" };
    out.emit(&json!({ "code": code, "qr": qr_text, "relay": shared }), || {
        let mut text = format!("Pairing code: {code}\n\n");
        if let Some(qr) = qr(&qr_text) {
            text.push_str(&qr);
            text.push('\n');
        }
        text.push_str(&format!(
            "On {whose}, run:\n  cove join '{shared}' {code}{}\nor scan the code above. Waiting up to 10 minutes...",
            if args.own_device { "" } else { " --name THEIR-NAME" },
        ));
        text
    });
    let meeting = invite.meet(&device).await?;
    let met = meeting.paired().clone();
    let fingerprint = met.device.fingerprint();
    out.emit(
        &json!({
            "device": met.device.to_string(),
            "fingerprint": fingerprint,
            "partner": met.partner.to_string(),
            "safety_code": met.safety_code,
            "confirmed": false,
        }),
        || {
            format!(
                "A device ({fingerprint}) is asking to join.\nSafety code: {}\nNothing of the plan has been shared with it yet.",
                spaced(&met.safety_code)
            )
        },
    );
    if !args.yes && !prompt::safety_code_matches()? {
        meeting.refuse().await?;
        bail!(
            "the safety codes were not confirmed, so the device was not added and nothing was shared with it; start again with `cove pair` if you want to try again"
        );
    }
    let paired = meeting.admit(&mut device).await?;
    out.emit(
        &json!({
            "device": paired.device.to_string(),
            "fingerprint": fingerprint,
            "partner": paired.partner.to_string(),
            "safety_code": paired.safety_code,
            "confirmed": true,
        }),
        || format!("Added {fingerprint} to the plan."),
    );
    Ok(())
}

/// `cove join`.
pub(crate) async fn join(home: &Home, out: &Printer, args: JoinArgs) -> anyhow::Result<()> {
    let (relay, code) = match (args.relay.strip_prefix(QR_PREFIX), args.code) {
        (Some(rest), None) => match rest.split_once('@') {
            Some((code, relay)) => (relay.to_owned(), code.to_owned()),
            None => bail!("{:?} is not the text of a Cove pairing code", args.relay),
        },
        (None, Some(code)) => (args.relay.clone(), code),
        (Some(_), Some(_)) => {
            bail!("give either the QR code's text, or the relay address and the code, not both")
        }
        (None, None) => bail!(
            "the pairing code is missing: cove join RELAY CODE, such as cove join ws://127.0.0.1:2683 482913-lantern-river"
        ),
    };
    let relay = crate::relay_address::with_trust(&relay, &args.trust)?;
    pairing::parse_code(&code)?;
    if home.exists() {
        return Err(cove_client::device::DeviceError::AlreadyExists(
            home.root().display().to_string(),
        )
        .into());
    }
    // On another device of one's own, the partner already has a name: a
    // --name given there names the device (as a person who typed it meant).
    // Both are checked now, before anything is made.
    let given_device = args.device.map(|d| devices::device_name(Some(d))).transpose()?;
    let name_as_device = args.name.clone().and_then(|n| devices::device_name(Some(n)).ok());
    let passphrase = prompt::passphrase(true)?;
    let name = args.name.as_deref().unwrap_or("Partner B");
    let show_code = |code: &str| {
        eprintln!(
            "Safety code: {}\nCheck that the other screen shows the same six digits; waiting for the other device to confirm them...",
            spaced(code)
        );
    };
    let mut joined =
        pairing::join(home, &passphrase, &relay, &code, name, KdfParams::default(), show_code)
            .await?;
    let device_name = match (given_device, joined.new_phrase, name_as_device) {
        (Some(device), _, _) => device,
        (None, false, Some(name)) => name,
        _ => devices::default_device_name(),
    };
    // The device is made: what follows never stops the phrase from showing.
    devices::name_new_device(&mut joined.device, &device_name, &mut joined.sync_error).await;
    let paired = &joined.paired;
    let phrase = if joined.new_phrase { joined.device.recovery_phrase() } else { None };
    out.emit(
        &json!({
            "plan": joined.device.plan().to_string(),
            "device": paired.device.to_string(),
            "fingerprint": paired.device.fingerprint(),
            "partner": paired.partner.to_string(),
            "safety_code": paired.safety_code,
            "synced": joined.sync_error.is_none(),
            "error": joined.sync_error.as_ref().map(ToString::to_string),
            "recovery_phrase": phrase.as_ref().map(|p| p.as_str()),
            "device_name": device_name,
        }),
        || {
            let mut text = format!(
                "This device, {device_name:?} ({}), has joined the plan; the other device confirmed the safety code {}.\n",
                paired.device.fingerprint(),
                spaced(&paired.safety_code)
            );
            if let Some(phrase) = &phrase {
                text.push('\n');
                text.push_str(&recovery::phrase_text(phrase));
            }
            if let Some(error) = &joined.sync_error {
                text.push_str(&format!("\nThe first sync did not finish ({error}); run `cove sync` to bring the plan over."));
            }
            text
        },
    );
    Ok(())
}

/// `123456` as `123 456`, easier to read aloud.
fn spaced(code: &str) -> String {
    if code.len() == 6 { format!("{} {}", &code[..3], &code[3..]) } else { code.to_owned() }
}

/// A QR code for the terminal, two rows per line.
fn qr(text: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

/// `cove relay set`.
pub(crate) async fn set_relay(
    home: &Home,
    out: &Printer,
    relay: &str,
    trust: &crate::relay_address::TrustArgs,
) -> anyhow::Result<()> {
    let address = crate::relay_address::with_trust(relay, trust)?;
    let mut device = unlock(home).await?;
    device.set_relay(&address)?;
    let shown = cove_client::transport::tls::describe(&address);
    let reached = cove_client::sync::check_relay(&device).await;
    out.emit(&json!({ "relay": shown, "reachable": reached.is_ok() }), || match &reached {
        Ok(()) => format!("This device now reaches the relay at {shown}, and it answers."),
        Err(error) => {
            format!("This device now reaches the relay at {shown}; it does not answer yet: {error}")
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safety_codes_are_spaced_and_qr_codes_render() {
        assert_eq!(spaced("012345"), "012 345");
        let qr = qr("cove-join:482913-lantern-river@ws://127.0.0.1:2683").unwrap();
        assert!(qr.lines().count() > 10);
    }
}
