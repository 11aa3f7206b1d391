//! Property tests for the serialization checker: hostile bytes never make it
//! panic or hang, and streams it accepts are exactly self-delimiting.

use proptest::collection::vec;
use proptest::prelude::*;
use securer_core::rvalue::{check_with, CheckLimits, ValueError, MAX_ZONE_BYTES};
use std::time::{Duration, Instant};

/// Streams R 4.2 wrote that the checker accepts.
const ACCEPTED: &[&[u8]] = &[
    include_bytes!("fixtures/null.bin"),
    include_bytes!("fixtures/lgl.bin"),
    include_bytes!("fixtures/int.bin"),
    include_bytes!("fixtures/dbl.bin"),
    include_bytes!("fixtures/cplx.bin"),
    include_bytes!("fixtures/chr.bin"),
    include_bytes!("fixtures/raw.bin"),
    include_bytes!("fixtures/na_all.bin"),
    include_bytes!("fixtures/named_list.bin"),
    include_bytes!("fixtures/matrix_dimnames.bin"),
    include_bytes!("fixtures/array3d.bin"),
    include_bytes!("fixtures/dim_altrep.bin"),
    include_bytes!("fixtures/table.bin"),
    include_bytes!("fixtures/data_frame.bin"),
    include_bytes!("fixtures/data_frame_xdr.bin"),
    include_bytes!("fixtures/factor.bin"),
    include_bytes!("fixtures/posixlt.bin"),
    include_bytes!("fixtures/ts.bin"),
    include_bytes!("fixtures/attrs.bin"),
    include_bytes!("fixtures/intseq.bin"),
    include_bytes!("fixtures/realseq.bin"),
    include_bytes!("fixtures/deferred_string.bin"),
    include_bytes!("fixtures/wrap_integer.bin"),
    include_bytes!("fixtures/wrap_real_decr.bin"),
    include_bytes!("fixtures/wrap_compact.bin"),
    include_bytes!("fixtures/wrap_string.bin"),
    include_bytes!("fixtures/v2_list.bin"),
    include_bytes!("fixtures/v2_xdr.bin"),
    include_bytes!("fixtures/symbol_tags.bin"),
];

/// Streams R 4.2 wrote whose classes have rules; they cross with the
/// defaults (rules on), and their mutations exercise the rules.
const WITH_CLASSES: &[&[u8]] = &[
    include_bytes!("fixtures/data_frame.bin"),
    include_bytes!("fixtures/df_compact.bin"),
    include_bytes!("fixtures/df_nested.bin"),
    include_bytes!("fixtures/factor.bin"),
    include_bytes!("fixtures/posixlt_paris.bin"),
    include_bytes!("fixtures/posixct_ny.bin"),
    include_bytes!("fixtures/ts_monthly.bin"),
    include_bytes!("fixtures/mts.bin"),
    include_bytes!("fixtures/ftable.bin"),
    include_bytes!("fixtures/difftime.bin"),
    include_bytes!("fixtures/versions.bin"),
    include_bytes!("fixtures/htest.bin"),
    include_bytes!("fixtures/density.bin"),
    include_bytes!("fixtures/condition.bin"),
    include_bytes!("fixtures/tibble.bin"),
];

/// Streams the checker refuses; mutations of them must not slip through
/// into a panic either.
const REFUSED: &[&[u8]] = &[
    include_bytes!("fixtures/closure.bin"),
    include_bytes!("fixtures/bytecode.bin"),
    include_bytes!("fixtures/env.bin"),
    include_bytes!("fixtures/formula.bin"),
    include_bytes!("fixtures/s4.bin"),
    include_bytes!("fixtures/s4_numeric.bin"),
    include_bytes!("fixtures/list_with_closure.bin"),
    include_bytes!("fixtures/extptr.bin"),
];

/// Version-3 native header as R 4.2.2 writes it.
const V3_LE: &[u8] = b"B\n\x03\x00\x00\x00\x02\x02\x04\x00\x00\x05\x03\x00\x05\x00\x00\x00UTF-8";
/// Version-2 XDR header.
const V2_XDR: &[u8] = b"X\n\x00\x00\x00\x02\x00\x04\x02\x02\x00\x02\x03\x00";

