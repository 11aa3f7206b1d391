//! Attributes: each value checked as it arrives, then the whole list
//! checked against itself and the owner when the list ends.
//!
//! The attributes R's C code trusts without re-checking are validated:
//! `names` (character, same length), `dim` (at most [`MAX_DIMS`]
//! non-negative integers whose product is the length), `dimnames` (a list
//! of `NULL`/character matching `dim`), `class` (character, allowed
//! classes only), `tsp` (three doubles that R's `tsp<-` would accept for
//! the value's rows) and compact `row.names` (whose rows count towards the
//! expanded size). The attributes some class rule reads later (`levels`,
//! `tzone`, `units`, `row.vars`, `col.vars`) are remembered in
//! [`AttrSummary`], one slot each: a duplicate of any remembered attribute
//! is refused, since R would use the first and the check the second.

use super::classes;
use super::size;
use super::summary::{Data, Summary, KEPT};
use super::sxp::*;
use super::time;
use super::walk::Checker;
use super::ValueError;

/// Most dimensions an array may have. Every `dimnames` entry is then among
/// the kept elements of its list; R's own arrays stay far below.
pub const MAX_DIMS: usize = KEPT;

/// Row names as a data frame reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowNames {
    /// `c(NA, n)` or `c(NA, -n)`: `n` automatic row names.
    Compact(u64),
    /// Explicit names (integer or character) of this length.
    Vector(u64),
}

impl RowNames {
    pub fn rows(self) -> u64 {
        match self {
            RowNames::Compact(n) | RowNames::Vector(n) => n,
        }
    }
}

/// What one attribute list held, one slot per attribute with rules.
#[derive(Debug, Default)]
pub struct AttrSummary {
    pub names: Option<Summary>,
    pub class: Option<Summary>,
    pub dim: Option<Vec<u64>>,
    pub dimnames: Option<Summary>,
    pub tsp: Option<Summary>,
    pub row_names: Option<RowNames>,
    pub levels: Option<Summary>,
    pub tzone: Option<Summary>,
    pub units: Option<Summary>,
    pub row_vars: Option<Summary>,
    pub col_vars: Option<Summary>,
}

/// Stores `value` in `slot`, refusing a second one.
fn store<T>(slot: &mut Option<T>, value: T, offset: usize) -> Result<(), ValueError> {
    if slot.is_some() {
        return Err(malformed("duplicate attribute", offset));
    }
    *slot = Some(value);
    Ok(())
}

impl<'a> Checker<'a> {
    /// Validates one attribute whose value has just been read.
    pub(super) fn record_attr(
        &mut self,
        tag: &[u8],
        owner: &Summary,
        val: Summary,
        seen: &mut AttrSummary,
    ) -> Result<(), ValueError> {
        let offset = self.r.pos;
        match tag {
            b"names" => {
                if val.ty != STRSXP || val.len != owner.len {
                    return Err(malformed(
                        "'names' attribute is not a character vector of the value's length",
                        offset,
                    ));
                }
                store(&mut seen.names, val, offset)
            }
            b"class" => {
                if val.ty != STRSXP {
                    return Err(malformed(
                        "'class' attribute is not a character vector",
                        offset,
                    ));
                }
                if let Some(allowed) = self.allowed_classes {
                    let Some((s, e)) = val.str_span() else {
                        return Err(malformed(
                            "'class' attribute is not a plain character vector",
                            offset,
                        ));
                    };
                    classes::check_allowed(&self.r, s, e, allowed, offset)?;
                }
                store(&mut seen.class, val, offset)
            }
            b"tsp" => {
                if val.ty != REALSXP || val.len != 3 {
                    return Err(malformed("'tsp' attribute is not three numbers", offset));
                }
                store(&mut seen.tsp, val, offset)
            }
            b"row.names" => {
                let rows = match (val.ty, val.len, val.data) {
                    (INTSXP, 2, Data::Plain(s, e)) => {
                        let mut it = self.r.ints(s, e);
                        match (it.next(), it.next()) {
                            (Some(NA_INTEGER), Some(NA_INTEGER)) => {
                                return Err(malformed("invalid compact 'row.names'", offset))
                            }
                            (Some(NA_INTEGER), Some(n)) => {
                                RowNames::Compact(u64::from(n.unsigned_abs()))
                            }
                            _ => RowNames::Vector(2),
                        }
                    }
                    _ => RowNames::Vector(val.len),
                };
                if let RowNames::Compact(n) = rows {
                    self.budget.add(size::times(n, 4), || {
                        format!("a compact row.names attribute of {} rows", size::count(n))
                    })?;
                }
                store(&mut seen.row_names, rows, offset)
            }
            b"dim" => {
                let dims = self
                    .dim_values(&val)
                    .ok_or_else(|| malformed("invalid 'dim' attribute", offset))?;
                let product = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
                if product != Some(owner.len) {
                    return Err(malformed(
                        "'dim' attribute does not match the value's length",
                        offset,
                    ));
                }
                store(&mut seen.dim, dims, offset)
            }
            b"dimnames" => {
                if val.ty != VECSXP || val.altrep {
                    return Err(malformed("'dimnames' attribute is not a list", offset));
                }
                store(&mut seen.dimnames, val, offset)
            }
            _ if !self.rules => Ok(()),
            b"tzone" => {
                time::check_tzone_attr(&self.r, &val)?;
                store(&mut seen.tzone, val, offset)
            }
            b"levels" => store(&mut seen.levels, val, offset),
            b"units" => store(&mut seen.units, val, offset),
            b"row.vars" => store(&mut seen.row_vars, val, offset),
            b"col.vars" => store(&mut seen.col_vars, val, offset),
            _ => Ok(()),
        }
    }

