//! R bindings for securer-core. Thin on purpose: every function converts
//! arguments, calls the core, and returns plain R values. A function that
//! can fail returns its value or one error object, made in one place
//! (`r_error`): a list of class `securer_rs_error` with `kind`, `layer`,
//! `message`, `errno` and `pid` (NA where unknown). Every string from the
//! child is cleaned (`text`) before it becomes an R string, which also keeps
//! NUL out (R refuses it). Nothing here unwinds through R.

use extendr_api::prelude::*;

#[cfg(unix)]
mod child_calls;
#[cfg(unix)]
mod freeze;
mod plain;
#[cfg(unix)]
use securer_core::child::ChildIo;
#[cfg(unix)]
use securer_core::files::{self, AtomicFile, Space};
use securer_core::frame::{self, Kind};
#[cfg(unix)]
use securer_core::host::{self, Event, HostChild};
use securer_core::png;
#[cfg(unix)]
use securer_core::policy::LaunchSpec;
use securer_core::tool_types::{self, BaseType, Shape};
use securer_core::{rvalue, text, Error, ErrorKind};
#[cfg(unix)]
use std::cell::RefCell;
#[cfg(unix)]
use std::fs::File;
#[cfg(unix)]
use std::os::fd::RawFd;
#[cfg(unix)]
use std::path::{Path, PathBuf};
#[cfg(unix)]
use std::time::{Duration, Instant};

/// The one conversion of a core error into an R value.
fn r_error(e: Error) -> Robj {
    let values: Vec<Robj> = vec![
        e.kind.as_str().into(),
        match e.layer {
            Some(layer) => text::clean(layer.as_bytes()).into(),
            None => Robj::from(Rstr::na()),
        },
        text::clean(e.message.as_bytes()).into(),
        Rint::from(e.errno).into(),
        Rint::from(e.pid.and_then(|p| i32::try_from(p).ok())).into(),
    ];
    let names = ["kind", "layer", "message", "errno", "pid"];
    match List::from_names_and_values(names, values) {
        Ok(list) => {
            let mut robj = Robj::from(list);
            // Setting a class on a fresh list cannot fail.
            let _ = robj.set_class(["securer_rs_error"]);
            robj
        }
        Err(_) => Robj::from(()),
    }
}

/// A value, or the error object.
fn value_or_error<T: Into<Robj>>(r: Result<T, Error>) -> Robj {
    match r {
        Ok(v) => v.into(),
        Err(e) => r_error(e),
    }
}

/// `NULL`, or the error object.
#[cfg(unix)]
fn unit_or_error(r: Result<(), Error>) -> Robj {
    value_or_error(r.map(|()| Robj::from(())))
}

/// An event list: `type` first, then the fields. (`type` is a Rust keyword,
/// so `list!` cannot name it.)
#[cfg(unix)]
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

#[cfg(unix)]
fn ms(timeout_ms: f64) -> Duration {
    if timeout_ms.is_finite() && timeout_ms > 0.0 {
        Duration::from_micros((timeout_ms * 1000.0) as u64)
    } else {
        Duration::ZERO
    }
}

#[cfg(unix)]
fn kind_named(name: &str) -> Result<Kind, Error> {
    Kind::from_name(name)
        .ok_or_else(|| Error::new(ErrorKind::Input, format!("unknown message kind '{name}'")))
}

#[cfg(unix)]
type Handle = ExternalPtr<RefCell<Option<HostChild>>>;

#[cfg(unix)]
fn new_handle(child: HostChild) -> Robj {
    ExternalPtr::new(RefCell::new(Some(child))).into()
}

/// Runs `f` on the child behind `ptr`; an error when the handle was
/// released (`rs_kill`) or is not a child handle.
#[cfg(unix)]
fn with_child<T>(ptr: Robj, f: impl FnOnce(&mut HostChild) -> T) -> Result<T, Error> {
    let gone = || {
        Error::new(
            ErrorKind::NotRunning,
            "the child process is not running (its handle was released)",
        )
    };
    let handle: Handle = ptr.try_into().map_err(|_| gone())?;
    let cell: &RefCell<Option<HostChild>> = &handle;
    let mut guard = cell.try_borrow_mut().map_err(|_| gone())?;
    guard.as_mut().map(f).ok_or_else(gone)
}

/// Starts a child through the launcher. Returns an external pointer, or an
/// error object.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_spawn(launcher: &str, spec_json: &str, token: Raw, max_frame: f64) -> Robj {
    let spec: Result<LaunchSpec, Error> = serde_json::from_str(spec_json)
        .map_err(|e| Error::new(ErrorKind::Input, format!("invalid launch spec: {e}")));
    value_or_error(spec.and_then(|spec| {
        HostChild::spawn(
            Path::new(launcher),
            &spec,
            token.as_slice(),
            frame::frame_limit(max_frame),
        )
        .map(new_handle)
    }))
}

/// Asks a warm zygote (a child started with a zygote policy) to fork a
/// session. Returns the session's external pointer, or an error object.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_zygote_fork(
    zygote: Robj,
    request_json: &str,
    token: Raw,
    max_frame: f64,
    timeout_ms: f64,
) -> Robj {
    value_or_error(
        with_child(zygote, |z| {
            z.fork_session(
                request_json.as_bytes(),
                token.as_slice(),
                frame::frame_limit(max_frame),
                ms(timeout_ms),
            )
        })
        .and_then(|r| r.map(new_handle)),
    )
}

#[cfg(unix)]
fn event_to_robj(ev: Event) -> Robj {
    match ev {
        Event::Output { stream, lines } => {
            event("output", list!(stream = stream.name(), lines = lines))
        }
        Event::Ready { report } => {
            let layers: Vec<String> = report
                .layers
                .iter()
                .map(|l| text::clean(l.layer.to_string().as_bytes()))
                .collect();
            let active: Vec<bool> = report.layers.iter().map(|l| l.active).collect();
            let detail: Vec<String> = report
                .layers
                .iter()
                .map(|l| text::clean(l.detail.as_bytes()))
                .collect();
            event(
                "ready",
                list!(layers = list!(layer = layers, active = active, detail = detail)),
            )
        }
        Event::LaunchFailed { failure } => event(
            "launch_failed",
            list!(
                layer = text::clean(failure.layer.to_string().as_bytes()),
                message = failure.message,
                errno = Rint::from(failure.errno)
            ),
        ),
        // The event of every reply: built at once, not through `event()`.
        Event::Message { kind, payload, .. } => List::from_names_and_values(
            ["type", "payload"],
            [Robj::from(kind.name()), Raw::from_bytes(&payload).into()],
        )
        .map(Robj::from)
        .unwrap_or_else(|_| Robj::from(())),
        Event::Refused { kind, message } => {
            event("refused", list!(kind = kind.name(), message = message))
        }
        Event::ProtocolError { message } => event("protocol_error", list!(message = message)),
        Event::Exited { code, signal } => event(
            "exited",
            list!(code = Rint::from(code), signal = Rint::from(signal)),
        ),
    }
}

