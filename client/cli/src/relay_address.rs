//! The relay address a person gives `init`, `join` and `recover`, with
//! what to trust for its certificate, as the device stores it.

use anyhow::bail;
use clap::Args;
use cove_client::transport::tls;
use std::path::PathBuf;

/// How to trust the relay's certificate, and consent to plain `ws://`.
#[derive(Debug, Args)]
pub(crate) struct TrustArgs {
    /// Trust exactly the relay certificate with this SHA-256 fingerprint
    /// (what `cove-server gen-cert` printed), instead of this machine's
    /// certificate authorities. For wss:// only.
    #[arg(long, value_name = "FINGERPRINT", conflicts_with = "relay_ca")]
    pub(crate) relay_cert_sha256: Option<String>,
    /// Trust the certificate authorities in this PEM file, instead of this
    /// machine's. For wss:// only.
    #[arg(long, value_name = "FILE")]
    pub(crate) relay_ca: Option<PathBuf>,
    /// Allow plain ws:// to a relay that is not on this machine. It is not
    /// encrypted: see the warning it prints.
    #[arg(long)]
    pub(crate) allow_plain_ws: bool,
}

/// What plain `ws://` exposes, said whenever one is allowed.
const PLAIN_WS: &str = "ws:// is not encrypted: anyone on the network path sees when and how much your devices sync, can burn a pairing code, and can inject the relay's unsigned messages (the plan itself stays end-to-end encrypted and signed)";

/// The address to store: `relay`, with the pin or the authorities' file
/// after a `#` (see `cove_client::transport::tls`). A QR code's text may
/// already carry one.
pub(crate) fn with_trust(relay: &str, trust: &TrustArgs) -> anyhow::Result<String> {
    let (base, given) = tls::split(relay)?;
    if matches!(given, tls::Trust::CaFile(_)) {
        // A path on this machine comes from this person, never from text
        // someone else made.
        bail!("give a certificate authorities' file with --relay-ca, not inside the address");
    }
    let secure = base.to_ascii_lowercase().starts_with("wss://");
    if !secure && (trust.relay_cert_sha256.is_some() || trust.relay_ca.is_some()) {
        bail!("a certificate can only be pinned for a wss:// relay address");
    }
    if !secure {
        let origin = cove_client::transport::endpoint(base)?.1;
        if !on_this_machine(&origin) {
            let host = origin.as_str();
            if !trust.allow_plain_ws {
                bail!(
                    "{PLAIN_WS}; use a wss:// address, or pass --allow-plain-ws if the network between your devices and {host} is yours alone"
                );
            }
            eprintln!("Warning: {PLAIN_WS}.");
        }
    }
    if let Some(pin) = &trust.relay_cert_sha256 {
        let Some(bytes) = tls::parse_fingerprint(pin) else {
            bail!(
                "{pin:?} is not a SHA-256 fingerprint: it is 64 hexadecimal digits, as cove-server gen-cert prints it"
            );
        };
        return Ok(format!("{base}#sha256={}", cove_shared::codec::to_hex(&bytes)));
    }
    if let Some(file) = &trust.relay_ca {
        let path = std::fs::canonicalize(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
        return Ok(format!("{base}#ca={}", path.display()));
    }
    Ok(relay.to_owned())
}

/// Whether a `ws://` origin names this machine: `localhost`, or a loopback
/// address, exactly (never a name that merely starts like one).
fn on_this_machine(origin: &str) -> bool {
    let authority = origin.trim_start_matches("ws://");
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::on_this_machine;

    #[test]
    fn only_this_machine_is_this_machine() {
        for here in
            ["ws://127.0.0.1:2683", "ws://localhost:2683", "ws://[::1]:2683", "ws://127.8.9.10"]
        {
            assert!(on_this_machine(here), "{here}");
        }
        for away in
            ["ws://localhost.evil.example", "ws://127.0.0.1.nip.io:2683", "ws://192.0.2.1:2683"]
        {
            assert!(!on_this_machine(away), "{away}");
        }
    }
}
