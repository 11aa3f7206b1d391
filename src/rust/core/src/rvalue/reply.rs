//! Whether a reply to an execution is a plain result: one the host takes
//! as its answer at once (R's `quick_result()`), so that a pool's batch
//! can send the session its next piece before R has read this one.
//!
//! The rules are R's, made exact: the reply is a list whose names include
//! `value` and `visible`, whose first element named `refused` (if any) is
//! `NULL`, and whose first element named `plots_omitted` is `0L` (an integer
//! vector of length one without attributes). Where a fact cannot be read
//! here (an element past the summaries kept of a list, a compact `0:0`),
//! the reply is not plain, and R decides: this side may say no where R
//! would say yes, never the other way round.

use super::reader::Reader;
use super::summary::{Data, Summary};
use super::sxp::{INTSXP, NILSXP, VECSXP};

/// See the module doc; `top` is the reply's summary, read by `r`.
pub fn is_plain(r: &Reader<'_>, top: &Summary) -> bool {
    let (Some(list), Some((start, end))) = (top.list.as_deref(), top.names) else {
        return false;
    };
    if top.ty != VECSXP || top.altrep {
        return false;
    }
    let mut value = false;
    let mut visible = false;
    let mut refused = None;
    let mut plots_omitted = None;
    for (i, name) in r.strings(start, end).enumerate() {
        match name {
            Some(b"value") => value = true,
            Some(b"visible") => visible = true,
            Some(b"refused") if refused.is_none() => refused = Some(i),
            Some(b"plots_omitted") if plots_omitted.is_none() => plots_omitted = Some(i),
            _ => {}
        }
    }
    let refused_ok = match refused {
        None => true,
        Some(i) => list.kept.get(i).is_some_and(|e| e.ty == NILSXP),
    };
    let omitted_ok = plots_omitted
        .and_then(|i| list.kept.get(i))
        .is_some_and(|e| {
            e.ty == INTSXP
                && e.len == 1
                && !e.has_attr
                && !e.altrep
                && matches!(e.data, Data::Plain(s, t) if r.ints(s, t).next() == Some(0))
        });
    value && visible && refused_ok && omitted_ok
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
