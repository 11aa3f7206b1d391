//! Host side of one child: spawning the launcher (or asking a zygote to fork
//! a session), the event pump over the IPC socket, the child's stdout/stderr
//! pipes and its pidfd, sending requests, killing.
//!
//! - `process`: the process behind a child (spawn, pidfd, signal, kill, reap).
//! - `session`: the conversation as a pure state machine (phases, hello,
//!   request ids).
//! - `lines`: stdout/stderr bytes to bounded, cleaned lines (pure).
//! - `pump`: waiting on the fds and turning what arrives into `Event`s.
//! - `send`: writing a stamped request within a deadline.
//!
//! Nothing here blocks longer than the timeout it is given (killing waits
//! at most `process::KILL_WAIT`), so the R loop above can honour interrupts
//! between waits.

mod lines;
mod process;
mod pump;
mod send;
mod session;
#[cfg(test)]
mod tests;

pub use lines::{LineBuf, OutputBudget, DEFAULT_MAX_OUTPUT_BYTES};
pub use pump::wait_any;
pub use send::random_bytes;
pub use session::{Phase, Session, Stamp, Step};

use crate::error::{Error, ErrorKind};
use crate::frame::{Decoder, Kind};
use crate::policy::{ExitReport, LaunchFailure, LaunchReport, LaunchSpec, CHILD_IPC_FD};
use crate::rvalue;
use crate::sys::{set_nonblocking, socketpair};
use process::Process;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

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

/// What the pump reports. Every string in it was cleaned (`text`).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Complete lines the child printed.
    Output { stream: Stream, lines: Vec<String> },
    /// The launcher applied the sandbox and the child said hello.
    Ready { report: LaunchReport },
    /// The launcher could not build the sandbox or exec R.
    LaunchFailed { failure: LaunchFailure },
    /// A reply to the outstanding request whose value passed the check;
    /// `plain` when it is a result the host takes as its answer at once
    /// (`rvalue::check_reply`).
    Message {
        kind: Kind,
        payload: Vec<u8>,
        plain: bool,
    },
    /// A reply to the outstanding request whose value was refused.
    Refused { kind: Kind, message: String },
    /// The child broke the protocol (bad hello, oversized frame, ...); it
    /// was killed.
    ProtocolError { message: String },
    /// The child exited.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

struct Pipe {
    fd: Option<OwnedFd>,
    lines: LineBuf,
    stream: Stream,
    /// The last wait found it readable, and it has not been drained since.
    ready: bool,
}

impl Pipe {
    fn new(fd: OwnedFd, stream: Stream) -> Pipe {
        Pipe {
            fd: Some(fd),
            lines: LineBuf::default(),
            stream,
            ready: false,
        }
    }
}

pub struct HostChild {
    process: Process,
    session: Session,
    /// How values from the child are checked (see `rvalue`).
    check: rvalue::CheckLimits,
    sock: Option<OwnedFd>,
    decoder: Decoder,
    pipes: [Pipe; 2],
    /// Output stored for the current execution.
    budget: OutputBudget,
    /// The budget each execution starts with.
    output_limit: usize,
    queue: VecDeque<Event>,
    /// Set when the socket closed while the process still ran: the end of
    /// its grace period, after which it is killed.
    closing: Option<Instant>,
    /// Awaits the reply to the last request by polling for a moment.
    spin: crate::sys::Spinner,
}

impl HostChild {
    fn new(
        process: Process,
        sock: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
        token: &[u8],
        max_frame: usize,
    ) -> HostChild {
        HostChild {
            process,
            session: Session::new(token),
            check: rvalue::CheckLimits {
                max_bytes: max_frame,
                ..rvalue::CheckLimits::default()
            },
            sock: Some(sock),
            decoder: Decoder::new(max_frame),
            pipes: [
                Pipe::new(stdout, Stream::Stdout),
                Pipe::new(stderr, Stream::Stderr),
            ],
            budget: OutputBudget::default(),
            output_limit: DEFAULT_MAX_OUTPUT_BYTES,
            queue: VecDeque::new(),
            closing: None,
            spin: crate::sys::Spinner::default(),
        }
    }

