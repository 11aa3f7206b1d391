//! Escape attempts against the real launcher binary. Each test runs /bin/sh
//! or perl inside the sandbox, asserts that the attempt fails, and (where
//! it makes sense) runs the same attempt without the sandbox as a control,
//! so that a test cannot pass only because the attempt itself is broken.
//! The Linux sandbox's: not built with the `portable` feature.
#![cfg(not(feature = "portable"))]

use serde_json::{json, Value};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

const LAUNCHER: &str = env!("CARGO_BIN_EXE_securer-launcher");
const PERL: &str = "/usr/bin/perl";
const TMP_SIZE: u64 = 1 << 20;

#[cfg(target_arch = "x86_64")]
const NR_PTRACE: u32 = 101;
#[cfg(target_arch = "x86_64")]
const NR_UNSHARE: u32 = 272;
#[cfg(target_arch = "x86_64")]
const NR_PRLIMIT64: u32 = 302;
#[cfg(target_arch = "x86_64")]
const NR_INOTIFY_INIT1: u32 = 294;
#[cfg(target_arch = "x86_64")]
const NR_SETPRIORITY: u32 = 141;
#[cfg(target_arch = "aarch64")]
const NR_PTRACE: u32 = 117;
#[cfg(target_arch = "aarch64")]
const NR_PRLIMIT64: u32 = 261;
#[cfg(target_arch = "aarch64")]
const NR_INOTIFY_INIT1: u32 = 26;
#[cfg(target_arch = "aarch64")]
const NR_SETPRIORITY: u32 = 140;
#[cfg(target_arch = "aarch64")]
const NR_UNSHARE: u32 = 97;

/// What R needs, roughly: whichever of these exist.
fn read_only() -> Vec<String> {
    [
        "/usr",
        "/bin",
        "/lib",
        "/lib64",
        "/etc/alternatives",
        "/etc/ld.so.cache",
    ]
    .iter()
    .filter(|p| Path::new(p).symlink_metadata().is_ok())
    .map(|p| p.to_string())
    .collect()
}

fn policy() -> Value {
    json!({
        "strict": false,
        "read_only": read_only(),
        "writable": [],
        "tmp_size": TMP_SIZE,
    })
}

fn fallback_policy(tmp: &Path) -> Value {
    json!({
        "strict": false,
        "read_only": read_only(),
        "writable": [],
        "tmp_size": TMP_SIZE,
        "no_namespaces": true,
        "fallback_tmp": tmp,
    })
}

fn unique() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{}{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// A directory that uid 65534 (what root maps to inside) may write.
fn shared_tempdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    d
}

struct Spec {
    program: String,
    args: Vec<String>,
    sandbox: Option<Value>,
    limits: Value,
    env: Vec<(String, String)>,
    cwd: String,
    launcher_env: Vec<(String, String)>,
    own_group: bool,
    /// The launcher starts with SIGINT and SIGQUIT ignored, as a host
    /// started in the background by a non-interactive shell does.
    ignore_interrupts: bool,
    /// A command that execs the launcher (setpriv, unshare).
    wrapper: Vec<String>,
}

impl Spec {
    fn sh(sandbox: Option<Value>, script: &str) -> Spec {
        Spec::prog(sandbox, "/bin/sh", &["-c", script])
    }

    fn perl(sandbox: Option<Value>, code: &str) -> Spec {
        Spec::prog(sandbox, PERL, &["-e", code])
    }

    fn prog(sandbox: Option<Value>, program: &str, args: &[&str]) -> Spec {
        let cwd = if sandbox.is_some() { "/tmp" } else { "/" };
        Spec {
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            sandbox,
            limits: json!({}),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: cwd.into(),
            launcher_env: vec![],
            own_group: false,
            ignore_interrupts: false,
            wrapper: vec![],
        }
    }

    fn cwd(mut self, cwd: &Path) -> Spec {
        self.cwd = cwd.display().to_string();
        self
    }

    fn json(&self, ipc_fd: i32) -> Value {
        json!({
            "program": self.program,
            "args": self.args,
            "env": self.env,
            "cwd": self.cwd,
            "ipc_fd": ipc_fd,
            "limits": self.limits,
            "sandbox": self.sandbox,
        })
    }

