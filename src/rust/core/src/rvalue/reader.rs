//! The byte level: stream header, cursor, flags words, lengths, and
//! re-reading a range that was already checked.

use super::sxp::malformed;
use super::ValueError;

/// Longest encoding name R accepts in a version-3 header (R_CODESET_MAX).
const CODESET_MAX: i32 = 63;

/// Native encodings a version-3 header may name. Strings in other
/// encodings would be run through iconv converters chosen by the child.
const ENCODINGS: &[&str] = &[
    "",
    "UTF-8",
    "UTF8",
    "ANSI_X3.4-1968",
    "ASCII",
    "US-ASCII",
    "ISO-8859-1",
    "ISO8859-1",
    "LATIN1",
    "ISO-8859-15",
    "CP1252",
];

/// Printable, bounded rendering of child-supplied names for messages.
pub fn printable(bytes: &[u8]) -> String {
    let mut out: String = String::from_utf8_lossy(bytes)
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    if bytes.len() > 64 {
        out.push_str("...");
    }
    out
}

/// An item's packed flags word.
#[derive(Debug, Clone, Copy)]
pub struct Flags {
    pub raw: i32,
    pub ty: u8,
    pub has_attr: bool,
    pub has_tag: bool,
    /// Bit 4 of the gp field (S4_OBJECT_MASK), i.e. bit 16 of the word.
    pub s4: bool,
}

impl Flags {
    fn new(raw: i32) -> Flags {
        Flags {
            raw,
            ty: (raw & 0xff) as u8,
            has_attr: raw & (1 << 9) != 0,
            has_tag: raw & (1 << 10) != 0,
            s4: raw & (1 << 16) != 0,
        }
    }

    /// The gp field ("levels"): for a string, its encoding bits.
    pub fn levels(&self) -> i32 {
        self.raw >> 12
    }

    /// Refuses the S4 bit on items whose gp field R restores.
    pub fn refuse_s4(&self) -> Result<(), ValueError> {
        if self.s4 {
            Err(ValueError::Forbidden("S4 object"))
        } else {
            Ok(())
        }
    }
}

/// Cursor over the stream.
pub struct Reader<'a> {
    buf: &'a [u8],
    pub pos: usize,
    big_endian: bool,
    /// The header names UTF-8 (or no encoding) as the writer's native one,
    /// so unflagged non-ASCII strings are UTF-8 to the host.
    pub native_utf8: bool,
}

impl<'a> Reader<'a> {
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], ValueError> {
        let end = self.pos.checked_add(n).ok_or(ValueError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(ValueError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn word(&self, b: [u8; 4]) -> i32 {
        if self.big_endian {
            i32::from_be_bytes(b)
        } else {
            i32::from_le_bytes(b)
        }
    }

    pub fn int(&mut self) -> Result<i32, ValueError> {
        let b: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| ValueError::Truncated)?;
        Ok(self.word(b))
    }

    pub fn flags(&mut self) -> Result<Flags, ValueError> {
        self.int().map(Flags::new)
    }

    /// A vector length (ReadLENGTH): an int, or -1 then upper and lower
    /// halves of a long length.
    pub fn length(&mut self) -> Result<u64, ValueError> {
        let offset = self.pos;
        let len = self.int()?;
        if len >= 0 {
            return Ok(len as u64);
        }
        if len != -1 {
            return Err(malformed("negative vector length", offset));
        }
        let upper = self.int()? as u32;
        let lower = self.int()? as u32;
        if upper > 65536 {
            return Err(malformed("invalid long vector length", offset));
        }
        Ok((u64::from(upper) << 32) | u64::from(lower))
    }

    /// Fails unless `count` items of at least `size` bytes can remain.
    pub fn need(&self, count: u64, size: u64) -> Result<u64, ValueError> {
        match count.checked_mul(size) {
            Some(n) if n <= self.remaining() as u64 => Ok(n),
            _ => Err(ValueError::Truncated),
        }
    }

    /// Skips `count` fixed-size elements; returns their byte range.
    pub fn elems(&mut self, count: u64, size: u64) -> Result<(usize, usize), ValueError> {
        let n = self.need(count, size)?;
        let start = self.pos;
        self.take(usize::try_from(n).map_err(|_| ValueError::Truncated)?)?;
        Ok((start, self.pos))
    }

    pub fn slice(&self, start: usize, end: usize) -> &'a [u8] {
        self.buf.get(start..end).unwrap_or(&[])
    }

    pub fn ints(&self, start: usize, end: usize) -> impl Iterator<Item = i32> + 'a {
        let big = self.big_endian;
        self.slice(start, end).chunks_exact(4).map(move |c| {
            let b = [c[0], c[1], c[2], c[3]];
            if big {
                i32::from_be_bytes(b)
            } else {
                i32::from_le_bytes(b)
            }
        })
    }

    pub fn doubles(&self, start: usize, end: usize) -> impl Iterator<Item = f64> + 'a {
        let big = self.big_endian;
        self.slice(start, end).chunks_exact(8).map(move |c| {
            let b = [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]];
            f64::from_bits(if big {
                u64::from_be_bytes(b)
            } else {
                u64::from_le_bytes(b)
            })
        })
    }

    /// The elements of a character vector whose CHARSXPs (already read
    /// once, so well formed) span `start..end`: `None` for `NA`.
    pub fn strings(&self, start: usize, end: usize) -> Strings<'a> {
        Strings {
            bytes: self.slice(start, end),
            big_endian: self.big_endian,
        }
    }
}

