//! Item ids (ULIDs) and sequence positions.

use cove_shared::random::Entropy;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new ULID: 48 bits of milliseconds, then 80 random bits, in Crockford
/// base 32. Ids made later sort later, and two devices never make the same.
pub fn new_id(now_ms: i64, entropy: &mut impl Entropy) -> String {
    let random: [u8; 10] = entropy.array();
    let mut value: u128 = u128::from(u64::try_from(now_ms).unwrap_or(0) & 0xFFFF_FFFF_FFFF) << 80;
    for (i, byte) in random.iter().enumerate() {
        value |= u128::from(*byte) << (72 - 8 * i);
    }
    (0..26)
        .map(|i| {
            let shift = 125 - 5 * i;
            char::from(CROCKFORD[((value >> shift) & 0x1F) as usize])
        })
        .collect()
}

/// Whether `s` looks like an id this module makes.
pub fn is_id(s: &str) -> bool {
    s.len() == 26 && s.bytes().all(|b| CROCKFORD.contains(&b))
}

/// The short form shown to people: the last six characters (the random
/// part, so items made in the same second still differ).
pub fn short(id: &str) -> &str {
    id.get(id.len().saturating_sub(6)..).unwrap_or(id)
}

/// Position keys order the sequence: strings over `a`..=`z`, compared as
/// strings, never ending in `a` (so there is always room below one). A step
/// moved between two others gets a key between theirs: a move is one write,
/// and two partners' moves never interleave. (The midpoint method of
/// fractional indexing, base 26.)
pub fn position_between(before: Option<&str>, after: Option<&str>) -> String {
    // Positions come from other devices and from imports: a bound that is
    // not a key this module makes is ignored rather than trusted.
    let before = before.filter(|p| is_position(p));
    let after = after.filter(|p| is_position(p)).filter(|a| before.is_none_or(|b| b < *a));
    let digits = |s: &str| s.bytes().map(|b| b - b'a').collect::<Vec<u8>>();
    let a = before.map(digits).unwrap_or_default();
    let b = after.map(digits);
    midpoint(&a, b.as_deref()).into_iter().map(|d| char::from(b'a' + d)).collect()
}

/// Whether `p` is a position key: `a`..=`z`, not empty, not ending in `a`.
pub fn is_position(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()) && !p.ends_with('a')
}

/// Digits strictly between `a` and `b` (`None`: no upper bound), given
/// `a < b` and that neither ends in digit 0.
fn midpoint(a: &[u8], b: Option<&[u8]>) -> Vec<u8> {
    if let Some(b) = b {
        // Keep the common prefix (`a` padded with zeros).
        let n = b
            .iter()
            .enumerate()
            .take_while(|(i, d)| a.get(*i).copied().unwrap_or(0) == **d)
            .count();
        if n > 0 {
            let mut out = b[..n].to_vec();
            out.extend(midpoint(a.get(n..).unwrap_or(&[]), Some(&b[n..])));
            return out;
        }
    }
    let low = u16::from(a.first().copied().unwrap_or(0));
    let high = b.and_then(|b| b.first().copied()).map_or(26, u16::from);
    if high > low + 1 {
        return vec![((low + high) / 2) as u8];
    }
    // Neighbouring digits.
    if let Some(b) = b.filter(|b| b.len() > 1 && u16::from(b[0]) > low) {
        return b[..1].to_vec();
    }
    let mut out = vec![low as u8];
    out.extend(midpoint(a.get(1..).unwrap_or(&[]), None));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cove_shared::OsEntropy;
    use proptest::prelude::*;

    #[test]
    fn ids_are_ulids_that_sort_by_time() {
        let a = new_id(1_700_000_000_000, &mut OsEntropy);
        let b = new_id(1_700_000_000_001, &mut OsEntropy);
        assert!(is_id(&a) && is_id(&b));
        assert!(a < b);
        assert_ne!(new_id(5, &mut OsEntropy), new_id(5, &mut OsEntropy));
        // The timestamp is the first ten characters.
        assert_eq!(&new_id(0, &mut OsEntropy)[..10], "0000000000");
        assert_eq!(short(&a).len(), 6);
    }

    proptest! {
        #[test]
        fn a_position_between_two_lies_between_them(
            a in "[a-z]{0,6}", b in "[a-z]{0,6}"
        ) {
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            prop_assume!(lo != hi);
            // Keys this module makes never end in 'a'.
            prop_assume!(!hi.ends_with('a') && !lo.ends_with('a'));
            let lo = (!lo.is_empty()).then_some(lo);
            let mid = position_between(lo.as_deref(), Some(&hi));
            prop_assert!(mid.as_str() < hi.as_str(), "{mid} < {hi}");
            if let Some(lo) = &lo {
                prop_assert!(lo.as_str() < mid.as_str(), "{lo} < {mid}");
            }
            prop_assert!(!mid.ends_with('a'));
        }

        #[test]
        fn any_bounds_give_a_key_and_never_panic(a in "\\PC{0,6}", b in "\\PC{0,6}") {
            let key = position_between(Some(&a), Some(&b));
            prop_assert!(is_position(&key), "{key:?}");
            let key = position_between(None, Some(&b));
            prop_assert!(is_position(&key));
        }

        #[test]
        fn appending_keeps_order(n in 1usize..60) {
            let mut keys: Vec<String> = Vec::new();
            for _ in 0..n {
                let next = position_between(keys.last().map(String::as_str), None);
                if let Some(last) = keys.last() {
                    prop_assert!(last < &next);
                }
                keys.push(next);
            }
        }
    }
}