/// Next event of a child, waiting at most `timeout_ms`: an event list
/// (`type` = "output", "ready", "launch_failed", "result", "error",
/// "tool_call", "refused", "protocol_error" or "exited"), NULL when nothing
/// happened in time, or an error object when the handle was released.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_next_event(ptr: Robj, timeout_ms: f64) -> Robj {
    match with_child(ptr, |c| c.next_event(ms(timeout_ms))) {
        Ok(Some(ev)) => event_to_robj(ev),
        Ok(None) => ().into(),
        Err(e) => r_error(e),
    }
}

/// As `rs_next_event()`, for an execution that may call tools: a plain
/// tool call of one of `tools` (the session's tools' argument types, by
/// tool; NULL: none) with arguments of their declared types comes as
/// `list(type = "tool_call", ready = TRUE, name, args)`, read from its
/// bytes without `unserialize()` (`null` is this R's `serialize(NULL,
/// NULL, xdr = FALSE)`). Any other call comes as its bytes, for R to
/// check and answer.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_next_step(ptr: Robj, timeout_ms: f64, null: Raw, tools: Robj) -> Robj {
    match with_child(ptr, |c| c.next_event(ms(timeout_ms))) {
        Ok(Some(ev)) => call_or_event(ev, null.as_slice(), &tools),
        Ok(None) => ().into(),
        Err(e) => r_error(e),
    }
}

/// A ready tool call (see `rs_next_step()`), else the event.
#[cfg(unix)]
fn call_or_event(ev: Event, null: &[u8], tools: &Robj) -> Robj {
    if let Event::Message {
        kind: Kind::ToolCall,
        payload,
        ..
    } = &ev
    {
        if let Some(call) = ready_call(payload, null, tools) {
            return call;
        }
    }
    event_to_robj(ev)
}

/// The tool call in `payload` (checked bytes from the child) as
/// `rs_next_step()` gives a ready one, or NULL: for a call that came as
/// the first event of a quick execution or a batch's piece, read without
/// the tools.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_ready_call(payload: Raw, null: Raw, tools: Robj) -> Robj {
    ready_call(payload.as_slice(), null.as_slice(), &tools).unwrap_or_else(|| ().into())
}

#[cfg(unix)]
fn ready_call(payload: &[u8], null: &[u8], tools: &Robj) -> Option<Robj> {
    if tools.is_null() {
        return None;
    }
    let call = securer_core::plain::read_call(null, payload)?;
    // SAFETY: on R's main thread; `tools` is live for the call, and the
    // event is protected by the Robj at once.
    unsafe { plain::ready_call(&call, tools.get()).map(|event| Robj::from_sexp(event)) }
}

/// As `rs_next_event()`, for the first event of a quick execution: a plain
/// result whose value is NULL or a vector without attributes comes as
/// `list(type = "answer", answer = list(value, visible, console))`, read
/// from its bytes without `unserialize()` (see `plain::answer()`; `cap` is
/// the transcript's, `null` this R's `serialize(NULL, NULL, xdr = FALSE)`).
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_next_answer(ptr: Robj, timeout_ms: f64, cap: f64, null: Raw) -> Robj {
    match with_child(ptr, |c| c.next_event(ms(timeout_ms))) {
        Ok(Some(ev)) => answer_or_event(ev, cap, null.as_slice()),
        Ok(None) => ().into(),
        Err(e) => r_error(e),
    }
}

/// A plain result's answer (see `rs_next_answer()`), or its bytes when it
/// is not read in Rust.
#[cfg(unix)]
fn answer_or_payload(payload: &[u8], cap: f64, null: &[u8]) -> Robj {
    securer_core::plain::read_reply(null, payload)
        // SAFETY: on R's main thread; the answer is protected by the Robj at
        // once.
        .and_then(|reply| unsafe { plain::answer(&reply, cap) })
        .map(|answer| unsafe { Robj::from_sexp(answer) })
        .unwrap_or_else(|| Raw::from_bytes(payload).into())
}

/// The answer of a plain result (see `rs_next_answer()`), else the event.
#[cfg(unix)]
fn answer_or_event(ev: Event, cap: f64, null: &[u8]) -> Robj {
    if let Event::Message {
        kind: Kind::Result,
        payload,
        plain: true,
    } = &ev
    {
        if let Some(reply) = securer_core::plain::read_reply(null, payload) {
            // SAFETY: on R's main thread; the answer is protected by the
            // Robj at once.
            if let Some(answer) = unsafe { plain::answer(&reply, cap) } {
                let answer = unsafe { Robj::from_sexp(answer) };
                return List::from_names_and_values(
                    ["type", "answer"],
                    [Robj::from("answer"), answer],
                )
                .map(Robj::from)
                .unwrap_or_else(|_| Robj::from(()));
            }
        }
    }
    event_to_robj(ev)
}

/// Sends a request: `kind` is a message kind's name ("exec", "tool_result",
/// "tool_error", "setup", "shutdown"); the core stamps its id. NULL, or an
/// error object (kind "state" when the request does not fit the session's
/// state, e.g. an exec while the previous one is unanswered).
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_send(ptr: Robj, kind: &str, payload: Raw, timeout_ms: f64) -> Robj {
    unit_or_error(kind_named(kind).and_then(|kind| {
        with_child(ptr, |c| c.send(kind, payload.as_slice(), ms(timeout_ms))).and_then(|r| r)
    }))
}

/// Sends `value` as message `kind` ("tool_result") when it is plain (see
/// `plain::value()`): written as `serialize(value, NULL, xdr = FALSE)`
/// would write it (`null` is that of NULL), checked as every value going
/// into the sandbox is, within `max_bytes`. NULL once sent, FALSE when not
/// (nothing was sent: the caller serializes in R and says why), an error
/// object when the send failed. R's `serialize()` allocates a table of
/// references on every call, a tenth of the host's time in a tool call.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_send_plain(
    ptr: Robj,
    kind: &str,
    value: Robj,
    null: Raw,
    max_bytes: f64,
    timeout_ms: f64,
) -> Robj {
    let max = frame::frame_limit(max_bytes);
    // SAFETY: `value` is live for the call, and its bytes are copied
    // before anything is allocated.
    let bytes = unsafe {
        plain::value(value.get(), max)
            .and_then(|v| securer_core::plain::serialize(null.as_slice(), &v, max).ok())
    };
    let limits = rvalue::CheckLimits {
        max_bytes: max,
        allowed_classes: None,
        ..rvalue::CheckLimits::default()
    };
    let Some(bytes) = bytes.filter(|b| rvalue::check_with(b, &limits).is_ok()) else {
        return false.into();
    };
    unit_or_error(
        kind_named(kind).and_then(|kind| {
            with_child(ptr, |c| c.send(kind, &bytes, ms(timeout_ms))).and_then(|r| r)
        }),
    )
}

