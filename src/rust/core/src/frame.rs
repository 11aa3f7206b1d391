//! Wire framing: `u32` little-endian payload length, `u8` kind, payload.
//!
//! The payload of a message of the conversation between host and child
//! (exec, result, error, tool call, tool result, tool error, plot, file
//! request, file reply) starts with two
//! `u64` little-endian ids: `id` names a message that expects an answer,
//! `re` names the message this one answers. Control frames (launch report,
//! hello, set-up, exit, fork, ...) carry no ids and are unchanged. Which ids
//! are acceptable is the business of the session state machines
//! (`host::session` on the host, `child` in the child); the framing only
//! carries them.
//!
//! The decoder is fed whatever bytes arrived and yields whole frames. It
//! checks the header before buffering the payload, so a hostile peer cannot
//! make the host allocate more than the cap.

use thiserror::Error;

/// Bytes in a frame header (length + kind).
pub const HEADER_LEN: usize = 5;

/// Bytes of ids at the start of a message's payload.
pub const IDS_LEN: usize = 16;

/// Protocol version carried in the child's hello frame.
pub const PROTOCOL_VERSION: u32 = 3;

/// Default cap on one frame's payload (8 MiB).
pub const DEFAULT_MAX_FRAME: usize = 8 * 1024 * 1024;

/// Smallest cap accepted: the session set-up (tool definitions, the class
/// allowlist) must fit in one frame.
pub const MIN_MAX_FRAME: usize = 64 * 1024;

/// Largest cap accepted: the length field's range.
pub const MAX_MAX_FRAME: usize = u32::MAX as usize;

/// The frame-size cap for a requested value (R's
/// `options(securer.max_message_size)`, passed as a double): NA, NaN or
/// a missing value mean the default; anything else is rounded down and
/// clamped to `MIN_MAX_FRAME..=MAX_MAX_FRAME`. Every place that needs the
/// cap (host, child, zygote, value checker) goes through this one rule.
pub fn frame_limit(requested: f64) -> usize {
    if requested.is_nan() {
        return DEFAULT_MAX_FRAME;
    }
    // `as` saturates: -inf -> 0, +inf -> usize::MAX.
    (requested.floor() as usize).clamp(MIN_MAX_FRAME, MAX_MAX_FRAME)
}

/// Frame kinds. Child-to-host payloads are R-serialized values that the host
/// checks (see `rvalue`) before unserializing, except a plot's, which is PNG
/// bytes that the host checks as such (see `png`); host-to-child payloads
/// are R-serialized by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// child -> host: protocol version (u32 LE) then the session token.
    Hello = 1,
    /// host -> child: code to evaluate.
    Exec = 2,
    /// child -> host: value of the last expression.
    Result = 3,
    /// child -> host: condition data of an error.
    Error = 4,
    /// child -> host: list(id, name, args).
    ToolCall = 5,
    /// host -> child: a tool's value.
    ToolResult = 6,
    /// host -> child: a tool's error message.
    ToolError = 7,
    /// launcher -> host: JSON report of the sandbox layers applied.
    LaunchReport = 8,
    /// launcher -> host: JSON report of why the launch failed.
    LaunchError = 9,
    /// host -> child: session set-up (tool definitions, options).
    Setup = 10,
    /// host -> child: finish and exit.
    Shutdown = 11,
    /// host -> zygote: fork a session (JSON `ForkRequest`; the session's
    /// socket and stdout/stderr pipes travel as SCM_RIGHTS).
    Fork = 12,
    /// zygote -> host: the session is forked (a pidfd travels along).
    Forked = 13,
    /// session supervisor -> host: how the session's R process ended
    /// (JSON `ExitReport`), sent just before the socket closes.
    Exit = 14,
    /// child -> host: one PNG image drawn by the execution being answered,
    /// sent before its result (raw PNG bytes, not an R value).
    Plot = 15,
    /// host -> child: a file operation in the session's writable space
    /// (upload, download, listing; R-serialized list).
    File = 16,
    /// child -> host: the answer to a file request.
    FileReply = 17,
}

impl Kind {
    /// Every kind, in wire order.
    pub const ALL: [Kind; 17] = [
        Kind::Hello,
        Kind::Exec,
        Kind::Result,
        Kind::Error,
        Kind::ToolCall,
        Kind::ToolResult,
        Kind::ToolError,
        Kind::LaunchReport,
        Kind::LaunchError,
        Kind::Setup,
        Kind::Shutdown,
        Kind::Fork,
        Kind::Forked,
        Kind::Exit,
        Kind::Plot,
        Kind::File,
        Kind::FileReply,
    ];

