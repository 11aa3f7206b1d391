//! What the checker remembers of a finished item: a bounded summary.
//!
//! Per-class rules need facts that appear in the stream before the
//! `class` attribute that asks for them: a list's elements come before its
//! attributes, and attributes come in any order. Instead of keeping values,
//! the checker keeps for every finished item a [`Summary`] of fixed size
//! (its type, length, row count, classes and where its data lie in the
//! input, which can be re-read without copying), and for a list the
//! summaries of its first [`KEPT`] elements plus facts folded over all of
//! them ([`ListInfo`]). An element's own `ListInfo` is dropped when it is
//! kept, so summaries never nest: memory is bounded by nesting depth times
//! `KEPT`, and every fact is computed once, when its item finishes.

use super::classes::ClassSet;
use super::reader::Reader;
use super::sxp::{INTSXP, NA_INTEGER, NILSXP, VECSXP};

/// Elements of a list whose summaries are kept. Every class that looks
/// at elements by position or name (`POSIXlt`, `htest`, `density`,
/// conditions, `dimnames`, `ftable` variables) needs fewer.
pub const KEPT: usize = 32;

/// Where an item's data lie, for rules that read them again.
#[derive(Debug, Clone, Copy)]
pub enum Data {
    /// Nothing needed later.
    Opaque,
    /// Plain logical/integer/double payload at this byte range.
    Plain(usize, usize),
    /// Compact sequence `first, first + inc, ...` (length in the summary).
    Seq { first: f64, inc: f64 },
    /// Character vector, with whether it is known to hold no `NA`, and
    /// the byte range of its elements when it is a plain one.
    Str {
        no_na: bool,
        span: Option<(usize, usize)>,
    },
}

/// Row counts of a list's elements, folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// No element yet.
    None,
    /// Every element so far has this many rows.
    Same(u64),
    /// Two elements differ.
    Differ,
}

/// A finished item, as its parent sees it.
#[derive(Debug, Clone)]
pub struct Summary {
    /// SEXPTYPE of the value R builds (`NILSXP` for `NULL`).
    pub ty: u8,
    pub len: u64,
    pub altrep: bool,
    pub data: Data,
    pub has_attr: bool,
    /// Rows as a data frame counts them: a data frame's row count, a
    /// `POSIXlt`'s component length, a matrix's first extent, else `len`.
    pub rows: u64,
    /// The classes with rules that the item carries.
    pub classes: ClassSet,
    /// Some string in the item (its data, attributes or elements) holds
    /// a control character.
    pub control: bool,
    /// For a list: its kept elements and folded facts.
    pub list: Option<Box<ListInfo>>,
    /// Where its names lie, when it has plain character names (see
    /// `Reader::strings`).
    pub names: Option<(usize, usize)>,
}

impl Summary {
    pub const NULL: Summary = Summary {
        ty: NILSXP,
        len: 0,
        altrep: false,
        data: Data::Opaque,
        has_attr: false,
        rows: 0,
        classes: ClassSet::EMPTY,
        control: false,
        list: None,
        names: None,
    };

    /// A vector without attributes (yet).
    pub fn vector(ty: u8, len: u64, altrep: bool, data: Data) -> Summary {
        Summary {
            ty,
            len,
            altrep,
            data,
            has_attr: false,
            rows: len,
            classes: ClassSet::EMPTY,
            control: false,
            list: (ty == VECSXP).then(Box::default),
            names: None,
        }
    }

    /// The byte range of a plain character vector's elements.
    pub fn str_span(&self) -> Option<(usize, usize)> {
        match self.data {
            Data::Str { span, .. } => span,
            _ => None,
        }
    }
}

/// The kept elements of a list and facts about all of them.
#[derive(Debug, Clone)]
pub struct ListInfo {
    /// Summaries of the first [`KEPT`] elements (without their own
    /// `ListInfo`).
    pub kept: Vec<Summary>,
    /// Row counts of all elements.
    pub rows: Rows,
    /// Every element is a plain integer vector without attributes, `NA`
    /// or negative numbers (a `numeric_version` component).
    pub version_parts: bool,
    /// Every element is `NULL` or an atomic vector.
    pub atomic: bool,
}

impl Default for ListInfo {
    fn default() -> Self {
        ListInfo {
            kept: Vec::new(),
            rows: Rows::None,
            version_parts: true,
            atomic: true,
        }
    }
}

impl ListInfo {
    /// Folds in the next element.
    pub fn push(&mut self, r: &Reader<'_>, mut elem: Summary) {
        self.rows = match self.rows {
            Rows::None => Rows::Same(elem.rows),
            Rows::Same(n) if n == elem.rows => Rows::Same(n),
            _ => Rows::Differ,
        };
        self.atomic &= elem.ty != VECSXP;
        // Each element's data are read at most once, and no more once
        // one element has failed.
        self.version_parts = self.version_parts
            && elem.ty == INTSXP
            && !elem.has_attr
            && match elem.data {
                Data::Plain(s, e) => r.ints(s, e).all(|v| v >= 0 && v != NA_INTEGER),
                Data::Seq { first, inc } => {
                    first >= 0.0 && first + inc * (elem.len.saturating_sub(1)) as f64 >= 0.0
                }
                _ => false,
            };
        if self.kept.len() < KEPT {
            elem.list = None;
            self.kept.push(elem);
        }
    }
}
