//! Checks R serialization streams against the allowlist of DESIGN.md.
//!
//! The sandboxed child sends values as the bytes of `serialize(x, NULL)`.
//! The child is hostile, and `unserialize()` of hostile bytes can run code
//! (promises, closures, ALTREP classes that load packages, CVE-2024-27322),
//! so the host walks the stream here first and only hands it to R when every
//! item in it is plain data.
//!
//! The walk mirrors `ReadItem` in R's `src/main/serialize.c` byte for byte:
//! the same flags layout, the same length encoding, the same reference table
//! (only symbols can ever enter it, since everything else that R adds to it —
//! environments, external pointers, weak references, package, namespace and
//! persistent references — is refused on sight).
//!
//! Accepted: `NULL`, logical, integer, double, complex, character and raw
//! vectors, generic lists, attributes (pairlists whose tags are symbols), and
//! the compact ALTREP forms that base R writes (`compact_intseq`,
//! `compact_realseq`, `deferred_string`, `wrap_*`), whose state is checked
//! with the same rules plus the shape each class's unserialize method relies
//! on. Everything else is refused, naming the type.
//!
//! Beyond the type allowlist, the attributes that R's C code trusts without
//! re-checking are validated: `names` (character, same length), `dim`
//! (non-negative integers whose product is the length), `dimnames` (a list
//! of `NULL`/character matching `dim`), `class` (character), `tsp` (three
//! doubles) and compact `row.names`. So are the sortedness and no-NA claims
//! carried by `wrap_*` metadata, which R's fast paths believe.
//!
//! The checker never recurses (an explicit stack bounded by `max_depth`),
//! never allocates from an announced length (lengths are compared with the
//! bytes that remain before anything else happens), and every step consumes
//! input, so it finishes in time linear in the input.

use thiserror::Error;

/// Default cap on nesting (frames of the explicit stack).
pub const DEFAULT_MAX_DEPTH: usize = 512;

/// Default cap on the size of one serialized value (8 MiB, the frame cap).
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
    // Popular data classes whose print methods format.
    "tbl_df",
    "tbl",
    "data.table",
    "integer64",
    "hms",
    "json",
    "glue",
];

/// Limits applied while checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLimits {
    /// Deepest nesting of lists, attribute lists and ALTREP states.
    pub max_depth: usize,
    /// Largest accepted stream, in bytes.
    pub max_bytes: usize,
    /// S3 classes accepted in `class` attributes; `None` accepts any (for
    /// values going into the sandbox, which only the sandbox will handle).
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
    #[error("value nested deeper than {0} levels")]
    TooDeep(usize),
    #[error("value of {size} bytes exceeds limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
}

/// Checks `bytes` with [`CheckLimits::default`].
pub fn check(bytes: &[u8]) -> Result<(), ValueError> {
    check_with(bytes, &CheckLimits::default())
}

/// Checks that `bytes` is one complete serialized R value made only of
/// allowed types, and nothing after it.
pub fn check_with(bytes: &[u8], limits: &CheckLimits) -> Result<(), ValueError> {
    if bytes.len() > limits.max_bytes {
        return Err(ValueError::TooLarge {
            size: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let reader = read_header(bytes)?;
    let mut checker = Checker {
        r: reader,
        syms: Vec::new(),
        stack: Vec::new(),
        max_depth: limits.max_depth,
        collected: None,
        allowed_classes: limits.allowed_classes.as_deref(),
    };
    checker.run()?;
    match checker.r.remaining() {
        0 => Ok(()),
        n => Err(ValueError::TrailingBytes(n)),
    }
}

/// SEXPTYPE codes, and the pseudo-types used only in streams
/// (serialize.c).
mod sxp {
    pub const NILSXP: u8 = 0;
    pub const SYMSXP: u8 = 1;
    pub const LISTSXP: u8 = 2;
    pub const CLOSXP: u8 = 3;
    pub const ENVSXP: u8 = 4;
    pub const PROMSXP: u8 = 5;
    pub const LANGSXP: u8 = 6;
    pub const SPECIALSXP: u8 = 7;
    pub const BUILTINSXP: u8 = 8;
    pub const CHARSXP: u8 = 9;
    pub const LGLSXP: u8 = 10;
    pub const INTSXP: u8 = 13;
    pub const REALSXP: u8 = 14;
    pub const CPLXSXP: u8 = 15;
    pub const STRSXP: u8 = 16;
    pub const DOTSXP: u8 = 17;
    pub const ANYSXP: u8 = 18;
    pub const VECSXP: u8 = 19;
    pub const EXPRSXP: u8 = 20;
    pub const BCODESXP: u8 = 21;
    pub const EXTPTRSXP: u8 = 22;
    pub const WEAKREFSXP: u8 = 23;
    pub const RAWSXP: u8 = 24;
    pub const S4SXP: u8 = 25;
    pub const ALTREP_SXP: u8 = 238;
    pub const ATTRLISTSXP: u8 = 239;
    pub const ATTRLANGSXP: u8 = 240;
    pub const BASEENV_SXP: u8 = 241;
    pub const EMPTYENV_SXP: u8 = 242;
    pub const BCREPREF: u8 = 243;
    pub const BCREPDEF: u8 = 244;
    pub const GENERICREFSXP: u8 = 245;
    pub const CLASSREFSXP: u8 = 246;
    pub const PERSISTSXP: u8 = 247;
    pub const PACKAGESXP: u8 = 248;
    pub const NAMESPACESXP: u8 = 249;
    pub const BASENAMESPACE_SXP: u8 = 250;
    pub const MISSINGARG_SXP: u8 = 251;
    pub const UNBOUNDVALUE_SXP: u8 = 252;
    pub const GLOBALENV_SXP: u8 = 253;
    pub const NILVALUE_SXP: u8 = 254;
    pub const REFSXP: u8 = 255;
}

use sxp::*;

const NA_INTEGER: i32 = i32::MIN;
/// Longest encoding name R accepts in a version-3 header (R_CODESET_MAX).
const CODESET_MAX: i32 = 63;
/// R_XLEN_T_MAX: the longest vector R can hold.
const XLEN_MAX: f64 = 4_503_599_627_370_496.0;
/// Longest compact sequence accepted as a `dim` attribute.
const MAX_SEQ_DIMS: u64 = 64;

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

/// The name used in refusals for a type that is never allowed.
fn forbidden_name(ty: u8) -> Option<&'static str> {
    Some(match ty {
        SYMSXP => "symbol",
        LISTSXP | ATTRLISTSXP => "pairlist",
        CLOSXP => "closure",
        ENVSXP | BASEENV_SXP | EMPTYENV_SXP | GLOBALENV_SXP | BASENAMESPACE_SXP | NAMESPACESXP
        | PACKAGESXP => "environment",
        PROMSXP => "promise",
        LANGSXP | ATTRLANGSXP => "language object",
        SPECIALSXP | BUILTINSXP => "builtin function",
        DOTSXP => "...",
        ANYSXP => "any",
        EXPRSXP => "expression",
        BCODESXP | BCREPDEF | BCREPREF => "bytecode",
        EXTPTRSXP => "external pointer",
        WEAKREFSXP => "weak reference",
        S4SXP => "S4 object",
        PERSISTSXP => "persistent reference",
        GENERICREFSXP | CLASSREFSXP => "class reference",
        MISSINGARG_SXP => "missing argument",
        UNBOUNDVALUE_SXP => "unbound value",
        _ => return None,
    })
}

/// Types this checker understands (allowed somewhere).
fn is_known(ty: u8) -> bool {
    matches!(
        ty,
        CHARSXP
            | LGLSXP
            | INTSXP
            | REALSXP
            | CPLXSXP
            | STRSXP
            | VECSXP
            | RAWSXP
            | ALTREP_SXP
            | NILVALUE_SXP
            | REFSXP
    )
}

/// The error for an item of type `ty` where it does not belong.
fn unexpected(ty: u8, what: &'static str, offset: usize) -> ValueError {
    if let Some(name) = forbidden_name(ty) {
        ValueError::Forbidden(name)
    } else if is_known(ty) {
        ValueError::Malformed { what, offset }
    } else {
        ValueError::UnknownType { code: ty, offset }
    }
}

fn malformed(what: &'static str, offset: usize) -> ValueError {
    ValueError::Malformed { what, offset }
}

/// Printable, bounded rendering of child-supplied names for messages.
fn printable(bytes: &[u8]) -> String {
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
struct Flags {
    raw: i32,
    ty: u8,
    has_attr: bool,
    has_tag: bool,
    /// Bit 4 of the gp field (S4_OBJECT_MASK), i.e. bit 16 of the word.
    s4: bool,
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

    /// Refuses the S4 bit on items whose gp field R restores.
    fn refuse_s4(&self) -> Result<(), ValueError> {
        if self.s4 {
            Err(ValueError::Forbidden("S4 object"))
        } else {
            Ok(())
        }
    }
}

/// Cursor over the stream.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ValueError> {
        let end = self.pos.checked_add(n).ok_or(ValueError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(ValueError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn int(&mut self) -> Result<i32, ValueError> {
        let b: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| ValueError::Truncated)?;
        Ok(if self.big_endian {
            i32::from_be_bytes(b)
        } else {
            i32::from_le_bytes(b)
        })
    }

    fn flags(&mut self) -> Result<Flags, ValueError> {
        self.int().map(Flags::new)
    }

    /// A vector length (ReadLENGTH): an int, or -1 then upper and lower
    /// halves of a long length.
    fn length(&mut self) -> Result<u64, ValueError> {
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
    fn need(&self, count: u64, size: u64) -> Result<u64, ValueError> {
        match count.checked_mul(size) {
            Some(n) if n <= self.remaining() as u64 => Ok(n),
            _ => Err(ValueError::Truncated),
        }
    }

    /// Skips `count` fixed-size elements; returns their byte range.
    fn elems(&mut self, count: u64, size: u64) -> Result<(usize, usize), ValueError> {
        let n = self.need(count, size)?;
        let start = self.pos;
        self.take(usize::try_from(n).map_err(|_| ValueError::Truncated)?)?;
        Ok((start, self.pos))
    }

    fn slice(&self, start: usize, end: usize) -> &'a [u8] {
        self.buf.get(start..end).unwrap_or(&[])
    }

    fn ints(&self, start: usize, end: usize) -> impl Iterator<Item = i32> + 'a {
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

    fn doubles(&self, start: usize, end: usize) -> impl Iterator<Item = f64> + 'a {
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
}

/// Reads the format, versions and (version 3) native encoding.
fn read_header(bytes: &[u8]) -> Result<Reader<'_>, ValueError> {
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
        }
        v => {
            return Err(ValueError::UnsupportedFormat(format!(
                "serialization version {v}"
            )))
        }
    }
    Ok(r)
}

