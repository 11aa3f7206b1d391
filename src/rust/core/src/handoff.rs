//! How a spare session gets its host: a zygote forks and confines sessions
//! ahead of demand ("spares"), each waiting on a private channel; a fork
//! request from the host then only hands a spare the host's socket and
//! pipes (SCM_RIGHTS) and its claim (a JSON `Claim`), and the session says
//! hello at once. In a sandboxed session the claim reaches the session's
//! init first, which keeps the socket (for the exit report) and passes the
//! claim on to R.

use crate::fdpass;
use crate::frame::{self, Decoder, Kind};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// The largest claim accepted (a token and a path).
const MAX_CLAIM: usize = 64 * 1024;

/// What the host's request gives one spare, besides its fds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// The session's hello token (hex).
    pub token: String,
    /// Without a sandbox: the session's own folder.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// The process name of a spare session's processes until claimed, and of
/// a session's after (`ps` tells them apart).
pub const SPARE_NAME: &std::ffi::CStr = c"securer-spare";
pub const SESSION_NAME: &std::ffi::CStr = c"R";

/// The fds a claim carries: the session's IPC socket, stdout, stderr.
pub const CLAIM_FDS: usize = 3;

/// Sends a claim and its fds down a spare's channel.
pub fn send(chan: RawFd, claim: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let bytes = frame::encode(Kind::Fork, claim)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    fdpass::send_with_fds(chan, &bytes, fds)
}

/// Waits (blocking) for the claim on `chan`: its bytes and exactly
/// `CLAIM_FDS` fds. `None` when the channel closed first (the zygote
/// discarded the spare or is gone) or sent something else.
pub fn receive(chan: RawFd) -> Option<(Vec<u8>, Vec<OwnedFd>)> {
    let mut decoder = Decoder::new(MAX_CLAIM);
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        match decoder.next_frame() {
            Ok(Some(f)) if f.kind == Kind::Fork && fds.len() == CLAIM_FDS => {
                return Some((f.payload, fds))
            }
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) => {}
        }
        match fdpass::recv_with_fds(chan, &mut buf) {
            Ok((0, _)) => return None,
            Ok((n, got)) => {
                fds.extend(got);
                if fds.len() > CLAIM_FDS {
                    return None;
                }
                decoder.push(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// In a sandboxed spare's init: waits for the claim on `chan` and passes
/// it on to R over `to_r`. Returns the session's IPC socket, which init
/// keeps; `None` when no claim came.
pub fn forward(chan: RawFd, to_r: RawFd) -> Option<OwnedFd> {
    let (claim, mut fds) = receive(chan)?;
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    send(to_r, &claim, &raw).ok()?;
    crate::sys::set_name(SESSION_NAME);
    // Init keeps the socket only; the pipes are R's.
    fds.truncate(1);
    fds.pop()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::socketpair;

    #[test]
    fn a_claim_crosses_with_its_fds_and_init_keeps_the_socket() {
        let (zygote, init) = socketpair().unwrap();
        let (init_r, r) = socketpair().unwrap();
        let (a, _a) = socketpair().unwrap();
        let (b, _b) = socketpair().unwrap();
        let (c, _c) = socketpair().unwrap();
        let claim = serde_json::to_vec(&Claim {
            token: "ab".into(),
            dir: None,
        })
        .unwrap();
        send(
            zygote.as_raw_fd(),
            &claim,
            &[a.as_raw_fd(), b.as_raw_fd(), c.as_raw_fd()],
        )
        .unwrap();
        let kept = forward(init.as_raw_fd(), init_r.as_raw_fd()).expect("forwarded");
        assert!(kept.as_raw_fd() >= 0);
        let (got, fds) = receive(r.as_raw_fd()).expect("received");
        assert_eq!(got, claim);
        assert_eq!(fds.len(), CLAIM_FDS);
    }

    #[test]
    fn a_closed_channel_or_a_claim_without_its_fds_is_no_claim() {
        let (zygote, spare) = socketpair().unwrap();
        send(zygote.as_raw_fd(), b"{}", &[]).unwrap();
        assert!(receive(spare.as_raw_fd()).is_none());
        let (zygote, spare) = socketpair().unwrap();
        drop(zygote);
        assert!(receive(spare.as_raw_fd()).is_none());
    }
}
