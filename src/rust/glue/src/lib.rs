//! R bindings for securer-core. Thin on purpose: every function converts
//! arguments, calls the core, and returns plain R values. Errors come back
//! as `list(error = <kind>, message = ..., errno = ...)` so the R side can
//! raise classed conditions; nothing here unwinds through R.

use extendr_api::prelude::*;
use securer_core::child::{ChildIo, ChildIoError};
use securer_core::frame::Kind;
use securer_core::host::{self, Event, HostChild};
use securer_core::policy::LaunchSpec;
use securer_core::rvalue;
use std::cell::RefCell;
use std::os::fd::RawFd;
use std::path::Path;
use std::time::Duration;

fn error_list(kind: &str, message: String, errno: Option<i32>) -> Robj {
    list!(
        error = kind,
        message = message,
        errno = errno.map(|e| e as f64).unwrap_or(f64::NAN)
    )
    .into()
}

/// An event list: `type` first, then the fields. (`type` is a Rust keyword,
/// so `list!` cannot name it.)
fn event(kind: &str, fields: List) -> Robj {
    let mut names = vec!["type".to_string()];
    let mut values: Vec<Robj> = vec![Robj::from(kind)];
    for (name, value) in fields.iter() {
        names.push(name.to_string());
        values.push(value);
    }
    List::from_names_and_values(names, values)
        .map(Robj::from)
        .unwrap_or_else(|_| Robj::from(()))
}

fn kind_from_i32(kind: i32) -> Option<Kind> {
    u8::try_from(kind).ok().and_then(Kind::from_u8)
}

fn ms(timeout_ms: f64) -> Duration {
    if timeout_ms.is_finite() && timeout_ms > 0.0 {
        Duration::from_micros((timeout_ms * 1000.0) as u64)
    } else {
        Duration::ZERO
    }
}

/// Starts a child through the launcher. Returns an external pointer, or an
/// error list.
/// @noRd
#[extendr]
fn rs_spawn(launcher: &str, spec_json: &str, token: Raw, max_frame: f64) -> Robj {
    let spec: LaunchSpec = match serde_json::from_str(spec_json) {
        Ok(s) => s,
        Err(e) => return error_list("spec", format!("invalid launch spec: {e}"), None),
    };
    let max = if max_frame.is_finite() && max_frame >= 1024.0 {
        max_frame as usize
    } else {
        securer_core::frame::DEFAULT_MAX_FRAME
    };
    match HostChild::spawn(Path::new(launcher), &spec, token.as_slice(), max) {
        Ok(child) => ExternalPtr::new(RefCell::new(Some(child))).into(),
        Err(e) => error_list("spawn", e.to_string(), e.errno()),
    }
}

type Handle = ExternalPtr<RefCell<Option<HostChild>>>;

/// Asks a warm zygote (a child started with a zygote policy) to fork a
/// session. Returns the session's external pointer, or an error list.
/// @noRd
#[extendr]
fn rs_zygote_fork(
    zygote: Robj,
    request_json: &str,
    token: Raw,
    max_frame: f64,
    timeout_ms: f64,
) -> Robj {
    let max = if max_frame.is_finite() && max_frame >= 1024.0 {
        max_frame as usize
    } else {
        securer_core::frame::DEFAULT_MAX_FRAME
    };
    let res = with_child(zygote, |z| {
        z.fork_session(
            request_json.as_bytes(),
            token.as_slice(),
            max,
            ms(timeout_ms),
        )
    });
    match res {
        Some(Ok(child)) => ExternalPtr::new(RefCell::new(Some(child))).into(),
        Some(Err(e)) => error_list("zygote", e.to_string(), e.errno()),
        None => error_list("zygote", "the zygote is not running".into(), None),
    }
}

fn with_child<T>(ptr: Robj, f: impl FnOnce(&mut HostChild) -> T) -> Option<T> {
    let handle: Handle = ptr.try_into().ok()?;
    let cell: &RefCell<Option<HostChild>> = &handle;
    let mut guard = cell.try_borrow_mut().ok()?;
    guard.as_mut().map(f)
}

