//! The sandbox, applied by the launcher before it execs R. One policy
//! (`SandboxPolicy`, checked into a `plan::Plan`) says what a session may
//! read and write (`plan::grant_rules`); each platform renders it:
//!
//! * Linux: namespaces and a fresh root, Landlock, seccomp (below);
//! * macOS: a Seatbelt profile (`seatbelt`) that `sandbox-exec` applies
//!   (see `launch::portable`).
//!
//! The Linux sandbox has two tiers:
//!
//! * full: namespaces (user, mount, pid, net, ipc, uts, cgroup), a fresh
//!   tmpfs root, dropped capabilities, Landlock and seccomp;
//! * fallback, where user namespaces are refused or `no_namespaces` is set:
//!   dropped capabilities, Landlock and a stricter seccomp filter (it also
//!   covers what the namespaces would: other processes, SysV IPC, ...).
//!
//! Either way the whole session's limits are enforced by a cgroup where the
//! host delegates one, else by the session's supervisor (`supervisor`).
//!
//! Process structure of the full tier:
//!
//! ```text
//! outer launcher (the host's child): writes the id maps, forwards
//! │   SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2, mirrors R's exit
//! └── pid 1 "init" (new namespaces): builds the root, supervises the
//!     │   session, reports how it ended
//!     └── pid 2: capabilities, Landlock, seccomp; returns from `isolate`
//!         and goes on to exec R
//! ```
//!
//! and of the fallback tier:
//!
//! ```text
//! launcher (the host's child): the session's supervisor, a subreaper
//! └── R: capabilities, Landlock, seccomp
//! ```

#[cfg(native_linux)]
mod caps;
#[cfg(native_linux)]
mod cgroup;
#[cfg(native_linux)]
mod coverage;
#[cfg(native_linux)]
mod landlock;
#[cfg(unix)]
pub mod limits;
#[cfg(native_linux)]
mod mounts;
#[cfg(native_linux)]
mod namespaces;
pub(crate) mod plan;
pub mod seatbelt;
#[cfg(native_linux)]
mod seccomp;
#[cfg(native_linux)]
pub mod session;
#[cfg(native_linux)]
mod supervisor;

#[cfg(native_linux)]
pub use linux::*;

#[cfg(native_linux)]
mod linux {
    use super::cgroup::{Cgroup, Found};
    use super::coverage::{annotate, Tier as Coverage};
    use super::plan::{FsRule, Plan};
    use super::seccomp::Tier;
    use super::supervisor::{self, Budget, Quota};
    use crate::policy::{LaunchFailure, LaunchSpec, Layer, LayerState, Limits, SandboxPolicy};
    use std::os::fd::{FromRawFd, OwnedFd};

    /// Where R will run, once `isolate` has returned in its process.
    pub struct Isolation {
        plan: Plan,
        layers: Vec<LayerState>,
        /// Landlock's view of the new root; `None`: the host's filesystem.
        root_rules: Option<Vec<FsRule>>,
    }

    impl Isolation {
        /// R runs in namespaces of its own (and their init supervises it).
        pub fn namespaced(&self) -> bool {
            self.root_rules.is_some()
        }
    }

    /// How the whole session's limits are kept.
    pub struct SessionLimits {
        found: Found,
        cgroup: Option<Cgroup>,
    }

    impl SessionLimits {
        /// Detects what the host offers and, where a cgroup v2 subtree is
        /// delegated and `limits` bound memory or processes of a
        /// `sandboxed` session, makes the session's cgroup.
        pub fn new(limits: &Limits, sandboxed: bool) -> SessionLimits {
            let found = super::cgroup::detect();
            let wanted = sandboxed && (limits.memory.is_some() || limits.nproc.is_some());
            let (found, cgroup) = match (&found, wanted) {
                (Found::Delegated { parent }, true) => match Cgroup::create(parent, limits) {
                    Ok(cg) => (found, Some(cg)),
                    Err(e) => (Found::Unusable(format!("{} ({e})", found.describe())), None),
                },
                _ => (found, None),
            };
            SessionLimits { found, cgroup }
        }

        /// What the launcher found of cgroup v2 on the host.
        pub fn found(&self) -> String {
            self.found.describe()
        }

        /// The report of who enforces `budget` (`by`: the supervisor).
        pub fn describe(&self, budget: &str, by: &str) -> String {
            match (&self.cgroup, budget.is_empty()) {
                (Some(cg), _) => format!(
                    "{budget}, enforced by the kernel in the session's cgroup {}",
                    cg.path().display()
                ),
                (None, true) => format!("none requested; {}", self.found.describe()),
                (None, false) => format!(
                    "{budget}, enforced by {by}, which stops the session when it passes one \
                     (measured every 0.1 s or so); {}",
                    self.found.describe()
                ),
            }
        }
    }

