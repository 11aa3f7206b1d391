//! The compact ALTREP forms base R writes, and the state each class's
//! unserialize method reads without checking.
//!
//! `compact_intseq` / `compact_realseq` hold `c(length, first, increment)`;
//! `deferred_string` holds the numbers it will print and a `scipen`;
//! `wrap_*` hold a vector and claims about it (sorted, no `NA`) that R's
//! fast paths believe, so the claims are verified. Every other ALTREP
//! class, and these names from another package, is refused: its
//! unserialize method would be package code run on the host.

use super::reader::printable;
use super::size;
use super::summary::{Data, Summary};
use super::sxp::*;
use super::walk::{Checker, Pending, Step};
use super::ValueError;

/// R_XLEN_T_MAX: the longest vector R can hold.
const XLEN_MAX: f64 = 4_503_599_627_370_496.0;

/// The base-R ALTREP classes that may cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AltClass {
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

impl<'a> Checker<'a> {
    /// ALTREP_SXP: info, state, attributes.
    pub(super) fn start_altrep(&mut self) -> Result<Step, ValueError> {
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
                let summary = self.read_compact_state(class)?;
                self.start_attrs(summary)
            }
            AltClass::DeferredString | AltClass::Wrap(_) => {
                self.plain_node("ALTREP state is not a plain pairlist")?;
                self.push(Pending::AltState { class })?;
                Ok(Step::Child)
            }
        }
    }

    /// State of a compact sequence: `c(length, first, increment)` as
    /// doubles, which R's unserialize method reads without checking.
    fn read_compact_state(&mut self, class: AltClass) -> Result<Summary, ValueError> {
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
        let ty = class.base_type();
        let len = n as u64;
        self.budget
            .add(size::times(len, size::element_size(ty)), || {
                format!(
                    "a compact {} sequence of {} elements",
                    type_name(ty),
                    size::count(len)
                )
            })?;
        Ok(Summary::vector(ty, len, true, Data::Seq { first, inc }))
    }

    /// The state pairlist's CAR is read; the CDR and then the ALTREP's
    /// attributes follow.
    pub(super) fn finish_alt_state(
        &mut self,
        class: AltClass,
        car: Summary,
    ) -> Result<Step, ValueError> {
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
                // Each element becomes a string as wide as the widest
                // number R prints.
                let width = if car.ty == INTSXP { 11 } else { 24 };
                self.budget.add(size::times(car.len, 8 + width), || {
                    format!(
                        "a deferred conversion of {} numbers to strings",
                        size::count(car.len)
                    )
                })?;
                let info = Summary::vector(INTSXP, len, false, Data::Plain(s, e));
                let data = Data::Str {
                    no_na: self.no_na(&car),
                    span: None,
                };
                let owner = Summary::vector(STRSXP, car.len, true, data);
                if f.has_attr {
                    self.push(Pending::AltAttrs { owner })?;
                    self.start_attrs(info)
                } else {
                    self.start_attrs(owner)
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
                // The wrapper reads as the wrapped data; its attributes
                // are its own and come next.
                let mut owner = Summary::vector(ty, car.len, true, car.data);
                owner.control = car.control;
                owner.list = car.list;
                self.start_attrs(owner)
            }
            AltClass::CompactIntseq | AltClass::CompactRealseq => {
                Err(malformed("invalid ALTREP state", offset))
            }
        }
    }

    /// Whether the data are known to contain no NA (or NaN).
    fn no_na(&self, s: &Summary) -> bool {
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
    fn sorted_as(&self, s: &Summary, claim: i32) -> bool {
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
#[path = "altrep_tests.rs"]
mod tests;