fn event_to_robj(ev: Event) -> Robj {
    match ev {
        Event::Output { stream, lines } => {
            event("output", list!(stream = stream.name(), lines = lines))
        }
        Event::Ready { report } => {
            let layers: Vec<&str> = report.layers.iter().map(|l| l.layer.as_str()).collect();
            let active: Vec<bool> = report.layers.iter().map(|l| l.active).collect();
            let detail: Vec<&str> = report.layers.iter().map(|l| l.detail.as_str()).collect();
            event(
                "ready",
                list!(layers = data_frame_like(layers, active, detail)),
            )
        }
        Event::LaunchFailed { failure } => event(
            "launch_failed",
            list!(
                layer = failure.layer.to_string(),
                message = failure.message,
                errno = failure.errno.map(|e| e as f64).unwrap_or(f64::NAN)
            ),
        ),
        Event::Message { kind, payload } => {
            event(kind.name(), list!(payload = Raw::from_bytes(&payload)))
        }
        Event::Refused { kind, message } => {
            event("refused", list!(kind = kind.name(), message = message))
        }
        Event::ProtocolError { message } => event("protocol_error", list!(message = message)),
        Event::Exited { code, signal } => event(
            "exited",
            list!(
                code = code.map(|c| c as f64).unwrap_or(f64::NAN),
                signal = signal.map(|s| s as f64).unwrap_or(f64::NAN)
            ),
        ),
    }
}

fn data_frame_like(layer: Vec<&str>, active: Vec<bool>, detail: Vec<&str>) -> Robj {
    list!(layer = layer, active = active, detail = detail).into()
}

/// Next event of a child, waiting at most `timeout_ms`; NULL on timeout.
/// @noRd
#[extendr]
fn rs_next_event(ptr: Robj, timeout_ms: f64) -> Robj {
    match with_child(ptr, |c| c.next_event(ms(timeout_ms))) {
        Some(Some(ev)) => event_to_robj(ev),
        Some(None) => ().into(),
        None => event("exited", list!(code = f64::NAN, signal = f64::NAN)),
    }
}

/// Sends a frame; NULL on success or an error list.
/// @noRd
#[extendr]
fn rs_send(ptr: Robj, kind: i32, payload: Raw, timeout_ms: f64) -> Robj {
    let Some(kind) = kind_from_i32(kind) else {
        return error_list("protocol", format!("unknown message kind {kind}"), None);
    };
    match with_child(ptr, |c| c.send(kind, payload.as_slice(), ms(timeout_ms))) {
        Some(Ok(())) => ().into(),
        Some(Err(e)) => error_list("ipc", e.to_string(), e.errno()),
        None => error_list("ipc", "the child process is not running".into(), None),
    }
}

/// Signals the child's process group; TRUE if delivered.
/// @noRd
#[extendr]
fn rs_signal(ptr: Robj, signal: i32) -> bool {
    with_child(ptr, |c| c.signal(signal)).unwrap_or(false)
}

/// Kills and reaps the child, releasing its fds. Idempotent.
/// @noRd
#[extendr]
fn rs_kill(ptr: Robj) {
    if let Ok(handle) = Handle::try_from(ptr) {
        let cell: &RefCell<Option<HostChild>> = &handle;
        if let Ok(mut guard) = cell.try_borrow_mut() {
            // Dropping kills the process group and reaps the child.
            guard.take();
        }
    }
}

/// pid of the child (the launcher), or NA.
/// @noRd
#[extendr]
fn rs_pid(ptr: Robj) -> Robj {
    match with_child(ptr, |c| c.pid()) {
        Some(pid) => Robj::from(pid as f64),
        None => Robj::from(f64::NAN),
    }
}

/// The launcher's report of the sandbox layers, as JSON ("" before it
/// arrived): diagnoses a child that dies while starting.
/// @noRd
#[extendr]
fn rs_launch_report(ptr: Robj) -> String {
    with_child(ptr, |c| {
        serde_json::to_string(c.launch_report()).unwrap_or_default()
    })
    .unwrap_or_default()
}