    /// Builds the namespaces and the new root (full tier), or finds that it
    /// cannot and says why (fallback tier). Returns in the process that
    /// will exec R; in the full tier the outer launcher and init never
    /// return.
    pub fn isolate(
        spec: &LaunchSpec,
        policy: &SandboxPolicy,
        session: &SessionLimits,
    ) -> Result<Isolation, LaunchFailure> {
        let plan = Plan::new(policy)?;
        let outcome = if policy.no_namespaces {
            Err(LaunchFailure::new(
                Layer::Namespaces,
                "namespaces disabled by the policy (no_namespaces)",
                None,
            ))
        } else {
            match super::namespaces::enter(spec, &plan, session.cgroup.as_ref()) {
                Ok(inside) => Ok(inside),
                Err(super::namespaces::NsError::Fatal(f)) => return Err(f),
                Err(super::namespaces::NsError::Unavailable(f)) => Err(f),
            }
        };
        match outcome {
            Ok(inside) => Ok(Isolation {
                plan,
                layers: inside
                    .layers
                    .into_iter()
                    .map(|l| annotate(l, Coverage::Cold))
                    .collect(),
                root_rules: Some(inside.rules),
            }),
            Err(reason) if policy.zygote => Err(LaunchFailure::new(
                Layer::Zygote,
                format!("a warm zygote needs the namespaces: {}", describe(&reason)),
                reason.errno,
            )),
            Err(reason) if plan.strict => Err(reason),
            Err(reason) => {
                let why = describe(&reason);
                Ok(Isolation {
                    plan,
                    layers: vec![
                        LayerState::new(Layer::Namespaces, false, format!("not applied: {why}")),
                        LayerState::new(
                            Layer::Root,
                            false,
                            format!("not applied (needs the namespaces): {why}"),
                        ),
                    ]
                    .into_iter()
                    .map(|l| annotate(l, Coverage::Fallback))
                    .collect(),
                    root_rules: None,
                })
            }
        }
    }

    /// What the supervisor of a session outside namespaces enforces, and
    /// its report: the limits the cgroup does not take, and the fallback
    /// tier's folder quota.
    pub(crate) fn host_budget(
        spec: &LaunchSpec,
        session: &SessionLimits,
    ) -> Result<Budget, LaunchFailure> {
        let mut budget = if session.cgroup.is_some() {
            Budget::default()
        } else {
            Budget::new(&spec.limits)
        };
        if let Some(dir) = spec.sandbox.as_ref().and_then(|p| p.fallback_tmp.as_ref()) {
            let size = spec.sandbox.as_ref().map_or(0, |p| p.tmp_size.max(4096));
            budget.tmp = Some(Quota::new(open_dir(dir)?, size));
        }
        Ok(budget)
    }

    fn open_dir(dir: &std::path::Path) -> Result<OwnedFd, LaunchFailure> {
        let c = crate::sys::cpath(dir)
            .map_err(|e| LaunchFailure::os(Layer::Supervisor, "the temporary folder", e))?;
        // SAFETY: a NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(LaunchFailure::os(
                Layer::Supervisor,
                format!("cannot open the temporary folder {}", dir.display()),
                crate::sys::errno(),
            ));
        }
        // SAFETY: open returned a new fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Outside namespaces, forks the session's supervisor (which never
    /// returns) when it has something to enforce; returns in R's process.
    pub(crate) fn supervise(
        ipc_fd: i32,
        budget: Budget,
        session: &mut SessionLimits,
    ) -> Result<(), LaunchFailure> {
        let cgroup = session.cgroup.take();
        if budget.is_empty() && cgroup.is_none() {
            return Ok(());
        }
        supervisor::fork(ipc_fd, budget, cgroup)
    }

    /// Drops capabilities, applies Landlock and seccomp. A zygote leaves
    /// them to the sessions it forks.
    pub fn confine(
        iso: Isolation,
        policy: &SandboxPolicy,
    ) -> Result<Vec<LayerState>, LaunchFailure> {
        let Isolation {
            plan,
            mut layers,
            root_rules,
        } = iso;
        if policy.zygote {
            for layer in [Layer::Capabilities, Layer::Landlock, Layer::Seccomp] {
                layers.push(LayerState::new(
                    layer,
                    false,
                    "deferred to the sessions the zygote forks",
                ));
            }
            return Ok(layers);
        }
        let (rules, tier, coverage) = match root_rules {
            Some(rules) => (rules, Tier::Namespaced, Coverage::Cold),
            None => (
                plan.fallback_rules(),
                Tier::Fallback {
                    pid: std::process::id(),
                    // SAFETY: getpgrp cannot fail.
                    pgid: unsafe { libc::getpgrp() } as u32,
                    signals_scoped: super::landlock::signals_scoped(),
                },
                Coverage::Fallback,
            ),
        };
        for l in [
            super::caps::drop_all(plan.strict)?,
            super::landlock::apply(&rules, plan.strict)?,
            super::seccomp::apply(plan.strict, tier)?,
        ] {
            layers.push(annotate(l, coverage));
        }
        Ok(layers)
    }

    fn describe(f: &LaunchFailure) -> String {
        match f.errno {
            Some(e) if !f.message.contains(&format!("os error {e}")) => {
                format!("{} ({})", f.message, std::io::Error::from_raw_os_error(e))
            }
            _ => f.message.clone(),
        }
    }
}