    /// Checks the attribute list as a whole once it has ended, and the
    /// owner's classes.
    pub(super) fn finish_attrs(
        &mut self,
        owner: &mut Summary,
        seen: &AttrSummary,
        offset: usize,
    ) -> Result<(), ValueError> {
        check_dimnames(seen, offset)?;
        owner.names = seen.names.as_ref().and_then(Summary::str_span);
        if let Some(dims) = &seen.dim {
            owner.rows = dims.first().copied().unwrap_or(0);
        }
        if self.rules {
            if let Some(tsp) = &seen.tsp {
                check_tsp(&self.r, tsp, owner.rows)?;
            }
            classes::check(&self.r, owner, seen)?;
        }
        Ok(())
    }

    /// The values of a `dim` attribute, if it is a valid one.
    fn dim_values(&self, val: &Summary) -> Option<Vec<u64>> {
        if val.ty != INTSXP || val.len == 0 || val.len > MAX_DIMS as u64 {
            return None;
        }
        match val.data {
            Data::Plain(s, e) => self.r.ints(s, e).map(|d| u64::try_from(d).ok()).collect(),
            Data::Seq { first, inc } => (0..val.len)
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
}

/// Checks `dimnames` against `dim` once the whole attribute list is read.
fn check_dimnames(seen: &AttrSummary, offset: usize) -> Result<(), ValueError> {
    let Some(names) = &seen.dimnames else {
        return Ok(());
    };
    let bad = || malformed("'dimnames' attribute does not match 'dim'", offset);
    let dims = seen.dim.as_ref().ok_or_else(bad)?;
    let kept = names
        .list
        .as_ref()
        .map(|l| l.kept.as_slice())
        .unwrap_or(&[]);
    if names.len != dims.len() as u64 || kept.len() != dims.len() {
        return Err(bad());
    }
    for (n, &d) in kept.iter().zip(dims) {
        let ok = n.ty == NILSXP || (n.ty == STRSXP && n.len == d);
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// R's `tsp<-` rule (`tspgets` in attrib.c): a positive frequency, and
/// `end - start` agreeing with the number of rows to within 1e-5, all
/// finite. `print.ts()` trusts it to lay out its calendar.
fn check_tsp(r: &super::reader::Reader<'_>, tsp: &Summary, rows: u64) -> Result<(), ValueError> {
    let invalid = |problem: String| ValueError::Invalid {
        what: "'tsp' attribute".into(),
        problem,
    };
    let Data::Plain(s, e) = tsp.data else {
        return Err(invalid("it is not a plain vector of three numbers".into()));
    };
    let mut it = r.doubles(s, e);
    let (Some(start), Some(end), Some(freq)) = (it.next(), it.next(), it.next()) else {
        return Err(invalid("it is not three numbers".into()));
    };
    if !(start.is_finite() && end.is_finite() && freq.is_finite()) || freq <= 0.0 {
        return Err(invalid(format!(
            "start {start}, end {end} and frequency {freq} are not finite with a positive frequency"
        )));
    }
    if rows == 0 {
        return Err(invalid("the time series has no observations".into()));
    }
    if (end - start - (rows - 1) as f64 / freq).abs() > 1e-5 {
        return Err(invalid(format!(
            "start {start}, end {end} and frequency {freq} do not fit {rows} observations"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[path = "attrs_tests.rs"]
mod tests;