    /// Whether the payload starts with the ids (see the module doc).
    pub fn carries_ids(self) -> bool {
        matches!(
            self,
            Kind::Exec
                | Kind::Result
                | Kind::Error
                | Kind::ToolCall
                | Kind::ToolResult
                | Kind::ToolError
                | Kind::Plot
                | Kind::File
                | Kind::FileReply
        )
    }

    /// Whether a payload from the child is an R-serialized value (checked
    /// by `rvalue` before the host reads it). A plot is PNG bytes instead.
    pub fn carries_r_value(self) -> bool {
        self != Kind::Plot
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::Exec,
            3 => Kind::Result,
            4 => Kind::Error,
            5 => Kind::ToolCall,
            6 => Kind::ToolResult,
            7 => Kind::ToolError,
            8 => Kind::LaunchReport,
            9 => Kind::LaunchError,
            10 => Kind::Setup,
            11 => Kind::Shutdown,
            12 => Kind::Fork,
            13 => Kind::Forked,
            14 => Kind::Exit,
            15 => Kind::Plot,
            16 => Kind::File,
            17 => Kind::FileReply,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "hello",
            Kind::Exec => "exec",
            Kind::Result => "result",
            Kind::Error => "error",
            Kind::ToolCall => "tool_call",
            Kind::ToolResult => "tool_result",
            Kind::ToolError => "tool_error",
            Kind::LaunchReport => "launch_report",
            Kind::LaunchError => "launch_error",
            Kind::Setup => "setup",
            Kind::Shutdown => "shutdown",
            Kind::Fork => "fork",
            Kind::Forked => "forked",
            Kind::Exit => "exit",
            Kind::Plot => "plot",
            Kind::File => "file",
            Kind::FileReply => "file_reply",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    /// This message's id, when it expects an answer; else 0.
    pub id: u64,
    /// The id of the message this one answers; else 0.
    pub re: u64,
    /// The payload after the ids.
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error("a '{kind}' message of {size} bytes is too short to carry its ids")]
    NoIds { kind: &'static str, size: usize },
    #[error("a '{0}' message carries no ids")]
    IdsNotCarried(&'static str),
}

/// Encodes one frame; a message kind gets ids 0 (see `encode_message`).
/// Fails only when the payload is larger than `u32`.
pub fn encode(kind: Kind, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    encode_message(kind, 0, 0, payload)
}

/// Encodes one frame with its id and the id it answers; a kind that carries
/// no ids takes none.
pub fn encode_message(kind: Kind, id: u64, re: u64, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let ids = if kind.carries_ids() {
        IDS_LEN
    } else if id == 0 && re == 0 {
        0
    } else {
        return Err(FrameError::IdsNotCarried(kind.name()));
    };
    let size = ids + payload.len();
    let len = u32::try_from(size).map_err(|_| FrameError::TooLarge {
        size,
        max: u32::MAX as usize,
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + size);
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind as u8);
    if ids > 0 {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&re.to_le_bytes());
    }
    out.extend_from_slice(payload);
    Ok(out)
}

/// Incremental decoder over a byte stream.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    max: usize,
}

impl Decoder {
    pub fn new(max_payload: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            max: max_payload,
        }
    }

    pub fn max_payload(&self) -> usize {
        self.max
    }

    /// Bytes buffered but not yet returned as a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Appends received bytes. Call `next_frame` until it returns `Ok(None)`.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// How many more bytes are needed before the next frame is complete, or
    /// an error if the announced frame is invalid (checked from the header
    /// alone, before its payload arrives).
    pub fn wanted(&self) -> Result<usize, FrameError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(HEADER_LEN - self.buf.len());
        }
        let (len, _) = self.header()?;
        Ok((HEADER_LEN + len).saturating_sub(self.buf.len()))
    }

    /// Length and kind, checked. The cap applies to what follows the ids,
    /// so a value of exactly the cap can be sent.
    fn header(&self) -> Result<(usize, Kind), FrameError> {
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        let kind = Kind::from_u8(self.buf[4]);
        let ids = match kind {
            Some(k) if k.carries_ids() => IDS_LEN,
            _ => 0,
        };
        if len.saturating_sub(ids) > self.max {
            return Err(FrameError::TooLarge {
                size: len - ids,
                max: self.max,
            });
        }
        let kind = kind.ok_or(FrameError::UnknownKind(self.buf[4]))?;
        if len < ids {
            return Err(FrameError::NoIds {
                kind: kind.name(),
                size: len,
            });
        }
        Ok((len, kind))
    }

    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let (len, kind) = self.header()?;
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let (id, re, body) = if kind.carries_ids() {
            (
                u64_at(&self.buf, HEADER_LEN),
                u64_at(&self.buf, HEADER_LEN + 8),
                HEADER_LEN + IDS_LEN,
            )
        } else {
            (0, 0, HEADER_LEN)
        };
        let payload = self.buf[body..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        Ok(Some(Frame {
            kind,
            id,
            re,
            payload,
        }))
    }
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Hello payload: protocol version then token.
pub fn hello_payload(token: &[u8]) -> Vec<u8> {
    let mut p = PROTOCOL_VERSION.to_le_bytes().to_vec();
    p.extend_from_slice(token);
    p
}

