use crate::rvalue::test_support::*;
use crate::rvalue::{DEFAULT_ALLOWED_CLASSES, MAX_VERSIONS};

/// Values R 4.2 made with the allowed classes, as sandboxed code returns
/// them: they cross with every rule on.
const R_MADE: &[(&str, &[u8])] = &[
    fixture!("data_frame"),
    fixture!("data_frame_xdr"),
    fixture!("df_compact"),
    fixture!("df_nested"),
    fixture!("factor"),
    fixture!("ordered"),
    fixture!("table"),
    fixture!("xtabs"),
    fixture!("ftable"),
    fixture!("ts"),
    fixture!("ts_monthly"),
    fixture!("mts"),
    fixture!("posixlt"),
    fixture!("posixlt_paris"),
    fixture!("posixct_ny"),
    fixture!("difftime"),
    fixture!("versions"),
    fixture!("package_version"),
    fixture!("htest"),
    fixture!("density"),
    fixture!("condition"),
    fixture!("summary_default"),
    fixture!("roman"),
    fixture!("hexmode"),
    fixture!("noquote"),
    fixture!("tibble"),
];

/// Values R 4.2 made that hurt the host when it prints them, with what
/// the refusal says.
const R_MADE_ATTACKS: &[((&str, &[u8]), &str)] = &[
    (
        fixture!("df_ragged"),
        "invalid 'data.frame' value: its columns differ in length",
    ),
    (
        fixture!("ftable_big"),
        "invalid 'ftable' value: its 'row.vars' make 25000000 combinations for 2 rows or columns",
    ),
    (
        fixture!("factor_codes"),
        "invalid 'factor' value: its codes are not NA or between 1 and its 2 levels",
    ),
    (
        fixture!("versions_many"),
        "invalid 'numeric_version' value: it holds 10001 versions, more than 10000",
    ),
];

#[test]
fn r_made_values_cross() {
    for (name, bytes) in R_MADE {
        assert_eq!(check_default(bytes), Ok(()), "fixture {name}");
    }
}

#[test]
fn r_made_attacks_are_refused_naming_the_class() {
    for ((name, bytes), message) in R_MADE_ATTACKS {
        assert_eq!(invalid(check_default(bytes)), *message, "fixture {name}");
        // Without class rules (values going into the sandbox) they pass.
        assert_eq!(check(bytes), Ok(()), "fixture {name}");
    }
}

#[test]
fn data_table_is_not_allowed_by_default() {
    assert!(!DEFAULT_ALLOWED_CLASSES.contains(&"data.table"));
    let dt = S::v3()
        .list(0, true)
        .class(&["data.table", "data.frame"])
        .nil()
        .done();
    let err = check_default(&dt).unwrap_err();
    assert_eq!(err, ValueError::Class("data.table".into()));
}

#[test]
fn classes_without_rules_are_left_to_the_generic_checks() {
    // A class the user allows has no rules; nor do these.
    let limits = CheckLimits {
        allowed_classes: Some(vec!["my_result".into(), "noquote".into()]),
        ..CheckLimits::default()
    };
    for class in ["my_result", "noquote"] {
        let bytes = S::v3().list(0, true).class(&[class]).nil().done();
        assert_eq!(check_with(&bytes, &limits), Ok(()), "{class}");
    }
}

/// A data frame of the given columns (each written by a body) with the
/// given row names.
fn data_frame(columns: &[Body], names: bool, row_names: Option<Body>) -> Vec<u8> {
    let mut s = S::v3().list(columns.len() as i32, true);
    for col in columns {
        s = col(s);
    }
    if names {
        let names: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
        let names: Vec<Option<&str>> = names.iter().map(|n| Some(n.as_str())).collect();
        s = s.attr("names", |s| s.strs(&names));
    }
    s = s.class(&["tbl_df", "tbl", "data.frame"]);
    if let Some(rn) = row_names {
        s = s.attr("row.names", rn);
    }
    s.nil().done()
}

