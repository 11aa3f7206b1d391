//! The event pump: waits on a child's socket, pipes and pidfd, reads what
//! arrived, and turns it into `Event`s through the line buffers and the
//! session state machine.

use super::{Event, HostChild, Phase, Step};
use crate::rvalue;
use crate::text;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// How long a child whose socket closed may take to exit before it is
/// killed.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// Without an fd that tells a child's exit (no pidfd: other systems,
/// kernels before 5.3), how often a wait stops to reap it.
const EXIT_POLL: Duration = Duration::from_millis(100);

/// Most bytes read from one fd per pump: the rest waits for the next one,
/// so one flooding stream cannot starve the others.
const READ_CHUNK: usize = 1 << 20;

/// Longest message (from the checker or the protocol) passed on to R.
const MAX_MESSAGE_CHARS: usize = 4096;

/// What one read of an fd found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Everything available was read.
    Drained,
    /// `READ_CHUNK` bytes were read; more may be waiting.
    More,
    /// End of file (or an error, which ends the stream too).
    End,
}

/// Reads what is available from a non-blocking fd, at most `READ_CHUNK`,
/// into `out`'s spare capacity (nothing is zeroed first: a round trip
/// reads a few hundred bytes). A read that does not fill the space given
/// emptied the fd for now: no second read only to be told so.
fn read_available(fd: RawFd, out: &mut Vec<u8>) -> Read {
    let start = out.len();
    let mut want = 4096;
    loop {
        out.reserve(want);
        let spare = out.capacity() - out.len();
        // SAFETY: the pointer is `out`'s spare capacity, `spare` bytes long;
        // read() writes at most that many, and only those are then counted
        // as initialised.
        let n = unsafe { libc::read(fd, out.as_mut_ptr().add(out.len()).cast(), spare) };
        if n > 0 {
            // SAFETY: read() initialised `n` more bytes (n <= spare).
            unsafe { out.set_len(out.len() + n as usize) };
            if out.len() - start >= READ_CHUNK {
                return Read::More;
            }
            if (n as usize) < spare {
                return Read::Drained;
            }
            want = (out.len() - start).min(READ_CHUNK);
            continue;
        }
        if n == 0 {
            return Read::End;
        }
        match std::io::Error::last_os_error().kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => return Read::Drained,
            _ => return Read::End,
        }
    }
}

/// Which of a child's fds one wait found readable.
#[derive(Debug, Default, Clone, Copy)]
struct Ready {
    sock: bool,
    pipes: [bool; 2],
    exit: bool,
}

/// Untrusted text for an event: cleaned and bounded.
fn shown(message: String) -> String {
    text::clean_chars(message.as_bytes(), MAX_MESSAGE_CHARS)
}

