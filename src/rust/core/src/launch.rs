//! The launcher's sequence: death signal, sandbox, limits, fds, report, exec.
//! Runs in the single-threaded launcher process only.

use crate::frame::{self, Kind};
use crate::policy::{LaunchFailure, LaunchReport, LaunchSpec, LayerState, Limits};
use crate::sys::{errno, failure};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

/// The IPC socket's fd number in the child.
pub const CHILD_IPC_FD: i32 = 3;

/// Writes one whole frame to `fd`, retrying on EINTR and short writes.
pub fn write_frame(fd: i32, kind: Kind, payload: &[u8]) -> std::io::Result<()> {
    let bytes = frame::encode(kind, payload)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    crate::sys::send_all(fd, &bytes)
}

/// Reports a failure to the host and exits. Never returns.
pub fn fail(ipc_fd: i32, failure: LaunchFailure) -> ! {
    let json = serde_json::to_vec(&failure).unwrap_or_default();
    let _ = write_frame(ipc_fd, Kind::LaunchError, &json);
    eprintln!("securer-launcher: {}: {}", failure.layer, failure.message);
    // SAFETY: _exit ends the process without running atexit handlers, which
    // is what a launcher that may have forked wants.
    unsafe { libc::_exit(127) }
}

/// Applies resource limits. Each limit sets both soft and hard values, so
/// the child cannot raise them again.
pub fn apply_limits(limits: &Limits) -> Result<Vec<String>, LaunchFailure> {
    let table: [(&str, Option<u64>, libc::__rlimit_resource_t); 6] = [
        ("cpu", limits.cpu, libc::RLIMIT_CPU),
        ("memory", limits.memory, libc::RLIMIT_AS),
        ("fsize", limits.fsize, libc::RLIMIT_FSIZE),
        ("nproc", limits.nproc, libc::RLIMIT_NPROC),
        ("nofile", limits.nofile, libc::RLIMIT_NOFILE),
        ("stack", limits.stack, libc::RLIMIT_STACK),
    ];
    let mut applied = Vec::new();
    for (name, value, resource) in table {
        let Some(v) = value else { continue };
        let mut cpu_soft = v;
        let mut hard = v;
        if name == "cpu" {
            // SIGXCPU at the soft limit lets R die with a recognisable
            // signal; the hard limit one second later is SIGKILL.
            hard = v.saturating_add(1);
            cpu_soft = v;
        }
        let lim = libc::rlimit {
            rlim_cur: cpu_soft as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: `lim` is a valid rlimit struct for the duration of the call.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            let e = errno();
            return Err(failure(
                "limits",
                format!(
                    "setrlimit({name}, {v}) failed: {}",
                    std::io::Error::from_raw_os_error(e)
                ),
                Some(e),
            ));
        }
        applied.push(format!("{name}={v}"));
    }
    Ok(applied)
}

/// Applies the limits and describes them as a report layer.
pub fn limits_layer(limits: &Limits) -> Result<LayerState, LaunchFailure> {
    let applied = apply_limits(limits)?;
    Ok(LayerState {
        layer: "limits".into(),
        active: !applied.is_empty(),
        detail: if applied.is_empty() {
            "no limits requested".into()
        } else {
            applied.join(", ")
        },
    })
}

