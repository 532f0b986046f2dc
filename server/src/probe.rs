//! `cove-server health`: asks the relay at its own listen address for
//! `/healthz`, for container and service health checks. When the relay
//! serves TLS, the probe speaks TLS too and trusts exactly the certificate
//! in the relay's own `tls_cert` file (a renewal that has not been taken up
//! yet fails one probe; the relay takes it up within seconds).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long the probe waits to connect, and for each read.
const WAIT: Duration = Duration::from_secs(5);

/// Asks the relay listening on `listen` whether it is healthy; over TLS,
/// trusting only the certificate in `tls_cert`, when that is given.
pub fn health(listen: SocketAddr, tls_cert: Option<&Path>) -> Result<(), String> {
    let mut address = listen;
    if address.ip().is_unspecified() {
        address.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    let stream = TcpStream::connect_timeout(&address, WAIT)
        .map_err(|e| format!("the relay at {address} is not answering: {e}"))?;
    stream.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let response = match tls_cert {
        None => exchange(stream, &request),
        Some(cert) => {
            let connection = client(cert, address)?;
            exchange(rustls::StreamOwned::new(connection, stream), &request)
        }
    }
    .map_err(|e| format!("the relay at {address} did not answer: {e}"))?;
    if response.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        let status = response.lines().next().unwrap_or("no answer");
        Err(format!("the relay at {address} is not healthy: {status}"))
    }
}

fn exchange(mut stream: impl Read + Write, request: &str) -> std::io::Result<String> {
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    let mut response = Vec::new();
    // A peer may end TLS without close_notify once the answer is whole.
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}

fn client(cert: &Path, address: SocketAddr) -> Result<rustls::ClientConnection, String> {
    let expected = CertificateDer::pem_file_iter(cert)
        .ok()
        .and_then(|mut certs| certs.next())
        .and_then(Result::ok)
        .ok_or_else(|| format!("cannot read the certificate {}", cert.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Exactly { expected, provider: Arc::clone(&provider) });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    rustls::ClientConnection::new(Arc::new(config), ServerName::from(address.ip()))
        .map_err(|e| e.to_string())
}

/// Trusts exactly one certificate, whatever it names: the probe asks the
/// relay it is configured as, at its own address.
#[derive(Debug)]
struct Exactly {
    expected: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Exactly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
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
