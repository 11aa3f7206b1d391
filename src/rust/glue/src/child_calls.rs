//! The child runtime's calls for each message (receive a request, send a
//! reply, check a result, check a tool argument's type), made on R objects
//! directly instead of through extendr's `Robj`.
//!
//! extendr records every object it wraps in a process-wide table (a hash
//! map sized for 100,000 objects, 3.2 MiB), and each object it has not seen
//! before writes a random page of it. A session forked from the zygote
//! would copy that table from the zygote page by page: ~150 KiB by its
//! first execution, all of it after a thousand. These calls make no `Robj`
//! on their common path; a failure (rare: the host is gone, a value is
//! refused) is still reported through the one error object (`r_error`).
//!
//! The runtime reaches them through `rs_child_calls()`: external pointers
//! tagged as R's native symbols, which `.Call()` accepts like a registered
//! routine.

use crate::{kind_named, ms, r_error, sexp_string, sexp_strings, type_ok, with_child_io};
use extendr_api::prelude::*;
use extendr_ffi::{
    R_NamesSymbol, R_NilValue, Rf_allocVector, Rf_install, Rf_mkCharLenCE, Rf_protect,
    Rf_setAttrib, Rf_unprotect, Rf_xlength, RAW, SET_STRING_ELT, SET_VECTOR_ELT, SEXP, SEXPTYPE,
    TYPEOF,
};
use securer_core::frame::{self, Kind};
use securer_core::{plain, rvalue, Error, ErrorKind};
use std::ffi::{c_int, c_void};

// SEXP is an opaque pointer to R: never dereferenced on this side.
#[allow(improper_ctypes)]
extern "C" {
    // R's API; extendr-ffi does not bind them.
    fn R_MakeExternalPtrFn(p: *const c_void, tag: SEXP, prot: SEXP) -> SEXP;
    fn Rf_asReal(x: SEXP) -> f64;
    fn Rf_asLogical(x: SEXP) -> c_int;
    fn Rf_ScalarLogical(x: c_int) -> SEXP;
    // R's flag for an interrupt (SIGINT) not yet taken; R_ext/GraphicsDevice.h.
    static mut R_interrupts_pending: c_int;
}

type Call = *const c_void;

/// The calls, by the names the runtime uses: `list(recv = , send = ,
/// send_plain = , requests_soon = , check_result = , type_ok = )` (see `rs_child_calls()`).
pub(crate) fn entry_points() -> Robj {
    let calls: [(&str, Call); 6] = [
        ("recv", child_recv as Call),
        ("send", child_send as Call),
        ("send_plain", child_send_plain as Call),
        ("requests_soon", requests_soon as Call),
        ("check_result", check_result as Call),
        ("type_ok", tool_type_ok as Call),
    ];
    let values = calls.iter().map(|&(_, f)| {
        // SAFETY: on R's main thread; the pointer is wrapped at once.
        unsafe {
            let tag = Rf_install(c"native symbol".as_ptr());
            Robj::from_sexp(R_MakeExternalPtrFn(f, tag, R_NilValue))
        }
    });
    let names = calls.map(|(name, _)| name);
    List::from_names_and_values(names, values)
        .map(Robj::from)
        .unwrap_or_else(|_| Robj::from(()))
}

/// The bytes of a raw vector, `None` for anything else.
///
/// # Safety
/// `x` must be a live SEXP; the slice lives as long as it.
unsafe fn raw_arg<'a>(x: SEXP) -> Option<&'a [u8]> {
    if TYPEOF(x) != SEXPTYPE::RAWSXP {
        return None;
    }
    let len = usize::try_from(Rf_xlength(x)).ok()?;
    if len == 0 {
        return Some(&[]);
    }
    Some(std::slice::from_raw_parts(RAW(x), len))
}

fn input_error(message: &str) -> Robj {
    r_error(Error::new(ErrorKind::Input, message))
}

/// As `rs_child_recv()`, which calls it.
pub(crate) extern "C" fn child_recv(timeout_ms: SEXP) -> SEXP {
    // SAFETY: called by R's .Call() on its main thread with live arguments.
    unsafe {
        let timeout_ms = Rf_asReal(timeout_ms);
        let timeout = (timeout_ms >= 0.0).then(|| ms(timeout_ms));
        match with_child_io(|io| io.recv(timeout)) {
            Ok(Some(f)) => {
                if f.kind == Kind::Exec {
                    // R's main thread writes R's own int flag, as R's
                    // handler does.
                    R_interrupts_pending = 0;
                }
                message(f.kind.name(), &f.payload)
            }
            Ok(None) => R_NilValue,
            Err(e) => r_error(e).get(),
        }
    }
}

