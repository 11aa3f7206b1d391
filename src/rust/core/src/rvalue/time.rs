//! Dates, times and time zones.
//!
//! A time zone from the sandbox reaches the host's C library when the
//! host formats the value: glibc opens the file a zone names (a FIFO
//! there hangs the host, `/proc/self/fd/N` reads the host's own files),
//! and R 4.2's `format.POSIXlt()` copies zone names into a fixed buffer
//! (a 300-byte name aborts the host with "buffer overflow detected"). So
//! a time zone, wherever it appears (a `tzone` attribute, a `POSIXlt`'s
//! `zone` component), is a name of at most [`MAX_ZONE_BYTES`] bytes from
//! the characters of IANA names and POSIX TZ rules, and never a path: no
//! leading `/` or `:`, no component starting with `.`.

use super::attrs::AttrSummary;
use super::reader::{printable, Reader};
use super::summary::{Data, Summary};
use super::sxp::*;
use super::ValueError;

/// Longest time zone name or abbreviation accepted. The IANA names and
/// POSIX rules R users write stay under 40; R 4.2 overflows at about 256.
pub const MAX_ZONE_BYTES: usize = 64;

/// The names of a `POSIXlt`'s components, in R's order; R writes the
/// first 9 (for UTC) or all 11.
const LT_NAMES: [&[u8]; 11] = [
    b"sec", b"min", b"hour", b"mday", b"mon", b"year", b"wday", b"yday", b"isdst", b"zone",
    b"gmtoff",
];

/// Why `name` cannot be a time zone, if it cannot.
pub fn zone_problem(name: &[u8]) -> Option<String> {
    let shown = printable(name);
    if name.len() > MAX_ZONE_BYTES {
        return Some(format!(
            "time zone '{shown}' is longer than {MAX_ZONE_BYTES} bytes"
        ));
    }
    let allowed = |c: &u8| c.is_ascii_alphanumeric() || b"/_+-.,:<>".contains(c);
    if !name.iter().all(allowed) {
        return Some(format!(
            "time zone '{shown}' holds characters other than letters, digits and / _ + - . , : < >"
        ));
    }
    if name.starts_with(b"/") || name.starts_with(b":") {
        return Some(format!(
            "time zone '{shown}' names a file; use a zone name such as 'Europe/Paris' or 'UTC'"
        ));
    }
    if name
        .split(|&c| c == b'/')
        .any(|part| part.starts_with(b"."))
    {
        return Some(format!(
            "time zone '{shown}' leads out of the time zone database"
        ));
    }
    None
}

/// A `tzone` attribute, on any value: one to three zone names.
pub fn check_tzone_attr(r: &Reader<'_>, val: &Summary) -> Result<(), ValueError> {
    let invalid = |problem: String| ValueError::Invalid {
        what: "'tzone' attribute".into(),
        problem,
    };
    let Some((s, e)) = val.str_span().filter(|_| val.ty == STRSXP) else {
        return Err(invalid("it is not a plain character vector".into()));
    };
    if !(1..=3).contains(&val.len) {
        return Err(invalid(format!(
            "it holds {} names, not one to three",
            val.len
        )));
    }
    for name in r.strings(s, e) {
        let name = name.ok_or_else(|| invalid("a time zone is NA".into()))?;
        if let Some(problem) = zone_problem(name) {
            return Err(invalid(problem));
        }
    }
    Ok(())
}

fn numeric(ty: u8) -> bool {
    matches!(ty, INTSXP | REALSXP)
}

/// `Date` and `POSIXct`: numbers (days or seconds). Their `tzone` is
/// checked wherever it appears.
pub fn instant(owner: &Summary) -> Result<(), String> {
    if numeric(owner.ty) {
        Ok(())
    } else {
        Err(format!(
            "it is stored as {}, not as numbers",
            type_name(owner.ty)
        ))
    }
}

/// `difftime` (and `hms`): numbers with units, one string. (R makes
/// secs, mins, hours, days or weeks; others print as they are.)
pub fn difftime(owner: &Summary, seen: &AttrSummary) -> Result<(), String> {
    instant(owner)?;
    match &seen.units {
        Some(u) if u.ty == STRSXP && u.len == 1 && u.str_span().is_some() => {
            if matches!(u.data, Data::Str { no_na: true, .. }) {
                Ok(())
            } else {
                Err("its units are NA".into())
            }
        }
        _ => Err("it has no units (one string)".into()),
    }
}

/// `POSIXlt`: a list of R's 9 or 11 named components, numbers of one
/// common length and zone abbreviations that are zone names. Returns the
/// common length (its rows in a data frame).
pub fn posixlt(r: &Reader<'_>, owner: &Summary, seen: &AttrSummary) -> Result<u64, String> {
    let kept = owner
        .list
        .as_ref()
        .map(|l| l.kept.as_slice())
        .unwrap_or(&[]);
    if owner.ty != VECSXP || !(owner.len == 9 || owner.len == 11) || kept.len() as u64 != owner.len
    {
        return Err("it is not a list of 9 or 11 components".into());
    }
    let names = seen
        .names
        .as_ref()
        .and_then(|n| n.str_span())
        .map(|(s, e)| r.strings(s, e));
    let in_order =
        names.is_some_and(|names| names.zip(LT_NAMES.iter()).all(|(n, want)| n == Some(*want)));
    if !in_order {
        return Err("its components are not named sec, min, hour, ..., in R's order".into());
    }
    let rows = kept[0].len;
    for (i, c) in kept.iter().enumerate() {
        let name = String::from_utf8_lossy(LT_NAMES[i]);
        let type_ok = if i == 9 {
            c.ty == STRSXP
        } else {
            numeric(c.ty)
        };
        if !type_ok {
            return Err(format!("its component '{name}' is {}", type_name(c.ty)));
        }
        if c.len != rows {
            return Err(format!(
                "its components differ in length ('sec' has {rows}, '{name}' has {})",
                c.len
            ));
        }
    }
    if let Some(zone) = kept.get(9) {
        let Some((s, e)) = zone.str_span() else {
            return Err("its component 'zone' is not a plain character vector".into());
        };
        if let Some(problem) = r.strings(s, e).flatten().find_map(zone_problem) {
            return Err(format!("its component 'zone': {problem}"));
        }
    }
    Ok(rows)
}

#[cfg(test)]
#[path = "time_tests.rs"]
mod tests;
