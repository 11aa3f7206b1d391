//! Plain values between R objects and `securer_core::plain`: lists of
//! plain vectors read from R (the child's replies and tool calls, the
//! host's tool results, written without R's `serialize()`), and a plain
//! result's answer made for the host without `unserialize()`.

use extendr_ffi::{
    cetype_t, R_NaString, R_NamesSymbol, R_NilValue, Rboolean, Rf_allocVector, Rf_getAttrib,
    Rf_isObject, Rf_mkCharLenCE, Rf_protect, Rf_setAttrib, Rf_unprotect, Rf_xlength, ALTREP, CAR,
    CDR, COMPLEX, INTEGER, LENGTH, LOGICAL, RAW, REAL, R_CHAR, SET_STRING_ELT, SET_VECTOR_ELT,
    SEXP, SEXPTYPE, STRING_ELT, TAG, TYPEOF, VECTOR_ELT,
};
use securer_core::plain::{self, Call, Encoding, Plain, Reply, Str, MAX_DEPTH};
use securer_core::text;
use std::ffi::c_int;

// SEXP is an opaque pointer to R: never dereferenced on this side.
#[allow(improper_ctypes)]
extern "C" {
    // Not in extendr-ffi: an object's attributes (see freeze.rs), and a
    // string's declared encoding (R's API).
    fn ATTRIB(x: SEXP) -> SEXP;
    fn Rf_getCharCE(x: *mut std::ffi::c_void) -> cetype_t;
    fn Rf_ScalarLogical(x: c_int) -> SEXP;
}

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

/// A plain result as the host's answer, without `unserialize()`:
/// `list(value, visible, console)`, the transcript cleaned and cut as
/// `console_text()` does (NULL when `cap` is not positive); `None` when the
/// value holds a string R would refuse (`mkCharLenCE()` raises an error on
/// a NUL, which the checker refused already): R reads it instead.
///
/// # Safety
/// On R's main thread.
pub(crate) unsafe fn answer(reply: &Reply<'_>, cap: f64) -> Option<SEXP> {
    if let Plain::Character(strings) = &reply.value {
        if strings.iter().flatten().any(|(b, _)| b.contains(&0)) {
            return None;
        }
    }
    let out = Rf_protect(Rf_allocVector(SEXPTYPE::VECSXP, 3));
    let names = Rf_protect(Rf_allocVector(SEXPTYPE::STRSXP, 3));
    for (i, name) in ["value", "visible", "console"].iter().enumerate() {
        SET_STRING_ELT(
            names,
            i as isize,
            mk_char(name.as_bytes(), cetype_t::CE_UTF8),
        );
    }
    Rf_setAttrib(out, R_NamesSymbol, names);
    SET_VECTOR_ELT(out, 0, to_sexp(&reply.value));
    let visible = Rf_allocVector(SEXPTYPE::LGLSXP, 1);
    SET_VECTOR_ELT(out, 1, visible);
    *LOGICAL(visible) = c_int::from(reply.visible);
    if let (Some((bytes, encoding)), true) = (reply.console, cap > 0.0) {
        let max = (cap + 200.0).min(usize::MAX as f64) as usize;
        let s = match encoding {
            Encoding::Latin1 => bytes.iter().map(|b| char::from(*b)).collect(),
            _ => String::from_utf8_lossy(bytes).into_owned(),
        };
        let s = text::truncate_chars(text::strip_controls(&s), max);
        let console = Rf_allocVector(SEXPTYPE::STRSXP, 1);
        SET_VECTOR_ELT(out, 2, console);
        SET_STRING_ELT(console, 0, mk_char(s.as_bytes(), cetype_t::CE_UTF8));
    }
    Rf_unprotect(2);
    Some(out)
}

