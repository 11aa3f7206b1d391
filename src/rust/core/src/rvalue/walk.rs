//! The walk over the stream: one item at a time, with an explicit stack
//! of suspended work instead of recursion.
//!
//! The walk mirrors `ReadItem` in R's `src/main/serialize.c` byte for
//! byte: the same flags layout, the same length encoding, the same
//! reference table (only symbols can ever enter it, since everything else
//! that R adds to it is refused on sight). Every step consumes input, so
//! the walk ends in time linear in the input.
//!
//! Depth counts what R's reader recurses on: a list's elements are one
//! level below it, and an attribute list is a chain of pairlist nodes
//! that R reads recursively, so the n-th attribute's value is n levels
//! below its owner. A long attribute list is therefore as deep as a deeply
//! nested list (R's own reader overflows the C stack on either).

use super::altrep::AltClass;
use super::attrs::AttrSummary;
use super::reader::{Flags, Reader};
use super::size::{self, Budget};
use super::strings;
use super::summary::{Data, Summary};
use super::sxp::*;
use super::ValueError;

/// Suspended work on the explicit stack.
#[derive(Debug)]
pub(super) enum Pending {
    /// A generic list with `left` elements still to read.
    List {
        left: u64,
        list: Summary,
        has_attr: bool,
    },
    /// The attribute list of `owner`, `nodes` nodes in, waiting for the
    /// value tagged `tag`.
    Attrs {
        owner: Summary,
        tag: usize,
        seen: Box<AttrSummary>,
        nodes: usize,
    },
    /// The state pairlist of a `deferred_string` or `wrap_*`, waiting
    /// for its CAR.
    AltState { class: AltClass },
    /// Attributes of a `deferred_string`'s info are being read; the
    /// ALTREP's own attributes come next.
    AltAttrs { owner: Summary },
}

impl Pending {
    /// Levels of R's recursion this work stands for.
    fn weight(&self) -> usize {
        match self {
            Pending::Attrs { nodes, .. } => *nodes,
            _ => 1,
        }
    }
}

/// Where a string's bytes lie, and whether they hold a control character.
pub(super) struct Chars {
    start: usize,
    end: usize,
    control: bool,
}

/// What to do next.
pub(super) enum Step {
    /// Read a value.
    Child,
    /// An item finished with this summary.
    Done(Summary),
}

pub(super) struct Checker<'a> {
    pub r: Reader<'a>,
    pub allowed_classes: Option<&'a [String]>,
    /// Whether the per-class and per-string rules for values from the
    /// sandbox apply (they do whenever classes are restricted).
    pub rules: bool,
    /// Reference table: byte ranges of symbol names, in the order R adds
    /// them. Nothing else R would add survives to be referenced.
    syms: Vec<(usize, usize)>,
    stack: Vec<Pending>,
    /// Sum of the weights of `stack`.
    depth: usize,
    max_depth: usize,
    pub budget: Budget,
}

