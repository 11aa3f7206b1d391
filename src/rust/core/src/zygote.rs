//! The warm zygote's fork server. Runs inside the zygote R process (called
//! from the child runtime through the glue crate): it waits for fork
//! requests from the host and answers each with a session that returns in
//! R with R and its default packages loaded.
//!
//! Sessions are forked and confined ahead of demand: the zygote keeps
//! `SPARES` of them ("spares", see `handoff`) for the request it saw last,
//! so that a request only hands a spare the host's socket and pipes (a
//! fraction of a millisecond) while the forks, namespaces and filters that
//! make a session (milliseconds of CPU) happen between requests. A request
//! that finds no spare of its kind forks one on the spot.
//!
//! A zygote without a sandbox (`ForkRequest::policy` is `None`) forks
//! sessions that get their own process group, per-process limits, the
//! zygote's clean environment with their own folder as home, and a
//! supervisor (their parent) that reports how R ended. When a session's
//! supervisor is gone the zygote ends what is left of its process group
//! before reaping it, so the group id cannot have been reused.

use crate::fdpass;
use crate::frame::{self, Decoder, FrameError, Kind};
use crate::handoff::{self, Claim};
use crate::policy::{ForkRequest, LaunchFailure, Layer, LayerState, CHILD_IPC_FD};
use crate::report;
use crate::sys;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("the host closed the zygote's connection")]
    Closed,
    #[error("zygote I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

impl From<ServeError> for crate::Error {
    fn from(e: ServeError) -> crate::Error {
        let kind = match e {
            ServeError::Closed => crate::ErrorKind::Closed,
            _ => crate::ErrorKind::Zygote,
        };
        crate::Error::caused_by(kind, &e)
    }
}

/// The environment variable in which the launcher tells a zygote what it
/// found of cgroup v2 on the host (the zygote's root has no /sys): read
/// and removed before any session is forked, reported by each session.
pub const CGROUP_ENV: &str = "SECURER_CGROUP";

/// Spare sessions kept ready for the last kind of request. One covers a
/// session started now and then; a burst of starts is served by forks on
/// the spot, which overlap with the sessions setting themselves up.
const SPARES: usize = 1;

/// What a freshly forked session needs to go on in R.
pub struct SessionStart {
    pub token: String,
}

/// A session forked ahead of demand, waiting for its claim.
struct Spare {
    /// The request it was made for, less token and folder.
    key: String,
    chan: OwnedFd,
    /// The session's supervisor (its init in a sandbox).
    pidfd: OwnedFd,
    pid: libc::pid_t,
}

/// What the zygote keeps between requests.
struct Zygote {
    ctrl: RawFd,
    /// The zygote's own pid namespace.
    own_pidns: std::fs::File,
    cgroup: String,
    spares: Vec<Spare>,
    /// Sessions without a sandbox (their supervisors lead their process
    /// groups), watched so that their groups end with them.
    groups: Vec<(libc::pid_t, OwnedFd)>,
    /// The last request served, to make spares for.
    last: Option<(String, ForkRequest)>,
}

fn failure(message: impl Into<String>, errno: Option<i32>) -> LaunchFailure {
    LaunchFailure::new(Layer::Zygote, message, errno)
}

fn reply_failure(ctrl: RawFd, f: &LaunchFailure) -> Result<(), ServeError> {
    report::failure(ctrl, f)?;
    Ok(())
}

/// The kind of session a request asks for: the request less its token and
/// folder.
fn spare_key(req: &ForkRequest) -> String {
    serde_json::to_string(&(&req.policy, &req.limits)).unwrap_or_default()
}