/// Iterator over the CHARSXPs of a checked character vector.
pub struct Strings<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl<'a> Iterator for Strings<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        let header = self.bytes.get(4..8)?;
        let b = [header[0], header[1], header[2], header[3]];
        let len = if self.big_endian {
            i32::from_be_bytes(b)
        } else {
            i32::from_le_bytes(b)
        };
        let Ok(len) = usize::try_from(len) else {
            self.bytes = self.bytes.get(8..).unwrap_or(&[]);
            return Some(None);
        };
        let end = 8usize.saturating_add(len);
        let text = self.bytes.get(8..end)?;
        self.bytes = self.bytes.get(end..).unwrap_or(&[]);
        Some(Some(text))
    }
}

/// Reads the format, versions and (version 3) native encoding.
pub fn read_header(bytes: &[u8]) -> Result<Reader<'_>, ValueError> {
    let big_endian = match bytes.first() {
        None => return Err(ValueError::Truncated),
        Some(b'X') => true,
        Some(b'B') => false,
        Some(b'A') => {
            return Err(ValueError::UnsupportedFormat(
                "ASCII serialization is not accepted".into(),
            ))
        }
        Some(_) => {
            return Err(ValueError::UnsupportedFormat(
                "not an R serialization stream".into(),
            ))
        }
    };
    match bytes.get(1) {
        None => return Err(ValueError::Truncated),
        Some(b'\n') => {}
        Some(_) => {
            return Err(ValueError::UnsupportedFormat(
                "not an R serialization stream".into(),
            ))
        }
    }
    let mut r = Reader {
        buf: bytes,
        pos: 2,
        big_endian,
        native_utf8: true,
    };
    let version = r.int()?;
    let _writer_version = r.int()?;
    let _min_reader_version = r.int()?;
    match version {
        2 => {}
        3 => {
            let offset = r.pos;
            let len = r.int()?;
            if !(0..=CODESET_MAX).contains(&len) {
                return Err(malformed("invalid length of encoding name", offset));
            }
            let name = r.take(len as usize)?;
            if !ENCODINGS
                .iter()
                .any(|e| e.as_bytes().eq_ignore_ascii_case(name))
            {
                return Err(ValueError::UnsupportedFormat(format!(
                    "native encoding '{}' is not accepted",
                    printable(name)
                )));
            }
            r.native_utf8 = name.is_empty()
                || name.eq_ignore_ascii_case(b"UTF-8")
                || name.eq_ignore_ascii_case(b"UTF8");
        }
        v => {
            return Err(ValueError::UnsupportedFormat(format!(
                "serialization version {v}"
            )))
        }
    }
    Ok(r)
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
