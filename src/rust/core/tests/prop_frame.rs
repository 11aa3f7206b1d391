//! Property tests for the wire frame decoder.

use proptest::collection::vec;
use proptest::prelude::*;
use securer_core::frame::{
    encode, encode_message, Decoder, Frame, FrameError, Kind, HEADER_LEN, IDS_LEN,
};

fn kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(Kind::ALL.to_vec())
}

/// A frame to encode: kind, id, re (zero for kinds without ids), payload.
fn message(max_payload: usize) -> impl Strategy<Value = (Kind, u64, u64, Vec<u8>)> {
    (
        kind(),
        any::<u64>(),
        any::<u64>(),
        vec(any::<u8>(), 0..max_payload),
    )
        .prop_map(|(k, id, re, p)| {
            if k.carries_ids() {
                (k, id, re, p)
            } else {
                (k, 0, 0, p)
            }
        })
}

/// Bytes of ids in a frame of kind byte `k`.
fn ids_len(k: u8) -> usize {
    match Kind::from_u8(k) {
        Some(kind) if kind.carries_ids() => IDS_LEN,
        _ => 0,
    }
}

/// Splits `bytes` into consecutive chunks whose sizes cycle through
/// `sizes` (each at least 1).
fn chunks<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
        i += 1;
    }
    out
}

