use super::MAX_DIMS;
use crate::rvalue::test_support::*;

#[test]
fn attributes_are_validated() {
    let with_attr = |value: S, name: &str, attr: fn(S) -> S| {
        attr(value.flags(LISTSXP, false, true).sym(name))
            .nil()
            .done()
    };
    let ints6 = || {
        S::v3()
            .flags(INTSXP, true, false)
            .int(6)
            .int(1)
            .int(2)
            .int(3)
            .int(4)
            .int(5)
            .int(6)
    };
    fn strs(s: S, n: i32) -> S {
        let mut s = s.flags(STRSXP, false, false).int(n);
        for i in 0..n {
            s = s.chars(&format!("s{i}"));
        }
        s
    }
    assert_eq!(
        check(&with_attr(ints6(), "dim", |s| s.ints(&[2, 3]))),
        Ok(())
    );
    assert_eq!(check(&with_attr(ints6(), "dim", |s| s.ints(&[6]))), Ok(()));
    assert_eq!(check(&with_attr(ints6(), "names", |s| strs(s, 6))), Ok(()));
    assert_eq!(check(&with_attr(ints6(), "class", |s| strs(s, 2))), Ok(()));
    assert_eq!(check(&with_attr(ints6(), "whatever", |s| s.nil())), Ok(()));
    let bad: &[(&str, Body)] = &[
        ("dim", |s| s.ints(&[2, 2])),
        ("dim", |s| s.ints(&[-2, -3])),
        ("dim", |s| s.ints(&[i32::MIN, 3])),
        ("dim", |s| s.ints(&[])),
        ("dim", |s| s.dbls(&[2.0, 3.0])),
        ("dim", |s| s.ints(&[65536, 65536, 65536, 65536, 65536])),
        ("names", |s| s.ints(&[1, 2, 3, 4, 5, 6])),
        ("names", |s| s.flags(STRSXP, false, false).int(1).chars("x")),
        ("class", |s| s.ints(&[1])),
        ("tsp", |s| s.dbls(&[1.0, 2.0])),
        ("row.names", |s| s.ints(&[i32::MIN, i32::MIN])),
        ("dimnames", |s| s.flags(VECSXP, false, false).int(0)),
    ];
    for (name, attr) in bad {
        assert!(
            malformed_err(check(&with_attr(ints6(), name, *attr))),
            "{name}"
        );
    }
    // dim with dimnames, in either order.
    let dn = |first: &str, second: &str, dims: &'static [i32], names: fn(S) -> S| {
        let s = ints6().flags(LISTSXP, false, true).sym(first);
        let s = if first == "dim" {
            s.ints(dims)
        } else {
            names(s)
        };
        let s = s.flags(LISTSXP, false, true).sym(second);
        let s = if second == "dim" {
            s.ints(dims)
        } else {
            names(s)
        };
        s.nil().done()
    };
    let good_names: fn(S) -> S = |s| {
        let s = s.flags(VECSXP, false, false).int(2).nil();
        s.flags(STRSXP, false, false)
            .int(3)
            .chars("a")
            .chars("b")
            .chars("c")
    };
    let short_names: fn(S) -> S = |s| {
        let s = s.flags(VECSXP, false, false).int(2).nil();
        s.flags(STRSXP, false, false).int(2).chars("a").chars("b")
    };
    let int_names: fn(S) -> S = |s| s.flags(VECSXP, false, false).int(2).nil().ints(&[1, 2, 3]);
    let one_names: fn(S) -> S = |s| s.flags(VECSXP, false, false).int(1).nil();
    assert_eq!(check(&dn("dim", "dimnames", &[2, 3], good_names)), Ok(()));
    assert_eq!(check(&dn("dimnames", "dim", &[2, 3], good_names)), Ok(()));
    assert!(malformed_err(check(&dn(
        "dim",
        "dimnames",
        &[2, 3],
        short_names
    ))));
    assert!(malformed_err(check(&dn(
        "dim",
        "dimnames",
        &[2, 3],
        int_names
    ))));
    assert!(malformed_err(check(&dn(
        "dim",
        "dimnames",
        &[2, 3],
        one_names
    ))));
    assert!(malformed_err(check(&dn(
        "names",
        "dimnames",
        &[2, 3],
        good_names
    ))));
    // Duplicates of checked attributes.
    let dup = {
        let mut v = ints6().flags(LISTSXP, false, true).sym("dim").ints(&[6]);
        v = v
            .flags(LISTSXP, false, true)
            .int((1 << 8) | i32::from(REFSXP))
            .ints(&[6]);
        v.nil().done()
    };
    assert!(malformed_err(check(&dup)));
    // Attribute lists need tags, no attributes, and a NULL end.
    let untagged = ints6().flags(LISTSXP, false, false).ints(&[1]).nil().done();
    assert!(malformed_err(check(&untagged)));
    let attributed = ints6()
        .flags(LISTSXP, true, true)
        .nil()
        .sym("a")
        .ints(&[1])
        .nil()
        .done();
    assert!(malformed_err(check(&attributed)));
    let dotted = ints6()
        .flags(LISTSXP, false, true)
        .sym("a")
        .ints(&[1])
        .ints(&[2])
        .done();
    assert!(malformed_err(check(&dotted)));
    let not_list = ints6().ints(&[1]).done();
    assert!(malformed_err(check(&not_list)));
    // A string's attributes are refused (R ignores them).
    let chr_attr = S::v3()
        .flags(STRSXP, false, false)
        .int(1)
        .int(0x0004_0209)
        .int(1)
        .done();
    assert!(malformed_err(check(&chr_attr)));
}

