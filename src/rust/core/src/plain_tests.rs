use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn ne<T: Copy, const N: usize>(xs: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    xs.iter().flat_map(|x| f(*x)).collect()
}

// Made by R 4.2.2 on x86_64 in a UTF-8 locale: serialize(NULL, NULL,
// xdr = FALSE), and the lists below.
const NULL: &str = "420a030000000202040000050300050000005554462d38fe000000";

fn list<'a>(
    names: &[Str<'a>],
    items: impl Into<Vec<Plain<'a>>>,
    max: usize,
) -> Result<Vec<u8>, WriteError> {
    let value = Plain::List {
        names: Some(names.to_vec()),
        items: items.into(),
    };
    serialize(&hex(NULL), &value, max)
}

fn ascii(s: &str) -> Str<'_> {
    Some((s.as_bytes(), Encoding::Native))
}

#[test]
fn a_reply_is_written_as_r_serializes_it() {
    // list(value = 2, visible = TRUE, console = "[1] 2\n",
    //      plots_omitted = 0L, refused = NULL, value_class = NULL)
    let r = "420a030000000202040000050300050000005554462d3813020000060000000e0000000100000000000000000000400a0000000100000001000000100000000100000009000400060000005b315d20320a0d0000000100000000000000fe000000fe000000020400000100000009000400050000006e616d65731000000006000000090004000500000076616c7565090004000700000076697369626c650900040007000000636f6e736f6c65090004000d000000706c6f74735f6f6d6974746564090004000700000072656675736564090004000b00000076616c75655f636c617373fe000000";
    let two = 2f64.to_ne_bytes();
    let yes = 1i32.to_ne_bytes();
    let zero = 0i32.to_ne_bytes();
    let names: Vec<Str<'_>> = [
        "value",
        "visible",
        "console",
        "plots_omitted",
        "refused",
        "value_class",
    ]
    .into_iter()
    .map(ascii)
    .collect();
    let items = [
        Plain::Atomic {
            sexptype: REALSXP,
            len: 1,
            data: &two,
        },
        Plain::Atomic {
            sexptype: LGLSXP,
            len: 1,
            data: &yes,
        },
        Plain::Character(vec![ascii("[1] 2\n")]),
        Plain::Atomic {
            sexptype: INTSXP,
            len: 1,
            data: &zero,
        },
        Plain::Null,
        Plain::Null,
    ];
    assert_eq!(list(&names, items, 1 << 20).unwrap(), hex(r));
}

#[test]
fn every_plain_type_and_encoding_is_written_as_r_serializes_it() {
    // list(a = NULL, b = c(TRUE, NA, FALSE), c = c(1L, NA, 3L),
    //      d = c(1.5, NA, -Inf), e = complex(real = 1, imaginary = -2),
    //      f = as.raw(c(0, 255)), g = c("a", NA, "été", <"café" in
    //      latin1>, <"x\xff" as bytes>, ""), h = character(),
    //      i = logical())
    let r = "420a030000000202040000050300050000005554462d381302000009000000fe0000000a000000030000000100000000000080000000000d000000030000000100000000000080030000000e00000003000000000000000000f83fa20700000000f07f000000000000f0ff0f00000001000000000000000000f03f00000000000000c0180000000200000000ff100000000600000009000400010000006109000000ffffffff0980000005000000c3a974c3a90940000004000000636166e9092000000200000078ff090004000000000010000000000000000a00000000000000020400000100000009000400050000006e616d65731000000009000000090004000100000061090004000100000062090004000100000063090004000100000064090004000100000065090004000100000066090004000100000067090004000100000068090004000100000069fe000000";
    let na_int = i32::MIN;
    let lgl = ne(&[1, na_int, 0], i32::to_ne_bytes);
    let int = ne(&[1, na_int, 3], i32::to_ne_bytes);
    // R's NA_real_ is a NaN with a payload of 1954.
    let dbl = ne(
        &[
            1.5,
            f64::from_bits(0x7ff0_0000_0000_07a2),
            f64::NEG_INFINITY,
        ],
        f64::to_ne_bytes,
    );
    let cplx = ne(&[1.0, -2.0], f64::to_ne_bytes);
    let raw = [0u8, 255];
    let names: Vec<Str<'_>> = "abcdefghi"
        .split("")
        .filter(|s| !s.is_empty())
        .map(ascii)
        .collect();
    let items = [
        Plain::Null,
        Plain::Atomic {
            sexptype: LGLSXP,
            len: 3,
            data: &lgl,
        },
        Plain::Atomic {
            sexptype: INTSXP,
            len: 3,
            data: &int,
        },
        Plain::Atomic {
            sexptype: REALSXP,
            len: 3,
            data: &dbl,
        },
        Plain::Atomic {
            sexptype: CPLXSXP,
            len: 1,
            data: &cplx,
        },
        Plain::Atomic {
            sexptype: RAWSXP,
            len: 2,
            data: &raw,
        },
        Plain::Character(vec![
            ascii("a"),
            None,
            Some(("\u{e9}t\u{e9}".as_bytes(), Encoding::Utf8)),
            Some((b"caf\xe9", Encoding::Latin1)),
            Some((b"x\xff", Encoding::Bytes)),
            // An empty string is ASCII whatever it was declared.
            Some((b"", Encoding::Utf8)),
        ]),
        Plain::Character(vec![]),
        Plain::Atomic {
            sexptype: LGLSXP,
            len: 0,
            data: &[],
        },
    ];
    assert_eq!(list(&names, items, 1 << 20).unwrap(), hex(r));
}