/// Pushes `bytes` in chunks, draining frames after each; stops at the
/// first error.
fn feed(d: &mut Decoder, bytes: &[u8], sizes: &[usize]) -> (Vec<Frame>, Option<FrameError>) {
    let mut frames = Vec::new();
    for chunk in chunks(bytes, sizes) {
        d.push(chunk);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_in_arbitrary_chunks_never_panic(
        bytes in vec(any::<u8>(), 0..4096),
        sizes in vec(1usize..64, 1..16),
        max in 0usize..2048,
    ) {
        let mut d = Decoder::new(max);
        for chunk in chunks(&bytes, &sizes) {
            d.push(chunk);
            let wanted = d.wanted();
            match d.next_frame() {
                Ok(Some(f)) => {
                    prop_assert!(f.payload.len() <= max);
                    prop_assert!(wanted.is_ok());
                }
                Ok(None) => {
                    // Not complete: the decoder asks for more bytes.
                    prop_assert!(matches!(wanted, Ok(n) if n > 0));
                }
                Err(e) => {
                    // Errors are sticky and agree with `wanted`.
                    prop_assert_eq!(wanted.as_ref().err(), Some(&e));
                    prop_assert_eq!(d.next_frame(), Err(e));
                    break;
                }
            }
        }
        let _ = d.wanted();
        let _ = d.pending();
    }

    #[test]
    fn encode_decode_round_trip_in_any_chunking(
        frames in vec(message(300), 0..12),
        sizes in vec(1usize..40, 1..16),
    ) {
        let mut bytes = Vec::new();
        for (k, id, re, payload) in &frames {
            let enc = encode_message(*k, *id, *re, payload).expect("small payloads encode");
            prop_assert_eq!(enc.len(), HEADER_LEN + ids_len(*k as u8) + payload.len());
            bytes.extend_from_slice(&enc);
        }
        let mut d = Decoder::new(300);
        let (got, err) = feed(&mut d, &bytes, &sizes);
        prop_assert_eq!(err, None);
        prop_assert_eq!(d.pending(), 0);
        prop_assert_eq!(d.next_frame(), Ok(None));
        let want: Vec<Frame> = frames
            .into_iter()
            .map(|(kind, id, re, payload)| Frame { kind, id, re, payload })
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn encode_gives_messages_zero_ids_and_control_frames_none(
        k in kind(),
        payload in vec(any::<u8>(), 0..50),
    ) {
        let bytes = encode(k, &payload).expect("small payloads encode");
        prop_assert_eq!(bytes.len(), HEADER_LEN + ids_len(k as u8) + payload.len());
        let mut d = Decoder::new(50);
        d.push(&bytes);
        prop_assert_eq!(d.next_frame(), Ok(Some(Frame { kind: k, id: 0, re: 0, payload })));
    }

    #[test]
    fn messages_too_short_for_their_ids_are_refused_from_the_header(
        k in prop::sample::select(Kind::ALL.iter().copied().filter(|k| k.carries_ids()).collect::<Vec<_>>()),
        len in 0u32..(IDS_LEN as u32),
    ) {
        let mut d = Decoder::new(100);
        d.push(&len.to_le_bytes());
        d.push(&[k as u8]);
        let err = FrameError::NoIds { kind: k.name(), size: len as usize };
        prop_assert_eq!(d.wanted(), Err(err.clone()));
        prop_assert_eq!(d.next_frame(), Err(err));
    }

    #[test]
    fn partial_frames_wait_for_exactly_the_missing_bytes(
        (k, id, re, payload) in message(200),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = encode_message(k, id, re, &payload).expect("small payloads encode");
        let cut = cut.index(bytes.len());
        let mut d = Decoder::new(200);
        d.push(&bytes[..cut]);
        // Until the header is complete only the header's missing bytes
        // are known; after it, the rest of the frame.
        let missing = if cut < HEADER_LEN { HEADER_LEN - cut } else { bytes.len() - cut };
        prop_assert_eq!(d.wanted(), Ok(missing));
        prop_assert_eq!(d.next_frame(), Ok(None));
        d.push(&bytes[cut..]);
        prop_assert_eq!(d.wanted(), Ok(0));
        prop_assert_eq!(d.next_frame(), Ok(Some(Frame { kind: k, id, re, payload })));
        prop_assert_eq!(d.wanted(), Ok(HEADER_LEN));
        prop_assert_eq!(d.pending(), 0);
    }

    #[test]
    fn oversized_length_is_refused_before_the_payload(
        max in 0usize..100_000,
        excess in 1u64..=u64::from(u32::MAX),
        k in 0u8..=255,
        sizes in vec(1usize..5, 1..4),
        prefix in vec(message(50), 0..4),
    ) {
        // The cap is on what follows the ids.
        let ids = ids_len(k);
        let size = (max as u64)
            .saturating_add(ids as u64)
            .saturating_add(excess)
            .min(u64::from(u32::MAX)) as usize;
        prop_assume!(size - ids > max);
        // Valid frames first, then only the header of the oversized one.
        let mut bytes = Vec::new();
        let mut want = Vec::new();
        for (kind, id, re, payload) in prefix {
            if payload.len() <= max {
                bytes.extend(encode_message(kind, id, re, &payload).expect("small payloads encode"));
                want.push(Frame { kind, id, re, payload });
            }
        }
        bytes.extend_from_slice(&(size as u32).to_le_bytes());
        bytes.push(k);
        let mut d = Decoder::new(max);
        let (got, err) = feed(&mut d, &bytes, &sizes);
        prop_assert_eq!(got, want);
        let too_large = || FrameError::TooLarge { size: size - ids, max };
        prop_assert_eq!(err, Some(too_large()));
        prop_assert_eq!(d.wanted(), Err(too_large()));
        // Only the header was buffered: nothing of the payload.
        prop_assert_eq!(d.pending(), HEADER_LEN);
        prop_assert_eq!(d.next_frame(), Err(too_large()));
    }

    #[test]
    fn too_large_is_reported_once_the_header_is_complete(
        max in 0usize..1000,
        extra in 1usize..1000,
    ) {
        // The length alone exceeds the cap; the kind byte (which says
        // whether ids come first) is still needed before the decoder
        // reports anything.
        let size = max + IDS_LEN + extra;
        let mut d = Decoder::new(max);
        d.push(&(size as u32).to_le_bytes());
        prop_assert_eq!(d.wanted(), Ok(1));
        prop_assert_eq!(d.next_frame(), Ok(None));
        d.push(&[Kind::Result as u8]);
        prop_assert_eq!(d.wanted(), Err(FrameError::TooLarge { size: size - IDS_LEN, max }));
    }

    #[test]
    fn unknown_kinds_are_refused(k in prop::sample::select((0u8..=255).filter(|b| Kind::from_u8(*b).is_none()).collect::<Vec<_>>())) {
        let mut d = Decoder::new(10);
        d.push(&[0, 0, 0, 0, k]);
        prop_assert_eq!(d.next_frame(), Err(FrameError::UnknownKind(k)));
    }
}
