use super::*;
use miniz_oxide::deflate::compress_to_vec_zlib;
use proptest::prelude::*;

const LIMITS: PngLimits = PngLimits {
    max_width: 64,
    max_height: 64,
    max_bytes: 1 << 20,
};

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut h = crc32fast::Hasher::new();
    h.update(kind);
    h.update(data);
    out.extend_from_slice(&h.finalize().to_be_bytes());
    out
}

fn ihdr(width: u32, height: u32, depth: u8, color: u8, interlace: u8) -> Vec<u8> {
    let mut d = width.to_be_bytes().to_vec();
    d.extend_from_slice(&height.to_be_bytes());
    d.extend_from_slice(&[depth, color, 0, 0, interlace]);
    chunk(b"IHDR", &d)
}

/// Raw (filtered) image data of an RGB 8-bit image: each row a filter byte
/// of 0, then the pixels.
fn rgb_rows(width: u32, height: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0);
        for x in 0..width {
            raw.extend_from_slice(&[x as u8, y as u8, 7]);
        }
    }
    raw
}

fn file(chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    for c in chunks {
        out.extend_from_slice(c);
    }
    out
}

fn rgb_png(width: u32, height: u32) -> Vec<u8> {
    let data = compress_to_vec_zlib(&rgb_rows(width, height), 6);
    file(&[
        ihdr(width, height, 8, 2, 0),
        chunk(b"IDAT", &data),
        chunk(b"IEND", b""),
    ])
}

#[test]
fn a_plain_image_passes_unchanged() {
    let bytes = rgb_png(5, 3);
    let png = check(&bytes, &LIMITS).unwrap();
    assert_eq!((png.width, png.height), (5, 3));
    assert_eq!(png.bytes, bytes);
}

#[test]
fn text_and_unknown_ancillary_chunks_are_dropped_and_known_ones_kept() {
    let data = compress_to_vec_zlib(&rgb_rows(2, 2), 6);
    let phys = chunk(b"pHYs", &[0, 0, 14, 196, 0, 0, 14, 196, 1]);
    let bytes = file(&[
        ihdr(2, 2, 8, 2, 0),
        chunk(b"tEXt", b"Comment\0\x1b]52;c;aGk=\x07"),
        phys.clone(),
        chunk(b"zzZz", b"whatever"),
        chunk(b"IDAT", &data),
        chunk(b"IEND", b""),
    ]);
    let png = check(&bytes, &LIMITS).unwrap();
    let want = file(&[
        ihdr(2, 2, 8, 2, 0),
        phys,
        chunk(b"IDAT", &data),
        chunk(b"IEND", b""),
    ]);
    assert_eq!(png.bytes, want);
    // The rebuilt file passes again, unchanged.
    assert_eq!(check(&png.bytes, &LIMITS).unwrap().bytes, want);
}

#[test]
fn the_signature_and_the_size_are_checked_first() {
    let mut bytes = rgb_png(2, 2);
    assert_eq!(
        check(
            &bytes,
            &PngLimits {
                max_bytes: 10,
                ..LIMITS
            }
        ),
        Err(PngError::TooLarge {
            size: bytes.len(),
            max: 10
        })
    );
    bytes[1] = b'J';
    assert_eq!(check(&bytes, &LIMITS), Err(PngError::Signature));
    assert_eq!(check(b"", &LIMITS), Err(PngError::Signature));
    assert_eq!(
        check(b"GIF89a\x01\x00\x01\x00", &LIMITS),
        Err(PngError::Signature)
    );
}

#[test]
fn a_bad_crc_is_refused() {
    let mut bytes = rgb_png(2, 2);
    // The last byte of the IDAT data (just before its CRC and IEND).
    let at = bytes.len() - 12 - 4 - 1;
    bytes[at] ^= 1;
    assert_eq!(check(&bytes, &LIMITS), Err(PngError::Crc("IDAT".into())));
}