/// Sends an exec request built from `template` (the request serialized
/// with `code = ""`) and `code`, when the session is idle and alive and the
/// code is one string of UTF-8 text (not marked as bytes) of at most
/// `max_chars` characters: NULL. FALSE when not (nothing was sent: the
/// caller takes the general path, which checks again and says why); an
/// error object when the send failed.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_send_exec(ptr: Robj, code: Robj, template: Raw, max_chars: f64, timeout_ms: f64) -> Robj {
    // SAFETY: `code` is live for the call; the bytes are used before it
    // returns.
    let text = unsafe { utf8_string(code.get()) };
    match send_exec(ptr, text, template.as_slice(), max_chars, timeout_ms) {
        Ok(true) => ().into(),
        Ok(false) => false.into(),
        Err(e) => r_error(e),
    }
}

/// `rs_send_exec()`'s work: Ok(false) when nothing was sent.
#[cfg(unix)]
fn send_exec(
    ptr: Robj,
    code: Option<&str>,
    template: &[u8],
    max_chars: f64,
    timeout_ms: f64,
) -> Result<bool, Error> {
    let Some(code) = code.filter(|t| t.chars().count() as f64 <= max_chars) else {
        return Ok(false);
    };
    let Ok(payload) = securer_core::request::exec_payload(template, code) else {
        return Ok(false);
    };
    let sent = with_child(ptr, |c| {
        if c.phase() != host::Phase::Idle || !c.is_alive() {
            return Ok(false);
        }
        c.send(Kind::Exec, &payload, ms(timeout_ms)).map(|()| true)
    });
    sent.unwrap_or(Ok(false))
}

/// The loop of a pool's batch over the sessions lent to it (see
/// `session_lend()`), for at most `limits[3]` ms. Session `j` runs code
/// `running[j]` (0: none) since `started[j]` (`rs_now()`'s clock). Each
/// session without code is sent `codes[cursor]` (and the cursor moves on)
/// as `rs_send_exec()` would send it, with `templates[[j]]` and
/// `limits[1:2]` (the most characters, the send's timeout in ms), and the
/// next code as soon as it answers with a plain result
/// (`rvalue::check_reply`): its reply waits for R, not the session. A
/// pool's short pieces spent most of their time waiting for the host's R
/// steps between a reply and the next request.
///
/// The loop returns when a session needs R (an event other than a plain
/// result, a code it cannot send, its `timeout_s` past), when one of
/// `extra_fds` (the pool's other sessions) is readable, when R has an
/// interrupt pending (then nothing more is sent), when the time is up or
/// when nothing is left to do: `list(cursor, running, started, done, by,
/// payloads, events, stopped, unsent, extra, interrupt)`. `done` are the
/// codes answered, `by` the sessions that answered them and `payloads`
/// their replies (the answer, read as `rs_next_answer()` reads it with
/// `caps[j]` and `null`, else the bytes); `stopped[j]` says whether
/// session `j` needs R, `events[[j]]` the event that stopped it (or an
/// error object; NULL: its time ran out) and `unsent[j]` the code it could
/// not be sent (0: none).
/// @noRd
#[cfg(unix)]
#[extendr]
#[allow(clippy::too_many_arguments)]
fn rs_batch_run(
    handles: List,
    templates: List,
    codes: Robj,
    cursor: i32,
    running: &[i32],
    started: &[f64],
    timeout_s: f64,
    limits: &[f64],
    extra_fds: &[i32],
    caps: &[f64],
    null: Raw,
) -> Robj {
    let n = handles.len();
    let handles: Vec<Robj> = handles.values().collect();
    let templates: Vec<Robj> = templates.values().collect();
    let n_codes = if codes.rtype() == Rtype::Strings {
        codes.len()
    } else {
        0
    };
    let (max_chars, send_ms, budget_ms) = match limits {
        [a, b, c] => (*a, *b, *c),
        _ => (0.0, 0.0, 0.0),
    };
    let end = Instant::now() + ms(budget_ms);
    let mut next = usize::try_from(cursor).unwrap_or(usize::MAX);
    let mut running: Vec<usize> = (0..n)
        .map(|j| {
            running
                .get(j)
                .and_then(|k| usize::try_from(*k).ok())
                .unwrap_or(0)
        })
        .collect();
    let mut started: Vec<f64> = (0..n)
        .map(|j| started.get(j).copied().unwrap_or(0.0))
        .collect();
    let mut done: Vec<i32> = Vec::new();
    let mut by: Vec<i32> = Vec::new();
    let mut payloads: Vec<Robj> = Vec::new();
    let mut events: Vec<Robj> = vec![Robj::from(()); n];
    let mut unsent = vec![0i32; n];
    let mut stopped = vec![false; n];
    let mut extra = false;
    let index = |k: usize| i32::try_from(k).unwrap_or(i32::MAX);
    let mut interrupt;
    loop {
        // Nothing more is sent once Ctrl-C is pressed.
        interrupt = child_calls::interrupt_pending();
        if interrupt {
            break;
        }
        for j in 0..n {
            if stopped[j] || running[j] != 0 || next == 0 || next > n_codes {
                continue;
            }
            let k = next;
            next += 1;
            let template = templates[j].as_raw_slice().unwrap_or(&[]);
            // SAFETY: `codes` is a live character vector of `n_codes`
            // strings; this one is used before anything is allocated.
            let code = unsafe { utf8_elt(codes.get(), (k - 1) as isize) };
            match send_exec(handles[j].clone(), code, template, max_chars, send_ms) {
                Ok(true) => {
                    running[j] = k;
                    started[j] = now_s();
                }
                sent => {
                    if let Err(e) = sent {
                        events[j] = r_error(e);
                    }
                    unsent[j] = index(k);
                    stopped[j] = true;
                }
            }
        }
        let busy: Vec<usize> = (0..n).filter(|&j| running[j] != 0 && !stopped[j]).collect();
        if stopped.iter().any(|s| *s) || busy.is_empty() {
            break;
        }
        // Each busy session's fds; one with an event queued, or with no fd
        // left (its child gone), is ready.
        let mut fds: Vec<RawFd> = extra_fds.to_vec();
        let mut owners: Vec<Option<usize>> = vec![None; fds.len()];
        let mut ready = vec![false; n];
        for &j in &busy {
            let own = with_child(handles[j].clone(), |c| {
                if c.has_queued() {
                    Vec::new()
                } else {
                    c.poll_fds()
                }
            })
            .unwrap_or_default();
            ready[j] = own.is_empty();
            owners.extend(own.iter().map(|_| Some(j)));
            fds.extend(own);
        }
        if !ready.iter().any(|r| *r) {
            // Until the time is up or the first deadline.
            let first = busy
                .iter()
                .map(|&j| started[j] + timeout_s)
                .fold(f64::INFINITY, f64::min);
            let left = first - now_s();
            let left = if left.is_nan() {
                0.0
            } else {
                left.clamp(0.0, 3600.0)
            };
            let wait = end
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs_f64(left));
            for k in host::wait_any(&fds, wait) {
                match owners.get(k) {
                    Some(Some(j)) => ready[*j] = true,
                    Some(None) => extra = true,
                    None => {}
                }
            }
        }
        for &j in &busy {
            if !ready[j] {
                if now_s() >= started[j] + timeout_s {
                    // Timed out: R stops the child.
                    stopped[j] = true;
                }
                continue;
            }
            match with_child(handles[j].clone(), |c| c.next_event(Duration::ZERO)) {
                Ok(Some(Event::Message {
                    kind: Kind::Result,
                    payload,
                    plain: true,
                })) => {
                    done.push(index(running[j]));
                    by.push(index(j + 1));
                    let cap = caps.get(j).copied().unwrap_or(0.0);
                    payloads.push(answer_or_payload(&payload, cap, null.as_slice()));
                    running[j] = 0;
                }
                Ok(Some(ev)) => {
                    events[j] = event_to_robj(ev);
                    stopped[j] = true;
                }
                Ok(None) => {}
                Err(e) => {
                    events[j] = r_error(e);
                    stopped[j] = true;
                }
            }
        }
        interrupt = child_calls::interrupt_pending();
        if extra || interrupt || Instant::now() >= end {
            break;
        }
    }
    let running: Vec<i32> = running.into_iter().map(index).collect();
    list!(
        cursor = index(next),
        running = running,
        started = started,
        done = done,
        by = by,
        payloads = List::from_values(payloads),
        events = List::from_values(events),
        stopped = stopped,
        unsent = unsent,
        extra = extra,
        interrupt = interrupt
    )
    .into()
}

