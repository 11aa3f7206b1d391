//! Shared by the unit tests of the checker: fixtures written by R, and a
//! builder for hand-crafted streams.

pub use super::sxp::*;
pub use super::{check_with, CheckLimits, ValueError, DEFAULT_MAX_DEPTH};

/// Bytes of a fixture written by `tests/fixtures/make_fixtures.R`.
macro_rules! fixture {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../tests/fixtures/", $name, ".bin")) as &[u8],
        )
    };
}
pub(crate) use fixture;

/// Checks with any S3 class allowed and no class rules: the structure
/// tests are about structure (classes have tests of their own).
pub fn check(bytes: &[u8]) -> Result<(), ValueError> {
    check_with(bytes, &any_class())
}

pub fn any_class() -> CheckLimits {
    CheckLimits {
        allowed_classes: None,
        ..CheckLimits::default()
    }
}

/// Checks with the defaults (classes restricted, their rules on).
pub fn check_default(bytes: &[u8]) -> Result<(), ValueError> {
    super::check(bytes)
}

pub fn malformed_err(r: Result<(), ValueError>) -> bool {
    matches!(r, Err(ValueError::Malformed { .. }))
}

/// The message of a refusal that names a class's or attribute's problem.
pub fn invalid(r: Result<(), ValueError>) -> String {
    match r {
        Err(e @ ValueError::Invalid { .. }) => e.to_string(),
        other => panic!("expected an Invalid refusal, got {other:?}"),
    }
}

/// Appends part of a hand-built stream.
pub type Body = fn(S) -> S;

/// CHARSXP flags for a UTF-8, a native and an ASCII string (gp bits 3
/// and 6), as R writes them.
pub const UTF8_CHARS: i32 = 0x0000_8009;
pub const NATIVE_CHARS: i32 = 0x0000_0009;
pub const ASCII_CHARS: i32 = 0x0004_0009;
pub const LATIN1_CHARS: i32 = 0x0000_4009;

/// Hand-built streams.
pub struct S {
    pub b: Vec<u8>,
    pub big: bool,
}

impl S {
    /// Version-3 native ("B\n") header as R 4.2.2 writes it.
    pub fn v3() -> S {
        let mut s = S {
            b: b"B\n".to_vec(),
            big: false,
        };
        s = s.int(3).int(0x0004_0202).int(0x0003_0500).int(5);
        s.b.extend_from_slice(b"UTF-8");
        s
    }

    /// Version-2 XDR header.
    pub fn v2_xdr() -> S {
        let s = S {
            b: b"X\n".to_vec(),
            big: true,
        };
        s.int(2).int(0x0004_0202).int(0x0002_0300)
    }

    pub fn int(mut self, v: i32) -> S {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.b.extend_from_slice(&b);
        self
    }

    pub fn dbl(mut self, v: f64) -> S {
        let b = if self.big {
            v.to_bits().to_be_bytes()
        } else {
            v.to_bits().to_le_bytes()
        };
        self.b.extend_from_slice(&b);
        self
    }

    pub fn flags(self, ty: u8, attr: bool, tag: bool) -> S {
        let f = i32::from(ty) | (i32::from(attr) << 9) | (i32::from(tag) << 10);
        self.int(f)
    }

    /// An ASCII-flagged string.
    pub fn chars(self, text: &str) -> S {
        self.chars_as(ASCII_CHARS, text.as_bytes())
    }

    /// A string of raw bytes with the given CHARSXP flags.
    pub fn chars_as(mut self, flags: i32, text: &[u8]) -> S {
        self = self.int(flags).int(text.len() as i32);
        self.b.extend_from_slice(text);
        self
    }

    pub fn na_string(self) -> S {
        self.int(9).int(-1)
    }

    pub fn sym(self, name: &str) -> S {
        self.flags(SYMSXP, false, false).chars(name)
    }

    pub fn ints(self, values: &[i32]) -> S {
        self.ints_attr(values, false)
    }

    /// An integer vector whose attributes follow.
    pub fn ints_attr(self, values: &[i32], attr: bool) -> S {
        let mut s = self.flags(INTSXP, attr, false).int(values.len() as i32);
        for &v in values {
            s = s.int(v);
        }
        s
    }

    pub fn dbls(self, values: &[f64]) -> S {
        self.dbls_attr(values, false)
    }

    /// A double vector whose attributes follow.
    pub fn dbls_attr(self, values: &[f64], attr: bool) -> S {
        let mut s = self.flags(REALSXP, attr, false).int(values.len() as i32);
        for &v in values {
            s = s.dbl(v);
        }
        s
    }

    /// A character vector (`None` is `NA`).
    pub fn strs(self, values: &[Option<&str>]) -> S {
        self.strs_attr(values, false)
    }

    pub fn strs_attr(self, values: &[Option<&str>], attr: bool) -> S {
        let mut s = self.flags(STRSXP, attr, false).int(values.len() as i32);
        for v in values {
            s = match v {
                Some(t) => s.chars(t),
                None => s.na_string(),
            };
        }
        s
    }

    /// Header of a list of `n` elements (which follow).
    pub fn list(self, n: i32, attr: bool) -> S {
        self.flags(VECSXP, attr, false).int(n)
    }

    /// One attribute node: the tag, then the value `body` writes.
    pub fn attr(self, name: &str, body: impl FnOnce(S) -> S) -> S {
        body(self.flags(LISTSXP, false, true).sym(name))
    }

    /// `class = c(...)` as an attribute node.
    pub fn class(self, classes: &[&str]) -> S {
        let classes: Vec<Option<&str>> = classes.iter().map(|c| Some(*c)).collect();
        self.attr("class", |s| s.strs(&classes))
    }

    pub fn nil(self) -> S {
        self.flags(NILVALUE_SXP, false, false)
    }

    /// ALTREP header and info pairlist for `class` from `package`.
    pub fn altrep(self, class: &str, package: &str, ty: u8) -> S {
        self.flags(ALTREP_SXP, false, false)
            .flags(LISTSXP, false, false)
            .sym(class)
            .flags(LISTSXP, false, false)
            .sym(package)
            .flags(LISTSXP, false, false)
            .ints(&[i32::from(ty)])
            .nil()
    }

    /// A compact integer sequence `first:(first + n - 1)` (attributes
    /// follow).
    pub fn intseq(self, n: f64, first: f64) -> S {
        self.altrep("compact_intseq", "base", INTSXP)
            .dbls(&[n, first, 1.0])
    }

    pub fn done(self) -> Vec<u8> {
        self.b
    }
}
