//! The launcher's sequence, one step per layer, each delegating to the
//! module that owns it (the shape of nsjail's `containProc`). Runs in the
//! single-threaded launcher process only; nothing below calls back here.

use crate::policy::{LaunchFailure, LaunchSpec, Layer, LayerState, CHILD_IPC_FD};
use crate::report;
use crate::sandbox::limits;
use crate::sys;
use std::os::unix::ffi::OsStrExt;

/// The whole launch: never returns (R is exec'd, or the host is told why
/// not). Linux applies its own layers (`native`), unless the policy asks
/// for the Seatbelt path (a stand-in `sandbox_exec`, in tests); other
/// systems take the portable path.
pub fn run(spec: LaunchSpec) -> ! {
    #[cfg(native_linux)]
    if !spec
        .sandbox
        .as_ref()
        .is_some_and(|p| p.sandbox_exec.is_some())
    {
        native(spec)
    }
    portable(spec)
}

/// Linux: namespaces, root, Landlock, seccomp, limits, environment.
#[cfg(native_linux)]
fn native(mut spec: LaunchSpec) -> ! {
    use crate::sandbox::{self, SessionLimits};
    let ipc = spec.ipc_fd;
    let ok = Step(ipc);
    let mut report = crate::policy::LaunchReport::default();

    // 1. Whole-session limits of a sandboxed session: a cgroup of its own
    //    where the host delegates one (else its supervisor keeps them).
    let mut session = SessionLimits::new(&spec.limits, spec.sandbox.is_some());
    // 2. Namespaces and a fresh root; or the host's, seen through Landlock.
    let isolation = spec
        .sandbox
        .as_ref()
        .map(|policy| ok.done(sandbox::isolate(&spec, policy, &session)));
    let namespaced = isolation.as_ref().is_some_and(|i| i.namespaced());
    // 3. Outside namespaces (the fallback tier) a supervisor stays behind;
    //    init supervises in them. The process that goes on is R's. Without
    //    a sandbox the process structure stays plain: R is the host's
    //    child, and limits are per process.
    let supervised = if namespaced {
        session.describe(&supervised_limits(&spec), "the session's init (pid 1)")
    } else if isolation.is_some() {
        let budget = ok.done(sandbox::host_budget(&spec, &session));
        let detail = session.describe(&budget.describe(), "the launcher, R's parent");
        ok.done(sandbox::supervise(ipc, budget, &mut session));
        detail
    } else {
        "per process only without the sandbox".to_string()
    };
    // 4. Capabilities, Landlock, seccomp.
    if let (Some(iso), Some(policy)) = (isolation, spec.sandbox.clone()) {
        report
            .layers
            .extend(ok.done(sandbox::confine(iso, &policy)));
        if let (false, Some(dir)) = (namespaced, &policy.fallback_tmp) {
            retarget_tmp(&mut spec, dir);
        }
    }
    // A zygote cannot see the host's cgroups: tell it, for its sessions'
    // reports, what the launcher found (see `zygote::CGROUP_ENV`).
    if spec.sandbox.as_ref().is_some_and(|p| p.zygote) {
        spec.env
            .push((crate::zygote::CGROUP_ENV.to_string(), session.found()));
    }
    // 5. Per-process limits.
    report
        .layers
        .push(ok.done(limits::layer(&spec.limits, &supervised)));
    // 6. The environment, the fds and the signal dispositions R inherits
    //    (an ignored signal survives execve: R gets the defaults back).
    sys::default_signals();
    ok.done(tidy_fds(ipc));
    report.layers.push(LayerState::new(
        Layer::Environment,
        true,
        format!("{} variables, other fds closed", spec.env.len()),
    ));
    // 7. Tell the host, then become R.
    if report::layers(CHILD_IPC_FD, report.layers).is_err() {
        // The host is gone; nothing to run for.
        sys::exit_now(1)
    }
    match exec(&spec.program, &spec.args, &spec) {
        Ok(never) => match never {},
        Err(f) => report::fail(CHILD_IPC_FD, f),
    }
}

