//! Child side of the IPC socket: blocking frame I/O for the child runtime.

use crate::frame::{self, Decoder, Frame, FrameError, Kind};
use std::os::fd::RawFd;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ChildIoError {
    #[error("the host closed the connection")]
    Closed,
    #[error("IPC read failed: {0}")]
    Read(std::io::Error),
    #[error("IPC write failed: {0}")]
    Write(std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Blocking endpoint over an inherited socket fd.
pub struct ChildIo {
    fd: RawFd,
    decoder: Decoder,
}

impl ChildIo {
    pub fn new(fd: RawFd, max_frame: usize) -> ChildIo {
        ChildIo {
            fd,
            decoder: Decoder::new(max_frame),
        }
    }

    pub fn send(&mut self, kind: Kind, payload: &[u8]) -> Result<(), ChildIoError> {
        let bytes = frame::encode(kind, payload)?;
        crate::sys::send_all(self.fd, &bytes).map_err(ChildIoError::Write)
    }

    pub fn recv(&mut self) -> Result<Frame, ChildIoError> {
        let mut buf = vec![0u8; 65536];
        loop {
            if let Some(f) = self.decoder.next_frame()? {
                return Ok(f);
            }
            let want = self.decoder.wanted()?.clamp(1, buf.len());
            // SAFETY: buf is a live, writable buffer of at least `want` bytes.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), want) };
            if n == 0 {
                return Err(ChildIoError::Closed);
            }
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ChildIoError::Read(err));
            }
            self.decoder.push(&buf[..n as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_and_receive_over_a_socketpair() {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid two-int array.
        assert_eq!(
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) },
            0
        );
        let mut a = ChildIo::new(fds[0], 1024);
        let mut b = ChildIo::new(fds[1], 1024);
        a.send(Kind::Result, b"abc").unwrap();
        let f = b.recv().unwrap();
        assert_eq!((f.kind, f.payload.as_slice()), (Kind::Result, &b"abc"[..]));
        // SAFETY: closing fds this test opened.
        unsafe { libc::close(fds[0]) };
        assert!(matches!(b.recv(), Err(ChildIoError::Closed)));
        // SAFETY: as above.
        unsafe { libc::close(fds[1]) };
    }
}
