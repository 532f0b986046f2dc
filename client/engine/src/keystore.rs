//! The keystore: a device's secret keys, sealed with its passphrase.
//!
//! One file holds the device's signing and exchange keys, the key that seals
//! the local database, and the plan's epoch keys. It is encrypted under a key
//! derived from the passphrase with Argon2id; the Argon2id parameters are
//! stored in the file, and a file that asks for less than the floor is
//! refused, so an attacker who can write the file cannot make the next unlock
//! cheap to brute-force.
//!
//! # Format
//! ```text
//! offset  size  field
//!      0     4  magic "CVKS"
//!      4     1  version 0x01
//!      5     1  kdf: 1 = Argon2id (v1.3)
//!      6     4  memory in KiB, u32 BE (≥ 65,536)
//!     10     4  passes, u32 BE (≥ 3)
//!     14     4  lanes, u32 BE (≥ 1)
//!     18    16  salt
//!     34    16  key check
//!     50    24  nonce
//!     74     n  XChaCha20-Poly1305 of the contents, tag last; AD = bytes [0, 74)
//! ```
//! `K = Argon2id(passphrase, salt, memory, passes, lanes)`;
//! `PRK = HKDF-Extract("cove/v1/keystore", K)`; the key check is
//! `HKDF-Expand(PRK, "cove/v1/keystore-check", 16)` and the sealing key
//! `HKDF-Expand(PRK, "cove/v1/keystore-seal", 32)`. The key check tells a
//! wrong passphrase (check differs) from a damaged or altered file (check
//! matches, decryption fails); it costs an offline guesser a full Argon2id
//! evaluation per guess, like the ciphertext itself.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use cove_shared::membership::EntryHash;
use cove_shared::random::Entropy;
use cove_shared::{
    DeviceSecret, Epoch, IdentitySeed, OsEntropy, Partner, PartnerSecret, PlanId, SymmetricKey,
};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use std::io::Write;
use std::path::Path;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Magic of a keystore file.
pub const MAGIC: &[u8; 4] = b"CVKS";
const HEADER_LEN: usize = 74;
const KDF_ARGON2ID: u8 = 1;

/// The most a keystore may ask for: 1 GiB, 16 passes, 8 lanes.
pub const CEILING: KdfParams = KdfParams { memory_kib: 1024 * 1024, passes: 16, lanes: 8 };

/// The weakest Argon2id parameters a keystore may ask for.
pub const FLOOR: KdfParams = KdfParams { memory_kib: 64 * 1024, passes: 3, lanes: 1 };

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub passes: u32,
    /// Parallel lanes.
    pub lanes: u32,
}

impl KdfParams {
    fn meets_floor(&self) -> bool {
        self.memory_kib >= FLOOR.memory_kib
            && self.passes >= FLOOR.passes
            && self.lanes >= FLOOR.lanes
    }

    fn within_ceiling(&self) -> bool {
        self.memory_kib <= CEILING.memory_kib
            && self.passes <= CEILING.passes
            && self.lanes <= CEILING.lanes
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        FLOOR
    }
}

/// Unlocking or saving the keystore failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// There is no keystore in this state directory.
    #[error("there is no Cove device here yet")]
    Missing,
    /// The passphrase does not open this keystore.
    #[error("the passphrase is not correct")]
    WrongPassphrase,
    /// The file was altered or damaged.
    #[error("the keystore file is damaged or has been altered, so it cannot be opened")]
    Tampered,
    /// The file asks for weaker protection than allowed.
    #[error("the keystore asks for weaker passphrase protection ({memory_kib} KiB, {passes} passes) than Cove allows ({} KiB, {} passes); it may have been tampered with, so it will not be used", FLOOR.memory_kib, FLOOR.passes)]
    Downgraded {
        /// The memory it asked for.
        memory_kib: u32,
        /// The passes it asked for.
        passes: u32,
    },
    /// The file was written by a version of Cove that kept other contents.
    #[error(
        "this device was set up by a version of Cove that kept its keys differently, so this version cannot use it; set the device up again (see docs/device.md)"
    )]
    OtherFormat,
    /// The passphrase is empty.
    #[error("the passphrase is empty; choose one you can remember and nobody else can guess")]
    EmptyPassphrase,
    /// The file could not be read or written.
    #[error("cannot use the keystore at {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        error: String,
    },
}

