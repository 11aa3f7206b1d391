//! R's serialization of a reply made of plain values, without R's
//! `serialize()`.
//!
//! The child's reply to an execution is a named list of vectors without
//! attributes (the value, whether it is visible, the transcript, ...), and
//! a tool call one with a list of arguments. R's `serialize()` allocates a
//! table of references on every call, a tenth of the child's time in a
//! short execution; lists of plain vectors hold no references, so their
//! bytes are written here instead, as R writes them (format "B", version
//! 3). The caller says what each vector is; anything else (other
//! attributes, environments, functions) is serialized by R as before.

use thiserror::Error;

pub const LGLSXP: u32 = 10;
pub const INTSXP: u32 = 13;
pub const REALSXP: u32 = 14;
pub const CPLXSXP: u32 = 15;
pub const RAWSXP: u32 = 24;
const SYMSXP: u32 = 1;
const LISTSXP: u32 = 2;
const CHARSXP: u32 = 9;
pub(crate) const STRSXP: u32 = 16;
pub(crate) const VECSXP: u32 = 19;
const REFSXP: u32 = 255;
const NILVALUE: u32 = 254;
pub(crate) const HAS_ATTR: u32 = 1 << 9;
const HAS_TAG: u32 = 1 << 10;
/// Lists nested deeper than this are left to R.
pub const MAX_DEPTH: usize = 8;

/// A CHARSXP's gp bits as R's `serialize()` writes them: the encoding
/// (`mkCharLenCE()` sets UTF-8, Latin-1 or bytes only on a string that is
/// not ASCII) and whether it is ASCII.
const ASCII_MASK: u32 = 1 << 6;
const UTF8_MASK: u32 = 1 << 3;
const LATIN1_MASK: u32 = 1 << 2;
const BYTES_MASK: u32 = 1 << 1;

/// A string's declared encoding (R's `cetype_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Native,
    Utf8,
    Latin1,
    Bytes,
}

/// One element of a character vector; `None` is `NA`.
pub type Str<'a> = Option<(&'a [u8], Encoding)>;