/// Checks a hello payload against the expected token in constant time.
pub fn hello_matches(payload: &[u8], token: &[u8]) -> bool {
    if payload.len() != 4 + token.len() {
        return false;
    }
    let version = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
    let diff = payload[4..]
        .iter()
        .zip(token)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    version == PROTOCOL_VERSION && diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_pieces() {
        let mut bytes = encode_message(Kind::Exec, 9, 0, b"1 + 1").unwrap();
        bytes.extend(encode(Kind::Shutdown, b"").unwrap());
        let mut d = Decoder::new(64);
        for b in &bytes {
            d.push(std::slice::from_ref(b));
        }
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!((f.kind, f.id), (Kind::Exec, 9));
        assert_eq!(f.payload, b"1 + 1");
        assert_eq!(d.next_frame().unwrap().unwrap().kind, Kind::Shutdown);
        assert_eq!(d.next_frame().unwrap(), None);
    }

    #[test]
    fn oversized_is_refused_from_header() {
        let mut d = Decoder::new(10);
        d.push(&100u32.to_le_bytes());
        d.push(&[Kind::LaunchReport as u8]);
        assert_eq!(d.wanted(), Err(FrameError::TooLarge { size: 100, max: 10 }));
        assert!(d.next_frame().is_err());
    }

    #[test]
    fn unknown_kind() {
        let mut d = Decoder::new(10);
        d.push(&[0, 0, 0, 0, 200]);
        assert_eq!(d.next_frame(), Err(FrameError::UnknownKind(200)));
    }

    #[test]
    fn messages_carry_ids_and_control_frames_do_not() {
        let bytes = encode_message(Kind::ToolCall, u64::MAX, 7, b"x").unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + IDS_LEN + 1);
        let mut d = Decoder::new(64);
        d.push(&bytes);
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!(
            (f.kind, f.id, f.re, f.payload.as_slice()),
            (Kind::ToolCall, u64::MAX, 7, &b"x"[..])
        );
        let control = encode(Kind::Exit, b"{}").unwrap();
        assert_eq!(control.len(), HEADER_LEN + 2);
        d.push(&control);
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!((f.id, f.re, f.payload.as_slice()), (0, 0, &b"{}"[..]));
        assert_eq!(
            encode_message(Kind::Hello, 1, 0, b""),
            Err(FrameError::IdsNotCarried("hello"))
        );
    }

    #[test]
    fn a_message_too_short_for_its_ids_is_refused_from_the_header() {
        let mut d = Decoder::new(64);
        d.push(&15u32.to_le_bytes());
        d.push(&[Kind::Result as u8]);
        assert_eq!(
            d.wanted(),
            Err(FrameError::NoIds {
                kind: "result",
                size: 15
            })
        );
        assert!(d.next_frame().is_err());
    }

    #[test]
    fn frame_limit_is_one_rule() {
        assert_eq!(frame_limit(f64::NAN), DEFAULT_MAX_FRAME);
        assert_eq!(frame_limit(-1.0), MIN_MAX_FRAME);
        assert_eq!(frame_limit(0.0), MIN_MAX_FRAME);
        assert_eq!(frame_limit(1e6 + 0.7), 1_000_000);
        assert_eq!(frame_limit(f64::INFINITY), MAX_MAX_FRAME);
        assert_eq!(frame_limit(1e300), MAX_MAX_FRAME);
    }

    #[test]
    fn kinds_by_name() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.name()), Some(k));
            assert_eq!(Kind::from_u8(k as u8), Some(k));
        }
        assert_eq!(Kind::from_name("nope"), None);
    }

    #[test]
    fn hello() {
        let p = hello_payload(b"abc");
        assert!(hello_matches(&p, b"abc"));
        assert!(!hello_matches(&p, b"abd"));
        assert!(!hello_matches(&p[..5], b"abc"));
    }
}