/// A character vector's one string when it is UTF-8 text: not NA, not
/// marked as bytes or Latin-1, valid UTF-8 (what `enc2utf8()` leaves of
/// text in any other encoding).
///
/// # Safety
/// `sexp` must be a live SEXP; the string lives as long as it does.
unsafe fn utf8_string<'a>(sexp: extendr_api::SEXP) -> Option<&'a str> {
    if extendr_ffi::TYPEOF(sexp) != extendr_ffi::SEXPTYPE::STRSXP
        || extendr_ffi::Rf_xlength(sexp) != 1
    {
        return None;
    }
    utf8_elt(sexp, 0)
}

/// As `utf8_string()`, for element `i` of a character vector.
///
/// # Safety
/// `sexp` must be a live character vector longer than `i`.
unsafe fn utf8_elt<'a>(sexp: extendr_api::SEXP, i: isize) -> Option<&'a str> {
    let c = extendr_ffi::STRING_ELT(sexp, i);
    if c == extendr_ffi::R_NaString {
        return None;
    }
    let ce = Rf_getCharCE(c.cast());
    if ce == extendr_ffi::cetype_t::CE_BYTES || ce == extendr_ffi::cetype_t::CE_LATIN1 {
        return None;
    }
    let (bytes, _) = char_bytes(c);
    std::str::from_utf8(bytes).ok()
}

/// The session's state: "starting", "idle", "busy" (a request awaits its
/// reply), "tool_call" (the child waits for a tool's reply) or "closed".
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_state(ptr: Robj) -> &'static str {
    with_child(ptr, |c| c.phase().name()).unwrap_or("closed")
}

/// How many frames from the child were discarded because they answered no
/// outstanding request.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_discarded(ptr: Robj) -> f64 {
    with_child(ptr, |c| c.discarded() as f64).unwrap_or(0.0)
}

/// Sets how many bytes of output each execution stores (from the next
/// exec on); later output is dropped behind one marker line. NULL, or an
/// error object.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_set_output_limit(ptr: Robj, bytes: f64) -> Robj {
    if bytes.is_nan() || bytes < 0.0 {
        return r_error(Error::new(
            ErrorKind::Input,
            "the output limit must be a number of bytes, 0 or more",
        ));
    }
    unit_or_error(with_child(ptr, |c| c.set_output_limit(bytes as usize)))
}

/// Signals the child (a cold child's process group; a forked session's
/// supervisor, which forwards it to R); TRUE if delivered.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_signal(ptr: Robj, signal: i32) -> bool {
    with_child(ptr, |c| c.signal(signal)).unwrap_or(false)
}

/// Kills the child and releases its fds. A child the host spawned is
/// waited for (at most a moment); a forked session too with `wait` (before
/// its folder is removed), else its zygote reaps it. Idempotent.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_kill(ptr: Robj, wait: bool) {
    if let Ok(handle) = Handle::try_from(ptr) {
        let cell: &RefCell<Option<HostChild>> = &handle;
        if let Ok(mut guard) = cell.try_borrow_mut() {
            if let Some(mut child) = guard.take() {
                child.kill_and_wait(wait);
            }
        }
    }
}

/// pid of the child (the launcher, or a forked session's supervisor), or NA.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_pid(ptr: Robj) -> Robj {
    match with_child(ptr, |c| c.pid()) {
        Ok(pid) if pid > 0 => Robj::from(pid as f64),
        _ => Robj::from(Rfloat::na()),
    }
}

/// The launcher's report of the sandbox layers, as JSON ("" before it
/// arrived): diagnoses a child that dies while starting.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_launch_report(ptr: Robj) -> String {
    with_child(ptr, |c| {
        let mut report = c.launch_report().clone();
        for l in report.layers.iter_mut() {
            l.detail = text::clean(l.detail.as_bytes());
        }
        serde_json::to_string(&report).unwrap_or_default()
    })
    .unwrap_or_default()
}

/// The session limit ("memory", "nproc" or "tmp_size") whose passing made
/// the session's supervisor stop it, or NULL.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_exit_limit(ptr: Robj) -> Robj {
    match with_child(ptr, |c| c.exit_report().and_then(|r| r.limit)) {
        Ok(Some(limit)) => Robj::from(limit.as_str()),
        _ => ().into(),
    }
}

/// Removes a session's folder (a file, a link or a whole tree) without
/// following any link the sandboxed code may have planted in it: NULL, or
/// an error object saying what was left.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_remove_tree(path: &str) -> Robj {
    unit_or_error(
        securer_core::tree::remove(Path::new(path))
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string())),
    )
}

/// Whether the child process is running.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_alive(ptr: Robj) -> bool {
    with_child(ptr, |c| c.is_alive()).unwrap_or(false)
}

/// fds to watch for a child's next event (for event loops such as later's);
/// empty when the child has queued events already or is gone.
/// @noRd
#[cfg(unix)]
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

