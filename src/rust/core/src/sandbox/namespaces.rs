//! Layer 1: namespaces, and the three processes of the full tier.
//!
//! The outer launcher clones a child straight into new user, mount, pid,
//! network, ipc, uts and cgroup namespaces, so that child is pid 1 there.
//! The outer launcher (still in the host's namespaces) writes the child's
//! uid/gid maps: uid 0 inside is the caller's own uid outside, or nobody
//! (65534) when the caller is root, whose processes RLIMIT_NPROC does not
//! bind. Pid 1 builds the new root (see `mounts`), then forks pid 2, which
//! returns from `sandbox::enter` and goes on to exec R.
//!
//! Pipes between the outer launcher and pid 1:
//! * "go" (outer -> init): one byte once the id maps are written; kept open
//!   so that init sees the outer launcher die (POLLHUP);
//! * "status" (init -> outer): `ok`, or `fail <json>` when the namespaces
//!   or the root cannot be set up (the outer launcher then falls back to
//!   the tier without namespaces, or fails when strict), and finally
//!   `exit <wait status>` with R's wait status.
//!
//! Init is also the session's supervisor (see `supervisor`): it keeps the
//! IPC socket to tell the host how R ended, and which session limit
//! stopped it.

use super::cgroup::Cgroup;
use super::mounts;
use super::plan::{root_rules, FsRule, Plan};
use super::supervisor::{self, Budget, Post};
use crate::policy::{ExitReport, LaunchFailure, LaunchSpec, Layer, LayerState};
use crate::report;
use crate::sys;
use std::os::fd::{AsRawFd, OwnedFd};

const NS_FLAGS: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP;

/// Signals the outer launcher and init pass on to R.
pub(crate) const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The unprivileged outer uid/gid that root's sandboxes run as.
const NOBODY: u32 = 65534;

const HOSTNAME: &str = "securer";

pub(crate) enum NsError {
    /// The platform refuses the namespaces (or the root built in them):
    /// fall back, or fail when strict.
    Unavailable(LaunchFailure),
    /// Something else went wrong: fail.
    Fatal(LaunchFailure),
}

/// What pid 2 takes home.
pub(crate) struct Inside {
    pub layers: Vec<LayerState>,
    /// Landlock rules on the paths of the new root.
    pub rules: Vec<FsRule>,
}

/// The signal mask before the launcher blocked `waited` (the forwarded
/// signals and SIGCHLD).
struct Signals {
    old_mask: libc::sigset_t,
    waited: libc::sigset_t,
}

#[derive(Clone, Copy)]
struct Ids {
    uid: u32,
    outer_uid: u32,
    outer_gid: u32,
}

/// Returns in pid 2 only (`Ok`), or in the outer launcher when the
/// namespaces are unavailable (`Err`). The outer launcher and pid 1 never
/// return on success.
/// With a session `cgroup`, init and everything below it run in it and the
/// kernel enforces the memory and task limits; init supervises the rest.
pub(crate) fn enter(
    spec: &LaunchSpec,
    plan: &Plan,
    cgroup: Option<&Cgroup>,
) -> Result<Inside, NsError> {
    let fatal = |f| Err(NsError::Fatal(f));
    // Children report through SIGCHLD; an inherited SIG_IGN would reap
    // them behind our back.
    sys::set_default_handler(libc::SIGCHLD);
    let mut waited: Vec<libc::c_int> = FORWARDED.to_vec();
    waited.push(libc::SIGCHLD);
    let set = sys::sigset(&waited);
    let old_mask = match sys::block(&set) {
        Ok(m) => m,
        Err(e) => return fatal(LaunchFailure::os(Layer::Namespaces, "sigprocmask", e)),
    };
    let restore = || sys::set_mask(&old_mask);

    // SAFETY: geteuid/getegid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let ids = Ids {
        uid,
        outer_uid: if uid == 0 { NOBODY } else { uid },
        outer_gid: if uid == 0 { NOBODY } else { gid },
    };
    if uid == 0 {
        // Supplementary groups (root's group 0 among them) would stay
        // with the sandbox; setgroups is denied inside, so drop them now.
        // SAFETY: an empty group list.
        unsafe { libc::setgroups(0, std::ptr::null()) };
    }

    let ((go_r, go_w), (st_r, st_w)) = match (sys::pipe(), sys::pipe()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            restore();
            return fatal(LaunchFailure::os(Layer::Namespaces, "pipe", e));
        }
    };

    // SAFETY: clone without CLONE_VM and without a new stack behaves like
    // fork(2): the child gets a copy of this single-threaded process and
    // continues from here. glibc's fork handlers do not run, which is fine
    // as there is no other thread and no lock is held; the child avoids
    // raise()/abort(), which rely on the thread id glibc cached.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (NS_FLAGS | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        let e = sys::errno();
        restore();
        return Err(NsError::Unavailable(LaunchFailure::os(
            Layer::Namespaces,
            "cannot create user namespace (clone)",
            e,
        )));
    }
    if pid == 0 {
        drop(go_w);
        drop(st_r);
        let signals = Signals {
            old_mask,
            waited: set,
        };
        return init_main(spec, plan, go_r, st_w, &signals, ids, cgroup.is_some());
    }
    let pid = pid as libc::pid_t;
    drop(go_r);
    drop(st_w);

    let unavailable = |f: LaunchFailure| {
        sys::kill(pid, libc::SIGKILL);
        sys::wait_blocking(pid);
        restore();
        Err(NsError::Unavailable(f))
    };
    if let Some(cg) = cgroup {
        if let Err(e) = cg.add(pid) {
            sys::kill(pid, libc::SIGKILL);
            sys::wait_blocking(pid);
            restore();
            return fatal(LaunchFailure::new(
                Layer::Cgroup,
                format!("cannot move the session into its cgroup: {e}"),
                e.raw_os_error(),
            ));
        }
    }
    if let Err(f) = write_id_maps(pid, ids) {
        return unavailable(f);
    }
    if let Err(e) = sys::write_all(go_w.as_raw_fd(), b"g") {
        return unavailable(LaunchFailure::os(
            Layer::Namespaces,
            "cannot start the namespace init",
            e,
        ));
    }
    let line = sys::read_line(st_r.as_raw_fd(), 1 << 16);
    if line == b"ok" {
        supervise(pid, st_r, go_w, &set, spec.ipc_fd, cgroup)
    }
    let status = sys::wait_blocking(pid);
    restore();
    if let Some(json) = line.strip_prefix(b"fail ") {
        if let Ok(f) = serde_json::from_slice::<LaunchFailure>(json) {
            return Err(NsError::Unavailable(f));
        }
    }
    fatal(LaunchFailure::new(
        Layer::Namespaces,
        format!(
            "the namespace init process ended during setup ({})",
            sys::describe_status(status)
        ),
        None,
    ))
}