/// What the checker knows about the data of a finished item.
#[derive(Debug, Clone, Copy)]
enum Data {
    /// Nothing needed later.
    Opaque,
    /// Plain logical/integer/double payload at this byte range.
    Plain(usize, usize),
    /// Compact sequence `first, first + inc, ...` (length in the shape).
    Seq { first: f64, inc: f64 },
    /// Character vector, with whether it is known to hold no `NA`, and
    /// the byte range of its elements when it is a plain one.
    Str {
        no_na: bool,
        span: Option<(usize, usize)>,
    },
}

/// A finished item, as its parent sees it.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// SEXPTYPE of the value R builds (`NILSXP` for `NULL`).
    ty: u8,
    len: u64,
    altrep: bool,
    data: Data,
}

impl Shape {
    const NULL: Shape = Shape {
        ty: NILSXP,
        len: 0,
        altrep: false,
        data: Data::Opaque,
    };
}

/// The base-R ALTREP classes that may cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AltClass {
    CompactIntseq,
    CompactRealseq,
    DeferredString,
    /// `wrap_*`, with the type it wraps.
    Wrap(u8),
}

impl AltClass {
    fn lookup(class: &[u8], package: &[u8]) -> Option<AltClass> {
        if package != b"base" {
            return None;
        }
        Some(match class {
            b"compact_intseq" => AltClass::CompactIntseq,
            b"compact_realseq" => AltClass::CompactRealseq,
            b"deferred_string" => AltClass::DeferredString,
            b"wrap_integer" => AltClass::Wrap(INTSXP),
            b"wrap_logical" => AltClass::Wrap(LGLSXP),
            b"wrap_real" => AltClass::Wrap(REALSXP),
            b"wrap_complex" => AltClass::Wrap(CPLXSXP),
            b"wrap_raw" => AltClass::Wrap(RAWSXP),
            b"wrap_string" => AltClass::Wrap(STRSXP),
            b"wrap_list" => AltClass::Wrap(VECSXP),
            _ => return None,
        })
    }

    fn base_type(self) -> u8 {
        match self {
            AltClass::CompactIntseq => INTSXP,
            AltClass::CompactRealseq => REALSXP,
            AltClass::DeferredString => STRSXP,
            AltClass::Wrap(ty) => ty,
        }
    }
}

/// Attributes seen so far in one attribute list.
#[derive(Debug, Default)]
struct Seen {
    names: bool,
    class: bool,
    tsp: bool,
    row_names: bool,
    dim: Option<Vec<u64>>,
    dimnames: Option<Vec<Shape>>,
}

/// Suspended work on the explicit stack.
#[derive(Debug)]
enum Frame {
    /// A generic list with `left` elements still to read.
    List {
        left: u64,
        shape: Shape,
        has_attr: bool,
        /// Element shapes, kept only for a `dimnames` value.
        collected: Option<Vec<Shape>>,
    },
    /// An attribute list of `owner`, waiting for the value tagged `tag`.
    Attrs {
        owner: Shape,
        tag: usize,
        seen: Seen,
        /// Passed on to the parent when the owner is done.
        carry: Option<Vec<Shape>>,
    },
    /// The state pairlist of a `deferred_string` or `wrap_*`, waiting
    /// for its CAR.
    AltState { class: AltClass },
    /// Attributes of a `deferred_string`'s info are being read; the
    /// ALTREP's own attributes come next.
    AltAttrs { shape: Shape },
}

/// What to do next.
enum Step {
    /// Read a value (collecting element shapes if it is a list).
    Child { collect: bool },
    /// An item finished with this shape.
    Done(Shape),
}

struct Checker<'a> {
    r: Reader<'a>,
    allowed_classes: Option<&'a [String]>,
    /// Reference table: byte ranges of symbol names, in the order R adds
    /// them. Nothing else R would add survives to be referenced.
    syms: Vec<(usize, usize)>,
    stack: Vec<Frame>,
    max_depth: usize,
    /// Element shapes of a just-finished collected list.
    collected: Option<Vec<Shape>>,
}

impl<'a> Checker<'a> {
    fn run(&mut self) -> Result<(), ValueError> {
        let mut step = self.start_value(false)?;
        loop {
            step = match step {
                Step::Child { collect } => self.start_value(collect)?,
                Step::Done(shape) => {
                    let collected = self.collected.take();
                    match self.stack.pop() {
                        None => return Ok(()),
                        Some(frame) => self.resume(frame, shape, collected)?,
                    }
                }
            };
        }
    }

