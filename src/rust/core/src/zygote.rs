//! The warm zygote's fork server. Runs inside the zygote R process (called
//! from the child runtime through the glue crate): it waits for fork
//! requests from the host, forks, confines the new session and returns in
//! it, so the session starts with R and its default packages loaded.

use crate::fdpass;
use crate::frame::{self, Decoder, FrameError, Kind};
use crate::policy::{ForkRequest, LaunchFailure, Layer, LayerState, CHILD_IPC_FD};
use crate::report;
use crate::sys;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("the host closed the zygote's connection")]
    Closed,
    #[error("zygote I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// The environment variable in which the launcher tells a zygote what it
/// found of cgroup v2 on the host (the zygote's root has no /sys): read
/// and removed before any session is forked, reported by each session.
pub const CGROUP_ENV: &str = "SECURER_CGROUP";

/// What a freshly forked session needs to go on in R.
pub struct SessionStart {
    pub token: String,
}

fn failure(message: impl Into<String>, errno: Option<i32>) -> LaunchFailure {
    LaunchFailure::new(Layer::Zygote, message, errno)
}

fn reply_failure(ctrl: RawFd, f: &LaunchFailure) -> Result<(), ServeError> {
    report::failure(ctrl, f)?;
    Ok(())
}

/// Serves fork requests on `ctrl` until the host goes away (`Err`).
/// Returns `Ok` only in a forked, confined session, whose IPC socket is fd
/// 3 and whose stdout/stderr are its own pipes.
pub fn serve(ctrl: RawFd, max_frame: usize) -> Result<SessionStart, ServeError> {
    let own_pidns = std::fs::File::open("/proc/self/ns/pid")?;
    let cgroup = std::env::var(CGROUP_ENV).unwrap_or_default();
    std::env::remove_var(CGROUP_ENV);
    let mut decoder = Decoder::new(max_frame);
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        sys::reaped().for_each(drop);
        while let Some(f) = decoder.next_frame()? {
            if f.kind != Kind::Fork {
                continue;
            }
            let mine: Vec<OwnedFd> = std::mem::take(&mut fds);
            let fork = Fork {
                ctrl,
                own_pidns: own_pidns.as_raw_fd(),
                cgroup: &cgroup,
            };
            if let Some(start) = fork_session(&fork, &f.payload, mine)? {
                return Ok(start);
            }
        }
        // The timeout lets us reap regularly.
        if sys::poll_one(ctrl, libc::POLLIN, 1000) == 0 {
            continue;
        }
        let (n, got) = fdpass::recv_with_fds(ctrl, &mut buf)?;
        if n == 0 {
            return Err(ServeError::Closed);
        }
        fds.extend(got);
        decoder.push(&buf[..n]);
    }
}

/// What forking a session needs of the zygote.
struct Fork<'a> {
    /// The host's socket.
    ctrl: RawFd,
    /// The zygote's own pid namespace.
    own_pidns: RawFd,
    /// What the launcher found of cgroup v2 on the host.
    cgroup: &'a str,
}

/// Forks one session. `Ok(None)` in the zygote, `Ok(Some)` in the session.
fn fork_session(
    z: &Fork,
    payload: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<Option<SessionStart>, ServeError> {
    let (ctrl, own_pidns) = (z.ctrl, z.own_pidns);
    let req: ForkRequest = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(e) => {
            reply_failure(ctrl, &failure(format!("invalid fork request: {e}"), None))?;
            return Ok(None);
        }
    };
    if fds.len() != 3 {
        reply_failure(
            ctrl,
            &failure(
                format!("a fork request needs 3 fds, got {}", fds.len()),
                None,
            ),
        )?;
        return Ok(None);
    }
    // The session's init is pid 1 of a new pid namespace: unshare it for
    // our next child only, then step back into our own.
    // SAFETY: unshare with a flag only.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        let e = std::io::Error::last_os_error();
        reply_failure(
            ctrl,
            &failure(
                format!("cannot create a pid namespace: {e}"),
                e.raw_os_error(),
            ),
        )?;
        return Ok(None);
    }
    // SAFETY: the zygote is single-threaded R; the child goes on as R.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        return Ok(Some(become_session(req, fds, z.cgroup)));
    }
    // SAFETY: setns on the fd of our own pid namespace, opened by `serve`.
    if unsafe { libc::setns(own_pidns, libc::CLONE_NEWPID) } != 0 {
        // Every later session would be nested in this one's namespace:
        // better to end the zygote (the host starts a new one).
        return Err(ServeError::Io(std::io::Error::last_os_error()));
    }
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        reply_failure(
            ctrl,
            &failure(format!("fork failed: {e}"), e.raw_os_error()),
        )?;
        return Ok(None);
    }
    drop(fds);
    // SAFETY: pidfd_open with a pid and no flags.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: killing our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        reply_failure(
            ctrl,
            &failure(format!("pidfd_open failed: {e}"), e.raw_os_error()),
        )?;
        return Ok(None);
    }
    // SAFETY: pidfd_open returned a new fd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    let bytes = frame::encode(Kind::Forked, pid.to_string().as_bytes())?;
    fdpass::send_with_fds(ctrl, &bytes, &[pidfd.as_raw_fd()])?;
    Ok(None)
}

/// In the forked process: takes the session's fds, confines it, reports.
fn become_session(req: ForkRequest, fds: Vec<OwnedFd>, cgroup: &str) -> SessionStart {
    let raw: Vec<RawFd> = fds.into_iter().map(|f| f.into_raw_fd()).collect();
    let ipc = CHILD_IPC_FD;
    let placed = [(raw[0], ipc), (raw[1], 1), (raw[2], 2)]
        .iter()
        .all(|&(from, to)| sys::install_fd(from, to).is_ok());
    if !placed {
        // Nothing to clean up in a half-made session.
        sys::exit_now(1);
    }
    sys::close_fds_except(&[ipc]);
    let mut layers: Vec<LayerState> =
        match crate::sandbox::session::confine(&req.policy, &req.limits, ipc, cgroup) {
            Ok(l) => l,
            Err(f) => report::fail(ipc, f),
        };
    layers.push(LayerState::new(
        Layer::Environment,
        true,
        "the zygote's clean environment; other fds closed",
    ));
    if report::layers(ipc, layers).is_err() {
        // The host is gone: end quietly.
        sys::exit_now(1);
    }
    SessionStart { token: req.token }
}
