//! The macOS launch path (`launch::portable`), run here: the launcher
//! renders the policy's Seatbelt profile, closes inherited fds, applies the
//! limits and the clean environment, then execs a stand-in `sandbox-exec`
//! that records what it was given and runs the program. Built with the
//! `portable` feature this is the code macOS compiles (no pidfds,
//! `pipe`+`fcntl`, fds closed one by one, `getentropy`); without it, the
//! Linux launcher takes the same path for a policy that names a
//! `sandbox_exec`. What only macOS can show (that the kernel enforces the
//! profile) is not tested here.

use serde_json::{json, Value};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;

const LAUNCHER: &str = env!("CARGO_BIN_EXE_securer-launcher");
const LAUNCH_REPORT: u8 = 8;
const LAUNCH_ERROR: u8 = 9;

/// A stand-in for `/usr/bin/sandbox-exec` in `dir` that refuses anything
/// but `-p <profile> <absolute program> [args]`, writes its arguments (one
/// a line, the profile in a file of its own) to `dir`, then execs.
fn stand_in(dir: &Path) -> PathBuf {
    let path = dir.join("sandbox-exec");
    let script = format!(
        r#"#!/bin/sh
if [ "$#" -lt 3 ] || [ "$1" != "-p" ]; then echo "usage: sandbox-exec -p profile program" >&2; exit 64; fi
case "$3" in /*) ;; *) echo "not absolute: $3" >&2; exit 64 ;; esac
printf '%s' "$2" > '{dir}/profile'
shift 2
for a in "$@"; do printf '%s\n' "$a"; done > '{dir}/args'
exec "$@"
"#,
        dir = dir.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

struct Run {
    stdout: String,
    stderr: String,
    frames: Vec<(u8, Value)>,
}

impl Run {
    fn layer(&self, name: &str) -> &Value {
        let (kind, report) = self.frames.first().expect("a first frame");
        assert_eq!(*kind, LAUNCH_REPORT, "{report}");
        report["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["layer"] == name)
            .unwrap_or_else(|| panic!("no layer {name}: {report}"))
    }
}

/// Runs `/bin/sh -c script` through the launcher with `sandbox` and
/// `limits`; `SECRET` is set in the launcher's own environment, and an
/// inheritable fd (returned) is open in it.
fn launch(sandbox: Value, limits: Value, script: &str, cwd: &Path) -> (Run, i32) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let fd = theirs.as_raw_fd();
    let leaked = leaked_fd();
    let spec = json!({
        "program": "/bin/sh",
        "args": ["-c", script],
        "env": [["PATH", "/usr/bin:/bin"], ["HOME", cwd]],
        "cwd": cwd,
        "ipc_fd": fd,
        "limits": limits,
        "sandbox": sandbox,
    });
    let mut cmd = Command::new(LAUNCHER);
    cmd.arg("--parent")
        .arg(std::process::id().to_string())
        .arg("--spec")
        .arg(spec.to_string())
        .env("SECRET", "hunter2")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    common::inherit_fd(&mut cmd, fd);
    let child = cmd.spawn().unwrap();
    drop(theirs);
    let out = child.wait_with_output().unwrap();
    let mut ipc = ours;
    let frames = common::read_frames(&mut ipc);
    let n = leaked.as_raw_fd();
    drop(leaked);
    (
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            frames,
        },
        n,
    )
}

/// An fd without close-on-exec (F_DUPFD clears it), as a host's R may
/// hold; numbered 100 or more, so no fd the child opens itself can take
/// its number.
fn leaked_fd() -> OwnedFd {
    let f = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: fcntl(F_DUPFD) of an fd we own; the new fd is ours alone.
    let fd = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD, 100) };
    assert!(fd >= 0);
    // SAFETY: dup returned a new fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn policy(dir: &Path, exe: &Path, strict: bool) -> Value {
    json!({
        "strict": strict,
        "read_only": ["/usr", "/bin"],
        "writable": [],
        "tmp_size": 0,
        "no_namespaces": true,
        "fallback_tmp": dir.join("session"),
        "sandbox_exec": exe,
    })
}

const SCRIPT: &str = "echo \"secret=${SECRET:-absent}\"; ulimit -n; ls /proc/self/fd";

#[test]
fn the_program_runs_through_sandbox_exec_with_profile_limits_env_and_fds_tidied() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("session");
    std::fs::create_dir(&session).unwrap();
    let exe = stand_in(dir.path());
    let (run, leaked) = launch(
        policy(dir.path(), &exe, false),
        json!({"nofile": 200, "cpu": 30}),
        SCRIPT,
        &session,
    );
    assert_eq!(run.frames.len(), 1, "{}", run.stderr);
    // The stand-in got `-p <profile> /bin/sh -c <script>`.
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert_eq!(args, format!("/bin/sh\n-c\n{SCRIPT}\n"));
    let profile = std::fs::read_to_string(dir.path().join("profile")).unwrap();
    assert!(profile.contains("\n(deny default)\n"), "{profile}");
    assert!(profile.ends_with("(deny network*)\n"), "{profile}");
    let folder = format!("(subpath \"{}\")", session.display());
    let writes = profile.split("(allow file-write*").nth(1).unwrap();
    assert!(
        writes.split("\n(").next().unwrap().contains(&folder),
        "{profile}"
    );
    assert!(profile.contains("(subpath \"/usr\")"));
    // The environment is the spec's; limits and fds as asked.
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "secret=absent", "{}", run.stdout);
    assert_eq!(lines[1], "200");
    let fds: Vec<i32> = lines[2..].iter().filter_map(|l| l.parse().ok()).collect();
    assert!(!fds.contains(&leaked), "{fds:?}");
    // stdio, the IPC socket, and the one `ls` opens to list them.
    assert_eq!(fds[..4], [0, 1, 2, 3], "{fds:?}");
    assert!(fds.len() <= 5, "{fds:?}");
    // The report: Seatbelt not enforced (a stand-in), the rest applied.
    let seatbelt = run.layer("seatbelt");
    assert_eq!(seatbelt["active"], false);
    assert!(seatbelt["detail"].as_str().unwrap().contains("stand-in"));
    assert!(seatbelt["detail"]
        .as_str()
        .unwrap()
        .contains("no warm zygote"));
    assert_eq!(run.layer("limits")["active"], true);
    assert!(run.layer("limits")["detail"]
        .as_str()
        .unwrap()
        .contains("nofile=200"));
    assert_eq!(run.layer("environment")["active"], true);
}

#[test]
fn without_the_launcher_the_secret_and_the_fd_are_inherited() {
    // The control: the same script, started directly.
    let leaked = leaked_fd();
    let out = Command::new("/bin/sh")
        .args(["-c", SCRIPT])
        .env("SECRET", "hunter2")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("secret=hunter2\n"), "{stdout}");
    let n = leaked.as_raw_fd().to_string();
    assert!(stdout.lines().any(|l| l == n), "{stdout}");
}

#[test]
fn a_strict_policy_fails_closed_where_the_profile_is_not_enforced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("session")).unwrap();
    let exe = stand_in(dir.path());
    let (run, _) = launch(
        policy(dir.path(), &exe, true),
        json!({}),
        "echo ran",
        dir.path(),
    );
    assert_eq!(run.stdout, "");
    let (kind, failure) = run.frames.first().expect("a failure");
    assert_eq!(*kind, LAUNCH_ERROR, "{failure}");
    assert_eq!(failure["layer"], "seatbelt");
    assert!(!dir.path().join("args").exists());
}

#[test]
fn a_path_the_profile_cannot_carry_stops_the_launch() {
    let dir = tempfile::tempdir().unwrap();
    let exe = stand_in(dir.path());
    let mut p = policy(dir.path(), &exe, false);
    p["read_only"] = json!(["/usr", "/a\n(allow default)"]);
    let (run, _) = launch(p, json!({}), "echo ran", dir.path());
    assert_eq!(run.stdout, "");
    let (kind, failure) = run.frames.first().expect("a failure");
    assert_eq!(*kind, LAUNCH_ERROR, "{failure}");
    assert_eq!(failure["layer"], "policy");
    assert!(!dir.path().join("args").exists());
}

#[test]
fn the_stand_in_refuses_a_malformed_invocation() {
    let dir = tempfile::tempdir().unwrap();
    let exe = stand_in(dir.path());
    for args in [&["-x", "p", "/bin/true"][..], &["-p", "p", "true"], &["-p"]] {
        let st = Command::new(&exe).args(args).status().unwrap();
        assert_eq!(st.code(), Some(64), "{args:?}");
    }
    let st = Command::new(&exe)
        .args(["-p", "(version 1)", "/bin/true"])
        .status()
        .unwrap();
    assert!(st.success());
}
