//! The zygote's last step before it serves: what its namespaces hold is
//! marked as never to be modified in place (R's `MARK_NOT_MUTABLE`).
//!
//! R counts references in each object's header. A forked session that
//! calls a function, binds a name or builds a character vector bumps the
//! count of symbols, strings and code it shares with the zygote, and each
//! bump copies a 4 KiB page that the session would otherwise share: most of
//! an idle session's own heap. A count that is already at its maximum is
//! never written again. Marking an object so only ever makes R copy it
//! before a change, which is what it does for any object bound to two
//! names: values are unchanged, only their pages stay shared.

use extendr_ffi::{
    get_closure_body, get_closure_formals, R_NilValue, R_UnboundValue, Rf_protect, Rf_unprotect,
    Rf_xlength, CAR, CDR, MARK_NOT_MUTABLE, PRINTNAME, SEXP, SEXPTYPE, STRING_ELT, TAG, TYPEOF,
    VECTOR_ELT,
};
use std::collections::HashSet;
use std::ffi::c_int;

// SEXP is an opaque pointer to R: never dereferenced on this side.
#[allow(improper_ctypes)]
extern "C" {
    // R's API; extendr-ffi does not bind them.
    fn R_lsInternal3(env: SEXP, all: c_int, sorted: c_int) -> SEXP;
    fn Rf_findVarInFrame3(env: SEXP, sym: SEXP, do_get: c_int) -> SEXP;
    fn R_BindingIsActive(sym: SEXP, env: SEXP) -> c_int;
    fn Rf_installChar(x: SEXP) -> SEXP;
    // In every R 4.x, outside the API from R 4.5 (which has no other way
    // to read all of an object's attributes, or a forced promise's value
    // without forcing an unforced one).
    fn ATTRIB(x: SEXP) -> SEXP;
    fn PRVALUE(x: SEXP) -> SEXP;
}

/// Marks what the environments in `envs` (a list) bind, and what those
/// values hold, except environments (reference objects: their identity
/// matters) and external pointers. Returns the number of objects marked.
///
/// # Safety
/// Must run on R's main thread with `envs` protected; it allocates only the
/// names of each environment (protected while used), so no object it
/// holds can be collected under it.
pub unsafe fn freeze(envs: SEXP) -> usize {
    let mut walk = Walk::default();
    if TYPEOF(envs) != SEXPTYPE::VECSXP {
        return 0;
    }
    for i in 0..Rf_xlength(envs) {
        let env = VECTOR_ELT(envs, i);
        if TYPEOF(env) != SEXPTYPE::ENVSXP {
            continue;
        }
        let names = Rf_protect(R_lsInternal3(env, 1, 0));
        for j in 0..Rf_xlength(names) {
            let sym = Rf_installChar(STRING_ELT(names, j));
            walk.push(sym);
            // An active binding's value is a call of its function: not read.
            if R_BindingIsActive(sym, env) == 0 {
                walk.push(Rf_findVarInFrame3(env, sym, 1));
            }
        }
        Rf_unprotect(1);
        walk.drain();
    }
    walk.marked
}

#[derive(Default)]
struct Walk {
    todo: Vec<SEXP>,
    seen: HashSet<usize>,
    marked: usize,
}

impl Walk {
    unsafe fn push(&mut self, x: SEXP) {
        if !x.is_null() && x != R_NilValue && x != R_UnboundValue {
            self.todo.push(x);
        }
    }

    unsafe fn mark(&mut self, x: SEXP) {
        MARK_NOT_MUTABLE(x);
        self.marked += 1;
    }

    unsafe fn drain(&mut self) {
        while let Some(x) = self.todo.pop() {
            if !self.seen.insert(x as usize) {
                continue;
            }
            match TYPEOF(x) {
                SEXPTYPE::SYMSXP => {
                    self.mark(x);
                    self.push(PRINTNAME(x));
                }
                SEXPTYPE::CHARSXP => self.mark(x),
                SEXPTYPE::LISTSXP | SEXPTYPE::LANGSXP | SEXPTYPE::DOTSXP => {
                    self.mark(x);
                    self.push(CAR(x));
                    self.push(TAG(x));
                    self.push(ATTRIB(x));
                    self.push(CDR(x));
                }
                SEXPTYPE::CLOSXP => {
                    self.mark(x);
                    self.push(get_closure_formals(x));
                    self.push(get_closure_body(x));
                    self.push(ATTRIB(x));
                }
                // The code (an integer vector) and the constants (a list
                // that also holds the expression).
                SEXPTYPE::BCODESXP => {
                    self.mark(x);
                    self.push(CAR(x));
                    self.push(CDR(x));
                }
                // A lazy-loaded value not yet forced is left as it is.
                SEXPTYPE::PROMSXP => self.push(PRVALUE(x)),
                SEXPTYPE::VECSXP | SEXPTYPE::EXPRSXP => {
                    self.mark(x);
                    for i in 0..Rf_xlength(x) {
                        self.push(VECTOR_ELT(x, i));
                    }
                    self.push(ATTRIB(x));
                }
                SEXPTYPE::STRSXP => {
                    self.mark(x);
                    for i in 0..Rf_xlength(x) {
                        self.push(STRING_ELT(x, i));
                    }
                    self.push(ATTRIB(x));
                }
                SEXPTYPE::LGLSXP
                | SEXPTYPE::INTSXP
                | SEXPTYPE::REALSXP
                | SEXPTYPE::CPLXSXP
                | SEXPTYPE::RAWSXP => {
                    self.mark(x);
                    self.push(ATTRIB(x));
                }
                _ => {}
            }
        }
    }
}
