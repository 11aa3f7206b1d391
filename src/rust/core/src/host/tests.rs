//! The pump and the state machine over a real socketpair and real pipes,
//! with a fake child written in Rust (a thread speaking the child's side of
//! the protocol through `ChildIo`, or raw frames where it misbehaves). A
//! real process (`sleep`) stands in for the child's process, so exit is
//! watched through a real pidfd (by reaping with the `portable` feature,
//! as on macOS).

use super::process::Process;
use super::*;
use crate::child::ChildIo;
use crate::frame::{encode_message, hello_payload, DEFAULT_MAX_FRAME};
use crate::sys;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::thread::JoinHandle;

/// R serializations of `1` (a double) and `"a"`, from the value checker's
/// fixtures.
const DBL: &[u8] = include_bytes!("../../tests/fixtures/dbl.bin");
const CHR: &[u8] = include_bytes!("../../tests/fixtures/chr.bin");

/// `serialize(structure(1, class = "\033]0;pwn\007x"), NULL, xdr = FALSE)`:
/// a class the checker refuses, whose name sets the terminal's title.
const HOSTILE_CLASS: &[u8] = &[
    0x42, 0x0a, 0x03, 0x00, 0x00, 0x00, 0x02, 0x02, 0x04, 0x00, 0x00, 0x05, 0x03, 0x00, 0x05, 0x00,
    0x00, 0x00, 0x55, 0x54, 0x46, 0x2d, 0x38, 0x0e, 0x03, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f, 0x02, 0x04, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x09,
    0x00, 0x04, 0x00, 0x05, 0x00, 0x00, 0x00, 0x63, 0x6c, 0x61, 0x73, 0x73, 0x10, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x09, 0x00, 0x04, 0x00, 0x09, 0x00, 0x00, 0x00, 0x1b, 0x5d, 0x30, 0x3b,
    0x70, 0x77, 0x6e, 0x07, 0x78, 0xfe, 0x00, 0x00, 0x00,
];

const TOKEN: &[u8] = b"0123456789abcdef";
const WAIT: Duration = Duration::from_secs(20);

/// The fake child's ends: socket, stdout, stderr.
struct Fake {
    sock: OwnedFd,
    out: OwnedFd,
    err: OwnedFd,
}