#[test]
fn a_name_that_is_not_ascii_keeps_its_encoding() {
    // x <- list(1); names(x) <- "é"
    let r = "420a030000000202040000050300050000005554462d3813020000010000000e00000001000000000000000000f03f020400000100000009000400050000006e616d657310000000010000000980000002000000c3a9fe000000";
    let one = 1f64.to_ne_bytes();
    let names = [Some(("\u{e9}".as_bytes(), Encoding::Utf8))];
    let items = [Plain::Atomic {
        sexptype: REALSXP,
        len: 1,
        data: &one,
    }];
    assert_eq!(list(&names, items, 1 << 20).unwrap(), hex(r));
}

#[test]
fn nested_lists_are_written_as_r_serializes_them() {
    // list(id = 1L, name = "f", args = list(x = 1, y = list())): the
    // second `names` is a reference to the first.
    let r = "420a030000000202040000050300050000005554462d3813020000030000000d0000000100000001000000100000000100000009000400010000006613020000020000000e00000001000000000000000000f03f1300000000000000020400000100000009000400050000006e616d65731000000002000000090004000100000078090004000100000079fe00000002040000ff01000010000000030000000900040002000000696409000400040000006e616d65090004000400000061726773fe000000";
    let id = 1i32.to_ne_bytes();
    let one = 1f64.to_ne_bytes();
    let args = Plain::List {
        names: Some(vec![ascii("x"), ascii("y")]),
        items: vec![
            Plain::Atomic {
                sexptype: REALSXP,
                len: 1,
                data: &one,
            },
            Plain::List {
                names: None,
                items: vec![],
            },
        ],
    };
    let items = vec![
        Plain::Atomic {
            sexptype: INTSXP,
            len: 1,
            data: &id,
        },
        Plain::Character(vec![ascii("f")]),
        args,
    ];
    assert_eq!(
        list(&[ascii("id"), ascii("name"), ascii("args")], items, 1 << 20).unwrap(),
        hex(r)
    );
    // list(list(), list(1, NULL)): lists without names.
    let r = "420a030000000202040000050300050000005554462d381300000002000000130000000000000013000000020000000e00000001000000000000000000f03ffe000000";
    let value = Plain::List {
        names: None,
        items: vec![
            Plain::List {
                names: None,
                items: vec![],
            },
            Plain::List {
                names: None,
                items: vec![
                    Plain::Atomic {
                        sexptype: REALSXP,
                        len: 1,
                        data: &one,
                    },
                    Plain::Null,
                ],
            },
        ],
    };
    assert_eq!(serialize(&hex(NULL), &value, 1 << 20).unwrap(), hex(r));
}

