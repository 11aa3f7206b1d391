//! Sending: a request stamped by the session state machine and written
//! within a deadline, and the fork request to a warm zygote.

use super::HostChild;
use crate::error::{Error, ErrorKind};
use crate::frame::{self, Kind};
use crate::sys;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// Fills `buf` from the kernel's random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), Error> {
    #[cfg(native_linux)]
    {
        let mut got = 0;
        while got < buf.len() {
            // SAFETY: writes at most the remaining length into the live
            // buffer.
            let n = unsafe { libc::getrandom(buf[got..].as_mut_ptr().cast(), buf.len() - got, 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::caused_by(ErrorKind::Random, &e));
            }
            got += n as usize;
        }
    }
    // Other systems (macOS): getentropy, at most 256 bytes a call.
    #[cfg(not(native_linux))]
    for chunk in buf.chunks_mut(256) {
        // SAFETY: writes exactly `chunk.len()` (<= 256) bytes into the live
        // chunk.
        if unsafe { libc::getentropy(chunk.as_mut_ptr().cast(), chunk.len()) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::caused_by(ErrorKind::Random, &e));
        }
    }
    Ok(())
}

/// Kernel randomness drawn in blocks: one `getrandom` per 64 request ids
/// instead of one per request (a round trip is a few system calls in all).
struct IdSource {
    buf: [u8; 512],
    at: usize,
}

static IDS: std::sync::Mutex<IdSource> = std::sync::Mutex::new(IdSource {
    buf: [0; 512],
    at: 512,
});

/// A random request id (never 0, which marks "no id").
fn random_id() -> Result<u64, Error> {
    let mut src = IDS
        .lock()
        .map_err(|_| Error::new(ErrorKind::Random, "the id source is poisoned"))?;
    if src.at + 8 > src.buf.len() {
        random_bytes(&mut src.buf)?;
        src.at = 0;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&src.buf[src.at..src.at + 8]);
    // Each id is used once: its bytes are not kept.
    let at = src.at;
    src.buf[at..at + 8].fill(0);
    src.at += 8;
    Ok(u64::from_le_bytes(b).max(1))
}

/// Writes `bytes` to a non-blocking socket, waiting at most until
/// `deadline` for it to drain. On failure also says how much was written.
fn write_by(fd: RawFd, bytes: &[u8], deadline: Instant) -> Result<(), (usize, std::io::Error)> {
    let mut off = 0;
    while off < bytes.len() {
        // SAFETY: pointer and length describe the live `bytes` buffer.
        let n = unsafe {
            libc::send(
                fd,
                bytes[off..].as_ptr().cast(),
                bytes.len() - off,
                sys::SEND_FLAGS,
            )
        };
        if n >= 0 {
            off += n as usize;
            continue;
        }
        let err = std::io::Error::last_os_error();
        match err.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err((off, std::io::Error::from(std::io::ErrorKind::TimedOut)));
                }
                sys::poll_one(fd, libc::POLLOUT, left.as_millis().clamp(1, 1000) as i32);
            }
            _ => return Err((off, err)),
        }
    }
    Ok(())
}

impl HostChild {
    /// Sends one request, waiting at most `timeout` for the socket to
    /// drain. The session state machine decides whether `kind` may be sent
    /// now and stamps it with its ids; an exec also starts a new output
    /// budget. A frame that could only be written in part leaves the stream
    /// unusable: the child is then killed.
    pub fn send(&mut self, kind: Kind, payload: &[u8], timeout: Duration) -> Result<(), Error> {
        let pid = self.pid();
        let Some(fd) = self.sock.as_ref().map(|s| s.as_raw_fd()) else {
            return Err(
                Error::new(ErrorKind::NotRunning, "the child process is not running").with_pid(pid),
            );
        };
        if payload.len() > self.decoder.max_payload() {
            return Err(Error::new(
                ErrorKind::Value,
                format!(
                    "a message of {} bytes exceeds the limit of {} bytes; raise options(securer.max_message_size)",
                    payload.len(),
                    self.decoder.max_payload()
                ),
            ));
        }
        let before = self.session.phase();
        let stamp = self
            .session
            .begin(kind, random_id()?)
            .map_err(|e| e.with_pid(pid))?;
        let bytes = frame::encode_message(kind, stamp.id, stamp.re, payload)?;
        if kind == Kind::Exec {
            self.budget.reset(self.output_limit);
            // Whatever is still queued belongs to earlier requests (the
            // caller gave up on them): none of it may pass for this one's.
            self.drop_queued();
        }
        match write_by(fd, &bytes, Instant::now() + timeout) {
            Ok(()) => {
                self.spin.arm();
                Ok(())
            }
            Err((written, e)) => {
                if written == 0 {
                    self.session.rollback(before);
                } else {
                    self.kill();
                }
                let message = if e.kind() == std::io::ErrorKind::TimedOut {
                    format!(
                        "timed out after {} ms writing to the child",
                        timeout.as_millis()
                    )
                } else {
                    format!("cannot write to the child: {e}")
                };
                let kind = if e.kind() == std::io::ErrorKind::TimedOut {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Io
                };
                Err(Error::new(kind, message)
                    .with_errno(e.raw_os_error())
                    .with_pid(pid))
            }
        }
    }

    /// Sends a fork request with the session's socket and pipes to this
    /// child, a zygote, and waits (at most `timeout`) for the pidfd of the
    /// forked session.
    #[cfg(native_linux)]
    pub(super) fn request_fork(
        &mut self,
        request: &[u8],
        fds: [std::os::fd::OwnedFd; 3],
        timeout: Duration,
    ) -> Result<std::os::fd::OwnedFd, Error> {
        let pid = self.pid();
        let zfd = match (&self.sock, self.session.phase()) {
            (Some(s), super::Phase::Idle) => s.as_raw_fd(),
            _ => {
                return Err(
                    Error::new(ErrorKind::NotRunning, "the zygote is not running").with_pid(pid),
                )
            }
        };
        let zygote_err = |e: std::io::Error| Error::caused_by(ErrorKind::Zygote, &e).with_pid(pid);
        let bytes = frame::encode(Kind::Fork, request)?;
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        crate::fdpass::send_with_fds(zfd, &bytes, &raw).map_err(zygote_err)?;
        drop(fds);
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            while let Some(f) = self.decoder.next_frame()? {
                match f.kind {
                    Kind::Forked => {
                        return got.pop().ok_or_else(|| {
                            Error::new(ErrorKind::Zygote, "no pidfd came with the zygote's reply")
                                .with_pid(pid)
                        })
                    }
                    Kind::LaunchError => {
                        let message =
                            serde_json::from_slice::<crate::policy::LaunchFailure>(&f.payload)
                                .map(|l| l.message)
                                .unwrap_or_else(|_| "unreadable failure report".into());
                        return Err(Error::new(ErrorKind::Zygote, message).with_pid(pid));
                    }
                    _ => {}
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "timed out after {} ms waiting for the zygote",
                        timeout.as_millis()
                    ),
                )
                .with_pid(pid));
            }
            if sys::poll_one(zfd, libc::POLLIN, left.as_millis().clamp(1, 1000) as i32) == 0 {
                continue;
            }
            let (n, fds) = crate::fdpass::recv_with_fds(zfd, &mut buf).map_err(zygote_err)?;
            if n == 0 {
                self.kill();
                return Err(Error::new(ErrorKind::NotRunning, "the zygote exited").with_pid(pid));
            }
            got.extend(fds);
            self.decoder.push(&buf[..n]);
        }
    }
}
