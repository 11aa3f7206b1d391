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
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::path::{Path, PathBuf};

/// Computes, in a zygote before its first fork, what every session it
/// confines installs alike (the seccomp filter), so that sessions do not
/// each build it on the heap they share with the zygote.
pub fn prepare() {
    seccomp::prepare();
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

/// A confined spare session, in R (pid 2), or in its init when the session
/// could not be made: what to report once claimed, and where the claim
/// comes from (see `handoff`).
pub struct Confined {
    pub layers: Result<Vec<LayerState>, LaunchFailure>,
    pub claim_fd: RawFd,
}

/// Called in the session's init, which the zygote forked as pid 1 of a new
/// pid namespace ahead of demand; `chan` is where its claim will come
/// from. Returns in the confined R process (pid 2), or in init when the
/// session could not be made; init itself waits for the claim, passes it
/// on to R and supervises the session.
/// `cgroup`: what the zygote's launcher found of cgroup v2 on the host
/// (forked sessions are supervised by their init either way).
pub fn confine(policy: &SandboxPolicy, limits: &Limits, chan: RawFd, cgroup: &str) -> Confined {
    match namespaces_and_fork(policy, limits, chan) {
        Ok(Forked {
            userns,
            proc_mounted,
            size,
            carried_count,
            claim_fd,
        }) => Confined {
            layers: confine_r(
                policy,
                limits,
                cgroup,
                userns,
                proc_mounted,
                size,
                carried_count,
            ),
            claim_fd,
        },
        Err(f) => Confined {
            layers: Err(f),
            claim_fd: chan,
        },
    }
}

/// What init made of the session before forking R.
struct Forked {
    userns: Result<(), i32>,
    proc_mounted: bool,
    size: u64,
    carried_count: usize,
    /// R's end of the pair over which init passes the claim on.
    claim_fd: RawFd,
}

/// Init's part: namespaces, mounts, the fork of R. Returns in R.
fn namespaces_and_fork(
    policy: &SandboxPolicy,
    limits: &Limits,
    chan: RawFd,
) -> Result<Forked, LaunchFailure> {
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
    mounts::make_private()?;
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
    let (for_init, for_r) = sys::socketpair().map_err(|e| {
        LaunchFailure::os(
            Layer::Namespaces,
            "socketpair",
            e.raw_os_error().unwrap_or(0),
        )
    })?;
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
        drop(for_r);
        // Idle until claimed; then the socket stays with init (for the
        // exit report) and the claim goes on to R.
        let Some(ipc) = crate::handoff::forward(chan, for_init.as_raw_fd()) else {
            sys::kill(pid, libc::SIGKILL);
            sys::exit_now(0)
        };
        let ipc_fd = ipc.into_raw_fd();
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
    drop(for_init);
    // The zygote's channel is init's business.
    // SAFETY: closing an fd this process inherited and no longer uses.
    unsafe { libc::close(chan) };
    Ok(Forked {
        userns,
        proc_mounted,
        size,
        carried_count,
        claim_fd: for_r.into_raw_fd(),
    })
}

/// R's part: capabilities, Landlock, seccomp, limits.
fn confine_r(
    policy: &SandboxPolicy,
    limits: &Limits,
    cgroup: &str,
    userns: Result<(), i32>,
    proc_mounted: bool,
    size: u64,
    carried_count: usize,
) -> Result<Vec<LayerState>, LaunchFailure> {
    let strict = policy.strict;
    let budget = Budget {
        sysv: true,
        ..Budget::new(limits)
    };
    let supervised = budget.describe();

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

/// A session forked from a zygote (pid `zygote`) without a sandbox: a
/// process group of its own, led by its supervisor (this process),
/// which forks R. Returns in R; the supervisor waits for the claim, passes
/// it on and supervises (without limits on the whole session: those come
/// with the sandbox).
pub fn plain(limits: &Limits, chan: RawFd, zygote: libc::pid_t) -> Confined {
    // Sessions die with their zygote (which dies with the host), as
    // sandboxed ones do with their pid namespace.
    // SAFETY: getppid cannot fail.
    if sys::set_pdeathsig().is_err() || unsafe { libc::getppid() } != zygote {
        sys::exit_now(1);
    }
    // SAFETY: setsid has no arguments; a fork of the zygote is no group
    // leader, so it succeeds.
    unsafe { libc::setsid() };
    // Orphans of R stay in reach of the supervisor, which ends them.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    let fail = |what: &str, e: i32| Confined {
        layers: Err(LaunchFailure::os(Layer::Supervisor, what, e)),
        claim_fd: chan,
    };
    let mut waited: Vec<libc::c_int> = super::namespaces::FORWARDED.to_vec();
    waited.push(libc::SIGCHLD);
    let set = sys::sigset(&waited);
    sys::set_default_handler(libc::SIGCHLD);
    let old_mask = match sys::block(&set) {
        Ok(m) => m,
        Err(e) => return fail("sigprocmask", e),
    };
    let (for_sup, for_r) = match sys::socketpair() {
        Ok(p) => p,
        Err(e) => return fail("socketpair", e.raw_os_error().unwrap_or(0)),
    };
    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() };
    // SAFETY: this process is a single-threaded fork of the zygote.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return fail("cannot fork the session", sys::errno());
    }
    if pid > 0 {
        drop(for_r);
        let Some(ipc) = crate::handoff::forward(chan, for_sup.as_raw_fd()) else {
            sys::kill(pid, libc::SIGKILL);
            sys::exit_now(0)
        };
        let ipc_fd = ipc.into_raw_fd();
        let post = Post {
            r_pid: pid,
            own_pid_ns: false,
            // The host signals the supervisor (by its pidfd), not the group.
            forward: true,
            keep: vec![ipc_fd],
            cgroup: None,
        };
        supervisor::run(post, Budget::default(), &set, |status, limit| {
            report::exit(ipc_fd, &ExitReport::from_wait_status(status, limit))
        })
    }
    // SAFETY: getppid cannot fail.
    if sys::set_pdeathsig().is_err() || unsafe { libc::getppid() } != me {
        sys::exit_now(1);
    }
    sys::set_mask(&old_mask);
    drop(for_sup);
    // SAFETY: closing an fd this process inherited and no longer uses.
    unsafe { libc::close(chan) };
    sys::default_sigpipe();
    let layers =
        super::limits::layer(limits, "per process only without the sandbox").map(|l| vec![l]);
    Confined {
        layers,
        claim_fd: for_r.into_raw_fd(),
    }
}
