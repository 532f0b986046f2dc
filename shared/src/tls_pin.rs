//! How a relay's TLS certificate is named where people compare it: the
//! SHA-256 of its DER encoding, as 64 lowercase hexadecimal digits.
//! `cove-server gen-cert` prints it and devices pin it, so both sides share
//! this one definition.

use sha2::{Digest, Sha256};

/// A certificate's fingerprint, as 64 lowercase hex digits.
pub fn fingerprint(der: &[u8]) -> String {
    crate::codec::to_hex(&Sha256::digest(der))
}

/// A fingerprint as people copy it: 64 hexadecimal digits, in either case,
/// with or without colons between bytes.
pub fn parse(text: &str) -> Option<[u8; 32]> {
    let digits: String = text.chars().filter(|c| *c != ':').collect();
    crate::codec::from_hex(&digits.to_ascii_lowercase()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_reads_back_in_any_case_and_with_colons() {
        let printed = fingerprint(b"a certificate");
        assert_eq!(printed.len(), 64);
        let bytes = parse(&printed).unwrap();
        let colons: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(parse(&colons.join(":")), Some(bytes));
        assert_eq!(parse(&printed[..62]), None, "short");
        let mut bad = printed.clone();
        bad.replace_range(0..1, "g");
        assert_eq!(parse(&bad), None, "not hex");
    }
}
