//! Checks R serialization streams from the sandbox before the host turns
//! them into R objects.
//!
//! The sandboxed child sends values as the bytes of `serialize(x, NULL)`.
//! The child is hostile, and `unserialize()` of hostile bytes can run code
//! (promises, closures, ALTREP classes that load packages, CVE-2024-27322),
//! so the host walks the stream here first and only hands it to R when every
//! item in it is plain data. Passing that walk makes a value inert, not
//! harmless: the host then prints, formats, summarises and stores it, and
//! R's own C code trusts what it is given. So a value must also be safe to
//! use.
//!
//! - Types ([`walk`]): `NULL`, logical, integer, double, complex,
//!   character and raw vectors, generic lists, attributes (pairlists whose
//!   tags are symbols), and the compact ALTREP forms base R writes
//!   ([`altrep`]). Everything else is refused, naming the type.
//! - Strings ([`strings`]): no NUL bytes; valid UTF-8 where UTF-8 is
//!   claimed.
//! - Attributes ([`attrs`]): `names`, `dim`, `dimnames`, `class`, `tsp`
//!   and compact `row.names` as R's C code expects them.
//! - Classes ([`classes`], [`time`]): only allowed S3 classes, each with
//!   the shape its methods rely on (time zones are names, never paths;
//!   data frame columns agree with the row names; no control characters
//!   where a print method `cat()`s strings; ...).
//! - Size ([`size`]): the expanded size of the value, compact forms
//!   included, within the same limit as the stream.
//! - Depth: R's reader recurses on lists and on attribute lists, so both
//!   count towards `max_depth`.
//!
//! The class, string-encoding and time-zone rules apply to values from the
//! sandbox (when `allowed_classes` is set); values going into the sandbox
//! are only checked for types, NUL bytes, depth and size.
//!
//! The checker never recurses (an explicit stack bounded by `max_depth`),
//! never allocates from an announced length (lengths are compared with the
//! bytes that remain before anything else happens), and every step consumes
//! input, so it finishes in time linear in the input. Per-class rules need
//! facts that come earlier in the stream than the class that asks for them;
//! the checker keeps a fixed-size [`summary`] of each finished item and of
//! at most [`summary::KEPT`] elements of each list being read (never
//! nested), and one slot per attribute with rules, so its memory is bounded
//! by the depth times a constant, and each fact is computed once.

mod altrep;
mod attrs;
mod classes;
mod reader;
mod reply;
mod size;
mod strings;
mod summary;
mod sxp;
mod time;
mod walk;

#[cfg(test)]
mod test_support;

use thiserror::Error;

pub use attrs::MAX_DIMS;
pub use classes::MAX_VERSIONS;
pub use time::MAX_ZONE_BYTES;

/// Default cap on nesting (levels of R's recursive reader: lists and
/// attribute lists).
pub const DEFAULT_MAX_DEPTH: usize = 512;

/// Default cap on the size of one serialized value, and on its expanded
/// size (8 MiB, the frame cap).
pub const DEFAULT_MAX_BYTES: usize = 8 * 1024 * 1024;

/// S3 classes a value from the sandbox may carry by default. A class is
/// not data: the host dispatches on it when it prints or formats the
/// value, and some methods act on what the value holds (`print()` of a
/// `"vignette"` opens a file or URL the object names). These classes'
/// methods only format data.
pub const DEFAULT_ALLOWED_CLASSES: &[&str] = &[
    // Data structures.
    "data.frame",
    "factor",
    "ordered",
    "table",
    "xtabs",
    "ftable",
    "matrix",
    "array",
    "ts",
    "mts",
    "AsIs",
    "noquote",
    "listof",
    "simple.list",
    "Dlist",
    "by",
    // Dates, times and numbers.
    "Date",
    "POSIXct",
    "POSIXt",
    "POSIXlt",
    "difftime",
    "hexmode",
    "octmode",
    "roman",
    "numeric_version",
    "package_version",
    "R_system_version",
    // Results of common base/stats functions (their print methods format).
    "summaryDefault",
    "htest",
    "pairwise.htest",
    "power.htest",
    "density",
    // Conditions returned as values (tryCatch(..., error = function(e) e)).
    "condition",
    "simpleCondition",
    "simpleError",
    "simpleWarning",
    "simpleMessage",
    "error",
    "warning",
    "message",
    // Popular data classes whose print methods format. (Not "data.table":
    // see `classes`.)
    "tbl_df",
    "tbl",
    "integer64",
    "hms",
    "json",
    "glue",
    // glue strings are c("glue", "character"); base R has no methods for
    // "character" as a class, so it only labels a character vector.
    "character",
];

