//! PNG images drawn in the sandbox, checked before the host uses them.
//!
//! The child renders plots to PNG and sends the bytes (`Kind::Plot`). The
//! host shows them (an R graphics device via the png package), writes them
//! to files and hands them to a language model, so they must be exactly
//! what a PNG reader expects and no bigger than the caps: `check` walks the
//! whole file and refuses anything else. It checks
//!
//! - the size, then the signature;
//! - every chunk: length within the file, a type of four ASCII letters, its
//!   CRC; `IHDR` first, `IEND` last with nothing after it, the `IDAT`
//!   chunks in one run, `PLTE` at most once and before them;
//! - the header: dimensions within the caps, a valid bit depth for the
//!   colour type, compression, filter and interlace methods PNG defines;
//! - the image data: one zlib stream (checksum included) that inflates to
//!   exactly the bytes the header announces, every row starting with a
//!   valid filter type. Inflating uses a small fixed buffer, so a
//!   decompression bomb costs time bounded by the caps, never memory.
//!
//! What is returned is a rebuilt file holding only the chunks needed to
//! show the image (`IHDR`, `PLTE`, `IDAT`, `IEND`) and a few ancillary ones
//! with fixed, checked layouts (`tRNS`, `gAMA`, `sRGB`, `pHYs`); text,
//! profiles, animation and unknown ancillary chunks are dropped, and an
//! unknown critical chunk is refused. Pure: bytes in, bytes out.

use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};
use thiserror::Error;

/// The PNG file signature.
pub const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Largest width or height PNG allows (2^31 - 1).
const MAX_DIMENSION: u32 = i32::MAX as u32;

/// What an image may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PngLimits {
    pub max_width: u32,
    pub max_height: u32,
    /// Largest file, in bytes.
    pub max_bytes: usize,
}

/// A checked image: its dimensions and the rebuilt file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Png {
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PngError {
    #[error("an image of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("not a PNG image (the file does not start with the PNG signature)")]
    Signature,
    #[error("truncated PNG image: {0}")]
    Truncated(&'static str),
    #[error("invalid PNG chunk type at byte {0}")]
    ChunkType(usize),
    #[error("PNG chunk '{0}' fails its CRC check")]
    Crc(String),
    #[error("unknown critical PNG chunk '{0}'")]
    UnknownCritical(String),
    #[error(
        "a PNG image of {width} x {height} pixels exceeds the limit of {max_width} x {max_height}"
    )]
    Dimensions {
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
    },
    #[error("invalid PNG image: {0}")]
    Invalid(&'static str),
    #[error("invalid PNG image data: {0}")]
    Data(&'static str),
}

/// The header's fields.
#[derive(Debug, Clone, Copy)]
struct Header {
    width: u32,
    height: u32,
    bit_depth: u8,
    color_type: u8,
    interlaced: bool,
}

impl Header {
    fn parse(data: &[u8], limits: &PngLimits) -> Result<Header, PngError> {
        if data.len() != 13 {
            return Err(PngError::Invalid("the IHDR chunk must hold 13 bytes"));
        }
        let width = be32(&data[0..4]);
        let height = be32(&data[4..8]);
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(PngError::Invalid(
                "the image has no pixels or impossible dimensions",
            ));
        }
        if width > limits.max_width || height > limits.max_height {
            return Err(PngError::Dimensions {
                width,
                height,
                max_width: limits.max_width,
                max_height: limits.max_height,
            });
        }
        let (bit_depth, color_type) = (data[8], data[9]);
        let depth_ok = match color_type {
            0 => matches!(bit_depth, 1 | 2 | 4 | 8 | 16),
            3 => matches!(bit_depth, 1 | 2 | 4 | 8),
            2 | 4 | 6 => matches!(bit_depth, 8 | 16),
            _ => return Err(PngError::Invalid("unknown colour type")),
        };
        if !depth_ok {
            return Err(PngError::Invalid(
                "bit depth not allowed for the colour type",
            ));
        }
        if data[10] != 0 || data[11] != 0 {
            return Err(PngError::Invalid("unknown compression or filter method"));
        }
        let interlaced = match data[12] {
            0 => false,
            1 => true,
            _ => return Err(PngError::Invalid("unknown interlace method")),
        };
        Ok(Header {
            width,
            height,
            bit_depth,
            color_type,
            interlaced,
        })
    }

    fn channels(&self) -> u64 {
        match self.color_type {
            2 => 3,
            4 => 2,
            6 => 4,
            _ => 1,
        }
    }

    /// Bytes of one row of `width` pixels, without its filter byte.
    fn row_bytes(&self, width: u64) -> u64 {
        (width * self.channels() * u64::from(self.bit_depth)).div_ceil(8)
    }

    /// The image data's layout: (rows, bytes per row including the filter
    /// byte) for each pass that holds pixels (Adam7 has seven).
    fn passes(&self) -> Vec<(u64, u64)> {
        let (w, h) = (u64::from(self.width), u64::from(self.height));
        if !self.interlaced {
            return vec![(h, 1 + self.row_bytes(w))];
        }
        const ADAM7: [(u64, u64, u64, u64); 7] = [
            (0, 0, 8, 8),
            (4, 0, 8, 8),
            (0, 4, 4, 8),
            (2, 0, 4, 4),
            (0, 2, 2, 4),
            (1, 0, 2, 2),
            (0, 1, 1, 2),
        ];
        ADAM7
            .iter()
            .filter_map(|&(x0, y0, dx, dy)| {
                let pw = if w > x0 { (w - x0).div_ceil(dx) } else { 0 };
                let ph = if h > y0 { (h - y0).div_ceil(dy) } else { 0 };
                (pw > 0 && ph > 0).then(|| (ph, 1 + self.row_bytes(pw)))
            })
            .collect()
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// One chunk, borrowed from the file: its type, data, and whole bytes
/// (length, type, data, CRC).
struct Chunk<'a> {
    kind: [u8; 4],
    data: &'a [u8],
    raw: &'a [u8],
}

impl Chunk<'_> {
    fn name(&self) -> String {
        String::from_utf8_lossy(&self.kind).into_owned()
    }
}