impl HostChild {
    /// fds the pump waits on (for callers polling many children at once):
    /// the socket, the pipes and the pidfd.
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
        if self.session.phase() != Phase::Closed {
            v.extend(self.process.exit_fd());
        }
        v
    }

    /// The next event, waiting at most `timeout`. `None` when nothing
    /// happened in time, and after the `Exited` event.
    ///
    /// One wait per pass, and only the fds it found readable are read: a
    /// round trip costs one `ppoll`, one read of the socket and none of the
    /// quiet pipes. The child flushes its output before it replies, and the
    /// socket is polled before the pipes, so output that preceded a reply
    /// is always seen in the same pass as the reply.
    pub fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Some(ev);
            }
            if self.session.phase() == Phase::Closed {
                return None;
            }
            let now = Instant::now();
            let mut until = deadline;
            if let Some(end) = self.closing {
                until = until.min(end);
            }
            // Only reaping tells the exit of a child whose socket is held
            // open by another process (one it started).
            let reap = self.process.exit_fd().is_none();
            if reap {
                until = until.min(now + EXIT_POLL);
            }
            let ready = self.wait(until.saturating_duration_since(now));
            for (pipe, r) in self.pipes.iter_mut().zip(ready.pipes) {
                pipe.ready |= r;
            }
            self.pump_pipes(false);
            if ready.sock {
                self.pump_socket();
            }
            let quiet = !ready.sock && !ready.exit && ready.pipes == [false; 2];
            if ready.exit || self.closing.is_some() || (reap && quiet) {
                self.check_exit();
            }
            if self.queue.is_empty() && Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// Takes in what is already waiting on the socket, without blocking
    /// (events are queued for `next_event`).
    pub(super) fn pump_waiting(&mut self) {
        let ready = self
            .sock
            .as_ref()
            .is_some_and(|s| crate::sys::poll_one(s.as_raw_fd(), libc::POLLIN, 0) != 0);
        if ready {
            self.pump_socket();
        }
    }

    /// Waits until one of our fds is ready or `wait` passes (to the
    /// microsecond: a wait shorter than a millisecond is not a busy loop);
    /// shortly after a request, by polling first (`sys::Spinner`).
    fn wait(&mut self, wait: Duration) -> Ready {
        let mut pfds = [libc::pollfd {
            fd: -1,
            events: libc::POLLIN,
            revents: 0,
        }; 4];
        // The socket before the pipes (see `next_event`).
        if let Some(s) = &self.sock {
            pfds[0].fd = s.as_raw_fd();
        }
        for (i, p) in self.pipes.iter().enumerate() {
            if let Some(fd) = &p.fd {
                pfds[1 + i].fd = fd.as_raw_fd();
            }
        }
        if self.session.phase() != Phase::Closed {
            if let Some(fd) = self.process.exit_fd() {
                pfds[3].fd = fd;
            }
        }
        let end = Instant::now() + wait;
        let spun = self.spin.poll(&mut pfds, end);
        let wait = end.saturating_duration_since(Instant::now());
        #[cfg(native_linux)]
        let n = if spun != 0 {
            spun
        } else {
            let ts = libc::timespec {
                tv_sec: wait.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            };
            // SAFETY: pfds is a live array of 4 pollfd (negative fds are
            // ignored); ts is a valid timespec; no signal mask is given.
            unsafe { libc::ppoll(pfds.as_mut_ptr(), 4, &ts, std::ptr::null()) }
        };
        // Other systems have no ppoll: whole milliseconds, rounded up (a
        // shorter wait would spin).
        #[cfg(not(native_linux))]
        let n = if spun != 0 {
            spun
        } else {
            let ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
            // SAFETY: pfds is a live array of 4 pollfd (negative fds are
            // ignored).
            unsafe { libc::poll(pfds.as_mut_ptr(), 4, ms) }
        };
        if n <= 0 {
            return Ready::default();
        }
        let hit = |i: usize| pfds[i].fd >= 0 && pfds[i].revents != 0;
        Ready {
            sock: hit(0),
            pipes: [hit(1), hit(2)],
            exit: hit(3),
        }
    }

    /// Reads the pipes found readable into lines. `flush`: an unfinished
    /// line counts as a line (before a reply, so output precedes what it
    /// preceded).
    pub(super) fn pump_pipes(&mut self, flush: bool) {
        self.pump_pipes_with(flush, false);
    }

    /// As `pump_pipes`; `force` reads both pipes whatever the last wait
    /// found (the child is gone: what is left is read to the end).
    fn pump_pipes_with(&mut self, flush: bool, force: bool) {
        for i in 0..2 {
            let pipe = &mut self.pipes[i];
            let mut raw = Vec::new();
            let mut eof = false;
            if let Some(fd) = pipe.fd.as_ref().map(|f| f.as_raw_fd()) {
                if pipe.ready || force {
                    let mut bytes = Vec::new();
                    let read = read_available(fd, &mut bytes);
                    // More may wait behind a full chunk: read on next pass.
                    pipe.ready = read == Read::More;
                    eof = read == Read::End;
                    pipe.lines.push(&bytes, &mut raw);
                }
            }
            if flush || eof {
                pipe.lines.flush(&mut raw);
            }
            if eof {
                pipe.fd = None;
            }
            if raw.is_empty() {
                continue;
            }
            let stream = pipe.stream;
            let mut lines = Vec::new();
            self.budget.admit(raw, &mut lines);
            if !lines.is_empty() {
                self.queue.push_back(Event::Output { stream, lines });
            }
        }
    }

    /// Reads the socket and handles the frames that arrived. True when more
    /// bytes may be waiting.
    fn pump_socket(&mut self) -> bool {
        let Some(fd) = self.sock.as_ref().map(|s| s.as_raw_fd()) else {
            return false;
        };
        let mut bytes = Vec::new();
        let read = read_available(fd, &mut bytes);
        self.decoder.push(&bytes);
        loop {
            match self.decoder.next_frame() {
                Ok(Some(f)) => {
                    let step = self.session.on_frame(f);
                    self.on_step(step);
                }
                Ok(None) => break,
                Err(e) => {
                    self.protocol_error(format!("invalid message from the child: {e}"));
                    return false;
                }
            }
            if self.session.phase() == Phase::Closed {
                return false;
            }
        }
        if read == Read::End {
            self.sock = None;
            self.closing = Some(Instant::now() + EXIT_GRACE);
        }
        read == Read::More
    }

    fn on_step(&mut self, step: Step) {
        match step {
            Step::Nothing | Step::Discarded => {}
            Step::Ready(report) => self.queue.push_back(Event::Ready { report }),
            Step::LaunchFailed(mut failure) => {
                failure.message = shown(failure.message);
                self.queue.push_back(Event::LaunchFailed { failure });
            }
            Step::Reply { kind, payload } => {
                // Output printed before the reply was sent is in the pipes
                // already: deliver it first, including unfinished lines.
                self.pump_pipes(true);
                // A plot is PNG bytes, checked as such by the host (`png`).
                let checked = if kind == crate::frame::Kind::Result {
                    rvalue::check_reply(&payload, &self.check)
                } else if kind.carries_r_value() {
                    rvalue::check_with(&payload, &self.check).map(|()| false)
                } else {
                    Ok(false)
                };
                let ev = match checked {
                    Ok(plain) => Event::Message {
                        kind,
                        payload,
                        plain,
                    },
                    Err(e) => Event::Refused {
                        kind,
                        message: shown(e.to_string()),
                    },
                };
                self.queue.push_back(ev);
            }
            Step::Violation(message) => self.protocol_error(message),
        }
    }

    /// The child broke the protocol: report it and stop the child.
    fn protocol_error(&mut self, message: String) {
        self.queue.push_back(Event::ProtocolError {
            message: shown(message),
        });
        self.process.kill(self.session.exit_report(), false);
        self.finish();
    }

    /// Finishes once the process exited, or its grace period after closing
    /// the socket ran out.
    fn check_exit(&mut self) {
        if self.session.phase() == Phase::Closed {
            return;
        }
        if self.process.has_exited() {
            // What it sent before exiting is in the socket by now: up to one
            // largest frame of it is read (a process that inherited the
            // socket could keep writing forever).
            let mut budget = self.decoder.max_payload() / READ_CHUNK + 2;
            while budget > 0 && self.pump_socket() {
                budget -= 1;
            }
            self.finish();
        } else if self.closing.is_some_and(|end| Instant::now() >= end) {
            self.process.kill(self.session.exit_report(), false);
            self.finish();
        }
    }

    /// The child is gone: delivers its remaining output and the exit event.
    fn finish(&mut self) {
        if self.session.phase() == Phase::Closed {
            return;
        }
        let reported = self.session.exit_report();
        let (code, signal) = self.process.collect(reported).unwrap_or_else(|| {
            self.process.kill(reported, false);
            self.process
                .collect(reported)
                .unwrap_or((None, Some(libc::SIGKILL)))
        });
        self.sock = None;
        self.pump_pipes_with(true, true);
        for p in self.pipes.iter_mut() {
            p.fd = None;
        }
        self.session.close();
        self.closing = None;
        self.queue.push_back(Event::Exited { code, signal });
    }
}