/// Limits applied while checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLimits {
    /// Deepest nesting of lists, attribute lists and ALTREP states.
    pub max_depth: usize,
    /// Largest accepted stream, and largest expanded size of the value it
    /// holds, in bytes.
    pub max_bytes: usize,
    /// S3 classes accepted in `class` attributes, whose rules then apply;
    /// `None` accepts any class and skips the class, encoding and time
    /// zone rules (for values going into the sandbox, which only the
    /// sandbox will handle).
    pub allowed_classes: Option<Vec<String>>,
}

impl Default for CheckLimits {
    fn default() -> Self {
        CheckLimits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_bytes: DEFAULT_MAX_BYTES,
            allowed_classes: Some(
                DEFAULT_ALLOWED_CLASSES
                    .iter()
                    .map(|c| c.to_string())
                    .collect(),
            ),
        }
    }
}

/// Why a stream was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ValueError {
    #[error("unsupported serialization format: {0}")]
    UnsupportedFormat(String),
    #[error("truncated value")]
    Truncated,
    #[error("values of type '{0}' cannot cross the sandbox boundary")]
    Forbidden(&'static str),
    #[error("ALTREP class '{class}' from package '{package}' cannot cross the sandbox boundary")]
    AltrepClass { class: String, package: String },
    #[error("values of class '{0}' cannot cross the sandbox boundary (the host dispatches on classes; allow it with options(securer.allowed_classes) if its methods are safe)")]
    Class(String),
    #[error("unknown type code {code} at byte {offset} of the serialized value")]
    UnknownType { code: u8, offset: usize },
    #[error("malformed value at byte {offset}: {what}")]
    Malformed { what: &'static str, offset: usize },
    #[error("value nested deeper than {0} levels (lists and attribute lists count)")]
    TooDeep(usize),
    #[error("value of {size} bytes exceeds limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    #[error("{what} expands to {} in memory, above the {} limit", size::over_limit(*size, *max as u64).0, size::over_limit(*size, *max as u64).1)]
    Expands { what: String, size: u64, max: usize },
    #[error("invalid string at byte {offset} of the serialized value: {problem}")]
    BadString {
        problem: &'static str,
        offset: usize,
    },
    #[error("invalid {what}: {problem}")]
    Invalid { what: String, problem: String },
}

impl ValueError {
    /// Whether R itself can print the refused value safely. The allowlist
    /// refuses code and classes because the *host* must not hold or
    /// dispatch on them, yet R prints them every day; the per-class
    /// validation refuses what R's own printing mishandles (a time zone
    /// that overflows a buffer or names a file, row names that disagree
    /// with the columns), and a malformed stream is no value at all. The
    /// child runtime prints the first kind into its console transcript and
    /// not the second.
    pub fn printable(&self) -> bool {
        matches!(
            self,
            ValueError::Forbidden(_)
                | ValueError::AltrepClass { .. }
                | ValueError::Class(_)
                | ValueError::TooDeep(_)
                | ValueError::TooLarge { .. }
                | ValueError::Expands { .. }
        )
    }
}

/// Checks `bytes` with [`CheckLimits::default`].
pub fn check(bytes: &[u8]) -> Result<(), ValueError> {
    check_with(bytes, &CheckLimits::default())
}

/// Checks that `bytes` is one complete serialized R value made only of
/// allowed types, safe for the host to use (see the module doc), and
/// nothing after it.
pub fn check_with(bytes: &[u8], limits: &CheckLimits) -> Result<(), ValueError> {
    walk_value(bytes, limits).map(|_| ())
}

/// As [`check_with`], for the payload of a reply to an execution: also
/// whether it is a plain result, one that the host takes as its answer at
/// once (see [`reply::is_plain`]).
pub fn check_reply(bytes: &[u8], limits: &CheckLimits) -> Result<bool, ValueError> {
    let (reader, top) = walk_value(bytes, limits)?;
    Ok(reply::is_plain(&reader, &top))
}

/// Checks `bytes`; the reader and the value's summary.
fn walk_value<'a>(
    bytes: &'a [u8],
    limits: &'a CheckLimits,
) -> Result<(reader::Reader<'a>, summary::Summary), ValueError> {
    if bytes.len() > limits.max_bytes {
        return Err(ValueError::TooLarge {
            size: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let reader = reader::read_header(bytes)?;
    let mut checker = walk::Checker::new(
        reader,
        limits.max_depth,
        limits.max_bytes,
        limits.allowed_classes.as_deref(),
    );
    let top = checker.run()?;
    match checker.r.remaining() {
        0 => Ok((checker.r, top)),
        n => Err(ValueError::TrailingBytes(n)),
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
