//! What the host asks the launcher to do. The host serialises a `LaunchSpec`
//! to JSON; the launcher applies it before exec'ing R, then reports the
//! layers it applied as a `LaunchReport` frame on the IPC socket.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The IPC socket's fd number in the child: in the launcher's R process, in
/// a warm zygote and in each session it forks.
pub const CHILD_IPC_FD: i32 = 3;

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
    /// The session's folder on the host, used as its /tmp where it has no
    /// private one (the fallback tier; macOS): created by the host, the
    /// only writable place besides `writable`.
    #[serde(default)]
    pub fallback_tmp: Option<PathBuf>,
    /// Start a warm zygote: build the namespaces and the root, but leave
    /// capabilities, Landlock and seccomp to each session it forks (the
    /// zygote runs no untrusted code, and sessions need it to be able to
    /// give each of them its own mount, pid and ipc namespaces).
    #[serde(default)]
    pub zygote: bool,
    /// Apply the policy as a Seatbelt profile through this `sandbox-exec`
    /// program (`/usr/bin/sandbox-exec` on macOS) instead of the Linux
    /// layers: the portable launcher (`launch::portable`). Elsewhere than
    /// on macOS only a stand-in (tests) can be given: the launcher then
    /// runs every step of the macOS path, and reports that nothing is
    /// enforced.
    #[serde(default)]
    pub sandbox_exec: Option<PathBuf>,
}

/// What the host asks a zygote for: one session, confined by `policy`
/// (the zygote's own policy; `None` for a zygote without a sandbox, whose
/// sessions get per-process limits, a process group and a folder of their
/// own) and `limits`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ForkRequest {
    pub policy: Option<SandboxPolicy>,
    #[serde(default)]
    pub limits: Limits,
    /// The session's hello token (hex), handed to the R runtime.
    pub token: String,
    /// Without a sandbox: the session's folder (its home, temporary folder
    /// and working directory), made by the host.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// A limit on the whole session (all its processes) that its supervisor
/// enforces by stopping the session.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SessionLimit {
    /// Memory held by all the session's processes (`Limits::memory`).
    Memory,
    /// Processes (tasks) of the session (`Limits::nproc`).
    Nproc,
    /// Bytes or files in the fallback tier's temporary folder
    /// (`SandboxPolicy::tmp_size`).
    TmpSize,
}

impl SessionLimit {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionLimit::Memory => "memory",
            SessionLimit::Nproc => "nproc",
            SessionLimit::TmpSize => "tmp_size",
        }
    }
}

/// How a session's R process ended, as its supervisor saw it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitReport {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The session limit its supervisor stopped it for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<SessionLimit>,
}

impl ExitReport {
    /// The report of a raw wait status.
    #[cfg(unix)]
    pub fn from_wait_status(status: i32, limit: Option<SessionLimit>) -> ExitReport {
        if libc::WIFSIGNALED(status) {
            ExitReport {
                code: None,
                signal: Some(libc::WTERMSIG(status)),
                limit,
            }
        } else {
            ExitReport {
                code: Some(libc::WEXITSTATUS(status)),
                signal: None,
                limit,
            }
        }
    }
}

/// The parts of the launch that report or fail: the sandbox's layers and the
/// launcher's own steps. Serialised as the lowercase names the R side reads.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// The policy itself (invalid paths).
    Policy,
    Namespaces,
    Root,
    Capabilities,
    Landlock,
    Seccomp,
    /// Resource limits, per process and for the whole session.
    Limits,
    /// A cgroup v2 subtree for the session's limits.
    Cgroup,
    /// The process that supervises a session's limits.
    Supervisor,
    Environment,
    /// The launcher's own set-up (arguments, death signal).
    Launcher,
    /// Moving the IPC socket into place and closing other fds.
    Fds,
    Exec,
    /// A warm zygote forking sessions.
    Zygote,
    /// The sandbox as a whole (a platform without one).
    Sandbox,
    /// macOS: the Seatbelt profile `sandbox-exec` applies.
    Seatbelt,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Policy => "policy",
            Layer::Namespaces => "namespaces",
            Layer::Root => "root",
            Layer::Capabilities => "capabilities",
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
            Layer::Limits => "limits",
            Layer::Cgroup => "cgroup",
            Layer::Supervisor => "supervisor",
            Layer::Environment => "environment",
            Layer::Launcher => "launcher",
            Layer::Fds => "fds",
            Layer::Exec => "exec",
            Layer::Zygote => "zygote",
            Layer::Sandbox => "sandbox",
            Layer::Seatbelt => "seatbelt",
        }
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// State of one layer in a `LaunchReport`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerState {
    pub layer: Layer,
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
    /// The layer or step that failed.
    pub layer: Layer,
    pub message: String,
    pub errno: Option<i32>,
}