/// Waits until any of `fds` is readable or `timeout` passes; returns the
/// indices of readable fds. For pumping many children from one thread (a
/// pool's batch): the wait polls for a moment before it sleeps, as a
/// child's reply is awaited (`sys::Spinner`; one per thread, so that a
/// core found busy pauses the polling of every later wait). A pool's host
/// waits while its children work: a third of a short batch's time was the
/// host asleep, and waking it took tens of microseconds per reply.
pub fn wait_any(fds: &[RawFd], timeout: Duration) -> Vec<usize> {
    thread_local! {
        static SPIN: std::cell::RefCell<crate::sys::Spinner> =
            std::cell::RefCell::new(crate::sys::Spinner::default());
    }
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: *fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let end = Instant::now() + timeout;
    let spun = SPIN.with(|s| {
        let mut s = s.borrow_mut();
        s.arm();
        s.poll(&mut pfds, end)
    });
    let ms = end
        .saturating_duration_since(Instant::now())
        .as_millis()
        .min(i32::MAX as u128) as i32;
    let n = if spun != 0 {
        spun
    } else {
        // SAFETY: pfds is a live array of pollfd of the given length.
        unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) }
    };
    if n <= 0 {
        return Vec::new();
    }
    pfds.iter()
        .enumerate()
        .filter(|(_, p)| p.revents != 0)
        .map(|(i, _)| i)
        .collect()
}