#[test]
fn data_frame_columns_agree_with_the_row_names() {
    let three: Body = |s| s.ints(&[1, 2, 3]);
    let compact3: Body = |s| s.ints(&[NA_INTEGER, -3]);
    let ok = |bytes: Vec<u8>| assert_eq!(check_default(&bytes), Ok(()));
    let msg = |bytes: Vec<u8>| invalid(check_default(&bytes));
    ok(data_frame(&[three, three], true, Some(compact3)));
    ok(data_frame(
        &[three],
        true,
        Some(|s| s.ints(&[NA_INTEGER, 3])),
    ));
    ok(data_frame(
        &[three],
        true,
        Some(|s| s.strs(&[Some("a"), Some("b"), Some("c")])),
    ));
    ok(data_frame(&[three], true, Some(|s| s.ints(&[7, 8, 9]))));
    // A compact sequence column, a list column, a matrix column.
    ok(data_frame(
        &[
            |s| s.intseq(3.0, 1.0).nil(),
            |s| s.list(3, false).nil().nil().nil(),
            |s| {
                s.ints_attr(&[1, 2, 3, 4, 5, 6], true)
                    .attr("dim", |s| s.ints(&[3, 2]))
                    .nil()
            },
        ],
        true,
        Some(compact3),
    ));
    ok(data_frame(&[], false, Some(|s| s.ints(&[NA_INTEGER, -5]))));
    assert_eq!(
        msg(data_frame(
            &[three],
            true,
            Some(|s| s.ints(&[NA_INTEGER, -5]))
        )),
        "invalid 'tbl_df' value: its compact row names say 5 rows but its columns have 3"
    );
    assert!(
        msg(data_frame(&[three], true, Some(|s| s.strs(&[Some("a")]))))
            .contains("1 row names but its columns have 3 rows")
    );
    assert!(
        msg(data_frame(&[three, |s| s.ints(&[1])], true, Some(compact3)))
            .contains("columns differ in length")
    );
    assert!(msg(data_frame(&[three], false, Some(compact3))).contains("no names"));
    assert!(msg(data_frame(&[three], true, None)).contains("no row names"));
    let matrix_rows = data_frame(
        &[|s| {
            s.ints_attr(&[1, 2, 3, 4, 5, 6], true)
                .attr("dim", |s| s.ints(&[2, 3]))
                .nil()
        }],
        true,
        Some(compact3),
    );
    assert!(msg(matrix_rows).contains("columns have 2"));
    let atomic = S::v3()
        .ints_attr(&[1], true)
        .class(&["data.frame"])
        .nil()
        .done();
    assert!(msg(atomic).contains("integer, not a list"));
}

#[test]
fn nested_data_frames_count_their_own_rows() {
    let outer = |inner_rows: i32| {
        S::v3()
            .list(2, true)
            .ints(&[1, 2])
            .list(1, true)
            .ints(&[1, 2])
            .attr("names", |s| s.strs(&[Some("b")]))
            .class(&["data.frame"])
            .attr("row.names", move |s| s.ints(&[NA_INTEGER, -inner_rows]))
            .nil()
            .attr("names", |s| s.strs(&[Some("a"), Some("inner")]))
            .class(&["data.frame"])
            .attr("row.names", |s| s.ints(&[NA_INTEGER, -2]))
            .nil()
            .done()
    };
    assert_eq!(check_default(&outer(2)), Ok(()));
    // The inner frame says 1000 rows over 2-row columns: refused itself.
    assert!(invalid(check_default(&outer(1000))).contains("say 1000 rows"));
}

fn factor(codes: Body, levels: Option<Body>, class: &str) -> Vec<u8> {
    let mut s = codes(S::v3());
    if let Some(l) = levels {
        s = s.attr("levels", l);
    }
    s.class(&[class, "factor"]).nil().done()
}

