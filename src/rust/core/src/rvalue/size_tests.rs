use super::{bytes, count};
use crate::rvalue::test_support::*;

#[test]
fn size_is_bounded() {
    let big = include_bytes!("../../tests/fixtures/big_dbl.bin");
    let limits = CheckLimits {
        max_bytes: 1000,
        ..CheckLimits::default()
    };
    let err = check_with(big, &limits).unwrap_err();
    assert_eq!(
        err,
        ValueError::TooLarge {
            size: big.len(),
            max: 1000
        }
    );
    assert_eq!(
        err.to_string(),
        format!("value of {} bytes exceeds limit of 1000 bytes", big.len())
    );
}

fn expands(r: Result<(), ValueError>) -> String {
    match r {
        Err(e @ ValueError::Expands { .. }) => e.to_string(),
        other => panic!("expected an Expands refusal, got {other:?}"),
    }
}

#[test]
fn compact_sequences_count_as_expanded() {
    // seq_len(1.5e9): 133 bytes of stream, 6 GB once expanded.
    let (_, seq) = fixture!("seq_huge");
    assert!(seq.len() < 200);
    assert_eq!(
        expands(check(seq)),
        "a compact integer sequence of 1.5e9 elements expands to 5.6 GiB in memory, above the 8 MiB limit"
    );
    let (_, real) = fixture!("realseq_huge");
    assert_eq!(
        expands(check(real)),
        "a compact double sequence of 1e10 elements expands to 74.5 GiB in memory, above the 8 MiB limit"
    );
    let (_, deferred) = fixture!("deferred_huge");
    assert!(expands(check(deferred)).starts_with("a compact integer sequence of 1e9 elements"));
    // Just under and just over the limit.
    let seq_of = |n: f64| S::v3().intseq(n, 1.0).nil().done();
    let limit = 8 * 1024 * 1024;
    assert_eq!(check(&seq_of((limit / 4) as f64)), Ok(()));
    assert!(expands(check(&seq_of((limit / 4 + 1) as f64))).contains("2097153 elements"));
}

#[test]
fn deferred_strings_count_the_strings_they_become() {
    // as.character() of 1000 doubles: 8 + 24 bytes each.
    let deferred = |n: usize| {
        let values = vec![1.5; n];
        S::v3()
            .altrep("deferred_string", "base", STRSXP)
            .flags(LISTSXP, false, false)
            .dbls(&values)
            .ints(&[0])
            .nil()
            .done()
    };
    let limits = |max_bytes| CheckLimits {
        max_bytes,
        ..any_class()
    };
    // The doubles (8000 bytes) and the strings (32000 bytes).
    assert_eq!(check_with(&deferred(1000), &limits(40_000)), Ok(()));
    assert_eq!(
        expands(check_with(&deferred(1000), &limits(39_999))),
        "the value expands to 40000 bytes in memory, above the 39999 bytes limit"
    );
    assert_eq!(
        expands(check_with(&deferred(1000), &limits(30_000))),
        "a deferred conversion of 1000 numbers to strings expands to 31.2 KiB in memory, above the 29.3 KiB limit"
    );
}

#[test]
fn compact_row_names_count_as_expanded() {
    // The 271-byte data frame with 2^31 - 1 rows.
    let (_, df) = fixture!("df_rows_mismatch");
    assert_eq!(df.len(), 271);
    assert_eq!(
        expands(check(df)),
        "a compact row.names attribute of 2147483647 rows expands to 8 GiB in memory, above the 8 MiB limit"
    );
    let (_, empty) = fixture!("df_rows_huge");
    assert!(expands(check(empty)).contains("2147483647 rows"));
    // Positive n (not automatic) counts the same.
    let rows = |n: i32| {
        S::v3()
            .list(0, true)
            .attr("row.names", move |s| s.ints(&[NA_INTEGER, n]))
            .nil()
            .done()
    };
    assert_eq!(check(&rows(1000)), Ok(()));
    assert!(expands(check(&rows(i32::MAX))).contains("2147483647 rows"));
    assert!(expands(check(&rows(-i32::MAX))).contains("2147483647 rows"));
}

#[test]
fn the_whole_value_counts() {
    // Each sequence alone fits; together they do not.
    let n = (3 * 512 * 1024) as f64;
    let two = S::v3()
        .list(2, false)
        .intseq(n, 1.0)
        .nil()
        .intseq(n, 1.0)
        .nil()
        .done();
    assert_eq!(
        expands(check(&two)),
        "the value expands to 12 MiB in memory, above the 8 MiB limit"
    );
    // Close to the limit, the exact numbers.
    let limits = CheckLimits {
        max_bytes: 8 * 1024 * 1024,
        ..any_class()
    };
    let over = S::v3()
        .list(2, false)
        .intseq((2 * 1024 * 1024) as f64, 1.0)
        .nil()
        .ints(&[1])
        .done();
    assert_eq!(
        expands(check_with(&over, &limits)),
        "the value expands to 8388624 bytes in memory, above the 8388608 bytes limit"
    );
    // List elements are pointers: a list of NULLs takes 8 bytes each.
    let nulls = |n: usize| {
        let mut s = S::v3().list(n as i32, false);
        for _ in 0..n {
            s = s.nil();
        }
        s.done()
    };
    let limits = CheckLimits {
        max_bytes: 1000,
        ..any_class()
    };
    assert_eq!(check_with(&nulls(125), &limits), Ok(()));
    assert!(expands(check_with(&nulls(126), &limits)).starts_with("a list vector of 126 elements"));
}

#[test]
fn counts_and_sizes_read_well() {
    assert_eq!(count(0), "0");
    assert_eq!(count(999_999), "999999");
    assert_eq!(count(1000), "1000");
    assert_eq!(count(1_500_000_000), "1.5e9");
    assert_eq!(count(1_000_000_000), "1e9");
    assert_eq!(count(2_147_483_647), "2147483647");
    assert_eq!(count(10_000_000_000), "1e10");
    assert_eq!(bytes(0), "0 bytes");
    assert_eq!(bytes(1023), "1023 bytes");
    assert_eq!(bytes(1024), "1 KiB");
    assert_eq!(bytes(8 * 1024 * 1024), "8 MiB");
    assert_eq!(bytes(6_000_000_000), "5.6 GiB");
    assert_eq!(bytes(u64::MAX), "16384 PiB");
}
