use crate::rvalue::test_support::*;

/// Values R 4.2 serialized that must cross.
const ACCEPTED: &[(&str, &[u8])] = &[
    fixture!("null"),
    fixture!("lgl"),
    fixture!("int"),
    fixture!("dbl"),
    fixture!("cplx"),
    fixture!("chr"),
    fixture!("chr_latin1"),
    fixture!("raw"),
    fixture!("na_all"),
    fixture!("empty"),
    fixture!("named_list"),
    fixture!("nested_list"),
    fixture!("matrix_dimnames"),
    fixture!("array3d"),
    fixture!("dim_altrep"),
    fixture!("table"),
    fixture!("data_frame"),
    fixture!("data_frame_xdr"),
    fixture!("factor"),
    fixture!("posixlt"),
    fixture!("ts"),
    fixture!("attrs"),
    fixture!("intseq"),
    fixture!("intseq_neg"),
    fixture!("realseq"),
    fixture!("deferred_string"),
    fixture!("deferred_string_real"),
    fixture!("wrap_integer"),
    fixture!("wrap_integer_na_first"),
    fixture!("wrap_real_decr"),
    fixture!("wrap_compact"),
    fixture!("wrap_string"),
    fixture!("names_wrapped"),
    fixture!("v2_list"),
    fixture!("v2_xdr"),
    fixture!("long_chr"),
    fixture!("big_dbl"),
    fixture!("symbol_tags"),
];

/// Values R 4.2 serialized that must be refused, with the type named.
const REFUSED: &[((&str, &[u8]), &str)] = &[
    (fixture!("closure"), "closure"),
    (fixture!("bytecode"), "bytecode"),
    (fixture!("env"), "environment"),
    (fixture!("globalenv"), "environment"),
    (fixture!("emptyenv"), "environment"),
    (fixture!("baseenv"), "environment"),
    (fixture!("namespace"), "environment"),
    (fixture!("language"), "language object"),
    (fixture!("expression"), "expression"),
    (fixture!("formula"), "language object"),
    (fixture!("symbol"), "symbol"),
    (fixture!("pairlist"), "pairlist"),
    (fixture!("builtin"), "builtin function"),
    (fixture!("special"), "builtin function"),
    (fixture!("extptr"), "external pointer"),
    (fixture!("s4"), "S4 object"),
    (fixture!("s4_numeric"), "S4 object"),
    (fixture!("list_with_closure"), "closure"),
    (fixture!("attr_with_env"), "environment"),
];

#[test]
fn classes_outside_the_allowlist_are_refused_by_default() {
    let (_, attrs) = fixture!("attrs");
    assert_eq!(check_default(attrs), Err(ValueError::Class("foo".into())));
    let own = CheckLimits {
        allowed_classes: Some(vec!["foo".into()]),
        ..CheckLimits::default()
    };
    assert_eq!(check_with(attrs, &own), Ok(()));
    for name in [
        "data_frame",
        "data_frame_xdr",
        "factor",
        "table",
        "ts",
        "posixlt",
    ] {
        let bytes = ACCEPTED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b);
        assert_eq!(
            check_default(bytes.unwrap_or_default()),
            Ok(()),
            "fixture {name}"
        );
    }
}

#[test]
fn accepts_values_serialized_by_r() {
    for (name, bytes) in ACCEPTED {
        assert_eq!(check(bytes), Ok(()), "fixture {name}");
    }
}

#[test]
fn refuses_values_serialized_by_r_naming_the_type() {
    for ((name, bytes), ty) in REFUSED {
        let err = check(bytes).expect_err(name);
        assert_eq!(err, ValueError::Forbidden(ty), "fixture {name}");
        assert_eq!(
            err.to_string(),
            format!("values of type '{ty}' cannot cross the sandbox boundary"),
            "fixture {name}"
        );
    }
}

#[test]
fn every_prefix_of_a_valid_stream_is_truncated() {
    for (name, bytes) in ACCEPTED.iter().filter(|(_, b)| b.len() < 4096) {
        for n in 0..bytes.len() {
            assert_eq!(
                check(&bytes[..n]),
                Err(ValueError::Truncated),
                "fixture {name} cut at {n}"
            );
        }
    }
}

#[test]
fn every_prefix_of_a_refused_stream_is_an_error() {
    for ((name, bytes), _) in REFUSED {
        for n in 0..bytes.len() {
            assert!(check(&bytes[..n]).is_err(), "fixture {name} cut at {n}");
        }
    }
}

#[test]
fn trailing_bytes_are_refused() {
    for (name, bytes) in ACCEPTED {
        let mut v = bytes.to_vec();
        v.push(0);
        assert_eq!(
            check(&v),
            Err(ValueError::TrailingBytes(1)),
            "fixture {name}"
        );
    }
    let two_values = S::v3().nil().nil().done();
    assert_eq!(check(&two_values), Err(ValueError::TrailingBytes(4)));
}

#[test]
fn error_messages() {
    assert_eq!(ValueError::Truncated.to_string(), "truncated value");
    assert_eq!(
        ValueError::Forbidden("promise").to_string(),
        "values of type 'promise' cannot cross the sandbox boundary"
    );
    assert_eq!(
        ValueError::TrailingBytes(3).to_string(),
        "3 trailing bytes after the value"
    );
    let ascii = include_bytes!("../../tests/fixtures/ascii.bin");
    assert!(check(ascii)
        .unwrap_err()
        .to_string()
        .starts_with("unsupported serialization format"));
}

#[test]
fn code_and_classes_are_printable_refusals_and_broken_attributes_are_not() {
    assert!(ValueError::Forbidden("language object").printable());
    assert!(ValueError::Class("lm".into()).printable());
    assert!(ValueError::TooLarge { size: 9, max: 8 }.printable());
    assert!(!ValueError::Invalid {
        what: "time zone".into(),
        problem: "too long".into()
    }
    .printable());
    assert!(!ValueError::Truncated.printable());
    assert!(!ValueError::BadString {
        problem: "NUL",
        offset: 3
    }
    .printable());
}
