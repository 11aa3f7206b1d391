//! Property tests for the untrusted-text cleaner and the output line buffer.

use proptest::collection::vec;
use proptest::prelude::*;
use securer_core::host::{LineBuf, OutputBudget};
use securer_core::text::{clean, clean_chars, strip_controls, truncate_bytes, MAX_LINE_BYTES};

/// Nothing a terminal would act on: no C0 control but newline and tab, no
/// DEL, no C1 control.
fn shows_safely(s: &str) -> bool {
    s.chars()
        .all(|c| !((c < ' ' && c != '\n' && c != '\t') || ('\u{7f}'..='\u{9f}').contains(&c)))
}

/// Bytes rich in what matters: escape introducers, terminators, controls,
/// C1 controls in UTF-8, invalid UTF-8 and plain text.
fn hostile_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\x1b".to_vec()),
        Just(b"\x1b[".to_vec()),
        Just(b"\x1b]".to_vec()),
        Just(b"\x1bP".to_vec()),
        Just(b"\x1b\\".to_vec()),
        Just(b"\x07".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"\0".to_vec()),
        Just("\u{9b}".as_bytes().to_vec()),
        Just("\u{9d}".as_bytes().to_vec()),
        Just("\u{9c}".as_bytes().to_vec()),
        Just(b"\xc3".to_vec()),
        Just(b"\xff".to_vec()),
        Just("\u{e9}\u{1F600}".as_bytes().to_vec()),
        vec(any::<u8>(), 0..8),
        "[ -~]{0,8}".prop_map(String::into_bytes),
    ];
    vec(piece, 0..max).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn cleaned_text_shows_safely_and_is_bounded(bytes in hostile_bytes(64)) {
        let out = clean(&bytes);
        prop_assert!(shows_safely(&out), "{:?} -> {:?}", bytes, out);
        // Each byte becomes at most one U+FFFD (3 bytes).
        prop_assert!(out.len() <= 3 * bytes.len());
        prop_assert!(!out.contains('\u{1b}'), "ESC left in {:?}", out);
    }

    #[test]
    fn cleaning_is_idempotent(bytes in hostile_bytes(64)) {
        let once = clean(&bytes);
        prop_assert_eq!(strip_controls(&once), once.clone());
    }

    #[test]
    fn text_without_controls_is_unchanged(s in "[^\u{0}-\u{1f}\u{7f}-\u{9f}]{0,64}") {
        prop_assert_eq!(clean(s.as_bytes()), s);
    }

    #[test]
    fn bounded_cleaning_keeps_at_most_the_limit(bytes in hostile_bytes(64), max in 0usize..40) {
        let out = clean_chars(&bytes, max);
        let full = clean(&bytes);
        prop_assert!(shows_safely(&out));
        if full.chars().count() <= max {
            prop_assert_eq!(&out, &full);
        } else {
            let kept: String = full.chars().take(max).collect();
            prop_assert!(out.starts_with(&kept));
            prop_assert!(out[kept.len()..].starts_with("[... truncated: "));
        }
        let cut = truncate_bytes(full.clone(), max);
        let body = cut.split("[... truncated: ").next().unwrap_or("");
        prop_assert!(body.len() <= max);
        prop_assert!(full.starts_with(body));
    }

}

proptest! {
    // Inputs of up to a few hundred KiB: fewer cases.
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn lines_are_bounded_clean_and_lose_nothing(
        bytes in hostile_bytes(40),
        long in 0usize..(3 * MAX_LINE_BYTES),
        cuts in vec(1usize..70_000, 1..6),
    ) {
        // Some long runs without a newline between the hostile pieces.
        let mut input = bytes.clone();
        input.extend(std::iter::repeat(b'x').take(long));
        input.extend_from_slice(&bytes);
        let mut buf = LineBuf::default();
        let mut raw = Vec::new();
        let mut rest: &[u8] = &input;
        let mut i = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].min(rest.len());
            buf.push(&rest[..n], &mut raw);
            prop_assert!(buf.pending() <= MAX_LINE_BYTES);
            rest = &rest[n..];
            i += 1;
        }
        buf.flush(&mut raw);
        prop_assert!(raw.iter().all(|l| l.len() <= MAX_LINE_BYTES && !l.contains(&b'\n')));
        // Rejoining the pieces gives back every byte but the newlines.
        let joined: Vec<u8> = raw.concat();
        let want: Vec<u8> = input.iter().copied().filter(|b| *b != b'\n').collect();
        prop_assert_eq!(joined, want);
        let mut budget = OutputBudget::new(usize::MAX);
        let mut lines = Vec::new();
        budget.admit(raw, &mut lines);
        prop_assert!(lines.iter().all(|l| shows_safely(l) && !l.contains('\n')));
    }

    #[test]
    fn the_budget_bounds_what_is_stored(
        lines in vec(hostile_bytes(8), 0..50),
        max in 0usize..200,
    ) {
        let mut budget = OutputBudget::new(max);
        let mut out = Vec::new();
        budget.admit(lines, &mut out);
        let markers = out.iter().filter(|l| l.starts_with("[securer: output truncated")).count();
        prop_assert!(markers <= 1);
        if markers == 1 {
            prop_assert!(out.last().is_some_and(|l| l.starts_with("[securer: output truncated")));
        }
        let stored: usize = out.iter().take(out.len() - markers).map(String::len).sum();
        prop_assert!(stored <= max);
    }
}
