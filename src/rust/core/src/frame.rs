//! Wire framing: `u32` little-endian payload length, `u8` kind, payload.
//!
//! The decoder is fed whatever bytes arrived and yields whole frames. It
//! checks the announced length against the cap before buffering the payload,
//! so a hostile peer cannot make the host allocate more than the cap.

use thiserror::Error;

/// Bytes in a frame header (length + kind).
pub const HEADER_LEN: usize = 5;

/// Protocol version carried in the child's hello frame.
pub const PROTOCOL_VERSION: u32 = 1;

/// Default cap on one frame's payload (8 MiB).
pub const DEFAULT_MAX_FRAME: usize = 8 * 1024 * 1024;

/// Frame kinds. Child-to-host payloads are R-serialized values that the host
/// checks (see `rvalue`) before unserializing; host-to-child payloads are
/// R-serialized by the host.
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
}

impl Kind {
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
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub payload: Vec<u8>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
}

/// Encodes one frame. Fails only when the payload is larger than `u32`.
pub fn encode(kind: Kind, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
        size: payload.len(),
        max: u32::MAX as usize,
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind as u8);
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
        let (len, kind) = self.header()?;
        let _ = kind;
        Ok((HEADER_LEN + len).saturating_sub(self.buf.len()))
    }

    fn header(&self) -> Result<(usize, Kind), FrameError> {
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge {
                size: len,
                max: self.max,
            });
        }
        let kind = Kind::from_u8(self.buf[4]).ok_or(FrameError::UnknownKind(self.buf[4]))?;
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
        let payload = self.buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        Ok(Some(Frame { kind, payload }))
    }
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
        let mut bytes = encode(Kind::Exec, b"1 + 1").unwrap();
        bytes.extend(encode(Kind::Shutdown, b"").unwrap());
        let mut d = Decoder::new(64);
        for b in &bytes {
            d.push(std::slice::from_ref(b));
        }
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!(f.kind, Kind::Exec);
        assert_eq!(f.payload, b"1 + 1");
        assert_eq!(d.next_frame().unwrap().unwrap().kind, Kind::Shutdown);
        assert_eq!(d.next_frame().unwrap(), None);
    }

    #[test]
    fn oversized_is_refused_from_header() {
        let mut d = Decoder::new(10);
        d.push(&100u32.to_le_bytes());
        d.push(&[3]);
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
    fn hello() {
        let p = hello_payload(b"abc");
        assert!(hello_matches(&p, b"abc"));
        assert!(!hello_matches(&p, b"abd"));
        assert!(!hello_matches(&p[..5], b"abc"));
    }
}
