//! The expanded size of a value: what the host holds once R has built it
//! and materialised its compact parts.
//!
//! A stream of a hundred bytes can stand for gigabytes: a compact
//! sequence (`seq_len(1.5e9)`), compact row names (`c(NA, -n)`), or a
//! deferred conversion of either to strings. The host expands them when
//! it prints, formats, subsets or duplicates the value, so their full size
//! counts against the same limit as the stream itself.
//!
//! Sizes are payload bytes: 4 per logical or integer, 8 per double, 16
//! per complex, 1 per raw, 8 per list element or string (the pointer)
//! plus each string's bytes; a deferred string conversion counts 8 plus
//! the widest number it can print (11 characters for an integer, 24 for
//! a double); compact row names count as the integers `1:n`.

use super::sxp::{CPLXSXP, INTSXP, LGLSXP, RAWSXP, REALSXP, STRSXP, VECSXP};
use super::ValueError;

/// Bytes per element of a vector of type `ty`, strings' text aside.
pub fn element_size(ty: u8) -> u64 {
    match ty {
        LGLSXP | INTSXP => 4,
        REALSXP | STRSXP | VECSXP => 8,
        CPLXSXP => 16,
        RAWSXP => 1,
        _ => 0,
    }
}

/// The running total of one value's expanded size.
pub struct Budget {
    used: u64,
    max: u64,
}

impl Budget {
    pub fn new(max: usize) -> Budget {
        Budget {
            used: 0,
            max: max as u64,
        }
    }

    /// Counts `bytes` more. `what` describes the part (for the message
    /// when that part alone is over the limit).
    pub fn add(&mut self, bytes: u64, what: impl FnOnce() -> String) -> Result<(), ValueError> {
        if bytes > self.max {
            return Err(self.over(what(), bytes));
        }
        self.used = self.used.saturating_add(bytes);
        if self.used > self.max {
            return Err(self.over("the value".into(), self.used));
        }
        Ok(())
    }

    fn over(&self, what: String, size: u64) -> ValueError {
        ValueError::Expands {
            what,
            size,
            max: usize::try_from(self.max).unwrap_or(usize::MAX),
        }
    }
}

/// `count * size`, saturating (lengths go up to 2^52).
pub fn times(count: u64, size: u64) -> u64 {
    count.saturating_mul(size)
}

/// A count for messages: from a million on, the shorter of its digits and
/// its exact scientific form (`1500000000` reads better as `1.5e9`).
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    if n < 1_000_000 {
        return digits;
    }
    // Counts stay below 2^53, so the double is exact.
    let sci = format!("{:e}", n as f64);
    if sci.len() < digits.len() {
        sci
    } else {
        digits
    }
}

/// A size and the limit it exceeds, for messages: in binary units, or in
/// bytes when the units would show them equal.
pub fn over_limit(size: u64, max: u64) -> (String, String) {
    let (a, b) = (bytes(size), bytes(max));
    if a == b {
        (format!("{size} bytes"), format!("{max} bytes"))
    } else {
        (a, b)
    }
}

/// A byte size for messages, in binary units: `8 MiB`, `5.6 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: &[&str] = &["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

#[cfg(test)]
#[path = "size_tests.rs"]
mod tests;