/// Splits the file after the signature into chunks, checking lengths,
/// types and CRCs. Stops after `IEND`; bytes after it are an error.
fn chunks(body: &[u8]) -> Result<Vec<Chunk<'_>>, PngError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        let rest = &body[at..];
        if rest.len() < 12 {
            return Err(PngError::Truncated(
                "a chunk is cut short, or IEND is missing",
            ));
        }
        let len = be32(&rest[0..4]) as usize;
        if len > rest.len() - 12 {
            return Err(PngError::Truncated("a chunk is longer than the file"));
        }
        let kind = [rest[4], rest[5], rest[6], rest[7]];
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(PngError::ChunkType(SIGNATURE.len() + at + 4));
        }
        let data = &rest[8..8 + len];
        let crc = be32(&rest[8 + len..12 + len]);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&kind);
        hasher.update(data);
        let chunk = Chunk {
            kind,
            data,
            raw: &rest[..12 + len],
        };
        if hasher.finalize() != crc {
            return Err(PngError::Crc(chunk.name()));
        }
        at += 12 + len;
        let end = &kind == b"IEND";
        out.push(chunk);
        if end {
            if at != body.len() {
                return Err(PngError::Invalid("data after the IEND chunk"));
            }
            return Ok(out);
        }
    }
}

/// Checks the image data: one zlib stream that inflates to exactly the
/// layout of `passes`, each row starting with a filter type of 0 to 4.
fn check_data(idat: &[&[u8]], passes: &[(u64, u64)]) -> Result<(), PngError> {
    // Row boundaries, walked as the bytes come out.
    let mut pass = 0usize;
    let mut rows_left = passes.first().map_or(0, |p| p.0);
    let mut in_row = 0u64;
    let mut check_rows = |bytes: &[u8]| -> Result<(), PngError> {
        let mut i = 0usize;
        while i < bytes.len() {
            if pass >= passes.len() {
                return Err(PngError::Data("more image data than the header announces"));
            }
            let row_len = passes[pass].1;
            if in_row == 0 && bytes[i] > 4 {
                return Err(PngError::Data("a row has an unknown filter type"));
            }
            let take = (row_len - in_row).min((bytes.len() - i) as u64);
            in_row += take;
            i += take as usize;
            if in_row == row_len {
                in_row = 0;
                rows_left -= 1;
                if rows_left == 0 {
                    pass += 1;
                    rows_left = passes.get(pass).map_or(0, |p| p.0);
                }
            }
        }
        Ok(())
    };

    let data = idat.concat();
    let mut input: &[u8] = &data;
    let mut state = InflateState::new_boxed(DataFormat::Zlib);
    let mut out = vec![0u8; 32 * 1024];
    loop {
        let res = inflate(&mut state, input, &mut out, MZFlush::None);
        input = &input[res.bytes_consumed..];
        check_rows(&out[..res.bytes_written])?;
        match res.status {
            Ok(MZStatus::StreamEnd) => break,
            Ok(_) if res.bytes_consumed > 0 || res.bytes_written > 0 => {}
            // No progress: the input ran out before the stream's end.
            Ok(_) | Err(MZError::Buf) => {
                return Err(PngError::Data("the compressed stream is cut short"))
            }
            Err(_) => return Err(PngError::Data("the compressed stream is corrupt")),
        }
    }
    if !input.is_empty() {
        return Err(PngError::Data(
            "bytes after the end of the compressed stream",
        ));
    }
    if pass < passes.len() {
        return Err(PngError::Data("less image data than the header announces"));
    }
    Ok(())
}