#[test]
fn dimensions_beyond_the_caps_are_refused_from_the_header() {
    let bytes = rgb_png(20, 30);
    let tight = PngLimits {
        max_width: 19,
        ..LIMITS
    };
    assert!(matches!(
        check(&bytes, &tight),
        Err(PngError::Dimensions {
            width: 20,
            height: 30,
            ..
        })
    ));
    // A header claiming 2^31 - 1 pixels a side, with no data to match.
    let huge = file(&[
        ihdr(u32::MAX >> 1, u32::MAX >> 1, 8, 6, 0),
        chunk(b"IDAT", &compress_to_vec_zlib(b"", 6)),
        chunk(b"IEND", b""),
    ]);
    assert!(matches!(
        check(&huge, &LIMITS),
        Err(PngError::Dimensions { .. })
    ));
    let zero = file(&[ihdr(0, 5, 8, 2, 0), chunk(b"IEND", b"")]);
    assert!(matches!(check(&zero, &LIMITS), Err(PngError::Invalid(_))));
}

#[test]
fn a_header_with_impossible_fields_is_refused() {
    for (depth, color, interlace) in [(8, 5, 0), (4, 2, 0), (16, 3, 0), (8, 2, 2)] {
        let bytes = file(&[ihdr(2, 2, depth, color, interlace), chunk(b"IEND", b"")]);
        assert!(
            matches!(check(&bytes, &LIMITS), Err(PngError::Invalid(_))),
            "{depth} {color} {interlace}"
        );
    }
}

#[test]
fn truncation_and_trailing_bytes_are_refused() {
    let bytes = rgb_png(3, 3);
    for cut in [9, 20, bytes.len() - 1] {
        assert!(matches!(
            check(&bytes[..cut], &LIMITS),
            Err(PngError::Truncated(_))
        ));
    }
    let mut extra = bytes.clone();
    extra.extend_from_slice(b"<script>");
    assert_eq!(
        check(&extra, &LIMITS),
        Err(PngError::Invalid("data after the IEND chunk"))
    );
    let mut long = bytes;
    // IHDR's length field claims more than the file holds.
    long[8..12].copy_from_slice(&1_000_000u32.to_be_bytes());
    assert!(matches!(check(&long, &LIMITS), Err(PngError::Truncated(_))));
}

#[test]
fn chunk_order_is_checked() {
    let data = compress_to_vec_zlib(&rgb_rows(2, 2), 6);
    let half = data.len() / 2;
    let split = file(&[
        ihdr(2, 2, 8, 2, 0),
        chunk(b"IDAT", &data[..half]),
        chunk(b"IDAT", &data[half..]),
        chunk(b"IEND", b""),
    ]);
    assert!(check(&split, &LIMITS).is_ok());
    let broken = file(&[
        ihdr(2, 2, 8, 2, 0),
        chunk(b"IDAT", &data[..half]),
        chunk(b"gAMA", &[0, 0, 177, 143]),
        chunk(b"IDAT", &data[half..]),
        chunk(b"IEND", b""),
    ]);
    assert_eq!(
        check(&broken, &LIMITS),
        Err(PngError::Invalid("IDAT chunks not in one run"))
    );
    let first = file(&[
        chunk(b"IDAT", &data),
        ihdr(2, 2, 8, 2, 0),
        chunk(b"IEND", b""),
    ]);
    assert!(matches!(check(&first, &LIMITS), Err(PngError::Invalid(_))));
    let none = file(&[ihdr(2, 2, 8, 2, 0), chunk(b"IEND", b"")]);
    assert_eq!(
        check(&none, &LIMITS),
        Err(PngError::Invalid("no IDAT chunk"))
    );
    let critical = file(&[
        ihdr(2, 2, 8, 2, 0),
        chunk(b"EVIL", b""),
        chunk(b"IDAT", &data),
        chunk(b"IEND", b""),
    ]);
    assert_eq!(
        check(&critical, &LIMITS),
        Err(PngError::UnknownCritical("EVIL".into()))
    );
}

#[test]
fn palette_images_need_a_fitting_palette() {
    let rows: Vec<u8> = (0..2).flat_map(|_| [0u8, 0, 1]).collect();
    let data = compress_to_vec_zlib(&rows, 6);
    let image = |plte: Option<Vec<u8>>| {
        let mut chunks = vec![ihdr(2, 2, 8, 3, 0)];
        chunks.extend(plte);
        chunks.push(chunk(b"tRNS", &[255]));
        chunks.push(chunk(b"IDAT", &data));
        chunks.push(chunk(b"IEND", b""));
        file(&chunks)
    };
    assert!(check(&image(Some(chunk(b"PLTE", &[0; 6]))), &LIMITS).is_ok());
    assert!(matches!(
        check(&image(None), &LIMITS),
        Err(PngError::Invalid(_))
    ));
    assert!(matches!(
        check(&image(Some(chunk(b"PLTE", &[0; 7]))), &LIMITS),
        Err(PngError::Invalid(_))
    ));
}

