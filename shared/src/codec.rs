//! Byte-level helpers for the fixed binary layouts (envelope header, key
//! wrap, device bundle, membership entry), plus hex.
//!
//! Every multi-byte integer in Cove's binary layouts is big-endian. The reader
//! never panics: each read checks the remaining length first, and `finish`
//! refuses trailing bytes so that a layout has exactly one encoding.

use thiserror::Error;

/// A binary structure did not match its documented layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the structure did.
    #[error("input is truncated")]
    Truncated,
    /// Bytes were left over after the structure ended.
    #[error("{extra} unexpected trailing bytes")]
    Trailing {
        /// How many bytes were left over.
        extra: usize,
    },
    /// A magic number, version, tag or length field had a value the layout forbids.
    #[error("invalid {field}")]
    Invalid {
        /// Which field was wrong.
        field: &'static str,
    },
}

/// Reads a fixed binary layout front to back.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Consumes an exact constant, such as a magic number.
    pub(crate) fn expect(&mut self, value: &[u8], field: &'static str) -> Result<(), DecodeError> {
        if self.take(value.len())? == value { Ok(()) } else { Err(DecodeError::Invalid { field }) }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Ends the read; any byte left over is an error.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            extra => Err(DecodeError::Trailing { extra }),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Parses hex (either case) into exactly `N` bytes.
pub fn from_hex<const N: usize>(text: &str) -> Result<[u8; N], DecodeError> {
    let text = text.as_bytes();
    if text.len() != N * 2 {
        return Err(DecodeError::Invalid { field: "hex length" });
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *slot = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Ok(out)
}

/// Parses hex of any even length.
pub fn from_hex_vec(text: &str) -> Result<Vec<u8>, DecodeError> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return Err(DecodeError::Invalid { field: "hex length" });
    }
    text.chunks_exact(2).map(|pair| Ok((nibble(pair[0])? << 4) | nibble(pair[1])?)).collect()
}

fn nibble(c: u8) -> Result<u8, DecodeError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(DecodeError::Invalid { field: "hex digit" }),
    }
}

/// Serde support for fixed-size byte arrays: hex text in human-readable
/// formats (JSON), a byte string in binary ones (postcard).
pub(crate) mod fixed_bytes {
    use serde::de::{Error as _, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&super::to_hex(bytes))
        } else {
            s.serialize_bytes(bytes)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        struct V<const N: usize>;
        impl<const N: usize> Visitor<'_> for V<N> {
            type Value = [u8; N];
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{N} bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                super::from_hex(v).map_err(E::custom)
            }
        }
        if d.is_human_readable() { d.deserialize_str(V::<N>) } else { d.deserialize_bytes(V::<N>) }
            .map_err(D::Error::custom)
    }
}

/// Serde support for variable-length byte strings (`Vec<u8>`): a single byte
/// string in postcard rather than a sequence of integers.
pub mod byte_vec {
    use serde::de::Visitor;
    use serde::{Deserializer, Serializer};
    use std::fmt;

    /// Serializes as a byte string (hex in human-readable formats).
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&super::to_hex(bytes))
        } else {
            s.serialize_bytes(bytes)
        }
    }

    /// Deserializes a byte string (hex in human-readable formats).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                Ok(v)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                super::from_hex_vec(v).map_err(E::custom)
            }
        }
        if d.is_human_readable() { d.deserialize_str(V) } else { d.deserialize_byte_buf(V) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = [0x00, 0x7f, 0x80, 0xff, 0x12];
        assert_eq!(to_hex(&bytes), "007f80ff12");
        assert_eq!(from_hex::<5>("007F80ff12"), Ok(bytes));
        assert!(from_hex::<5>("007f80ff1").is_err());
        assert!(from_hex::<1>("zz").is_err());
    }

    #[test]
    fn reader_refuses_short_and_trailing_input() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(r.u16(), Err(DecodeError::Truncated));
        let r = Reader::new(&[1]);
        assert_eq!(r.finish(), Err(DecodeError::Trailing { extra: 1 }));
    }
}