    /// Starts `launcher` with the spec; the child's IPC socket becomes fd 3.
    /// `max_frame` comes from `frame::frame_limit`.
    pub fn spawn(
        launcher: &Path,
        spec: &LaunchSpec,
        token: &[u8],
        max_frame: usize,
    ) -> Result<HostChild, Error> {
        let (ours, theirs) = socketpair().map_err(|e| Error::caused_by(ErrorKind::Socket, &e))?;
        let mut spec = spec.clone();
        spec.ipc_fd = CHILD_IPC_FD;
        let json = serde_json::to_string(&spec).map_err(|e| {
            Error::new(
                ErrorKind::Input,
                format!("cannot encode the launch spec: {e}"),
            )
        })?;
        let spawned = Process::spawn(launcher, &json, &theirs)?;
        drop(theirs);
        let pid = spawned.process.pid();
        set_nonblocking(ours.as_raw_fd())
            .map_err(|e| Error::caused_by(ErrorKind::Socket, &e).with_pid(pid))?;
        Ok(HostChild::new(
            spawned.process,
            ours,
            spawned.stdout,
            spawned.stderr,
            token,
            max_frame,
        ))
    }

    /// Asks this child, a warm zygote, to fork a session. The request is a
    /// JSON `ForkRequest`; the session then reports and says hello like a
    /// spawned child.
    #[cfg(native_linux)]
    pub fn fork_session(
        &mut self,
        request: &[u8],
        token: &[u8],
        max_frame: usize,
        timeout: Duration,
    ) -> Result<HostChild, Error> {
        let (ours, theirs) = socketpair().map_err(|e| Error::caused_by(ErrorKind::Socket, &e))?;
        let pipe = || {
            crate::sys::pipe().map_err(|e| {
                Error::caused_by(ErrorKind::Socket, &std::io::Error::from_raw_os_error(e))
            })
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let pidfd = self.request_fork(request, [theirs, out_w, err_w], timeout)?;
        for fd in [&ours, &out_r, &err_r] {
            set_nonblocking(fd.as_raw_fd()).map_err(|e| Error::caused_by(ErrorKind::Socket, &e))?;
        }
        Ok(HostChild::new(
            Process::forked(pidfd),
            ours,
            out_r,
            err_r,
            token,
            max_frame,
        ))
    }

    /// Other systems have no warm zygote (see `zygote`): an error.
    #[cfg(not(native_linux))]
    pub fn fork_session(
        &mut self,
        _request: &[u8],
        _token: &[u8],
        _max_frame: usize,
        _timeout: Duration,
    ) -> Result<HostChild, Error> {
        Err(Error::new(
            ErrorKind::Zygote,
            "a warm zygote needs Linux; sessions start cold on this system",
        ))
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The conversation's phase (`Phase::name()` is what R sees).
    pub fn phase(&self) -> Phase {
        self.session.phase()
    }

    /// Frames from the child dropped because they answered no outstanding
    /// request.
    pub fn discarded(&self) -> u64 {
        self.session.discarded()
    }

    /// True while the process has not been seen to exit. A forked
    /// session's supervisor reports R's end on the socket before it exits
    /// itself: a report already waiting there counts.
    pub fn is_alive(&mut self) -> bool {
        if self.session.phase() == Phase::Closed || self.process.has_exited() {
            return false;
        }
        if self.session.exit_report().is_none() {
            self.pump_waiting();
        }
        self.session.exit_report().is_none()
    }

    /// Replaces the S3 classes accepted in values from the child.
    pub fn set_allowed_classes(&mut self, classes: Vec<String>) {
        self.check.allowed_classes = Some(classes);
    }

    /// Sets how many bytes of output each execution stores, from the next
    /// execution on.
    pub fn set_output_limit(&mut self, bytes: usize) {
        self.output_limit = bytes;
    }

    /// The launcher's report, once it arrived (empty before).
    pub fn launch_report(&self) -> &LaunchReport {
        self.session.report()
    }

    /// How the session ended as its supervisor reported it (which session
    /// limit stopped it), if it did.
    pub fn exit_report(&self) -> Option<ExitReport> {
        self.session.exit_report()
    }

    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Drops the queued events; replies among them count as discarded.
    fn drop_queued(&mut self) {
        for ev in self.queue.drain(..) {
            if matches!(ev, Event::Message { .. } | Event::Refused { .. }) {
                self.session.count_discarded();
            }
        }
    }

    /// Sends a signal to the child (a spawned launcher's process group, or
    /// a forked session's supervisor, which forwards it to R). False once
    /// the child is gone.
    pub fn signal(&mut self, sig: i32) -> bool {
        self.process.signal(sig)
    }

    /// Kills the child and releases its fds, waiting at most `KILL_WAIT`
    /// for a spawned one (a forked one is its zygote's to reap).
    pub fn kill(&mut self) {
        self.kill_and_wait(false);
    }

    /// As `kill`; `wait`: wait for a forked session to go too.
    pub fn kill_and_wait(&mut self, wait: bool) {
        self.process.kill(self.session.exit_report(), wait);
        self.sock = None;
        for p in self.pipes.iter_mut() {
            p.fd = None;
        }
        self.session.close();
    }
}
