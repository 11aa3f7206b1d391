//! The bytes of an exec request, without R's `serialize()` on every
//! execution.
//!
//! An exec request is `serialize(list(code = code, plots = ..., console =
//! ...), NULL, xdr = FALSE)`. The host serializes the list once per
//! settings with an empty `code` (the template) and the code is spliced
//! into it here: R's `serialize()` allocates a table of references on every
//! call, a tenth of the host's time in a short round trip. Only a template
//! of exactly the expected shape is used; anything else is refused, and the
//! caller serializes in R.

use crate::plain::{HAS_ATTR, STRSXP, VECSXP};
use thiserror::Error;

/// CHARSXP flags (type 9, gp encoding bits at 12..): an ASCII string and a
/// UTF-8 one.
const ASCII_CHARSXP: u32 = 0x0004_0009;
const UTF8_CHARSXP: u32 = 0x0000_8009;

/// Why a template or a code string cannot be spliced.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SpliceError {
    #[error("the template is not a serialized list whose first element is \"\"")]
    Template,
    #[error("the code is longer than a serialized string can be")]
    TooLong,
}

/// Where the first element's string starts in `template`: after R's header
/// (format "B\n", version 3 with its native encoding) and the headers of a
/// list with attributes and of a character vector of length one; that
/// string must be "" (ASCII, length 0).
fn code_offset(template: &[u8]) -> Option<usize> {
    let int = |at: usize| crate::plain::int_at(template, at);
    let list = crate::plain::header_len(template)?;
    let ok = int(list)? == VECSXP | HAS_ATTR
        && int(list + 4)? >= 1
        && int(list + 8)? == STRSXP
        && int(list + 12)? == 1
        && int(list + 16)? == ASCII_CHARSXP
        && int(list + 20)? == 0;
    ok.then_some(list + 16)
}

/// `template` with `code` (UTF-8) as the first element's string.
pub fn exec_payload(template: &[u8], code: &str) -> Result<Vec<u8>, SpliceError> {
    let at = code_offset(template).ok_or(SpliceError::Template)?;
    let len = i32::try_from(code.len()).map_err(|_| SpliceError::TooLong)?;
    let flags = if code.is_ascii() {
        ASCII_CHARSXP
    } else {
        UTF8_CHARSXP
    };
    let mut out = Vec::with_capacity(template.len() + code.len());
    out.extend_from_slice(&template[..at]);
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(code.as_bytes());
    out.extend_from_slice(&template[at + 8..]);
    Ok(out)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
