use super::{has_control, problem};
use crate::rvalue::test_support::*;

const UTF8: i32 = 1 << 3;
const LATIN1: i32 = 1 << 2;
const BYTES: i32 = 1 << 1;
const ASCII: i32 = 1 << 6;

#[test]
fn nul_bytes_are_refused_whatever_the_encoding() {
    for levels in [0, UTF8, LATIN1, BYTES, ASCII] {
        for utf8 in [true, false] {
            assert!(problem(b"a\0b", levels, utf8, true).is_some(), "{levels}");
            assert!(problem(b"\0", levels, utf8, false).is_some(), "{levels}");
        }
    }
    assert_eq!(
        problem(b"x\0", 0, false, true),
        Some("a string holds a NUL byte, which R strings cannot contain")
    );
}

#[test]
fn utf8_is_checked_where_it_is_claimed() {
    let bad: &[&[u8]] = &[
        b"caf\xe9",
        b"\xff\xfe",
        b"\xc3",             // truncated sequence
        b"\xed\xa0\x80",     // a surrogate
        b"\xf4\x90\x80\x80", // above U+10FFFF
        b"\xc0\xaf",         // overlong '/'
    ];
    for text in bad {
        assert_eq!(
            problem(text, UTF8, true, true),
            Some("a string in UTF-8 is not valid UTF-8"),
            "{text:?}"
        );
        // Unflagged from a UTF-8 writer: UTF-8 to the host too.
        assert!(problem(text, 0, true, true).is_some(), "{text:?}");
        // The ASCII flag is not trusted by R either.
        assert!(problem(text, ASCII, true, true).is_some(), "{text:?}");
        // Latin-1 and bytes hold any bytes; a Latin-1 writer's native
        // strings are Latin-1.
        assert_eq!(problem(text, LATIN1, true, true), None, "{text:?}");
        assert_eq!(problem(text, BYTES, true, true), None, "{text:?}");
        assert_eq!(problem(text, 0, true, false), None, "{text:?}");
        // Values going into the sandbox are not checked for encoding.
        assert_eq!(problem(text, UTF8, false, true), None, "{text:?}");
    }
    for good in ["", "ascii", "caf\u{e9}", "\u{65e5}\u{672c}", "\u{1F600}"] {
        assert_eq!(problem(good.as_bytes(), UTF8, true, true), None, "{good}");
        assert_eq!(problem(good.as_bytes(), 0, true, true), None, "{good}");
    }
}

fn one_string(flags: i32, text: &[u8]) -> Vec<u8> {
    S::v3()
        .flags(STRSXP, false, false)
        .int(1)
        .chars_as(flags, text)
        .done()
}

#[test]
fn streams_with_bad_strings_are_refused_naming_the_problem() {
    let err = check_default(&one_string(UTF8_CHARS, b"a\0b")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid string at byte 31 of the serialized value: a string holds a NUL byte, which R strings cannot contain"
    );
    // NUL is refused in both directions: R cannot build such a string.
    assert!(matches!(
        check(&one_string(NATIVE_CHARS, b"\0")),
        Err(ValueError::BadString { .. })
    ));
    let err = check_default(&one_string(UTF8_CHARS, b"caf\xe9")).unwrap_err();
    assert!(err
        .to_string()
        .ends_with("a string in UTF-8 is not valid UTF-8"));
    assert!(check_default(&one_string(NATIVE_CHARS, b"\xff")).is_err());
    assert_eq!(check_default(&one_string(LATIN1_CHARS, b"caf\xe9")), Ok(()));
    assert_eq!(check(&one_string(UTF8_CHARS, b"caf\xe9")), Ok(()));
    // A v2 stream names no encoding: its strings are taken as UTF-8.
    let v2 = S::v2_xdr()
        .flags(STRSXP, false, false)
        .int(1)
        .chars_as(NATIVE_CHARS, b"\xff")
        .done();
    assert!(check_default(&v2).is_err());
}

#[test]
fn a_latin1_writer_may_send_latin1_native_strings() {
    let mut s = S {
        b: b"B\n".to_vec(),
        big: false,
    }
    .int(3)
    .int(0)
    .int(0)
    .int(10);
    s.b.extend_from_slice(b"ISO-8859-1");
    let bytes = s
        .flags(STRSXP, false, false)
        .int(1)
        .chars_as(NATIVE_CHARS, b"caf\xe9")
        .done();
    assert_eq!(check_default(&bytes), Ok(()));
}

#[test]
fn symbol_names_follow_the_same_rules() {
    let tagged = |name: &[u8]| {
        S::v3()
            .ints_attr(&[1], true)
            .flags(LISTSXP, false, true)
            .flags(SYMSXP, false, false)
            .chars_as(UTF8_CHARS, name)
            .ints(&[1])
            .nil()
            .done()
    };
    assert_eq!(check_default(&tagged(b"ok")), Ok(()));
    assert!(matches!(
        check_default(&tagged(b"a\0")),
        Err(ValueError::BadString { .. })
    ));
    assert!(matches!(
        check_default(&tagged(b"\xff")),
        Err(ValueError::BadString { .. })
    ));
}

#[test]
fn r_made_invalid_utf8_is_refused() {
    let (_, bytes) = fixture!("invalid_utf8");
    assert!(matches!(
        check_default(bytes),
        Err(ValueError::BadString { .. })
    ));
    let (_, latin1) = fixture!("chr_latin1");
    assert_eq!(check_default(latin1), Ok(()));
}

#[test]
fn control_characters_are_found() {
    for text in [
        &b"\x1b]52;c;ZXZpbA==\x07"[..],
        b"\x1b[31m",
        b"a\rb",
        b"\x08",
        b"\x7f",
        b"\xc2\x9b31m",
        b"\xc2\x85",
    ] {
        assert!(has_control(text, UTF8), "{text:?}");
    }
    for text in [
        &b""[..],
        b"a\tb\nc",
        b"caf\xc3\xa9",
        b"\xe2\x80\x9c",
        b"\xc3\x9b",
    ] {
        assert!(!has_control(text, UTF8), "{text:?}");
    }
    // In Latin-1, 0x80-0x9F are the C1 controls.
    assert!(has_control(b"\x9b", LATIN1));
    assert!(!has_control(b"caf\xe9", LATIN1));
}
