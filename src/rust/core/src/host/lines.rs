//! The child's stdout and stderr as lines: split at newlines and at
//! `MAX_LINE_BYTES` (so a child printing without newlines cannot grow the
//! host's buffer), cleaned (see `text`), and counted against a per-execution
//! budget after which lines are dropped behind one marker line. Pure: bytes
//! in, strings out.

use crate::text::{self, MAX_LINE_BYTES};

/// Default budget of stored output per execution (1 MiB).
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// Splits a byte stream into raw lines of at most `MAX_LINE_BYTES`.
#[derive(Debug, Default)]
pub struct LineBuf {
    partial: Vec<u8>,
}

impl LineBuf {
    /// Appends `bytes`; each complete line (without its newline) goes to
    /// `out`. A line longer than `MAX_LINE_BYTES` is split into pieces of at
    /// most that size, cut between characters where the text is UTF-8.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|b| *b == b'\n');
            let body = &bytes[..newline.unwrap_or(bytes.len())];
            self.append(body, out);
            match newline {
                Some(at) => {
                    out.push(std::mem::take(&mut self.partial));
                    bytes = &bytes[at + 1..];
                }
                None => break,
            }
        }
    }

    /// Appends bytes that hold no newline, splitting off full pieces as the
    /// buffer reaches `MAX_LINE_BYTES` and more bytes follow (a line of
    /// exactly the maximum is not split).
    fn append(&mut self, mut body: &[u8], out: &mut Vec<Vec<u8>>) {
        while !body.is_empty() {
            if self.partial.len() >= MAX_LINE_BYTES {
                let cut = char_cut(&self.partial);
                let rest = self.partial.split_off(cut);
                out.push(std::mem::replace(&mut self.partial, rest));
            }
            let take = (MAX_LINE_BYTES - self.partial.len()).min(body.len());
            self.partial.extend_from_slice(&body[..take]);
            body = &body[take..];
        }
    }

    /// The unfinished line, if any, as a line of its own.
    pub fn flush(&mut self, out: &mut Vec<Vec<u8>>) {
        if !self.partial.is_empty() {
            out.push(std::mem::take(&mut self.partial));
        }
    }

    /// Bytes held for the unfinished line.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

/// Where to cut a full buffer: before a UTF-8 sequence that the end of the
/// buffer leaves incomplete, else at its end.
fn char_cut(buf: &[u8]) -> usize {
    let len = buf.len();
    for back in 1..=3.min(len) {
        let b = buf[len - back];
        if b & 0xC0 == 0x80 {
            continue;
        }
        let need = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 1,
        };
        return if need > back { len - back } else { len };
    }
    len
}

/// How much output one execution may store.
#[derive(Debug)]
pub struct OutputBudget {
    max: usize,
    used: usize,
    cut: bool,
}

impl Default for OutputBudget {
    fn default() -> Self {
        OutputBudget::new(DEFAULT_MAX_OUTPUT_BYTES)
    }
}

impl OutputBudget {
    pub fn new(max: usize) -> OutputBudget {
        OutputBudget {
            max,
            used: 0,
            cut: false,
        }
    }

    /// Starts a new execution's budget of `max` bytes.
    pub fn reset(&mut self, max: usize) {
        *self = OutputBudget::new(max);
    }

    /// Cleans the raw lines that fit the budget into `out`. The first line
    /// that does not fit is replaced by a marker; later ones are dropped
    /// without being looked at.
    pub fn admit(&mut self, raw: Vec<Vec<u8>>, out: &mut Vec<String>) {
        for line in raw {
            if self.cut {
                return;
            }
            let clean = text::clean(&line);
            if clean.len() > self.max - self.used {
                self.cut = true;
                out.push(format!(
                    "[securer: output truncated after {} bytes; raise the limit with options(securer.max_output_bytes = )]",
                    self.max
                ));
                return;
            }
            self.used += clean.len();
            out.push(clean);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut b = LineBuf::default();
        let mut out = Vec::new();
        for c in chunks {
            b.push(c, &mut out);
        }
        b.flush(&mut out);
        out
    }

    #[test]
    fn splits_at_newlines_across_reads() {
        assert_eq!(
            lines(&[b"ab", b"c\nd", b"\n\n", b"e"]),
            vec![b"abc".to_vec(), b"d".to_vec(), b"".to_vec(), b"e".to_vec()]
        );
    }

    #[test]
    fn a_long_line_with_its_newline_in_the_same_read_is_split() {
        let mut input = vec![b'x'; 100 * 1024];
        input.push(b'\n');
        input.extend_from_slice(b"next\n");
        let out = lines(&[&input]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].len(), MAX_LINE_BYTES);
        assert_eq!(out[1].len(), 100 * 1024 - MAX_LINE_BYTES);
        assert_eq!(out[2], b"next");
    }

    #[test]
    fn a_line_of_exactly_the_maximum_stays_whole() {
        let mut input = vec![b'x'; MAX_LINE_BYTES];
        input.push(b'\n');
        let out = lines(&[&input]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), MAX_LINE_BYTES);
    }

    #[test]
    fn splits_between_characters() {
        // Two-byte characters from an odd offset: a cut at the maximum would
        // fall inside one.
        let mut input = vec![b'x'];
        for _ in 0..MAX_LINE_BYTES {
            input.extend_from_slice("\u{e9}".as_bytes());
        }
        let out = lines(&[&input]);
        assert!(out.iter().all(|l| std::str::from_utf8(l).is_ok()));
        assert_eq!(out.iter().map(Vec::len).sum::<usize>(), input.len());
    }

    #[test]
    fn the_budget_keeps_whole_lines_then_one_marker() {
        let mut budget = OutputBudget::new(10);
        let mut out = Vec::new();
        budget.admit(vec![b"12345".to_vec(), b"\x1b[31m1234".to_vec()], &mut out);
        budget.admit(vec![b"xx".to_vec(), b"y".to_vec()], &mut out);
        budget.admit(vec![b"z".to_vec()], &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[..2], ["12345", "1234"]);
        assert!(out[2].starts_with("[securer: output truncated after 10 bytes"));
        budget.reset(10);
        let mut out = Vec::new();
        budget.admit(vec![b"again".to_vec()], &mut out);
        assert_eq!(out, ["again"]);
    }
}
