use crate::rvalue::test_support::*;

#[test]
fn formats_and_headers() {
    assert_eq!(check(b""), Err(ValueError::Truncated));
    assert_eq!(check(b"B"), Err(ValueError::Truncated));
    let ascii = include_bytes!("../../tests/fixtures/ascii.bin");
    assert!(matches!(
        check(ascii),
        Err(ValueError::UnsupportedFormat(_))
    ));
    assert!(matches!(
        check(b"hello world"),
        Err(ValueError::UnsupportedFormat(_))
    ));
    assert!(matches!(
        check(b"X\r"),
        Err(ValueError::UnsupportedFormat(_))
    ));
    assert!(matches!(
        check(b"RDX3\nX\n"),
        Err(ValueError::UnsupportedFormat(_))
    ));
    // Version 4 does not exist; version 1 is not R_Unserialize's.
    for v in [1, 4, -1] {
        let s = S::v2_xdr().done();
        let mut s = S { b: s, big: true };
        s.b.truncate(2);
        let bytes = s.int(v).int(0).int(0).nil().done();
        assert!(
            matches!(check(&bytes), Err(ValueError::UnsupportedFormat(_))),
            "version {v}"
        );
    }
    // Version 2 has no encoding; XDR is big-endian.
    assert_eq!(check(&S::v2_xdr().ints(&[1, 2, 3]).done()), Ok(()));
    // Encoding names are limited in length and to known encodings.
    let enc = |name: &str| {
        let mut s = S {
            b: b"B\n".to_vec(),
            big: false,
        }
        .int(3)
        .int(0)
        .int(0)
        .int(name.len() as i32);
        s.b.extend_from_slice(name.as_bytes());
        s.nil().done()
    };
    assert_eq!(check(&enc("UTF-8")), Ok(()));
    assert_eq!(check(&enc("ANSI_X3.4-1968")), Ok(()));
    assert_eq!(check(&enc("")), Ok(()));
    assert!(matches!(
        check(&enc("ISO-2022-CN-EXT")),
        Err(ValueError::UnsupportedFormat(_))
    ));
    assert!(malformed_err(check(&enc(&"U".repeat(64)))));
    let negative = S {
        b: b"B\n".to_vec(),
        big: false,
    }
    .int(3)
    .int(0)
    .int(0)
    .int(-1)
    .nil()
    .done();
    assert!(malformed_err(check(&negative)));
}

#[test]
fn giant_lengths_are_refused_without_allocating() {
    let long = |ty: u8, upper: i32, lower: i32| {
        S::v3()
            .flags(ty, false, false)
            .int(-1)
            .int(upper)
            .int(lower)
            .done()
    };
    for ty in [LGLSXP, INTSXP, REALSXP, CPLXSXP, RAWSXP, STRSXP, VECSXP] {
        assert_eq!(
            check(&long(ty, 65536, 0)),
            Err(ValueError::Truncated),
            "{ty}"
        );
        assert_eq!(check(&long(ty, 256, 0)), Err(ValueError::Truncated), "{ty}");
        assert_eq!(check(&long(ty, 0, -1)), Err(ValueError::Truncated), "{ty}");
        assert!(malformed_err(check(&long(ty, 65537, 0))), "{ty}");
        assert!(malformed_err(check(&long(ty, -1, -1))), "{ty}");
        let max = S::v3().flags(ty, false, false).int(i32::MAX).done();
        assert_eq!(check(&max), Err(ValueError::Truncated), "{ty}");
        let neg = S::v3().flags(ty, false, false).int(-2).done();
        assert!(malformed_err(check(&neg)), "{ty}");
        let min = S::v3().flags(ty, false, false).int(i32::MIN).done();
        assert!(malformed_err(check(&min)), "{ty}");
    }
    let big_string = S::v3()
        .flags(STRSXP, false, false)
        .int(1)
        .int(0x0004_0009)
        .int(i32::MAX)
        .done();
    assert_eq!(check(&big_string), Err(ValueError::Truncated));
    let neg_string = S::v3()
        .flags(STRSXP, false, false)
        .int(1)
        .int(0x0004_0009)
        .int(-2)
        .done();
    assert!(malformed_err(check(&neg_string)));
    // A long length that is actually present is fine.
    let long_ok = S::v3()
        .flags(RAWSXP, false, false)
        .int(-1)
        .int(0)
        .int(3)
        .done();
    let mut long_ok = long_ok;
    long_ok.extend_from_slice(&[1, 2, 3]);
    assert_eq!(check(&long_ok), Ok(()));
}
