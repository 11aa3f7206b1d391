//! Confinement of a session forked from a warm zygote.
//!
//! The zygote runs inside the namespaces and the fresh root, but without
//! Landlock, seccomp or dropped capabilities, so that each session it forks
//! can get namespaces of its own. The zygote forks each session's init
//! straight into a new pid namespace (see `zygote::fork_session`):
//!
//! ```text
//! zygote ── init (pid 1): own mount, ipc and network namespaces (private
//!           │             /tmp, own /proc, own sockets), then its own user
//!           │             namespace (so RLIMIT_NPROC counts this session
//!           │             alone); supervises the session (see `supervisor`)
//!           └── R (pid 2): capabilities dropped, Landlock (a domain of its
//!                          own: it cannot signal or reach its siblings or
//!                          the zygote), seccomp; returns to R
//! ```

use super::coverage::{annotate, Tier as Coverage};
use super::plan::{root_rules, DEV_NODES};
use super::supervisor::{self, Budget, Post};
use super::{caps, landlock, mounts, seccomp};
use crate::policy::{ExitReport, LaunchFailure, Layer, LayerState, Limits, SandboxPolicy};
use crate::report;
use crate::sys::{self, mount};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

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
/// `cgroup`: what the zygote's launcher found of cgroup v2 on the host
/// (forked sessions are supervised by their init either way).
pub fn confine(
    policy: &SandboxPolicy,
    limits: &Limits,
    ipc_fd: RawFd,
    cgroup: &str,
) -> Result<Vec<LayerState>, LaunchFailure> {
    let strict = policy.strict;
    // Private IPC and network namespaces too: Landlock covers neither SysV
    // IPC nor /proc/net, and shared ones would let sibling sessions
    // exchange data or list each other's sockets.
    // SAFETY: unshare with flags only.
    let flags = libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWNET;
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(LaunchFailure::os(
            Layer::Namespaces,
            "cannot give the forked session its own mount, ipc and network namespaces",
            sys::errno(),
        ));
    }
    mount(
        "none",
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .map_err(|e| LaunchFailure::os(Layer::Root, "making mounts private", e))?;
    // Granted paths under /tmp (a library in a temporary folder) would
    // vanish under the session's own /tmp: take them along.
    let carried = mounts::carry_from_tmp(policy.read_only.iter().chain(&policy.writable))?;
    let carried_count = carried.len();
    let size = policy.tmp_size.max(4096);
    mount(
        "tmpfs",
        Path::new("/tmp"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&format!(
            "size={size},nr_inodes={},mode=1777",
            super::plan::tmp_inodes(size)
        )),
    )
    .map_err(|e| LaunchFailure::os(Layer::Root, "mounting the private /tmp", e))?;
    mounts::place_carried(carried)?;
    // The session works in its own /tmp, as a cold start does; the
    // zygote's working directory is the /tmp the mount above hides (and
    // that Landlock will not grant).
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::chdir(c"/tmp".as_ptr()) } != 0 {
        return Err(LaunchFailure::os(
            Layer::Root,
            "cannot enter the private /tmp",
            sys::errno(),
        ));
    }
    let proc_mounted = mount(
        "proc",
        Path::new("/proc"),
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some("hidepid=invisible"),
    )
    .is_ok();
    // Last, so that the mounts above stay owned (and locked) by the
    // zygote's user namespace.
    let userns = own_user_namespace();
    if let (Err(e), true) = (&userns, strict) {
        return Err(LaunchFailure::os(
            Layer::Namespaces,
            "cannot create the session's user namespace",
            *e,
        ));
    }

    let mut waited: Vec<libc::c_int> = super::namespaces::FORWARDED.to_vec();
    waited.push(libc::SIGCHLD);
    let set = sys::sigset(&waited);
    sys::set_default_handler(libc::SIGCHLD);
    let old_mask =
        sys::block(&set).map_err(|e| LaunchFailure::os(Layer::Namespaces, "sigprocmask", e))?;
    let budget = Budget {
        sysv: true,
        ..Budget::new(limits)
    };
    let supervised = budget.describe();
    // SAFETY: this process is a single-threaded fork of the zygote.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(LaunchFailure::os(
            Layer::Namespaces,
            "cannot fork the session",
            sys::errno(),
        ));
    }
    if pid > 0 {
        let post = Post {
            r_pid: pid,
            own_pid_ns: true,
            forward: true,
            keep: vec![ipc_fd],
            cgroup: None,
        };
        supervisor::run(post, budget, &set, |status, limit| {
            report::exit(ipc_fd, &ExitReport::from_wait_status(status, limit))
        })
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

    let existing = |paths: &[PathBuf]| -> Vec<PathBuf> {
        paths.iter().filter(|p| p.exists()).cloned().collect()
    };
    let dev: Vec<&str> = DEV_NODES
        .iter()
        .copied()
        .filter(|d| Path::new("/dev").join(d).exists())
        .collect();
    let rules = root_rules(
        &existing(&policy.read_only),
        &existing(&policy.writable),
        dev,
        proc_mounted,
    );

    let mut layers = vec![
        LayerState::new(
            Layer::Namespaces,
            true,
            format!(
                "forked from a warm zygote: own pid, mount, ipc and network (loopback only) \
                 namespaces{}; uts and cgroup namespaces shared with the zygote",
                match userns {
                    Ok(()) => ", own user namespace".to_string(),
                    Err(e) => format!(
                        "; user namespace shared with the zygote ({})",
                        sys::strerror(e)
                    ),
                }
            ),
        ),
        LayerState::new(
            Layer::Root,
            true,
            format!(
                "the zygote's read-only root; private /tmp (tmpfs, {size} bytes){}{}",
                if carried_count > 0 {
                    format!(" holding the {carried_count} granted paths under /tmp")
                } else {
                    String::new()
                },
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
    layers.push(seccomp::apply(strict, seccomp::Tier::Namespaced)?);
    let mut layers: Vec<LayerState> = layers
        .into_iter()
        .map(|l| annotate(l, Coverage::Forked))
        .collect();
    let mut session = if supervised.is_empty() {
        "none requested".to_string()
    } else {
        format!(
            "{supervised}, enforced by the session's init (pid 1), which stops the session \
             when it passes one (measured every 0.1 s or so)"
        )
    };
    if !cgroup.is_empty() {
        session.push_str("; ");
        session.push_str(cgroup);
    }
    layers.push(super::limits::layer(limits, &session)?);
    Ok(layers)
}