#[test]
fn what_cannot_be_written_is_refused() {
    let null = hex(NULL);
    let one = 1f64.to_ne_bytes();
    let x = vec![Plain::Atomic {
        sexptype: REALSXP,
        len: 1,
        data: &one,
    }];
    let n = [ascii("x")];
    assert!(list(&n, x.clone(), 1 << 20).is_ok());
    // A header that is not R's NULL: XDR, version 2, another item, cut.
    let mut xdr = null.clone();
    xdr[0] = b'X';
    let mut v2 = null.clone();
    v2[2] = 2;
    let mut other = null.clone();
    other[23] = 0;
    for bad in [xdr, v2, other, null[..20].to_vec(), vec![]] {
        assert_eq!(
            serialize(&bad, &Plain::Null, 1 << 20),
            Err(WriteError::Header)
        );
    }
    assert_eq!(list(&[], x.clone(), 1 << 20), Err(WriteError::Names));
    // Bytes that do not match the type and length, an unknown type.
    let short = vec![Plain::Atomic {
        sexptype: REALSXP,
        len: 2,
        data: &one,
    }];
    assert_eq!(list(&n, short, 1 << 20), Err(WriteError::Vector));
    let odd = vec![Plain::Atomic {
        sexptype: 19,
        len: 1,
        data: &one,
    }];
    assert_eq!(list(&n, odd, 1 << 20), Err(WriteError::Vector));
    // Over the size limit, by one byte.
    let size = list(&n, x.clone(), 1 << 20).unwrap().len();
    assert!(list(&n, x.clone(), size).is_ok());
    assert_eq!(list(&n, x, size - 1), Err(WriteError::TooLarge(size - 1)));
}

fn reply<'a>(fields: Vec<(&'a str, Plain<'a>)>) -> Vec<u8> {
    let (names, items): (Vec<_>, Vec<_>) = fields.into_iter().map(|(n, p)| (ascii(n), p)).unzip();
    let value = Plain::List {
        names: Some(names),
        items,
    };
    serialize(&hex(NULL), &value, 1 << 20).unwrap()
}

#[test]
fn a_plain_result_reads_back() {
    // R's own bytes (a_reply_is_written_as_r_serializes_it).
    let r = hex("420a030000000202040000050300050000005554462d3813020000060000000e0000000100000000000000000000400a0000000100000001000000100000000100000009000400060000005b315d20320a0d0000000100000000000000fe000000fe000000020400000100000009000400050000006e616d65731000000006000000090004000500000076616c7565090004000700000076697369626c650900040007000000636f6e736f6c65090004000d000000706c6f74735f6f6d6974746564090004000700000072656675736564090004000b00000076616c75655f636c617373fe000000");
    let two = 2f64.to_ne_bytes();
    assert_eq!(
        read_reply(&hex(NULL), &r),
        Some(Reply {
            value: Plain::Atomic {
                sexptype: REALSXP,
                len: 1,
                data: &two
            },
            visible: true,
            console: Some((b"[1] 2\n", Encoding::Native)),
        })
    );
    // An invisible value, strings, no transcript.
    let no = 0i32.to_ne_bytes();
    let zero = 0i32.to_ne_bytes();
    let bytes = reply(vec![
        (
            "value",
            Plain::Character(vec![Some(("\u{e9}".as_bytes(), Encoding::Utf8)), None]),
        ),
        (
            "visible",
            Plain::Atomic {
                sexptype: LGLSXP,
                len: 1,
                data: &no,
            },
        ),
        ("console", Plain::Null),
        (
            "plots_omitted",
            Plain::Atomic {
                sexptype: INTSXP,
                len: 1,
                data: &zero,
            },
        ),
    ]);
    let got = read_reply(&hex(NULL), &bytes).unwrap();
    assert_eq!(
        got.value,
        Plain::Character(vec![Some(("\u{e9}".as_bytes(), Encoding::Utf8)), None])
    );
    assert!(!got.visible);
    assert_eq!(got.console, None);
}

