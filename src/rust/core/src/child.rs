//! Child side of the IPC socket: frame I/O for the child runtime, with the
//! child's half of the id protocol (see `frame`). Replies name the host
//! request being answered; a tool call carries an id of its own, and only a
//! tool reply naming it is taken as its answer. Anything that answers
//! nothing the child is waiting for is dropped and counted.
//!
//! `recv` waits with a timeout and returns on a signal, so that R, between
//! calls, can take a pending interrupt (SIGINT from the host stops an
//! evaluation even while it waits for a tool).

use crate::error::{Error, ErrorKind};
use crate::frame::{self, Decoder, Frame, Kind};
use std::os::fd::RawFd;
use std::time::Duration;

/// How long the child waits for its next request before it gives back the
/// memory it holds without using it (`sys::release_unused`): an idle
/// session then costs less, and one that works often pays nothing (the
/// pages come back at a few microseconds per 4 KiB, once per idle spell).
const IDLE_MS: i32 = 100;

/// Blocking endpoint over an inherited socket fd.
pub struct ChildIo {
    fd: RawFd,
    decoder: Decoder,
    /// The id of the host request being answered (0 before the first).
    answering: u64,
    /// The id of the tool call waiting for its reply.
    awaiting: Option<u64>,
    last_call: u64,
    discarded: u64,
    /// The lowest address the stack may reach, when known: what an idle
    /// wait may give back (see `IDLE_MS`).
    stack_floor: Option<usize>,
    /// Awaits a tool's reply, and a host's next request, by polling first
    /// (see `sys::Spinner`): waking from poll() takes an idle core tens of
    /// microseconds.
    spin: crate::sys::Spinner,
    /// When the last result or error left, and whether the request that
    /// followed it came within a spin: a host that sends its requests one
    /// after another (a loop of `$execute()`) gets its next one awaited by
    /// polling, one that pauses between them (a pool whose host is busy
    /// with other sessions, a chat) does not.
    replied: Option<std::time::Instant>,
    spin_for_requests: bool,
    /// Whether the host asked for its next request to be awaited so (see
    /// `await_requests_by_polling`).
    requests_soon: bool,
}

impl ChildIo {
    pub fn new(fd: RawFd, max_frame: usize) -> ChildIo {
        ChildIo {
            fd,
            decoder: Decoder::new(max_frame),
            answering: 0,
            awaiting: None,
            last_call: 0,
            discarded: 0,
            stack_floor: None,
            spin: crate::sys::Spinner::default(),
            replied: None,
            spin_for_requests: false,
            requests_soon: false,
        }
    }

    /// Whether the host sends its next request as soon as it has a reply
    /// (a loop of `$execute()`), so that it may be awaited by polling. A
    /// host that drives several sessions at once (a pool) says not: there
    /// a polling child takes the CPU the host needs.
    pub fn await_requests_by_polling(&mut self, on: bool) {
        self.requests_soon = on;
    }

    /// Lets a wait for the next request with no time limit give back the
    /// stack below the caller and malloc's free pages once it has waited
    /// `IDLE_MS`. To be called on the process's main thread (whose stack
    /// is given back); where its stack's bounds are unknown, nothing is.
    pub fn release_when_idle(&mut self) {
        self.stack_floor = crate::sys::stack_floor();
    }