/// One plan's keys.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct PlanKeys {
    /// The plan.
    #[zeroize(skip)]
    pub plan: PlanId,
    /// The relay it syncs through.
    #[zeroize(skip)]
    pub relay: String,
    /// The genesis entry this device was paired into; the membership log
    /// must start there.
    #[zeroize(skip)]
    pub genesis: EntryHash,
    /// Whose device this is.
    #[zeroize(skip)]
    pub partner: Partner,
    /// Every epoch key this device holds.
    pub epochs: Vec<(u32, [u8; 32])>,
    /// The seed of this device's partner's identity (what their recovery
    /// phrase encodes), if this device holds it.
    pub identity: Option<[u8; 32]>,
}

impl fmt::Debug for PlanKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanKeys")
            .field("plan", &self.plan)
            .field("relay", &self.relay)
            .field("partner", &self.partner)
            .field("epochs", &self.epochs.len())
            .finish_non_exhaustive()
    }
}

impl PlanKeys {
    /// The key of an epoch.
    pub fn epoch_key(&self, epoch: Epoch) -> Option<SymmetricKey> {
        self.epochs.iter().find(|(e, _)| *e == epoch.0).map(|(_, k)| SymmetricKey::from_bytes(*k))
    }

    /// The partner identity this device holds.
    pub fn identity(&self) -> Option<PartnerSecret> {
        PartnerSecret::from_seed(&IdentitySeed::from_bytes(self.identity.as_ref()?))
    }

    /// Adds (or replaces) an epoch key.
    pub fn set_epoch_key(&mut self, epoch: Epoch, key: &SymmetricKey) {
        self.epochs.retain(|(e, _)| *e != epoch.0);
        self.epochs.push((epoch.0, *key.as_bytes()));
        self.epochs.sort_by_key(|(e, _)| *e);
    }
}

/// What the keystore holds.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct Contents {
    device: Vec<u8>,
    storage: [u8; 32],
    plan: Option<PlanKeys>,
}

/// An unlocked keystore.
pub struct Keystore {
    device: DeviceSecret,
    storage: SymmetricKey,
    /// The plan this device belongs to, once it has one.
    pub plan: Option<PlanKeys>,
    params: KdfParams,
    salt: [u8; 16],
    /// The Argon2id output, kept so that the keystore can be saved again
    /// (after a key rotation) without asking for the passphrase.
    kek: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Keystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystore")
            .field("device", &self.device.id())
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> KeystoreError + '_ {
    move |e| KeystoreError::Io { path: path.display().to_string(), error: e.to_string() }
}

fn argon2(
    passphrase: &[u8],
    salt: &[u8; 16],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let argon_params = Params::new(params.memory_kib, params.passes, params.lanes, Some(32))
        .map_err(|_| KeystoreError::Tampered)?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params)
        .hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|_| KeystoreError::Tampered)?;
    Ok(out)
}

/// (key check, sealing key) from the Argon2id output.
fn derive(kek: &[u8; 32]) -> ([u8; 16], SymmetricKey) {
    let prk = Hkdf::<Sha256>::new(Some(b"cove/v1/keystore"), kek);
    let mut check = [0u8; 16];
    let mut seal = [0u8; 32];
    // Both outputs are far below HKDF's limit.
    let _ = prk.expand(b"cove/v1/keystore-check", &mut check);
    let _ = prk.expand(b"cove/v1/keystore-seal", &mut seal);
    (check, SymmetricKey::from_bytes(seal))
}

impl Keystore {
    /// A new keystore with a fresh device identity and storage key.
    pub fn create(passphrase: &str, params: KdfParams) -> Result<Self, KeystoreError> {
        if passphrase.is_empty() {
            return Err(KeystoreError::EmptyPassphrase);
        }
        if !params.meets_floor() {
            return Err(KeystoreError::Downgraded {
                memory_kib: params.memory_kib,
                passes: params.passes,
            });
        }
        let mut rng = OsEntropy;
        let salt = rng.array();
        let kek = argon2(passphrase.as_bytes(), &salt, params)?;
        Ok(Self {
            device: DeviceSecret::generate(&mut rng),
            storage: SymmetricKey::random(&mut rng),
            plan: None,
            params,
            salt,
            kek,
        })
    }

