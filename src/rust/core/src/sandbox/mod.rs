//! The Linux sandbox, applied by the launcher before it execs R.
//!
//! Two tiers:
//!
//! * full: namespaces (user, mount, pid, net, ipc, uts, cgroup), a fresh
//!   tmpfs root, dropped capabilities, Landlock and seccomp;
//! * fallback, where user namespaces are refused or `no_namespaces` is set:
//!   dropped capabilities, Landlock and seccomp only.
//!
//! Resource limits, the environment and fds are left to `launch`.
//!
//! Process structure of the full tier:
//!
//! ```text
//! outer launcher (the host's child): writes the id maps, forwards
//! │   SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2, mirrors R's exit
//! └── pid 1 "init" (new namespaces): builds the root, reaps, forwards
//!     └── pid 2: capabilities, Landlock, seccomp; returns from `enter`
//!         and goes on to exec R
//! ```
//!
//! `enter` returns only in the process that will exec R.

use crate::policy::{LaunchFailure, LaunchSpec, LayerState, SandboxPolicy};

#[cfg(target_os = "linux")]
mod caps;
#[cfg(target_os = "linux")]
mod landlock;
#[cfg(target_os = "linux")]
mod mounts;
#[cfg(target_os = "linux")]
mod namespaces;
#[cfg(target_os = "linux")]
mod plan;
#[cfg(target_os = "linux")]
mod seccomp;
#[cfg(target_os = "linux")]
pub mod session;
#[cfg(target_os = "linux")]
use crate::sys;

/// Applies every layer the policy asks for. See the module documentation.
#[cfg(target_os = "linux")]
pub fn enter(spec: &LaunchSpec, policy: &SandboxPolicy) -> Result<Vec<LayerState>, LaunchFailure> {
    use plan::{FsRule, Plan};

    let plan = Plan::new(policy)?;
    let mut layers = Vec::new();
    let outcome = if policy.no_namespaces {
        Err(sys::failure(
            "namespaces",
            "namespaces disabled by the policy (no_namespaces)",
            None,
        ))
    } else {
        match namespaces::enter(spec, &plan) {
            Ok(inside) => Ok(inside),
            Err(namespaces::NsError::Fatal(f)) => return Err(f),
            Err(namespaces::NsError::Unavailable(f)) => Err(f),
        }
    };
    let namespaced = outcome.is_ok();
    if policy.zygote {
        // Each forked session confines itself (see `session`).
        return match outcome {
            Ok(inside) => {
                layers.extend(inside.layers);
                for layer in ["capabilities", "landlock", "seccomp"] {
                    layers.push(state(
                        layer,
                        false,
                        "deferred to the sessions the zygote forks",
                    ));
                }
                sys::default_sigpipe();
                Ok(layers)
            }
            Err(reason) => Err(sys::failure(
                "zygote",
                format!("a warm zygote needs the namespaces: {}", describe(&reason)),
                reason.errno,
            )),
        };
    }
    let rules: Vec<FsRule> = match outcome {
        Ok(inside) => {
            layers.extend(inside.layers);
            inside.rules
        }
        Err(reason) => {
            if plan.strict {
                return Err(reason);
            }
            let why = describe(&reason);
            layers.push(state("namespaces", false, format!("not applied: {why}")));
            layers.push(state(
                "root",
                false,
                format!("not applied (needs the namespaces): {why}"),
            ));
            plan.fallback_rules()
        }
    };
    sys::default_sigpipe();
    layers.push(caps::drop_all(plan.strict)?);
    layers.push(landlock::apply(&rules, plan.strict)?);
    layers.push(seccomp::apply(plan.strict, !namespaced)?);
    Ok(layers)
}

/// Other systems have no Linux sandbox; the host uses its own mechanism.
#[cfg(not(target_os = "linux"))]
pub fn enter(
    _spec: &LaunchSpec,
    _policy: &SandboxPolicy,
) -> Result<Vec<LayerState>, LaunchFailure> {
    Err(LaunchFailure {
        layer: "sandbox".into(),
        message: "the launcher sandbox is only implemented on Linux".into(),
        errno: None,
    })
}

#[cfg(target_os = "linux")]
fn describe(f: &LaunchFailure) -> String {
    match f.errno {
        Some(e) if !f.message.contains(&format!("os error {e}")) => {
            format!("{} ({})", f.message, std::io::Error::from_raw_os_error(e))
        }
        _ => f.message.clone(),
    }
}

#[cfg(target_os = "linux")]
pub(crate) fn state(layer: &str, active: bool, detail: impl Into<String>) -> LayerState {
    LayerState {
        layer: layer.to_string(),
        active,
        detail: detail.into(),
    }
}