    /// Frames dropped because they answered nothing the child waited for.
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Sends one frame, stamped: a result, error, plot or file reply names
    /// the request being answered; a tool call too, with an id of its own
    /// that its reply must name.
    pub fn send(&mut self, kind: Kind, payload: &[u8]) -> Result<(), Error> {
        let (id, re) = match kind {
            Kind::Hello => (0, 0),
            Kind::ToolCall => {
                self.last_call += 1;
                (self.last_call, self.answering)
            }
            _ => (0, self.answering),
        };
        let bytes = frame::encode_message(kind, id, re, payload)?;
        crate::sys::send_all(self.fd, &bytes).map_err(|e| Error::caused_by(ErrorKind::Io, &e))?;
        match kind {
            Kind::ToolCall => {
                self.awaiting = Some(id);
                self.spin.arm();
            }
            // The evaluation ended (perhaps interrupted while its tool call
            // waited): a late reply to that call is no longer wanted.
            Kind::Result | Kind::Error => {
                self.awaiting = None;
                self.replied = Some(std::time::Instant::now());
                if self.requests_soon && self.spin_for_requests {
                    self.spin.arm();
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The next frame for the runtime, waiting at most `timeout` (`None`:
    /// no limit). While a tool call waits, that is its reply (or a
    /// shutdown); otherwise an exec, a file request, a set-up or a shutdown.
    /// `Ok(None)` when the time ran out or a signal arrived.
    pub fn recv(&mut self, timeout: Option<Duration>) -> Result<Option<Frame>, Error> {
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        let mut waited = false;
        loop {
            while let Some(f) = self.decoder.next_frame()? {
                if let Some(f) = self.accept(f) {
                    return Ok(Some(f));
                }
            }
            if waited {
                return Ok(None);
            }
            let n = self.wait(ms);
            if n <= 0 {
                return Ok(None);
            }
            waited = ms >= 0;
            self.read_some()?;
        }
    }

    /// poll() for input, at most `ms` (-1: no limit; past `IDLE_MS`, the
    /// unused memory is given back first). poll() is never restarted after
    /// a signal handler: EINTR comes back to R, which takes the interrupt.
    fn wait(&mut self, ms: i32) -> libc::c_int {
        let mut p = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let now = std::time::Instant::now();
        let end = match ms {
            ..=-1 => now + crate::sys::Spinner::SPIN,
            _ => now + Duration::from_millis(ms as u64),
        };
        let spun = self.spin.poll(std::slice::from_mut(&mut p), end);
        if spun != 0 {
            return spun;
        }
        if let (true, Some(floor)) = (ms < 0, self.stack_floor) {
            // SAFETY: `p` is one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut p, 1, IDLE_MS) };
            if n != 0 {
                return n;
            }
            crate::sys::release_unused(floor);
        }
        // SAFETY: as above.
        unsafe { libc::poll(&mut p, 1, ms) }
    }

    fn read_some(&mut self) -> Result<(), Error> {
        // Whatever is there, frames and all (one read per message, not one
        // for the header and one for the body); the decoder keeps the rest.
        // Into uninitialised space: zeroing 64 KiB per message cost more
        // than the rest of the read.
        let want = self.decoder.wanted()?.clamp(4096, 65536);
        let mut buf: Vec<u8> = Vec::with_capacity(want);
        loop {
            // SAFETY: buf's capacity is `want` bytes; read() writes at most
            // that many, and only those are then counted as initialised.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), want) };
            if n > 0 {
                // SAFETY: read() initialised `n` bytes (n <= want).
                unsafe { buf.set_len(n as usize) };
                self.decoder.push(&buf);
                return Ok(());
            }
            if n == 0 {
                return Err(Error::new(
                    ErrorKind::Closed,
                    "the host closed the connection",
                ));
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::caused_by(ErrorKind::Io, &err));
            }
        }
    }

    /// Whether the runtime should see `f` now; updates the ids.
    fn accept(&mut self, f: Frame) -> Option<Frame> {
        let wanted = match (self.awaiting, f.kind) {
            (_, Kind::Shutdown) => true,
            (Some(call), Kind::ToolResult | Kind::ToolError) => f.re == call,
            (None, Kind::Exec | Kind::Setup | Kind::File) => {
                if let Some(t) = self.replied.take() {
                    self.spin_for_requests = t.elapsed() <= crate::sys::Spinner::SPIN;
                }
                true
            }
            _ => false,
        };
        if !wanted {
            self.discarded += 1;
            return None;
        }
        if matches!(
            f.kind,
            Kind::Exec | Kind::File | Kind::ToolResult | Kind::ToolError
        ) {
            self.answering = f.id;
            self.awaiting = None;
        }
        Some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn pair() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
        crate::sys::socketpair().expect("socketpair")
    }

    fn write(fd: RawFd, kind: Kind, id: u64, re: u64, payload: &[u8]) {
        let bytes = frame::encode_message(kind, id, re, payload).unwrap();
        crate::sys::send_all(fd, &bytes).unwrap();
    }

    fn read(d: &mut Decoder, fd: RawFd) -> Frame {
        loop {
            if let Some(f) = d.next_frame().unwrap() {
                return f;
            }
            let mut buf = [0u8; 4096];
            // SAFETY: reading into a live buffer.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            assert!(n > 0);
            d.push(&buf[..n as usize]);
        }
    }

    #[test]
    fn replies_name_the_request_and_tool_replies_must_name_the_call() {
        let (host, child) = pair();
        let h = host.as_raw_fd();
        let mut io = ChildIo::new(child.as_raw_fd(), 1024);
        let mut d = Decoder::new(1024);
        write(h, Kind::Exec, 900, 0, b"code");
        let f = io.recv(None).unwrap().unwrap();
        assert_eq!((f.kind, f.id), (Kind::Exec, 900));
        io.send(Kind::ToolCall, b"call").unwrap();
        let call = read(&mut d, h);
        assert_eq!((call.kind, call.re), (Kind::ToolCall, 900));
        // A stale reply (another call's), then the right one.
        write(h, Kind::ToolResult, 901, call.id + 7, b"stale");
        write(h, Kind::Exec, 902, 0, b"not now");
        write(h, Kind::ToolResult, 903, call.id, b"value");
        let f = io.recv(None).unwrap().unwrap();
        assert_eq!(
            (f.kind, f.payload.as_slice()),
            (Kind::ToolResult, &b"value"[..])
        );
        assert_eq!(io.discarded(), 2);
        io.send(Kind::Result, b"done").unwrap();
        let r = read(&mut d, h);
        assert_eq!((r.kind, r.re), (Kind::Result, 903));
    }

    #[test]
    fn a_file_request_is_answered_by_its_id_and_plots_name_the_exec() {
        let (host, child) = pair();
        let h = host.as_raw_fd();
        let mut io = ChildIo::new(child.as_raw_fd(), 1024);
        let mut d = Decoder::new(1024);
        write(h, Kind::File, 70, 0, b"op");
        let f = io.recv(None).unwrap().unwrap();
        assert_eq!((f.kind, f.id), (Kind::File, 70));
        io.send(Kind::FileReply, b"ok").unwrap();
        assert_eq!(read(&mut d, h).re, 70);
        write(h, Kind::Exec, 71, 0, b"plot(1)");
        io.recv(None).unwrap().unwrap();
        io.send(Kind::Plot, b"png").unwrap();
        let p = read(&mut d, h);
        assert_eq!((p.kind, p.re), (Kind::Plot, 71));
    }

    // The next request is awaited by polling only when the host asks for
    // it and sent the last one within a spin of the reply before it; a
    // tool's reply always is.
    #[test]
    fn requests_are_awaited_by_polling_only_while_they_follow_replies_closely() {
        let (host, child) = pair();
        let h = host.as_raw_fd();
        let mut io = ChildIo::new(child.as_raw_fd(), 1024);
        io.await_requests_by_polling(true);
        let mut d = Decoder::new(1024);
        write(h, Kind::Exec, 1, 0, b"");
        io.recv(None).unwrap().unwrap();
        io.send(Kind::ToolCall, b"").unwrap();
        assert!(io.spin.armed());
        let call = read(&mut d, h);
        write(h, Kind::ToolResult, 2, call.id, b"");
        io.recv(None).unwrap().unwrap();
        // The first reply: nothing known of the host's pace yet.
        io.send(Kind::Result, b"").unwrap();
        assert!(!io.spin.armed());
        read(&mut d, h);
        // A request at once after it: the next reply arms the spin.
        write(h, Kind::Exec, 3, 0, b"");
        io.recv(None).unwrap().unwrap();
        io.send(Kind::Result, b"").unwrap();
        assert!(io.spin.armed());
        read(&mut d, h);
        // A request long after it: the next reply does not.
        std::thread::sleep(crate::sys::Spinner::SPIN * 4);
        write(h, Kind::Exec, 4, 0, b"");
        io.recv(None).unwrap().unwrap();
        io.send(Kind::Error, b"").unwrap();
        assert!(!io.spin.armed());
        read(&mut d, h);
        // Requests at once again, but the host says it drives others too.
        for id in [5, 6] {
            write(h, Kind::Exec, id, 0, b"");
            io.recv(None).unwrap().unwrap();
            io.send(Kind::Result, b"").unwrap();
            read(&mut d, h);
        }
        assert!(io.spin.armed());
        io.await_requests_by_polling(false);
        write(h, Kind::Exec, 7, 0, b"");
        io.recv(None).unwrap().unwrap();
        io.send(Kind::Result, b"").unwrap();
        assert!(!io.spin.armed());
    }

    #[test]
    fn recv_times_out_and_a_late_tool_reply_is_dropped() {
        let (host, child) = pair();
        let h = host.as_raw_fd();
        let mut io = ChildIo::new(child.as_raw_fd(), 1024);
        let mut d = Decoder::new(1024);
        write(h, Kind::Exec, 5, 0, b"");
        io.recv(None).unwrap().unwrap();
        io.send(Kind::ToolCall, b"").unwrap();
        let call = read(&mut d, h);
        assert!(io.recv(Some(Duration::from_millis(1))).unwrap().is_none());
        // Interrupted while waiting: the evaluation ends with an error.
        io.send(Kind::Error, b"interrupted").unwrap();
        assert_eq!(read(&mut d, h).re, 5);
        write(h, Kind::ToolError, 6, call.id, b"late");
        write(h, Kind::Exec, 7, 0, b"next");
        let f = io.recv(None).unwrap().unwrap();
        assert_eq!((f.kind, f.id), (Kind::Exec, 7));
        drop(host);
        assert_eq!(io.recv(None).unwrap_err().kind, ErrorKind::Closed);
    }
}