/// Moves `ipc_fd` to `CHILD_IPC_FD` and closes every other fd above 2.
pub fn tidy_fds(ipc_fd: i32) -> Result<(), LaunchFailure> {
    if ipc_fd != CHILD_IPC_FD {
        // SAFETY: dup2 on two fd numbers; the result is checked.
        if unsafe { libc::dup2(ipc_fd, CHILD_IPC_FD) } < 0 {
            let e = errno();
            return Err(failure("fds", "dup2 of the IPC socket failed", Some(e)));
        }
    } else {
        // dup2 onto itself keeps FD_CLOEXEC; clear it explicitly.
        // SAFETY: fcntl on an fd number; the result is checked.
        if unsafe { libc::fcntl(CHILD_IPC_FD, libc::F_SETFD, 0) } < 0 {
            let e = errno();
            return Err(failure("fds", "clearing FD_CLOEXEC failed", Some(e)));
        }
    }
    // SAFETY: close_range only closes fds; no memory is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            CHILD_IPC_FD as u32 + 1,
            u32::MAX,
            0u32,
        )
    };
    if rc != 0 {
        // Kernels before 5.9: close what /proc/self/fd lists.
        let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
            .map_err(|e| {
                failure(
                    "fds",
                    format!("cannot list open fds: {e}"),
                    e.raw_os_error(),
                )
            })?
            .filter_map(|d| d.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > CHILD_IPC_FD)
            .collect();
        for fd in fds {
            // SAFETY: closing an fd number we own; errors (the read_dir fd
            // itself, already gone) are harmless.
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

fn cstring(s: &[u8], what: &str) -> Result<CString, LaunchFailure> {
    crate::sys::cstring(s)
        .ok_or_else(|| failure("exec", format!("{what} contains a NUL byte"), None))
}

/// Replaces the process image with the spec's program and environment.
pub fn exec(spec: &LaunchSpec) -> Result<std::convert::Infallible, LaunchFailure> {
    let prog = cstring(spec.program.as_os_str().as_bytes(), "program path")?;
    let mut argv = vec![prog.clone()];
    for a in &spec.args {
        argv.push(cstring(a.as_bytes(), "argument")?);
    }
    let mut envp = Vec::new();
    for (k, v) in &spec.env {
        if k.is_empty() || k.contains('=') {
            return Err(failure(
                "exec",
                format!("invalid environment name {k:?}"),
                None,
            ));
        }
        envp.push(cstring(format!("{k}={v}").as_bytes(), "environment")?);
    }
    let cwd = cstring(spec.cwd.as_os_str().as_bytes(), "working directory")?;
    // SAFETY: cwd is a valid NUL-terminated string.
    if unsafe { libc::chdir(cwd.as_ptr()) } != 0 {
        let e = errno();
        return Err(failure(
            "exec",
            format!("cannot enter working directory {}", spec.cwd.display()),
            Some(e),
        ));
    }
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of pointers into
    // CStrings that outlive the call; execve only returns on failure.
    unsafe { libc::execve(prog.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    let e = errno();
    Err(failure(
        "exec",
        format!(
            "cannot execute {}: {}",
            spec.program.display(),
            std::io::Error::from_raw_os_error(e)
        ),
        Some(e),
    ))
}

/// Ties the launcher's life to its parent (the host R process): if the host
/// dies, so does the launcher and everything it starts.
pub fn die_with_parent(ipc_fd: i32, expected_parent: i32) {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        fail(
            ipc_fd,
            failure("launcher", "PR_SET_PDEATHSIG failed", Some(errno())),
        );
    }
    // SAFETY: getppid cannot fail.
    if expected_parent > 0 && unsafe { libc::getppid() } != expected_parent {
        // The parent died before the death signal was armed.
        // SAFETY: plain process exit.
        unsafe { libc::_exit(1) }
    }
}

/// Without a private /tmp (the fallback tier), the host's scratch directory
/// takes its place as home, temp dir and working directory.
fn retarget_tmp(spec: &mut LaunchSpec, dir: &std::path::Path) {
    let tmp = std::path::Path::new("/tmp");
    let dir_s = dir.display().to_string();
    for (k, v) in spec.env.iter_mut() {
        if matches!(k.as_str(), "HOME" | "TMPDIR" | "R_USER")
            && std::path::Path::new(v.as_str()) == tmp
        {
            *v = dir_s.clone();
        }
    }
    if spec.cwd == tmp {
        spec.cwd = dir.to_path_buf();
    }
}

/// Whole launcher run: never returns.
pub fn run(mut spec: LaunchSpec) -> ! {
    let ipc_fd = spec.ipc_fd;
    let mut report = LaunchReport::default();
    if let Some(policy) = spec.sandbox.clone() {
        match crate::sandbox::enter(&spec, &policy) {
            Ok(layers) => {
                let private_tmp = layers.iter().any(|l| l.layer == "root" && l.active);
                if let (false, Some(dir)) = (private_tmp, &policy.fallback_tmp) {
                    retarget_tmp(&mut spec, dir);
                }
                report.layers.extend(layers);
            }
            Err(f) => fail(ipc_fd, f),
        }
    }
    // Rust ignores SIGPIPE, and an ignored signal survives execve: give R
    // the default back.
    // SAFETY: resetting a signal disposition; no handler code involved.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    match limits_layer(&spec.limits) {
        Ok(layer) => report.layers.push(layer),
        Err(f) => fail(ipc_fd, f),
    }
    if let Err(f) = tidy_fds(ipc_fd) {
        fail(ipc_fd, f);
    }
    report.layers.push(LayerState {
        layer: "environment".into(),
        active: true,
        detail: format!("{} variables, other fds closed", spec.env.len()),
    });
    let json = serde_json::to_vec(&report).unwrap_or_default();
    if write_frame(CHILD_IPC_FD, Kind::LaunchReport, &json).is_err() {
        // The host is gone; nothing to run for.
        // SAFETY: plain process exit.
        unsafe { libc::_exit(1) }
    }
    match exec(&spec) {
        Ok(never) => match never {},
        Err(f) => fail(CHILD_IPC_FD, f),
    }
}