impl Fake {
    fn raw(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    fn frame(&self, kind: Kind, id: u64, re: u64, payload: &[u8]) {
        let bytes = encode_message(kind, id, re, payload).expect("encode");
        sys::send_all(self.raw(), &bytes).expect("send");
    }

    fn print(&self, bytes: &[u8]) {
        sys::write_all(self.out.as_raw_fd(), bytes).expect("write stdout");
    }

    fn eprint(&self, bytes: &[u8]) {
        sys::write_all(self.err.as_raw_fd(), bytes).expect("write stderr");
    }

    /// Reports the sandbox and says hello.
    fn start(&self) {
        self.frame(Kind::LaunchReport, 0, 0, br#"{"layers":[]}"#);
        self.frame(Kind::Hello, 0, 0, &hello_payload(TOKEN));
    }
}

/// A host child whose process is `sleep` and whose peer is returned.
fn pair() -> (HostChild, Fake) {
    let (ours, theirs) = sys::socketpair().expect("socketpair");
    let (out_r, out_w) = sys::pipe().expect("pipe");
    let (err_r, err_w) = sys::pipe().expect("pipe");
    for fd in [&ours, &out_r, &err_r] {
        set_nonblocking(fd.as_raw_fd()).expect("nonblocking");
    }
    let child = Command::new("sleep")
        .arg("600")
        .process_group(0)
        .spawn()
        .expect("spawn sleep");
    let host = HostChild::new(
        Process::spawned(child),
        ours,
        out_r,
        err_r,
        TOKEN,
        DEFAULT_MAX_FRAME,
    );
    (
        host,
        Fake {
            sock: theirs,
            out: out_w,
            err: err_w,
        },
    )
}

/// The next event that is not output, with the output lines seen before it.
fn next_reply(host: &mut HostChild) -> (Vec<(Stream, String)>, Event) {
    let mut lines = Vec::new();
    loop {
        match host.next_event(WAIT).expect("an event in time") {
            Event::Output { stream, lines: l } => lines.extend(l.into_iter().map(|x| (stream, x))),
            ev => return (lines, ev),
        }
    }
}

fn ready(host: &mut HostChild, fake: &Fake) {
    fake.start();
    let (_, ev) = next_reply(host);
    assert!(matches!(ev, Event::Ready { .. }), "{ev:?}");
    assert_eq!(host.phase(), Phase::Idle);
}

/// A reply whose value is not a plain result (a bare value, as these
/// fakes send).
fn message(kind: Kind, payload: &[u8]) -> Event {
    Event::Message {
        kind,
        payload: payload.to_vec(),
        plain: false,
    }
}

/// Runs `f` as the fake child in a thread with a `ChildIo` over its socket.
fn child_thread(
    fake: Fake,
    f: impl FnOnce(&Fake, &mut ChildIo) + Send + 'static,
) -> JoinHandle<Fake> {
    std::thread::spawn(move || {
        let mut io = ChildIo::new(fake.raw(), DEFAULT_MAX_FRAME);
        f(&fake, &mut io);
        fake
    })
}

#[test]
fn a_forged_extra_result_never_answers_the_next_exec() {
    let (mut host, fake) = pair();
    ready(&mut host, &fake);
    let peer = child_thread(fake, |fake, io| {
        let exec = io.recv(None).expect("recv").expect("exec");
        // Guesses at the next id, then the real reply, then the real reply
        // again: all written before the host sends its next request.
        fake.frame(Kind::Result, 0, exec.id.wrapping_add(1), CHR);
        io.send(Kind::Result, DBL).expect("send");
        fake.frame(Kind::Result, 0, exec.id, CHR);
        let exec2 = io.recv(None).expect("recv").expect("second exec");
        assert_ne!(exec2.id, exec.id);
        io.send(Kind::Result, DBL).expect("send");
    });
    host.send(Kind::Exec, b"code", WAIT).expect("send exec");
    assert_eq!(next_reply(&mut host).1, message(Kind::Result, DBL));
    host.send(Kind::Exec, b"code", WAIT).expect("send exec");
    assert_eq!(next_reply(&mut host).1, message(Kind::Result, DBL));
    assert_eq!(host.discarded(), 2);
    peer.join().expect("fake child");
}

#[test]
fn requests_out_of_turn_are_refused() {
    let (mut host, fake) = pair();
    assert_eq!(
        host.send(Kind::Exec, b"", WAIT).unwrap_err().kind,
        ErrorKind::NotRunning
    );
    ready(&mut host, &fake);
    assert_eq!(
        host.send(Kind::ToolResult, b"", WAIT).unwrap_err().kind,
        ErrorKind::State
    );
    host.send(Kind::Exec, b"", WAIT).expect("exec");
    let err = host.send(Kind::Exec, b"", WAIT).unwrap_err();
    assert_eq!(err.kind, ErrorKind::State);
    assert_eq!(err.pid, Some(host.pid()));
    assert_eq!(host.phase().name(), "busy");
}

#[test]
fn output_is_cleaned_split_and_kept_in_order_around_a_tool_call() {
    let (mut host, fake) = pair();
    ready(&mut host, &fake);
    let peer = child_thread(fake, |fake, io| {
        io.recv(None).expect("recv").expect("exec");
        fake.print(b"a\0b\x1b]52;c;c2VjcmV0\x07\x1b[31mred\n");
        let mut long = vec![b'x'; 100 * 1024];
        long.push(b'\n');
        fake.print(&long);
        fake.eprint(b"partial before the call");
        io.send(Kind::ToolCall, CHR).expect("tool call");
        let reply = io.recv(None).expect("recv").expect("tool reply");
        assert_eq!(reply.kind, Kind::ToolResult);
        fake.print(b"after\n");
        io.send(Kind::Result, DBL).expect("result");
    });
    host.send(Kind::Exec, b"", WAIT).expect("exec");
    let (before, call) = next_reply(&mut host);
    assert_eq!(call, message(Kind::ToolCall, CHR));
    let texts: Vec<&str> = before.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(texts[0], "abred");
    assert_eq!(texts[1].len(), crate::text::MAX_LINE_BYTES);
    assert_eq!(texts[2].len(), 100 * 1024 - crate::text::MAX_LINE_BYTES);
    assert!(before.contains(&(Stream::Stderr, "partial before the call".to_string())));
    assert_eq!(host.phase().name(), "tool_call");
    host.send(Kind::ToolResult, DBL, WAIT).expect("tool result");
    let (after, result) = next_reply(&mut host);
    assert_eq!(result, message(Kind::Result, DBL));
    assert_eq!(after, vec![(Stream::Stdout, "after".to_string())]);
    peer.join().expect("fake child");
}

#[test]
fn output_beyond_the_budget_is_dropped_behind_one_marker() {
    let (mut host, fake) = pair();
    ready(&mut host, &fake);
    host.set_output_limit(50_000);
    let peer = child_thread(fake, |fake, io| {
        io.recv(None).expect("recv").expect("exec");
        let mut line = vec![b'y'; 9_999];
        line.push(b'\n');
        for _ in 0..200 {
            fake.print(&line);
        }
        io.send(Kind::Result, DBL).expect("result");
    });
    host.send(Kind::Exec, b"", WAIT).expect("exec");
    let (lines, result) = next_reply(&mut host);
    assert_eq!(result, message(Kind::Result, DBL));
    let stored: usize = lines.iter().map(|(_, l)| l.len()).sum();
    let last = &lines.last().expect("lines").1;
    assert!(
        last.starts_with("[securer: output truncated after 50000 bytes"),
        "{last}"
    );
    assert_eq!(lines.len(), 6);
    assert!(stored - last.len() <= 50_000);
    peer.join().expect("fake child");
}

#[test]
fn a_refused_value_is_reported_cleaned() {
    let (mut host, fake) = pair();
    ready(&mut host, &fake);
    let peer = child_thread(fake, |_, io| {
        io.recv(None).expect("recv").expect("exec");
        io.send(Kind::Result, HOSTILE_CLASS).expect("result");
    });
    host.send(Kind::Exec, b"", WAIT).expect("exec");
    match next_reply(&mut host).1 {
        Event::Refused { kind, message } => {
            assert_eq!(kind, Kind::Result);
            assert!(message.contains("pwn"), "{message}");
            assert!(
                !message.contains('\u{1b}') && !message.contains('\u{7}'),
                "{message}"
            );
        }
        ev => panic!("{ev:?}"),
    }
    assert_eq!(host.phase(), Phase::Idle);
    peer.join().expect("fake child");
}

#[test]
fn a_protocol_violation_stops_the_child() {
    let (mut host, fake) = pair();
    ready(&mut host, &fake);
    fake.frame(Kind::Exec, 1, 0, b"the child may not send this");
    assert!(matches!(
        next_reply(&mut host).1,
        Event::ProtocolError { .. }
    ));
    assert!(matches!(next_reply(&mut host).1, Event::Exited { .. }));
    assert!(!host.is_alive());
    assert_eq!(host.next_event(Duration::ZERO), None);
}

#[test]
fn a_wrong_hello_is_refused() {
    let (mut host, fake) = pair();
    fake.frame(Kind::LaunchReport, 0, 0, br#"{"layers":[]}"#);
    fake.frame(Kind::Hello, 0, 0, &hello_payload(b"guess"));
    match next_reply(&mut host).1 {
        Event::ProtocolError { message } => assert!(message.contains("authentication")),
        ev => panic!("{ev:?}"),
    }
}

#[test]
fn the_exit_is_seen_while_the_socket_stays_open() {
    let (mut host, fake) = pair();
    ready(&mut host, &fake);
    fake.print(b"last words");
    // SAFETY: signalling our own test child.
    unsafe { libc::kill(host.pid() as libc::pid_t, libc::SIGTERM) };
    let (lines, ev) = next_reply(&mut host);
    assert_eq!(lines, vec![(Stream::Stdout, "last words".to_string())]);
    assert_eq!(
        ev,
        Event::Exited {
            code: None,
            signal: Some(libc::SIGTERM)
        }
    );
    drop(fake);
}

#[test]
fn a_child_that_closes_its_socket_is_killed_after_a_grace_period() {
    let (mut host, fake) = pair();
    ready(&mut host, &fake);
    drop(fake);
    let (_, ev) = next_reply(&mut host);
    assert_eq!(
        ev,
        Event::Exited {
            code: None,
            signal: Some(libc::SIGKILL)
        }
    );
    assert!(host.poll_fds().is_empty());
}

#[test]
fn a_launch_failure_is_reported() {
    let (mut host, fake) = pair();
    fake.frame(
        Kind::LaunchError,
        0,
        0,
        br#"{"layer":"landlock","message":"no \u001b[31mlandlock","errno":38}"#,
    );
    match next_reply(&mut host).1 {
        Event::LaunchFailed { failure } => {
            assert_eq!(failure.layer.to_string(), "landlock");
            assert_eq!(failure.message, "no landlock");
        }
        ev => panic!("{ev:?}"),
    }
}

#[test]
fn a_reply_left_in_the_queue_never_answers_the_next_exec() {
    let (mut host, fake) = pair();
    ready(&mut host, &fake);
    let (sent, replied) = std::sync::mpsc::channel();
    let peer = child_thread(fake, move |fake, io| {
        io.recv(None).expect("recv").expect("exec");
        fake.print(b"line\n");
        io.send(Kind::Result, CHR).expect("result");
        sent.send(()).expect("signal");
        io.recv(None).expect("recv").expect("second exec");
        io.send(Kind::Result, DBL).expect("result");
    });
    host.send(Kind::Exec, b"", WAIT).expect("exec");
    replied.recv().expect("the child replied");
    // One pump reads the output and decodes the reply; the caller takes
    // the output, then gives up on the run (say, its output handler
    // failed) with the reply still queued.
    assert!(matches!(host.next_event(WAIT), Some(Event::Output { .. })));
    assert!(host.has_queued());
    assert_eq!(host.phase(), Phase::Idle);
    host.send(Kind::Exec, b"", WAIT).expect("second exec");
    assert_eq!(next_reply(&mut host).1, message(Kind::Result, DBL));
    assert_eq!(host.discarded(), 1);
    peer.join().expect("fake child");
}

// A pool's wait: the readable fds among many, a reply that comes while it
// polls, and nothing once the time is over.
#[test]
fn wait_any_finds_the_readable_fds_and_a_reply_that_comes_while_it_waits() {
    let (a, a_peer) = sys::socketpair().expect("socketpair");
    let (b, b_peer) = sys::socketpair().expect("socketpair");
    let fds = [a.as_raw_fd(), b.as_raw_fd()];
    assert!(wait_any(&fds, Duration::from_millis(5)).is_empty());
    sys::send_all(b_peer.as_raw_fd(), b"x").expect("write");
    assert_eq!(wait_any(&fds, Duration::from_secs(5)), vec![1]);
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        sys::send_all(a_peer.as_raw_fd(), b"y").expect("write");
        a_peer
    });
    let mut c = [0u8; 1];
    // SAFETY: reading one byte into a live buffer.
    assert_eq!(
        unsafe { libc::read(b.as_raw_fd(), c.as_mut_ptr().cast(), 1) },
        1
    );
    assert_eq!(wait_any(&fds, Duration::from_secs(5)), vec![0]);
    writer.join().expect("writer");
}
