//! Confinement of a session forked from a warm zygote.
//!
//! The zygote runs inside the namespaces and the fresh root, but without
//! Landlock, seccomp or dropped capabilities, so that each session it forks
//! can get namespaces of its own. In the forked process (the "supervisor"):
//!
//! ```text
//! zygote ── supervisor: new mount, pid and ipc namespaces; forwards signals,
//!           │           reports the session's exit on the IPC socket
//!           └── session (pid 1 of its own pid namespace): private /tmp
//!               (tmpfs), own /proc, capabilities dropped, Landlock (its
//!               own domain: it cannot signal or reach its siblings or the
//!               zygote), seccomp; returns to R
//! ```

use super::plan::{FsRule, Grant, DEV_NODES};
use super::sys::{self, failure, os_failure};
use super::{caps, landlock, seccomp, state};
use crate::frame::Kind;
use crate::policy::{ExitReport, LaunchFailure, LayerState, SandboxPolicy};
use std::ffi::CString;
use std::os::fd::RawFd;

const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

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

/// Called in the process the zygote just forked, with the session's IPC
/// socket at `ipc_fd`. Returns only in the confined session process.
/// `cpu_limit` is the session's CPU limit in seconds (applied later, in the
/// session), which the supervisor needs to report a CPU-limit kill.
pub fn confine(
    policy: &SandboxPolicy,
    ipc_fd: RawFd,
    cpu_limit: Option<u64>,
) -> Result<Vec<LayerState>, LaunchFailure> {
    let strict = policy.strict;
    // A private IPC namespace too: SysV shared memory, semaphores and
    // message queues are not covered by Landlock, and a shared namespace
    // would let sibling sessions exchange data.
    // SAFETY: unshare with flags only.
    if unsafe { libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC) } != 0 {
        return Err(os_failure(
            "namespaces",
            "cannot give the forked session its own mount, pid and ipc namespaces",
            sys::errno(),
        ));
    }
    let mut waited: Vec<libc::c_int> = FORWARDED.to_vec();
    waited.push(libc::SIGCHLD);
    let set = sys::sigset(&waited);
    sys::set_default_handler(libc::SIGCHLD);
    let old_mask = sys::block(&set).map_err(|e| os_failure("namespaces", "sigprocmask", e))?;
    // SAFETY: the zygote is single-threaded R; the child continues as R.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os_failure(
            "namespaces",
            "cannot fork the session",
            sys::errno(),
        ));
    }
    if pid > 0 {
        supervise(pid, ipc_fd, &set, cpu_limit);
    }
    // The session: pid 1 of its own namespace.
    if sys::set_pdeathsig().is_err() {
        sys::exit_now(1);
    }
    // SAFETY: getppid cannot fail; 0 means the parent is outside our pid
    // namespace, i.e. the supervisor is alive.
    if unsafe { libc::getppid() } != 0 {
        sys::exit_now(1);
    }
    sys::set_mask(&old_mask);
    // SAFETY: setsid has no arguments.
    unsafe { libc::setsid() };

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
            "forked from a warm zygote: own mount, pid and ipc namespaces; user, network \
             (loopback only), uts and cgroup namespaces shared with the zygote",
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

/// The supervisor: forwards signals to the session and, once it is gone,
/// reports how it ended on the IPC socket, then exits the same way.
fn supervise(
    session: libc::pid_t,
    ipc_fd: RawFd,
    set: &libc::sigset_t,
    cpu_limit: Option<u64>,
) -> ! {
    sys::close_fds_except(&[ipc_fd]);
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) };
    loop {
        let sig = sys::wait_signal(set);
        if sig != libc::SIGCHLD {
            sys::kill(session, sig);
            continue;
        }
        let Some(status) = sys::try_wait(session) else {
            continue;
        };
        let report = if libc::WIFSIGNALED(status) {
            let mut signal = libc::WTERMSIG(status);
            // The session is pid 1 of its namespace, so the kernel drops the
            // SIGXCPU of the soft CPU limit (a namespace's init ignores
            // signals it has no handler for) and the hard limit's SIGKILL
            // ends it a second later. Report that as SIGXCPU, as a session
            // started cold would end.
            if signal == libc::SIGKILL
                && cpu_limit.is_some_and(|limit| children_cpu_seconds() >= limit as f64)
            {
                signal = libc::SIGXCPU;
            }
            ExitReport {
                code: None,
                signal: Some(signal),
            }
        } else {
            ExitReport {
                code: Some(libc::WEXITSTATUS(status)),
                signal: None,
            }
        };
        let json = serde_json::to_vec(&report).unwrap_or_default();
        let _ = crate::launch::write_frame(ipc_fd, Kind::Exit, &json);
        sys::exit_now(report.code.unwrap_or(1))
    }
}

/// CPU seconds (user and system) used by the reaped children: here, the
/// session and the processes it waited for.
fn children_cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage for the call to fill.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// A failure for the zygote's own checks.
pub fn zygote_failure(message: impl Into<String>) -> LaunchFailure {
    failure("zygote", message, None)
}
