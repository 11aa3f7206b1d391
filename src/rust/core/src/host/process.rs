//! The process behind a child: the launcher the host spawned (leader of its
//! own process group), or a session a zygote forked (known by the pidfd the
//! zygote sent). Its exit is watched through a pidfd, which the pump polls
//! with the child's other fds, so nothing here sleeps; `kill` waits at most
//! `KILL_WAIT` and leaves a process that is slow to die to be reaped later.
//!
//! Other systems (macOS) have no pidfd and no zygote: a child is always
//! spawned, its exit seen by reaping it (`try_wait`) once its socket or
//! pipes close, and signals go to its process group, which its unreaped
//! leader keeps from being reused.

use crate::error::{Error, ErrorKind};
use crate::policy::ExitReport;
use crate::policy::CHILD_IPC_FD;
use crate::sys::{self, set_nonblocking};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long `kill` waits for the process to die before moving on. A killed
/// process is usually gone within milliseconds (the wait is event-driven);
/// only one stuck in the kernel (uninterruptible I/O) takes the whole wait.
pub const KILL_WAIT: Duration = Duration::from_secs(1);

/// Exit code and terminating signal.
pub type Status = (Option<i32>, Option<i32>);

const KILLED: Status = (None, Some(libc::SIGKILL));

/// Killed children that had not died within `KILL_WAIT`: reaped on later
/// calls, so they do not stay zombies.
static STRAGGLERS: Mutex<Vec<Child>> = Mutex::new(Vec::new());

fn reap_stragglers() {
    if let Ok(mut list) = STRAGGLERS.lock() {
        list.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    }
}

enum Origin {
    /// Spawned by the host; `None` once handed to the stragglers.
    Spawned(Option<Child>),
    /// Forked by a zygote, which reaps it.
    #[cfg(native_linux)]
    Forked,
}

pub struct Process {
    origin: Origin,
    pid: u32,
    pidfd: Option<OwnedFd>,
    /// Set once the process is known to be gone (and, if ours, reaped).
    exit: Option<Status>,
}