    fn push(&mut self, frame: Frame) -> Result<(), ValueError> {
        if self.stack.len() >= self.max_depth {
            return Err(ValueError::TooDeep(self.max_depth));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn sym(&self, idx: usize) -> &'a [u8] {
        match self.syms.get(idx) {
            Some(&(s, e)) => self.r.slice(s, e),
            None => &[],
        }
    }

    /// Starts reading a value; leaves are finished at once.
    fn start_value(&mut self, collect: bool) -> Result<Step, ValueError> {
        let offset = self.r.pos;
        let f = self.r.flags()?;
        match f.ty {
            NILVALUE_SXP => Ok(Step::Done(Shape::NULL)),
            LGLSXP | INTSXP | REALSXP | CPLXSXP | RAWSXP => {
                f.refuse_s4()?;
                let len = self.r.length()?;
                let size = match f.ty {
                    REALSXP => 8,
                    CPLXSXP => 16,
                    RAWSXP => 1,
                    _ => 4,
                };
                let (start, end) = self.r.elems(len, size)?;
                // R's C code (e.g. logical hashing in unique.c) indexes
                // tables by logical values: only 0, 1 and NA are safe.
                if f.ty == LGLSXP
                    && !self
                        .r
                        .ints(start, end)
                        .all(|v| matches!(v, 0 | 1 | NA_INTEGER))
                {
                    return Err(malformed(
                        "logical value other than TRUE, FALSE or NA",
                        offset,
                    ));
                }
                let data = match f.ty {
                    CPLXSXP | RAWSXP => Data::Opaque,
                    _ => Data::Plain(start, end),
                };
                let shape = Shape {
                    ty: f.ty,
                    len,
                    altrep: false,
                    data,
                };
                self.finish(shape, f.has_attr, None)
            }
            STRSXP => {
                f.refuse_s4()?;
                let len = self.r.length()?;
                self.r.need(len, 8)?;
                let mut no_na = true;
                let start = self.r.pos;
                for _ in 0..len {
                    if self.read_charsxp()?.is_none() {
                        no_na = false;
                    }
                }
                let shape = Shape {
                    ty: STRSXP,
                    len,
                    altrep: false,
                    data: Data::Str {
                        no_na,
                        span: Some((start, self.r.pos)),
                    },
                };
                self.finish(shape, f.has_attr, None)
            }
            VECSXP => {
                f.refuse_s4()?;
                let len = self.r.length()?;
                self.r.need(len, 4)?;
                let shape = Shape {
                    ty: VECSXP,
                    len,
                    altrep: false,
                    data: Data::Opaque,
                };
                let collected = if collect { Some(Vec::new()) } else { None };
                if len == 0 {
                    return self.finish(shape, f.has_attr, collected);
                }
                self.push(Frame::List {
                    left: len,
                    shape,
                    has_attr: f.has_attr,
                    collected,
                })?;
                Ok(Step::Child { collect: false })
            }
            ALTREP_SXP => {
                f.refuse_s4()?;
                self.start_altrep()
            }
            REFSXP => Err(ValueError::Forbidden("symbol")),
            ty => Err(unexpected(ty, "string outside a character vector", offset)),
        }
    }

    /// After a vector's payload: its attributes, if any.
    fn finish(
        &mut self,
        shape: Shape,
        has_attr: bool,
        carry: Option<Vec<Shape>>,
    ) -> Result<Step, ValueError> {
        if has_attr {
            self.start_attrs(shape, carry)
        } else {
            self.collected = carry;
            Ok(Step::Done(shape))
        }
    }

    /// Reads the attribute item of `owner`: `NULL` or a tagged pairlist.
    fn start_attrs(&mut self, owner: Shape, carry: Option<Vec<Shape>>) -> Result<Step, ValueError> {
        let offset = self.r.pos;
        let f = self.r.flags()?;
        match f.ty {
            NILVALUE_SXP => {
                self.collected = carry;
                Ok(Step::Done(owner))
            }
            LISTSXP => {
                let tag = self.attr_node(f, offset)?;
                let collect = self.sym(tag) == b"dimnames";
                self.push(Frame::Attrs {
                    owner,
                    tag,
                    seen: Seen::default(),
                    carry,
                })?;
                Ok(Step::Child { collect })
            }
            ty => Err(unexpected(ty, "attributes are not a pairlist", offset)),
        }
    }

    /// The rest of an attribute pairlist node after its flags: the tag.
    fn attr_node(&mut self, f: Flags, offset: usize) -> Result<usize, ValueError> {
        f.refuse_s4()?;
        if f.has_attr {
            return Err(malformed("attribute list node with attributes", offset));
        }
        if !f.has_tag {
            return Err(malformed("attribute without a name", offset));
        }
        self.read_symbol()
    }

    /// Resumes `frame` with the shape of the child it was waiting for.
    fn resume(
        &mut self,
        frame: Frame,
        child: Shape,
        collected: Option<Vec<Shape>>,
    ) -> Result<Step, ValueError> {
        match frame {
            Frame::List {
                left,
                shape,
                has_attr,
                collected: mut mine,
            } => {
                if let Some(v) = mine.as_mut() {
                    v.push(child);
                }
                let left = left.saturating_sub(1);
                if left == 0 {
                    return self.finish(shape, has_attr, mine);
                }
                // Re-pushing the frame just popped: depth is unchanged.
                self.stack.push(Frame::List {
                    left,
                    shape,
                    has_attr,
                    collected: mine,
                });
                Ok(Step::Child { collect: false })
            }
            Frame::Attrs {
                owner,
                tag,
                mut seen,
                carry,
            } => {
                self.check_attr(tag, &owner, &child, collected, &mut seen)?;
                let offset = self.r.pos;
                let f = self.r.flags()?;
                match f.ty {
                    LISTSXP => {
                        let tag = self.attr_node(f, offset)?;
                        let collect = self.sym(tag) == b"dimnames";
                        self.stack.push(Frame::Attrs {
                            owner,
                            tag,
                            seen,
                            carry,
                        });
                        Ok(Step::Child { collect })
                    }
                    NILVALUE_SXP => {
                        check_dimnames(&seen, offset)?;
                        self.collected = carry;
                        Ok(Step::Done(owner))
                    }
                    ty => Err(unexpected(
                        ty,
                        "attribute list not terminated by NULL",
                        offset,
                    )),
                }
            }
            Frame::AltState { class } => self.finish_alt_state(class, child),
            Frame::AltAttrs { shape } => self.start_attrs(shape, None),
        }
    }

    /// Validates one attribute whose value has just been read.
    fn check_attr(
        &self,
        tag: usize,
        owner: &Shape,
        val: &Shape,
        collected: Option<Vec<Shape>>,
        seen: &mut Seen,
    ) -> Result<(), ValueError> {
        let offset = self.r.pos;
        let dup = |flag: &mut bool| {
            if std::mem::replace(flag, true) {
                Err(malformed("duplicate attribute", offset))
            } else {
                Ok(())
            }
        };
        match self.sym(tag) {
            b"names" => {
                dup(&mut seen.names)?;
                if val.ty != STRSXP || val.len != owner.len {
                    return Err(malformed(
                        "'names' attribute is not a character vector of the value's length",
                        offset,
                    ));
                }
            }
            b"class" => {
                dup(&mut seen.class)?;
                if val.ty != STRSXP {
                    return Err(malformed(
                        "'class' attribute is not a character vector",
                        offset,
                    ));
                }
                if let Some(allowed) = self.allowed_classes {
                    let Data::Str {
                        span: Some((s, e)), ..
                    } = val.data
                    else {
                        return Err(malformed(
                            "'class' attribute is not a plain character vector",
                            offset,
                        ));
                    };
                    self.check_classes(s, e, allowed, offset)?;
                }
            }
            b"tsp" => {
                dup(&mut seen.tsp)?;
                if val.ty != REALSXP || val.len != 3 {
                    return Err(malformed("'tsp' attribute is not three numbers", offset));
                }
            }
            b"row.names" => {
                dup(&mut seen.row_names)?;
                if let (INTSXP, 2, Data::Plain(s, e)) = (val.ty, val.len, val.data) {
                    let mut it = self.r.ints(s, e);
                    if it.next() == Some(NA_INTEGER) && it.next() == Some(NA_INTEGER) {
                        return Err(malformed("invalid compact 'row.names'", offset));
                    }
                }
            }
            b"dim" => {
                if seen.dim.is_some() {
                    return Err(malformed("duplicate attribute", offset));
                }
                let dims = self
                    .dim_values(val)
                    .ok_or_else(|| malformed("invalid 'dim' attribute", offset))?;
                let product = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
                if product != Some(owner.len) {
                    return Err(malformed(
                        "'dim' attribute does not match the value's length",
                        offset,
                    ));
                }
                seen.dim = Some(dims);
            }
            b"dimnames" => {
                if seen.dimnames.is_some() {
                    return Err(malformed("duplicate attribute", offset));
                }
                match collected {
                    Some(elems) if val.ty == VECSXP && !val.altrep => {
                        seen.dimnames = Some(elems);
                    }
                    _ => return Err(malformed("'dimnames' attribute is not a list", offset)),
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Every element of the character vector at bytes `s..e` (already
    /// read once, so well formed) must be an allowed class.
    fn check_classes(
        &self,
        s: usize,
        e: usize,
        allowed: &[String],
        offset: usize,
    ) -> Result<(), ValueError> {
        let mut pos = s;
        while pos + 8 <= e {
            let mut header = self.r.ints(pos, pos + 8);
            let (_flags, len) = (header.next(), header.next().unwrap_or(-1));
            pos += 8;
            let Ok(len) = usize::try_from(len) else {
                return Err(malformed("'class' attribute holds NA", offset));
            };
            let name = self.r.slice(pos, pos + len);
            pos += len;
            if !allowed.iter().any(|a| a.as_bytes() == name) {
                return Err(ValueError::Class(printable(name)));
            }
        }
        Ok(())
    }

    /// The values of a `dim` attribute, if it is a valid one.
    fn dim_values(&self, val: &Shape) -> Option<Vec<u64>> {
        if val.ty != INTSXP || val.len == 0 {
            return None;
        }
        match val.data {
            Data::Plain(s, e) => self.r.ints(s, e).map(|d| u64::try_from(d).ok()).collect(),
            Data::Seq { first, inc } if val.len <= MAX_SEQ_DIMS => (0..val.len)
                .map(|i| {
                    let d = first + inc * i as f64;
                    if (0.0..=f64::from(i32::MAX)).contains(&d) {
                        Some(d as u64)
                    } else {
                        None
                    }
                })
                .collect(),
            _ => None,
        }
    }

    /// Reads a CHARSXP; `None` for `NA_character_`.
    fn read_charsxp(&mut self) -> Result<Option<(usize, usize)>, ValueError> {
        let offset = self.r.pos;
        let f = self.r.flags()?;
        if f.ty != CHARSXP {
            return Err(unexpected(
                f.ty,
                "character vector element is not a string",
                offset,
            ));
        }
        if f.has_attr {
            return Err(malformed("string with attributes", offset));
        }
        let len = self.r.int()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| malformed("negative string length", offset))?;
        let start = self.r.pos;
        self.r.take(len)?;
        Ok(Some((start, self.r.pos)))
    }

    /// Reads a symbol (SYMSXP, or a reference to one read earlier) and
    /// returns its index in the reference table.
    fn read_symbol(&mut self) -> Result<usize, ValueError> {
        let offset = self.r.pos;
        let f = self.r.flags()?;
        match f.ty {
            SYMSXP => {
                let name = self
                    .read_charsxp()?
                    .ok_or_else(|| malformed("symbol with an NA name", offset))?;
                self.syms.push(name);
                Ok(self.syms.len() - 1)
            }
            REFSXP => {
                // InRefIndex: packed in the flags, or in the next int.
                let mut index = f.raw >> 8;
                if index == 0 {
                    index = self.r.int()?;
                }
                usize::try_from(index)
                    .ok()
                    .and_then(|i| i.checked_sub(1))
                    .filter(|&i| i < self.syms.len())
                    .ok_or_else(|| malformed("reference to an unknown item", offset))
            }
            ty => Err(unexpected(ty, "expected a symbol", offset)),
        }
    }

    /// A pairlist node with neither attributes nor tag.
    fn plain_node(&mut self, what: &'static str) -> Result<(), ValueError> {
        let offset = self.r.pos;
        let f = self.r.flags()?;
        if f.ty != LISTSXP {
            return Err(unexpected(f.ty, what, offset));
        }
        f.refuse_s4()?;
        if f.has_attr || f.has_tag {
            return Err(malformed(what, offset));
        }
        Ok(())
    }

    /// A plain (non-ALTREP, attribute-free) integer vector.
    fn plain_ints(&mut self, what: &'static str) -> Result<(u64, usize, usize), ValueError> {
        let offset = self.r.pos;
        let f = self.r.flags()?;
        if f.ty != INTSXP {
            return Err(unexpected(f.ty, what, offset));
        }
        f.refuse_s4()?;
        if f.has_attr {
            return Err(malformed(what, offset));
        }
        let len = self.r.length()?;
        let (s, e) = self.r.elems(len, 4)?;
        Ok((len, s, e))
    }

    /// ALTREP_SXP: info, state, attributes.
    fn start_altrep(&mut self) -> Result<Step, ValueError> {
        const INFO: &str = "invalid ALTREP class information";
        let offset = self.r.pos;
        self.plain_node(INFO)?;
        let class_sym = self.read_symbol()?;
        self.plain_node(INFO)?;
        let package_sym = self.read_symbol()?;
        self.plain_node(INFO)?;
        let (len, s, e) = self.plain_ints(INFO)?;
        let ty = self.r.ints(s, e).next();
        let end = self.r.pos;
        let f = self.r.flags()?;
        if len != 1 || f.ty != NILVALUE_SXP {
            return Err(malformed(INFO, end));
        }

        let (class_name, package) = (self.sym(class_sym), self.sym(package_sym));
        let class =
            AltClass::lookup(class_name, package).ok_or_else(|| ValueError::AltrepClass {
                class: printable(class_name),
                package: printable(package),
            })?;
        if ty != Some(i32::from(class.base_type())) {
            return Err(malformed(
                "ALTREP class information has the wrong type",
                offset,
            ));
        }

        match class {
            AltClass::CompactIntseq | AltClass::CompactRealseq => {
                let shape = self.read_compact_state(class)?;
                self.start_attrs(shape, None)
            }
            AltClass::DeferredString | AltClass::Wrap(_) => {
                self.plain_node("ALTREP state is not a plain pairlist")?;
                self.push(Frame::AltState { class })?;
                Ok(Step::Child { collect: false })
            }
        }
    }

    /// State of a compact sequence: `c(length, first, increment)` as
    /// doubles, which R's unserialize method reads without checking.
    fn read_compact_state(&mut self, class: AltClass) -> Result<Shape, ValueError> {
        const STATE: &str = "invalid compact sequence state";
        let offset = self.r.pos;
        let f = self.r.flags()?;
        if f.ty != REALSXP {
            return Err(unexpected(f.ty, STATE, offset));
        }
        f.refuse_s4()?;
        if f.has_attr {
            return Err(malformed(STATE, offset));
        }
        if self.r.length()? != 3 {
            return Err(malformed(STATE, offset));
        }
        let (s, e) = self.r.elems(3, 8)?;
        let mut it = self.r.doubles(s, e);
        let (n, first, inc) = match (it.next(), it.next(), it.next()) {
            (Some(n), Some(first), Some(inc)) => (n, first, inc),
            _ => return Err(malformed(STATE, offset)),
        };
        let n_ok = n.is_finite() && n.fract() == 0.0 && (0.0..=XLEN_MAX).contains(&n);
        let inc_ok = inc == 1.0 || inc == -1.0;
        let first_ok = match class {
            AltClass::CompactIntseq => {
                // First and last elements must be non-NA ints.
                let range = -f64::from(i32::MAX)..=f64::from(i32::MAX);
                let last = first + inc * (n - 1.0).max(0.0);
                first.fract() == 0.0 && range.contains(&first) && range.contains(&last)
            }
            _ => first.is_finite(),
        };
        if !(n_ok && inc_ok && first_ok) {
            return Err(malformed(STATE, offset));
        }
        Ok(Shape {
            ty: class.base_type(),
            len: n as u64,
            altrep: true,
            data: Data::Seq { first, inc },
        })
    }

    /// The state pairlist's CAR is read; the CDR and then the ALTREP's
    /// attributes follow.
    fn finish_alt_state(&mut self, class: AltClass, car: Shape) -> Result<Step, ValueError> {
        let offset = self.r.pos;
        match class {
            AltClass::DeferredString => {
                // CONS(arg, info): arg integer or double, info an integer
                // vector whose first element (scipen) is read unchecked.
                if car.ty != INTSXP && car.ty != REALSXP {
                    return Err(malformed(
                        "deferred string conversion of a non-numeric vector",
                        offset,
                    ));
                }
                let f = self.r.flags()?;
                if f.ty != INTSXP {
                    return Err(unexpected(f.ty, "invalid deferred string state", offset));
                }
                f.refuse_s4()?;
                let len = self.r.length()?;
                let (s, e) = self.r.elems(len, 4)?;
                if len == 0 {
                    return Err(malformed("invalid deferred string state", offset));
                }
                let info = Shape {
                    ty: INTSXP,
                    len,
                    altrep: false,
                    data: Data::Plain(s, e),
                };
                let shape = Shape {
                    ty: STRSXP,
                    len: car.len,
                    altrep: true,
                    data: Data::Str {
                        no_na: self.no_na(&car),
                        span: None,
                    },
                };
                if f.has_attr {
                    self.push(Frame::AltAttrs { shape })?;
                    self.start_attrs(info, None)
                } else {
                    self.start_attrs(shape, None)
                }
            }
            AltClass::Wrap(ty) => {
                // CONS(wrapped, meta): meta is c(sortedness, no_na).
                const META: &str = "invalid wrapper metadata";
                if car.ty != ty {
                    return Err(malformed(
                        "wrapped value does not match its wrapper class",
                        offset,
                    ));
                }
                let (len, s, e) = self.plain_ints(META)?;
                let mut it = self.r.ints(s, e);
                let (srt, no_na) = match (len, it.next(), it.next()) {
                    (2, Some(srt), Some(no_na)) => (srt, no_na),
                    _ => return Err(malformed(META, offset)),
                };
                if !matches!(srt, NA_INTEGER | -2..=2) || !matches!(no_na, 0 | 1) {
                    return Err(malformed(META, offset));
                }
                let claims_sorted = srt != NA_INTEGER && srt != 0;
                match ty {
                    INTSXP | LGLSXP | REALSXP if claims_sorted && !self.sorted_as(&car, srt) => {
                        return Err(malformed("wrapper claims unsorted data are sorted", offset));
                    }
                    STRSXP if claims_sorted => {
                        return Err(malformed(
                            "wrapper claims strings are sorted (cannot be verified)",
                            offset,
                        ));
                    }
                    // R never consults these claims for other types.
                    _ => {}
                }
                if no_na == 1
                    && matches!(ty, INTSXP | LGLSXP | REALSXP | STRSXP)
                    && !self.no_na(&car)
                {
                    return Err(malformed(
                        "wrapper claims no NAs but the data have some",
                        offset,
                    ));
                }
                let shape = Shape {
                    ty,
                    len: car.len,
                    altrep: true,
                    data: car.data,
                };
                self.start_attrs(shape, None)
            }
            AltClass::CompactIntseq | AltClass::CompactRealseq => {
                Err(malformed("invalid ALTREP state", offset))
            }
        }
    }

    /// Whether the data are known to contain no NA (or NaN).
    fn no_na(&self, s: &Shape) -> bool {
        match s.data {
            Data::Plain(a, b) => match s.ty {
                LGLSXP | INTSXP => self.r.ints(a, b).all(|v| v != NA_INTEGER),
                REALSXP => self.r.doubles(a, b).all(|v| !v.is_nan()),
                _ => false,
            },
            Data::Seq { .. } => true,
            Data::Str { no_na, .. } => no_na,
            Data::Opaque => false,
        }
    }

    /// Whether the data really are sorted as R's sortedness code `claim`
    /// says (1 increasing, 2 increasing with NAs first, -1 and -2 the same
    /// decreasing; NAs last otherwise).
    fn sorted_as(&self, s: &Shape, claim: i32) -> bool {
        let (decr, na_first) = match claim {
            1 => (false, false),
            2 => (false, true),
            -1 => (true, false),
            -2 => (true, true),
            _ => return false,
        };
        match s.data {
            Data::Seq { inc, .. } => s.len <= 1 || (inc < 0.0) == decr,
            Data::Plain(a, b) => match s.ty {
                LGLSXP | INTSXP => sorted(
                    self.r
                        .ints(a, b)
                        .map(|v| (v != NA_INTEGER).then_some(f64::from(v))),
                    decr,
                    na_first,
                ),
                REALSXP => sorted(
                    self.r.doubles(a, b).map(|v| (!v.is_nan()).then_some(v)),
                    decr,
                    na_first,
                ),
                _ => false,
            },
            _ => false,
        }
    }
}

/// Checks `dimnames` against `dim` once the whole attribute list is read.
fn check_dimnames(seen: &Seen, offset: usize) -> Result<(), ValueError> {
    let Some(names) = &seen.dimnames else {
        return Ok(());
    };
    let bad = || malformed("'dimnames' attribute does not match 'dim'", offset);
    let dims = seen.dim.as_ref().ok_or_else(bad)?;
    if names.len() != dims.len() {
        return Err(bad());
    }
    for (n, &d) in names.iter().zip(dims) {
        let ok = n.ty == NILSXP || (n.ty == STRSXP && n.len == d);
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// Sortedness of values (`None` = NA) in R's sense.
fn sorted(values: impl Iterator<Item = Option<f64>>, decr: bool, na_first: bool) -> bool {
    let mut prev: Option<f64> = None;
    let mut seen_value = false;
    let mut na_after = false;
    for v in values {
        match v {
            None if na_first => {
                if seen_value {
                    return false;
                }
            }
            None => na_after = true,
            Some(x) => {
                if na_after {
                    return false;
                }
                seen_value = true;
                if let Some(p) = prev {
                    if (decr && x > p) || (!decr && x < p) {
                        return false;
                    }
                }
                prev = Some(x);
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These tests are about structure: any S3 class may pass here (the
    /// class allowlist has tests of its own).
    fn check(bytes: &[u8]) -> Result<(), ValueError> {
        check_with(
            bytes,
            &CheckLimits {
                allowed_classes: None,
                ..CheckLimits::default()
            },
        )
    }

    /// Bytes of a fixture written by `tests/fixtures/make_fixtures.R`.
    macro_rules! fixture {
        ($name:literal) => {
            (
                $name,
                include_bytes!(concat!("../tests/fixtures/", $name, ".bin")) as &[u8],
            )
        };
    }

    /// Values R 4.2 serialized that must cross.
    const ACCEPTED: &[(&str, &[u8])] = &[
        fixture!("null"),
        fixture!("lgl"),
        fixture!("int"),
        fixture!("dbl"),
        fixture!("cplx"),
        fixture!("chr"),
        fixture!("chr_latin1"),
        fixture!("raw"),
        fixture!("na_all"),
        fixture!("empty"),
        fixture!("named_list"),
        fixture!("nested_list"),
        fixture!("matrix_dimnames"),
        fixture!("array3d"),
        fixture!("dim_altrep"),
        fixture!("table"),
        fixture!("data_frame"),
        fixture!("data_frame_xdr"),
        fixture!("factor"),
        fixture!("posixlt"),
        fixture!("ts"),
        fixture!("attrs"),
        fixture!("intseq"),
        fixture!("intseq_neg"),
        fixture!("realseq"),
        fixture!("deferred_string"),
        fixture!("deferred_string_real"),
        fixture!("wrap_integer"),
        fixture!("wrap_integer_na_first"),
        fixture!("wrap_real_decr"),
        fixture!("wrap_compact"),
        fixture!("wrap_string"),
        fixture!("names_wrapped"),
        fixture!("v2_list"),
        fixture!("v2_xdr"),
        fixture!("long_chr"),
        fixture!("big_dbl"),
        fixture!("symbol_tags"),
    ];

    /// Values R 4.2 serialized that must be refused, with the type named.
    const REFUSED: &[((&str, &[u8]), &str)] = &[
        (fixture!("closure"), "closure"),
        (fixture!("bytecode"), "bytecode"),
        (fixture!("env"), "environment"),
        (fixture!("globalenv"), "environment"),
        (fixture!("emptyenv"), "environment"),
        (fixture!("baseenv"), "environment"),
        (fixture!("namespace"), "environment"),
        (fixture!("language"), "language object"),
        (fixture!("expression"), "expression"),
        (fixture!("formula"), "language object"),
        (fixture!("symbol"), "symbol"),
        (fixture!("pairlist"), "pairlist"),
        (fixture!("builtin"), "builtin function"),
        (fixture!("special"), "builtin function"),
        (fixture!("extptr"), "external pointer"),
        (fixture!("s4"), "S4 object"),
        (fixture!("s4_numeric"), "S4 object"),
        (fixture!("list_with_closure"), "closure"),
        (fixture!("attr_with_env"), "environment"),
    ];

    /// Appends part of a hand-built stream.
    type Body = fn(S) -> S;

    /// Hand-built streams.
    struct S {
        b: Vec<u8>,
        big: bool,
    }

    impl S {
        /// Version-3 native ("B\n") header as R 4.2.2 writes it.
        fn v3() -> S {
            let mut s = S {
                b: b"B\n".to_vec(),
                big: false,
            };
            s = s.int(3).int(0x0004_0202).int(0x0003_0500).int(5);
            s.b.extend_from_slice(b"UTF-8");
            s
        }

        /// Version-2 XDR header.
        fn v2_xdr() -> S {
            let s = S {
                b: b"X\n".to_vec(),
                big: true,
            };
            s.int(2).int(0x0004_0202).int(0x0002_0300)
        }

        fn int(mut self, v: i32) -> S {
            let b = if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            self.b.extend_from_slice(&b);
            self
        }

        fn dbl(mut self, v: f64) -> S {
            let b = if self.big {
                v.to_bits().to_be_bytes()
            } else {
                v.to_bits().to_le_bytes()
            };
            self.b.extend_from_slice(&b);
            self
        }

        fn flags(self, ty: u8, attr: bool, tag: bool) -> S {
            let f = i32::from(ty) | (i32::from(attr) << 9) | (i32::from(tag) << 10);
            self.int(f)
        }

        fn chars(mut self, text: &str) -> S {
            self = self.int(0x0004_0009).int(text.len() as i32);
            self.b.extend_from_slice(text.as_bytes());
            self
        }

        fn sym(self, name: &str) -> S {
            self.flags(SYMSXP, false, false).chars(name)
        }

        fn ints(self, values: &[i32]) -> S {
            let mut s = self.flags(INTSXP, false, false).int(values.len() as i32);
            for &v in values {
                s = s.int(v);
            }
            s
        }

        fn dbls(self, values: &[f64]) -> S {
            let mut s = self.flags(REALSXP, false, false).int(values.len() as i32);
            for &v in values {
                s = s.dbl(v);
            }
            s
        }

        fn nil(self) -> S {
            self.flags(NILVALUE_SXP, false, false)
        }

        /// ALTREP header and info pairlist for `class` from `package`.
        fn altrep(self, class: &str, package: &str, ty: u8) -> S {
            self.flags(ALTREP_SXP, false, false)
                .flags(LISTSXP, false, false)
                .sym(class)
                .flags(LISTSXP, false, false)
                .sym(package)
                .flags(LISTSXP, false, false)
                .ints(&[i32::from(ty)])
                .nil()
        }

        fn done(self) -> Vec<u8> {
            self.b
        }
    }

    fn malformed_err(r: Result<(), ValueError>) -> bool {
        matches!(r, Err(ValueError::Malformed { .. }))
    }

    #[test]
    fn classes_outside_the_allowlist_are_refused_by_default() {
        let (_, attrs) = fixture!("attrs");
        assert_eq!(super::check(attrs), Err(ValueError::Class("foo".into())));
        let own = CheckLimits {
            allowed_classes: Some(vec!["foo".into()]),
            ..CheckLimits::default()
        };
        assert_eq!(check_with(attrs, &own), Ok(()));
        for name in [
            "data_frame",
            "data_frame_xdr",
            "factor",
            "table",
            "ts",
            "posixlt",
        ] {
            let bytes = ACCEPTED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b);
            assert_eq!(
                super::check(bytes.unwrap_or_default()),
                Ok(()),
                "fixture {name}"
            );
        }
    }

    #[test]
    fn accepts_values_serialized_by_r() {
        for (name, bytes) in ACCEPTED {
            assert_eq!(check(bytes), Ok(()), "fixture {name}");
        }
    }

    #[test]
    fn refuses_values_serialized_by_r_naming_the_type() {
        for ((name, bytes), ty) in REFUSED {
            let err = check(bytes).expect_err(name);
            assert_eq!(err, ValueError::Forbidden(ty), "fixture {name}");
            assert_eq!(
                err.to_string(),
                format!("values of type '{ty}' cannot cross the sandbox boundary"),
                "fixture {name}"
            );
        }
    }

    #[test]
    fn every_prefix_of_a_valid_stream_is_truncated() {
        for (name, bytes) in ACCEPTED.iter().filter(|(_, b)| b.len() < 4096) {
            for n in 0..bytes.len() {
                assert_eq!(
                    check(&bytes[..n]),
                    Err(ValueError::Truncated),
                    "fixture {name} cut at {n}"
                );
            }
        }
    }

    #[test]
    fn every_prefix_of_a_refused_stream_is_an_error() {
        for ((name, bytes), _) in REFUSED {
            for n in 0..bytes.len() {
                assert!(check(&bytes[..n]).is_err(), "fixture {name} cut at {n}");
            }
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        for (name, bytes) in ACCEPTED {
            let mut v = bytes.to_vec();
            v.push(0);
            assert_eq!(
                check(&v),
                Err(ValueError::TrailingBytes(1)),
                "fixture {name}"
            );
        }
        let two_values = S::v3().nil().nil().done();
        assert_eq!(check(&two_values), Err(ValueError::TrailingBytes(4)));
    }

    #[test]
    fn formats_and_headers() {
        assert_eq!(check(b""), Err(ValueError::Truncated));
        assert_eq!(check(b"B"), Err(ValueError::Truncated));
        let ascii = include_bytes!("../tests/fixtures/ascii.bin");
        assert!(matches!(
            check(ascii),
            Err(ValueError::UnsupportedFormat(_))
        ));
        assert!(matches!(
            check(b"hello world"),
            Err(ValueError::UnsupportedFormat(_))
        ));
        assert!(matches!(
            check(b"X\r"),
            Err(ValueError::UnsupportedFormat(_))
        ));
        assert!(matches!(
            check(b"RDX3\nX\n"),
            Err(ValueError::UnsupportedFormat(_))
        ));
        // Version 4 does not exist; version 1 is not R_Unserialize's.
        for v in [1, 4, -1] {
            let s = S::v2_xdr().done();
            let mut s = S { b: s, big: true };
            s.b.truncate(2);
            let bytes = s.int(v).int(0).int(0).nil().done();
            assert!(
                matches!(check(&bytes), Err(ValueError::UnsupportedFormat(_))),
                "version {v}"
            );
        }
        // Version 2 has no encoding; XDR is big-endian.
        assert_eq!(check(&S::v2_xdr().ints(&[1, 2, 3]).done()), Ok(()));
        // Encoding names are limited in length and to known encodings.
        let enc = |name: &str| {
            let mut s = S {
                b: b"B\n".to_vec(),
                big: false,
            }
            .int(3)
            .int(0)
            .int(0)
            .int(name.len() as i32);
            s.b.extend_from_slice(name.as_bytes());
            s.nil().done()
        };
        assert_eq!(check(&enc("UTF-8")), Ok(()));
        assert_eq!(check(&enc("ANSI_X3.4-1968")), Ok(()));
        assert_eq!(check(&enc("")), Ok(()));
        assert!(matches!(
            check(&enc("ISO-2022-CN-EXT")),
            Err(ValueError::UnsupportedFormat(_))
        ));
        assert!(malformed_err(check(&enc(&"U".repeat(64)))));
        let negative = S {
            b: b"B\n".to_vec(),
            big: false,
        }
        .int(3)
        .int(0)
        .int(0)
        .int(-1)
        .nil()
        .done();
        assert!(malformed_err(check(&negative)));
    }

    #[test]
    fn handcrafted_forbidden_types() {
        // A promise (PROMSXP) at top level and inside a list, with the
        // flags R writes for one (attr/tag bits set).
        let promise = S::v3().flags(PROMSXP, false, true).nil().done();
        assert_eq!(check(&promise), Err(ValueError::Forbidden("promise")));
        let in_list = S::v3()
            .flags(VECSXP, false, false)
            .int(2)
            .nil()
            .flags(PROMSXP, false, false)
            .done();
        assert_eq!(check(&in_list), Err(ValueError::Forbidden("promise")));
        let cases: &[(u8, &str)] = &[
            (CLOSXP, "closure"),
            (ENVSXP, "environment"),
            (LANGSXP, "language object"),
            (SPECIALSXP, "builtin function"),
            (BUILTINSXP, "builtin function"),
            (DOTSXP, "..."),
            (ANYSXP, "any"),
            (EXPRSXP, "expression"),
            (BCODESXP, "bytecode"),
            (EXTPTRSXP, "external pointer"),
            (WEAKREFSXP, "weak reference"),
            (S4SXP, "S4 object"),
            (ATTRLISTSXP, "pairlist"),
            (ATTRLANGSXP, "language object"),
            (BASEENV_SXP, "environment"),
            (EMPTYENV_SXP, "environment"),
            (BCREPREF, "bytecode"),
            (BCREPDEF, "bytecode"),
            (GENERICREFSXP, "class reference"),
            (CLASSREFSXP, "class reference"),
            (PERSISTSXP, "persistent reference"),
            (PACKAGESXP, "environment"),
            (NAMESPACESXP, "environment"),
            (BASENAMESPACE_SXP, "environment"),
            (MISSINGARG_SXP, "missing argument"),
            (UNBOUNDVALUE_SXP, "unbound value"),
            (GLOBALENV_SXP, "environment"),
            (SYMSXP, "symbol"),
            (LISTSXP, "pairlist"),
        ];
        for &(ty, name) in cases {
            let bytes = S::v3().flags(ty, false, false).done();
            assert_eq!(check(&bytes), Err(ValueError::Forbidden(name)), "type {ty}");
            // Also as an attribute value.
            let attr = S::v3()
                .flags(INTSXP, true, false)
                .int(0)
                .flags(LISTSXP, false, true)
                .sym("x")
                .flags(ty, false, false)
                .done();
            assert_eq!(
                check(&attr),
                Err(ValueError::Forbidden(name)),
                "attr type {ty}"
            );
        }
    }

    #[test]
    fn logical_values_are_only_true_false_or_na() {
        let lgl = |v: i32| {
            S::v3()
                .flags(LGLSXP, false, false)
                .int(3)
                .int(1)
                .int(NA_INTEGER)
                .int(v)
                .done()
        };
        assert_eq!(check(&lgl(0)), Ok(()));
        assert_eq!(check(&lgl(1)), Ok(()));
        // R hashes logicals by value (unique.c): anything else would index
        // outside its table.
        for v in [2, -1, 255, 0x0080_0000, i32::MAX, i32::MIN + 1] {
            assert!(malformed_err(check(&lgl(v))), "{v}");
        }
    }

    #[test]
    fn unknown_type_codes() {
        for ty in [NILSXP, 11, 12, 26, 99, 237] {
            let bytes = S::v3().flags(ty, false, false).done();
            assert_eq!(
                check(&bytes),
                Err(ValueError::UnknownType {
                    code: ty,
                    offset: 23
                }),
                "type {ty}"
            );
        }
        // A bare CHARSXP is not a value.
        assert!(malformed_err(check(&S::v3().chars("x").done())));
    }

    #[test]
    fn s4_bit_is_refused() {
        let s4 = 1 << 16;
        for ty in [LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP, RAWSXP, CPLXSXP] {
            let bytes = S::v3().int(i32::from(ty) | s4 | (1 << 8)).int(0).done();
            assert_eq!(check(&bytes), Err(ValueError::Forbidden("S4 object")));
        }
        let altrep = S::v3().int(i32::from(ALTREP_SXP) | s4).done();
        assert_eq!(check(&altrep), Err(ValueError::Forbidden("S4 object")));
    }

    #[test]
    fn unknown_altrep_classes_are_refused() {
        let bytes = S::v3()
            .altrep("vroom_dbl", "vroom", REALSXP)
            .dbls(&[1.0])
            .nil()
            .done();
        let err = check(&bytes).unwrap_err();
        assert_eq!(
            err,
            ValueError::AltrepClass {
                class: "vroom_dbl".into(),
                package: "vroom".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "ALTREP class 'vroom_dbl' from package 'vroom' cannot cross the sandbox boundary"
        );
        // Known names from another package, and base classes not allowed.
        for (class, package) in [
            ("compact_intseq", "evil"),
            ("mmap_real", "base"),
            ("mmap_integer", "base"),
            ("", ""),
        ] {
            let bytes = S::v3().altrep(class, package, INTSXP).nil().nil().done();
            assert!(
                matches!(check(&bytes), Err(ValueError::AltrepClass { .. })),
                "{class}/{package}"
            );
        }
        // Control characters in the names are not echoed.
        let bytes = S::v3().altrep("a\nb\x1b[31m", "p", INTSXP).done();
        match check(&bytes) {
            Err(ValueError::AltrepClass { class, .. }) => assert_eq!(class, "ab[31m"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn altrep_state_is_checked() {
        let seq = |ty: u8, class: &str, state: &[f64]| {
            S::v3().altrep(class, "base", ty).dbls(state).nil().done()
        };
        assert_eq!(
            check(&seq(INTSXP, "compact_intseq", &[10.0, 1.0, 1.0])),
            Ok(())
        );
        assert_eq!(
            check(&seq(INTSXP, "compact_intseq", &[10.0, 1.0, -1.0])),
            Ok(())
        );
        assert_eq!(
            check(&seq(REALSXP, "compact_realseq", &[5.0, 1e10, 1.0])),
            Ok(())
        );
        let bad_states: &[(u8, &str, &[f64])] = &[
            (INTSXP, "compact_intseq", &[10.0, 1.0, 2.0]),
            (INTSXP, "compact_intseq", &[-1.0, 1.0, 1.0]),
            (INTSXP, "compact_intseq", &[1.5, 1.0, 1.0]),
            (INTSXP, "compact_intseq", &[f64::NAN, 1.0, 1.0]),
            (INTSXP, "compact_intseq", &[1e300, 1.0, 1.0]),
            (INTSXP, "compact_intseq", &[10.0, 2147483640.0, 1.0]),
            (INTSXP, "compact_intseq", &[10.0, -2147483648.0, 1.0]),
            (INTSXP, "compact_intseq", &[10.0, 0.5, 1.0]),
            (INTSXP, "compact_intseq", &[10.0, 1.0]),
            (INTSXP, "compact_intseq", &[10.0, 1.0, 1.0, 1.0]),
            (REALSXP, "compact_realseq", &[5.0, f64::INFINITY, 1.0]),
            (REALSXP, "compact_realseq", &[5.0, 1.0, 0.0]),
            // Type in the info must be the class's.
            (REALSXP, "compact_intseq", &[10.0, 1.0, 1.0]),
            (INTSXP, "compact_realseq", &[10.0, 1.0, 1.0]),
        ];
        for (ty, class, state) in bad_states {
            assert!(
                malformed_err(check(&seq(*ty, class, state))),
                "{class} {state:?}"
            );
        }
        // Integer state (written by R 3.5.0) is read unchecked as doubles.
        let int_state = S::v3()
            .altrep("compact_intseq", "base", INTSXP)
            .ints(&[10, 1, 1])
            .nil()
            .done();
        assert!(malformed_err(check(&int_state)));

        // deferred_string: CONS(numeric, scipen integer).
        let deferred = |arg: S, info: &[i32]| arg.ints(info).nil().done();
        let head = || {
            S::v3()
                .altrep("deferred_string", "base", STRSXP)
                .flags(LISTSXP, false, false)
        };
        assert_eq!(check(&deferred(head().ints(&[1, 2]), &[0])), Ok(()));
        assert_eq!(check(&deferred(head().dbls(&[1.5]), &[0])), Ok(()));
        assert!(malformed_err(check(&deferred(head().ints(&[1, 2]), &[]))));
        let chr_arg = head()
            .flags(STRSXP, false, false)
            .int(1)
            .chars("a")
            .ints(&[0])
            .nil()
            .done();
        assert!(malformed_err(check(&chr_arg)));
        let closure_arg = head().flags(CLOSXP, false, false).done();
        assert_eq!(check(&closure_arg), Err(ValueError::Forbidden("closure")));
        let real_info = head().ints(&[1]).dbls(&[0.0]).nil().done();
        assert!(malformed_err(check(&real_info)));

        // Wrappers: the wrapped type must match and the claims hold.
        let w = |class: &str, ty: u8, body: fn(S) -> S, meta: &[i32]| {
            let s = S::v3()
                .altrep(class, "base", ty)
                .flags(LISTSXP, false, false);
            body(s).ints(meta).nil().done()
        };
        const UNKNOWN: i32 = i32::MIN;
        assert_eq!(
            check(&w("wrap_integer", INTSXP, |s| s.ints(&[1, 2, 3]), &[1, 1])),
            Ok(())
        );
        assert_eq!(
            check(&w(
                "wrap_integer",
                INTSXP,
                |s| s.ints(&[1, 2, i32::MIN]),
                &[1, 0]
            )),
            Ok(())
        );
        assert_eq!(
            check(&w(
                "wrap_integer",
                INTSXP,
                |s| s.ints(&[i32::MIN, 3, 2]),
                &[-2, 0]
            )),
            Ok(())
        );
        assert_eq!(
            check(&w(
                "wrap_integer",
                INTSXP,
                |s| s.ints(&[3, 1, 2]),
                &[UNKNOWN, 0]
            )),
            Ok(())
        );
        assert_eq!(
            check(&w("wrap_integer", INTSXP, |s| s.ints(&[3, 1, 2]), &[0, 0])),
            Ok(())
        );
        type Case<'a> = (&'a str, u8, Body, &'a [i32]);
        let bad: &[Case] = &[
            ("wrap_integer", INTSXP, |s| s.ints(&[3, 1, 2]), &[1, 0]),
            ("wrap_integer", INTSXP, |s| s.ints(&[1, 2, 3]), &[-1, 0]),
            (
                "wrap_integer",
                INTSXP,
                |s| s.ints(&[1, i32::MIN, 3]),
                &[1, 0],
            ),
            (
                "wrap_integer",
                INTSXP,
                |s| s.ints(&[i32::MIN, 1, 3]),
                &[1, 0],
            ),
            (
                "wrap_integer",
                INTSXP,
                |s| s.ints(&[1, i32::MIN]),
                &[UNKNOWN, 1],
            ),
            ("wrap_integer", INTSXP, |s| s.ints(&[1, 2]), &[7, 0]),
            ("wrap_integer", INTSXP, |s| s.ints(&[1, 2]), &[1, 2]),
            ("wrap_integer", INTSXP, |s| s.ints(&[1, 2]), &[1]),
            ("wrap_integer", INTSXP, |s| s.ints(&[1, 2]), &[1, 0, 0]),
            ("wrap_integer", INTSXP, |s| s.dbls(&[1.0]), &[UNKNOWN, 0]),
            (
                "wrap_real",
                REALSXP,
                |s| s.dbls(&[2.0, f64::NAN]),
                &[UNKNOWN, 1],
            ),
            ("wrap_real", REALSXP, |s| s.dbls(&[2.0, 1.0]), &[1, 0]),
            (
                "wrap_string",
                STRSXP,
                |s| s.flags(STRSXP, false, false).int(2).chars("b").chars("a"),
                &[1, 0],
            ),
            (
                "wrap_string",
                STRSXP,
                |s| s.flags(STRSXP, false, false).int(1).int(9).int(-1),
                &[UNKNOWN, 1],
            ),
        ];
        for (class, ty, body, meta) in bad {
            assert!(
                malformed_err(check(&w(class, *ty, *body, meta))),
                "{class} {meta:?}"
            );
        }
        // The wrapped value is checked like any other.
        let wrapped_env = w(
            "wrap_list",
            VECSXP,
            |s| {
                s.flags(VECSXP, false, false)
                    .int(1)
                    .flags(ENVSXP, false, false)
            },
            &[0, 0],
        );
        assert_eq!(
            check(&wrapped_env),
            Err(ValueError::Forbidden("environment"))
        );
        // The state must be a pairlist.
        let not_pairlist = S::v3()
            .altrep("wrap_integer", "base", INTSXP)
            .ints(&[1])
            .done();
        assert!(malformed_err(check(&not_pairlist)));
        // Info with a tag, or too long, is malformed.
        let tagged_info = S::v3()
            .flags(ALTREP_SXP, false, false)
            .flags(LISTSXP, false, true)
            .sym("t")
            .sym("compact_intseq")
            .done();
        assert!(malformed_err(check(&tagged_info)));
        let long_info = S::v3()
            .flags(ALTREP_SXP, false, false)
            .flags(LISTSXP, false, false)
            .sym("compact_intseq")
            .flags(LISTSXP, false, false)
            .sym("base")
            .flags(LISTSXP, false, false)
            .ints(&[13])
            .flags(LISTSXP, false, false)
            .done();
        assert!(malformed_err(check(&long_info)));
    }

    #[test]
    fn giant_lengths_are_refused_without_allocating() {
        let long = |ty: u8, upper: i32, lower: i32| {
            S::v3()
                .flags(ty, false, false)
                .int(-1)
                .int(upper)
                .int(lower)
                .done()
        };
        for ty in [LGLSXP, INTSXP, REALSXP, CPLXSXP, RAWSXP, STRSXP, VECSXP] {
            assert_eq!(
                check(&long(ty, 65536, 0)),
                Err(ValueError::Truncated),
                "{ty}"
            );
            assert_eq!(check(&long(ty, 256, 0)), Err(ValueError::Truncated), "{ty}");
            assert_eq!(check(&long(ty, 0, -1)), Err(ValueError::Truncated), "{ty}");
            assert!(malformed_err(check(&long(ty, 65537, 0))), "{ty}");
            assert!(malformed_err(check(&long(ty, -1, -1))), "{ty}");
            let max = S::v3().flags(ty, false, false).int(i32::MAX).done();
            assert_eq!(check(&max), Err(ValueError::Truncated), "{ty}");
            let neg = S::v3().flags(ty, false, false).int(-2).done();
            assert!(malformed_err(check(&neg)), "{ty}");
            let min = S::v3().flags(ty, false, false).int(i32::MIN).done();
            assert!(malformed_err(check(&min)), "{ty}");
        }
        let big_string = S::v3()
            .flags(STRSXP, false, false)
            .int(1)
            .int(0x0004_0009)
            .int(i32::MAX)
            .done();
        assert_eq!(check(&big_string), Err(ValueError::Truncated));
        let neg_string = S::v3()
            .flags(STRSXP, false, false)
            .int(1)
            .int(0x0004_0009)
            .int(-2)
            .done();
        assert!(malformed_err(check(&neg_string)));
        // A long length that is actually present is fine.
        let long_ok = S::v3()
            .flags(RAWSXP, false, false)
            .int(-1)
            .int(0)
            .int(3)
            .done();
        let mut long_ok = long_ok;
        long_ok.extend_from_slice(&[1, 2, 3]);
        assert_eq!(check(&long_ok), Ok(()));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = include_bytes!("../tests/fixtures/deep_list.bin");
        assert_eq!(check(deep), Err(ValueError::TooDeep(DEFAULT_MAX_DEPTH)));
        assert_eq!(
            check(deep).unwrap_err().to_string(),
            "value nested deeper than 512 levels"
        );
        let roomy = CheckLimits {
            max_depth: 2000,
            ..CheckLimits::default()
        };
        assert_eq!(check_with(deep, &roomy), Ok(()));
        let nested = include_bytes!("../tests/fixtures/nested_list.bin");
        let tight = CheckLimits {
            max_depth: 50,
            ..CheckLimits::default()
        };
        assert_eq!(check_with(nested, &tight), Err(ValueError::TooDeep(50)));

        // Far deeper than any call stack would survive: no recursion.
        let n = 200_000;
        let mut s = S::v3();
        for _ in 0..n {
            s = s.flags(VECSXP, false, false).int(1);
        }
        let bytes = s.nil().done();
        assert_eq!(check(&bytes), Err(ValueError::TooDeep(DEFAULT_MAX_DEPTH)));
        let unlimited = CheckLimits {
            max_depth: usize::MAX,
            max_bytes: usize::MAX,
            allowed_classes: None,
        };
        assert_eq!(check_with(&bytes, &unlimited), Ok(()));
        assert_eq!(
            check_with(&bytes[..bytes.len() - 1], &unlimited),
            Err(ValueError::Truncated)
        );

        // Attributes nest too: 1:1 with an attribute holding the next.
        let mut s = S::v3();
        for _ in 0..n {
            s = s
                .flags(INTSXP, true, false)
                .int(1)
                .int(1)
                .flags(LISTSXP, false, true)
                .sym("a");
        }
        let bytes = s.nil().done();
        assert_eq!(check(&bytes), Err(ValueError::TooDeep(DEFAULT_MAX_DEPTH)));
    }

    #[test]
    fn size_is_bounded() {
        let big = include_bytes!("../tests/fixtures/big_dbl.bin");
        let limits = CheckLimits {
            max_bytes: 1000,
            ..CheckLimits::default()
        };
        let err = check_with(big, &limits).unwrap_err();
        assert_eq!(
            err,
            ValueError::TooLarge {
                size: big.len(),
                max: 1000
            }
        );
        assert_eq!(
            err.to_string(),
            format!("value of {} bytes exceeds limit of 1000 bytes", big.len())
        );
    }

    #[test]
    fn long_attribute_lists_are_iterative() {
        // 100k attributes in one pairlist, and symbol references to them.
        let n = 100_000;
        let mut s = S::v3().flags(LGLSXP, true, false).int(0);
        for i in 0..n {
            s = s
                .flags(LISTSXP, false, true)
                .sym(&format!("a{i}"))
                .ints(&[i]);
        }
        // Refer back to symbol #256: its packed flags have bit 16 set,
        // which is not an S4 bit on a reference.
        s = s
            .flags(LISTSXP, false, true)
            .int((256 << 8) | i32::from(REFSXP))
            .nil()
            .flags(LISTSXP, false, true)
            .int(i32::from(REFSXP))
            .int(n)
            .nil();
        let bytes = s.nil().done();
        assert_eq!(check(&bytes), Ok(()));
    }

    #[test]
    fn references_must_name_known_symbols() {
        let tag_ref = |index_flags: i32, extra: Option<i32>| {
            let mut s = S::v3()
                .flags(LGLSXP, true, false)
                .int(0)
                .flags(LISTSXP, false, true)
                .sym("a")
                .nil()
                .flags(LISTSXP, false, true)
                .int(index_flags);
            if let Some(e) = extra {
                s = s.int(e);
            }
            s.nil().nil().done()
        };
        let refsxp = i32::from(REFSXP);
        assert_eq!(check(&tag_ref((1 << 8) | refsxp, None)), Ok(()));
        assert_eq!(check(&tag_ref(refsxp, Some(1))), Ok(()));
        assert!(malformed_err(check(&tag_ref((2 << 8) | refsxp, None))));
        assert!(malformed_err(check(&tag_ref(refsxp, Some(0)))));
        assert!(malformed_err(check(&tag_ref(refsxp, Some(-1)))));
        assert!(malformed_err(check(&tag_ref(refsxp, Some(i32::MAX)))));
        assert!(malformed_err(check(&tag_ref(-1, None))));
        // A reference where a value belongs is a symbol value.
        let value_ref = S::v3()
            .flags(VECSXP, true, false)
            .int(1)
            .flags(REFSXP, false, false)
            .done();
        assert_eq!(check(&value_ref), Err(ValueError::Forbidden("symbol")));
        // Symbols are refused as list elements.
        let sym_elt = S::v3().flags(VECSXP, false, false).int(1).sym("x").done();
        assert_eq!(check(&sym_elt), Err(ValueError::Forbidden("symbol")));
    }

    #[test]
    fn attributes_are_validated() {
        let with_attr = |value: S, name: &str, attr: fn(S) -> S| {
            attr(value.flags(LISTSXP, false, true).sym(name))
                .nil()
                .done()
        };
        let ints6 = || {
            S::v3()
                .flags(INTSXP, true, false)
                .int(6)
                .int(1)
                .int(2)
                .int(3)
                .int(4)
                .int(5)
                .int(6)
        };
        fn strs(s: S, n: i32) -> S {
            let mut s = s.flags(STRSXP, false, false).int(n);
            for i in 0..n {
                s = s.chars(&format!("s{i}"));
            }
            s
        }
        assert_eq!(
            check(&with_attr(ints6(), "dim", |s| s.ints(&[2, 3]))),
            Ok(())
        );
        assert_eq!(check(&with_attr(ints6(), "dim", |s| s.ints(&[6]))), Ok(()));
        assert_eq!(check(&with_attr(ints6(), "names", |s| strs(s, 6))), Ok(()));
        assert_eq!(check(&with_attr(ints6(), "class", |s| strs(s, 2))), Ok(()));
        assert_eq!(check(&with_attr(ints6(), "whatever", |s| s.nil())), Ok(()));
        let bad: &[(&str, Body)] = &[
            ("dim", |s| s.ints(&[2, 2])),
            ("dim", |s| s.ints(&[-2, -3])),
            ("dim", |s| s.ints(&[i32::MIN, 3])),
            ("dim", |s| s.ints(&[])),
            ("dim", |s| s.dbls(&[2.0, 3.0])),
            ("dim", |s| s.ints(&[65536, 65536, 65536, 65536, 65536])),
            ("names", |s| s.ints(&[1, 2, 3, 4, 5, 6])),
            ("names", |s| s.flags(STRSXP, false, false).int(1).chars("x")),
            ("class", |s| s.ints(&[1])),
            ("tsp", |s| s.dbls(&[1.0, 2.0])),
            ("row.names", |s| s.ints(&[i32::MIN, i32::MIN])),
            ("dimnames", |s| s.flags(VECSXP, false, false).int(0)),
        ];
        for (name, attr) in bad {
            assert!(
                malformed_err(check(&with_attr(ints6(), name, *attr))),
                "{name}"
            );
        }
        // dim with dimnames, in either order.
        let dn = |first: &str, second: &str, dims: &'static [i32], names: fn(S) -> S| {
            let s = ints6().flags(LISTSXP, false, true).sym(first);
            let s = if first == "dim" {
                s.ints(dims)
            } else {
                names(s)
            };
            let s = s.flags(LISTSXP, false, true).sym(second);
            let s = if second == "dim" {
                s.ints(dims)
            } else {
                names(s)
            };
            s.nil().done()
        };
        let good_names: fn(S) -> S = |s| {
            let s = s.flags(VECSXP, false, false).int(2).nil();
            s.flags(STRSXP, false, false)
                .int(3)
                .chars("a")
                .chars("b")
                .chars("c")
        };
        let short_names: fn(S) -> S = |s| {
            let s = s.flags(VECSXP, false, false).int(2).nil();
            s.flags(STRSXP, false, false).int(2).chars("a").chars("b")
        };
        let int_names: fn(S) -> S = |s| s.flags(VECSXP, false, false).int(2).nil().ints(&[1, 2, 3]);
        let one_names: fn(S) -> S = |s| s.flags(VECSXP, false, false).int(1).nil();
        assert_eq!(check(&dn("dim", "dimnames", &[2, 3], good_names)), Ok(()));
        assert_eq!(check(&dn("dimnames", "dim", &[2, 3], good_names)), Ok(()));
        assert!(malformed_err(check(&dn(
            "dim",
            "dimnames",
            &[2, 3],
            short_names
        ))));
        assert!(malformed_err(check(&dn(
            "dim",
            "dimnames",
            &[2, 3],
            int_names
        ))));
        assert!(malformed_err(check(&dn(
            "dim",
            "dimnames",
            &[2, 3],
            one_names
        ))));
        assert!(malformed_err(check(&dn(
            "names",
            "dimnames",
            &[2, 3],
            good_names
        ))));
        // Duplicates of checked attributes.
        let dup = {
            let mut v = ints6().flags(LISTSXP, false, true).sym("dim").ints(&[6]);
            v = v
                .flags(LISTSXP, false, true)
                .int((1 << 8) | i32::from(REFSXP))
                .ints(&[6]);
            v.nil().done()
        };
        assert!(malformed_err(check(&dup)));
        // Attribute lists need tags, no attributes, and a NULL end.
        let untagged = ints6().flags(LISTSXP, false, false).ints(&[1]).nil().done();
        assert!(malformed_err(check(&untagged)));
        let attributed = ints6()
            .flags(LISTSXP, true, true)
            .nil()
            .sym("a")
            .ints(&[1])
            .nil()
            .done();
        assert!(malformed_err(check(&attributed)));
        let dotted = ints6()
            .flags(LISTSXP, false, true)
            .sym("a")
            .ints(&[1])
            .ints(&[2])
            .done();
        assert!(malformed_err(check(&dotted)));
        let not_list = ints6().ints(&[1]).done();
        assert!(malformed_err(check(&not_list)));
        // A string's attributes are refused (R ignores them).
        let chr_attr = S::v3()
            .flags(STRSXP, false, false)
            .int(1)
            .int(0x0004_0209)
            .int(1)
            .done();
        assert!(malformed_err(check(&chr_attr)));
    }

    #[test]
    fn error_messages() {
        assert_eq!(ValueError::Truncated.to_string(), "truncated value");
        assert_eq!(
            ValueError::Forbidden("promise").to_string(),
            "values of type 'promise' cannot cross the sandbox boundary"
        );
        assert_eq!(
            ValueError::TrailingBytes(3).to_string(),
            "3 trailing bytes after the value"
        );
        let ascii = include_bytes!("../tests/fixtures/ascii.bin");
        assert!(check(ascii)
            .unwrap_err()
            .to_string()
            .starts_with("unsupported serialization format"));
    }
}