/// Serves fork requests on `ctrl` until the host goes away (`Err`).
/// Returns `Ok` only in a forked, confined session, whose IPC socket is fd
/// 3 and whose stdout/stderr are its own pipes.
///
/// `warm` runs in each spare made ahead of demand, confined, before it
/// waits for its claim: the pages R writes in a session's first execution
/// are copied from the zygote's then, off the critical path. It must not
/// write to fds 0-2 (closed; their numbers may be reused) and must leave
/// no state behind. Spares forked for a waiting request skip it.
pub fn serve(
    ctrl: RawFd,
    max_frame: usize,
    warm: &mut dyn FnMut(),
) -> Result<SessionStart, ServeError> {
    let cgroup = std::env::var(CGROUP_ENV).unwrap_or_default();
    std::env::remove_var(CGROUP_ENV);
    // Orphans of sessions without a sandbox come here to be reaped.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    let mut z = Zygote {
        ctrl,
        own_pidns: std::fs::File::open("/proc/self/ns/pid")?,
        cgroup,
        spares: Vec::new(),
        groups: Vec::new(),
        last: None,
    };
    crate::sandbox::session::prepare();
    // Last, after everything the zygote sets up: its sessions then
    // allocate from fresh pages (see `sys::take_up_free_heap`).
    #[cfg(target_env = "gnu")]
    crate::sys::take_up_free_heap();
    let mut decoder = Decoder::new(max_frame);
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        z.reap();
        while let Some(f) = decoder.next_frame()? {
            if f.kind != Kind::Fork {
                continue;
            }
            let mine: Vec<OwnedFd> = std::mem::take(&mut fds);
            if let Some(start) = z.fork_request(&f.payload, mine, warm)? {
                return Ok(in_session(start, z, fds));
            }
        }
        // Between requests: make the spares for the next one.
        if let Some(start) = z.refill(warm)? {
            return Ok(in_session(start, z, fds));
        }
        // The timeout lets us reap regularly; a session's end wakes us.
        if !z.wait(1000) {
            continue;
        }
        let (n, got) = fdpass::recv_with_fds(ctrl, &mut buf)?;
        if n == 0 {
            return Err(ServeError::Closed);
        }
        fds.extend(got);
        decoder.push(&buf[..n]);
    }
}

/// In a new session: the zygote's state stays behind unclosed (its fds
/// were closed when the session was made; their numbers may be R's by now).
fn in_session(start: SessionStart, z: Zygote, fds: Vec<OwnedFd>) -> SessionStart {
    std::mem::forget(z);
    std::mem::forget(fds);
    start
}