/// Waits at most `timeout_ms` until one of several sessions has something
/// to say: `fds` holds each session's fds (its `rs_poll_fds()`; none when
/// an event is queued already). The 1-based indices of the sessions whose
/// fds are readable, or of those with none; empty when the time ran out.
/// For a loop over several sessions (a pool's batch).
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_wait_sessions(fds: List, timeout_ms: f64) -> Vec<i32> {
    let mut all = Vec::new();
    let mut owners = Vec::new();
    let mut ready = Vec::new();
    for (i, (_, own)) in fds.iter().enumerate() {
        let index = i32::try_from(i + 1).unwrap_or(i32::MAX);
        let own: Vec<i32> = own
            .as_integer_slice()
            .map(<[i32]>::to_vec)
            .unwrap_or_default();
        if own.is_empty() {
            ready.push(index);
        } else {
            owners.resize(owners.len() + own.len(), index);
            all.extend(own);
        }
    }
    if !ready.is_empty() {
        return ready;
    }
    let mut hit: Vec<i32> = host::wait_any(&all, ms(timeout_ms))
        .into_iter()
        .filter_map(|k| owners.get(k).copied())
        .collect();
    hit.dedup();
    hit
}

/// Checks serialized bytes against the value allowlist: NULL, or an error
/// object of kind "value" whose message says why. `classes`: the S3 classes
/// accepted, or NULL to accept any (values going into the sandbox).
/// @noRd
#[extendr]
fn rs_check_value(bytes: Raw, max_bytes: f64, classes: Nullable<Strings>) -> Robj {
    let limits = rvalue::CheckLimits {
        max_bytes: frame::frame_limit(max_bytes),
        allowed_classes: match classes {
            Nullable::NotNull(c) => Some(c.iter().map(|s| String::from(&**s)).collect()),
            Nullable::Null => None,
        },
        ..rvalue::CheckLimits::default()
    };
    unit_or_error(rvalue::check_with(bytes.as_slice(), &limits).map_err(Error::from))
}

/// Sets the S3 classes accepted in values from this child. NULL, or an
/// error object.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_set_allowed_classes(ptr: Robj, classes: Strings) -> Robj {
    let classes: Vec<String> = classes.iter().map(|s| String::from(&**s)).collect();
    unit_or_error(with_child(ptr, |c| c.set_allowed_classes(classes)))
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

/// Seconds on a monotonic clock (from an arbitrary origin): deadlines on
/// the host. A clock read without a system call, unlike proc.time().
/// @noRd
#[extendr]
fn rs_now() -> f64 {
    now_s()
}

/// `rs_now()`'s clock.
fn now_s() -> f64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

/// Random session token (32 bytes from the kernel), or an error object.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_random_token() -> Robj {
    let mut buf = [0u8; 32];
    value_or_error(host::random_bytes(&mut buf).map(|()| Raw::from_bytes(&buf)))
}

/// Appends one line to an audit log: NULL, or an error object.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_audit_append(path: &str, line: &str) -> Robj {
    unit_or_error(securer_core::audit::append_line(Path::new(path), line).map_err(Error::from))
}

/// Opens (creating it) an audit log to check that it can be written: NULL,
/// or an error object.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_audit_check(path: &str) -> Robj {
    unit_or_error(
        securer_core::audit::open_log(Path::new(path))
            .map(drop)
            .map_err(Error::from),
    )
}

/// The wire protocol's constants: `version`, `kinds` (named integer codes),
/// `header_bytes`, `ids_bytes`, `max_frame` (`default`, `min`, `max`), `max_line_bytes`
/// and `max_output_bytes` (the default per-execution budget).
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_protocol() -> Robj {
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    let codes: Vec<i32> = Kind::ALL.iter().map(|k| *k as i32).collect();
    let mut kinds = Robj::from(codes);
    let _ = kinds.set_names(names);
    list!(
        version = frame::PROTOCOL_VERSION as i32,
        kinds = kinds,
        header_bytes = frame::HEADER_LEN as i32,
        ids_bytes = frame::IDS_LEN as i32,
        max_frame = list!(
            default = frame::DEFAULT_MAX_FRAME as f64,
            min = frame::MIN_MAX_FRAME as f64,
            max = frame::MAX_MAX_FRAME as f64
        ),
        max_line_bytes = text::MAX_LINE_BYTES as f64,
        max_output_bytes = host::DEFAULT_MAX_OUTPUT_BYTES as f64
    )
    .into()
}

/// The frame-size cap for a requested size (NA: the default), in bytes:
/// the one rule every part of securer applies.
/// @noRd
#[extendr]
fn rs_frame_limit(requested: Robj) -> f64 {
    let requested = requested
        .as_real()
        .or_else(|| requested.as_integer().map(f64::from))
        .unwrap_or(f64::NAN);
    frame::frame_limit(requested) as f64
}

/// The Seatbelt profile (macOS) of a `SandboxPolicy` given as JSON: the
/// launcher's own rendering (`securer_core::sandbox::seatbelt`), or an
/// error object (kind "launch", layer "policy").
/// @noRd
#[extendr]
fn rs_seatbelt_profile(policy_json: &str) -> Robj {
    let policy = serde_json::from_str(policy_json)
        .map_err(|e| Error::new(ErrorKind::Input, format!("invalid sandbox policy: {e}")));
    value_or_error(
        policy.and_then(|p| securer_core::sandbox::seatbelt::render(&p).map_err(Error::from)),
    )
}

/// Windows: the functions that need Unix (processes, sockets, descriptors)
/// exist so that the package loads, and each returns an error object (a
/// `securer_sandbox_error` in R). The R side stops before it calls one
/// (`check_session_platform()`): sessions need Linux or macOS; on Windows,
/// WSL2.
#[cfg(not(unix))]
macro_rules! needs_unix {
    ($($name:ident($($arg:ident),*);)*) => {$(
        /// @noRd
        #[extendr]
        fn $name($($arg: Robj),*) -> Robj {
            $(drop($arg);)*
            r_error(Error {
                layer: Some("sandbox".to_string()),
                ..Error::new(
                    ErrorKind::Launch,
                    "securer sessions need Linux or macOS; on Windows, run R in WSL2",
                )
            })
        }
    )*};
}

#[cfg(not(unix))]
needs_unix! {
    rs_spawn(launcher, spec_json, token, max_frame);
    rs_zygote_fork(zygote, request_json, token, max_frame, timeout_ms);
    rs_next_event(ptr, timeout_ms);
    rs_send(ptr, kind, payload, timeout_ms);
    rs_send_exec(ptr, code, template, max_chars, timeout_ms);
    rs_state(ptr);
    rs_discarded(ptr);
    rs_set_output_limit(ptr, bytes);
    rs_signal(ptr, signal);
    rs_kill(ptr, wait);
    rs_pid(ptr);
    rs_launch_report(ptr);
    rs_exit_limit(ptr);
    rs_remove_tree(path);
    rs_alive(ptr);
    rs_poll_fds(ptr);
    rs_wait_sessions(fds, timeout_ms);
    rs_set_allowed_classes(ptr, classes);
    rs_random_token();
    rs_audit_append(path, line);
    rs_audit_check(path);
    rs_protocol();
    rs_file_sink_open(path, max_bytes);
    rs_file_sink_write(sink, bytes);
    rs_file_sink_commit(sink);
    rs_file_sink_close(sink);
    rs_fs_target(roots, path);
    rs_fs_open_read(roots, path, max_bytes);
    rs_fs_read(handle, n);
    rs_fs_list(roots, dir, recursive, max_entries);
    rs_zygote_serve(max_frame);
    rs_zygote_freeze(envs);
    rs_child_connect(fd, token, max_frame);
    rs_child_send(kind, payload);
    rs_child_recv(timeout_ms);
    rs_child_calls();
}