#[test]
fn the_image_data_must_match_the_header() {
    let image = |rows: &[u8]| {
        file(&[
            ihdr(3, 2, 8, 2, 0),
            chunk(b"IDAT", &compress_to_vec_zlib(rows, 6)),
            chunk(b"IEND", b""),
        ])
    };
    let good = rgb_rows(3, 2);
    assert!(check(&image(&good), &LIMITS).is_ok());
    assert!(matches!(
        check(&image(&good[..good.len() - 1]), &LIMITS),
        Err(PngError::Data(_))
    ));
    let mut more = good.clone();
    more.push(0);
    assert!(matches!(
        check(&image(&more), &LIMITS),
        Err(PngError::Data(_))
    ));
    let mut filter = good;
    filter[10] = 9; // the second row's filter byte
    assert_eq!(
        check(&image(&filter), &LIMITS),
        Err(PngError::Data("a row has an unknown filter type"))
    );
    let garbage = file(&[
        ihdr(3, 2, 8, 2, 0),
        chunk(b"IDAT", b"\x78\x9c not deflate at all"),
        chunk(b"IEND", b""),
    ]);
    assert!(matches!(check(&garbage, &LIMITS), Err(PngError::Data(_))));
}

#[test]
fn a_decompression_bomb_is_refused_without_inflating_it_whole() {
    // 64 x 64 pixels announced; 50 MB of zeros compressed to ~50 KB.
    let bomb = compress_to_vec_zlib(&vec![0u8; 50_000_000], 9);
    let bytes = file(&[
        ihdr(64, 64, 8, 2, 0),
        chunk(b"IDAT", &bomb),
        chunk(b"IEND", b""),
    ]);
    assert_eq!(
        check(&bytes, &LIMITS),
        Err(PngError::Data("more image data than the header announces"))
    );
}

#[test]
fn interlaced_images_are_checked_pass_by_pass() {
    // 3 x 3 grey 8-bit, Adam7: passes 2 and 3 start beyond the image and
    // hold nothing; passes 1, 4, 5, 6 and 7 hold (rows x width) 1x1, 1x1,
    // 1x2, 2x1 and 1x3 pixels.
    let mut raw = Vec::new();
    for (rows, width) in [(1, 1), (1, 1), (1, 2), (2, 1), (1, 3)] {
        for _ in 0..rows {
            raw.push(0);
            raw.extend(std::iter::repeat(200).take(width));
        }
    }
    let bytes = file(&[
        ihdr(3, 3, 8, 0, 1),
        chunk(b"IDAT", &compress_to_vec_zlib(&raw, 6)),
        chunk(b"IEND", b""),
    ]);
    assert!(check(&bytes, &LIMITS).is_ok());
    let short = file(&[
        ihdr(3, 3, 8, 0, 1),
        chunk(b"IDAT", &compress_to_vec_zlib(&raw[..raw.len() - 4], 6)),
        chunk(b"IEND", b""),
    ]);
    assert!(matches!(check(&short, &LIMITS), Err(PngError::Data(_))));
}

#[test]
fn sub_byte_rows_round_up() {
    // 10 pixels of 1 bit: 2 bytes a row.
    let raw = [0u8, 0xff, 0xc0, 0, 0x00, 0x40];
    let bytes = file(&[
        ihdr(10, 2, 1, 0, 0),
        chunk(b"IDAT", &compress_to_vec_zlib(&raw, 6)),
        chunk(b"IEND", b""),
    ]);
    assert!(check(&bytes, &LIMITS).is_ok());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = check(&bytes, &LIMITS);
        let mut framed = SIGNATURE.to_vec();
        framed.extend_from_slice(&bytes);
        let _ = check(&framed, &LIMITS);
    }

    #[test]
    fn a_mutated_image_is_refused_or_passes_a_second_check(
        at in 0usize..200, value in any::<u8>(), cut in 0usize..200,
    ) {
        let mut bytes = rgb_png(4, 4);
        let n = bytes.len();
        bytes[at % n] = value;
        bytes.truncate(n - cut % n);
        if let Ok(png) = check(&bytes, &LIMITS) {
            prop_assert_eq!(check(&png.bytes, &LIMITS).map(|p| p.bytes), Ok(png.bytes));
        }
    }
}