/// Generous bound: a check takes microseconds to milliseconds.
const TIME_LIMIT: Duration = Duration::from_secs(2);

/// Structure is what these properties are about: any S3 class may pass.
fn any_class() -> CheckLimits {
    CheckLimits {
        allowed_classes: None,
        ..CheckLimits::default()
    }
}

fn check(bytes: &[u8]) -> Result<(), ValueError> {
    check_with(bytes, &any_class())
}

fn timed_with(bytes: &[u8], limits: &CheckLimits) -> Result<(), ValueError> {
    let start = Instant::now();
    let result = check_with(bytes, limits);
    let elapsed = start.elapsed();
    assert!(elapsed < TIME_LIMIT, "check took {elapsed:?}");
    result
}

fn timed(bytes: &[u8]) -> Result<(), ValueError> {
    timed_with(bytes, &any_class())
}

/// An accepted stream is self-delimiting: every proper prefix is
/// truncated and any extra byte is trailing garbage.
fn assert_self_delimiting(bytes: &[u8], cut: usize) {
    if !bytes.is_empty() {
        let cut = cut % bytes.len();
        assert_eq!(
            check(&bytes[..cut]),
            Err(ValueError::Truncated),
            "cut at {cut}"
        );
    }
    let mut longer = bytes.to_vec();
    longer.push(0xfe);
    assert_eq!(check(&longer), Err(ValueError::TrailingBytes(1)));
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Set { at: usize, byte: u8 },
    Word { at: usize, word: i32 },
    Truncate { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, len: usize },
    Duplicate { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (any::<usize>(), word()).prop_map(|(at, word)| Mutation::Word { at, word }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..32).prop_map(|(at, len)| Mutation::Remove { at, len }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    let pos = |at: usize| if n == 0 { 0 } else { at % n };
    match m {
        Mutation::Flip { at, mask } => {
            if n > 0 {
                bytes[pos(*at)] ^= mask;
            }
        }
        Mutation::Set { at, byte } => {
            if n > 0 {
                bytes[pos(*at)] = *byte;
            }
        }
        Mutation::Word { at, word } => {
            // Word-aligned after the 2-byte format mark, as items are.
            if n >= 6 {
                let slots = (n - 2) / 4;
                let p = 2 + (at % slots) * 4;
                let le = bytes.first() == Some(&b'B');
                let w = if le {
                    word.to_le_bytes()
                } else {
                    word.to_be_bytes()
                };
                bytes[p..p + 4].copy_from_slice(&w);
            }
        }
        Mutation::Truncate { at } => bytes.truncate(pos(*at)),
        Mutation::Insert { at, bytes: ins } => {
            let p = pos(*at);
            bytes.splice(p..p, ins.iter().copied());
        }
        Mutation::Remove { at, len } => {
            let p = pos(*at);
            let end = (p + len).min(n);
            bytes.drain(p..end);
        }
        Mutation::Duplicate { at, len } => {
            let p = pos(*at);
            let end = (p + len).min(n);
            let copy: Vec<u8> = bytes[p..end].to_vec();
            bytes.splice(end..end, copy);
        }
    }
}

/// Words that steer the checker into its interesting paths: packed flags
/// for every type code, small and huge lengths, string headers.
fn word() -> impl Strategy<Value = i32> {
    prop_oneof![
        (
            any::<u8>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            0i32..128
        )
            .prop_map(|(ty, obj, attr, tag, levels)| {
                i32::from(ty)
                    | (i32::from(obj) << 8)
                    | (i32::from(attr) << 9)
                    | (i32::from(tag) << 10)
                    | (levels << 12)
            }),
        prop::sample::select(vec![
            0,
            1,
            2,
            9,
            10,
            13,
            14,
            15,
            16,
            19,
            24,
            238,
            254,
            255,
            0x1ff,
            0x2ff,
            0x402,
            0x0004_0009,
            0x0002_0009,
        ]),
        -3i32..12,
        prop::sample::select(vec![i32::MIN, i32::MAX, 65536, 65537, 0x4000_0000]),
        any::<i32>(),
    ]
}

/// A plain value tree, encoded the way R would write it.
#[derive(Debug, Clone)]
enum Val {
    Null,
    Lgl(Vec<i32>),
    Int(Vec<i32>),
    Dbl(Vec<f64>),
    Cplx(Vec<(f64, f64)>),
    Str(Vec<Option<String>>),
    Raw(Vec<u8>),
    List(Vec<Val>, Vec<(String, Val)>),
    /// An atomic vector with (non-special) attributes.
    Attr(Box<Val>, Vec<(String, Val)>),
}

fn leaf() -> impl Strategy<Value = Val> {
    prop_oneof![
        Just(Val::Null),
        vec(prop::sample::select(vec![0, 1, i32::MIN]), 0..5).prop_map(Val::Lgl),
        vec(any::<i32>(), 0..5).prop_map(Val::Int),
        vec(any::<f64>(), 0..5).prop_map(Val::Dbl),
        vec((any::<f64>(), any::<f64>()), 0..3).prop_map(Val::Cplx),
        vec(prop::option::of("[a-zé]{0,6}"), 0..5).prop_map(Val::Str),
        vec(any::<u8>(), 0..9).prop_map(Val::Raw),
    ]
}

fn attr_name() -> impl Strategy<Value = String> {
    // Never one of the attributes with extra rules (names, dim, ...).
    "[a-z]{1,3}".prop_map(|s| format!("x_{s}"))
}

fn value() -> impl Strategy<Value = Val> {
    leaf().prop_recursive(8, 64, 6, |inner| {
        prop_oneof![
            (
                vec(inner.clone(), 0..6),
                vec((attr_name(), inner.clone()), 0..3)
            )
                .prop_map(|(elems, attrs)| Val::List(elems, attrs)),
            (leaf(), vec((attr_name(), inner), 1..3)).prop_filter_map(
                "NULL has no attributes",
                |(v, attrs)| match v {
                    Val::Null => None,
                    v => Some(Val::Attr(Box::new(v), attrs)),
                }
            ),
        ]
    })
}

struct Enc {
    out: Vec<u8>,
    big: bool,
    /// Symbols written so far (R's reference table), by name.
    syms: Vec<String>,
}

impl Enc {
    fn int(&mut self, v: i32) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
    }

    fn dbl(&mut self, v: f64) {
        let b = if self.big {
            v.to_bits().to_be_bytes()
        } else {
            v.to_bits().to_le_bytes()
        };
        self.out.extend_from_slice(&b);
    }

    fn flags(&mut self, ty: i32, attr: bool) {
        self.int(ty | (i32::from(attr) << 9));
    }

    fn chars(&mut self, s: &str) {
        self.int(0x0000_8009);
        self.int(s.len() as i32);
        self.out.extend_from_slice(s.as_bytes());
    }

    fn sym(&mut self, name: &str) {
        if let Some(i) = self.syms.iter().position(|s| s == name) {
            self.int((((i + 1) as i32) << 8) | 255);
        } else {
            self.int(1);
            self.chars(name);
            self.syms.push(name.to_string());
        }
    }

    fn attrs(&mut self, attrs: &[(String, Val)]) {
        for (name, v) in attrs {
            self.int(2 | (1 << 10));
            self.sym(name);
            self.val(v);
        }
        self.int(254);
    }

    fn val(&mut self, v: &Val) {
        self.val_attr(v, &[]);
    }

    fn val_attr(&mut self, v: &Val, attrs: &[(String, Val)]) {
        let has = !attrs.is_empty();
        match v {
            Val::Null => self.int(254),
            Val::Lgl(x) | Val::Int(x) => {
                self.flags(if matches!(v, Val::Lgl(_)) { 10 } else { 13 }, has);
                self.int(x.len() as i32);
                x.iter().for_each(|&i| self.int(i));
            }
            Val::Dbl(x) => {
                self.flags(14, has);
                self.int(x.len() as i32);
                x.iter().for_each(|&d| self.dbl(d));
            }
            Val::Cplx(x) => {
                self.flags(15, has);
                self.int(x.len() as i32);
                for &(re, im) in x {
                    self.dbl(re);
                    self.dbl(im);
                }
            }
            Val::Str(x) => {
                self.flags(16, has);
                self.int(x.len() as i32);
                for s in x {
                    match s {
                        Some(s) => self.chars(s),
                        None => {
                            self.int(9);
                            self.int(-1);
                        }
                    }
                }
            }
            Val::Raw(x) => {
                self.flags(24, has);
                self.int(x.len() as i32);
                self.out.extend_from_slice(x);
            }
            Val::List(elems, own) => {
                let all: Vec<(String, Val)> = own.iter().chain(attrs).cloned().collect();
                self.flags(19, !all.is_empty());
                self.int(elems.len() as i32);
                elems.iter().for_each(|e| self.val(e));
                if !all.is_empty() {
                    self.attrs(&all);
                }
                return;
            }
            Val::Attr(inner, own) => {
                let all: Vec<(String, Val)> = own.iter().chain(attrs).cloned().collect();
                self.val_attr(inner, &all);
                return;
            }
        }
        if has {
            self.attrs(attrs);
        }
    }
}

fn encode(v: &Val, big: bool) -> Vec<u8> {
    let mut e = Enc {
        out: if big { V2_XDR.to_vec() } else { V3_LE.to_vec() },
        big,
        syms: Vec::new(),
    };
    e.val(v);
    e.out
}

/// Depth the checker counts for `v` (see `Pending` in rvalue/walk.rs), as
/// R's reader recurses: a non-empty list's elements are one level down,
/// and the n-th attribute's value n levels down.
fn frames(v: &Val) -> usize {
    fn attrs_depth(attrs: &[(String, Val)]) -> usize {
        attrs
            .iter()
            .enumerate()
            .map(|(i, (_, v))| i + 1 + frames(v))
            .max()
            .unwrap_or(0)
    }
    match v {
        Val::List(elems, attrs) => {
            let e = if elems.is_empty() {
                0
            } else {
                1 + elems.iter().map(frames).max().unwrap_or(0)
            };
            e.max(attrs_depth(attrs))
        }
        Val::Attr(_, attrs) => attrs_depth(attrs),
        _ => 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..4096)) {
        let _ = timed(&bytes);
    }

    #[test]
    fn arbitrary_bodies_after_a_valid_header_never_panic(
        xdr in any::<bool>(),
        body in vec(any::<u8>(), 0..2048),
    ) {
        let mut bytes = if xdr { V2_XDR.to_vec() } else { V3_LE.to_vec() };
        bytes.extend_from_slice(&body);
        let _ = timed(&bytes);
    }

    #[test]
    fn streams_of_interesting_words_never_panic(words in vec(word(), 0..256)) {
        let mut bytes = V3_LE.to_vec();
        for w in &words {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        if timed(&bytes).is_ok() {
            assert_self_delimiting(&bytes, words.len() * 7);
        }
    }

    #[test]
    fn mutated_valid_streams_never_panic(
        idx in 0..ACCEPTED.len(),
        mutations in vec(mutation(), 1..6),
        cut in any::<usize>(),
    ) {
        let mut bytes = ACCEPTED[idx].to_vec();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if timed(&bytes).is_ok() {
            assert_self_delimiting(&bytes, cut);
        }
    }

    #[test]
    fn mutated_refused_streams_never_panic(
        idx in 0..REFUSED.len(),
        mutations in vec(mutation(), 1..6),
    ) {
        let mut bytes = REFUSED[idx].to_vec();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let _ = timed(&bytes);
    }

    #[test]
    fn prefixes_of_valid_streams_are_truncated(idx in 0..ACCEPTED.len(), cut in any::<usize>()) {
        let bytes = ACCEPTED[idx];
        prop_assert_eq!(check(bytes), Ok(()));
        assert_self_delimiting(bytes, cut);
    }

    #[test]
    fn tight_limits_never_panic(
        idx in 0..ACCEPTED.len(),
        max_depth in 0usize..8,
        max_bytes in 0usize..2048,
    ) {
        let bytes = ACCEPTED[idx];
        let limits = CheckLimits {
            max_depth,
            max_bytes,
            ..any_class()
        };
        match timed_with(bytes, &limits) {
            Ok(()) => prop_assert!(bytes.len() <= max_bytes),
            Err(ValueError::TooLarge { size, max }) => {
                prop_assert_eq!(size, bytes.len());
                prop_assert_eq!(max, max_bytes);
                prop_assert!(size > max);
            }
            Err(ValueError::TooDeep(d)) => prop_assert_eq!(d, max_depth),
            // A value may take more room expanded than serialized.
            Err(ValueError::Expands { size, max, .. }) => {
                prop_assert_eq!(max, max_bytes);
                prop_assert!(size > max as u64);
            }
            Err(e) => prop_assert!(false, "unexpected {}", e),
        }
    }

    #[test]
    fn generated_values_are_accepted_with_exact_depth(v in value(), big in any::<bool>(), cut in any::<usize>()) {
        let bytes = encode(&v, big);
        prop_assert_eq!(check(&bytes), Ok(()));
        assert_self_delimiting(&bytes, cut);
        let need = frames(&v);
        let exact = CheckLimits { max_depth: need, ..CheckLimits::default() };
        prop_assert_eq!(check_with(&bytes, &exact), Ok(()));
        if need > 0 {
            let short = CheckLimits { max_depth: need - 1, ..CheckLimits::default() };
            prop_assert_eq!(check_with(&bytes, &short), Err(ValueError::TooDeep(need - 1)));
        }
    }

    #[test]
    fn generated_values_with_a_forbidden_item_are_refused(
        v in value(),
        big in any::<bool>(),
        ty in prop::sample::select(vec![3u8, 4, 5, 6, 20, 21, 22, 23, 25, 241, 242, 253]),
    ) {
        // Wrap the value in a list whose second element is forbidden.
        let list = Val::List(vec![v, Val::Null], vec![]);
        let mut bytes = encode(&list, big);
        // The last item written is the NULL element: replace it.
        let n = bytes.len();
        let w = if big { i32::from(ty).to_be_bytes() } else { i32::from(ty).to_le_bytes() };
        bytes[n - 4..].copy_from_slice(&w);
        let limits = CheckLimits { max_depth: usize::MAX, ..CheckLimits::default() };
        prop_assert!(matches!(check_with(&bytes, &limits), Err(ValueError::Forbidden(_))));
    }
}

/// The time zone rule, written again from its description: at most
/// MAX_ZONE_BYTES bytes of letters, digits and / _ + - . , : < >, not
/// starting with / or :, no path component starting with a dot.
fn zone_ok(name: &str) -> bool {
    name.len() <= MAX_ZONE_BYTES
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"/_+-.,:<>".contains(&c))
        && !name.starts_with('/')
        && !name.starts_with(':')
        && !name.split('/').any(|p| p.starts_with('.'))
}