/// A tool call as the host runs it (see `rs_next_step()`): `list(type =
/// "tool_call", ready = TRUE, name, args)`, when `tools` (the session's
/// tools' declared argument types, by tool) has a tool of that name taking
/// each argument, and each is of its declared type; `None` for anything
/// else, which R unserializes and answers.
///
/// # Safety
/// On R's main thread, `tools` a live SEXP; `call` holds no NUL (see
/// `plain::read_call()`).
pub(crate) unsafe fn ready_call(call: &Call<'_>, tools: SEXP) -> Option<SEXP> {
    let types = by_name(tools, call.name)?;
    let Plain::List { names, .. } = &call.args else {
        return None;
    };
    let args = Rf_protect(to_sexp(&call.args));
    let ok = names.iter().flatten().enumerate().all(|(i, arg)| {
        arg.and_then(|(arg, _)| by_name(types, arg))
            .is_some_and(|t| crate::type_ok(VECTOR_ELT(args, i as isize), t))
    });
    let out = ok.then(|| {
        let ascii = |b: &'static [u8]| Some((b, Encoding::Native));
        let event = Rf_protect(Rf_allocVector(SEXPTYPE::VECSXP, 4));
        SET_VECTOR_ELT(event, 0, strings(&[ascii(b"tool_call")]));
        SET_VECTOR_ELT(event, 1, Rf_ScalarLogical(1));
        SET_VECTOR_ELT(event, 2, strings(&[Some((call.name, Encoding::Native))]));
        SET_VECTOR_ELT(event, 3, args);
        let keys: [&'static [u8]; 4] = [b"type", b"ready", b"name", b"args"];
        let keys = keys.map(ascii);
        let names = Rf_protect(strings(&keys));
        Rf_setAttrib(event, R_NamesSymbol, names);
        Rf_unprotect(2);
        event
    });
    Rf_unprotect(1);
    out
}

/// The element of list `x` whose name is `name` exactly (R's `[[`).
///
/// # Safety
/// On R's main thread, `x` a live SEXP.
unsafe fn by_name(x: SEXP, name: &[u8]) -> Option<SEXP> {
    if TYPEOF(x) != SEXPTYPE::VECSXP {
        return None;
    }
    let names = Rf_getAttrib(x, R_NamesSymbol);
    if TYPEOF(names) != SEXPTYPE::STRSXP {
        return None;
    }
    (0..Rf_xlength(names))
        .find(|i| {
            let c = STRING_ELT(names, *i);
            let len = usize::try_from(LENGTH(c)).unwrap_or(0);
            c != R_NaString && std::slice::from_raw_parts(R_CHAR(c).cast::<u8>(), len) == name
        })
        .map(|i| VECTOR_ELT(x, i))
}

/// A new R value of `p`; its strings hold no NUL.
///
/// # Safety
/// On R's main thread; the result is unprotected.
unsafe fn to_sexp(p: &Plain<'_>) -> SEXP {
    match p {
        Plain::Null => R_NilValue,
        Plain::List { names, items } => {
            let v = Rf_protect(Rf_allocVector(SEXPTYPE::VECSXP, items.len() as isize));
            for (i, item) in items.iter().enumerate() {
                SET_VECTOR_ELT(v, i as isize, to_sexp(item));
            }
            if let Some(names) = names {
                let names = Rf_protect(strings(names));
                Rf_setAttrib(v, R_NamesSymbol, names);
                Rf_unprotect(1);
            }
            Rf_unprotect(1);
            v
        }
        Plain::Atomic {
            sexptype,
            len,
            data,
        } => {
            let ty = match *sexptype {
                plain::LGLSXP => SEXPTYPE::LGLSXP,
                plain::INTSXP => SEXPTYPE::INTSXP,
                plain::REALSXP => SEXPTYPE::REALSXP,
                plain::CPLXSXP => SEXPTYPE::CPLXSXP,
                _ => SEXPTYPE::RAWSXP,
            };
            let v = Rf_allocVector(ty, *len as isize);
            let dest: *mut u8 = match ty {
                SEXPTYPE::LGLSXP => LOGICAL(v).cast(),
                SEXPTYPE::INTSXP => INTEGER(v).cast(),
                SEXPTYPE::REALSXP => REAL(v).cast(),
                SEXPTYPE::CPLXSXP => COMPLEX(v).cast(),
                _ => RAW(v).cast(),
            };
            if !data.is_empty() {
                std::ptr::copy_nonoverlapping(data.as_ptr(), dest, data.len());
            }
            v
        }
        Plain::Character(s) => strings(s),
    }
}

/// A new character vector.
///
/// # Safety
/// On R's main thread; no string holds a NUL; the result is unprotected.
unsafe fn strings(strings: &[Str<'_>]) -> SEXP {
    let v = Rf_protect(Rf_allocVector(SEXPTYPE::STRSXP, strings.len() as isize));
    for (i, s) in strings.iter().enumerate() {
        let c = match s {
            None => R_NaString,
            Some((bytes, encoding)) => mk_char(
                bytes,
                match encoding {
                    Encoding::Utf8 => cetype_t::CE_UTF8,
                    Encoding::Latin1 => cetype_t::CE_LATIN1,
                    Encoding::Bytes => cetype_t::CE_BYTES,
                    Encoding::Native => cetype_t::CE_NATIVE,
                },
            ),
        };
        SET_STRING_ELT(v, i as isize, c);
    }
    Rf_unprotect(1);
    v
}

/// # Safety
/// On R's main thread; `bytes` hold no NUL.
unsafe fn mk_char(bytes: &[u8], encoding: cetype_t) -> SEXP {
    Rf_mkCharLenCE(bytes.as_ptr().cast(), bytes.len() as c_int, encoding)
}