#[test]
fn factor_codes_index_the_levels() {
    let ab: Body = |s| s.strs(&[Some("a"), Some("b")]);
    let ok = |b: Vec<u8>| assert_eq!(check_default(&b), Ok(()));
    let msg = |b: Vec<u8>| invalid(check_default(&b));
    ok(factor(
        |s| s.ints_attr(&[1, 2, NA_INTEGER], true),
        Some(ab),
        "ordered",
    ));
    ok(factor(
        |s| s.ints_attr(&[], true),
        Some(|s| s.strs(&[])),
        "ordered",
    ));
    ok(factor(|s| s.intseq(2.0, 1.0), Some(ab), "ordered"));
    for codes in [
        (|s: S| s.ints_attr(&[0], true)) as Body,
        |s| s.ints_attr(&[3], true),
        |s| s.ints_attr(&[-1], true),
        |s| s.intseq(3.0, 1.0),
        |s| s.intseq(2.0, 0.0),
    ] {
        assert!(msg(factor(codes, Some(ab), "ordered"))
            .contains("codes are not NA or between 1 and its 2 levels"));
    }
    assert!(
        msg(factor(|s| s.ints_attr(&[1], true), None, "ordered")).contains("no character levels")
    );
    assert!(msg(factor(
        |s| s.ints_attr(&[1], true),
        Some(|s| s.ints(&[1])),
        "ordered"
    ))
    .contains("no character levels"));
    assert!(
        msg(factor(|s| s.dbls_attr(&[1.0], true), Some(ab), "ordered"))
            .starts_with("invalid 'ordered' value: its codes are double")
    );
}

#[test]
fn matrices_arrays_and_time_series_have_their_attributes() {
    let with = |class: &str, dim: Option<Body>, tsp: Option<Body>| {
        let mut s = S::v3().ints_attr(&[1, 2, 3, 4], true);
        if let Some(d) = dim {
            s = s.attr("dim", d);
        }
        if let Some(t) = tsp {
            s = s.attr("tsp", t);
        }
        s.class(&[class]).nil().done()
    };
    let d22: Body = |s| s.ints(&[2, 2]);
    let d4: Body = |s| s.ints(&[4]);
    assert_eq!(check_default(&with("matrix", Some(d22), None)), Ok(()));
    assert!(invalid(check_default(&with("matrix", Some(d4), None))).contains("two dimensions"));
    assert_eq!(check_default(&with("array", Some(d4), None)), Ok(()));
    assert!(invalid(check_default(&with("array", None, None))).contains("no dimensions"));
    let tsp: Body = |s| s.dbls(&[1.0, 4.0, 1.0]);
    assert_eq!(check_default(&with("ts", None, Some(tsp))), Ok(()));
    assert!(invalid(check_default(&with("ts", None, None))).contains("no 'tsp' attribute"));
    // mts: rows are the matrix's rows.
    let mts_tsp: Body = |s| s.dbls(&[1.0, 2.0, 1.0]);
    let mut s = S::v3()
        .ints_attr(&[1, 2, 3, 4], true)
        .attr("dim", d22)
        .attr("tsp", mts_tsp);
    s = s.class(&["mts", "ts", "matrix"]);
    assert_eq!(check_default(&s.nil().done()), Ok(()));
}

#[test]
fn ftable_variables_multiply_out_to_the_dimensions() {
    let ftable = |rows: Body, cols: Body| {
        S::v3()
            .ints_attr(&[1, 2, 3, 4, 5, 6], true)
            .attr("dim", |s| s.ints(&[3, 2]))
            .attr("row.vars", rows)
            .attr("col.vars", cols)
            .class(&["ftable"])
            .nil()
            .done()
    };
    let rows3: Body = |s| s.list(1, false).strs(&[Some("a"), Some("b"), Some("c")]);
    let cols2: Body = |s| {
        s.list(2, false)
            .strs(&[Some("x"), Some("y")])
            .strs(&[Some("z")])
    };
    assert_eq!(check_default(&ftable(rows3, cols2)), Ok(()));
    let msg = |b: Vec<u8>| invalid(check_default(&b));
    assert!(msg(ftable(cols2, cols2)).contains("'row.vars' make 2 combinations for 3"));
    assert!(msg(ftable(rows3, |s| s.list(1, false).ints(&[1, 2])))
        .contains("'col.vars' is not a list of at most 32 character vectors"));
    assert!(msg(ftable(rows3, |s| s.strs(&[Some("x"), Some("y")])))
        .contains("'col.vars' is not a list"));
    let many: Body = |mut s| {
        s = s.list(40, false);
        for _ in 0..40 {
            s = s.strs(&[Some("x")]);
        }
        s
    };
    assert!(msg(ftable(rows3, many)).contains("at most 32"));
    let no_dim = S::v3()
        .ints_attr(&[1], true)
        .class(&["ftable"])
        .nil()
        .done();
    assert!(msg(no_dim).contains("two dimensions"));
    let (_, r_made) = fixture!("ftable");
    assert_eq!(check_default(r_made), Ok(()));
}