impl Zygote {
    /// Waits up to `ms` for the host's socket, or for a watched session's
    /// end (reaped on the next pass). True when the socket is readable.
    fn wait(&self, ms: i32) -> bool {
        let mut pfds: Vec<libc::pollfd> = std::iter::once(self.ctrl)
            .chain(self.groups.iter().map(|(_, fd)| fd.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: pfds is a live array of pollfd of the given length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        n > 0 && pfds[0].revents != 0
    }

    /// Reaps the sessions that ended; a session without a sandbox takes
    /// what is left of its process group along (its supervisor, the group's
    /// leader, is still a zombie then: the group id is still its own).
    fn reap(&mut self) {
        loop {
            // SAFETY: siginfo is plain data; waitid fills it.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: waitid with a valid siginfo pointer.
            let rc = unsafe {
                libc::waitid(
                    libc::P_ALL,
                    0,
                    &mut info,
                    libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
                )
            };
            // SAFETY: si_pid is valid for a WEXITED report.
            let pid = unsafe { info.si_pid() };
            if rc != 0 || pid == 0 {
                return;
            }
            if let Some(i) = self.groups.iter().position(|(p, _)| *p == pid) {
                sys::kill(-pid, libc::SIGKILL);
                self.groups.swap_remove(i);
            }
            self.spares.retain(|s| s.pid != pid);
            sys::try_wait(pid);
        }
    }

    /// Serves one request: a spare of its kind (forked now if there is
    /// none) gets the host's fds. `Ok(Some)` in the session.
    fn fork_request(
        &mut self,
        payload: &[u8],
        fds: Vec<OwnedFd>,
        warm: &mut dyn FnMut(),
    ) -> Result<Option<SessionStart>, ServeError> {
        let req: ForkRequest = match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(e) => {
                reply_failure(
                    self.ctrl,
                    &failure(format!("invalid fork request: {e}"), None),
                )?;
                return Ok(None);
            }
        };
        if fds.len() != handoff::CLAIM_FDS {
            let message = format!("a fork request needs 3 fds, got {}", fds.len());
            reply_failure(self.ctrl, &failure(message, None))?;
            return Ok(None);
        }
        let key = spare_key(&req);
        let claim = serde_json::to_vec(&Claim {
            token: req.token.clone(),
            dir: req.dir.clone(),
        })
        .map_err(|e| ServeError::Io(std::io::Error::other(e)))?;
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        self.last = Some((key.clone(), req));
        loop {
            let spare = match self.spares.iter().position(|s| s.key == key) {
                Some(i) => self.spares.remove(i),
                None => match self.fork_spare(true, warm)? {
                    Forked::Zygote(Some(s)) => s,
                    Forked::Zygote(None) => return Ok(None),
                    Forked::Session(start) => {
                        std::mem::forget(fds);
                        return Ok(Some(start));
                    }
                },
            };
            // A spare that died waiting (killed from outside) is replaced.
            if handoff::send(spare.chan.as_raw_fd(), &claim, &raw).is_err() {
                sys::kill(spare.pid, libc::SIGKILL);
                continue;
            }
            drop(fds);
            let bytes = frame::encode(Kind::Forked, spare.pid.to_string().as_bytes())?;
            fdpass::send_with_fds(self.ctrl, &bytes, &[spare.pidfd.as_raw_fd()])?;
            if self.last.as_ref().is_some_and(|(_, r)| r.policy.is_none()) {
                self.groups.push((spare.pid, spare.pidfd));
            }
            return Ok(None);
        }
    }

    /// Keeps `SPARES` spares of the last request's kind (and none of other
    /// kinds). `Ok(Some)` in a new spare, once claimed.
    fn refill(&mut self, warm: &mut dyn FnMut()) -> Result<Option<SessionStart>, ServeError> {
        let Some((key, _)) = &self.last else {
            return Ok(None);
        };
        let key = key.clone();
        // Spares of another kind are dropped: closing the channel ends them.
        self.spares.retain(|s| s.key == key);
        while self.spares.len() < SPARES {
            match self.fork_spare(false, warm)? {
                Forked::Zygote(Some(s)) => self.spares.push(s),
                // Could not fork now: the next request tries again.
                Forked::Zygote(None) => return Ok(None),
                Forked::Session(start) => return Ok(Some(start)),
            }
        }
        Ok(None)
    }

    /// Forks a spare for the last request. With `reply` (the request waits
    /// for it), a failure to fork is reported to the host as the reply;
    /// without (a refill between requests), nothing is sent: the host reads
    /// only replies to its requests. Only the latter are warmed (see
    /// `serve`): a request is waiting for the former.
    fn fork_spare(&mut self, reply: bool, warm: &mut dyn FnMut()) -> Result<Forked, ServeError> {
        let Some((key, req)) = self.last.clone() else {
            return Ok(Forked::Zygote(None));
        };
        let (ours, theirs) = sys::socketpair()?;
        let sandboxed = req.policy.is_some();
        if sandboxed {
            // The session's init is pid 1 of a new pid namespace: unshare
            // it for our next child only, then step back into our own.
            // SAFETY: unshare with a flag only.
            if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
                let e = std::io::Error::last_os_error();
                let f = failure(
                    format!("cannot create a pid namespace: {e}"),
                    e.raw_os_error(),
                );
                if reply {
                    reply_failure(self.ctrl, &f)?;
                }
                return Ok(Forked::Zygote(None));
            }
        }
        // SAFETY: getpid cannot fail.
        let me = unsafe { libc::getpid() };
        // SAFETY: the zygote is single-threaded R; the child goes on as R.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            drop(ours);
            let chan = theirs.into_raw_fd();
            // The zygote's fds are closed in `become_spare`; `serve` forgets
            // its state rather than close their numbers again.
            let warm = (!reply).then_some(warm);
            return Ok(Forked::Session(become_spare(
                &req,
                chan,
                &self.cgroup,
                me,
                warm,
            )));
        }
        if sandboxed {
            // SAFETY: setns on the fd of our own pid namespace.
            if unsafe { libc::setns(self.own_pidns.as_raw_fd(), libc::CLONE_NEWPID) } != 0 {
                // Every later session would be nested in this one's
                // namespace: better to end the zygote (the host starts a
                // new one).
                return Err(ServeError::Io(std::io::Error::last_os_error()));
            }
        }
        if pid < 0 {
            let e = std::io::Error::last_os_error();
            if reply {
                let f = failure(format!("fork failed: {e}"), e.raw_os_error());
                reply_failure(self.ctrl, &f)?;
            }
            return Ok(Forked::Zygote(None));
        }
        drop(theirs);
        // SAFETY: pidfd_open with a pid and no flags.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if pidfd < 0 {
            let e = std::io::Error::last_os_error();
            sys::kill(pid, libc::SIGKILL);
            let f = failure(format!("pidfd_open failed: {e}"), e.raw_os_error());
            if reply {
                reply_failure(self.ctrl, &f)?;
            }
            return Ok(Forked::Zygote(None));
        }
        Ok(Forked::Zygote(Some(Spare {
            key,
            chan: ours,
            // SAFETY: pidfd_open returned a new fd that nothing else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) },
            pid,
        })))
    }
}