impl LaunchFailure {
    pub fn new(layer: Layer, message: impl Into<String>, errno: Option<i32>) -> LaunchFailure {
        LaunchFailure {
            layer,
            message: message.into(),
            errno,
        }
    }

    /// A failure whose cause is the system error `e`, named in the message.
    pub fn os(layer: Layer, what: impl std::fmt::Display, e: i32) -> LaunchFailure {
        LaunchFailure::new(
            layer,
            format!("{what}: {}", std::io::Error::from_raw_os_error(e)),
            Some(e),
        )
    }
}

impl LayerState {
    pub fn new(layer: Layer, active: bool, detail: impl Into<String>) -> LayerState {
        LayerState {
            layer,
            active,
            detail: detail.into(),
        }
    }
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
                sandbox_exec: Some("/usr/bin/sandbox-exec".into()),
            }),
        };
        let json = serde_json::to_string(&spec).unwrap();
        let back: LaunchSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(spec, back);
        let bad = json.replacen("\"cwd\"", "\"cwdx\"", 1);
        assert!(serde_json::from_str::<LaunchSpec>(&bad).is_err());
    }

    #[test]
    fn layers_serialise_to_the_names_the_r_side_reads() {
        let all = [
            (Layer::Policy, "policy"),
            (Layer::Namespaces, "namespaces"),
            (Layer::Root, "root"),
            (Layer::Capabilities, "capabilities"),
            (Layer::Landlock, "landlock"),
            (Layer::Seccomp, "seccomp"),
            (Layer::Limits, "limits"),
            (Layer::Cgroup, "cgroup"),
            (Layer::Supervisor, "supervisor"),
            (Layer::Environment, "environment"),
            (Layer::Launcher, "launcher"),
            (Layer::Fds, "fds"),
            (Layer::Exec, "exec"),
            (Layer::Zygote, "zygote"),
            (Layer::Sandbox, "sandbox"),
            (Layer::Seatbelt, "seatbelt"),
        ];
        for (layer, name) in all {
            assert_eq!(
                serde_json::to_string(&layer).unwrap(),
                format!("\"{name}\"")
            );
            assert_eq!(layer.to_string(), name);
            assert_eq!(layer.as_str(), name);
            let back: Layer = serde_json::from_str(&format!("\"{name}\"")).unwrap();
            assert_eq!(back, layer);
        }
        let f = LaunchFailure::new(Layer::Seccomp, "x", Some(1));
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"layer":"seccomp","message":"x","errno":1}"#
        );
    }

    #[cfg(unix)]
    #[test]
    fn exit_reports_name_the_limit_only_when_there_is_one() {
        let plain = ExitReport::from_wait_status(3 << 8, None);
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"code":3,"signal":null}"#
        );
        let killed = ExitReport::from_wait_status(libc::SIGKILL, Some(SessionLimit::TmpSize));
        assert_eq!(
            serde_json::to_string(&killed).unwrap(),
            r#"{"code":null,"signal":9,"limit":"tmp_size"}"#
        );
        let old: ExitReport = serde_json::from_str(r#"{"code":0,"signal":null}"#).unwrap();
        assert_eq!(old.limit, None);
    }
}