/// A vector without attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum Plain<'a> {
    Null,
    /// A logical, integer, double, complex or raw vector: its type (the
    /// constants above), its length and its elements' bytes in the
    /// machine's order.
    Atomic {
        sexptype: u32,
        len: usize,
        data: &'a [u8],
    },
    Character(Vec<Str<'a>>),
    /// A list, whose only attribute (if any) is its names.
    List {
        names: Option<Vec<Str<'a>>>,
        items: Vec<Plain<'a>>,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WriteError {
    #[error("the header is not R's serialization of NULL (format \"B\", version 3)")]
    Header,
    #[error("a list's names and elements differ in number")]
    Names,
    #[error("a vector's type, length and bytes disagree")]
    Vector,
    #[error("the reply is larger than {0} bytes")]
    TooLarge(usize),
}

/// The bytes of R's `serialize(value, NULL, xdr = FALSE)`. `null` is R's
/// serialization of `NULL` on this machine (its header: R's version and
/// native encoding); nothing longer than `max` bytes is written.
pub fn serialize(null: &[u8], value: &Plain<'_>, max: usize) -> Result<Vec<u8>, WriteError> {
    let header = header(null).ok_or(WriteError::Header)?;
    let mut w = Writer {
        out: Vec::with_capacity(256),
        max,
        names_symbol: false,
    };
    w.bytes(header)?;
    w.plain(value)?;
    Ok(w.out)
}

/// The int at `at` in the machine's byte order (R's format "B").
pub(crate) fn int_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// The length of the header R's `serialize(xdr = FALSE)` starts `bytes`
/// with (format "B", version 3, writer and minimum reader versions, the
/// native encoding's name), if it starts with one.
pub(crate) fn header_len(bytes: &[u8]) -> Option<usize> {
    if bytes.get(..2)? != b"B\n" || int_at(bytes, 2)? != 3 {
        return None;
    }
    let nelen = usize::try_from(int_at(bytes, 14)?)
        .ok()
        .filter(|n| *n <= 63)?;
    Some(18 + nelen)
}

/// `null` without its final item: R's header, checked.
fn header(null: &[u8]) -> Option<&[u8]> {
    let end = header_len(null)?;
    (null.len() == end + 4 && int_at(null, end)? == NILVALUE).then(|| &null[..end])
}

struct Writer {
    out: Vec<u8>,
    max: usize,
    /// Whether the symbol `names` was written.
    names_symbol: bool,
}

impl Writer {
    fn bytes(&mut self, b: &[u8]) -> Result<(), WriteError> {
        if self.out.len() + b.len() > self.max {
            return Err(WriteError::TooLarge(self.max));
        }
        self.out.extend_from_slice(b);
        Ok(())
    }

    fn int(&mut self, x: u32) -> Result<(), WriteError> {
        self.bytes(&x.to_ne_bytes())
    }

    fn length(&mut self, n: usize) -> Result<(), WriteError> {
        // (Longer vectors are written in two parts, and never fit a
        // message.)
        let n = i32::try_from(n).map_err(|_| WriteError::TooLarge(self.max))?;
        self.int(n as u32)
    }

    fn plain(&mut self, item: &Plain<'_>) -> Result<(), WriteError> {
        match item {
            Plain::Null => self.int(NILVALUE),
            Plain::Atomic {
                sexptype,
                len,
                data,
            } => {
                let size = match *sexptype {
                    LGLSXP | INTSXP => 4,
                    REALSXP => 8,
                    CPLXSXP => 16,
                    RAWSXP => 1,
                    _ => return Err(WriteError::Vector),
                };
                if len.checked_mul(size) != Some(data.len()) {
                    return Err(WriteError::Vector);
                }
                self.int(*sexptype)?;
                self.length(*len)?;
                self.bytes(data)
            }
            Plain::Character(strings) => self.strings(strings),
            Plain::List { names, items } => {
                if names.as_ref().is_some_and(|n| n.len() != items.len()) {
                    return Err(WriteError::Names);
                }
                self.int(VECSXP | if names.is_some() { HAS_ATTR } else { 0 })?;
                self.length(items.len())?;
                items.iter().try_for_each(|item| self.plain(item))?;
                let Some(names) = names else {
                    return Ok(());
                };
                // The attributes: a pairlist of one node tagged `names`.
                self.int(LISTSXP | HAS_TAG)?;
                if self.names_symbol {
                    // R writes a symbol once, then refers to it by its
                    // place in the table of references: `names` is the
                    // first and only one.
                    self.int(REFSXP | 1 << 8)?;
                } else {
                    self.int(SYMSXP)?;
                    self.string(Some((b"names", Encoding::Native)))?;
                    self.names_symbol = true;
                }
                self.strings(names)?;
                self.int(NILVALUE)
            }
        }
    }

    fn strings(&mut self, strings: &[Str<'_>]) -> Result<(), WriteError> {
        self.int(STRSXP)?;
        self.length(strings.len())?;
        strings.iter().try_for_each(|s| self.string(*s))
    }

    fn string(&mut self, s: Str<'_>) -> Result<(), WriteError> {
        let Some((bytes, encoding)) = s else {
            // NA_character_: R writes the gp bits of its NA string, none.
            self.int(CHARSXP)?;
            return self.int(u32::MAX);
        };
        let levels = if bytes.is_ascii() {
            ASCII_MASK
        } else {
            match encoding {
                Encoding::Native => 0,
                Encoding::Utf8 => UTF8_MASK,
                Encoding::Latin1 => LATIN1_MASK,
                Encoding::Bytes => BYTES_MASK,
            }
        };
        self.int(CHARSXP | levels << 12)?;
        self.length(bytes.len())?;
        self.bytes(bytes)
    }
}

/// A plain result read back (see [`read_reply`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<'a> {
    /// NULL or a vector without attributes.
    pub value: Plain<'a>,
    /// FALSE only when the reply's `visible` is exactly FALSE.
    pub visible: bool,
    /// The transcript: one string, or none (NULL, NA or anything else).
    pub console: Option<(&'a [u8], Encoding)>,
}

/// `bytes`, a checked reply to an execution, read back when it is a plain
/// result (see `rvalue::check_reply`) whose value is NULL or a vector
/// without attributes, written with `null`'s header (this R's version and
/// native encoding): what the host takes from it. `None` for anything
/// else, which R unserializes.
pub fn read_reply<'a>(null: &[u8], bytes: &'a [u8]) -> Option<Reply<'a>> {
    let (names, items) = read_fields(null, bytes, 16)?;
    let field = |name: &[u8]| field(&names, &items, name);
    let value = field(b"value").filter(|v| !matches!(v, Plain::List { .. }))?;
    let visible = field(b"visible")?;
    let refused_ok = field(b"refused").map_or(true, |x| *x == Plain::Null);
    let zero = 0i32.to_ne_bytes();
    let omitted_ok = field(b"plots_omitted")
        == Some(&Plain::Atomic {
            sexptype: INTSXP,
            len: 1,
            data: &zero,
        });
    if !refused_ok || !omitted_ok {
        return None;
    }
    let visible =
        !matches!(visible, Plain::Atomic { sexptype: LGLSXP, len: 1, data } if *data == zero);
    let console = match field(b"console") {
        Some(Plain::Character(s)) if s.len() == 1 => s[0],
        _ => None,
    };
    Some(Reply {
        value: value.clone(),
        visible,
        console,
    })
}

