//! S3 classes: which may cross, and what each one's methods rely on.
//!
//! A class is not data: the host dispatches on it when it prints, formats,
//! summarises or converts the value, and those methods trust the value's
//! shape. A class outside the allowlist is refused by name. For each
//! allowed class with expectations, the rule below checks what its
//! `print`/`format`/`summary`/`str`/`as.character` methods and
//! `format.data.frame()` rely on, so that they neither crash, hang,
//! open files, nor blow up:
//!
//! | classes | rule |
//! |---|---|
//! | `data.frame`, `tbl_df`, `tbl` | a named list with row names; every column has as many rows as the row names say |
//! | `factor`, `ordered` | integer codes within `1..=nlevels` or `NA`, character levels |
//! | `Date`, `POSIXct` | stored as numbers; `tzone` a zone name (see `time`) |
//! | `POSIXlt` | R's 9 or 11 named components of one length; zone names |
//! | `difftime`, `hms` | numbers with units (one string) |
//! | `ts`, `mts` | a valid `tsp` (R's own `tsp<-` rule) |
//! | `matrix` / `array` | two / some dimensions |
//! | `ftable` | a matrix whose `row.vars` and `col.vars` (character vectors) multiply out to its dimensions |
//! | `numeric_version` family | at most [`MAX_VERSIONS`] non-negative integer vectors |
//! | `hexmode`, `octmode`, `roman`, `integer64` | numbers (`integer64`: doubles) |
//! | `summaryDefault` | an atomic vector |
//! | `htest` family | a list of atomic fields |
//! | `density` | numeric `x` and `y` of one length |
//! | condition classes | a list whose `message` is one string |
//! | `json`, `glue`, `character` | character vectors |
//!
//! The print methods of `difftime`, `hms`, `ftable`, the `htest` family,
//! `density`, conditions, `json`, `glue`, `listof`, `Dlist` and `by`
//! write strings with `cat()`, which passes escape sequences to the
//! terminal (OSC 52 sets the clipboard); values of these classes may hold
//! no control characters other than newline and tab, anywhere.
//! `table`, `xtabs`, `noquote`, `AsIs`, `simple.list` and `POSIXt` add
//! nothing to the generic checks. `data.table` is
//! not allowed by default: its print method is package code this checker
//! cannot vouch for, and its values carry an external pointer anyway.

use super::attrs::{AttrSummary, RowNames};
use super::reader::{printable, Reader};
use super::summary::{Data, Rows, Summary, KEPT};
use super::sxp::*;
use super::time;
use super::ValueError;

/// Most versions a `numeric_version` may hold: `summary()` and `str()` of
/// one take time quadratic in its length (10,000 take about a second).
pub const MAX_VERSIONS: u64 = 10_000;

/// The class families with rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    DataFrame,
    Factor,
    Instant,
    PosixLt,
    Difftime,
    Ts,
    Matrix,
    Array,
    Ftable,
    NumericVersion,
    Numeric,
    Double,
    Atomic,
    Htest,
    Density,
    Condition,
    Character,
    Listing,
}

impl Rule {
    fn of(class: &[u8]) -> Option<Rule> {
        Some(match class {
            b"data.frame" | b"tbl_df" | b"tbl" => Rule::DataFrame,
            b"factor" | b"ordered" => Rule::Factor,
            b"Date" | b"POSIXct" => Rule::Instant,
            b"POSIXlt" => Rule::PosixLt,
            b"difftime" | b"hms" => Rule::Difftime,
            b"ts" | b"mts" => Rule::Ts,
            b"matrix" => Rule::Matrix,
            b"array" => Rule::Array,
            b"ftable" => Rule::Ftable,
            b"numeric_version" | b"package_version" | b"R_system_version" => Rule::NumericVersion,
            b"hexmode" | b"octmode" | b"roman" => Rule::Numeric,
            b"integer64" => Rule::Double,
            b"summaryDefault" => Rule::Atomic,
            b"htest" | b"pairwise.htest" | b"power.htest" => Rule::Htest,
            b"density" => Rule::Density,
            b"condition" | b"simpleCondition" | b"simpleError" | b"simpleWarning"
            | b"simpleMessage" | b"error" | b"warning" | b"message" => Rule::Condition,
            b"json" | b"glue" | b"character" => Rule::Character,
            b"listof" | b"Dlist" | b"by" => Rule::Listing,
            _ => return None,
        })
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// Whether the class's print method writes its strings with `cat()`,
    /// control characters and all.
    fn cats_strings(self) -> bool {
        matches!(
            self,
            Rule::Difftime
                | Rule::Ftable
                | Rule::Htest
                | Rule::Density
                | Rule::Condition
                | Rule::Character
                | Rule::Listing
        )
    }
}

/// A set of class families (what a value's `class` asked for).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassSet(u32);

impl ClassSet {
    pub const EMPTY: ClassSet = ClassSet(0);