    /// Opens the keystore file at `path` with `passphrase`.
    pub fn open(path: &Path, passphrase: &str) -> Result<Self, KeystoreError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeystoreError::Missing);
            }
            Err(e) => return Err(io(path)(e)),
        };
        Self::decode(&bytes, passphrase)
    }

    fn decode(bytes: &[u8], passphrase: &str) -> Result<Self, KeystoreError> {
        if bytes.len() < HEADER_LEN + 16
            || &bytes[..4] != MAGIC
            || bytes[4] != 1
            || bytes[5] != KDF_ARGON2ID
        {
            return Err(KeystoreError::Tampered);
        }
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[at..at + 4]);
            u32::from_be_bytes(b)
        };
        let params = KdfParams { memory_kib: u32_at(6), passes: u32_at(10), lanes: u32_at(14) };
        if !params.meets_floor() {
            return Err(KeystoreError::Downgraded {
                memory_kib: params.memory_kib,
                passes: params.passes,
            });
        }
        // A file asking for more than any device should spend is not a real
        // keystore either: refusing it keeps an altered file from
        // exhausting a phone's memory.
        if !params.within_ceiling() {
            return Err(KeystoreError::Tampered);
        }
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&bytes[18..34]);
        let kek = argon2(passphrase.as_bytes(), &salt, params)?;
        let (check, seal_key) = derive(&kek);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&check[..], &bytes[34..50])) {
            return Err(KeystoreError::WrongPassphrase);
        }
        let mut nonce = [0u8; 24];
        nonce.copy_from_slice(&bytes[50..74]);
        let (ciphertext, tag) = bytes[HEADER_LEN..].split_at(bytes.len() - HEADER_LEN - 16);
        let tag = Tag::try_from(tag).map_err(|_| KeystoreError::Tampered)?;
        let mut plain = Zeroizing::new(ciphertext.to_vec());
        XChaCha20Poly1305::new(seal_key.as_bytes().into())
            .decrypt_inout_detached(
                &XNonce::from(nonce),
                &bytes[..HEADER_LEN],
                plain.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| KeystoreError::Tampered)?;
        // The ciphertext authenticated, so this file is the one this
        // passphrase sealed: contents that do not decode were written by a
        // version of Cove with another layout, not altered.
        let mut contents: Contents =
            postcard::from_bytes(&plain).map_err(|_| KeystoreError::OtherFormat)?;
        let device_bytes: [u8; 64] =
            contents.device.as_slice().try_into().map_err(|_| KeystoreError::Tampered)?;
        let device_bytes = Zeroizing::new(device_bytes);
        let device =
            DeviceSecret::from_secret_bytes(&device_bytes).ok_or(KeystoreError::Tampered)?;
        Ok(Self {
            device,
            storage: SymmetricKey::from_bytes(contents.storage),
            plan: contents.plan.take(),
            params,
            salt,
            kek,
        })
    }

    /// The encoded file.
    fn encode(&self) -> Result<Vec<u8>, KeystoreError> {
        let contents = Contents {
            device: self.device.to_secret_bytes().to_vec(),
            storage: *self.storage.as_bytes(),
            plan: self.plan.clone(),
        };
        let plain =
            Zeroizing::new(postcard::to_allocvec(&contents).map_err(|_| KeystoreError::Tampered)?);
        let (check, seal_key) = derive(&self.kek);
        let nonce: [u8; 24] = OsEntropy.array();
        let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + 16);
        out.extend_from_slice(MAGIC);
        out.push(1);
        out.push(KDF_ARGON2ID);
        out.extend_from_slice(&self.params.memory_kib.to_be_bytes());
        out.extend_from_slice(&self.params.passes.to_be_bytes());
        out.extend_from_slice(&self.params.lanes.to_be_bytes());
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&check);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&plain);
        let (header, body) = out.split_at_mut(HEADER_LEN);
        let tag = XChaCha20Poly1305::new(seal_key.as_bytes().into())
            .encrypt_inout_detached(&XNonce::from(nonce), header, body.into())
            .map_err(|_| KeystoreError::Tampered)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Writes the keystore to `path` atomically (a temporary file, synced,
    /// then renamed over the old one), readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), KeystoreError> {
        let bytes = self.encode()?;
        write_private(path, &bytes).map_err(io(path))
    }

    /// The device's identity.
    pub fn device(&self) -> &DeviceSecret {
        &self.device
    }

    /// The key that seals the local database.
    pub fn storage_key(&self) -> &SymmetricKey {
        &self.storage
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or
/// the new one, never a torn one; the file is readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A name of its own, created fresh (never an existing file, whose mode
    // would stay as it was), so that two processes saving at once each
    // rename a whole file.
    let suffix: [u8; 8] = OsEntropy.array();
    let tmp = path.with_extension(format!("tmp-{:016x}", u64::from_be_bytes(suffix)));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // The rename is durable only once the directory is synced.
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("cove-keystore-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A keystore holding one plan, whose first epoch key is `epoch_key`.
    fn with_plan(epoch_key: [u8; 32]) -> Keystore {
        let mut ks = Keystore::create("correct horse", KdfParams::default()).unwrap();
        ks.plan = Some(PlanKeys {
            plan: PlanId::from_bytes([1; 16]),
            relay: "ws://127.0.0.1:2683".into(),
            genesis: EntryHash([2; 32]),
            partner: Partner::A,
            epochs: vec![(1, epoch_key)],
            identity: Some([0x5E; 32]),
        });
        ks
    }

    #[test]
    fn a_keystore_prints_without_its_keys() {
        let ks = with_plan([0xC3; 32]);
        let secrets: [Vec<u8>; 5] = [
            ks.device().to_secret_bytes().to_vec(),
            ks.storage_key().as_bytes().to_vec(),
            ks.kek.to_vec(),
            vec![0xC3; 32],
            vec![0x5E; 32],
        ];
        let printed = format!("{ks:?} {ks:#?} {:?}", ks.plan);
        for secret in &secrets {
            for window in secret.windows(6) {
                let hex = cove_shared::codec::to_hex(window);
                let decimal = window.iter().map(u8::to_string).collect::<Vec<_>>().join(", ");
                assert!(!printed.to_lowercase().contains(&hex), "{printed}");
                assert!(!printed.contains(&decimal), "{printed}");
            }
        }
        assert!(printed.contains("epochs: 1"), "{printed}");
    }

    #[test]
    fn a_keystore_round_trips_and_refuses_the_wrong_passphrase_tampering_and_downgrades() {
        let d = dir("roundtrip");
        let path = d.join("keystore.cove");
        let ks = with_plan([3; 32]);
        ks.save(&path).unwrap();
        let again = Keystore::open(&path, "correct horse").unwrap();
        assert_eq!(again.device().id(), ks.device().id());
        assert_eq!(again.storage_key(), ks.storage_key());
        assert_eq!(again.plan.as_ref().unwrap().epoch_key(Epoch(1)).unwrap().as_bytes(), &[3; 32]);

        assert!(matches!(
            Keystore::open(&path, "wrong horse"),
            Err(KeystoreError::WrongPassphrase)
        ));

        let bytes = std::fs::read(&path).unwrap();
        let mut tampered = bytes.clone();
        let last = tampered.len() - 20;
        tampered[last] ^= 1;
        assert!(matches!(
            Keystore::decode(&tampered, "correct horse"),
            Err(KeystoreError::Tampered)
        ));

        // Lowering the memory cost in the header: refused before any work.
        let mut weaker = bytes.clone();
        weaker[6..10].copy_from_slice(&(8 * 1024u32).to_be_bytes());
        assert!(matches!(
            Keystore::decode(&weaker, "correct horse"),
            Err(KeystoreError::Downgraded { memory_kib: 8192, .. })
        ));
        let mut fewer = bytes;
        fewer[10..14].copy_from_slice(&1u32.to_be_bytes());
        assert!(matches!(
            Keystore::decode(&fewer, "correct horse"),
            Err(KeystoreError::Downgraded { .. })
        ));

        assert!(matches!(Keystore::open(&d.join("nothing"), "x"), Err(KeystoreError::Missing)));
        assert!(matches!(
            Keystore::create("x", KdfParams { memory_kib: 1024, passes: 1, lanes: 1 }),
            Err(KeystoreError::Downgraded { .. })
        ));
        assert!(matches!(
            Keystore::create("", KdfParams::default()),
            Err(KeystoreError::EmptyPassphrase)
        ));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn debug_output_names_no_secret() {
        let ks = Keystore::create("p", KdfParams::default()).unwrap();
        let text = format!("{ks:?}");
        assert!(text.contains("Keystore"));
        assert!(!text.contains(&cove_shared::codec::to_hex(ks.storage_key().as_bytes())));
    }
}
