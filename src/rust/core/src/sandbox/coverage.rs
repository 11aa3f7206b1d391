//! What each layer stops in each tier, and what it leaves to others or
//! leaves open: appended to the layers' details in the launch report (so
//! `$sandbox_info()` says it), and the source of the table in the
//! security-model vignette (keep the two in step).

use crate::policy::{Layer, LayerState};

/// Where a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    /// Native sandbox, started cold through the launcher.
    Cold,
    /// Native sandbox, forked from a warm zygote.
    Forked,
    /// No namespaces: Landlock, seccomp, limits, environment.
    Fallback,
}

/// The "stops: ...; remains: ..." clause of `layer` in `tier`.
pub(crate) fn clause(layer: Layer, tier: Tier) -> Option<&'static str> {
    use Tier::*;
    Some(match (layer, tier) {
        (Layer::Namespaces, Cold) => {
            "stops: seeing, signalling or tracing the host's processes; the host's SysV IPC \
             and POSIX message queues; its network and its list of sockets; remains: the \
             kernel, shared with the host"
        }
        (Layer::Namespaces, Forked) => {
            "stops: the same towards the host, the zygote and every other session; remains: \
             the kernel, shared with the host"
        }
        (Layer::Namespaces, Fallback) => {
            "the seccomp filter and Landlock stand in for them: other processes, the host's \
             IPC and network (see their rows)"
        }
        (Layer::Root, Cold | Forked) => {
            "stops: reading host files that are not listed; writing outside /tmp and the \
             writable paths; changing the mode or times of listed files (read-only mounts); \
             remains: the listed paths are readable"
        }
        (Layer::Root, Fallback) => {
            "Landlock (files) and the seccomp filter (file metadata) stand in for it; /tmp \
             is a host folder whose size the supervisor caps"
        }
        (Layer::Capabilities, _) => {
            "stops: every privileged operation, the host root's included (fallback tier)"
        }
        (Layer::Landlock, Cold | Forked) => {
            "stops: file access outside its rules even through a mount; TCP; reaching \
             abstract sockets or signalling processes outside the session"
        }
        (Layer::Landlock, Fallback) => {
            "stops: reading or writing host files outside the grants; other processes' /proc \
             and the host's /proc/net; TCP; reaching abstract sockets or signalling processes \
             outside the session; remains: file metadata (left to seccomp); the session's \
             forked processes cannot read their own /proc/self"
        }
        (Layer::Seccomp, Cold | Forked) => {
            "stops: ptrace, mounts, new namespaces, bpf, perf, keyrings, io_uring, the kernel \
             log, inotify and fanotify, TIOCSTI, non-UNIX sockets; remains: the rest of the \
             kernel's system calls"
        }
        (Layer::Seccomp, Fallback) => {
            "stops: also chmod, chown and utime of host files, extended attributes, SysV IPC \
             and message queues, prlimit, scheduling, I/O priority and page moves on other \
             processes, connect() and bind(), leaving the session's process group (which \
             the host kills to stop it); remains: telling whether a host pid exists \
             (kill(pid, 0) answers EPERM, not ESRCH); files passed in flight over a UNIX \
             socket escape the folder quota"
        }
        _ => return None,
    })
}

/// `state` with the clause of its layer in `tier` appended.
pub(crate) fn annotate(mut state: LayerState, tier: Tier) -> LayerState {
    if let Some(c) = clause(state.layer, tier) {
        state.detail.push_str("; ");
        state.detail.push_str(c);
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sandbox_layer_says_what_it_stops_in_every_tier() {
        for tier in [Tier::Cold, Tier::Forked, Tier::Fallback] {
            for layer in [
                Layer::Namespaces,
                Layer::Root,
                Layer::Capabilities,
                Layer::Landlock,
                Layer::Seccomp,
            ] {
                assert!(clause(layer, tier).is_some(), "{layer} {tier:?}");
            }
            assert!(clause(Layer::Environment, tier).is_none());
        }
        let s = annotate(LayerState::new(Layer::Seccomp, true, "x"), Tier::Fallback);
        assert!(s.detail.starts_with("x; stops: also chmod"), "{}", s.detail);
    }
}
