//! Reporting to the host over a child's IPC socket: the layers a launch
//! applied, why it failed, and how a session ended. Used by the launcher,
//! the sandbox's supervisors and the zygote.

use crate::frame::{self, Kind};
use crate::policy::{ExitReport, LaunchFailure, LaunchReport, LayerState};
use std::os::fd::RawFd;

/// Writes one whole frame to `fd`, retrying on EINTR and short writes.
pub fn frame(fd: RawFd, kind: Kind, payload: &[u8]) -> std::io::Result<()> {
    let bytes = frame::encode(kind, payload)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    crate::sys::send_all(fd, &bytes)
}

/// Sends the launch report (the layers now in force).
pub fn layers(fd: RawFd, layers: Vec<LayerState>) -> std::io::Result<()> {
    let json = serde_json::to_vec(&LaunchReport { layers }).unwrap_or_default();
    frame(fd, Kind::LaunchReport, &json)
}

/// Sends a failure report: in reply to a fork request, or as a launch error.
pub fn failure(fd: RawFd, failure: &LaunchFailure) -> std::io::Result<()> {
    let json = serde_json::to_vec(failure).unwrap_or_default();
    frame(fd, Kind::LaunchError, &json)
}

/// Reports a failure to the host and exits. Never returns.
pub fn fail(fd: RawFd, f: LaunchFailure) -> ! {
    let _ = failure(fd, &f);
    eprintln!("securer-launcher: {}: {}", f.layer, f.message);
    // _exit: a launcher that may have forked must not run atexit handlers.
    crate::sys::exit_now(127)
}

/// Tells the host how the session's R process ended, just before the
/// supervisor exits and the socket closes.
pub fn exit(fd: RawFd, report: &ExitReport) {
    let json = serde_json::to_vec(report).unwrap_or_default();
    let _ = frame(fd, Kind::Exit, &json);
}