fn write_id_maps(pid: libc::pid_t, ids: Ids) -> Result<(), LaunchFailure> {
    let write = |file: &str, text: String| {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, text.as_bytes()).map_err(|e| {
            let errno = e.raw_os_error();
            LaunchFailure::new(
                Layer::Namespaces,
                format!("cannot write {path}: {e}"),
                errno,
            )
        })
    };
    write("uid_map", format!("0 {} 1\n", ids.outer_uid))?;
    write("setgroups", "deny".to_string())?;
    write("gid_map", format!("0 {} 1\n", ids.outer_gid))?;
    Ok(())
}

/// The outer launcher once the sandbox runs: passes signals to init and
/// ends the way R ended. With a session cgroup, it also tells the host
/// when the kernel ended the whole session (init with it) for a limit.
fn supervise(
    init: libc::pid_t,
    status_r: OwnedFd,
    go_w: OwnedFd,
    set: &libc::sigset_t,
    ipc_fd: i32,
    cgroup: Option<&Cgroup>,
) -> ! {
    // The host must see the IPC socket close when R is gone: the outer
    // launcher keeps it only to report a session the kernel killed whole.
    let mut keep = vec![status_r.as_raw_fd(), go_w.as_raw_fd()];
    if let Some(cg) = cgroup {
        keep.extend([ipc_fd, cg.fd()]);
    }
    sys::close_fds_except(&keep);
    loop {
        let Some(sig) = sys::wait_signal(set, None) else {
            continue;
        };
        if sig != libc::SIGCHLD {
            sys::kill(init, sig);
            continue;
        }
        let Some(init_status) = sys::try_wait(init) else {
            continue;
        };
        // Init wrote R's wait status before exiting, unless it was killed.
        let line = sys::read_line(status_r.as_raw_fd(), 64);
        let r_status = line
            .strip_prefix(b"exit ")
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.trim().parse::<libc::c_int>().ok());
        if let (None, Some(cg)) = (r_status, cgroup) {
            report::exit(
                ipc_fd,
                &ExitReport::from_wait_status(init_status, cg.passed()),
            );
        }
        if let Some(cg) = cgroup {
            cg.remove();
        }
        sys::mirror(r_status.unwrap_or(init_status))
    }
}