#[test]
fn anything_but_a_plain_result_with_a_plain_value_is_left_to_r() {
    let null = hex(NULL);
    let one = 1f64.to_ne_bytes();
    let yes = 1i32.to_ne_bytes();
    let zero = 0i32.to_ne_bytes();
    let base = || {
        vec![
            (
                "value",
                Plain::Atomic {
                    sexptype: REALSXP,
                    len: 1,
                    data: &one,
                },
            ),
            (
                "visible",
                Plain::Atomic {
                    sexptype: LGLSXP,
                    len: 1,
                    data: &yes,
                },
            ),
            ("console", Plain::Character(vec![ascii("x")])),
            (
                "plots_omitted",
                Plain::Atomic {
                    sexptype: INTSXP,
                    len: 1,
                    data: &zero,
                },
            ),
        ]
    };
    assert!(read_reply(&null, &reply(base())).is_some());
    // A list as the value, a refusal, images left out, no `visible`.
    let mut list_value = base();
    list_value[0].1 = Plain::List {
        names: None,
        items: vec![],
    };
    let mut refused = base();
    refused.push(("refused", Plain::Character(vec![ascii("why")])));
    let mut omitted = base();
    omitted[3].1 = Plain::Atomic {
        sexptype: INTSXP,
        len: 1,
        data: &yes,
    };
    let mut invisible = base();
    invisible.remove(1);
    for fields in [list_value, refused, omitted, invisible] {
        assert_eq!(read_reply(&null, &reply(fields)), None);
    }
    // A value with attributes: the attribute bit set on its flags.
    let mut attr = reply(base());
    let at = attr
        .windows(4)
        .position(|w| w == REALSXP.to_ne_bytes())
        .unwrap();
    attr[at + 1] = 2;
    assert_eq!(read_reply(&null, &attr), None);
    // Another header (R's version), cut short, a byte too many.
    let mut other = reply(base());
    other[6] ^= 1;
    assert_eq!(read_reply(&null, &other), None);
    let whole = reply(base());
    for cut in [0, 10, 30, whole.len() - 1] {
        assert_eq!(read_reply(&null, &whole[..cut]), None);
    }
    let mut long = whole.clone();
    long.push(0);
    assert_eq!(read_reply(&null, &long), None);
    // A transcript that is not one string is none.
    let mut two = base();
    two[2].1 = Plain::Character(vec![ascii("a"), ascii("b")]);
    assert_eq!(read_reply(&null, &reply(two)).unwrap().console, None);
    let mut na = base();
    na[2].1 = Plain::Character(vec![None]);
    assert_eq!(read_reply(&null, &reply(na)).unwrap().console, None);
}

fn call_bytes<'a>(name: Str<'a>, args: Plain<'a>) -> Vec<u8> {
    let id = 1i32.to_ne_bytes();
    let items = vec![
        Plain::Atomic {
            sexptype: INTSXP,
            len: 1,
            data: &id,
        },
        Plain::Character(vec![name]),
        args,
    ];
    list(&[ascii("id"), ascii("name"), ascii("args")], items, 1 << 20).unwrap()
}

fn args<'a>(fields: Vec<(&'a str, Plain<'a>)>) -> Plain<'a> {
    let (names, items) = fields.into_iter().map(|(n, p)| (ascii(n), p)).unzip();
    Plain::List {
        names: Some(names),
        items,
    }
}

#[test]
fn a_tool_call_reads_back() {
    // R's own bytes (nested_lists_are_written_as_r_serializes_them): the
    // second `names` is a reference to the first.
    let r = hex("420a030000000202040000050300050000005554462d3813020000030000000d0000000100000001000000100000000100000009000400010000006613020000020000000e00000001000000000000000000f03f1300000000000000020400000100000009000400050000006e616d65731000000002000000090004000100000078090004000100000079fe00000002040000ff01000010000000030000000900040002000000696409000400040000006e616d65090004000400000061726773fe000000");
    let one = 1f64.to_ne_bytes();
    let want = args(vec![
        (
            "x",
            Plain::Atomic {
                sexptype: REALSXP,
                len: 1,
                data: &one,
            },
        ),
        (
            "y",
            Plain::List {
                names: None,
                items: vec![],
            },
        ),
    ]);
    assert_eq!(
        read_call(&hex(NULL), &r),
        Some(Call {
            name: b"f",
            args: want
        })
    );
    // Nested and named lists, strings in each encoding, NA, NULL, and no
    // arguments at all, read back as written.
    let latin1 = [0x63u8, 0x61, 0x66, 0xe9];
    let nested = args(vec![
        (
            "a",
            Plain::Character(vec![
                Some(("\u{65e5}".as_bytes(), Encoding::Utf8)),
                Some((&latin1, Encoding::Latin1)),
                None,
            ]),
        ),
        (
            "b",
            args(vec![
                ("c", Plain::Null),
                ("d", args(vec![("e", Plain::Character(vec![ascii("x")]))])),
            ]),
        ),
    ]);
    let empty = Plain::List {
        names: None,
        items: vec![],
    };
    for a in [nested, empty] {
        let bytes = call_bytes(ascii("tool"), a.clone());
        assert_eq!(
            read_call(&hex(NULL), &bytes),
            Some(Call {
                name: b"tool",
                args: a
            })
        );
    }
}

