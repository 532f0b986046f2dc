//! Recovery phrases: an identity seed as 24 words of the BIP-39 English
//! list, with BIP-39's checksum.
//!
//! The 256-bit seed and the first 8 bits of its SHA-256 make 264 bits, read
//! most significant bit first in 24 groups of 11; each group is an index into
//! the 2,048-word list (`english.txt`, the list published with BIP-39). A
//! phrase with a wrong word, a missing word or two words swapped almost
//! always fails the checksum (1 in 256 slip through, and then open nothing:
//! the identity they derive is pinned in no plan).

use crate::identity::IdentitySeed;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use zeroize::Zeroizing;

/// Words in a phrase.
pub const PHRASE_WORDS: usize = 24;

const LIST: &str = include_str!("english.txt");

/// The 2,048 words, in list order.
pub fn words() -> &'static [&'static str] {
    static WORDS: OnceLock<Vec<&'static str>> = OnceLock::new();
    WORDS.get_or_init(|| LIST.lines().map(str::trim).filter(|w| !w.is_empty()).collect())
}

/// Why a phrase was refused. Each says what to check, in one sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhraseError {
    /// Not 24 words.
    #[error("a recovery phrase has 24 words; this one has {0}")]
    WordCount(usize),
    /// A word that is not in the list.
    #[error("word {position} ({word:?}) is not a recovery phrase word; check its spelling")]
    UnknownWord {
        /// 1-based position.
        position: usize,
        /// The word as typed.
        word: String,
    },
    /// The checksum does not match.
    #[error(
        "these 24 words are not a valid recovery phrase (the checksum does not match); check for a mistyped or swapped word"
    )]
    Checksum,
}

/// The phrase for a seed: 24 words separated by single spaces.
pub fn encode(seed: &IdentitySeed) -> Zeroizing<String> {
    let bits = Zeroizing::new(seed_bits(seed.as_bytes()));
    let list = words();
    let mut out = Zeroizing::new(String::with_capacity(PHRASE_WORDS * 9));
    for (i, chunk) in bits.chunks(11).enumerate() {
        let index = chunk.iter().fold(0usize, |acc, &bit| (acc << 1) | usize::from(bit));
        if i > 0 {
            out.push(' ');
        }
        out.push_str(list[index]);
    }
    out
}

/// Reads a phrase back into its seed. Case and spacing do not matter.
pub fn decode(phrase: &str) -> Result<IdentitySeed, PhraseError> {
    let typed: Vec<String> = phrase.split_whitespace().map(str::to_lowercase).collect();
    if typed.len() != PHRASE_WORDS {
        return Err(PhraseError::WordCount(typed.len()));
    }
    let list = words();
    let mut bits = Zeroizing::new(Vec::with_capacity(PHRASE_WORDS * 11));
    for (position, word) in typed.iter().enumerate() {
        let index = list
            .binary_search(&word.as_str())
            .map_err(|_| PhraseError::UnknownWord { position: position + 1, word: word.clone() })?;
        bits.extend((0..11).rev().map(|shift| u8::from((index >> shift) & 1 == 1)));
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    for (byte, chunk) in seed.iter_mut().zip(bits.chunks(8)) {
        *byte = chunk.iter().fold(0u8, |acc, &bit| (acc << 1) | bit);
    }
    let checksum = bits[256..].iter().fold(0u8, |acc, &bit| (acc << 1) | bit);
    if checksum != Sha256::digest(seed.as_ref())[0] {
        return Err(PhraseError::Checksum);
    }
    Ok(IdentitySeed::from_bytes(&seed))
}

/// The seed's 256 bits and 8 checksum bits, most significant first.
fn seed_bits(seed: &[u8; 32]) -> Vec<u8> {
    let checksum = Sha256::digest(seed)[0];
    seed.iter()
        .chain(std::iter::once(&checksum))
        .flat_map(|byte| (0..8).rev().map(move |shift| (byte >> shift) & 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_bip39_english() {
        let digest = Sha256::digest(LIST.as_bytes());
        assert_eq!(
            crate::codec::to_hex(&digest),
            "2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda"
        );
        assert_eq!(words().len(), 2048);
        assert!(words().windows(2).all(|w| w[0] < w[1]), "sorted, for binary search");
    }

    #[test]
    fn the_bip39_test_vector_for_256_bits_of_0x7f() {
        // From the BIP-39 reference vectors (entropy 7f × 32).
        let phrase = encode(&IdentitySeed::from_bytes(&[0x7f; 32]));
        assert_eq!(
            phrase.as_str(),
            "legal winner thank year wave sausage worth useful legal winner thank year wave \
             sausage worth useful legal winner thank year wave sausage worth title"
        );
        assert_eq!(decode(&phrase).unwrap().as_bytes(), &[0x7f; 32]);
        let zeros = encode(&IdentitySeed::from_bytes(&[0; 32]));
        assert!(zeros.ends_with("abandon abandon art"));
    }

    #[test]
    fn mistakes_are_named() {
        let phrase = encode(&IdentitySeed::from_bytes(&[0x7f; 32]));
        let mut words: Vec<&str> = phrase.split(' ').collect();
        assert_eq!(decode(&words[..23].join(" ")).err(), Some(PhraseError::WordCount(23)));
        words[4] = "wavy";
        assert!(matches!(
            decode(&words.join(" ")),
            Err(PhraseError::UnknownWord { position: 5, .. })
        ));
        words[4] = "wave";
        words.swap(0, 1);
        assert_eq!(decode(&words.join(" ")).err(), Some(PhraseError::Checksum));
        words.swap(0, 1);
        assert!(decode(&format!("  {}  ", words.join("   ").to_uppercase())).is_ok());
    }
}
