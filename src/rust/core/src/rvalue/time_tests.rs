use super::zone_problem;
use crate::rvalue::test_support::*;

#[test]
fn zone_names_are_names() {
    for good in [
        "",
        "UTC",
        "GMT",
        "Europe/Paris",
        "America/Argentina/ComodRivadavia",
        "Etc/GMT+5",
        "EST5EDT",
        "EST5EDT,M3.2.0/2,M11.1.0/2",
        "<+0330>-3:30",
        "right/UTC",
        "CET",
        "+0530",
        "-03",
    ] {
        assert_eq!(zone_problem(good.as_bytes()), None, "{good}");
    }
    let long = format!("{}5", "A".repeat(400));
    let bad: &[(&str, &str)] = &[
        (&long, "is longer than 64 bytes"),
        (&"A".repeat(65), "is longer than 64 bytes"),
        ("/proc/self/fd/7", "names a file"),
        ("/etc/localtime", "names a file"),
        (":/tmp/fifo", "names a file"),
        (":UTC", "names a file"),
        ("../../../tmp/fifo", "leads out of the time zone database"),
        ("Europe/../../etc", "leads out of the time zone database"),
        ("./UTC", "leads out of the time zone database"),
        (".hidden", "leads out of the time zone database"),
        ("Europe/Paris\n", "holds characters other than"),
        ("a b", "holds characters other than"),
        ("\u{1b}[31m", "holds characters other than"),
        ("caf\u{e9}", "holds characters other than"),
        ("$(reboot)", "holds characters other than"),
    ];
    for (name, why) in bad {
        let problem = zone_problem(name.as_bytes()).unwrap_or_default();
        assert!(problem.contains(why), "{name:?}: {problem}");
        assert!(!problem.contains('\n') && !problem.contains('\u{1b}'));
    }
    assert_eq!(zone_problem(&[b'A'; 64]), None);
}

/// A POSIXct at 1e9 with the `tzone` attribute `body` writes.
fn posixct(body: Body) -> Vec<u8> {
    S::v3()
        .dbls_attr(&[1e9], true)
        .class(&["POSIXct", "POSIXt"])
        .attr("tzone", body)
        .nil()
        .done()
}

#[test]
fn tzone_attributes_hold_one_to_three_zone_names() {
    assert_eq!(check_default(&posixct(|s| s.strs(&[Some("UTC")]))), Ok(()));
    assert_eq!(
        check_default(&posixct(|s| s.strs(&[Some(""), Some("CET"), Some("CEST")]))),
        Ok(())
    );
    let bad: &[(Body, &str)] = &[
        (|s| s.strs(&[]), "one to three"),
        (
            |s| s.strs(&[Some("UTC"), Some("a"), Some("b"), Some("c")]),
            "one to three",
        ),
        (|s| s.strs(&[None]), "is NA"),
        (
            |s| s.strs(&[Some("UTC"), Some("/etc/passwd")]),
            "names a file",
        ),
        (|s| s.dbls(&[1.0]), "not a plain character vector"),
        (
            |s| {
                s.altrep("deferred_string", "base", STRSXP)
                    .flags(LISTSXP, false, false)
                    .ints(&[5])
                    .ints(&[0])
                    .nil()
            },
            "not a plain character vector",
        ),
    ];
    for (body, why) in bad {
        let msg = invalid(check_default(&posixct(*body)));
        assert!(msg.starts_with("invalid 'tzone' attribute: "), "{msg}");
        assert!(msg.contains(why), "{msg}");
    }
    // On any value, not only on times: the host may convert it.
    let on_numbers = S::v3()
        .dbls_attr(&[1.0], true)
        .attr("tzone", |s| s.strs(&[Some("/dev/stdin")]))
        .nil()
        .done();
    assert!(invalid(check_default(&on_numbers)).contains("names a file"));
    // Values going into the sandbox are not the host's to format.
    assert_eq!(check(&posixct(|s| s.strs(&[Some("/dev/stdin")]))), Ok(()));
    // One tzone per value: R would use the first, the check the second.
    let twice = S::v3()
        .dbls_attr(&[1.0], true)
        .attr("tzone", |s| s.strs(&[Some("UTC")]))
        .attr("tzone", |s| s.strs(&[Some("UTC")]))
        .nil()
        .done();
    assert!(malformed_err(check_default(&twice)));
}