#[test]
fn a_tool_call_that_is_not_plain_and_simple_is_left_to_r() {
    let null = hex(NULL);
    let one = 1f64.to_ne_bytes();
    let x = || Plain::Atomic {
        sexptype: REALSXP,
        len: 1,
        data: &one,
    };
    let ok = |p: &[u8]| read_call(&null, p).is_some();
    assert!(ok(&call_bytes(ascii("f"), args(vec![("x", x())]))));
    // Names that are not ASCII, empty, NA; the same argument twice;
    // arguments without names.
    let e_acute = Some(("\u{e9}".as_bytes(), Encoding::Utf8));
    for name in [e_acute, ascii(""), None] {
        assert!(!ok(&call_bytes(name, args(vec![("x", x())]))));
        let odd = Plain::List {
            names: Some(vec![name]),
            items: vec![x()],
        };
        assert!(!ok(&call_bytes(ascii("f"), odd)));
    }
    assert!(!ok(&call_bytes(
        ascii("f"),
        args(vec![("x", x()), ("x", x())])
    )));
    let unnamed = Plain::List {
        names: None,
        items: vec![x()],
    };
    assert!(!ok(&call_bytes(ascii("f"), unnamed)));
    // More arguments than any tool takes.
    let many: Vec<String> = (0..65).map(|i| format!("a{i}")).collect();
    let wide = args(many.iter().map(|n| (n.as_str(), Plain::Null)).collect());
    assert!(!ok(&call_bytes(ascii("f"), wide)));
    // A NUL in a string, at any depth.
    let nul = Plain::Character(vec![Some((b"a\0b", Encoding::Native))]);
    assert!(!ok(&call_bytes(ascii("f"), args(vec![("x", nul.clone())]))));
    let deep_nul = args(vec![("x", args(vec![("y", nul)]))]);
    assert!(!ok(&call_bytes(ascii("f"), deep_nul)));
    // Arguments that are not a list; no name.
    assert!(!ok(&call_bytes(ascii("f"), x())));
    let no_name = list(
        &[ascii("id"), ascii("args")],
        vec![x(), args(vec![("x", x())])],
        1 << 20,
    )
    .unwrap();
    assert!(!ok(&no_name));
    // Lists nested deeper than MAX_DEPTH (the call and its arguments are
    // two levels).
    let nest = |levels: usize| {
        (0..levels).fold(x(), |inner, _| Plain::List {
            names: None,
            items: vec![inner],
        })
    };
    assert!(ok(&call_bytes(
        ascii("f"),
        args(vec![("x", nest(MAX_DEPTH - 2))])
    )));
    assert!(!ok(&call_bytes(
        ascii("f"),
        args(vec![("x", nest(MAX_DEPTH - 1))])
    )));
    // Cut short, a byte too many, another header.
    let whole = call_bytes(ascii("f"), args(vec![("x", x())]));
    for cut in [0, 20, 40, whole.len() - 1] {
        assert!(!ok(&whole[..cut]));
    }
    let mut long = whole.clone();
    long.push(0);
    assert!(!ok(&long));
    let mut other = whole.clone();
    other[6] ^= 1;
    assert!(!ok(&other));
    // The object bit on a list; the symbol `names` written out twice
    // instead of referred to, and a reference before it was written.
    let ref_names = (REFSXP | 1 << 8).to_ne_bytes();
    let sym = SYMSXP.to_ne_bytes();
    let at = whole
        .windows(4)
        .position(|w| w == ref_names)
        .expect("a reference to `names`");
    // The symbol: its flags, then its name's (flags, length, "names").
    let first_sym = whole.windows(5).position(|w| w == b"names").unwrap() - 12;
    let symbol = &whole[first_sym..first_sym + 17];
    assert_eq!(&symbol[..4], sym);
    let mut twice = whole.clone();
    twice.splice(at..at + 4, symbol.iter().copied());
    let mut early = whole.clone();
    early[first_sym..first_sym + 4].copy_from_slice(&ref_names);
    let mut object = whole.clone();
    let top = header_len(&null).unwrap();
    object[top + 1] |= 1;
    for bytes in [twice, early, object] {
        assert!(!ok(&bytes));
    }
}
