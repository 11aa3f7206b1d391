//! Confinement of a session forked from a warm zygote.
//!
//! The zygote runs inside the namespaces and the fresh root, but without
//! Landlock, seccomp or dropped capabilities, so that each session it forks
//! can get namespaces of its own. The zygote forks each session's init
//! straight into a new pid namespace (see `zygote::fork_session`):
//!
//! ```text
//! zygote ── init (pid 1): own mount and ipc namespaces (private /tmp,
//!           │             own /proc), then its own user namespace (so
//!           │             RLIMIT_NPROC counts this session alone); forwards
//!           │             signals, reaps orphans, reports R's exit
//!           └── R (pid 2): capabilities dropped, Landlock (a domain of its
//!                          own: it cannot signal or reach its siblings or
//!                          the zygote), seccomp; returns to R
//! ```

use super::plan::{FsRule, Grant, DEV_NODES};
use super::{caps, landlock, seccomp, state};
use crate::frame::Kind;
use crate::policy::{ExitReport, LaunchFailure, LayerState, SandboxPolicy};
use crate::sys::{self, os_failure};
use std::ffi::CString;
use std::os::fd::RawFd;

fn mount(
    src: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<(), i32> {
    let c = |s: &str| CString::new(s).map_err(|_| libc::EINVAL);
    let (src, target, fstype, data) = (c(src)?, c(target)?, c(fstype)?, c(data)?);
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        Err(sys::errno())
    } else {
        Ok(())
    }
}

/// Enters a user namespace of its own, uid and gid 0 mapped to 0 of the
/// zygote's (itself unprivileged outside).
fn own_user_namespace() -> Result<(), i32> {
    // SAFETY: unshare with a flag only.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        return Err(sys::errno());
    }
    for (file, text) in [
        ("/proc/self/setgroups", "deny"),
        ("/proc/self/uid_map", "0 0 1"),
        ("/proc/self/gid_map", "0 0 1"),
    ] {
        std::fs::write(file, text).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    }
    Ok(())
}

/// Called in the session's init, which the zygote forked as pid 1 of a new
/// pid namespace, with the session's IPC socket at `ipc_fd`. Returns only
/// in the confined R process (pid 2).
pub fn confine(policy: &SandboxPolicy, ipc_fd: RawFd) -> Result<Vec<LayerState>, LaunchFailure> {
    let strict = policy.strict;
    // A private IPC namespace too: SysV shared memory, semaphores and
    // message queues are not covered by Landlock, and a shared namespace
    // would let sibling sessions exchange data.
    // SAFETY: unshare with flags only.
    if unsafe { libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWIPC) } != 0 {
        return Err(os_failure(
            "namespaces",
            "cannot give the forked session its own mount and ipc namespaces",
            sys::errno(),
        ));
    }
    mount("none", "/", "", libc::MS_REC | libc::MS_PRIVATE, "")
        .map_err(|e| os_failure("root", "making mounts private", e))?;
    let size = policy.tmp_size.max(4096);
    mount(
        "tmpfs",
        "/tmp",
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV,
        &format!("size={size},mode=1777"),
    )
    .map_err(|e| os_failure("root", "mounting the private /tmp", e))?;
    let proc_mounted = mount(
        "proc",
        "/proc",
        "proc",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "hidepid=invisible",
    )
    .is_ok();
    // Last, so that the mounts above stay owned (and locked) by the
    // zygote's user namespace.
    let userns = own_user_namespace();
    if let (Err(e), true) = (&userns, strict) {
        return Err(os_failure(
            "namespaces",
            "cannot create the session's user namespace",
            *e,
        ));
    }

    let mut waited: Vec<libc::c_int> = super::namespaces::FORWARDED.to_vec();
    waited.push(libc::SIGCHLD);
    let set = sys::sigset(&waited);
    sys::set_default_handler(libc::SIGCHLD);
    let old_mask = sys::block(&set).map_err(|e| os_failure("namespaces", "sigprocmask", e))?;
    // SAFETY: this process is a single-threaded fork of the zygote.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os_failure(
            "namespaces",
            "cannot fork the session",
            sys::errno(),
        ));
    }
    if pid > 0 {
        init_loop(pid, ipc_fd, &set);
    }
    // R: pid 2.
    if sys::set_pdeathsig().is_err() {
        sys::exit_now(1);
    }
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } != 1 {
        sys::exit_now(1);
    }
    sys::set_mask(&old_mask);
    // SAFETY: setsid has no arguments.
    unsafe { libc::setsid() };

    let mut rules = vec![FsRule::new("/", Grant::ListDir)];
    for p in &policy.read_only {
        if p.exists() {
            rules.push(FsRule::new(p, Grant::ReadExec));
        }
    }
    for p in &policy.writable {
        if p.exists() {
            rules.push(FsRule::new(p, Grant::ReadWrite));
        }
    }
    rules.push(FsRule::new("/tmp", Grant::ReadWrite));
    for d in DEV_NODES {
        let p = format!("/dev/{d}");
        if std::path::Path::new(&p).exists() {
            rules.push(FsRule::new(p, Grant::Device));
        }
    }
    if proc_mounted {
        rules.push(FsRule::new("/proc", Grant::ReadData));
    }

    let mut layers = vec![
        state(
            "namespaces",
            true,
            format!(
                "forked from a warm zygote: own pid, mount and ipc namespaces{}; network \
                 (loopback only), uts and cgroup namespaces shared with the zygote",
                match userns {
                    Ok(()) => ", own user namespace".to_string(),
                    Err(e) => format!(
                        "; user namespace shared with the zygote ({})",
                        sys::strerror(e)
                    ),
                }
            ),
        ),
        state(
            "root",
            true,
            format!(
                "the zygote's read-only root; private /tmp (tmpfs, {size} bytes){}",
                if proc_mounted {
                    ", own /proc"
                } else {
                    ", no /proc"
                }
            ),
        ),
    ];
    sys::default_sigpipe();
    layers.push(caps::drop_all(strict)?);
    layers.push(landlock::apply(&rules, strict)?);
    layers.push(seccomp::apply(strict, false)?);
    Ok(layers)
}

/// The session's init (see `namespaces::run_init`): once R is gone it
/// reports how R ended on the IPC socket.
fn init_loop(r_pid: libc::pid_t, ipc_fd: RawFd, set: &libc::sigset_t) -> ! {
    super::namespaces::run_init(r_pid, &[ipc_fd], set, |status| {
        let report = if libc::WIFSIGNALED(status) {
            ExitReport {
                code: None,
                signal: Some(libc::WTERMSIG(status)),
            }
        } else {
            ExitReport {
                code: Some(libc::WEXITSTATUS(status)),
                signal: None,
            }
        };
        let json = serde_json::to_vec(&report).unwrap_or_default();
        let _ = crate::launch::write_frame(ipc_fd, Kind::Exit, &json);
    })
}
