//! TLS for `wss://` relays (rustls, never OpenSSL), and how a device
//! decides to trust the relay's certificate.
//!
//! The relay address may carry, after a `#` that never leaves the device,
//! what to trust instead of this machine's root certificates:
//! - `wss://relay.example:8443#sha256=HEX`: exactly the certificate with
//!   this SHA-256 fingerprint (a self-signed one from `cove-server
//!   gen-cert`), which must still be valid and name the host;
//! - `wss://relay.example:8443#ca=/path/ca.pem`: certificates issued by
//!   the authorities in that file.
//!
//! Without either, the platform's roots decide, as a browser's would.

use super::TransportError;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// What a device trusts for one relay address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// This machine's root certificates.
    Platform,
    /// Exactly one certificate, by its SHA-256 fingerprint.
    Pin([u8; 32]),
    /// The authorities in a PEM file.
    CaFile(PathBuf),
}

/// Splits a relay address into the address proper and what to trust.
pub fn split(address: &str) -> Result<(&str, Trust), TransportError> {
    let bad = || TransportError::BadUrl(address.to_owned());
    let Some((url, fragment)) = address.split_once('#') else {
        return Ok((address, Trust::Platform));
    };
    let trust = if let Some(hex) = fragment.strip_prefix("sha256=") {
        Trust::Pin(parse_fingerprint(hex).ok_or_else(bad)?)
    } else if let Some(path) = fragment.strip_prefix("ca=") {
        Trust::CaFile(PathBuf::from(path))
    } else {
        return Err(bad());
    };
    if !url.to_ascii_lowercase().starts_with("wss://") {
        return Err(bad());
    }
    Ok((url, trust))
}

/// The address as another device may use it: a pin travels (inside the
/// encrypted pairing, or a QR code the partner scans), a path to this
/// machine's authorities' file does not.
pub fn shareable(address: &str) -> String {
    match split(address) {
        Ok((url, Trust::CaFile(_))) => url.to_owned(),
        _ => address.to_owned(),
    }
}

/// The largest authorities' file a device reads (1 MiB).
const MAX_CA_FILE: u64 = 1024 * 1024;

/// A relay address as a person reads it: the address, and how its
/// certificate is trusted (or that it is not encrypted).
pub fn describe(address: &str) -> String {
    match split(address) {
        Ok((url, Trust::Pin(pin))) => {
            format!("{url} (certificate pinned: SHA-256 {})", cove_shared::codec::to_hex(&pin))
        }
        Ok((url, Trust::CaFile(path))) => {
            format!("{url} (certificate authorities from {})", path.display())
        }
        Ok((url, Trust::Platform)) if url.starts_with("ws://") => format!("{url} (not encrypted)"),
        _ => address.to_owned(),
    }
}

pub use cove_shared::tls_pin::{fingerprint, parse as parse_fingerprint};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// This machine's root certificates, read once.
fn platform_roots() -> Result<Arc<RootCertStore>, TransportError> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    if let Some(roots) = ROOTS.get() {
        return Ok(Arc::clone(roots));
    }
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(TransportError::Certificate(
            "this machine has no trusted root certificates (install the ca-certificates package), so no wss:// relay can be checked; or pin the relay's certificate with --relay-cert-sha256".into(),
        ));
    }
    Ok(Arc::clone(ROOTS.get_or_init(|| Arc::new(roots))))
}

/// The client configuration for `trust`; `seen` receives the fingerprint
/// of the certificate the relay presents, for the error sentence.
pub(super) fn client_config(
    trust: &Trust,
    seen: Arc<Mutex<Option<String>>>,
) -> Result<Arc<ClientConfig>, TransportError> {
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::Platform => webpki(platform_roots()?)?,
        Trust::CaFile(path) => {
            let unreadable = |e: String| {
                TransportError::Certificate(format!(
                    "cannot read the certificate authorities in {}: {e}",
                    path.display()
                ))
            };
            // A regular file of bounded size: never a device or a pipe.
            let meta = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
            if !meta.is_file() || meta.len() > MAX_CA_FILE {
                return Err(unreadable("it is not a regular file of at most 1 MiB".into()));
            }
            let pem = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                roots
                    .add(cert.map_err(|e| unreadable(e.to_string()))?)
                    .map_err(|e| unreadable(e.to_string()))?;
            }
            webpki(Arc::new(roots))?
        }
        Trust::Pin(pin) => Arc::new(Pinned { pin: *pin, provider: provider() }),
    };
    let verifier = Arc::new(Watching { inner: verifier, seen });
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Certificate(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn webpki(roots: Arc<RootCertStore>) -> Result<Arc<dyn ServerCertVerifier>, TransportError> {
    WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map(|v| v as Arc<dyn ServerCertVerifier>)
        .map_err(|e| TransportError::Certificate(e.to_string()))
}

/// Records the fingerprint of the certificate presented, then asks `inner`.
#[derive(Debug)]
struct Watching {
    inner: Arc<dyn ServerCertVerifier>,
    seen: Arc<Mutex<Option<String>>>,
}

impl ServerCertVerifier for Watching {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(fingerprint(end_entity));
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Trusts exactly the certificate with this fingerprint, while it is valid
/// and names the host: it is checked as its own (self-signed) authority.
#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if <[u8; 32]>::from(Sha256::digest(end_entity.as_ref())) != self.pin {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        let mut roots = RootCertStore::empty();
        roots.add(end_entity.clone().into_owned())?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&self.provider))
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// One sentence for a TLS failure while connecting, or `None` if `error`
/// was not about the certificate.
pub(super) fn explain(
    error: &tokio_tungstenite::tungstenite::Error,
    trust: &Trust,
    seen: &Mutex<Option<String>>,
) -> Option<String> {
    use tokio_tungstenite::tungstenite::Error;
    let Error::Io(io) = error else { return None };
    let rustls::Error::InvalidCertificate(reason) =
        io.get_ref()?.downcast_ref::<rustls::Error>()?
    else {
        return None;
    };
    let presented = seen.lock().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or_default();
    Some(match (reason, trust) {
        (CertificateError::ApplicationVerificationFailure, Trust::Pin(pin)) => format!(
            "the relay presented a certificate with SHA-256 fingerprint {presented}, but this device pins {}; if the relay's certificate was replaced on purpose, pin the new fingerprint, otherwise someone may be impersonating the relay",
            cove_shared::codec::to_hex(pin)
        ),
        (CertificateError::Expired | CertificateError::ExpiredContext { .. }, _) => format!(
            "the relay's certificate (SHA-256 {presented}) has expired; its operator must renew it (cove-server gen-cert, or the certificate authority)"
        ),
        (CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }, _) => {
            format!(
                "the relay's certificate (SHA-256 {presented}) is not valid yet; check this machine's clock"
            )
        }
        (
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            _,
        ) => format!(
            "the relay's certificate (SHA-256 {presented}) is not for this address; use the name the certificate was made for"
        ),
        (CertificateError::UnknownIssuer, Trust::Platform) => format!(
            "the relay's certificate (SHA-256 {presented}) is not signed by an authority this machine trusts; if the relay uses a self-signed certificate, compare this fingerprint with the one cove-server gen-cert printed on the relay's own machine, and pin that one (--relay-cert-sha256) only if they are the same"
        ),
        (other, _) => {
            format!("the relay's certificate (SHA-256 {presented}) was refused: {other:?}")
        }
    })
}
