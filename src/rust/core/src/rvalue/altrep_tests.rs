use crate::rvalue::test_support::*;

#[test]
fn unknown_altrep_classes_are_refused() {
    let bytes = S::v3()
        .altrep("vroom_dbl", "vroom", REALSXP)
        .dbls(&[1.0])
        .nil()
        .done();
    let err = check(&bytes).unwrap_err();
    assert_eq!(
        err,
        ValueError::AltrepClass {
            class: "vroom_dbl".into(),
            package: "vroom".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "ALTREP class 'vroom_dbl' from package 'vroom' cannot cross the sandbox boundary"
    );
    // Known names from another package, and base classes not allowed.
    for (class, package) in [
        ("compact_intseq", "evil"),
        ("mmap_real", "base"),
        ("mmap_integer", "base"),
        ("", ""),
    ] {
        let bytes = S::v3().altrep(class, package, INTSXP).nil().nil().done();
        assert!(
            matches!(check(&bytes), Err(ValueError::AltrepClass { .. })),
            "{class}/{package}"
        );
    }
    // Control characters in the names are not echoed.
    let bytes = S::v3().altrep("a\nb\x1b[31m", "p", INTSXP).done();
    match check(&bytes) {
        Err(ValueError::AltrepClass { class, .. }) => assert_eq!(class, "ab[31m"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn altrep_state_is_checked() {
    let seq = |ty: u8, class: &str, state: &[f64]| {
        S::v3().altrep(class, "base", ty).dbls(state).nil().done()
    };
    assert_eq!(
        check(&seq(INTSXP, "compact_intseq", &[10.0, 1.0, 1.0])),
        Ok(())
    );
    assert_eq!(
        check(&seq(INTSXP, "compact_intseq", &[10.0, 1.0, -1.0])),
        Ok(())
    );
    assert_eq!(
        check(&seq(REALSXP, "compact_realseq", &[5.0, 1e10, 1.0])),
        Ok(())
    );
    let bad_states: &[(u8, &str, &[f64])] = &[
        (INTSXP, "compact_intseq", &[10.0, 1.0, 2.0]),
        (INTSXP, "compact_intseq", &[-1.0, 1.0, 1.0]),
        (INTSXP, "compact_intseq", &[1.5, 1.0, 1.0]),
        (INTSXP, "compact_intseq", &[f64::NAN, 1.0, 1.0]),
        (INTSXP, "compact_intseq", &[1e300, 1.0, 1.0]),
        (INTSXP, "compact_intseq", &[10.0, 2147483640.0, 1.0]),
        (INTSXP, "compact_intseq", &[10.0, -2147483648.0, 1.0]),
        (INTSXP, "compact_intseq", &[10.0, 0.5, 1.0]),
        (INTSXP, "compact_intseq", &[10.0, 1.0]),
        (INTSXP, "compact_intseq", &[10.0, 1.0, 1.0, 1.0]),
        (REALSXP, "compact_realseq", &[5.0, f64::INFINITY, 1.0]),
        (REALSXP, "compact_realseq", &[5.0, 1.0, 0.0]),
        // Type in the info must be the class's.
        (REALSXP, "compact_intseq", &[10.0, 1.0, 1.0]),
        (INTSXP, "compact_realseq", &[10.0, 1.0, 1.0]),
    ];
    for (ty, class, state) in bad_states {
        assert!(
            malformed_err(check(&seq(*ty, class, state))),
            "{class} {state:?}"
        );
    }
    // Integer state (written by R 3.5.0) is read unchecked as doubles.
    let int_state = S::v3()
        .altrep("compact_intseq", "base", INTSXP)
        .ints(&[10, 1, 1])
        .nil()
        .done();
    assert!(malformed_err(check(&int_state)));

    // deferred_string: CONS(numeric, scipen integer).
    let deferred = |arg: S, info: &[i32]| arg.ints(info).nil().done();
    let head = || {
        S::v3()
            .altrep("deferred_string", "base", STRSXP)
            .flags(LISTSXP, false, false)
    };
    assert_eq!(check(&deferred(head().ints(&[1, 2]), &[0])), Ok(()));
    assert_eq!(check(&deferred(head().dbls(&[1.5]), &[0])), Ok(()));
    assert!(malformed_err(check(&deferred(head().ints(&[1, 2]), &[]))));
    let chr_arg = head()
        .flags(STRSXP, false, false)
        .int(1)
        .chars("a")
        .ints(&[0])
        .nil()
        .done();
    assert!(malformed_err(check(&chr_arg)));
    let closure_arg = head().flags(CLOSXP, false, false).done();
    assert_eq!(check(&closure_arg), Err(ValueError::Forbidden("closure")));
    let real_info = head().ints(&[1]).dbls(&[0.0]).nil().done();
    assert!(malformed_err(check(&real_info)));

    // Wrappers: the wrapped type must match and the claims hold.
    let w = |class: &str, ty: u8, body: fn(S) -> S, meta: &[i32]| {
        let s = S::v3()
            .altrep(class, "base", ty)
            .flags(LISTSXP, false, false);
        body(s).ints(meta).nil().done()
    };
    const UNKNOWN: i32 = i32::MIN;
    assert_eq!(
        check(&w("wrap_integer", INTSXP, |s| s.ints(&[1, 2, 3]), &[1, 1])),
        Ok(())
    );
    assert_eq!(
        check(&w(
            "wrap_integer",
            INTSXP,
            |s| s.ints(&[1, 2, i32::MIN]),
            &[1, 0]
        )),
        Ok(())
    );
    assert_eq!(
        check(&w(
            "wrap_integer",
            INTSXP,
            |s| s.ints(&[i32::MIN, 3, 2]),
            &[-2, 0]
        )),
        Ok(())
    );
    assert_eq!(
        check(&w(
            "wrap_integer",
            INTSXP,
            |s| s.ints(&[3, 1, 2]),
            &[UNKNOWN, 0]
        )),
        Ok(())
    );
    assert_eq!(
        check(&w("wrap_integer", INTSXP, |s| s.ints(&[3, 1, 2]), &[0, 0])),
        Ok(())
    );
    type Case<'a> = (&'a str, u8, Body, &'a [i32]);
    let bad: &[Case] = &[
        ("wrap_integer", INTSXP, |s| s.ints(&[3, 1, 2]), &[1, 0]),
        ("wrap_integer", INTSXP, |s| s.ints(&[1, 2, 3]), &[-1, 0]),
        (
            "wrap_integer",
            INTSXP,
            |s| s.ints(&[1, i32::MIN, 3]),
            &[1, 0],
        ),
        (
            "wrap_integer",
            INTSXP,
            |s| s.ints(&[i32::MIN, 1, 3]),
            &[1, 0],
        ),
        (
            "wrap_integer",
            INTSXP,
            |s| s.ints(&[1, i32::MIN]),
            &[UNKNOWN, 1],
        ),
        ("wrap_integer", INTSXP, |s| s.ints(&[1, 2]), &[7, 0]),
        ("wrap_integer", INTSXP, |s| s.ints(&[1, 2]), &[1, 2]),
        ("wrap_integer", INTSXP, |s| s.ints(&[1, 2]), &[1]),
        ("wrap_integer", INTSXP, |s| s.ints(&[1, 2]), &[1, 0, 0]),
        ("wrap_integer", INTSXP, |s| s.dbls(&[1.0]), &[UNKNOWN, 0]),
        (
            "wrap_real",
            REALSXP,
            |s| s.dbls(&[2.0, f64::NAN]),
            &[UNKNOWN, 1],
        ),
        ("wrap_real", REALSXP, |s| s.dbls(&[2.0, 1.0]), &[1, 0]),
        (
            "wrap_string",
            STRSXP,
            |s| s.flags(STRSXP, false, false).int(2).chars("b").chars("a"),
            &[1, 0],
        ),
        (
            "wrap_string",
            STRSXP,
            |s| s.flags(STRSXP, false, false).int(1).int(9).int(-1),
            &[UNKNOWN, 1],
        ),
    ];
    for (class, ty, body, meta) in bad {
        assert!(
            malformed_err(check(&w(class, *ty, *body, meta))),
            "{class} {meta:?}"
        );
    }
    // The wrapped value is checked like any other.
    let wrapped_env = w(
        "wrap_list",
        VECSXP,
        |s| {
            s.flags(VECSXP, false, false)
                .int(1)
                .flags(ENVSXP, false, false)
        },
        &[0, 0],
    );
    assert_eq!(
        check(&wrapped_env),
        Err(ValueError::Forbidden("environment"))
    );
    // The state must be a pairlist.
    let not_pairlist = S::v3()
        .altrep("wrap_integer", "base", INTSXP)
        .ints(&[1])
        .done();
    assert!(malformed_err(check(&not_pairlist)));
    // Info with a tag, or too long, is malformed.
    let tagged_info = S::v3()
        .flags(ALTREP_SXP, false, false)
        .flags(LISTSXP, false, true)
        .sym("t")
        .sym("compact_intseq")
        .done();
    assert!(malformed_err(check(&tagged_info)));
    let long_info = S::v3()
        .flags(ALTREP_SXP, false, false)
        .flags(LISTSXP, false, false)
        .sym("compact_intseq")
        .flags(LISTSXP, false, false)
        .sym("base")
        .flags(LISTSXP, false, false)
        .ints(&[13])
        .flags(LISTSXP, false, false)
        .done();
    assert!(malformed_err(check(&long_info)));
}
