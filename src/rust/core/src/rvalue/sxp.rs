//! SEXPTYPE codes, the pseudo-types used only in streams (serialize.c),
//! and how a type is named in a refusal.

use super::ValueError;

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

/// R's integer `NA`.
pub const NA_INTEGER: i32 = i32::MIN;

/// The name used in refusals for a type that is never allowed.
pub fn forbidden_name(ty: u8) -> Option<&'static str> {
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

/// The R name of an allowed vector type, for messages.
pub fn type_name(ty: u8) -> &'static str {
    match ty {
        NILSXP => "NULL",
        LGLSXP => "logical",
        INTSXP => "integer",
        REALSXP => "double",
        CPLXSXP => "complex",
        STRSXP => "character",
        VECSXP => "list",
        RAWSXP => "raw",
        _ => "unknown",
    }
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
pub fn unexpected(ty: u8, what: &'static str, offset: usize) -> ValueError {
    if let Some(name) = forbidden_name(ty) {
        ValueError::Forbidden(name)
    } else if is_known(ty) {
        ValueError::Malformed { what, offset }
    } else {
        ValueError::UnknownType { code: ty, offset }
    }
}

pub fn malformed(what: &'static str, offset: usize) -> ValueError {
    ValueError::Malformed { what, offset }
}