/// Without the Linux layers (macOS; a stand-in `sandbox_exec` on Linux):
/// the steps that need no Linux (the fds, per-process limits, the
/// environment), then R runs under the policy's Seatbelt
/// profile, exec'd through `sandbox-exec`, which applies the profile to
/// itself and everything it starts. No process of the launcher's stays
/// behind: R is the host's child, leader of its own process group.
fn portable(spec: LaunchSpec) -> ! {
    let ipc = spec.ipc_fd;
    let ok = Step(ipc);
    let mut layers = Vec::new();
    // 1. The profile, rendered from the policy before anything else (a
    //    path it cannot carry stops the launch).
    let through = spec.sandbox.as_ref().map(|policy| {
        let (exe, args, layer) = ok.done(seatbelt_launch(policy, &spec));
        layers.push(layer);
        (exe, args)
    });
    // 2. The fds R inherits, closed while the open files limit still
    //    covers every fd the host may have passed on (without
    //    close_range, they are closed one by one up to that limit), and
    //    the signal dispositions (see `sys::default_signals`).
    sys::default_signals();
    ok.done(tidy_fds(ipc));
    // 3. Per-process limits: nothing here supervises the whole session.
    let mut session = if through.is_some() {
        "per process only: no supervisor on this system".to_string()
    } else {
        "per process only without the sandbox".to_string()
    };
    if let Some(caveat) = limits::platform_caveat() {
        session.push_str("; ");
        session.push_str(caveat);
    }
    layers.push(ok.done(limits::layer(&spec.limits, &session)));
    layers.push(LayerState::new(
        Layer::Environment,
        true,
        format!("{} variables, other fds closed", spec.env.len()),
    ));
    // 4. Tell the host, then become R (through sandbox-exec).
    if report::layers(CHILD_IPC_FD, layers).is_err() {
        sys::exit_now(1)
    }
    let run = match &through {
        Some((exe, args)) => exec(exe, args, &spec),
        None => exec(&spec.program, &spec.args, &spec),
    };
    match run {
        Ok(never) => match never {},
        Err(f) => report::fail(CHILD_IPC_FD, f),
    }
}

/// macOS's program that applies a Seatbelt profile to itself, then execs.
const SANDBOX_EXEC: &str = "/usr/bin/sandbox-exec";

/// What runs R under `policy`'s profile: the `sandbox-exec` program, its
/// arguments, and the layer's report. Only macOS enforces the profile:
/// elsewhere the program is a stand-in, and the layer says so (a strict
/// policy fails).
fn seatbelt_launch(
    policy: &crate::policy::SandboxPolicy,
    spec: &LaunchSpec,
) -> Result<(std::path::PathBuf, Vec<String>, LayerState), LaunchFailure> {
    use crate::sandbox::{plan::Plan, seatbelt};
    if policy.zygote {
        return Err(LaunchFailure::new(
            Layer::Zygote,
            "a warm zygote needs Linux; sessions start cold on this system",
            None,
        ));
    }
    // The host names it (`/usr/bin/sandbox-exec`, or a test's stand-in):
    // a policy without one is a Linux policy this launcher cannot apply.
    let Some(exe) = policy.sandbox_exec.clone() else {
        return Err(LaunchFailure::new(
            Layer::Sandbox,
            "this launcher applies Seatbelt profiles only: the policy names no sandbox-exec",
            None,
        ));
    };
    let plan = Plan::new(policy)?;
    let rules = seatbelt::with_resolved(&plan.grants());
    let profile = seatbelt::profile(&rules)?;
    let args = seatbelt::arguments(&profile, &spec.program, &spec.args);
    let what = format!(
        "{} rules: no network; reads only the {} read-only and {} writable paths \
         (the session's folder among them); writes only the writable ones; runs \
         programs only from the read-only ones; signals only itself; started \
         cold (no warm zygote: each session has its own profile and folder)",
        rules.len(),
        plan.read_only.len(),
        plan.writable.len() + usize::from(plan.fallback_tmp.is_some()),
    );
    // Only macOS's own program enforces the profile: a stand-in (a test
    // hook) never counts as a sandbox, on macOS either.
    let enforced = cfg!(target_os = "macos") && exe == std::path::Path::new(SANDBOX_EXEC);
    let detail = if enforced {
        format!(
            "profile applied by {} before R starts, {what}",
            exe.display()
        )
    } else {
        format!(
            "not enforced: {} is a stand-in given the profile, not macOS's {SANDBOX_EXEC} ({what})",
            exe.display()
        )
    };
    if plan.strict && !enforced {
        return Err(LaunchFailure::new(Layer::Seatbelt, detail, None));
    }
    Ok((
        exe,
        args,
        LayerState::new(Layer::Seatbelt, enforced, detail),
    ))
}

