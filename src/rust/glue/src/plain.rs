//! Lists of plain vectors, read from R objects for `securer_core::plain`
//! (the child's replies and tool calls, written without R's
//! `serialize()`).

use extendr_ffi::{
    cetype_t, R_NaString, R_NamesSymbol, R_NilValue, Rboolean, Rf_isObject, Rf_xlength, ALTREP,
    CAR, CDR, COMPLEX, INTEGER, LENGTH, LOGICAL, RAW, REAL, R_CHAR, SEXP, SEXPTYPE, STRING_ELT,
    TAG, TYPEOF, VECTOR_ELT,
};
use securer_core::plain::{self, Encoding, Plain, Str};

// SEXP is an opaque pointer to R: never dereferenced on this side.
#[allow(improper_ctypes)]
extern "C" {
    // Not in extendr-ffi: an object's attributes (see freeze.rs), and a
    // string's declared encoding (R's API).
    fn ATTRIB(x: SEXP) -> SEXP;
    fn Rf_getCharCE(x: *mut std::ffi::c_void) -> cetype_t;
}

/// Lists nested deeper than this are left to R.
const MAX_DEPTH: usize = 8;

/// `x` as a plain value: NULL, a vector without attributes, or a list whose
/// only attribute (if any) is its names and whose elements are plain
/// values; `None` for anything else, ALTREP vectors (R writes some in
/// their compact form) and values larger than `max` bytes.
///
/// # Safety
/// On R's main thread, `x` a live SEXP; the slices live as long as `x`
/// and must not outlive an allocation.
pub(crate) unsafe fn value<'a>(x: SEXP, max: usize) -> Option<Plain<'a>> {
    let mut budget = max;
    read(x, 0, &mut budget)
}

/// # Safety
/// As `value()`.
unsafe fn read<'a>(x: SEXP, depth: usize, budget: &mut usize) -> Option<Plain<'a>> {
    // Each item takes 4 bytes at least: the Vec of items stays within the
    // size of the message it is for.
    *budget = budget.checked_sub(4)?;
    let ty = TYPEOF(x);
    if ty == SEXPTYPE::NILSXP {
        return Some(Plain::Null);
    }
    if ALTREP(x) != 0 || Rf_isObject(x) != Rboolean::FALSE {
        return None;
    }
    let attrs = ATTRIB(x);
    if ty == SEXPTYPE::VECSXP && depth < MAX_DEPTH {
        let names = if attrs == R_NilValue {
            None
        } else if TYPEOF(attrs) == SEXPTYPE::LISTSXP
            && TAG(attrs) == R_NamesSymbol
            && CDR(attrs) == R_NilValue
        {
            match read(CAR(attrs), depth + 1, budget)? {
                Plain::Character(names) => Some(names),
                _ => return None,
            }
        } else {
            return None;
        };
        let n = Rf_xlength(x);
        let items = (0..n)
            .map(|i| read(VECTOR_ELT(x, i), depth + 1, budget))
            .collect::<Option<Vec<_>>>()?;
        return Some(Plain::List { names, items });
    }
    if attrs != R_NilValue {
        return None;
    }
    let len = usize::try_from(Rf_xlength(x)).ok()?;
    let mut atomic = |sexptype: u32, ptr: *const u8, size: usize| {
        let bytes = len.checked_mul(size)?;
        *budget = budget.checked_sub(bytes)?;
        let data = if len == 0 {
            &[][..]
        } else {
            std::slice::from_raw_parts(ptr, bytes)
        };
        Some(Plain::Atomic {
            sexptype,
            len,
            data,
        })
    };
    match ty {
        SEXPTYPE::LGLSXP => atomic(plain::LGLSXP, LOGICAL(x).cast(), 4),
        SEXPTYPE::INTSXP => atomic(plain::INTSXP, INTEGER(x).cast(), 4),
        SEXPTYPE::REALSXP => atomic(plain::REALSXP, REAL(x).cast(), 8),
        SEXPTYPE::CPLXSXP => atomic(plain::CPLXSXP, COMPLEX(x).cast(), 16),
        SEXPTYPE::RAWSXP => atomic(plain::RAWSXP, RAW(x).cast(), 1),
        SEXPTYPE::STRSXP => (0..len as isize)
            .map(|i| string(STRING_ELT(x, i), budget))
            .collect::<Option<Vec<_>>>()
            .map(Plain::Character),
        _ => None,
    }
}

/// A string, or `Some(None)` for NA; `None` past the budget.
///
/// # Safety
/// As `value()`, `c` a CHARSXP.
unsafe fn string<'a>(c: SEXP, budget: &mut usize) -> Option<Str<'a>> {
    *budget = budget.checked_sub(8)?;
    if c == R_NaString {
        return Some(None);
    }
    let len = usize::try_from(LENGTH(c)).unwrap_or(0);
    *budget = budget.checked_sub(len)?;
    let bytes = std::slice::from_raw_parts(R_CHAR(c).cast::<u8>(), len);
    let encoding = match Rf_getCharCE(c.cast()) {
        cetype_t::CE_UTF8 => Encoding::Utf8,
        cetype_t::CE_LATIN1 => Encoding::Latin1,
        cetype_t::CE_BYTES => Encoding::Bytes,
        _ => Encoding::Native,
    };
    Some(Some((bytes, encoding)))
}