/// `list(kind = <name>, payload = <raw>)`.
///
/// # Safety
/// On R's main thread.
unsafe fn message(kind: &str, payload: &[u8]) -> SEXP {
    let out = Rf_protect(Rf_allocVector(SEXPTYPE::VECSXP, 2));
    let names = Rf_protect(Rf_allocVector(SEXPTYPE::STRSXP, 2));
    for (i, name) in ["kind", "payload"].iter().enumerate() {
        SET_STRING_ELT(names, i as isize, utf8_char(name));
    }
    Rf_setAttrib(out, R_NamesSymbol, names);
    let kind_vec = Rf_allocVector(SEXPTYPE::STRSXP, 1);
    SET_VECTOR_ELT(out, 0, kind_vec);
    SET_STRING_ELT(kind_vec, 0, utf8_char(kind));
    let bytes = Rf_allocVector(SEXPTYPE::RAWSXP, payload.len() as isize);
    SET_VECTOR_ELT(out, 1, bytes);
    if !payload.is_empty() {
        std::ptr::copy_nonoverlapping(payload.as_ptr(), RAW(bytes), payload.len());
    }
    Rf_unprotect(2);
    out
}

/// A CHARSXP of a short ASCII name.
///
/// # Safety
/// On R's main thread.
unsafe fn utf8_char(s: &str) -> SEXP {
    Rf_mkCharLenCE(
        s.as_ptr().cast(),
        s.len() as c_int,
        extendr_ffi::cetype_t::CE_UTF8,
    )
}

/// As `rs_child_send()`, which calls it.
pub(crate) extern "C" fn child_send(kind: SEXP, payload: SEXP) -> SEXP {
    // SAFETY: called by R's .Call() on its main thread with live arguments;
    // the payload is read before anything is allocated.
    unsafe {
        let (Some(kind), Some(payload)) = (sexp_string(kind), raw_arg(payload)) else {
            return input_error("the runtime sends a kind name and a raw vector").get();
        };
        match kind_named(&kind).and_then(|k| with_child_io(|io| io.send(k, payload))) {
            Ok(()) => R_NilValue,
            Err(e) => r_error(e).get(),
        }
    }
}

/// Sends `value`, a list of plain vectors, as message `kind`, written as
/// R's `serialize(value, NULL, xdr = FALSE)` would write it (see
/// `securer_core::plain`; `null` is that of NULL). NULL once sent, FALSE
/// when `value` is not plain or does not fit in `max_bytes` (nothing was
/// sent: the runtime serializes it in R), an error object when the host is
/// gone.
extern "C" fn child_send_plain(kind: SEXP, value: SEXP, null: SEXP, max_bytes: SEXP) -> SEXP {
    // SAFETY: called by R's .Call() on its main thread with live arguments;
    // the bytes are written before anything is allocated.
    unsafe {
        let (Some(kind), Some(null)) = (sexp_string(kind), raw_arg(null)) else {
            return input_error("the runtime sends a kind name and a list").get();
        };
        let max = frame::frame_limit(Rf_asReal(max_bytes));
        let bytes = crate::plain::value(value, max)
            .and_then(|value| plain::serialize(null, &value, max).ok());
        let Some(bytes) = bytes else {
            return Rf_ScalarLogical(0);
        };
        match kind_named(&kind).and_then(|k| with_child_io(|io| io.send(k, &bytes))) {
            Ok(()) => R_NilValue,
            Err(e) => r_error(e).get(),
        }
    }
}

/// Whether R has an interrupt (SIGINT) not yet taken: a loop in Rust that
/// runs for a while returns to R to take it.
pub(crate) fn interrupt_pending() -> bool {
    // SAFETY: R's main thread reads R's own int flag.
    unsafe { R_interrupts_pending != 0 }
}

/// Whether the host sends its next request as soon as it has a reply (see
/// `ChildIo::await_requests_by_polling`): TRUE or FALSE. NULL.
extern "C" fn requests_soon(on: SEXP) -> SEXP {
    // SAFETY: called by R's .Call() on its main thread with a live argument.
    unsafe {
        let on = TYPEOF(on) == SEXPTYPE::LGLSXP && Rf_xlength(on) == 1 && Rf_asLogical(on) == 1;
        // Without a connection there is nothing to wait for.
        let _ = with_child_io(|io| {
            io.await_requests_by_polling(on);
            Ok(())
        });
        R_NilValue
    }
}

/// Checks the value of the last expression (serialized) as the host will
/// (`rs_check_value()`): NULL when it can cross, else `list(message,
/// printable)`, `printable` saying whether R can print it safely for the
/// console transcript (see `ValueError::printable`).
extern "C" fn check_result(bytes: SEXP, max_bytes: SEXP, classes: SEXP) -> SEXP {
    // SAFETY: called by R's .Call() on its main thread with live arguments.
    unsafe {
        let Some(bytes) = raw_arg(bytes) else {
            return input_error("the runtime checks a raw vector").get();
        };
        let limits = rvalue::CheckLimits {
            max_bytes: frame::frame_limit(Rf_asReal(max_bytes)),
            allowed_classes: Some(sexp_strings(classes).into_iter().flatten().collect()),
            ..rvalue::CheckLimits::default()
        };
        match rvalue::check_with(bytes, &limits) {
            Ok(()) => R_NilValue,
            Err(e) => list!(message = e.to_string(), printable = e.printable()).get(),
        }
    }
}

/// As `rs_tool_type_ok()`.
extern "C" fn tool_type_ok(value: SEXP, type_name: SEXP) -> SEXP {
    // SAFETY: called by R's .Call() on its main thread with live arguments.
    unsafe { Rf_ScalarLogical(c_int::from(type_ok(value, type_name))) }
}