/// Whether the child process is running.
/// @noRd
#[extendr]
fn rs_alive(ptr: Robj) -> bool {
    with_child(ptr, |c| c.is_alive()).unwrap_or(false)
}

/// fds to watch for a child's next event (for event loops such as later's);
/// empty when the child has queued events already or is gone.
/// @noRd
#[extendr]
fn rs_poll_fds(ptr: Robj) -> Vec<i32> {
    with_child(ptr, |c| {
        if c.has_queued() {
            Vec::new()
        } else {
            c.poll_fds()
        }
    })
    .unwrap_or_default()
}

/// Waits until one of several children has something to report; returns
/// the 1-based indices of those that do.
/// @noRd
#[extendr]
fn rs_wait_any(ptrs: List, timeout_ms: f64) -> Vec<i32> {
    let mut fds = Vec::new();
    let mut owner = Vec::new();
    let mut ready = Vec::new();
    for (i, (_, p)) in ptrs.iter().enumerate() {
        let info = with_child(p, |c| (c.has_queued(), c.poll_fds()));
        if let Some((queued, these)) = info {
            if queued {
                ready.push(i as i32 + 1);
            }
            for fd in these {
                fds.push(fd);
                owner.push(i as i32 + 1);
            }
        }
    }
    if !ready.is_empty() {
        return ready;
    }
    let mut hits: Vec<i32> = host::wait_any(&fds, ms(timeout_ms))
        .into_iter()
        .map(|k| owner[k])
        .collect();
    hits.dedup();
    hits
}

/// Checks serialized bytes against the value allowlist: NULL or a message.
/// `classes`: the S3 classes accepted, or NULL to accept any (values going
/// into the sandbox).
/// @noRd
#[extendr]
fn rs_check_value(bytes: Raw, max_bytes: f64, classes: Nullable<Strings>) -> Robj {
    let limits = rvalue::CheckLimits {
        max_bytes: if max_bytes.is_finite() && max_bytes > 0.0 {
            max_bytes as usize
        } else {
            securer_core::frame::DEFAULT_MAX_FRAME
        },
        allowed_classes: match classes {
            Nullable::NotNull(c) => Some(c.iter().map(|s| String::from(&**s)).collect()),
            Nullable::Null => None,
        },
        ..rvalue::CheckLimits::default()
    };
    match rvalue::check_with(bytes.as_slice(), &limits) {
        Ok(()) => ().into(),
        Err(e) => Robj::from(e.to_string()),
    }
}

/// Sets the S3 classes accepted in values from this child.
/// @noRd
#[extendr]
fn rs_set_allowed_classes(ptr: Robj, classes: Strings) {
    let classes: Vec<String> = classes.iter().map(|s| String::from(&**s)).collect();
    with_child(ptr, |c| c.set_allowed_classes(classes));
}

/// The S3 classes accepted by default in values from the sandbox.
/// @noRd
#[extendr]
fn rs_default_allowed_classes() -> Vec<String> {
    rvalue::DEFAULT_ALLOWED_CLASSES
        .iter()
        .map(|c| c.to_string())
        .collect()
}

/// Random session token (32 bytes from the kernel).
/// @noRd
#[extendr]
fn rs_random_token() -> Robj {
    let mut buf = [0u8; 32];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: writes at most the remaining length into the live buffer.
        let n = unsafe { libc::getrandom(buf[got..].as_mut_ptr().cast(), buf.len() - got, 0) };
        if n <= 0 {
            return error_list("random", "getrandom failed".into(), None);
        }
        got += n as usize;
    }
    Raw::from_bytes(&buf).into()
}

/// Appends one line to an audit log: NULL or an error message.
/// @noRd
#[extendr]
fn rs_audit_append(path: &str, line: &str) -> Robj {
    match securer_core::audit::append_line(Path::new(path), line) {
        Ok(()) => ().into(),
        Err(e) => Robj::from(e.to_string()),
    }
}