    fn insert(&mut self, rule: Rule) -> bool {
        let new = self.0 & rule.bit() == 0;
        self.0 |= rule.bit();
        new
    }
}

/// Every element of the character vector at bytes `s..e` must be an
/// allowed class.
pub fn check_allowed(
    r: &Reader<'_>,
    s: usize,
    e: usize,
    allowed: &[String],
    offset: usize,
) -> Result<(), ValueError> {
    for name in r.strings(s, e) {
        let Some(name) = name else {
            return Err(malformed("'class' attribute holds NA", offset));
        };
        if !allowed.iter().any(|a| a.as_bytes() == name) {
            return Err(ValueError::Class(printable(name)));
        }
    }
    Ok(())
}

/// Applies the rule of every class `owner` carries (once per family,
/// named after the first class of the family), and records what its
/// parent needs to know (classes, rows).
pub fn check(r: &Reader<'_>, owner: &mut Summary, seen: &AttrSummary) -> Result<(), ValueError> {
    let Some((s, e)) = seen.class.as_ref().and_then(|c| c.str_span()) else {
        return Ok(());
    };
    for class in r.strings(s, e).flatten() {
        let Some(rule) = Rule::of(class) else {
            continue;
        };
        if !owner.classes.insert(rule) {
            continue;
        }
        apply(r, rule, owner, seen).map_err(|problem| ValueError::Invalid {
            what: format!("'{}' value", printable(class)),
            problem,
        })?;
    }
    Ok(())
}

fn apply(
    r: &Reader<'_>,
    rule: Rule,
    owner: &mut Summary,
    seen: &AttrSummary,
) -> Result<(), String> {
    if rule.cats_strings() && owner.control {
        return Err(
            "it holds a string with control characters, which its print method writes to the terminal as they are"
                .into(),
        );
    }
    match rule {
        Rule::DataFrame => owner.rows = data_frame(owner, seen)?,
        Rule::Factor => factor(r, owner, seen)?,
        Rule::Instant => time::instant(owner)?,
        Rule::PosixLt => owner.rows = time::posixlt(r, owner, seen)?,
        Rule::Difftime => time::difftime(owner, seen)?,
        Rule::Ts => {
            // Its validity is the `tsp` rule, checked for every value.
            if seen.tsp.is_none() {
                return Err("it has no 'tsp' attribute".into());
            }
        }
        Rule::Matrix => {
            if seen.dim.as_ref().map(Vec::len) != Some(2) {
                return Err("it does not have two dimensions".into());
            }
        }
        Rule::Array => {
            if seen.dim.is_none() {
                return Err("it has no dimensions".into());
            }
        }
        Rule::Ftable => ftable(owner, seen)?,
        Rule::NumericVersion => numeric_version(owner)?,
        Rule::Numeric => {
            if !matches!(owner.ty, INTSXP | REALSXP) {
                return Err(format!("it is {}, not numbers", type_name(owner.ty)));
            }
        }
        Rule::Double => {
            if owner.ty != REALSXP {
                return Err(format!("it is {}, not double", type_name(owner.ty)));
            }
        }
        Rule::Atomic => {
            if owner.ty == VECSXP {
                return Err("it is a list".into());
            }
        }
        Rule::Htest => {
            if owner.ty != VECSXP || !owner.list.as_ref().is_some_and(|l| l.atomic) {
                return Err("it is not a list of atomic fields".into());
            }
        }
        Rule::Density => density(r, owner, seen)?,
        Rule::Condition => condition(r, owner, seen)?,
        Rule::Character => {
            if owner.ty != STRSXP {
                return Err(format!("it is {}, not character", type_name(owner.ty)));
            }
        }
        Rule::Listing => {}
    }
    Ok(())
}

/// A data frame's rows: from its row names, shared by every column.
fn data_frame(owner: &Summary, seen: &AttrSummary) -> Result<u64, String> {
    if owner.ty != VECSXP {
        return Err(format!("it is {}, not a list", type_name(owner.ty)));
    }
    if seen.names.is_none() && owner.len > 0 {
        return Err("its columns have no names".into());
    }
    let Some(row_names) = seen.row_names else {
        return Err("it has no row names".into());
    };
    let rows = row_names.rows();
    match owner.list.as_ref().map(|l| l.rows) {
        None | Some(Rows::None) => Ok(rows),
        Some(Rows::Same(n)) if n == rows => Ok(rows),
        Some(Rows::Same(n)) => Err(match row_names {
            RowNames::Compact(_) => {
                format!("its compact row names say {rows} rows but its columns have {n}")
            }
            RowNames::Vector(_) => {
                format!("it has {rows} row names but its columns have {n} rows")
            }
        }),
        Some(Rows::Differ) => Err("its columns differ in length".into()),
    }
}

fn factor(r: &Reader<'_>, owner: &Summary, seen: &AttrSummary) -> Result<(), String> {
    if owner.ty != INTSXP {
        return Err(format!(
            "its codes are {}, not integer",
            type_name(owner.ty)
        ));
    }
    let Some(levels) = seen.levels.as_ref().filter(|l| l.ty == STRSXP) else {
        return Err("it has no character levels".into());
    };
    let n = levels.len;
    let within = match owner.data {
        Data::Plain(a, b) => r
            .ints(a, b)
            .all(|v| v == NA_INTEGER || (v >= 1 && v as u64 <= n)),
        Data::Seq { first, inc } => {
            let last = first + inc * owner.len.saturating_sub(1) as f64;
            let ok = |v: f64| v >= 1.0 && v <= n as f64;
            owner.len == 0 || (ok(first) && ok(last))
        }
        _ => false,
    };
    if !within {
        return Err(format!(
            "its codes are not NA or between 1 and its {n} levels"
        ));
    }
    Ok(())
}

fn ftable(owner: &Summary, seen: &AttrSummary) -> Result<(), String> {
    let [nrow, ncol] = seen.dim.as_deref().unwrap_or(&[]) else {
        return Err("it does not have two dimensions".into());
    };
    if owner.ty == VECSXP {
        return Err("it is a list".into());
    }
    for (vars, extent, which) in [
        (&seen.row_vars, nrow, "row.vars"),
        (&seen.col_vars, ncol, "col.vars"),
    ] {
        let combos = vars
            .as_ref()
            .filter(|v| v.ty == VECSXP && v.len <= KEPT as u64)
            .and_then(|v| v.list.as_ref().filter(|l| l.kept.len() as u64 == v.len))
            .filter(|l| l.kept.iter().all(|k| k.ty == STRSXP))
            .map(|l| {
                l.kept
                    .iter()
                    .try_fold(1u64, |acc, k| acc.checked_mul(k.len))
            });
        match combos {
            None => {
                return Err(format!(
                    "its '{which}' is not a list of at most {KEPT} character vectors"
                ))
            }
            Some(Some(n)) if n == *extent => {}
            Some(n) => {
                let n = n.map_or("too many".to_string(), |n| n.to_string());
                return Err(format!(
                    "its '{which}' make {n} combinations for {extent} rows or columns"
                ));
            }
        }
    }
    Ok(())
}

fn numeric_version(owner: &Summary) -> Result<(), String> {
    if owner.ty != VECSXP {
        return Err(format!("it is {}, not a list", type_name(owner.ty)));
    }
    if owner.len > MAX_VERSIONS {
        return Err(format!(
            "it holds {} versions, more than {MAX_VERSIONS}",
            owner.len
        ));
    }
    if !owner.list.as_ref().is_some_and(|l| l.version_parts) {
        return Err("its versions are not vectors of non-negative integers".into());
    }
    Ok(())
}

/// The kept element of `owner` named `name`.
fn field<'s>(
    r: &Reader<'_>,
    owner: &'s Summary,
    seen: &AttrSummary,
    name: &[u8],
) -> Option<&'s Summary> {
    let (s, e) = seen.names.as_ref()?.str_span()?;
    let kept = &owner.list.as_ref()?.kept;
    let i = r.strings(s, e).position(|n| n == Some(name))?;
    kept.get(i)
}

fn density(r: &Reader<'_>, owner: &Summary, seen: &AttrSummary) -> Result<(), String> {
    if owner.ty != VECSXP {
        return Err("it is not a list".into());
    }
    let x = field(r, owner, seen, b"x");
    let y = field(r, owner, seen, b"y");
    match (x, y) {
        (Some(x), Some(y))
            if matches!(x.ty, INTSXP | REALSXP)
                && matches!(y.ty, INTSXP | REALSXP)
                && x.len == y.len =>
        {
            Ok(())
        }
        _ => Err("its 'x' and 'y' are not numbers of one length".into()),
    }
}

fn condition(r: &Reader<'_>, owner: &Summary, seen: &AttrSummary) -> Result<(), String> {
    if owner.ty != VECSXP {
        return Err("it is not a list".into());
    }
    match field(r, owner, seen, b"message") {
        Some(m) if m.ty == STRSXP && m.len == 1 => Ok(()),
        _ => Err("its 'message' is not one string".into()),
    }
}

#[cfg(test)]
#[path = "classes_tests.rs"]
mod tests;