#[test]
fn numeric_versions_are_lists_of_small_non_negative_integers() {
    let version = |part: Body| {
        part(S::v3().list(2, true).ints(&[1, 2, 3]))
            .class(&["package_version", "numeric_version"])
            .nil()
            .done()
    };
    assert_eq!(check_default(&version(|s| s.ints(&[0]))), Ok(()));
    assert_eq!(
        check_default(&version(|s| s.intseq(3.0, 0.0).nil())),
        Ok(())
    );
    for part in [
        (|s: S| s.ints(&[-1])) as Body,
        |s| s.ints(&[NA_INTEGER]),
        |s| s.dbls(&[1.5]),
        |s| s.strs(&[Some("1")]),
        |s| s.list(1, false).ints(&[1]),
        |s| {
            s.ints_attr(&[1], true)
                .attr("names", |s| s.strs(&[Some("a")]))
                .nil()
        },
    ] {
        assert_eq!(
            invalid(check_default(&version(part))),
            "invalid 'package_version' value: its versions are not vectors of non-negative integers"
        );
    }
    let many = {
        let mut s = S::v3().list(MAX_VERSIONS as i32 + 1, true);
        for _ in 0..=MAX_VERSIONS {
            s = s.ints(&[1]);
        }
        s.class(&["numeric_version"]).nil().done()
    };
    assert!(invalid(check_default(&many)).contains("more than 10000"));
}

#[test]
fn simple_type_rules() {
    let one = |value: Body, class: &str| value(S::v3()).class(&[class]).nil().done();
    let int: Body = |s| s.ints_attr(&[1], true);
    let dbl: Body = |s| s.dbls_attr(&[1.0], true);
    let chr: Body = |s| s.strs_attr(&[Some("x")], true);
    let list: Body = |s| s.list(1, true).ints(&[1]);
    let cases: &[(&str, &[Body], &[Body])] = &[
        ("hexmode", &[int, dbl], &[chr, list]),
        ("octmode", &[int, dbl], &[chr]),
        ("roman", &[int, dbl], &[chr]),
        ("integer64", &[dbl], &[int, chr]),
        ("summaryDefault", &[int, dbl, chr], &[list]),
        ("json", &[chr], &[int, list]),
        ("glue", &[chr], &[dbl]),
        ("Date", &[int, dbl], &[chr, list]),
    ];
    for (class, good, bad) in cases {
        for v in *good {
            assert_eq!(check_default(&one(*v, class)), Ok(()), "{class}");
        }
        for v in *bad {
            let msg = invalid(check_default(&one(*v, class)));
            assert!(
                msg.starts_with(&format!("invalid '{class}' value: ")),
                "{msg}"
            );
        }
    }
}

/// A named list with class `class`; `fields` are (name, body).
fn record(class: &[&str], fields: &[(&str, Body)]) -> Vec<u8> {
    let mut s = S::v3().list(fields.len() as i32, true);
    for (_, body) in fields {
        s = body(s);
    }
    let names: Vec<Option<&str>> = fields.iter().map(|(n, _)| Some(*n)).collect();
    s.attr("names", |s| s.strs(&names))
        .class(class)
        .nil()
        .done()
}