#[test]
fn r_made_time_zones() {
    for name in [
        "posixct_utc",
        "posixct_ny",
        "posixct_local",
        "posixct_notz",
        "posixct_rule",
        "posixlt",
        "posixlt_paris",
        "date_int",
        "difftime",
        "data_frame",
    ] {
        let path = format!("{}/tests/fixtures/{name}.bin", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(path).unwrap_or_default();
        assert_eq!(check_default(&bytes), Ok(()), "{name}");
    }
    let (_, long) = fixture!("tz_long");
    assert!(invalid(check_default(long)).contains("is longer than 64 bytes"));
    let (_, path) = fixture!("tz_path");
    assert!(invalid(check_default(path)).contains("'/proc/self/fd/7' names a file"));
    let (_, dots) = fixture!("tz_dotdot");
    assert!(invalid(check_default(dots)).contains("leads out of the time zone database"));
    let (_, lt_path) = fixture!("lt_tzone_path");
    assert!(invalid(check_default(lt_path)).contains("'/etc/passwd' names a file"));
}

#[test]
fn instants_are_numbers() {
    for class in [&["Date"][..], &["POSIXct", "POSIXt"]] {
        let chr = S::v3()
            .strs_attr(&[Some("2024-01-01")], true)
            .class(class)
            .nil()
            .done();
        let msg = invalid(check_default(&chr));
        assert!(msg.contains("stored as character, not as numbers"), "{msg}");
        let int = S::v3().ints_attr(&[1], true).class(class).nil().done();
        assert_eq!(check_default(&int), Ok(()));
    }
}

#[test]
fn difftimes_have_units() {
    let with_units = |body: Body| {
        S::v3()
            .dbls_attr(&[1.0], true)
            .attr("units", body)
            .class(&["difftime"])
            .nil()
            .done()
    };
    // R makes five units; others (the session tests use "cm") print as
    // they are.
    for unit in ["secs", "mins", "hours", "days", "weeks", "cm"] {
        let bytes = S::v3()
            .dbls_attr(&[1.0], true)
            .class(&["difftime"])
            .attr("units", |s| s.strs(&[Some(unit)]))
            .nil()
            .done();
        assert_eq!(check_default(&bytes), Ok(()), "{unit}");
    }
    assert!(invalid(check_default(&with_units(|s| s.strs(&[None])))).contains("units are NA"));
    assert!(invalid(check_default(&with_units(|s| s.ints(&[1])))).contains("no units"));
    assert!(invalid(check_default(&with_units(
        |s| s.strs(&[Some("a"), Some("b")])
    )))
    .contains("no units"));
    let none = S::v3()
        .dbls_attr(&[1.0], true)
        .class(&["hms", "difftime"])
        .nil()
        .done();
    assert_eq!(
        invalid(check_default(&none)),
        "invalid 'hms' value: it has no units (one string)"
    );
    // print.difftime() cat()s its units: an escape sequence there would
    // reach the terminal (here OSC 52, which sets the clipboard).
    let (_, escape) = fixture!("difftime_escape");
    assert!(invalid(check_default(escape)).contains("control characters"));
}

const LT: [&str; 11] = [
    "sec", "min", "hour", "mday", "mon", "year", "wday", "yday", "isdst", "zone", "gmtoff",
];

/// A POSIXlt with `n` components named `names`, component `i` written by
/// `comp(s, i)`.
fn posixlt(n: usize, names: &[&str], comp: impl Fn(S, usize) -> S) -> Vec<u8> {
    let mut s = S::v3().list(n as i32, true);
    for i in 0..n {
        s = comp(s, i);
    }
    let names: Vec<Option<&str>> = names.iter().map(|n| Some(*n)).collect();
    s.attr("names", |s| s.strs(&names))
        .class(&["POSIXlt", "POSIXt"])
        .attr("tzone", |s| s.strs(&[Some("UTC")]))
        .nil()
        .done()
}

fn lt_component(s: S, i: usize) -> S {
    match i {
        0 => s.dbls(&[1.5, 2.0]),
        9 => s.strs(&[Some("UTC"), None]),
        _ => s.ints(&[1, 2]),
    }
}

#[test]
fn posixlt_components() {
    assert_eq!(check_default(&posixlt(11, &LT, lt_component)), Ok(()));
    assert_eq!(check_default(&posixlt(9, &LT[..9], lt_component)), Ok(()));
    let msg = |bytes: Vec<u8>| invalid(check_default(&bytes));
    assert!(msg(posixlt(10, &LT[..10], lt_component)).contains("not a list of 9 or 11"));
    assert!(msg(posixlt(2, &LT[..2], lt_component)).contains("not a list of 9 or 11"));
    let mut swapped = LT;
    swapped.swap(1, 2);
    assert!(msg(posixlt(11, &swapped, lt_component)).contains("not named sec, min, hour"));
    let ragged = posixlt(11, &LT, |s, i| {
        if i == 4 {
            s.ints(&[1])
        } else {
            lt_component(s, i)
        }
    });
    assert!(msg(ragged).contains("'sec' has 2, 'mon' has 1"));
    let empty_comp = posixlt(11, &LT, |s, i| {
        if i == 1 {
            s.ints(&[])
        } else {
            lt_component(s, i)
        }
    });
    assert!(msg(empty_comp).contains("differ in length"));
    let chr_hour = posixlt(11, &LT, |s, i| {
        if i == 2 {
            s.strs(&[Some("1"), Some("2")])
        } else {
            lt_component(s, i)
        }
    });
    assert!(msg(chr_hour).contains("component 'hour' is character"));
    let list_zone = posixlt(11, &LT, |s, i| {
        if i == 9 {
            s.list(2, false).nil().nil()
        } else {
            lt_component(s, i)
        }
    });
    assert!(msg(list_zone).contains("component 'zone' is list"));
    let long_zone = posixlt(11, &LT, |s, i| {
        if i == 9 {
            s.strs(&[Some("UTC"), Some(&"A".repeat(300))])
        } else {
            lt_component(s, i)
        }
    });
    assert!(msg(long_zone).contains("component 'zone': time zone 'AAAA"));
    let (_, r_made) = fixture!("lt_zone_long");
    assert!(invalid(check_default(r_made)).contains("longer than 64 bytes"));
    let (_, r_ragged) = fixture!("lt_ragged");
    assert!(invalid(check_default(r_ragged)).contains("differ in length"));
    // Not a list at all.
    let atomic = S::v3()
        .dbls_attr(&[1.0], true)
        .class(&["POSIXlt", "POSIXt"])
        .nil()
        .done();
    assert!(msg(atomic).contains("not a list of 9 or 11"));
}

#[test]
fn posixlt_rows_count_in_a_data_frame() {
    // A data frame whose POSIXlt column has 2 rows, as its row names.
    let df = |rows: i32| {
        let mut s = S::v3().list(1, true).list(11, true);
        for i in 0..11 {
            s = lt_component(s, i);
        }
        let names: Vec<Option<&str>> = LT.iter().map(|n| Some(*n)).collect();
        s.attr("names", |s| s.strs(&names))
            .class(&["POSIXlt", "POSIXt"])
            .nil()
            .attr("names", |s| s.strs(&[Some("t")]))
            .class(&["data.frame"])
            .attr("row.names", |s| s.ints(&[NA_INTEGER, -rows]))
            .nil()
            .done()
    };
    assert_eq!(check_default(&df(2)), Ok(()));
    assert!(invalid(check_default(&df(11))).contains("say 11 rows but its columns have 2"));
}