/// Where a fork left us.
enum Forked {
    /// In the zygote: the new spare (`None`: none could be made, the host
    /// was told).
    Zygote(Option<Spare>),
    /// In the session, claimed.
    Session(SessionStart),
}

/// In the forked process: makes the session, warms it (see `serve`),
/// waits for its claim, takes the host's fds, reports. Returns in R.
fn become_spare(
    req: &ForkRequest,
    chan: RawFd,
    cgroup: &str,
    zygote: libc::pid_t,
    warm: Option<&mut dyn FnMut()>,
) -> SessionStart {
    sys::close_fds_except(&[chan]);
    // Named apart while unclaimed (both its processes), R's again after.
    sys::set_name(handoff::SPARE_NAME);
    let (layers, claim_fd) = match &req.policy {
        Some(policy) => {
            let c = crate::sandbox::session::confine(policy, &req.limits, chan, cgroup);
            (c.layers, c.claim_fd)
        }
        None => {
            let c = crate::sandbox::session::plain(&req.limits, chan, zygote);
            (c.layers, c.claim_fd)
        }
    };
    if let (Some(warm), Ok(_)) = (warm, &layers) {
        warm();
    }
    let Some((claim, fds)) = handoff::receive(claim_fd) else {
        // Discarded before use, or the zygote is gone.
        sys::exit_now(0)
    };
    let raw: Vec<RawFd> = fds.into_iter().map(|f| f.into_raw_fd()).collect();
    let placed = [(raw[0], CHILD_IPC_FD), (raw[1], 1), (raw[2], 2)]
        .iter()
        .all(|&(from, to)| sys::install_fd(from, to).is_ok());
    if !placed {
        // Nothing to clean up in a half-made session.
        sys::exit_now(1);
    }
    sys::close_fds_except(&[CHILD_IPC_FD]);
    sys::set_name(handoff::SESSION_NAME);
    let ipc = CHILD_IPC_FD;
    let claim: Claim = match serde_json::from_slice(&claim) {
        Ok(c) => c,
        Err(e) => report::fail(ipc, failure(format!("invalid claim: {e}"), None)),
    };
    let mut layers = layers.unwrap_or_else(|f| report::fail(ipc, f));
    let home = match &claim.dir {
        Some(dir) => match enter_folder(dir) {
            Ok(()) => format!(", home {}", dir.display()),
            Err(e) => report::fail(
                ipc,
                LaunchFailure::os(Layer::Environment, "cannot enter the session's folder", e),
            ),
        },
        None => String::new(),
    };
    layers.push(LayerState::new(
        Layer::Environment,
        true,
        format!("the zygote's clean environment{home}; other fds closed"),
    ));
    if report::layers(ipc, layers).is_err() {
        // The host is gone: end quietly.
        sys::exit_now(1);
    }
    let mut seed = [0u8; 4];
    if crate::host::random_bytes(&mut seed).is_err() {
        sys::exit_now(1);
    }
    // C's rand() (R's tempfile() names come from it) continues the
    // zygote's sequence in every session unless reseeded.
    // SAFETY: srand with an integer; R is single-threaded.
    unsafe { libc::srand(u32::from_le_bytes(seed)) };
    SessionStart { token: claim.token }
}

/// Makes `dir` the session's home, temporary folder and working directory
/// (a session without a sandbox; the host made the folder).
fn enter_folder(dir: &std::path::Path) -> Result<(), i32> {
    let c = sys::cpath(dir)?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::chdir(c.as_ptr()) } != 0 {
        return Err(sys::errno());
    }
    for var in ["HOME", "TMPDIR", "R_USER"] {
        std::env::set_var(var, dir);
    }
    std::env::set_var("R_LIBS_USER", dir.join(".no-user-library"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Limits;

    #[test]
    fn requests_differing_in_token_or_folder_share_spares() {
        let req = |token: &str, dir: Option<&str>, nofile: Option<u64>| ForkRequest {
            policy: None,
            limits: Limits {
                nofile,
                ..Limits::default()
            },
            token: token.into(),
            dir: dir.map(Into::into),
        };
        let a = spare_key(&req("aa", Some("/x"), None));
        assert_eq!(a, spare_key(&req("bb", Some("/y"), None)));
        assert_ne!(a, spare_key(&req("aa", Some("/x"), Some(300))));
    }
}
