//! Host side of one child: spawning the launcher, the event pump over the
//! IPC socket and the child's stdout/stderr pipes, sending frames, killing.
//!
//! Nothing here blocks longer than the timeout it is given, so the R loop
//! above it can honour interrupts between waits.

use crate::frame::{self, Decoder, Frame, FrameError, Kind};
use crate::policy::CHILD_IPC_FD;
use crate::policy::{ExitReport, LaunchFailure, LaunchReport, LaunchSpec};
use crate::rvalue;
use crate::sys::{self, set_nonblocking, socketpair};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Longest line kept whole; longer output is split so a child printing
/// without newlines cannot grow the host's buffer without bound.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Error)]
pub enum HostError {
    #[error("cannot create the IPC socket: {0}")]
    Socket(std::io::Error),
    #[error("cannot start the launcher {path}: {source}")]
    Spawn {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot encode the launch spec: {0}")]
    Spec(String),
    #[error("the child process is not running")]
    NotRunning,
    #[error("timed out after {0} ms writing to the child")]
    WriteTimeout(u64),
    #[error("cannot write to the child: {0}")]
    Write(std::io::Error),
    #[error("the zygote could not fork a session: {0}")]
    Zygote(String),
    #[error("timed out after {0} ms waiting for the zygote")]
    ZygoteTimeout(u64),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

impl HostError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            HostError::Socket(e) | HostError::Write(e) | HostError::Spawn { source: e, .. } => {
                e.raw_os_error()
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Complete lines the child printed.
    Output { stream: Stream, lines: Vec<String> },
    /// The launcher applied the sandbox and the child said hello.
    Ready { report: LaunchReport },
    /// The launcher could not build the sandbox or exec R.
    LaunchFailed { failure: LaunchFailure },
    /// A frame from the child whose payload passed the value check.
    Message { kind: Kind, payload: Vec<u8> },
    /// A frame whose value was refused by the allowlist.
    Refused { kind: Kind, message: String },
    /// The child broke the protocol (bad hello, oversized frame, ...).
    ProtocolError { message: String },
    /// The child exited.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the launcher's report.
    Launching,
    /// Waiting for the child's hello.
    Hello,
    Running,
    Closed,
}

#[derive(Debug, Default)]
struct LineBuf {
    partial: Vec<u8>,
}

impl LineBuf {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            if let Some(body) = chunk.strip_suffix(b"\n") {
                self.partial.extend_from_slice(body);
                out.push(String::from_utf8_lossy(&self.partial).into_owned());
                self.partial.clear();
            } else {
                self.partial.extend_from_slice(chunk);
            }
            while self.partial.len() >= MAX_LINE {
                let rest = self.partial.split_off(MAX_LINE);
                out.push(String::from_utf8_lossy(&self.partial).into_owned());
                self.partial = rest;
            }
        }
    }

    fn flush(&mut self, out: &mut Vec<String>) {
        if !self.partial.is_empty() {
            out.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
        }
    }
}

struct Pipe {
    fd: Option<OwnedFd>,
    lines: LineBuf,
    stream: Stream,
}

/// The process behind a child: one the host spawned (the launcher), or a
/// session a zygote forked, known by a pidfd.
enum Proc {
    Spawned(Child),
    Forked { pidfd: OwnedFd, pid: u32 },
}

pub struct HostChild {
    proc_: Proc,
    /// How values from the child are checked (see `rvalue`).
    check: rvalue::CheckLimits,
    /// How the session ended, as its supervisor reported (forked sessions).
    reported_exit: Option<ExitReport>,
    sock: Option<OwnedFd>,
    pipes: [Pipe; 2],
    decoder: Decoder,
    token: Vec<u8>,
    phase: Phase,
    report: LaunchReport,
    queue: VecDeque<Event>,
    exit: Option<(Option<i32>, Option<i32>)>,
}

/// Reads what is available from a non-blocking fd. Returns Ok(None) at EOF.
fn read_available(fd: RawFd, out: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    let mut buf = [0u8; 65536];
    let mut total = 0;
    loop {
        // SAFETY: buf is a live, writable buffer of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            out.extend_from_slice(&buf[..n as usize]);
            total += n as usize;
            if total >= 1 << 20 {
                return Ok(Some(total));
            }
            continue;
        }
        if n == 0 {
            return if total > 0 { Ok(Some(total)) } else { Ok(None) };
        }
        let err = std::io::Error::last_os_error();
        match err.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => return Ok(Some(total)),
            _ => return Err(err),
        }
    }
}

