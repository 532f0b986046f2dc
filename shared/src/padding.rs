//! Size buckets for sealed plaintexts.
//!
//! The relay sees every envelope's length. Padding each plaintext up to a
//! bucket means it learns only which bucket an envelope falls in: powers of
//! two from 256 B to 64 KiB, then multiples of 64 KiB up to
//! [`MAX_PADDED_LEN`].
//!
//! # Wire format
//! `payload length (u32 BE) ‖ payload ‖ zero bytes`, `bucket` bytes in all.
//! A padded plaintext whose length is not a bucket, whose length field
//! exceeds the room available, or whose padding is not all zero is invalid.

/// The smallest bucket.
pub const MIN_PADDED_LEN: usize = 256;
/// Above this size, buckets grow by this step instead of doubling.
pub const LINEAR_STEP: usize = 64 * 1024;
/// The largest bucket: 15 × 64 KiB, so that a full envelope stays within
/// [`crate::envelope::MAX_ENVELOPE_LEN`].
pub const MAX_PADDED_LEN: usize = 15 * LINEAR_STEP;
/// The largest payload an envelope can carry.
pub const MAX_PAYLOAD_LEN: usize = MAX_PADDED_LEN - LEN_PREFIX;

const LEN_PREFIX: usize = 4;

/// The bucket that holds a payload of `payload_len` bytes, or `None` if it
/// is larger than [`MAX_PAYLOAD_LEN`].
pub fn bucket_for(payload_len: usize) -> Option<usize> {
    let needed = payload_len.checked_add(LEN_PREFIX)?;
    let bucket = if needed <= MIN_PADDED_LEN {
        MIN_PADDED_LEN
    } else if needed <= LINEAR_STEP {
        needed.next_power_of_two()
    } else {
        needed.div_ceil(LINEAR_STEP) * LINEAR_STEP
    };
    (bucket <= MAX_PADDED_LEN).then_some(bucket)
}

/// Whether `len` is one of the buckets.
pub fn is_bucket(len: usize) -> bool {
    (MIN_PADDED_LEN..=MAX_PADDED_LEN).contains(&len)
        && if len <= LINEAR_STEP { len.is_power_of_two() } else { len.is_multiple_of(LINEAR_STEP) }
}

/// Appends `payload`, padded to its bucket, to `out`. `None` if the payload
/// is larger than [`MAX_PAYLOAD_LEN`].
pub(crate) fn pad_into(out: &mut Vec<u8>, payload: &[u8]) -> Option<()> {
    let bucket = bucket_for(payload.len())?;
    let end = out.len() + bucket;
    out.extend_from_slice(&u32::try_from(payload.len()).ok()?.to_be_bytes());
    out.extend_from_slice(payload);
    out.resize(end, 0);
    Some(())
}

/// Checks and strips the padding in place. `None` if it is not canonical.
pub(crate) fn unpad(padded: &mut Vec<u8>) -> Option<()> {
    if !is_bucket(padded.len()) {
        return None;
    }
    let (prefix, rest) = padded.split_first_chunk::<LEN_PREFIX>()?;
    let len = usize::try_from(u32::from_be_bytes(*prefix)).ok()?;
    if len > rest.len() || rest[len..].iter().any(|b| *b != 0) {
        return None;
    }
    padded.copy_within(LEN_PREFIX..LEN_PREFIX + len, 0);
    padded.truncate(len);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_the_documented_ones() {
        assert_eq!(bucket_for(0), Some(256));
        assert_eq!(bucket_for(252), Some(256));
        assert_eq!(bucket_for(253), Some(512));
        assert_eq!(bucket_for(4092), Some(4096));
        assert_eq!(bucket_for(65532), Some(65536));
        assert_eq!(bucket_for(65533), Some(131072));
        assert_eq!(bucket_for(MAX_PAYLOAD_LEN), Some(MAX_PADDED_LEN));
        assert_eq!(bucket_for(MAX_PAYLOAD_LEN + 1), None);
        let all: Vec<usize> = (MIN_PADDED_LEN..=MAX_PADDED_LEN).filter(|n| is_bucket(*n)).collect();
        assert_eq!(all.len(), 9 + 14);
    }

    fn pad(payload: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        pad_into(&mut out, payload).map(|()| out)
    }

    #[test]
    fn unpad_refuses_non_canonical_padding() {
        let mut ok = pad(b"hello").unwrap();
        unpad(&mut ok).unwrap();
        assert_eq!(ok, b"hello");

        let mut dirty = pad(b"hello").unwrap();
        dirty[200] = 1;
        assert!(unpad(&mut dirty).is_none());

        let mut long = pad(b"hello").unwrap();
        long[..4].copy_from_slice(&253u32.to_be_bytes());
        assert!(unpad(&mut long).is_none());

        let mut odd = pad(b"hello").unwrap();
        odd.push(0);
        assert!(unpad(&mut odd).is_none());
    }
}
