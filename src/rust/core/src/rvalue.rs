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

/// Limits applied while checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckLimits {
    /// Deepest nesting of lists, attribute lists and ALTREP states.
    pub max_depth: usize,
    /// Largest accepted stream, in bytes.
    pub max_bytes: usize,
}

impl Default for CheckLimits {
    fn default() -> Self {
        CheckLimits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_bytes: DEFAULT_MAX_BYTES,
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
        ENVSXP | BASEENV_SXP | EMPTYENV_SXP | GLOBALENV_SXP | BASENAMESPACE_SXP
        | NAMESPACESXP | PACKAGESXP => "environment",
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
            if !ENCODINGS.iter().any(|e| e.as_bytes().eq_ignore_ascii_case(name)) {
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
    /// Character vector, with whether it is known to hold no `NA`.
    Str { no_na: bool },
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
                for _ in 0..len {
                    if self.read_charsxp()?.is_none() {
                        no_na = false;
                    }
                }
                let shape = Shape {
                    ty: STRSXP,
                    len,
                    altrep: false,
                    data: Data::Str { no_na },
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
    fn start_attrs(
        &mut self,
        owner: Shape,
        carry: Option<Vec<Shape>>,
    ) -> Result<Step, ValueError> {
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
                    return Err(malformed("'class' attribute is not a character vector", offset));
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
                let product = dims
                    .iter()
                    .try_fold(1u64, |acc, &d| acc.checked_mul(d));
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

    /// The values of a `dim` attribute, if it is a valid one.
    fn dim_values(&self, val: &Shape) -> Option<Vec<u64>> {
        if val.ty != INTSXP || val.len == 0 {
            return None;
        }
        match val.data {
            Data::Plain(s, e) => self
                .r
                .ints(s, e)
                .map(|d| u64::try_from(d).ok())
                .collect(),
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
            return Err(unexpected(f.ty, "character vector element is not a string", offset));
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
        let class = AltClass::lookup(class_name, package).ok_or_else(|| {
            ValueError::AltrepClass {
                class: printable(class_name),
                package: printable(package),
            }
        })?;
        if ty != Some(i32::from(class.base_type())) {
            return Err(malformed("ALTREP class information has the wrong type", offset));
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
                    return Err(malformed("wrapped value does not match its wrapper class", offset));
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
                    INTSXP | LGLSXP | REALSXP => {
                        if claims_sorted && !self.sorted_as(&car, srt) {
                            return Err(malformed("wrapper claims unsorted data are sorted", offset));
                        }
                    }
                    STRSXP => {
                        if claims_sorted {
                            return Err(malformed(
                                "wrapper claims strings are sorted (cannot be verified)",
                                offset,
                            ));
                        }
                    }
                    // R never consults these claims for other types.
                    _ => {}
                }
                if no_na == 1 && matches!(ty, INTSXP | LGLSXP | REALSXP | STRSXP) && !self.no_na(&car)
                {
                    return Err(malformed("wrapper claims no NAs but the data have some", offset));
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
            Data::Str { no_na } => no_na,
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