/// A step's outcome: its value, or the host is told why the launch stops.
struct Step(i32);

impl Step {
    fn done<T>(&self, r: Result<T, LaunchFailure>) -> T {
        r.unwrap_or_else(|f| report::fail(self.0, f))
    }
}

/// The limits a namespace's init enforces for the whole session.
#[cfg(native_linux)]
fn supervised_limits(spec: &LaunchSpec) -> String {
    let mut parts = Vec::new();
    if let Some(m) = spec.limits.memory {
        parts.push(format!("memory {m} bytes"));
    }
    if let Some(n) = spec.limits.nproc {
        parts.push(format!("{n} processes"));
    }
    parts.join(", ")
}

/// Ties the launcher's life to its parent (the host R process): if the host
/// dies, so does the launcher and everything it starts. Other systems have
/// no death signal: there R's runtime ends when the host's end of the
/// socket closes.
pub fn die_with_parent(ipc_fd: i32, expected_parent: i32) {
    #[cfg(native_linux)]
    if let Err(e) = sys::set_pdeathsig() {
        report::fail(
            ipc_fd,
            LaunchFailure::os(Layer::Launcher, "PR_SET_PDEATHSIG", e),
        );
    }
    #[cfg(not(native_linux))]
    let _ = ipc_fd;
    // SAFETY: getppid cannot fail.
    if expected_parent > 0 && unsafe { libc::getppid() } != expected_parent {
        // The parent died before the death signal was armed.
        sys::exit_now(1)
    }
}

/// Moves `ipc_fd` to `CHILD_IPC_FD` and closes every other fd above 2.
fn tidy_fds(ipc_fd: i32) -> Result<(), LaunchFailure> {
    sys::install_fd(ipc_fd, CHILD_IPC_FD)
        .map_err(|e| LaunchFailure::os(Layer::Fds, "moving the IPC socket into place", e))?;
    sys::close_fds_except(&[CHILD_IPC_FD]);
    Ok(())
}

/// Without a private /tmp (the fallback tier), the host's scratch directory
/// takes its place as home, temp dir and working directory.
#[cfg(native_linux)]
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

fn cstring(s: &[u8], what: &str) -> Result<std::ffi::CString, LaunchFailure> {
    sys::cstring(s)
        .ok_or_else(|| LaunchFailure::new(Layer::Exec, format!("{what} contains a NUL byte"), None))
}

/// Replaces the process image with `program` (`args` after argv[0]) in the
/// spec's environment and working directory.
fn exec(
    program: &std::path::Path,
    args: &[String],
    spec: &LaunchSpec,
) -> Result<std::convert::Infallible, LaunchFailure> {
    let prog = cstring(program.as_os_str().as_bytes(), "program path")?;
    let mut argv = vec![prog.clone()];
    for a in args {
        argv.push(cstring(a.as_bytes(), "argument")?);
    }
    let mut envp = Vec::new();
    for (k, v) in &spec.env {
        if k.is_empty() || k.contains('=') {
            return Err(LaunchFailure::new(
                Layer::Exec,
                format!("invalid environment name {k:?}"),
                None,
            ));
        }
        envp.push(cstring(format!("{k}={v}").as_bytes(), "environment")?);
    }
    let cwd = cstring(spec.cwd.as_os_str().as_bytes(), "working directory")?;
    // SAFETY: cwd is a valid NUL-terminated string.
    if unsafe { libc::chdir(cwd.as_ptr()) } != 0 {
        return Err(LaunchFailure::os(
            Layer::Exec,
            format!("cannot enter working directory {}", spec.cwd.display()),
            sys::errno(),
        ));
    }
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of pointers into
    // CStrings that outlive the call; execve only returns on failure.
    unsafe { libc::execve(prog.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    Err(LaunchFailure::os(
        Layer::Exec,
        format!("cannot execute {}", program.display()),
        sys::errno(),
    ))
}
