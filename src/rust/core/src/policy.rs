//! What the host asks the launcher to do. The host serialises a `LaunchSpec`
//! to JSON; the launcher applies it before exec'ing R, then reports the
//! layers it applied as a `LaunchReport` frame on the IPC socket.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LaunchSpec {
    /// Program to exec (the R binary), absolute.
    pub program: PathBuf,
    /// Arguments after argv[0].
    #[serde(default)]
    pub args: Vec<String>,
    /// The child's complete environment; nothing else is inherited.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Working directory of the child.
    pub cwd: PathBuf,
    /// fd number of the IPC socket in the launcher; every other fd but
    /// 0, 1, 2 and this one is closed before exec.
    pub ipc_fd: i32,
    #[serde(default)]
    pub limits: Limits,
    /// `None`: no sandbox (limits and the clean environment still apply).
    #[serde(default)]
    pub sandbox: Option<SandboxPolicy>,
}

/// Resource limits (setrlimit). `None` leaves the inherited value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CPU seconds (RLIMIT_CPU).
    pub cpu: Option<u64>,
    /// Address space in bytes (RLIMIT_AS).
    pub memory: Option<u64>,
    /// Largest file the child may write, bytes (RLIMIT_FSIZE).
    pub fsize: Option<u64>,
    /// Processes (RLIMIT_NPROC).
    pub nproc: Option<u64>,
    /// Open files (RLIMIT_NOFILE).
    pub nofile: Option<u64>,
    /// Stack bytes (RLIMIT_STACK).
    pub stack: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SandboxPolicy {
    /// Fail (LaunchError) when any layer cannot be applied, instead of
    /// applying the rest and reporting what is missing.
    #[serde(default)]
    pub strict: bool,
    /// Paths visible read-only (bind-mounted into the new root, Landlock
    /// read + execute). Missing paths are skipped.
    #[serde(default)]
    pub read_only: Vec<PathBuf>,
    /// Paths visible read-write (bind-mounted, Landlock read + write).
    #[serde(default)]
    pub writable: Vec<PathBuf>,
    /// Size cap of the private /tmp, bytes.
    pub tmp_size: u64,
    /// Skip the namespace layer, as when user namespaces are refused (used
    /// by tests of the fallback tier).
    #[serde(default)]
    pub no_namespaces: bool,
    /// Directory used as the child's /tmp in the fallback tier (no mount
    /// namespace): created by the host, the only writable place.
    #[serde(default)]
    pub fallback_tmp: Option<PathBuf>,
    /// Start a warm zygote: build the namespaces and the root, but leave
    /// capabilities, Landlock and seccomp to each session it forks (the
    /// zygote runs no untrusted code, and sessions need it to be able to
    /// give each of them its own mount, pid and ipc namespaces).
    #[serde(default)]
    pub zygote: bool,
}

/// What the host asks a zygote for: one session, confined by `policy`
/// (the zygote's own policy) and `limits`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ForkRequest {
    pub policy: SandboxPolicy,
    #[serde(default)]
    pub limits: Limits,
    /// The session's hello token (hex), handed to the R runtime.
    pub token: String,
}

/// How a session's R process ended, as its supervisor saw it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitReport {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// State of one layer in a `LaunchReport`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerState {
    pub layer: String,
    pub active: bool,
    /// Why the layer is off, or details of what it holds.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct LaunchReport {
    pub layers: Vec<LayerState>,
}

/// Sent in a LaunchError frame when the launcher cannot go on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LaunchFailure {
    /// The layer that failed (`"namespaces"`, `"landlock"`, ...) or `"exec"`.
    pub layer: String,
    pub message: String,
    pub errno: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_unknown_fields_refused() {
        let spec = LaunchSpec {
            program: "/usr/lib/R/bin/exec/R".into(),
            args: vec!["--no-echo".into()],
            env: vec![("HOME".into(), "/tmp".into())],
            cwd: "/tmp".into(),
            ipc_fd: 3,
            limits: Limits {
                cpu: Some(10),
                ..Limits::default()
            },
            sandbox: Some(SandboxPolicy {
                strict: true,
                read_only: vec!["/usr".into()],
                writable: vec![],
                tmp_size: 1 << 20,
                no_namespaces: false,
                fallback_tmp: None,
                zygote: false,
            }),
        };
        let json = serde_json::to_string(&spec).unwrap();
        let back: LaunchSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(spec, back);
        let bad = json.replacen("\"cwd\"", "\"cwdx\"", 1);
        assert!(serde_json::from_str::<LaunchSpec>(&bad).is_err());
    }
}
