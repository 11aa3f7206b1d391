//! What the launcher's integration tests share.

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

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