/// Pid 1 of the new namespaces. Returns in pid 2 only.
fn init_main(
    spec: &LaunchSpec,
    plan: &Plan,
    go_r: OwnedFd,
    status_w: OwnedFd,
    signals: &Signals,
    ids: Ids,
    kernel_limits: bool,
) -> Result<Inside, NsError> {
    let (old_mask, set) = (&signals.old_mask, &signals.waited);
    if sys::set_pdeathsig().is_err() {
        sys::exit_now(1);
    }
    // Wait for the id maps; end of file means the outer launcher died.
    if sys::read_byte(go_r.as_raw_fd()).is_none() {
        sys::exit_now(1);
    }
    let report_failure = |f: &LaunchFailure| -> ! {
        let json = serde_json::to_string(f).unwrap_or_default();
        let _ = sys::write_all(status_w.as_raw_fd(), format!("fail {json}\n").as_bytes());
        sys::exit_now(1)
    };
    // Bind sources are opened with the credentials the launcher came with,
    // which root needs to reach its own private directories.
    let sources = match mounts::collect(plan) {
        Ok(s) => s,
        Err(f) => report_failure(&f),
    };
    if let Err(f) = become_ns_root(&go_r) {
        report_failure(&f);
    }
    let root = match mounts::build(plan, sources) {
        Ok(r) => r,
        Err(f) => report_failure(&f),
    };
    let hostname_set = {
        // SAFETY: pointer and length describe a live byte string.
        unsafe { libc::sethostname(HOSTNAME.as_ptr().cast(), HOSTNAME.len()) == 0 }
    };
    // A session of its own: the host's SIGINT to the launcher's process
    // group reaches R only once, through the outer launcher and init, and
    // R has no controlling terminal.
    // SAFETY: setsid has no arguments.
    unsafe { libc::setsid() };
    if sys::write_all(status_w.as_raw_fd(), b"ok\n").is_err() {
        sys::exit_now(1);
    }

    // SAFETY: the process is single-threaded; fork is safe to call.
    let child = unsafe { libc::fork() };
    if child < 0 {
        let e = sys::errno();
        report::fail(
            spec.ipc_fd,
            LaunchFailure::os(Layer::Namespaces, "cannot fork the session process", e),
        );
    }
    if child > 0 {
        init_loop(child, spec, status_w, go_r, set, kernel_limits)
    }

    // Pid 2.
    // SAFETY: getppid cannot fail.
    if sys::set_pdeathsig().is_err() || unsafe { libc::getppid() } != 1 {
        sys::exit_now(1);
    }
    drop(go_r);
    drop(status_w);
    sys::set_mask(old_mask);

    let mut ns_detail = format!(
        "user (uid 0 inside is uid {} outside), mount, pid, network (loopback only), ipc, uts, cgroup",
        ids.outer_uid
    );
    if ids.uid == 0 {
        ns_detail.push_str("; host root mapped to nobody");
    }
    if hostname_set {
        ns_detail.push_str(&format!("; hostname {HOSTNAME}"));
    }

    let rules = root_rules(
        &root.read_only,
        &root.writable,
        root.dev_nodes.iter().map(String::as_str),
        root.proc_mounted,
    );
    Ok(Inside {
        layers: vec![
            LayerState::new(Layer::Namespaces, true, ns_detail),
            LayerState::new(Layer::Root, true, root.detail()),
        ],
        rules,
    })
}

/// Takes uid/gid 0 of the new user namespace (the outer uid of the map).
fn become_ns_root(go_r: &OwnedFd) -> Result<(), LaunchFailure> {
    // SAFETY: integer arguments only.
    if unsafe { libc::setresgid(0, 0, 0) } != 0 {
        return Err(LaunchFailure::os(
            Layer::Namespaces,
            "setresgid(0) in the user namespace",
            sys::errno(),
        ));
    }
    // SAFETY: integer arguments only.
    if unsafe { libc::setresuid(0, 0, 0) } != 0 {
        return Err(LaunchFailure::os(
            Layer::Namespaces,
            "setresuid(0) in the user namespace",
            sys::errno(),
        ));
    }
    // A credential change clears the parent-death signal: arm it again,
    // then make sure the outer launcher did not die in between.
    if let Err(e) = sys::set_pdeathsig() {
        return Err(LaunchFailure::os(Layer::Namespaces, "PR_SET_PDEATHSIG", e));
    }
    if sys::peer_gone(go_r) {
        sys::exit_now(1);
    }
    Ok(())
}

/// Init's work while R runs: supervise the session (pass signals on, reap
/// orphans, enforce the session's limits), and when R is gone tell the host
/// and the outer launcher how it ended.
fn init_loop(
    r_pid: libc::pid_t,
    spec: &LaunchSpec,
    status_w: OwnedFd,
    go_r: OwnedFd,
    set: &libc::sigset_t,
    kernel_limits: bool,
) -> ! {
    let ipc = spec.ipc_fd;
    let post = Post {
        r_pid,
        own_pid_ns: true,
        forward: true,
        keep: vec![ipc, status_w.as_raw_fd(), go_r.as_raw_fd()],
        cgroup: None,
    };
    let budget = if kernel_limits {
        Budget::default()
    } else {
        Budget {
            sysv: true,
            ..Budget::new(&spec.limits)
        }
    };
    supervisor::run(post, budget, set, |status, limit| {
        report::exit(ipc, &ExitReport::from_wait_status(status, limit));
        let _ = sys::write_all(status_w.as_raw_fd(), format!("exit {status}\n").as_bytes());
    })
}