fn v3_body() -> Enc {
    Enc {
        out: V3_LE.to_vec(),
        big: false,
        syms: Vec::new(),
    }
}

/// A UTF-8-flagged string of raw bytes.
fn raw_chars(e: &mut Enc, bytes: &[u8]) {
    e.int(0x0000_8009);
    e.int(bytes.len() as i32);
    e.out.extend_from_slice(bytes);
}

fn posixct_with_zone(zone: &str) -> Vec<u8> {
    let mut e = v3_body();
    e.flags(14, true);
    e.int(1);
    e.dbl(1e9);
    let class = Val::Str(vec![Some("POSIXct".into()), Some("POSIXt".into())]);
    let tzone = Val::Str(vec![Some(zone.into())]);
    e.attrs(&[("class".into(), class), ("tzone".into(), tzone)]);
    e.out
}

/// A data frame whose columns have `lens` elements, with compact row
/// names for `rows` rows.
fn data_frame(lens: &[usize], rows: i32) -> Vec<u8> {
    let cols: Vec<Val> = lens.iter().map(|&n| Val::Int(vec![1; n])).collect();
    let names = Val::Str((0..lens.len()).map(|i| Some(format!("c{i}"))).collect());
    let list = Val::List(
        cols,
        vec![
            ("names".into(), names),
            ("class".into(), Val::Str(vec![Some("data.frame".into())])),
            ("row.names".into(), Val::Int(vec![i32::MIN, -rows])),
        ],
    );
    encode(&list, false)
}

