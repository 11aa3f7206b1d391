use crate::rvalue::test_support::*;

#[test]
fn handcrafted_forbidden_types() {
    // A promise (PROMSXP) at top level and inside a list, with the
    // flags R writes for one (attr/tag bits set).
    let promise = S::v3().flags(PROMSXP, false, true).nil().done();
    assert_eq!(check(&promise), Err(ValueError::Forbidden("promise")));
    let in_list = S::v3()
        .flags(VECSXP, false, false)
        .int(2)
        .nil()
        .flags(PROMSXP, false, false)
        .done();
    assert_eq!(check(&in_list), Err(ValueError::Forbidden("promise")));
    let cases: &[(u8, &str)] = &[
        (CLOSXP, "closure"),
        (ENVSXP, "environment"),
        (LANGSXP, "language object"),
        (SPECIALSXP, "builtin function"),
        (BUILTINSXP, "builtin function"),
        (DOTSXP, "..."),
        (ANYSXP, "any"),
        (EXPRSXP, "expression"),
        (BCODESXP, "bytecode"),
        (EXTPTRSXP, "external pointer"),
        (WEAKREFSXP, "weak reference"),
        (S4SXP, "S4 object"),
        (ATTRLISTSXP, "pairlist"),
        (ATTRLANGSXP, "language object"),
        (BASEENV_SXP, "environment"),
        (EMPTYENV_SXP, "environment"),
        (BCREPREF, "bytecode"),
        (BCREPDEF, "bytecode"),
        (GENERICREFSXP, "class reference"),
        (CLASSREFSXP, "class reference"),
        (PERSISTSXP, "persistent reference"),
        (PACKAGESXP, "environment"),
        (NAMESPACESXP, "environment"),
        (BASENAMESPACE_SXP, "environment"),
        (MISSINGARG_SXP, "missing argument"),
        (UNBOUNDVALUE_SXP, "unbound value"),
        (GLOBALENV_SXP, "environment"),
        (SYMSXP, "symbol"),
        (LISTSXP, "pairlist"),
    ];
    for &(ty, name) in cases {
        let bytes = S::v3().flags(ty, false, false).done();
        assert_eq!(check(&bytes), Err(ValueError::Forbidden(name)), "type {ty}");
        // Also as an attribute value.
        let attr = S::v3()
            .flags(INTSXP, true, false)
            .int(0)
            .flags(LISTSXP, false, true)
            .sym("x")
            .flags(ty, false, false)
            .done();
        assert_eq!(
            check(&attr),
            Err(ValueError::Forbidden(name)),
            "attr type {ty}"
        );
    }
}

#[test]
fn logical_values_are_only_true_false_or_na() {
    let lgl = |v: i32| {
        S::v3()
            .flags(LGLSXP, false, false)
            .int(3)
            .int(1)
            .int(NA_INTEGER)
            .int(v)
            .done()
    };
    assert_eq!(check(&lgl(0)), Ok(()));
    assert_eq!(check(&lgl(1)), Ok(()));
    // R hashes logicals by value (unique.c): anything else would index
    // outside its table.
    for v in [2, -1, 255, 0x0080_0000, i32::MAX, i32::MIN + 1] {
        assert!(malformed_err(check(&lgl(v))), "{v}");
    }
}

#[test]
fn unknown_type_codes() {
    for ty in [NILSXP, 11, 12, 26, 99, 237] {
        let bytes = S::v3().flags(ty, false, false).done();
        assert_eq!(
            check(&bytes),
            Err(ValueError::UnknownType {
                code: ty,
                offset: 23
            }),
            "type {ty}"
        );
    }
    // A bare CHARSXP is not a value.
    assert!(malformed_err(check(&S::v3().chars("x").done())));
}

#[test]
fn s4_bit_is_refused() {
    let s4 = 1 << 16;
    for ty in [LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP, RAWSXP, CPLXSXP] {
        let bytes = S::v3().int(i32::from(ty) | s4 | (1 << 8)).int(0).done();
        assert_eq!(check(&bytes), Err(ValueError::Forbidden("S4 object")));
    }
    let altrep = S::v3().int(i32::from(ALTREP_SXP) | s4).done();
    assert_eq!(check(&altrep), Err(ValueError::Forbidden("S4 object")));
}