/// The argument types a tool may declare.
/// @noRd
#[extendr]
fn rs_tool_types() -> Vec<&'static str> {
    tool_types::TOOL_TYPES.to_vec()
}

/// The bytes of a CHARSXP and whether they are Latin-1.
///
/// # Safety
/// `charsxp` must be a live CHARSXP.
unsafe fn char_bytes<'a>(charsxp: extendr_api::SEXP) -> (&'a [u8], bool) {
    let len = usize::try_from(extendr_ffi::Rf_xlength(charsxp)).unwrap_or(0);
    let ptr = extendr_ffi::R_CHAR(charsxp).cast::<u8>();
    let latin1 = Rf_getCharCE(charsxp.cast()) == extendr_ffi::cetype_t::CE_LATIN1;
    (std::slice::from_raw_parts(ptr, len), latin1)
}

extern "C" {
    // R's API; extendr-ffi does not bind it. The CHARSXP is passed as an
    // opaque pointer.
    fn Rf_getCharCE(x: *mut std::ffi::c_void) -> extendr_ffi::cetype_t;
}

/// The strings of a character vector as raw bytes (Latin-1 ones decoded),
/// `None` for NA.
fn strings_of(x: &Robj) -> Vec<Option<String>> {
    // SAFETY: `x` is live for the call.
    unsafe { sexp_strings(x.get()) }
}

/// As `strings_of()`, for a SEXP (nothing for anything but a character
/// vector).
///
/// # Safety
/// `sexp` must be a live SEXP; the bytes are copied before returning.
unsafe fn sexp_strings(sexp: extendr_api::SEXP) -> Vec<Option<String>> {
    if extendr_ffi::TYPEOF(sexp) != extendr_ffi::SEXPTYPE::STRSXP {
        return Vec::new();
    }
    let n = extendr_ffi::Rf_xlength(sexp);
    (0..n)
        .map(|i| {
            let c = extendr_ffi::STRING_ELT(sexp, i);
            if c == extendr_ffi::R_NaString {
                return None;
            }
            let (bytes, latin1) = char_bytes(c);
            Some(if latin1 {
                bytes.iter().map(|b| char::from(*b)).collect()
            } else {
                String::from_utf8_lossy(bytes).into_owned()
            })
        })
        .collect()
}

/// A character vector's one string (Latin-1 decoded), `None` for anything
/// else (NA, another length or type).
///
/// # Safety
/// `sexp` must be a live SEXP.
unsafe fn sexp_string(sexp: extendr_api::SEXP) -> Option<String> {
    match <[Option<String>; 1]>::try_from(sexp_strings(sexp)) {
        Ok([s]) => s,
        Err(_) => None,
    }
}

/// Cleans strings that came from the child (error messages, calls, class
/// names): control sequences removed, invalid UTF-8 replaced, each cut to
/// `max_chars` characters (Inf: no limit) with a marker. NA stays NA; the
/// result is a plain character vector. An error object when `x` is not a
/// character vector.
/// @noRd
#[extendr]
fn rs_clean_text(x: Robj, max_chars: f64) -> Robj {
    if x.rtype() != Rtype::Strings && !x.is_null() {
        return r_error(Error::new(
            ErrorKind::Input,
            "rs_clean_text() takes a character vector",
        ));
    }
    let max = if max_chars.is_nan() || max_chars >= usize::MAX as f64 {
        usize::MAX
    } else {
        max_chars.max(0.0) as usize
    };
    let cleaned: Vec<Option<String>> = strings_of(&x)
        .into_iter()
        .map(|s| s.map(|s| text::truncate_chars(text::strip_controls(&s), max)))
        .collect();
    Strings::from_values(cleaned.into_iter().map(|s| match s {
        Some(s) => Rstr::from(s),
        None => Rstr::na(),
    }))
    .into()
}

/// The base type, classes and dim of a value, for the tool type check.
///
/// # Safety
/// `value` must be a live SEXP.
unsafe fn shape_of(value: extendr_api::SEXP) -> (BaseType, Vec<String>, Option<usize>) {
    use extendr_ffi::SEXPTYPE;
    let base = match extendr_ffi::TYPEOF(value) {
        SEXPTYPE::NILSXP => BaseType::Null,
        SEXPTYPE::LGLSXP => BaseType::Logical,
        SEXPTYPE::INTSXP => BaseType::Integer,
        SEXPTYPE::REALSXP => BaseType::Double,
        SEXPTYPE::CPLXSXP => BaseType::Complex,
        SEXPTYPE::STRSXP => BaseType::Character,
        SEXPTYPE::RAWSXP => BaseType::Raw,
        SEXPTYPE::VECSXP => BaseType::List,
        SEXPTYPE::LISTSXP => BaseType::Pairlist,
        SEXPTYPE::EXPRSXP => BaseType::Expression,
        _ => BaseType::Other,
    };
    let classes = sexp_strings(extendr_ffi::Rf_getAttrib(value, extendr_ffi::R_ClassSymbol))
        .into_iter()
        .flatten()
        .collect();
    let dim = extendr_ffi::Rf_getAttrib(value, extendr_ffi::R_DimSymbol);
    let dim_len = (extendr_ffi::TYPEOF(dim) == SEXPTYPE::INTSXP)
        .then(|| usize::try_from(extendr_ffi::Rf_xlength(dim)).unwrap_or(0));
    (base, classes, dim_len)
}