/// 1:n with `tsp` (and optionally `dim`), as a crafted stream would carry
/// them past R's `tsp<-` checks.
fn with_tsp(n: i32, tsp: [f64; 3], dim: Option<[i32; 2]>) -> Vec<u8> {
    let values: Vec<i32> = (1..=n).collect();
    let mut s = S::v3().ints_attr(&values, true);
    if let Some(d) = dim {
        s = s.attr("dim", move |s| s.ints(&d));
    }
    s.attr("tsp", move |s| s.dbls(&tsp))
        .class(&["ts"])
        .nil()
        .done()
}

#[test]
fn tsp_follows_rs_own_rule() {
    let ok = |b: Vec<u8>| assert_eq!(check_default(&b), Ok(()));
    let msg = |b: Vec<u8>| invalid(check_default(&b));
    ok(with_tsp(3, [1.0, 3.0, 1.0], None));
    ok(with_tsp(24, [2020.0, 2020.0 + 23.0 / 12.0, 12.0], None));
    // Absurd but consistent: one observation at any frequency.
    ok(with_tsp(1, [1.0, 1.0, 1e300], None));
    // Rows of a matrix, not its length.
    ok(with_tsp(6, [1.0, 3.0, 1.0], Some([3, 2])));
    assert!(msg(with_tsp(6, [1.0, 6.0, 1.0], Some([3, 2]))).contains("do not fit 3 observations"));
    for tsp in [
        [1.0, 3.0, 0.0],
        [1.0, 3.0, -1.0],
        [f64::NAN, 3.0, 1.0],
        [1.0, f64::INFINITY, 1.0],
        [1.0, 3.0, f64::NAN],
    ] {
        assert!(
            msg(with_tsp(3, tsp, None)).contains("not finite with a positive frequency"),
            "{tsp:?}"
        );
    }
    assert!(msg(with_tsp(3, [1.0, 1e9, 1.0], None)).contains("do not fit 3 observations"));
    assert!(msg(with_tsp(3, [1.0, 1e10, 1e-300], None)).contains("do not fit"));
    assert_eq!(
        msg(with_tsp(0, [1.0, 1.0, 1e300], None)),
        "invalid 'tsp' attribute: the time series has no observations"
    );
    // Going into the sandbox, only the shape is checked.
    assert_eq!(check(&with_tsp(0, [1.0, 1.0, 1e300], None)), Ok(()));
}

#[test]
fn dimensions_are_bounded() {
    let array = |ndim: usize| {
        let dims = vec![1; ndim];
        S::v3()
            .ints_attr(&[7], true)
            .attr("dim", move |s| s.ints(&dims))
            .nil()
            .done()
    };
    assert_eq!(check(&array(MAX_DIMS)), Ok(()));
    assert!(malformed_err(check(&array(MAX_DIMS + 1))));
    // A compact dim is bounded the same way.
    let seq_dim = |n: f64| {
        S::v3()
            .ints_attr(&[7], true)
            .attr("dim", move |s| s.intseq(n, 1.0).nil())
            .nil()
            .done()
    };
    assert_eq!(check(&seq_dim(1.0)), Ok(()));
    assert!(malformed_err(check(&seq_dim(33.0))));
    // dimnames with more entries than can be dims.
    let names = S::v3()
        .ints_attr(&[7], true)
        .attr("dim", |s| s.ints(&[1]))
        .attr("dimnames", |mut s| {
            s = s.list(40, false);
            for _ in 0..40 {
                s = s.nil();
            }
            s
        })
        .nil()
        .done();
    assert!(malformed_err(check(&names)));
}

#[test]
fn remembered_attributes_may_not_repeat() {
    for name in [
        "levels",
        "units",
        "row.vars",
        "col.vars",
        "row.names",
        "tsp",
    ] {
        let twice = S::v3()
            .dbls_attr(&[1.0, 2.0, 3.0], true)
            .attr(name, |s| s.dbls(&[1.0, 3.0, 1.0]))
            .attr(name, |s| s.dbls(&[1.0, 3.0, 1.0]))
            .nil()
            .done();
        assert!(malformed_err(check_default(&twice)), "{name}");
    }
}