impl<'a> Checker<'a> {
    pub fn new(
        r: Reader<'a>,
        max_depth: usize,
        max_bytes: usize,
        allowed_classes: Option<&'a [String]>,
    ) -> Checker<'a> {
        Checker {
            r,
            allowed_classes,
            rules: allowed_classes.is_some(),
            syms: Vec::new(),
            stack: Vec::new(),
            depth: 0,
            max_depth,
            budget: Budget::new(max_bytes),
        }
    }

    /// Walks the value; its summary.
    pub fn run(&mut self) -> Result<Summary, ValueError> {
        let mut step = self.start_value()?;
        loop {
            step = match step {
                Step::Child => self.start_value()?,
                Step::Done(summary) => match self.stack.pop() {
                    None => return Ok(summary),
                    Some(pending) => {
                        self.depth = self.depth.saturating_sub(pending.weight());
                        self.resume(pending, summary)?
                    }
                },
            };
        }
    }

    pub fn push(&mut self, pending: Pending) -> Result<(), ValueError> {
        let depth = self.depth.saturating_add(pending.weight());
        if depth > self.max_depth {
            return Err(ValueError::TooDeep(self.max_depth));
        }
        self.depth = depth;
        self.stack.push(pending);
        Ok(())
    }

    pub fn sym(&self, idx: usize) -> &'a [u8] {
        match self.syms.get(idx) {
            Some(&(s, e)) => self.r.slice(s, e),
            None => &[],
        }
    }

    /// Starts reading a value; leaves are finished at once.
    fn start_value(&mut self) -> Result<Step, ValueError> {
        let offset = self.r.pos;
        let f = self.r.flags()?;
        match f.ty {
            NILVALUE_SXP => Ok(Step::Done(Summary::NULL)),
            LGLSXP | INTSXP | REALSXP | CPLXSXP | RAWSXP => {
                f.refuse_s4()?;
                let len = self.r.length()?;
                let elt = size::element_size(f.ty);
                let (start, end) = self.r.elems(len, elt)?;
                // R's C code (e.g. logical hashing in unique.c) indexes
                // tables by logical values: only 0, 1 and NA are safe.
                if f.ty == LGLSXP
                    && !self
                        .r
                        .ints(start, end)
                        .all(|v| matches!(v, 0 | 1 | NA_INTEGER))
                {
                    return Err(malformed(
                        "logical value other than TRUE, FALSE or NA",
                        offset,
                    ));
                }
                self.count_vector(f.ty, len, size::times(len, elt))?;
                let data = match f.ty {
                    CPLXSXP | RAWSXP => Data::Opaque,
                    _ => Data::Plain(start, end),
                };
                self.finish(Summary::vector(f.ty, len, false, data), f.has_attr)
            }
            STRSXP => {
                f.refuse_s4()?;
                let len = self.r.length()?;
                self.r.need(len, 8)?;
                let mut no_na = true;
                let mut control = false;
                let mut text = 0u64;
                let start = self.r.pos;
                for _ in 0..len {
                    match self.read_charsxp()? {
                        None => no_na = false,
                        Some(chars) => {
                            text += (chars.end - chars.start) as u64;
                            control |= chars.control;
                        }
                    }
                }
                self.count_vector(STRSXP, len, size::times(len, 8).saturating_add(text))?;
                let data = Data::Str {
                    no_na,
                    span: Some((start, self.r.pos)),
                };
                let mut summary = Summary::vector(STRSXP, len, false, data);
                summary.control = control;
                self.finish(summary, f.has_attr)
            }
            VECSXP => {
                f.refuse_s4()?;
                let len = self.r.length()?;
                self.r.need(len, 4)?;
                self.count_vector(VECSXP, len, size::times(len, 8))?;
                let list = Summary::vector(VECSXP, len, false, Data::Opaque);
                if len == 0 {
                    return self.finish(list, f.has_attr);
                }
                self.push(Pending::List {
                    left: len,
                    list,
                    has_attr: f.has_attr,
                })?;
                Ok(Step::Child)
            }
            ALTREP_SXP => {
                f.refuse_s4()?;
                self.start_altrep()
            }
            REFSXP => Err(ValueError::Forbidden("symbol")),
            ty => Err(unexpected(ty, "string outside a character vector", offset)),
        }
    }

    fn count_vector(&mut self, ty: u8, len: u64, bytes: u64) -> Result<(), ValueError> {
        self.budget.add(bytes, || {
            format!(
                "a {} vector of {} elements",
                type_name(ty),
                size::count(len)
            )
        })
    }

    /// After a vector's payload: its attributes, if any.
    pub fn finish(&mut self, summary: Summary, has_attr: bool) -> Result<Step, ValueError> {
        if has_attr {
            self.start_attrs(summary)
        } else {
            Ok(Step::Done(summary))
        }
    }

    /// Reads the attribute item of `owner`: `NULL` or a tagged pairlist.
    pub fn start_attrs(&mut self, mut owner: Summary) -> Result<Step, ValueError> {
        let offset = self.r.pos;
        let f = self.r.flags()?;
        match f.ty {
            NILVALUE_SXP => Ok(Step::Done(owner)),
            LISTSXP => {
                owner.has_attr = true;
                let tag = self.attr_node(f, offset)?;
                self.push(Pending::Attrs {
                    owner,
                    tag,
                    seen: Box::default(),
                    nodes: 1,
                })?;
                Ok(Step::Child)
            }
            ty => Err(unexpected(ty, "attributes are not a pairlist", offset)),
        }
    }

    /// The rest of an attribute pairlist node after its flags: the tag.
    fn attr_node(&mut self, f: Flags, offset: usize) -> Result<usize, ValueError> {
        f.refuse_s4()?;
        if f.has_attr {
            return Err(malformed("attribute list node with attributes", offset));
        }
        if !f.has_tag {
            return Err(malformed("attribute without a name", offset));
        }
        self.read_symbol()
    }

    /// Resumes `pending` with the summary of the child it was waiting for.
    fn resume(&mut self, pending: Pending, child: Summary) -> Result<Step, ValueError> {
        match pending {
            Pending::List {
                left,
                mut list,
                has_attr,
            } => {
                list.control |= child.control;
                if let Some(info) = list.list.as_mut() {
                    info.push(&self.r, child);
                }
                let left = left.saturating_sub(1);
                if left == 0 {
                    return self.finish(list, has_attr);
                }
                self.push(Pending::List {
                    left,
                    list,
                    has_attr,
                })?;
                Ok(Step::Child)
            }
            Pending::Attrs {
                mut owner,
                tag,
                mut seen,
                nodes,
            } => {
                owner.control |= child.control;
                self.record_attr(self.sym(tag), &owner, child, &mut seen)?;
                let offset = self.r.pos;
                let f = self.r.flags()?;
                match f.ty {
                    LISTSXP => {
                        let tag = self.attr_node(f, offset)?;
                        self.push(Pending::Attrs {
                            owner,
                            tag,
                            seen,
                            nodes: nodes.saturating_add(1),
                        })?;
                        Ok(Step::Child)
                    }
                    NILVALUE_SXP => {
                        self.finish_attrs(&mut owner, &seen, offset)?;
                        Ok(Step::Done(owner))
                    }
                    ty => Err(unexpected(
                        ty,
                        "attribute list not terminated by NULL",
                        offset,
                    )),
                }
            }
            Pending::AltState { class } => self.finish_alt_state(class, child),
            Pending::AltAttrs { owner } => self.start_attrs(owner),
        }
    }

    /// Reads a CHARSXP; `None` for `NA_character_`.
    pub fn read_charsxp(&mut self) -> Result<Option<Chars>, ValueError> {
        let offset = self.r.pos;
        let f = self.r.flags()?;
        if f.ty != CHARSXP {
            return Err(unexpected(
                f.ty,
                "character vector element is not a string",
                offset,
            ));
        }
        if f.has_attr {
            return Err(malformed("string with attributes", offset));
        }
        let len = self.r.int()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| malformed("negative string length", offset))?;
        let start = self.r.pos;
        let text = self.r.take(len)?;
        if let Some(problem) = strings::problem(text, f.levels(), self.rules, self.r.native_utf8) {
            return Err(ValueError::BadString { problem, offset });
        }
        Ok(Some(Chars {
            start,
            end: self.r.pos,
            control: strings::has_control(text, f.levels()),
        }))
    }

    /// Reads a symbol (SYMSXP, or a reference to one read earlier) and
    /// returns its index in the reference table.
    pub fn read_symbol(&mut self) -> Result<usize, ValueError> {
        let offset = self.r.pos;
        let f = self.r.flags()?;
        match f.ty {
            SYMSXP => {
                let name = self
                    .read_charsxp()?
                    .ok_or_else(|| malformed("symbol with an NA name", offset))?;
                self.syms.push((name.start, name.end));
                Ok(self.syms.len() - 1)
            }
            REFSXP => {
                // InRefIndex: packed in the flags, or in the next int.
                let mut index = f.raw >> 8;
                if index == 0 {
                    index = self.r.int()?;
                }
                usize::try_from(index)
                    .ok()
                    .and_then(|i| i.checked_sub(1))
                    .filter(|&i| i < self.syms.len())
                    .ok_or_else(|| malformed("reference to an unknown item", offset))
            }
            ty => Err(unexpected(ty, "expected a symbol", offset)),
        }
    }

    /// A pairlist node with neither attributes nor tag.
    pub fn plain_node(&mut self, what: &'static str) -> Result<(), ValueError> {
        let offset = self.r.pos;
        let f = self.r.flags()?;
        if f.ty != LISTSXP {
            return Err(unexpected(f.ty, what, offset));
        }
        f.refuse_s4()?;
        if f.has_attr || f.has_tag {
            return Err(malformed(what, offset));
        }
        Ok(())
    }

    /// A plain (non-ALTREP, attribute-free) integer vector.
    pub fn plain_ints(&mut self, what: &'static str) -> Result<(u64, usize, usize), ValueError> {
        let offset = self.r.pos;
        let f = self.r.flags()?;
        if f.ty != INTSXP {
            return Err(unexpected(f.ty, what, offset));
        }
        f.refuse_s4()?;
        if f.has_attr {
            return Err(malformed(what, offset));
        }
        let len = self.r.length()?;
        let (s, e) = self.r.elems(len, 4)?;
        Ok((len, s, e))
    }
}

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
