//! A bounds-checked little-endian reader over a byte slice, used to parse the GGUF header.
//!
//! Every read checks the remaining length first and returns [`GgufError::Truncated`] instead of
//! panicking; lengths read from the file are checked against the remaining bytes before anything
//! is allocated for them.

use crate::error::GgufError;

/// A position in a byte slice plus the name of the source for error messages.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    file: &'a str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], file: &'a str) -> Self {
        Cursor {
            bytes,
            pos: 0,
            file,
        }
    }

    /// The current byte offset.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current position.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    pub(crate) fn file(&self) -> &'a str {
        self.file
    }

    /// Takes the next `n` bytes, or fails with `Truncated` naming `what`.
    pub(crate) fn take(
        &mut self,
        n: usize,
        what: &dyn Fn() -> String,
    ) -> Result<&'a [u8], GgufError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.bytes.get(self.pos..end).map(|s| (s, end))) {
            Some((slice, end)) => {
                self.pos = end;
                Ok(slice)
            }
            None => Err(GgufError::Truncated {
                file: self.file.to_string(),
                what: what(),
                offset: self.pos as u64,
                needed: n as u64,
                available: self.remaining() as u64,
            }),
        }
    }

    fn take_array<const N: usize>(
        &mut self,
        what: &dyn Fn() -> String,
    ) -> Result<[u8; N], GgufError> {
        let slice = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &dyn Fn() -> String) -> Result<u8, GgufError> {
        Ok(self.take_array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &dyn Fn() -> String) -> Result<u16, GgufError> {
        Ok(u16::from_le_bytes(self.take_array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.take_array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.take_array(what)?))
    }

    /// Checks that `count` items of at least `min_size` bytes each can fit in the remaining bytes,
    /// and returns the count as `usize`. Call this before allocating for `count` items.
    pub(crate) fn check_count(
        &self,
        count: u64,
        min_size: u64,
        what: &dyn Fn() -> String,
    ) -> Result<usize, GgufError> {
        let available = self.remaining() as u64;
        let max = available.checked_div(min_size).unwrap_or(u64::MAX);
        match usize::try_from(count) {
            Ok(n) if count <= max => Ok(n),
            _ => Err(GgufError::CountOutOfRange {
                file: self.file.to_string(),
                what: what(),
                value: count,
                max,
                offset: self.pos as u64,
                available,
            }),
        }
    }

    /// Reads a GGUF string: a u64 byte length, then that many UTF-8 bytes.
    pub(crate) fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len = self.u64(&|| format!("length of {}", what()))?;
        let len = self.check_count(len, 1, &|| format!("length of {}", what()))?;
        let start = self.pos as u64;
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(GgufError::InvalidUtf8 {
                file: self.file.to_string(),
                what: what(),
                offset: start,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn what() -> String {
        "test field".into()
    }

    #[test]
    fn reads_little_endian() {
        let bytes = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        let mut c = Cursor::new(&bytes, "mem");
        assert_eq!(c.u8(&what).ok(), Some(1));
        assert_eq!(c.u32(&what).ok(), Some(0x0504_0302));
        assert_eq!(c.remaining(), 4);
        assert!(matches!(
            c.u64(&what),
            Err(GgufError::Truncated {
                needed: 8,
                available: 4,
                ..
            })
        ));
        // A failed read does not move the position.
        assert_eq!(c.u32(&what).ok(), Some(0x0908_0706));
    }

    #[test]
    fn string_length_is_capped_before_allocation() {
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"abc");
        let mut c = Cursor::new(&bytes, "mem");
        assert!(matches!(
            c.string(&what),
            Err(GgufError::CountOutOfRange {
                value: u64::MAX,
                max: 3,
                ..
            })
        ));
    }

    #[test]
    fn string_must_be_utf8() {
        let mut bytes = 2u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        let mut c = Cursor::new(&bytes, "mem");
        assert!(matches!(
            c.string(&what),
            Err(GgufError::InvalidUtf8 { offset: 8, .. })
        ));
    }
}