    fn spawn(&self) -> Started {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let fd = theirs.as_raw_fd();
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(LAUNCHER);
                c
            }
            None => Command::new(LAUNCHER),
        };
        cmd.arg("--parent")
            .arg(std::process::id().to_string())
            .arg("--spec")
            .arg(self.json(fd).to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.launcher_env {
            cmd.env(k, v);
        }
        if self.own_group {
            cmd.process_group(0);
        }
        if self.ignore_interrupts {
            // SAFETY: only signal(), which is async-signal-safe, runs in
            // the child.
            unsafe {
                cmd.pre_exec(|| {
                    libc::signal(libc::SIGINT, libc::SIG_IGN);
                    libc::signal(libc::SIGQUIT, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        common::inherit_fd(&mut cmd, fd);
        let child = cmd.spawn().unwrap();
        drop(theirs);
        let pid = child.id() as i32;
        let done = Arc::new(AtomicBool::new(false));
        let watchdog_done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                if watchdog_done.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // SAFETY: kill with integer arguments.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
        Started {
            child,
            ipc: ours,
            done,
        }
    }

    fn run(&self) -> Run {
        self.spawn().finish()
    }
}

struct Started {
    child: std::process::Child,
    ipc: UnixStream,
    done: Arc<AtomicBool>,
}

impl Started {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for the first frame (the launcher's report) to arrive.
    fn wait_report(&mut self) -> (u8, Value) {
        self.ipc
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut header = [0u8; 5];
        self.ipc.read_exact(&mut header).unwrap();
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let mut payload = vec![0u8; len];
        self.ipc.read_exact(&mut payload).unwrap();
        (header[4], serde_json::from_slice(&payload).unwrap())
    }

    /// One line of the program's stdout (empty at its end); the rest is
    /// left for `finish`.
    fn read_line(&mut self) -> String {
        let Some(out) = self.child.stdout.as_mut() else {
            return String::new();
        };
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while out.read(&mut byte).unwrap_or(0) == 1 {
            line.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
        String::from_utf8_lossy(&line).into_owned()
    }

    fn finish(self) -> Run {
        let Started {
            child,
            mut ipc,
            done,
        } = self;
        let out = child.wait_with_output().unwrap();
        done.store(true, Ordering::SeqCst);
        let frames = common::read_frames(&mut ipc);
        Run {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            frames,
        }
    }
}

#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    frames: Vec<(u8, Value)>,
}

const LAUNCH_REPORT: u8 = 8;
const LAUNCH_ERROR: u8 = 9;
const EXIT: u8 = 14;

impl Run {
    fn report(&self) -> &Value {
        match self.frames.first() {
            Some((LAUNCH_REPORT, v)) => v,
            _ => panic!("no launch report: {self:#?}"),
        }
    }

    fn layer(&self, name: &str) -> &Value {
        self.report()["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["layer"] == name)
            .unwrap_or_else(|| panic!("no layer {name}: {self:#?}"))
    }

    fn assert_layers_active(&self, names: &[&str]) {
        for n in names {
            assert_eq!(self.layer(n)["active"], true, "layer {n}: {self:#?}");
        }
    }

    fn assert_sandboxed(&self) {
        self.assert_layers_active(&["namespaces", "root", "capabilities", "landlock", "seccomp"]);
    }

    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The session limit the supervisor's exit report names, if any.
    fn exit_limit(&self) -> Option<&str> {
        self.frames
            .iter()
            .find(|(k, _)| *k == EXIT)
            .and_then(|(_, v)| v["limit"].as_str())
    }
}

// ---------------------------------------------------------------------
// Positive cases

#[test]
fn echo_runs_and_every_layer_is_reported() {
    let r = Spec::sh(Some(policy()), "echo hi").run();
    assert_eq!(r.stdout, "hi\n", "{r:#?}");
    assert!(r.status.success(), "{r:#?}");
    r.assert_sandboxed();
    let ll = r.layer("landlock")["detail"].as_str().unwrap().to_string();
    assert!(ll.contains("enforced"), "{ll}");
    assert!(r.layer("root")["detail"]
        .as_str()
        .unwrap()
        .contains("/tmp: private tmpfs"));
}

#[test]
fn tmp_and_dev_nodes_work() {
    let r = Spec::sh(
        Some(policy()),
        "echo data > /tmp/f && cat /tmp/f && echo x > /dev/null && \
         head -c 4 /dev/urandom | wc -c && head -c 3 /dev/zero | wc -c",
    )
    .run();
    assert_eq!(r.stdout, "data\n4\n3\n", "{r:#?}");
    assert!(r.status.success());
}

#[test]
fn exit_status_comes_back_through_the_outer_launcher() {
    let r = Spec::sh(Some(policy()), "exit 7").run();
    assert_eq!(r.code(), Some(7), "{r:#?}");
}

#[test]
fn death_signal_comes_back_as_the_same_signal() {
    let r = Spec::sh(Some(policy()), "kill -TERM $$; sleep 5").run();
    assert_eq!(r.status.signal(), Some(libc::SIGTERM), "{r:#?}");
}

#[test]
fn cpu_limit_kills_with_sigxcpu() {
    let mut s = Spec::sh(Some(policy()), "while :; do :; done");
    s.limits = json!({"cpu": 1});
    let r = s.run();
    assert_eq!(r.status.signal(), Some(libc::SIGXCPU), "{r:#?}");
}

#[test]
fn sigint_to_the_process_group_reaches_the_program() {
    // Also when the host ignores SIGINT (a background job of a script):
    // the launcher gives the program the default dispositions back, or
    // the shell here could not even trap it. In each tier, and without a
    // sandbox.
    let fb = shared_tempdir();
    let tiers = [Some(policy()), Some(fallback_policy(fb.path())), None];
    for (sandbox, ignore_interrupts) in tiers
        .iter()
        .flat_map(|t| [(t.clone(), false), (t.clone(), true)])
    {
        let mut s = Spec::sh(
            sandbox,
            "trap 'echo got-int; exit 42' INT; echo ready; while :; do sleep 0.1; done",
        );
        s.own_group = true;
        s.ignore_interrupts = ignore_interrupts;
        let mut started = s.spawn();
        let (kind, _) = started.wait_report();
        assert_eq!(kind, LAUNCH_REPORT);
        // Once the program has its trap (not after a guessed delay: on a
        // busy machine the shell may not have started yet).
        assert_eq!(started.read_line(), "ready\n");
        // As the host does: the whole process group of the launcher.
        // SAFETY: kill with integer arguments.
        unsafe { libc::kill(-started.pid(), libc::SIGINT) };
        let r = started.finish();
        assert_eq!(r.code(), Some(42), "ignored: {ignore_interrupts}: {r:#?}");
        assert_eq!(r.stdout.matches("got-int").count(), 1, "{r:#?}");
    }
}

#[test]
fn writable_paths_are_writable_and_read_only_paths_are_not() {
    let rw = shared_tempdir();
    let ro = shared_tempdir();
    std::fs::write(ro.path().join("in"), "ro-content").unwrap();
    let mut p = policy();
    p["writable"] = json!([rw.path()]);
    p["read_only"]
        .as_array_mut()
        .unwrap()
        .push(json!(ro.path()));
    let script = format!(
        "echo out > {rw}/out && echo wrote; cat {ro}/in; echo; touch {ro}/new || echo ro-refused",
        rw = rw.path().display(),
        ro = ro.path().display()
    );
    let r = Spec::sh(Some(p), &script).run();
    assert!(r.stdout.contains("wrote"), "{r:#?}");
    assert!(r.stdout.contains("ro-content"), "{r:#?}");
    assert!(r.stdout.contains("ro-refused"), "{r:#?}");
    assert_eq!(
        std::fs::read_to_string(rw.path().join("out")).unwrap(),
        "out\n"
    );
    assert!(!ro.path().join("new").exists());
}

#[test]
fn missing_paths_are_skipped_and_reported() {
    let mut p = policy();
    p["read_only"]
        .as_array_mut()
        .unwrap()
        .push(json!("/nonexistent-securer-path"));
    let r = Spec::sh(Some(p), "echo ok").run();
    assert_eq!(r.stdout, "ok\n", "{r:#?}");
    let d = r.layer("root")["detail"].as_str().unwrap().to_string();
    assert!(d.contains("/nonexistent-securer-path skipped"), "{d}");
}

// ---------------------------------------------------------------------
// Filesystem

#[test]
fn cannot_read_files_of_home_like_dir_or_cwd() {
    let home = tempfile::tempdir().unwrap();
    let secret = home.path().join("secret.txt");
    std::fs::write(&secret, "TOPSECRET").unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let script = format!(
        "cat {}; cat {}; ls {}",
        secret.display(),
        manifest.display(),
        home.path().display()
    );
    let control = Spec::sh(None, &script).run();
    assert!(control.stdout.contains("TOPSECRET"), "{control:#?}");
    assert!(control.stdout.contains("[package]"), "{control:#?}");

    let r = Spec::sh(Some(policy()), &script).run();
    r.assert_sandboxed();
    assert!(!r.stdout.contains("TOPSECRET"), "{r:#?}");
    assert!(!r.stdout.contains("[package]"), "{r:#?}");
    assert!(!r.stdout.contains("secret.txt"), "{r:#?}");
}

#[test]
fn cannot_read_etc_shadow_or_passwd() {
    let script = "cat /etc/shadow; cat /etc/passwd";
    let control = Spec::sh(None, script).run();
    assert!(control.stdout.contains("root:"), "{control:#?}");
    let r = Spec::sh(Some(policy()), script).run();
    r.assert_sandboxed();
    assert!(!r.stdout.contains("root:"), "{r:#?}");
}

#[test]
fn cannot_write_outside_tmp() {
    let name = format!("securer-escape-{}", unique());
    let script = format!(
        "touch /usr/{name} || echo usr-refused; touch /{name} || echo root-refused; \
         mkdir /etc/{name} || echo etc-refused; echo ok > /tmp/{name} && echo tmp-ok"
    );
    let r = Spec::sh(Some(policy()), &script).run();
    r.assert_sandboxed();
    for want in ["usr-refused", "root-refused", "etc-refused", "tmp-ok"] {
        assert!(r.stdout.contains(want), "{want}: {r:#?}");
    }
    assert!(!Path::new("/usr").join(&name).exists());
    assert!(!Path::new("/").join(&name).exists());
    assert!(!Path::new("/etc").join(&name).exists());
    assert!(!Path::new("/tmp").join(&name).exists());
}

#[test]
fn tmp_is_capped() {
    let small = Spec::sh(
        Some(policy()),
        "dd if=/dev/zero of=/tmp/small bs=1024 count=100 2>/dev/null && echo fits",
    )
    .run();
    assert_eq!(small.stdout, "fits\n", "{small:#?}");
    let big = Spec::sh(
        Some(policy()),
        "dd if=/dev/zero of=/tmp/big bs=1024 count=4096",
    )
    .run();
    assert!(!big.status.success(), "{big:#?}");
    assert!(big.stderr.contains("No space left on device"), "{big:#?}");
}

#[test]
fn tmp_is_private_to_each_sandbox() {
    let marker = format!("/tmp/securer-marker-{}", unique());
    let first = Spec::sh(
        Some(policy()),
        &format!("echo one > {marker} && cat {marker}"),
    )
    .run();
    assert_eq!(first.stdout, "one\n", "{first:#?}");
    let second = Spec::sh(
        Some(policy()),
        &format!("cat {marker} 2>/dev/null || echo absent"),
    )
    .run();
    assert_eq!(second.stdout, "absent\n", "{second:#?}");
    assert!(!Path::new(&marker).exists());
}

// ---------------------------------------------------------------------
// Processes and environment

#[test]
fn cannot_see_the_launchers_environment() {
    let mut s = Spec::sh(
        Some(policy()),
        "env; for f in /proc/*/environ; do tr '\\0' '\\n' < $f; done 2>/dev/null",
    );
    s.launcher_env = vec![("SECURER_TEST_SECRET".into(), "hunter2-xyz".into())];
    s.env.push(("VISIBLE".into(), "yes".into()));
    let r = s.run();
    r.assert_sandboxed();
    assert!(r.stdout.contains("VISIBLE=yes"), "{r:#?}");
    assert!(!r.stdout.contains("hunter2"), "{r:#?}");
}

#[test]
fn proc_lists_only_the_sandbox() {
    let r = Spec::sh(
        Some(policy()),
        "ls /proc | grep -E '^[0-9]+$'; cat /proc/1/cmdline 2>/dev/null && echo init-visible",
    )
    .run();
    r.assert_sandboxed();
    let pids: Vec<u32> = r
        .stdout
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(!pids.is_empty(), "{r:#?}");
    assert!(pids.len() < 8, "{r:#?}");
    assert!(pids.iter().all(|&p| p < 100), "{r:#?}");
    assert!(!r.stdout.contains("init-visible"), "{r:#?}");
}

#[test]
fn cannot_signal_the_host() {
    let script = format!(
        "kill -0 {} 2>/dev/null && echo SIGNALLED || echo denied",
        std::process::id()
    );
    let control = Spec::sh(None, &script).run();
    assert_eq!(control.stdout, "SIGNALLED\n", "{control:#?}");
    let r = Spec::sh(Some(policy()), &script).run();
    r.assert_sandboxed();
    assert_eq!(r.stdout, "denied\n", "{r:#?}");
    let fb = shared_tempdir();
    let r = Spec::sh(Some(fallback_policy(fb.path())), &script)
        .cwd(fb.path())
        .run();
    assert_eq!(r.stdout, "denied\n", "{r:#?}");
}

#[test]
fn killing_the_launcher_leaves_no_process_behind() {
    let marker = format!("731.{}", unique());
    let s = Spec::sh(
        Some(policy()),
        &format!("sleep {marker} & sleep {marker}; wait"),
    );
    let mut started = s.spawn();
    let (kind, _) = started.wait_report();
    assert_eq!(kind, LAUNCH_REPORT);
    // Host view of /proc: command lines holding the marker (the launcher's
    // spec, init's, sh's, and the two sleeps).
    let count = |exact: bool| {
        let sleep = format!("sleep\0{marker}\0");
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .map(|c| {
                        let c = String::from_utf8_lossy(&c);
                        if exact {
                            c == sleep
                        } else {
                            c.contains(&marker)
                        }
                    })
                    .unwrap_or(false)
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(true) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count(true), 2, "the sleeps never started");
    started.child.kill().unwrap();
    let r = started.finish();
    assert_eq!(r.status.signal(), Some(libc::SIGKILL));
    let deadline = Instant::now() + Duration::from_secs(5);
    while count(false) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count(false), 0, "sandbox processes survived");
}

// ---------------------------------------------------------------------
// Network

fn tcp_connect_code(port: u16) -> String {
    format!(
        "use IO::Socket::INET; \
         my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => {port}, Proto => 'tcp', Timeout => 3); \
         if ($s) {{ print \"CONNECTED\\n\" }} else {{ print \"FAIL:$!\\n\" }}"
    )
}

#[test]
fn cannot_connect_tcp_to_the_host() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = tcp_connect_code(port);
    let control = Spec::perl(None, &code).run();
    assert_eq!(control.stdout, "CONNECTED\n", "{control:#?}");
    let r = Spec::perl(Some(policy()), &code).run();
    r.assert_sandboxed();
    assert!(r.stdout.starts_with("FAIL:"), "{r:#?}");
}

fn abstract_listener() -> (std::os::unix::net::UnixListener, String) {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("securer-test-{}", unique());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let l = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    (l, name)
}

fn abstract_connect_code(name: &str) -> String {
    format!(
        "use Socket; socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die \"socket: $!\"; \
         if (connect($s, pack_sockaddr_un(\"\\0{name}\"))) {{ print \"CONNECTED\\n\" }} \
         else {{ print \"FAIL:$!\\n\" }}"
    )
}

#[test]
fn cannot_reach_host_abstract_unix_sockets() {
    let (_listener, name) = abstract_listener();
    let code = abstract_connect_code(&name);
    let control = Spec::perl(None, &code).run();
    assert_eq!(control.stdout, "CONNECTED\n", "{control:#?}");
    let r = Spec::perl(Some(policy()), &code).run();
    r.assert_sandboxed();
    assert!(r.stdout.starts_with("FAIL:"), "{r:#?}");
    // Without the network namespace, Landlock's scope still refuses.
    let fb = shared_tempdir();
    let r = Spec::perl(Some(fallback_policy(fb.path())), &code)
        .cwd(fb.path())
        .run();
    assert!(r.stdout.starts_with("FAIL:"), "{r:#?}");
}

const INET_SOCKET: &str = "use Socket; \
    if (socket(my $s, AF_INET, SOCK_DGRAM, 0)) { print \"OPEN\\n\" } else { print \"DENIED:$!\\n\" }";

#[test]
fn inet_sockets_are_denied_even_in_the_fallback_tier() {
    let control = Spec::perl(None, INET_SOCKET).run();
    assert_eq!(control.stdout, "OPEN\n", "{control:#?}");
    let r = Spec::perl(Some(policy()), INET_SOCKET).run();
    assert!(r.stdout.starts_with("DENIED:Address family"), "{r:#?}");
    let fb = shared_tempdir();
    let r = Spec::perl(Some(fallback_policy(fb.path())), INET_SOCKET)
        .cwd(fb.path())
        .run();
    assert!(r.stdout.starts_with("DENIED:Address family"), "{r:#?}");
}

// ---------------------------------------------------------------------
// System calls

#[test]
fn ptrace_is_denied() {
    // PTRACE_TRACEME: the cheapest ptrace request that normally succeeds.
    let code = format!(
        "my $r = syscall({NR_PTRACE}, 0, 0, 0, 0); print $r == -1 ? \"DENIED:$!\\n\" : \"TRACED\\n\""
    );
    let control = Spec::perl(None, &code).run();
    assert_eq!(control.stdout, "TRACED\n", "{control:#?}");
    let r = Spec::perl(Some(policy()), &code).run();
    r.assert_sandboxed();
    assert_eq!(r.stdout, "DENIED:Operation not permitted\n", "{r:#?}");
}

#[test]
fn unshare_is_denied() {
    // unshare(CLONE_NEWUSER)
    let code = format!(
        "my $r = syscall({NR_UNSHARE}, 0x10000000); print $r == -1 ? \"DENIED:$!\\n\" : \"UNSHARED\\n\""
    );
    let control = Spec::perl(None, &code).run();
    assert_eq!(control.stdout, "UNSHARED\n", "{control:#?}");
    let r = Spec::perl(Some(policy()), &code).run();
    assert_eq!(r.stdout, "DENIED:Operation not permitted\n", "{r:#?}");
    let fb = shared_tempdir();
    let r = Spec::perl(Some(fallback_policy(fb.path())), &code)
        .cwd(fb.path())
        .run();
    assert_eq!(r.stdout, "DENIED:Operation not permitted\n", "{r:#?}");
}

// ---------------------------------------------------------------------
// Fallback tier and strictness

#[test]
fn fallback_tier_still_confines() {
    let home = tempfile::tempdir().unwrap();
    let secret = home.path().join("secret.txt");
    std::fs::write(&secret, "TOPSECRET").unwrap();
    let fb = shared_tempdir();
    let outside = format!("/var/tmp/securer-escape-{}", unique());
    let script = format!(
        "cat {secret}; echo in > {fb}/in && cat {fb}/in; touch {outside} || echo outside-refused; \
         touch /tmp/securer-escape-{u} || echo tmp-refused",
        secret = secret.display(),
        fb = fb.path().display(),
        u = unique(),
    );
    let r = Spec::sh(Some(fallback_policy(fb.path())), &script)
        .cwd(fb.path())
        .run();
    assert_eq!(r.layer("namespaces")["active"], false, "{r:#?}");
    assert!(r.layer("namespaces")["detail"]
        .as_str()
        .unwrap()
        .contains("no_namespaces"));
    assert_eq!(r.layer("root")["active"], false);
    r.assert_layers_active(&["capabilities", "landlock", "seccomp"]);
    assert!(!r.stdout.contains("TOPSECRET"), "{r:#?}");
    assert!(r.stdout.contains("in\n"), "{r:#?}");
    assert!(r.stdout.contains("outside-refused"), "{r:#?}");
    assert!(r.stdout.contains("tmp-refused"), "{r:#?}");
    assert!(!Path::new(&outside).exists());

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = Spec::perl(Some(fallback_policy(fb.path())), &tcp_connect_code(port))
        .cwd(fb.path())
        .run();
    assert!(r.stdout.starts_with("FAIL:"), "{r:#?}");
}

#[test]
fn strict_without_namespaces_fails_closed() {
    let fb = shared_tempdir();
    let mut p = fallback_policy(fb.path());
    p["strict"] = json!(true);
    let r = Spec::sh(Some(p), "echo SHOULD-NOT-RUN")
        .cwd(fb.path())
        .run();
    assert_eq!(r.stdout, "", "{r:#?}");
    assert_eq!(r.code(), Some(127), "{r:#?}");
    let (kind, err) = r.frames.first().expect("a frame");
    assert_eq!(*kind, LAUNCH_ERROR, "{r:#?}");
    assert_eq!(err["layer"], "namespaces", "{r:#?}");
}

#[test]
fn strict_full_sandbox_runs() {
    let mut p = policy();
    p["strict"] = json!(true);
    let r = Spec::sh(Some(p), "echo strict-ok").run();
    assert_eq!(r.stdout, "strict-ok\n", "{r:#?}");
    r.assert_sandboxed();
}

#[test]
fn invalid_policy_paths_are_refused() {
    let mut p = policy();
    p["read_only"].as_array_mut().unwrap().push(json!("/"));
    let r = Spec::sh(Some(p), "echo SHOULD-NOT-RUN").run();
    assert_eq!(r.stdout, "", "{r:#?}");
    let (kind, err) = r.frames.first().expect("a frame");
    assert_eq!(*kind, LAUNCH_ERROR);
    assert_eq!(err["layer"], "policy");
}

/// The launcher run by an unprivileged user: uid 0 inside maps to that
/// user's own uid.
#[test]
fn unprivileged_user_gets_the_full_sandbox() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs root and setpriv to switch to an unprivileged user");
        return;
    }
    let mut s = Spec::sh(
        Some(policy()),
        "echo hi > /tmp/f && cat /tmp/f; cat /etc/passwd 2>/dev/null || echo no-passwd",
    );
    s.wrapper = [
        "/usr/bin/setpriv",
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let r = s.run();
    if r.frames.is_empty() && r.stderr.contains("Permission denied") {
        eprintln!("skipped: the launcher binary is not reachable by uid 65534");
        return;
    }
    r.assert_sandboxed();
    assert_eq!(r.stdout, "hi\nno-passwd\n", "{r:#?}");
    let ns = r.layer("namespaces")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ns.contains("uid 65534 outside"), "{ns}");
}

/// Where user namespaces are refused (here: inside a user namespace
/// without an id map, as a container runtime might leave it), the launcher
/// falls back to Landlock + seccomp, or fails closed when strict.
#[test]
fn refused_user_namespace_falls_back_or_fails_closed() {
    if !Path::new("/usr/bin/unshare").exists() {
        eprintln!("skipped: no unshare(1)");
        return;
    }
    let probe = Command::new("/usr/bin/unshare")
        .args(["--user", "/bin/true"])
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        eprintln!("skipped: unshare --user does not work here");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let secret = home.path().join("secret.txt");
    std::fs::write(&secret, "TOPSECRET").unwrap();
    let wrapper: Vec<String> = ["/usr/bin/unshare", "--user", "--"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let script = format!(
        "echo ran; cat {} 2>/dev/null || echo refused",
        secret.display()
    );

    let mut s = Spec::sh(Some(policy()), &script);
    s.wrapper = wrapper.clone();
    let r = s.run();
    assert_eq!(r.stdout, "ran\nrefused\n", "{r:#?}");
    assert_eq!(r.layer("namespaces")["active"], false, "{r:#?}");
    let d = r.layer("namespaces")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(d.contains("Operation not permitted"), "{d}");
    r.assert_layers_active(&["landlock", "seccomp"]);

    let mut p = policy();
    p["strict"] = json!(true);
    let mut s = Spec::sh(Some(p), &script);
    s.wrapper = wrapper;
    let r = s.run();
    assert_eq!(r.stdout, "", "{r:#?}");
    let (kind, err) = r.frames.first().expect("a frame");
    assert_eq!(*kind, LAUNCH_ERROR, "{r:#?}");
    assert_eq!(err["layer"], "namespaces");
    assert_eq!(err["errno"], libc::EPERM);
}

/// A host daemon's UNIX socket (think /var/run/docker.sock): not in the new
/// root, and in the fallback tier connect() is refused by seccomp, as
/// Landlock before ABI 9 does not check it.
#[test]
fn cannot_connect_to_host_unix_socket_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daemon.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let code = format!(
        "use Socket; socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die \"socket: $!\"; \
         print connect($s, pack_sockaddr_un('{}')) ? \"CONNECTED\\n\" : \"FAIL:$!\\n\"; \
         print socket(my $d, AF_UNIX, SOCK_DGRAM, 0) ? \"DGRAM\\n\" : \"NODGRAM\\n\"",
        path.display()
    );
    let control = Spec::perl(None, &code).run();
    assert_eq!(control.stdout, "CONNECTED\nDGRAM\n", "{control:#?}");
    let r = Spec::perl(Some(policy()), &code).run();
    r.assert_sandboxed();
    assert!(r.stdout.starts_with("FAIL:"), "{r:#?}");
    let fb = shared_tempdir();
    let r = Spec::perl(Some(fallback_policy(fb.path())), &code)
        .cwd(fb.path())
        .run();
    assert_eq!(
        r.stdout, "FAIL:Operation not permitted\nNODGRAM\n",
        "{r:#?}"
    );
}

// ---------------------------------------------------------------------
// What the fallback tier's filter covers that namespaces cover elsewhere

/// A host process for attacks to aim at: never the test process.
struct Victim(std::process::Child);

impl Victim {
    fn new() -> Victim {
        Victim(Command::new("sleep").arg("600").spawn().unwrap())
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    fn limits(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/limits", self.pid())).unwrap()
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Perl that tries each attack on host objects and prints one line each:
/// `<name>:ok` or `<name>:<error>`.
fn host_attacks(file: &Path, victim: u32, shm: i32) -> String {
    format!(
        "use POSIX; \
         sub r {{ my ($n, $ok) = @_; print \"$n:\", ($ok ? 'ok' : $!), \"\\n\" }} \
         r('chmod', chmod(0666, '{f}')); \
         r('utime', utime(0, 0, '{f}')); \
         r('chown', chown(-1, -1, '{f}')); \
         my $lim = pack('QQ', 1, 1); \
         r('prlimit', syscall({prl}, {v}, 0, $lim, 0) == 0); \
         r('setpriority', syscall({prio}, 0, {v}, 10) == 0); \
         r('kill', kill(0, {v})); \
         my $buf; r('shmread', shmread({shm}, $buf, 0, 4)); \
         r('inotify', syscall({ino}, 0) >= 0);",
        f = file.display(),
        v = victim,
        shm = shm,
        prl = NR_PRLIMIT64,
        prio = NR_SETPRIORITY,
        ino = NR_INOTIFY_INIT1,
    )
}

/// A SysV segment of the host's, removed when dropped.
struct Segment(i32);

impl Segment {
    fn new() -> Segment {
        // SAFETY: shmget with integer arguments.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600) };
        assert!(id >= 0);
        Segment(id)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: removing the segment this test made.
        unsafe { libc::shmctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

#[test]
fn fallback_tier_denies_what_namespaces_deny_elsewhere() {
    let victim = Victim::new();
    let seg = Segment::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("victim");
    std::fs::write(&file, "v").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let code = host_attacks(&file, victim.pid(), seg.0);
    let fb = shared_tempdir();
    for (tier, sandbox) in [
        ("fallback", fallback_policy(fb.path())),
        ("native", policy()),
    ] {
        let mut s = Spec::perl(Some(sandbox), &code);
        if tier == "fallback" {
            s = s.cwd(fb.path());
        }
        let r = s.run();
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(lines.len(), 8, "{tier}: {r:#?}");
        for line in lines {
            assert!(!line.ends_with(":ok"), "{tier}: {line}: {r:#?}");
        }
    }
    let mode = std::fs::metadata(&file).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert!(victim
        .limits()
        .contains("Max cpu time              unlimited"));
    // Control: without the sandbox every attack goes through.
    let r = Spec::perl(None, &code).run();
    assert!(r.stdout.lines().all(|l| l.ends_with(":ok")), "{r:#?}");
    assert!(!victim
        .limits()
        .contains("Max cpu time              unlimited"));
}

// ---------------------------------------------------------------------
// Limits on the whole session

/// Perl that forks six children holding 64 MB each for a few seconds.
const SIX_HOLDERS: &str =
    "for (1..6) { if (!fork) { my $x = 'x' x 64_000_000; sleep 4; exit 0 } } \
                           1 while wait != -1; print \"done\\n\"";

#[test]
fn the_memory_limit_binds_the_whole_session_in_every_tier() {
    let fb = shared_tempdir();
    for (tier, sandbox) in [
        ("native", Some(policy())),
        ("fallback", Some(fallback_policy(fb.path()))),
    ] {
        let spec = || {
            let s = Spec::perl(sandbox.clone(), SIX_HOLDERS);
            if tier == "fallback" {
                s.cwd(fb.path())
            } else {
                s
            }
        };
        let mut s = spec();
        s.limits = json!({"memory": 200_000_000});
        let r = s.run();
        assert_eq!(r.status.signal(), Some(libc::SIGKILL), "{tier}: {r:#?}");
        assert_eq!(r.exit_limit(), Some("memory"), "{tier}: {r:#?}");
        assert!(!r.stdout.contains("done"), "{tier}: {r:#?}");
        // Control: without the limit the six hold their 384 MB.
        let r = spec().run();
        assert_eq!(r.stdout, "done\n", "{tier}: {r:#?}");
        assert_eq!(r.exit_limit(), None, "{tier}: {r:#?}");
    }
}

#[test]
fn the_fallback_folder_is_capped_by_its_supervisor() {
    let fb = shared_tempdir();
    let code = "for my $i (1..3) { open(my $f, '>', \"big$i\") or die; print $f 'x' x 700_000; close $f } \
                sleep 3; print \"done\\n\"";
    let r = Spec::perl(Some(fallback_policy(fb.path())), code)
        .cwd(fb.path())
        .run();
    assert_eq!(r.exit_limit(), Some("tmp_size"), "{r:#?}");
    assert!(!r.stdout.contains("done"), "{r:#?}");
    let detail = r.layer("limits")["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains("temporary folder 1048576 bytes"),
        "{detail}"
    );
    // Control: a folder twice as large takes it.
    let mut p = fallback_policy(fb.path());
    p["tmp_size"] = json!(4 << 20);
    let fresh = shared_tempdir();
    p["fallback_tmp"] = json!(fresh.path());
    let r = Spec::perl(Some(p), code).cwd(fresh.path()).run();
    assert_eq!(r.stdout, "done\n", "{r:#?}");
}
