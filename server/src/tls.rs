//! TLS, served by the relay itself (rustls, TLS 1.2 and 1.3), so that a
//! couple's relay on the internet needs no reverse proxy.
//!
//! The certificate and key are PEM files. They are read again on SIGHUP,
//! and whenever either file changes (checked every [`RELOAD_POLL`]), so a
//! renewed certificate takes effect without a restart: each new socket is
//! served with the newest configuration, and sockets already open keep the
//! session they have. A pair that does not load is reported and the
//! previous one kept.
//!
//! `cove-server gen-cert` writes a self-signed pair for devices to pin.

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio_rustls::TlsAcceptor;

/// How often the relay looks whether the certificate or key changed.
pub const RELOAD_POLL: Duration = Duration::from_secs(5);

/// The relay's TLS configuration, reloadable.
#[derive(Debug)]
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Loaded>,
}

#[derive(Debug, Clone)]
struct Loaded {
    config: Arc<ServerConfig>,
    /// The files' modification times when they were read.
    stamps: (Option<SystemTime>, Option<SystemTime>),
    fingerprint: String,
}

impl Tls {
    /// Reads the certificate chain and key at `cert` and `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, String> {
        let loaded = read(cert, key)?;
        tracing::info!(fingerprint = %loaded.fingerprint, "serving TLS");
        Ok(Self { cert: cert.to_owned(), key: key.to_owned(), current: RwLock::new(loaded) })
    }

    /// An acceptor with the newest configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        let loaded = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        TlsAcceptor::from(Arc::clone(&loaded.config))
    }

    /// Reads the files again if `always`, or if either changed since they
    /// were read; keeps the previous pair when the new one does not load.
    pub fn reload(&self, always: bool) {
        let stamps = (modified(&self.cert), modified(&self.key));
        let previous = {
            let loaded = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            loaded.stamps
        };
        if !always && stamps == previous {
            return;
        }
        match read(&self.cert, &self.key) {
            Ok(loaded) => {
                tracing::info!(fingerprint = %loaded.fingerprint, "TLS certificate loaded again");
                *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
            }
            Err(error) => {
                // Said once per change of the files, not at every look.
                let mut current =
                    self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                current.stamps = stamps;
                tracing::error!(%error, "the new TLS certificate or key does not load; still serving the previous one");
            }
        }
    }

    /// Reloads on SIGHUP and when the files change, until `stop` turns true.
    pub fn spawn_reloader(self: &Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let tls = Arc::clone(self);
        tokio::spawn(async move {
            let mut poll = tokio::time::interval(RELOAD_POLL);
            #[cfg(unix)]
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let hung_up = async {
                    match hangup.as_mut() {
                        Some(signal) => signal.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hung_up = std::future::pending::<Option<()>>();
                tokio::select! {
                    _ = poll.tick() => tls.reload(false),
                    _ = hung_up => tls.reload(true),
                    _ = stop.changed() => return,
                }
            }
        });
    }
}

/// For a relay without TLS: takes SIGHUP, so that it does not end the
/// process, and says there is nothing to reload.
pub fn ignore_hangups(mut stop: tokio::sync::watch::Receiver<bool>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        loop {
            tokio::select! {
                _ = hangup.recv() => tracing::info!("SIGHUP: this relay serves no TLS, so there is nothing to reload"),
                _ = stop.changed() => return,
            }
        }
    });
    #[cfg(not(unix))]
    let _ = &mut stop;
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read(cert: &Path, key: &Path) -> Result<Loaded, String> {
    let stamps = (modified(cert), modified(key));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    let first = chain.first().ok_or_else(|| format!("{} holds no certificate", cert.display()))?;
    let fingerprint = fingerprint(first);
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| format!("the certificate and key do not make a TLS configuration: {e}"))?;
    Ok(Loaded { config: Arc::new(config), stamps, fingerprint })
}

pub use cove_shared::tls_pin::fingerprint;

/// What `gen-cert` wrote.
#[derive(Debug)]
pub struct Generated {
    /// The certificate file.
    pub cert: PathBuf,
    /// The key file (readable by its owner only).
    pub key: PathBuf,
    /// The certificate's fingerprint.
    pub fingerprint: String,
}

/// Writes a self-signed certificate for `hosts` (names or addresses) and
/// its key into `dir`, valid from a day ago (for devices whose clock is a
/// little behind) for ten years. Existing files are kept unless `force`:
/// a new certificate locks out every device that pinned the old one.
pub fn generate(hosts: &[String], dir: &Path, force: bool) -> Result<Generated, String> {
    let (cert_path, key_path) = (dir.join("cove-relay.crt"), dir.join("cove-relay.key"));
    if !force && (cert_path.exists() || key_path.exists()) {
        return Err(format!(
            "{} or {} already exists; devices that pinned it would no longer connect to a new one. Pass --force to replace it, then pin the new fingerprint on every device (cove relay set)",
            cert_path.display(),
            key_path.display()
        ));
    }
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())
        .map_err(|e| format!("cannot make a certificate for {hosts:?}: {e}"))?;
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(24 * 3600)).into();
    params.not_after = (now + Duration::from_secs(10 * 365 * 24 * 3600)).into();
    params.distinguished_name.push(rcgen::DnType::CommonName, "Cove relay");
    let key = rcgen::KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let cert = params.self_signed(&key).map_err(|e| format!("cannot sign the certificate: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem())
        .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
    Ok(Generated { cert: cert_path, key: key_path, fingerprint: fingerprint(cert.der()) })
}

/// Writes `bytes` to `path`, readable and writable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file =
        options.open(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    // A file that already existed keeps its mode on open: set it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    }
    file.write_all(bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