/// Does `value` pass the tool argument type `type`? Mirrors R's
/// `is.numeric()`, `is.integer()`, `is.matrix()`, ... (see
/// `securer_core::tool_types`). FALSE for an unknown or NA type.
/// @noRd
#[extendr]
fn rs_tool_type_ok(value: Robj, r#type: Robj) -> bool {
    // SAFETY: both are live for the call.
    unsafe { type_ok(value.get(), r#type.get()) }
}

/// As `rs_tool_type_ok()`, for SEXPs (the child runtime calls it directly:
/// see `child_calls`).
///
/// # Safety
/// Both must be live SEXPs.
unsafe fn type_ok(value: extendr_api::SEXP, type_name: extendr_api::SEXP) -> bool {
    let Some(type_name) = sexp_string(type_name) else {
        return false;
    };
    let (base, classes, dim_len) = shape_of(value);
    let classes: Vec<&str> = classes.iter().map(String::as_str).collect();
    let shape = Shape {
        base,
        classes: &classes,
        dim_len,
    };
    tool_types::type_ok(&type_name, &shape, || {
        if extendr_ffi::TYPEOF(value) != extendr_ffi::SEXPTYPE::REALSXP {
            return false;
        }
        let n = usize::try_from(extendr_ffi::Rf_xlength(value)).unwrap_or(0);
        let xs: &[f64] = if n == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(extendr_ffi::REAL(value), n)
        };
        tool_types::all_integer_valued(xs.iter().copied())
    })
}

/// A count or size from R (a double): NaN and negatives are 0, anything
/// beyond `u64` saturates.
fn count(x: f64) -> u64 {
    if x.is_nan() || x <= 0.0 {
        0
    } else {
        x as u64
    }
}

/// Checks PNG bytes from the child (see `securer_core::png`):
/// `list(png = <raw>, width, height)`, the rebuilt file holding only what a
/// reader needs, or an error object of kind "image".
/// @noRd
#[extendr]
fn rs_png_check(bytes: Raw, max_width: f64, max_height: f64, max_bytes: f64) -> Robj {
    let limits = png::PngLimits {
        max_width: count(max_width).min(u64::from(u32::MAX)) as u32,
        max_height: count(max_height).min(u64::from(u32::MAX)) as u32,
        max_bytes: count(max_bytes).min(usize::MAX as u64) as usize,
    };
    value_or_error(
        png::check(bytes.as_slice(), &limits)
            .map(|p| {
                Robj::from(list!(
                    png = Raw::from_bytes(&p.bytes),
                    width = f64::from(p.width),
                    height = f64::from(p.height)
                ))
            })
            .map_err(Error::from),
    )
}

#[cfg(unix)]
type Sink = ExternalPtr<RefCell<Option<AtomicFile>>>;

#[cfg(unix)]
fn with_sink<T>(
    ptr: Robj,
    f: impl FnOnce(&mut Option<AtomicFile>) -> Result<T, Error>,
) -> Result<T, Error> {
    let gone = || Error::new(ErrorKind::Input, "the file was already finished");
    let sink: Sink = ptr.try_into().map_err(|_| gone())?;
    let cell: &RefCell<Option<AtomicFile>> = &sink;
    let mut guard = cell.try_borrow_mut().map_err(|_| gone())?;
    f(&mut guard)
}

/// Starts writing `path` (at most `max_bytes`) through a new file beside it
/// that is renamed over it by `rs_file_sink_commit()` (see
/// `securer_core::files::AtomicFile`): an external pointer, or an error
/// object. Released unfinished (`rs_file_sink_close()`, or by the garbage
/// collector), it leaves nothing behind.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_file_sink_open(path: &str, max_bytes: f64) -> Robj {
    value_or_error(
        AtomicFile::create(Path::new(path), count(max_bytes))
            .map(|w| Robj::from(ExternalPtr::new(RefCell::new(Some(w)))))
            .map_err(Error::from),
    )
}

/// Appends bytes to a file started by `rs_file_sink_open()`: NULL, or an
/// error object.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_file_sink_write(sink: Robj, bytes: Raw) -> Robj {
    unit_or_error(with_sink(sink, |w| match w.as_mut() {
        Some(w) => w.write(bytes.as_slice()).map_err(Error::from),
        None => Err(Error::new(
            ErrorKind::Input,
            "the file was already finished",
        )),
    }))
}

/// Renames the finished file over its target: NULL, or an error object.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_file_sink_commit(sink: Robj) -> Robj {
    unit_or_error(with_sink(sink, |w| match w.take() {
        Some(w) => w.commit().map_err(Error::from),
        None => Err(Error::new(
            ErrorKind::Input,
            "the file was already finished",
        )),
    }))
}

/// Abandons an unfinished file (its temporary file is removed). Idempotent.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_file_sink_close(sink: Robj) {
    let _ = with_sink(sink, |w| {
        w.take();
        Ok(())
    });
}

#[cfg(unix)]
fn space_of(roots: Strings) -> Result<Space, Error> {
    let roots: Vec<PathBuf> = roots
        .iter()
        .map(|r| PathBuf::from(AsRef::<str>::as_ref(&r)))
        .collect();
    Space::new(&roots).map_err(Error::from)
}

/// Child runtime: where a file uploaded to `path` goes, inside the
/// writable space of `roots` (the first is where relative paths start):
/// the resolved path, or an error object (kind "file_...").
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_fs_target(roots: Strings, path: &str) -> Robj {
    value_or_error(space_of(roots).and_then(|s| {
        s.target(Path::new(path))
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(Error::from)
    }))
}

type Reader = ExternalPtr<RefCell<Option<File>>>;

/// Child runtime: opens an existing regular file of at most `max_bytes` in
/// the writable space of `roots`: `list(handle, size)`, or an error object.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_fs_open_read(roots: Strings, path: &str, max_bytes: f64) -> Robj {
    value_or_error(space_of(roots).and_then(|s| {
        s.open_read(Path::new(path), count(max_bytes))
            .map(|(file, size)| {
                let handle: Robj = ExternalPtr::new(RefCell::new(Some(file))).into();
                Robj::from(list!(handle = handle, size = size as f64))
            })
            .map_err(Error::from)
    }))
}

/// Child runtime: the next at most `n` bytes of a file opened by
/// `rs_fs_open_read()` (empty at its end), or an error object.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_fs_read(handle: Robj, n: f64) -> Robj {
    let gone = || Error::new(ErrorKind::Input, "the file is closed");
    let read = || -> Result<Vec<u8>, Error> {
        let reader: Reader = handle.try_into().map_err(|_| gone())?;
        let cell: &RefCell<Option<File>> = &reader;
        let mut guard = cell.try_borrow_mut().map_err(|_| gone())?;
        let file = guard.as_mut().ok_or_else(gone)?;
        files::read_chunk(file, count(n) as usize).map_err(Error::from)
    };
    value_or_error(read().map(|b| Raw::from_bytes(&b)))
}

/// Child runtime: the entries of folder `dir` in the writable space of
/// `roots` (`recursive`: of its subfolders too; links are not followed):
/// `list(path, kind, size, modified, truncated)` with at most
/// `max_entries` rows, or an error object.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_fs_list(roots: Strings, dir: &str, recursive: bool, max_entries: f64) -> Robj {
    value_or_error(space_of(roots).and_then(|s| {
        s.list(Path::new(dir), recursive, count(max_entries) as usize)
            .map(|(entries, truncated)| {
                let path: Vec<String> = entries
                    .iter()
                    .map(|e| e.path.to_string_lossy().into_owned())
                    .collect();
                let kind: Vec<&str> = entries.iter().map(|e| e.kind).collect();
                let size: Vec<f64> = entries.iter().map(|e| e.size as f64).collect();
                let modified: Vec<f64> = entries.iter().map(|e| e.modified).collect();
                Robj::from(list!(
                    path = path,
                    kind = kind,
                    size = size,
                    modified = modified,
                    truncated = truncated
                ))
            })
            .map_err(Error::from)
    }))
}