#[test]
fn results_and_conditions_have_the_fields_print_reads() {
    let msg = |b: Vec<u8>| invalid(check_default(&b));
    let chr: Body = |s| s.strs(&[Some("boom")]);
    let num: Body = |s| s.dbls(&[1.0, 2.0]);
    // htest: atomic fields only.
    assert_eq!(
        check_default(&record(&["htest"], &[("method", chr), ("p.value", num)])),
        Ok(())
    );
    assert!(msg(record(
        &["power.htest"],
        &[
            ("method", chr),
            ("statistic", |s| s.list(1, false).ints(&[1]))
        ]
    ))
    .contains("not a list of atomic fields"));
    // density: x and y of one length.
    assert_eq!(
        check_default(&record(&["density"], &[("x", num), ("y", num)])),
        Ok(())
    );
    assert!(msg(record(
        &["density"],
        &[("x", num), ("y", |s| s.dbls(&[1.0]))]
    ))
    .contains("'x' and 'y' are not numbers of one length"));
    assert!(msg(record(&["density"], &[("x", num)])).contains("'x' and 'y'"));
    // Conditions: one message.
    let cond = &["simpleError", "error", "condition"];
    assert_eq!(
        check_default(&record(cond, &[("message", chr), ("call", |s| s.nil())])),
        Ok(())
    );
    for bad in [
        (|s: S| s.ints(&[1])) as Body,
        |s| s.strs(&[Some("a"), Some("b")]),
        |s| s.list(1, false).strs(&[Some("a")]),
    ] {
        assert_eq!(
            msg(record(cond, &[("message", bad)])),
            "invalid 'simpleError' value: its 'message' is not one string"
        );
    }
    assert!(msg(record(cond, &[("msg", chr)])).contains("'message' is not one string"));
}

#[test]
fn each_family_is_checked_once_and_named_by_its_first_class() {
    // tbl_df, tbl and data.frame share one rule: one message, first name.
    let bytes = S::v3()
        .list(0, true)
        .class(&["tbl_df", "tbl", "data.frame"])
        .nil()
        .done();
    assert_eq!(
        invalid(check_default(&bytes)),
        "invalid 'tbl_df' value: it has no row names"
    );
}

#[test]
fn classes_printed_with_cat_hold_no_control_characters() {
    const ESC: &str = "\u{1b}]0;pwned\u{7}";
    let msg = |b: Vec<u8>| invalid(check_default(&b));
    let refused = |b: Vec<u8>, class: &str| {
        let m = msg(b);
        assert!(
            m.starts_with(&format!(
                "invalid '{class}' value: it holds a string with control characters"
            )),
            "{m}"
        );
    };
    // In the data, in an element, in a names attribute, in dimnames.
    refused(
        record(
            &["simpleError", "error", "condition"],
            &[("message", |s| s.strs(&[Some(ESC)]))],
        ),
        "simpleError",
    );
    refused(
        record(
            &["htest"],
            &[("method", |s| s.strs(&[Some("t"), Some(ESC)]))],
        ),
        "htest",
    );
    refused(
        S::v3()
            .list(1, true)
            .ints(&[1])
            .attr("names", |s| s.strs(&[Some(ESC)]))
            .class(&["listof"])
            .nil()
            .done(),
        "listof",
    );
    refused(
        S::v3()
            .strs_attr(&[Some("v")], true)
            .attr("names", |s| s.strs(&[Some(ESC)]))
            .class(&["Dlist"])
            .nil()
            .done(),
        "Dlist",
    );
    refused(
        S::v3()
            .strs_attr(&[Some("v\u{9b}2J")], true)
            .class(&["glue", "character"])
            .nil()
            .done(),
        "glue",
    );
    refused(
        S::v3()
            .list(1, true)
            .ints(&[1])
            .attr("dim", |s| s.ints(&[1]))
            .attr("dimnames", |s| s.list(1, false).strs(&[Some(ESC)]))
            .class(&["by"])
            .nil()
            .done(),
        "by",
    );
    // Newlines and tabs are text.
    assert_eq!(
        check_default(&record(
            &["simpleError", "error", "condition"],
            &[("message", |s| s.strs(&[Some("line one\n\tline two")]))]
        )),
        Ok(())
    );
    // print() of data frames, factors and character vectors escapes them.
    let df = S::v3()
        .list(1, true)
        .strs(&[Some(ESC)])
        .attr("names", |s| s.strs(&[Some("x")]))
        .class(&["data.frame"])
        .attr("row.names", |s| s.ints(&[NA_INTEGER, -1]))
        .nil()
        .done();
    assert_eq!(check_default(&df), Ok(()));
}
