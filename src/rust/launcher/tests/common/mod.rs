//! What the launcher's integration tests share.

use serde_json::Value;
use std::io::Read;
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

/// Lets the launcher that `cmd` runs inherit `fd` (its end of the test's
/// IPC socket pair, which Rust opens close-on-exec).
pub fn inherit_fd(cmd: &mut Command, fd: RawFd) {
    // SAFETY: only fcntl, which is async-signal-safe, runs in the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Every frame the launcher and the program sent on `ipc` until it closed:
/// (kind, JSON payload; `Null` for a payload that is not JSON).
pub fn read_frames(ipc: &mut UnixStream) -> Vec<(u8, Value)> {
    ipc.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut bytes = Vec::new();
    let _ = ipc.read_to_end(&mut bytes);
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 5 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() < 5 + len {
            break;
        }
        let v: Value = serde_json::from_slice(&rest[5..5 + len]).unwrap_or(Value::Null);
        frames.push((rest[4], v));
        rest = &rest[5 + len..];
    }
    frames
}