thread_local! {
    static CHILD_IO: RefCell<Option<ChildIo>> = const { RefCell::new(None) };
}

/// Zygote runtime: serves fork requests. Returns `list(token = )` in each
/// forked session, or a message when the host is gone.
/// @noRd
#[extendr]
fn rs_zygote_serve(max_frame: f64) -> Robj {
    match securer_core::zygote::serve(
        securer_core::policy::CHILD_IPC_FD,
        max_frame.max(1024.0) as usize,
    ) {
        Ok(start) => list!(token = start.token).into(),
        Err(e) => Robj::from(e.to_string()),
    }
}

/// Child runtime: adopts the inherited IPC socket and says hello.
/// @noRd
#[extendr]
fn rs_child_connect(fd: i32, token: Raw, max_frame: f64) -> Robj {
    let mut io = ChildIo::new(fd as RawFd, max_frame.max(1024.0) as usize);
    let hello = securer_core::frame::hello_payload(token.as_slice());
    if let Err(e) = io.send(Kind::Hello, &hello) {
        return Robj::from(e.to_string());
    }
    CHILD_IO.with(|c| *c.borrow_mut() = Some(io));
    ().into()
}

/// Child runtime: sends a frame. NULL or an error message.
/// @noRd
#[extendr]
fn rs_child_send(kind: i32, payload: Raw) -> Robj {
    let Some(kind) = kind_from_i32(kind) else {
        return Robj::from(format!("unknown message kind {kind}"));
    };
    CHILD_IO.with(|c| match c.borrow_mut().as_mut() {
        Some(io) => match io.send(kind, payload.as_slice()) {
            Ok(()) => ().into(),
            Err(e) => Robj::from(e.to_string()),
        },
        None => Robj::from("not connected"),
    })
}

/// Child runtime: blocks for the next frame: list(kind, payload), or a
/// string when the host is gone.
/// @noRd
#[extendr]
fn rs_child_recv() -> Robj {
    CHILD_IO.with(|c| match c.borrow_mut().as_mut() {
        Some(io) => match io.recv() {
            Ok(f) => list!(kind = f.kind as i32, payload = Raw::from_bytes(&f.payload)).into(),
            Err(ChildIoError::Closed) => Robj::from("closed"),
            Err(e) => Robj::from(e.to_string()),
        },
        None => Robj::from("not connected"),
    })
}

/// Removes a session's folder (a file, a link or a whole tree) without
/// following any link the sandboxed code may have planted in it: NULL, or
/// a message saying what was left.
/// @noRd
#[extendr]
fn rs_remove_tree(path: &str) -> Robj {
    match securer_core::tree::remove(Path::new(path)) {
        Ok(()) => ().into(),
        Err(e) => Robj::from(e.to_string()),
    }
}

/// The session limit ("memory", "nproc" or "tmp_size") whose passing made
/// the session's supervisor stop it, or NULL.
/// @noRd
#[extendr]
fn rs_exit_limit(ptr: Robj) -> Robj {
    match with_child(ptr, |c| c.exit_report().and_then(|r| r.limit)) {
        Some(Some(limit)) => Robj::from(limit.as_str()),
        _ => ().into(),
    }
}

extendr_module! {
    mod securer;
    fn rs_spawn;
    fn rs_next_event;
    fn rs_send;
    fn rs_signal;
    fn rs_kill;
    fn rs_pid;
    fn rs_alive;
    fn rs_launch_report;
    fn rs_wait_any;
    fn rs_poll_fds;
    fn rs_check_value;
    fn rs_set_allowed_classes;
    fn rs_default_allowed_classes;
    fn rs_random_token;
    fn rs_audit_append;
    fn rs_zygote_fork;
    fn rs_zygote_serve;
    fn rs_child_connect;
    fn rs_child_send;
    fn rs_child_recv;
    fn rs_remove_tree;
    fn rs_exit_limit;
}