impl HostChild {
    /// Starts `launcher` with the spec; the child's IPC socket becomes fd 3.
    pub fn spawn(
        launcher: &Path,
        spec: &LaunchSpec,
        token: &[u8],
        max_frame: usize,
    ) -> Result<HostChild, HostError> {
        let (ours, theirs) = socketpair().map_err(HostError::Socket)?;
        let mut spec = spec.clone();
        spec.ipc_fd = CHILD_IPC_FD;
        let json = serde_json::to_string(&spec).map_err(|e| HostError::Spec(e.to_string()))?;
        let theirs_fd = theirs.as_raw_fd();
        let mut cmd = Command::new(launcher);
        cmd.arg("--parent")
            .arg(std::process::id().to_string())
            .arg("--spec")
            .arg(json)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: the closure runs between fork and exec and calls only the
        // async-signal-safe dup2 and fcntl.
        unsafe {
            cmd.pre_exec(move || {
                if theirs_fd == CHILD_IPC_FD {
                    if libc::fcntl(theirs_fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(theirs_fd, CHILD_IPC_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| HostError::Spawn {
            path: launcher.display().to_string(),
            source,
        })?;
        drop(theirs);
        set_nonblocking(ours.as_raw_fd()).map_err(HostError::Socket)?;
        let mut pipes = [
            Pipe {
                fd: child.stdout.take().map(OwnedFd::from),
                lines: LineBuf::default(),
                stream: Stream::Stdout,
            },
            Pipe {
                fd: child.stderr.take().map(OwnedFd::from),
                lines: LineBuf::default(),
                stream: Stream::Stderr,
            },
        ];
        for p in pipes.iter_mut() {
            if let Some(fd) = &p.fd {
                set_nonblocking(fd.as_raw_fd()).map_err(HostError::Socket)?;
            }
        }
        Ok(HostChild {
            proc_: Proc::Spawned(child),
            check: check_limits(max_frame),
            reported_exit: None,
            sock: Some(ours),
            pipes,
            decoder: Decoder::new(max_frame),
            token: token.to_vec(),
            phase: Phase::Launching,
            report: LaunchReport::default(),
            queue: VecDeque::new(),
            exit: None,
        })
    }

    pub fn pid(&self) -> u32 {
        match &self.proc_ {
            Proc::Spawned(c) => c.id(),
            Proc::Forked { pid, .. } => *pid,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Running
    }

    /// True while the process has not been seen to exit.
    pub fn is_alive(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match &mut self.proc_ {
            Proc::Spawned(child) => match child.try_wait() {
                Ok(Some(status)) => {
                    self.exit = Some((status.code(), status.signal()));
                    false
                }
                Ok(None) => true,
                Err(_) => false,
            },
            Proc::Forked { pidfd, .. } => {
                if !pidfd_exited(pidfd, 0) {
                    return true;
                }
                self.exit = Some(match self.reported_exit {
                    Some(r) => (r.code, r.signal),
                    None => (None, Some(libc::SIGKILL)),
                });
                false
            }
        }
    }

    /// fds the pump waits on (for callers polling many children at once).
    pub fn poll_fds(&self) -> Vec<RawFd> {
        let mut v = Vec::new();
        if let Some(s) = &self.sock {
            v.push(s.as_raw_fd());
        }
        for p in &self.pipes {
            if let Some(fd) = &p.fd {
                v.push(fd.as_raw_fd());
            }
        }
        v
    }

    /// Replaces the S3 classes accepted in values from the child.
    pub fn set_allowed_classes(&mut self, classes: Vec<String>) {
        self.check.allowed_classes = Some(classes);
    }

    /// The launcher's report, once it arrived (empty before).
    pub fn launch_report(&self) -> &LaunchReport {
        &self.report
    }

    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The next event, waiting at most `timeout`. `None` when nothing
    /// happened in time.
    pub fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        if let Some(ev) = self.queue.pop_front() {
            return Some(ev);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let fds = self.poll_fds();
            if fds.is_empty() {
                self.finish();
                return self.queue.pop_front();
            }
            let mut pfds: Vec<libc::pollfd> = fds
                .iter()
                .map(|fd| libc::pollfd {
                    fd: *fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: pfds is a live array of pollfd of the given length.
            let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    self.protocol_error(format!("poll failed: {err}"));
                    return self.queue.pop_front();
                }
            } else if n > 0 {
                self.pump_pipes(false);
                self.pump_socket();
            }
            if let Some(ev) = self.queue.pop_front() {
                return Some(ev);
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    fn pump_pipes(&mut self, flush: bool) {
        for i in 0..2 {
            let Some(fd) = self.pipes[i].fd.as_ref().map(|f| f.as_raw_fd()) else {
                continue;
            };
            let mut bytes = Vec::new();
            let eof = !matches!(read_available(fd, &mut bytes), Ok(Some(_)));
            let pipe = &mut self.pipes[i];
            let mut lines = Vec::new();
            pipe.lines.push(&bytes, &mut lines);
            if flush || eof {
                pipe.lines.flush(&mut lines);
            }
            if eof {
                pipe.fd = None;
            }
            if !lines.is_empty() {
                self.queue.push_back(Event::Output {
                    stream: pipe.stream,
                    lines,
                });
            }
        }
    }

    fn pump_socket(&mut self) {
        let Some(fd) = self.sock.as_ref().map(|s| s.as_raw_fd()) else {
            return;
        };
        let mut bytes = Vec::new();
        let eof = match read_available(fd, &mut bytes) {
            Ok(Some(_)) => false,
            Ok(None) => true,
            Err(_) => true,
        };
        self.decoder.push(&bytes);
        loop {
            match self.decoder.next_frame() {
                Ok(Some(f)) => self.on_frame(f),
                Ok(None) => break,
                Err(e) => {
                    self.protocol_error(format!("invalid message from the child: {e}"));
                    return;
                }
            }
            if self.phase == Phase::Closed {
                return;
            }
        }
        if eof {
            self.finish();
        }
    }

    fn protocol_error(&mut self, message: String) {
        self.queue.push_back(Event::ProtocolError { message });
        self.kill();
    }

    fn on_frame(&mut self, f: Frame) {
        if f.kind == Kind::Exit {
            self.reported_exit = serde_json::from_slice(&f.payload).ok();
            return;
        }
        match (self.phase, f.kind) {
            (Phase::Launching, Kind::LaunchReport) => {
                match serde_json::from_slice::<LaunchReport>(&f.payload) {
                    Ok(r) => {
                        self.report = r;
                        self.phase = Phase::Hello;
                    }
                    Err(e) => self.protocol_error(format!("invalid launch report: {e}")),
                }
            }
            (Phase::Launching, Kind::LaunchError) => {
                let failure =
                    serde_json::from_slice::<LaunchFailure>(&f.payload).unwrap_or_else(|e| {
                        LaunchFailure {
                            layer: crate::policy::Layer::Launcher,
                            message: format!("unreadable failure report: {e}"),
                            errno: None,
                        }
                    });
                self.queue.push_back(Event::LaunchFailed { failure });
            }
            (Phase::Hello, Kind::Hello) => {
                if frame::hello_matches(&f.payload, &self.token) {
                    self.phase = Phase::Running;
                    self.queue.push_back(Event::Ready {
                        report: self.report.clone(),
                    });
                } else {
                    self.protocol_error("IPC authentication failed: the child's hello did not carry the session token".into());
                }
            }
            (Phase::Running, Kind::Result | Kind::Error | Kind::ToolCall) => {
                if matches!(f.kind, Kind::Result | Kind::Error) {
                    // Output printed before the value was sent is already in
                    // the pipes: deliver it first, including partial lines.
                    self.pump_pipes(true);
                }
                match rvalue::check_with(&f.payload, &self.check) {
                    Ok(()) => self.queue.push_back(Event::Message {
                        kind: f.kind,
                        payload: f.payload,
                    }),
                    Err(e) => self.queue.push_back(Event::Refused {
                        kind: f.kind,
                        message: e.to_string(),
                    }),
                }
            }
            (phase, kind) => self.protocol_error(format!(
                "unexpected '{}' message from the child{}",
                kind.name(),
                match phase {
                    Phase::Launching => " before the launch report",
                    Phase::Hello => " before its hello",
                    _ => "",
                }
            )),
        }
    }

    /// Socket closed: collect the remaining output and the exit status.
    fn finish(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        self.sock = None;
        let grace = Instant::now() + Duration::from_millis(500);
        loop {
            if !self.is_alive() || Instant::now() >= grace {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if self.exit.is_none() {
            self.kill();
        }
        self.pump_pipes(true);
        self.pipes[0].fd = None;
        self.pipes[1].fd = None;
        self.phase = Phase::Closed;
        let (code, signal) = self.exit.unwrap_or((None, Some(libc::SIGKILL)));
        self.queue.push_back(Event::Exited { code, signal });
    }

    /// Sends one frame, waiting at most `timeout` for the socket to drain.
    pub fn send(&mut self, kind: Kind, payload: &[u8], timeout: Duration) -> Result<(), HostError> {
        let fd = match (&self.sock, self.phase) {
            (Some(s), Phase::Running) => s.as_raw_fd(),
            _ => return Err(HostError::NotRunning),
        };
        let bytes = frame::encode(kind, payload)?;
        let deadline = Instant::now() + timeout;
        let mut off = 0;
        while off < bytes.len() {
            // SAFETY: pointer and length describe the live `bytes` buffer.
            let n = unsafe {
                libc::send(
                    fd,
                    bytes[off..].as_ptr().cast(),
                    bytes.len() - off,
                    libc::MSG_NOSIGNAL,
                )
            };
            if n >= 0 {
                off += n as usize;
                continue;
            }
            let err = std::io::Error::last_os_error();
            match err.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(HostError::WriteTimeout(timeout.as_millis() as u64));
                    }
                    sys::poll_one(fd, libc::POLLOUT, left.as_millis().min(1000) as i32);
                }
                _ => return Err(HostError::Write(err)),
            }
        }
        Ok(())
    }

    /// Sends a signal to the child's process group.
    pub fn signal(&mut self, sig: i32) -> bool {
        if !self.is_alive() {
            return false;
        }
        match &self.proc_ {
            Proc::Spawned(child) => {
                let pgid = child.id() as i32;
                // SAFETY: kill with integer arguments; the group is our child's.
                unsafe { libc::kill(-pgid, sig) == 0 }
            }
            Proc::Forked { pidfd, .. } => {
                // SAFETY: pidfd_send_signal on a pidfd we own; no siginfo.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        pidfd.as_raw_fd(),
                        sig,
                        std::ptr::null::<libc::siginfo_t>(),
                        0u32,
                    ) == 0
                }
            }
        }
    }

    /// Kills the child (the whole process group, or the forked session's
    /// supervisor, whose death takes the session's pid namespace with it)
    /// and reaps it.
    pub fn kill(&mut self) {
        if self.is_alive() {
            self.signal(libc::SIGKILL);
            match &mut self.proc_ {
                Proc::Spawned(child) => {
                    if let Ok(status) = child.wait() {
                        self.exit = Some((status.code(), status.signal()));
                    }
                }
                Proc::Forked { pidfd, .. } => {
                    pidfd_exited(pidfd, 2000);
                    self.exit = Some((None, Some(libc::SIGKILL)));
                }
            }
        }
        self.sock = None;
    }

    /// Asks this child, a warm zygote, to fork a session. The request is
    /// a JSON `ForkRequest`; the session then reports and says hello like a
    /// spawned child.
    #[cfg(target_os = "linux")]
    pub fn fork_session(
        &mut self,
        request: &[u8],
        token: &[u8],
        max_frame: usize,
        timeout: Duration,
    ) -> Result<HostChild, HostError> {
        let zfd = match (&self.sock, self.phase) {
            (Some(s), Phase::Running) => s.as_raw_fd(),
            _ => return Err(HostError::NotRunning),
        };
        let (ours, theirs) = socketpair().map_err(HostError::Socket)?;
        let (out_r, out_w) =
            sys::pipe().map_err(|e| HostError::Socket(std::io::Error::from_raw_os_error(e)))?;
        let (err_r, err_w) =
            sys::pipe().map_err(|e| HostError::Socket(std::io::Error::from_raw_os_error(e)))?;
        let bytes = frame::encode(Kind::Fork, request)?;
        crate::fdpass::send_with_fds(
            zfd,
            &bytes,
            &[theirs.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
        )
        .map_err(HostError::Write)?;
        drop((theirs, out_w, err_w));
        let deadline = Instant::now() + timeout;
        let mut fds = Vec::new();
        let mut buf = vec![0u8; 4096];
        let pidfd = loop {
            match self.decoder.next_frame()? {
                Some(f) if f.kind == Kind::Forked => match fds.pop() {
                    Some(fd) => break fd,
                    None => return Err(HostError::Zygote("no pidfd came with the reply".into())),
                },
                Some(f) if f.kind == Kind::LaunchError => {
                    let msg = serde_json::from_slice::<LaunchFailure>(&f.payload)
                        .map(|l| l.message)
                        .unwrap_or_else(|_| "unreadable failure report".into());
                    return Err(HostError::Zygote(msg));
                }
                Some(_) => continue,
                None => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HostError::ZygoteTimeout(timeout.as_millis() as u64));
            }
            if sys::poll_one(zfd, libc::POLLIN, left.as_millis().min(1000) as i32) == 0 {
                continue;
            }
            let (n, got) = crate::fdpass::recv_with_fds(zfd, &mut buf).map_err(HostError::Write)?;
            if n == 0 {
                self.finish();
                return Err(HostError::NotRunning);
            }
            fds.extend(got);
            self.decoder.push(&buf[..n]);
        };
        let pid = host_pid_of(&pidfd).unwrap_or(0);
        for fd in [&ours, &out_r, &err_r] {
            set_nonblocking(fd.as_raw_fd()).map_err(HostError::Socket)?;
        }
        Ok(HostChild {
            proc_: Proc::Forked { pidfd, pid },
            check: check_limits(max_frame),
            reported_exit: None,
            sock: Some(ours),
            pipes: [
                Pipe {
                    fd: Some(out_r),
                    lines: LineBuf::default(),
                    stream: Stream::Stdout,
                },
                Pipe {
                    fd: Some(err_r),
                    lines: LineBuf::default(),
                    stream: Stream::Stderr,
                },
            ],
            decoder: Decoder::new(max_frame),
            token: token.to_vec(),
            phase: Phase::Launching,
            report: LaunchReport::default(),
            queue: VecDeque::new(),
            exit: None,
        })
    }

    /// How the session ended as its supervisor reported it (which session
    /// limit stopped it), if it did.
    pub fn exit_report(&self) -> Option<ExitReport> {
        self.reported_exit
    }

    /// Exit code and signal once the child has exited.
    pub fn exit_status(&mut self) -> Option<(Option<i32>, Option<i32>)> {
        self.is_alive();
        self.exit
    }
}

impl Drop for HostChild {
    fn drop(&mut self) {
        self.kill();
    }
}

fn check_limits(max_frame: usize) -> rvalue::CheckLimits {
    rvalue::CheckLimits {
        max_bytes: max_frame,
        ..rvalue::CheckLimits::default()
    }
}

/// True once the process behind `pidfd` has exited (waits up to `ms`).
fn pidfd_exited(pidfd: &OwnedFd, ms: i32) -> bool {
    sys::poll_one(pidfd.as_raw_fd(), libc::POLLIN, ms) != 0
}

/// The pid, in our pid namespace, of the process behind `pidfd`.
#[cfg(target_os = "linux")]
fn host_pid_of(pidfd: &OwnedFd) -> Option<u32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until any of `fds` is readable or `timeout` passes; returns the
/// indices of readable fds. For pumping many children from one thread.
pub fn wait_any(fds: &[RawFd], timeout: Duration) -> Vec<usize> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: *fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: pfds is a live array of pollfd of the given length.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if n <= 0 {
        return Vec::new();
    }
    pfds.iter()
        .enumerate()
        .filter(|(_, p)| p.revents != 0)
        .map(|(i, _)| i)
        .collect()
}