fn factor(codes: &[i32], nlevels: usize) -> Vec<u8> {
    let levels = Val::Str((0..nlevels).map(|i| Some(format!("l{i}"))).collect());
    let f = Val::Attr(
        Box::new(Val::Int(codes.to_vec())),
        vec![
            ("levels".into(), levels),
            ("class".into(), Val::Str(vec![Some("factor".into())])),
        ],
    );
    encode(&f, false)
}

fn compact_intseq(n: f64) -> Vec<u8> {
    let mut e = v3_body();
    e.int(238);
    for name in ["compact_intseq", "base"] {
        e.int(2);
        e.int(1);
        e.chars(name);
    }
    e.int(2);
    e.int(13);
    e.int(1);
    e.int(13);
    e.int(254);
    e.int(14);
    e.int(3);
    e.dbl(n);
    e.dbl(1.0);
    e.dbl(1.0);
    e.int(254);
    e.out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn mutated_classed_streams_never_panic_with_rules_on(
        idx in 0..WITH_CLASSES.len(),
        mutations in vec(mutation(), 1..6),
    ) {
        let bytes = WITH_CLASSES[idx];
        prop_assert_eq!(timed_with(bytes, &CheckLimits::default()), Ok(()));
        let mut bytes = bytes.to_vec();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let _ = timed_with(&bytes, &CheckLimits::default());
    }

    #[test]
    fn time_zones_cross_exactly_when_they_are_names(
        zone in prop_oneof![
            "[A-Za-z0-9/_+.,:<>-]{0,70}",
            "(\\.\\./)*[A-Za-z/.]{0,20}",
            "[:/]?[A-Za-z]{1,8}(/[A-Za-z_]{1,12}){0,2}",
            any::<String>(),
        ],
    ) {
        let result = check_with(&posixct_with_zone(&zone), &CheckLimits::default());
        if zone_ok(&zone) {
            prop_assert_eq!(result, Ok(()));
        } else {
            prop_assert!(
                matches!(result, Err(ValueError::Invalid { .. }) | Err(ValueError::BadString { .. })),
                "{:?}: {:?}", zone, result
            );
        }
    }

    #[test]
    fn data_frames_cross_exactly_when_columns_match_the_rows(
        lens in vec(0usize..6, 0..5),
        rows in 0i32..6,
    ) {
        let result = check_with(&data_frame(&lens, rows), &CheckLimits::default());
        if lens.iter().all(|&n| n == rows as usize) {
            prop_assert_eq!(result, Ok(()));
        } else {
            prop_assert!(matches!(result, Err(ValueError::Invalid { .. })), "{:?}", result);
        }
    }

    #[test]
    fn factors_cross_exactly_when_codes_index_levels(
        codes in vec(prop_oneof![Just(i32::MIN), -2i32..8], 0..8),
        nlevels in 0usize..6,
    ) {
        let result = check_with(&factor(&codes, nlevels), &CheckLimits::default());
        let ok = codes.iter().all(|&c| c == i32::MIN || (c >= 1 && c as usize <= nlevels));
        if ok {
            prop_assert_eq!(result, Ok(()));
        } else {
            prop_assert!(matches!(result, Err(ValueError::Invalid { .. })), "{:?}", result);
        }
    }

    #[test]
    fn compact_sequences_cross_exactly_when_they_fit_expanded(
        n in prop_oneof![0u64..5000, 0u64..(1u64 << 31) - 2],
        max_bytes in 200usize..20_000,
    ) {
        let bytes = compact_intseq(n as f64);
        let limits = CheckLimits { max_bytes, ..CheckLimits::default() };
        let result = check_with(&bytes, &limits);
        if n * 4 <= max_bytes as u64 {
            prop_assert_eq!(result, Ok(()));
        } else {
            prop_assert!(matches!(result, Err(ValueError::Expands { .. })), "{:?}", result);
        }
    }

    #[test]
    fn strings_cross_exactly_when_r_can_hold_them(
        text in prop_oneof![vec(any::<u8>(), 0..12), "[a-zé😀]{0,6}".prop_map(String::into_bytes)],
    ) {
        let mut e = v3_body();
        e.int(16);
        e.int(1);
        raw_chars(&mut e, &text);
        let result = check_with(&e.out, &CheckLimits::default());
        let ok = !text.contains(&0) && std::str::from_utf8(&text).is_ok();
        if ok {
            prop_assert_eq!(result, Ok(()));
        } else {
            prop_assert!(matches!(result, Err(ValueError::BadString { .. })), "{:?}", result);
        }
        // Into the sandbox only the NUL rule holds.
        let into = check_with(&e.out, &any_class());
        prop_assert_eq!(into.is_ok(), !text.contains(&0));
    }
}