/// A tool call read back (see [`read_call`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Call<'a> {
    /// The tool's name: ASCII, not empty.
    pub name: &'a [u8],
    /// The arguments: a list, empty or named (ASCII, not empty, each
    /// once).
    pub args: Plain<'a>,
}

/// `bytes`, a checked tool call from the child (`list(id, name, args)`),
/// read back when its name and its arguments' names are ASCII strings and
/// the arguments are plain values holding no NUL (strings R would refuse),
/// written with `null`'s header. `None` for anything else, which R
/// unserializes and answers (a malformed call, unknown names, ...).
pub fn read_call<'a>(null: &[u8], bytes: &'a [u8]) -> Option<Call<'a>> {
    let (names, items) = read_fields(null, bytes, 16)?;
    let name = match field(&names, &items, b"name")? {
        Plain::Character(s) if s.len() == 1 => s[0].map(|(b, _)| b)?,
        _ => return None,
    };
    let args = field(&names, &items, b"args")?;
    let Plain::List {
        names: arg_names,
        items: values,
    } = args
    else {
        return None;
    };
    let word = |b: &[u8]| !b.is_empty() && b.is_ascii();
    let arg_names: Vec<&[u8]> = match arg_names {
        Some(n) => n.iter().map(|s| s.map(|(b, _)| b)).collect::<Option<_>>()?,
        None if values.is_empty() => Vec::new(),
        None => return None,
    };
    // (No tool takes more: a longer list is left to R's checks, which
    // are not quadratic.)
    let unique = arg_names.len() <= 64
        && arg_names
            .iter()
            .enumerate()
            .all(|(i, a)| word(a) && !arg_names[..i].contains(a));
    if !word(name) || !unique || values.iter().any(has_nul) {
        return None;
    }
    Some(Call {
        name,
        args: args.clone(),
    })
}

