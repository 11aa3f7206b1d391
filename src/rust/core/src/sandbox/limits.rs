//! Layer 5: resource limits. Per process with setrlimit (both soft and hard
//! values, so the session cannot raise them again); for the whole session
//! by its supervisor (see `supervisor`).

use crate::policy::{LaunchFailure, Layer, LayerState, Limits};

/// Applies the limits; returns them as `name=value` for the report.
pub fn apply(limits: &Limits) -> Result<Vec<String>, LaunchFailure> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    type Resource = libc::__rlimit_resource_t;
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    type Resource = libc::c_int;
    let table: [(&str, Option<u64>, Resource); 6] = [
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
        // SIGXCPU at the soft CPU limit lets R die with a recognisable
        // signal; the hard limit one second later is SIGKILL.
        let hard = if name == "cpu" {
            v.saturating_add(1)
        } else {
            v
        };
        let lim = libc::rlimit {
            rlim_cur: v as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: `lim` is a valid rlimit struct for the duration of the call.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            return Err(LaunchFailure::os(
                Layer::Limits,
                format!("setrlimit({name}, {v})"),
                crate::sys::errno(),
            ));
        }
        applied.push(format!("{name}={v}"));
    }
    Ok(applied)
}

/// What this system does not enforce of the per-process limits, for the
/// report.
pub fn platform_caveat() -> Option<&'static str> {
    cfg!(target_os = "macos").then_some(
        "macOS does not enforce memory (its RLIMIT_AS is RLIMIT_RSS, which it does not \
         enforce), and nproc counts every process of your user, not the session's",
    )
}

/// Applies the per-process limits; reports them with the whole session's
/// (`session`: how those are enforced, "" for none).
pub fn layer(limits: &Limits, session: &str) -> Result<LayerState, LaunchFailure> {
    Ok(state(&apply(limits)?, session))
}

/// The report of the limits layer: the per-process limits `applied` and
/// how the whole session's limits are enforced (`session`, "" for none).
pub fn state(applied: &[String], session: &str) -> LayerState {
    let mut detail = if applied.is_empty() {
        "no limits requested".to_string()
    } else {
        format!("per process (setrlimit): {}", applied.join(", "))
    };
    if !session.is_empty() {
        detail.push_str("; whole session: ");
        detail.push_str(session);
    }
    LayerState::new(Layer::Limits, !applied.is_empty(), detail)
}