#[cfg(unix)]
thread_local! {
    static CHILD_IO: RefCell<Option<ChildIo>> = const { RefCell::new(None) };
}

/// Zygote runtime: serves fork requests. Returns `list(token = )` in each
/// forked session, or an error object (kind "closed") when the
/// host is gone. (The runtime gives each session a temporary folder of
/// its own: see inst/child/runtime.R.) `warm`, a function of no
/// arguments, runs in each spare before it waits for its claim (see
/// `securer_core::zygote::serve`).
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_zygote_serve(max_frame: f64, warm: Function) -> Robj {
    // An error in `warm` (it catches its own) only leaves the spare colder.
    let mut warm = || {
        let _ = warm.call(pairlist!());
    };
    match securer_core::zygote::serve(
        securer_core::policy::CHILD_IPC_FD,
        frame::frame_limit(max_frame),
        &mut warm,
    ) {
        Ok(start) => list!(token = start.token).into(),
        Err(e) => r_error(Error::from(e)),
    }
}

/// Zygote: marks what the environments in `envs` hold as never to be
/// modified in place, so that sessions keep sharing its pages (see
/// `freeze`). The number of objects marked.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_zygote_freeze(envs: List) -> f64 {
    // SAFETY: on R's main thread, with `envs` protected by the caller.
    unsafe { freeze::freeze(envs.get()) as f64 }
}

/// Child runtime: adopts the inherited IPC socket and says hello. NULL, or
/// an error object.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_child_connect(fd: i32, token: Raw, max_frame: f64) -> Robj {
    let mut io = ChildIo::new(fd as RawFd, frame::frame_limit(max_frame));
    io.release_when_idle();
    let hello = frame::hello_payload(token.as_slice());
    unit_or_error(io.send(Kind::Hello, &hello).map(|()| {
        CHILD_IO.with(|c| *c.borrow_mut() = Some(io));
    }))
}

#[cfg(unix)]
fn with_child_io<T>(f: impl FnOnce(&mut ChildIo) -> Result<T, Error>) -> Result<T, Error> {
    CHILD_IO.with(|c| match c.borrow_mut().as_mut() {
        Some(io) => f(io),
        None => Err(Error::new(
            ErrorKind::NotRunning,
            "the child runtime is not connected",
        )),
    })
}

/// Child runtime: sends a frame ("result", "error" or "tool_call"); the
/// ids are stamped here. NULL, or an error object. (The runtime calls
/// `child_calls::child_send` directly; this is for tests that play a
/// hostile child.)
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_child_send(kind: Robj, payload: Robj) -> Robj {
    // SAFETY: both are live for the call; the result is protected at once.
    unsafe { Robj::from_sexp(child_calls::child_send(kind.get(), payload.get())) }
}

/// Child runtime: waits at most `timeout_ms` (negative: no limit) for the
/// next frame meant for the runtime: `list(kind = <name>, payload = <raw>)`,
/// NULL when the time ran out or a signal arrived (R then takes a pending
/// interrupt), or an error object (kind "closed" when the host is gone).
/// An interrupt still pending when an exec arrives was meant for an
/// evaluation that is over (the host interrupts only while it waits for a
/// reply): it is dropped here, which costs no system call. (The runtime
/// calls `child_calls::child_recv` directly.)
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_child_recv(timeout_ms: Robj) -> Robj {
    // SAFETY: live for the call; the result is protected at once.
    unsafe { Robj::from_sexp(child_calls::child_recv(timeout_ms.get())) }
}

/// `serialize(x, NULL, xdr = FALSE)` as the child runtime writes a
/// message of plain values (see `child_calls`), for tests that compare the
/// two: the bytes, or NULL when `x` is not plain.
/// `null` is `serialize(NULL, NULL, xdr = FALSE)`.
/// @noRd
#[extendr]
fn rs_serialize_plain(x: Robj, null: Raw) -> Robj {
    // SAFETY: `x` is live for the call, and its bytes are copied before
    // anything is allocated.
    let bytes = unsafe {
        plain::value(x.get(), usize::MAX).and_then(|value| {
            securer_core::plain::serialize(null.as_slice(), &value, usize::MAX).ok()
        })
    };
    bytes.map_or_else(|| Robj::from(()), |b| Robj::from(Raw::from_bytes(&b)))
}

/// A plain result's answer as the host reads it in Rust (see
/// `rs_next_answer()`), for tests that compare it with `quick_result()`:
/// NULL when it is not read in Rust.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_read_answer(payload: Raw, cap: f64, null: Raw) -> Robj {
    let payload = payload.as_slice();
    let limits = rvalue::CheckLimits::default();
    if !rvalue::check_reply(payload, &limits).unwrap_or(false) {
        return Robj::from(());
    }
    let answer = answer_or_payload(payload, cap, null.as_slice());
    if answer.rtype() == Rtype::Raw {
        Robj::from(())
    } else {
        answer
    }
}

/// Child runtime: its calls for each message, which make no extendr
/// objects (see `child_calls`): `list(recv, send, check_result, type_ok)`,
/// each an external pointer that `.Call()` takes.
/// @noRd
#[cfg(unix)]
#[extendr]
fn rs_child_calls() -> Robj {
    child_calls::entry_points()
}

extendr_module! {
    mod securer;
    fn rs_spawn;
    fn rs_next_event;
    fn rs_next_answer;
    fn rs_next_step;
    fn rs_ready_call;
    fn rs_send;
    fn rs_send_exec;
    fn rs_send_plain;
    fn rs_state;
    fn rs_discarded;
    fn rs_set_output_limit;
    fn rs_signal;
    fn rs_kill;
    fn rs_pid;
    fn rs_alive;
    fn rs_launch_report;
    fn rs_exit_limit;
    fn rs_remove_tree;
    fn rs_wait_sessions;
    fn rs_batch_run;
    fn rs_poll_fds;
    fn rs_check_value;
    fn rs_set_allowed_classes;
    fn rs_default_allowed_classes;
    fn rs_random_token;
    fn rs_now;
    fn rs_audit_append;
    fn rs_audit_check;
    fn rs_protocol;
    fn rs_frame_limit;
    fn rs_tool_types;
    fn rs_tool_type_ok;
    fn rs_clean_text;
    fn rs_zygote_fork;
    fn rs_zygote_serve;
    fn rs_zygote_freeze;
    fn rs_child_connect;
    fn rs_child_send;
    fn rs_child_recv;
    fn rs_child_calls;
    fn rs_serialize_plain;
    fn rs_read_answer;
    fn rs_png_check;
    fn rs_file_sink_open;
    fn rs_file_sink_write;
    fn rs_file_sink_commit;
    fn rs_file_sink_close;
    fn rs_fs_target;
    fn rs_fs_open_read;
    fn rs_fs_read;
    fn rs_fs_list;
    fn rs_seatbelt_profile;
}