/// The first element named `name` (as R's `[[` finds it).
fn field<'p, 'a>(names: &[Str<'a>], items: &'p [Plain<'a>], name: &[u8]) -> Option<&'p Plain<'a>> {
    names
        .iter()
        .position(|s| s.is_some_and(|(b, _)| b == name))
        .map(|i| &items[i])
}

/// `bytes` as a list with names and at most `max` elements, holding plain
/// values, written with `null`'s header, and nothing after it.
fn read_fields<'a>(
    null: &[u8],
    bytes: &'a [u8],
    max: usize,
) -> Option<(Vec<Str<'a>>, Vec<Plain<'a>>)> {
    let head = header(null)?;
    let mut r = Reader {
        bytes,
        pos: bytes.get(..head.len()).filter(|b| *b == head)?.len(),
        names_symbol: false,
    };
    let Plain::List {
        names: Some(names),
        items,
    } = r.plain(0)?
    else {
        return None;
    };
    (items.len() <= max && r.pos == bytes.len()).then_some((names, items))
}

/// Does `p` hold a string with a NUL byte?
fn has_nul(p: &Plain<'_>) -> bool {
    match p {
        Plain::Null | Plain::Atomic { .. } => false,
        Plain::Character(s) => s.iter().flatten().any(|(b, _)| b.contains(&0)),
        Plain::List { names, items } => {
            names
                .iter()
                .flatten()
                .flatten()
                .any(|(b, _)| b.contains(&0))
                || items.iter().any(has_nul)
        }
    }
}

/// Reads what [`serialize`] writes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Whether the symbol `names` was read (later ones refer to it).
    names_symbol: bool,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(b)
    }

    fn int(&mut self) -> Option<u32> {
        let v = int_at(self.bytes, self.pos)?;
        self.pos += 4;
        Some(v)
    }

    /// A plain value: NULL, a vector without attributes, or a list whose
    /// only attribute is its names, nested at most `MAX_DEPTH` deep.
    fn plain(&mut self, depth: usize) -> Option<Plain<'a>> {
        let flags = self.int()?;
        if flags & 0xff != VECSXP {
            return self.vector(flags);
        }
        // Names are the one attribute; no object, tag or unknown bit.
        if depth >= MAX_DEPTH || flags & 0xf00 & !HAS_ATTR != 0 {
            return None;
        }
        let len = usize::try_from(i32::from_ne_bytes(self.int()?.to_ne_bytes())).ok()?;
        // Each element takes 4 bytes at least: no more are allocated
        // than the message holds.
        let items = (0..len)
            .map(|_| self.plain(depth + 1))
            .collect::<Option<Vec<_>>>()?;
        let names = if flags & HAS_ATTR == 0 {
            None
        } else {
            Some(self.names(len)?)
        };
        Some(Plain::List { names, items })
    }

    /// A list's attributes, when they are its `n` names and nothing else.
    fn names(&mut self, n: usize) -> Option<Vec<Str<'a>>> {
        if self.int()? != LISTSXP | HAS_TAG {
            return None;
        }
        // R writes a symbol once, then refers to it by its place in the
        // table of references: `names` is the only one in a plain value.
        match self.int()? {
            SYMSXP if !self.names_symbol => match self.string()? {
                Some((b"names", _)) => self.names_symbol = true,
                _ => return None,
            },
            x if x == REFSXP | 1 << 8 && self.names_symbol => {}
            _ => return None,
        }
        let flags = self.int()?;
        let Plain::Character(names) = self.vector(flags)? else {
            return None;
        };
        (names.len() == n && self.int()? == NILVALUE).then_some(names)
    }

    /// NULL or a vector without attributes (no lists), whose flags were
    /// read.
    fn vector(&mut self, flags: u32) -> Option<Plain<'a>> {
        if flags == NILVALUE {
            return Some(Plain::Null);
        }
        // No object, attribute or tag bit; the gp bits of a vector do not
        // make another value.
        if flags & 0xf00 != 0 {
            return None;
        }
        let sexptype = flags & 0xff;
        let len = usize::try_from(i32::from_ne_bytes(self.int()?.to_ne_bytes())).ok()?;
        let size = match sexptype {
            LGLSXP | INTSXP => 4,
            REALSXP => 8,
            CPLXSXP => 16,
            RAWSXP => 1,
            STRSXP => {
                let strings = (0..len).map(|_| self.string()).collect::<Option<_>>()?;
                return Some(Plain::Character(strings));
            }
            _ => return None,
        };
        let data = self.take(len.checked_mul(size)?)?;
        Some(Plain::Atomic {
            sexptype,
            len,
            data,
        })
    }

    /// A CHARSXP: `Some(None)` for NA.
    fn string(&mut self) -> Option<Str<'a>> {
        let flags = self.int()?;
        if flags & 0xff != CHARSXP {
            return None;
        }
        let len = i32::from_ne_bytes(self.int()?.to_ne_bytes());
        if len == -1 {
            return Some(None);
        }
        let bytes = self.take(usize::try_from(len).ok()?)?;
        let levels = flags >> 12;
        let encoding = if levels & UTF8_MASK != 0 {
            Encoding::Utf8
        } else if levels & LATIN1_MASK != 0 {
            Encoding::Latin1
        } else if levels & BYTES_MASK != 0 {
            Encoding::Bytes
        } else {
            Encoding::Native
        };
        Some(Some((bytes, encoding)))
    }
}

#[cfg(test)]
#[path = "plain_tests.rs"]
mod tests;
