//! Every value sealed under the storage key, bound to its table and row.

use super::LocalError;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use cove_shared::random::Entropy;
use cove_shared::{OsEntropy, SymmetricKey};
use zeroize::Zeroizing;

/// Seals and opens local values with the storage key.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

fn label(table: &str, key: &str) -> Vec<u8> {
    format!("cove/v1/local/{table}/{key}").into_bytes()
}

impl Sealer {
    /// A sealer for `key`.
    pub fn new(key: &SymmetricKey) -> Self {
        Self { cipher: XChaCha20Poly1305::new(key.as_bytes().into()) }
    }

    /// `nonce ‖ ciphertext ‖ tag`, bound to `table` and `key`.
    pub fn seal(&self, table: &str, key: &str, plain: &[u8]) -> Result<Vec<u8>, LocalError> {
        let nonce: [u8; 24] = OsEntropy.array();
        let mut out = Vec::with_capacity(24 + plain.len() + 16);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let ad = label(table, key);
        // Fails only beyond 256 GiB; the plaintext must never be stored then.
        let tag = self
            .cipher
            .encrypt_inout_detached(&XNonce::from(nonce), &ad, (&mut out[24..]).into())
            .map_err(|_| LocalError::Corrupt)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens a value sealed for `table` and `key`.
    pub fn open(
        &self,
        table: &str,
        key: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, LocalError> {
        if sealed.len() < 40 {
            return Err(LocalError::Corrupt);
        }
        let (nonce, rest) = sealed.split_at(24);
        let (ciphertext, tag) = rest.split_at(rest.len() - 16);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| LocalError::Corrupt)?;
        let tag = Tag::try_from(tag).map_err(|_| LocalError::Corrupt)?;
        let mut plain = Zeroizing::new(ciphertext.to_vec());
        self.cipher
            .decrypt_inout_detached(
                &XNonce::from(nonce),
                &label(table, key),
                plain.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| LocalError::Corrupt)?;
        Ok(plain)
    }
}