/// Checks an ancillary chunk the rebuilt file keeps: false to drop it.
fn keep_ancillary(c: &Chunk<'_>, h: &Header, palette: Option<usize>) -> Result<bool, PngError> {
    let ok = match &c.kind {
        b"tRNS" => match h.color_type {
            0 => c.data.len() == 2,
            2 => c.data.len() == 6,
            3 => palette.is_some_and(|n| !c.data.is_empty() && c.data.len() <= n),
            _ => false,
        },
        b"gAMA" => c.data.len() == 4,
        b"sRGB" => c.data.len() == 1 && c.data[0] <= 3,
        b"pHYs" => c.data.len() == 9 && c.data[8] <= 1,
        _ => return Ok(false),
    };
    if !ok {
        return Err(PngError::Invalid(
            "a tRNS, gAMA, sRGB or pHYs chunk is malformed",
        ));
    }
    Ok(true)
}

/// Checks `bytes` as a PNG image within `limits`; returns its dimensions
/// and the rebuilt file (see the module doc).
pub fn check(bytes: &[u8], limits: &PngLimits) -> Result<Png, PngError> {
    if bytes.len() > limits.max_bytes {
        return Err(PngError::TooLarge {
            size: bytes.len(),
            max: limits.max_bytes,
        });
    }
    if bytes.len() < SIGNATURE.len() || bytes[..SIGNATURE.len()] != SIGNATURE {
        return Err(PngError::Signature);
    }
    let all = chunks(&bytes[SIGNATURE.len()..])?;
    let first = &all[0];
    if &first.kind != b"IHDR" {
        return Err(PngError::Invalid("the first chunk is not IHDR"));
    }
    let header = Header::parse(first.data, limits)?;

    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&SIGNATURE);
    out.extend_from_slice(first.raw);
    let mut palette: Option<usize> = None;
    let mut idat: Vec<&[u8]> = Vec::new();
    let mut idat_done = false;
    for c in &all[1..] {
        let critical = c.kind[0].is_ascii_uppercase();
        match &c.kind {
            b"IHDR" => return Err(PngError::Invalid("more than one IHDR chunk")),
            b"PLTE" => {
                if palette.is_some() || !idat.is_empty() {
                    return Err(PngError::Invalid(
                        "a PLTE chunk repeated or after the image data",
                    ));
                }
                let n = c.data.len() / 3;
                let max = if header.color_type == 3 {
                    1usize << header.bit_depth
                } else {
                    256
                };
                if matches!(header.color_type, 0 | 4) || c.data.len() % 3 != 0 || n == 0 || n > max
                {
                    return Err(PngError::Invalid(
                        "a PLTE chunk that does not fit the header",
                    ));
                }
                palette = Some(n);
                out.extend_from_slice(c.raw);
            }
            b"IDAT" => {
                if idat_done {
                    return Err(PngError::Invalid("IDAT chunks not in one run"));
                }
                idat.push(c.data);
                out.extend_from_slice(c.raw);
            }
            b"IEND" => {
                if !c.data.is_empty() {
                    return Err(PngError::Invalid("the IEND chunk holds data"));
                }
                out.extend_from_slice(c.raw);
            }
            _ if critical => return Err(PngError::UnknownCritical(c.name())),
            _ => {
                // Ancillary chunks count only before the image data.
                if idat.is_empty() && keep_ancillary(c, &header, palette)? {
                    out.extend_from_slice(c.raw);
                }
            }
        }
        if !idat.is_empty() && &c.kind != b"IDAT" {
            idat_done = true;
        }
    }
    if idat.is_empty() {
        return Err(PngError::Invalid("no IDAT chunk"));
    }
    if header.color_type == 3 && palette.is_none() {
        return Err(PngError::Invalid("a palette image without a PLTE chunk"));
    }
    check_data(&idat, &header.passes())?;
    Ok(Png {
        width: header.width,
        height: header.height,
        bytes: out,
    })
}

#[cfg(test)]
#[path = "png_tests.rs"]
mod tests;