/// The child's ends of its pipes, for the pump.
pub struct Spawned {
    pub process: Process,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl Process {
    /// Starts `launcher --parent <pid> --spec <json>` in a process group of
    /// its own, with `ipc` as fd 3, stdout and stderr piped (non-blocking on
    /// our side) and nothing else inherited.
    pub fn spawn(launcher: &Path, spec_json: &str, ipc: &OwnedFd) -> Result<Spawned, Error> {
        reap_stragglers();
        let ipc_fd = ipc.as_raw_fd();
        let mut cmd = Command::new(launcher);
        cmd.arg("--parent")
            .arg(std::process::id().to_string())
            .arg("--spec")
            .arg(spec_json)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: the closure runs between fork and exec and calls only the
        // async-signal-safe dup2 and fcntl.
        unsafe {
            cmd.pre_exec(move || {
                if ipc_fd == CHILD_IPC_FD {
                    if libc::fcntl(ipc_fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(ipc_fd, CHILD_IPC_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| Error {
            message: format!("cannot start the launcher {}: {e}", launcher.display()),
            ..Error::caused_by(ErrorKind::Spawn, &e)
        })?;
        let pid = child.id();
        let pipes = (child.stdout.take(), child.stderr.take());
        let mut process = Process::spawned(child);
        let (Some(out), Some(err)) = pipes else {
            process.kill(None, false);
            return Err(
                Error::new(ErrorKind::Socket, "the launcher's output pipes are missing")
                    .with_pid(pid),
            );
        };
        let (stdout, stderr) = (OwnedFd::from(out), OwnedFd::from(err));
        for fd in [&stdout, &stderr] {
            if let Err(e) = set_nonblocking(fd.as_raw_fd()) {
                process.kill(None, false);
                return Err(Error::caused_by(ErrorKind::Socket, &e).with_pid(pid));
            }
        }
        Ok(Spawned {
            process,
            stdout,
            stderr,
        })
    }

    /// A child of ours, leader of its own process group.
    pub(super) fn spawned(child: Child) -> Process {
        let pid = child.id();
        #[cfg(native_linux)]
        let pidfd = pidfd_open(pid);
        #[cfg(not(native_linux))]
        let pidfd = None;
        Process {
            pidfd,
            origin: Origin::Spawned(Some(child)),
            pid,
            exit: None,
        }
    }

    /// A session forked by a zygote, known by its pidfd.
    #[cfg(native_linux)]
    pub fn forked(pidfd: OwnedFd) -> Process {
        Process {
            pid: host_pid_of(&pidfd).unwrap_or(0),
            pidfd: Some(pidfd),
            origin: Origin::Forked,
            exit: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The fd that becomes readable when the process exits.
    pub fn exit_fd(&self) -> Option<RawFd> {
        match self.exit {
            None => self.pidfd.as_ref().map(|f| f.as_raw_fd()),
            Some(_) => None,
        }
    }

    /// True once the process has exited (it may not be reaped yet).
    pub fn has_exited(&mut self) -> bool {
        if self.exit.is_some() {
            return true;
        }
        match &self.pidfd {
            Some(fd) => sys::poll_one(fd.as_raw_fd(), libc::POLLIN, 0) != 0,
            // Without a pidfd (kernels before 5.3) only reaping tells.
            None => self.reap(None).is_some(),
        }
    }

    /// The exit status once the process has exited: what is left of its
    /// process group is killed first (while the unreaped leader keeps the
    /// group id from being reused), then it is reaped. `reported` is the
    /// status a forked session's supervisor sent.
    pub fn collect(&mut self, reported: Option<ExitReport>) -> Option<Status> {
        if self.exit.is_none() && self.has_exited() {
            self.signal_group(libc::SIGKILL);
        }
        self.reap(reported)
    }

    /// Reaps without waiting; caches the status. (`reported` is a forked
    /// session's: there are none without a zygote.)
    #[cfg_attr(not(native_linux), allow(unused_variables))]
    fn reap(&mut self, reported: Option<ExitReport>) -> Option<Status> {
        if self.exit.is_some() {
            return self.exit;
        }
        let status = match &mut self.origin {
            Origin::Spawned(Some(child)) => match child.try_wait() {
                Ok(Some(s)) => (s.code(), s.signal()),
                Ok(None) => return None,
                Err(_) => KILLED,
            },
            Origin::Spawned(None) => KILLED,
            #[cfg(native_linux)]
            Origin::Forked => {
                let exited = match &self.pidfd {
                    Some(fd) => sys::poll_one(fd.as_raw_fd(), libc::POLLIN, 0) != 0,
                    None => true,
                };
                if !exited {
                    return None;
                }
                reported.map_or(KILLED, |r| (r.code, r.signal))
            }
        };
        self.exit = Some(status);
        self.pidfd = None;
        Some(status)
    }

    /// Sends `sig` to the process (for a spawned launcher, to its whole
    /// process group). False once the process is gone.
    pub fn signal(&mut self, sig: i32) -> bool {
        if self.has_exited() {
            return false;
        }
        self.signal_group(sig)
    }

    fn signal_group(&self, sig: i32) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match (&self.origin, &self.pidfd) {
            (Origin::Spawned(Some(_)), _) => {
                // SAFETY: kill with integer arguments; the group is our
                // unreaped child's, so its id cannot have been reused.
                unsafe { libc::kill(-(self.pid as libc::pid_t), sig) == 0 }
            }
            #[cfg(native_linux)]
            (Origin::Forked, Some(fd)) => {
                // SAFETY: pidfd_send_signal on a pidfd we own; no siginfo.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd.as_raw_fd(),
                        sig,
                        std::ptr::null::<libc::siginfo_t>(),
                        0u32,
                    ) == 0
                }
            }
            _ => false,
        }
    }

    /// Kills the process (a spawned launcher's whole group; a forked
    /// session's supervisor, whose death ends its pid namespace). A spawned
    /// one is reaped, waiting at most `KILL_WAIT` (a process still not gone
    /// by then is reaped later); a forked one is its zygote's to reap, and
    /// waited for (as long) only with `wait_forked`.
    pub fn kill(&mut self, reported: Option<ExitReport>, wait_forked: bool) {
        reap_stragglers();
        if self.exit.is_some() {
            return;
        }
        self.signal_group(libc::SIGKILL);
        #[cfg(native_linux)]
        if !wait_forked && matches!(self.origin, Origin::Forked) && self.reap(reported).is_none() {
            // Its zygote reaps it: nothing to wait for here (a session's
            // namespaces take milliseconds to tear down).
            self.exit = Some(KILLED);
            self.pidfd = None;
            return;
        }
        #[cfg(not(native_linux))]
        let _ = wait_forked;
        let deadline = Instant::now() + KILL_WAIT;
        match &self.pidfd {
            // Waits again after a signal interrupted the wait.
            Some(fd) => loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if sys::poll_one(fd.as_raw_fd(), libc::POLLIN, left.as_millis() as i32) != 0
                    || left.is_zero()
                {
                    break;
                }
            },
            // Without a pidfd (other systems, kernels before 5.3) only
            // reaping tells: tried again, a little later each time.
            None => {
                let mut pause = Duration::from_millis(1);
                while self.reap(reported).is_none() && Instant::now() < deadline {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
            }
        }
        if self.reap(reported).is_some() {
            return;
        }
        #[cfg_attr(not(native_linux), allow(irrefutable_let_patterns))]
        if let Origin::Spawned(child) = &mut self.origin {
            if let (Some(c), Ok(mut list)) = (child.take(), STRAGGLERS.lock()) {
                list.push(c);
            }
        }
        self.exit = Some(KILLED);
        self.pidfd = None;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill(None, false);
    }
}

#[cfg(native_linux)]
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open with a pid and no flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: pidfd_open returned a new fd that nothing else owns.
    Some(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as RawFd) })
}

/// The pid, in our pid namespace, of the process behind `pidfd`.
#[cfg(native_linux)]
fn host_pid_of(pidfd: &OwnedFd) -> Option<u32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(cmd: &mut Command) -> Process {
        Process::spawned(cmd.process_group(0).spawn().expect("spawn"))
    }

    #[cfg(native_linux)]
    #[test]
    fn exit_is_seen_through_the_pidfd_without_reaping() {
        let mut p = own(Command::new("sh").args(["-c", "exit 3"]));
        let fd = p.exit_fd().expect("pidfd");
        assert_ne!(sys::poll_one(fd, libc::POLLIN, 10_000), 0);
        assert!(p.has_exited());
        assert_eq!(p.collect(None), Some((Some(3), None)));
        assert_eq!(p.exit_fd(), None);
        assert!(!p.signal(libc::SIGTERM));
    }

    #[test]
    fn without_a_pidfd_exit_is_seen_by_reaping_and_kill_waits_for_it() {
        // What every child is on macOS (and on kernels before 5.3).
        let no_pidfd = |cmd: &mut Command| {
            let child = cmd.process_group(0).spawn().expect("spawn");
            Process {
                pid: child.id(),
                origin: Origin::Spawned(Some(child)),
                pidfd: None,
                exit: None,
            }
        };
        let mut p = no_pidfd(Command::new("sh").args(["-c", "exit 3"]));
        assert_eq!(p.exit_fd(), None);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !p.has_exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(p.collect(None), Some((Some(3), None)));
        let mut p = no_pidfd(Command::new("sleep").arg("300"));
        assert!(!p.has_exited());
        p.kill(None, false);
        assert_eq!(p.collect(None), Some(KILLED));
        // Reaped by the kill itself, not handed to the stragglers.
        assert!(matches!(p.origin, Origin::Spawned(Some(_))));
    }

    #[test]
    fn kill_ends_the_whole_group_and_does_not_linger() {
        // The group's leader starts a member that would outlive it.
        let mut p = own(Command::new("sh")
            .args(["-c", "sleep 300 & echo $! ; wait"])
            .stdout(Stdio::piped()));
        let mut out = String::new();
        if let Origin::Spawned(Some(c)) = &mut p.origin {
            use std::io::BufRead;
            let stdout = c.stdout.take().expect("stdout");
            std::io::BufReader::new(stdout)
                .read_line(&mut out)
                .expect("read");
        }
        let member: u32 = out.trim().parse().expect("pid of the member");
        p.kill(None, false);
        assert_eq!(p.collect(None), Some(KILLED));
        // Gone, or a zombie waiting for whoever adopted it.
        let gone = || {
            std::fs::read_to_string(format!("/proc/{member}/stat"))
                .map(|s| s.rsplit(") ").next().is_some_and(|r| r.starts_with('Z')))
                .unwrap_or(true)
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gone() && Instant::now() < deadline {
            reap_stragglers();
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(gone(), "the group member survived");
    }
}