#[test]
fn nesting_is_bounded() {
    let deep = include_bytes!("../../tests/fixtures/deep_list.bin");
    assert_eq!(check(deep), Err(ValueError::TooDeep(DEFAULT_MAX_DEPTH)));
    assert_eq!(
        check(deep).unwrap_err().to_string(),
        "value nested deeper than 512 levels (lists and attribute lists count)"
    );
    let roomy = CheckLimits {
        max_depth: 2000,
        ..CheckLimits::default()
    };
    assert_eq!(check_with(deep, &roomy), Ok(()));
    let nested = include_bytes!("../../tests/fixtures/nested_list.bin");
    let tight = CheckLimits {
        max_depth: 50,
        ..CheckLimits::default()
    };
    assert_eq!(check_with(nested, &tight), Err(ValueError::TooDeep(50)));

    // Far deeper than any call stack would survive: no recursion.
    let n = 200_000;
    let mut s = S::v3();
    for _ in 0..n {
        s = s.flags(VECSXP, false, false).int(1);
    }
    let bytes = s.nil().done();
    assert_eq!(check(&bytes), Err(ValueError::TooDeep(DEFAULT_MAX_DEPTH)));
    let unlimited = CheckLimits {
        max_depth: usize::MAX,
        max_bytes: usize::MAX,
        allowed_classes: None,
    };
    assert_eq!(check_with(&bytes, &unlimited), Ok(()));
    assert_eq!(
        check_with(&bytes[..bytes.len() - 1], &unlimited),
        Err(ValueError::Truncated)
    );

    // Attributes nest too: 1:1 with an attribute holding the next.
    let mut s = S::v3();
    for _ in 0..n {
        s = s
            .flags(INTSXP, true, false)
            .int(1)
            .int(1)
            .flags(LISTSXP, false, true)
            .sym("a");
    }
    let bytes = s.nil().done();
    assert_eq!(check(&bytes), Err(ValueError::TooDeep(DEFAULT_MAX_DEPTH)));
}

#[test]
fn long_attribute_lists_are_iterative_and_count_as_depth() {
    // 100k attributes in one pairlist, and symbol references to them.
    // R reads attribute lists recursively: 40,000 attributes overflow its
    // C stack (a 1.3 MB stream), so they count towards the depth; the
    // checker itself walks them without recursion.
    let n = 100_000;
    let mut s = S::v3().flags(LGLSXP, true, false).int(0);
    for i in 0..n {
        s = s
            .flags(LISTSXP, false, true)
            .sym(&format!("a{i}"))
            .ints(&[i]);
    }
    // Refer back to symbol #256: its packed flags have bit 16 set,
    // which is not an S4 bit on a reference.
    s = s
        .flags(LISTSXP, false, true)
        .int((256 << 8) | i32::from(REFSXP))
        .nil()
        .flags(LISTSXP, false, true)
        .int(i32::from(REFSXP))
        .int(n)
        .nil();
    let bytes = s.nil().done();
    assert_eq!(check(&bytes), Err(ValueError::TooDeep(DEFAULT_MAX_DEPTH)));
    let unlimited = CheckLimits {
        max_depth: usize::MAX,
        ..any_class()
    };
    assert_eq!(check_with(&bytes, &unlimited), Ok(()));
}

#[test]
fn attributes_count_one_level_each() {
    // The n-th attribute's value is n + 1 levels down (the attribute
    // list, then one level per node before it), as in R's reader.
    let with_attrs = |n: i32, nested: bool| {
        let mut s = S::v3().flags(LGLSXP, true, false).int(0);
        for i in 0..n {
            s = s.attr(&format!("a{i}"), |s| s.ints(&[i]));
        }
        if nested {
            s = s.attr("last", |s| s.list(1, false).ints(&[1]));
        }
        s.nil().done()
    };
    let limit = |max_depth| CheckLimits {
        max_depth,
        ..any_class()
    };
    assert_eq!(check_with(&with_attrs(10, false), &limit(10)), Ok(()));
    assert_eq!(
        check_with(&with_attrs(11, false), &limit(10)),
        Err(ValueError::TooDeep(10))
    );
    assert_eq!(check_with(&with_attrs(10, true), &limit(12)), Ok(()));
    assert_eq!(
        check_with(&with_attrs(10, true), &limit(11)),
        Err(ValueError::TooDeep(11))
    );
}

#[test]
fn references_must_name_known_symbols() {
    let tag_ref = |index_flags: i32, extra: Option<i32>| {
        let mut s = S::v3()
            .flags(LGLSXP, true, false)
            .int(0)
            .flags(LISTSXP, false, true)
            .sym("a")
            .nil()
            .flags(LISTSXP, false, true)
            .int(index_flags);
        if let Some(e) = extra {
            s = s.int(e);
        }
        s.nil().nil().done()
    };
    let refsxp = i32::from(REFSXP);
    assert_eq!(check(&tag_ref((1 << 8) | refsxp, None)), Ok(()));
    assert_eq!(check(&tag_ref(refsxp, Some(1))), Ok(()));
    assert!(malformed_err(check(&tag_ref((2 << 8) | refsxp, None))));
    assert!(malformed_err(check(&tag_ref(refsxp, Some(0)))));
    assert!(malformed_err(check(&tag_ref(refsxp, Some(-1)))));
    assert!(malformed_err(check(&tag_ref(refsxp, Some(i32::MAX)))));
    assert!(malformed_err(check(&tag_ref(-1, None))));
    // A reference where a value belongs is a symbol value.
    let value_ref = S::v3()
        .flags(VECSXP, true, false)
        .int(1)
        .flags(REFSXP, false, false)
        .done();
    assert_eq!(check(&value_ref), Err(ValueError::Forbidden("symbol")));
    // Symbols are refused as list elements.
    let sym_elt = S::v3().flags(VECSXP, false, false).int(1).sym("x").done();
    assert_eq!(check(&sym_elt), Err(ValueError::Forbidden("symbol")));
}
