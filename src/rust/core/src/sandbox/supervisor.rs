//! The session's supervisor: limits on the whole session, all its processes
//! together, which setrlimit (per process) cannot give. It runs outside the
//! session's confinement and stops the session when one is passed:
//!
//! * memory: the resident memory of the session's processes (their RSS;
//!   once that passes the limit, their PSS, so that pages shared after a
//!   fork count once) plus, in a session's own IPC namespace, its SysV
//!   shared memory;
//! * processes: the session's tasks (threads included, as RLIMIT_NPROC and
//!   cgroups count them);
//! * the fallback tier's temporary folder: bytes and entries (see `tree`).
//!
//! It is the init of the session's pid namespace (full tier, forked
//! sessions), or the parent of R where there is no pid namespace (fallback
//! tier, no sandbox): a child subreaper then, so that no descendant leaves
//! its tree. Checks run every `TICK`, less often when a check is costly
//! (a host with many processes, a folder with many files): a check never
//! takes more than about 1/`COST_SHARE` of a core.
//!
//! When R ends, the supervisor ends the rest of the session, tells the host
//! how R ended (and which limit stopped it) and exits the same way.

use super::cgroup::Cgroup;
use super::namespaces::FORWARDED;
use crate::policy::{ExitReport, LaunchFailure, Layer, Limits, SessionLimit};
use crate::report;
use crate::sys;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// How often the session's processes are measured.
const TICK: Duration = Duration::from_millis(100);
/// How often the temporary folder is measured, at most.
const TMP_TICK: Duration = Duration::from_millis(500);
/// The longest wait between two checks, however costly they are.
const MAX_WAIT: Duration = Duration::from_secs(2);
/// A check may take 1/COST_SHARE of the time between two checks.
const COST_SHARE: u32 = 20;
/// Failed walks of the temporary folder in a row (it is being moved
/// around under the walk) that count as passing its quota.
const MAX_TMP_FAILURES: u32 = 3;

/// The fallback tier's temporary folder and its quota.
pub(crate) struct Quota {
    pub dir: OwnedFd,
    pub bytes: u64,
    pub inodes: u64,
}

impl Quota {
    /// The quota of a folder standing for a `tmp_size` tmpfs: the same
    /// number of entries as the tmpfs would have.
    pub fn new(dir: OwnedFd, tmp_size: u64) -> Quota {
        Quota {
            dir,
            bytes: tmp_size,
            inodes: super::plan::tmp_inodes(tmp_size),
        }
    }
}

/// What the supervisor enforces.
#[derive(Default)]
pub(crate) struct Budget {
    pub memory: Option<u64>,
    pub tasks: Option<u64>,
    pub tmp: Option<Quota>,
    /// Count the SysV shared memory of the session's own IPC namespace.
    pub sysv: bool,
}

impl Budget {
    pub fn new(limits: &Limits) -> Budget {
        Budget {
            memory: limits.memory,
            tasks: limits.nproc,
            tmp: None,
            sysv: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.tasks.is_none() && self.tmp.is_none()
    }

    /// What is enforced, for the report ("" when nothing).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.memory {
            parts.push(format!("memory {m} bytes"));
        }
        if let Some(t) = self.tasks {
            parts.push(format!("{t} processes"));
        }
        if let Some(q) = &self.tmp {
            parts.push(format!(
                "temporary folder {} bytes and {} entries",
                q.bytes, q.inodes
            ));
        }
        parts.join(", ")
    }
}

/// One process as /proc/<pid>/stat shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Proc {
    pid: i32,
    ppid: i32,
    state: u8,
    threads: u64,
    rss_pages: u64,
}

/// Parses /proc/<pid>/stat. The command name (field 2) may hold spaces and
/// parentheses, so the fields are counted from its last ')'.
fn parse_stat(text: &str) -> Option<Proc> {
    let (head, rest) = text.rsplit_once(')')?;
    let pid = head.split_once(" (")?.0.trim().parse().ok()?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): field n is f[n - 3].
    Some(Proc {
        pid,
        state: *f.first()?.as_bytes().first()?,
        ppid: f.get(1)?.parse().ok()?,
        threads: f.get(17)?.parse().ok()?,
        rss_pages: f.get(21)?.parse().ok()?,
    })
}

fn scan() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let name = e.ok()?.file_name();
        let pid: i32 = name.to_str()?.parse().ok()?;
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_stat(&text)
    })
    .collect()
}

/// The live descendants of `root` among `all` (zombies are done).
fn descendants(all: &[Proc], root: i32) -> Vec<Proc> {
    let mut out: Vec<Proc> = Vec::new();
    let mut parents = vec![root];
    while let Some(p) = parents.pop() {
        for c in all.iter().filter(|c| c.ppid == p && c.pid != root) {
            if out.iter().any(|o| o.pid == c.pid) {
                continue;
            }
            parents.push(c.pid);
            if !matches!(c.state, b'Z' | b'X' | b'x') {
                out.push(*c);
            }
        }
    }
    out
}

/// Proportional set size of a process in bytes (its share of each page).
fn pss(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Resident bytes of the SysV shared memory segments in /proc/sysvipc/shm
/// (this IPC namespace's): segments hold memory even when no process maps
/// them.
fn parse_sysv_shm(text: &str) -> u64 {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return 0;
    };
    let Some(col) = header.split_whitespace().position(|h| h == "rss") else {
        return 0;
    };
    lines
        .filter_map(|l| l.split_whitespace().nth(col)?.parse::<u64>().ok())
        .sum()
}

fn page_size() -> u64 {
    // SAFETY: sysconf with a constant name.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// The next check, no sooner than `min` and `COST_SHARE` times what the
/// last one cost, no later than `MAX_WAIT`.
fn next_after(now: Instant, cost: Duration, min: Duration) -> Instant {
    now + min.max(cost * COST_SHARE).min(MAX_WAIT)
}

pub(crate) struct Supervisor {
    budget: Budget,
    page: u64,
    next_procs: Instant,
    next_tmp: Instant,
    tmp_failures: u32,
}

impl Supervisor {
    pub fn new(budget: Budget) -> Supervisor {
        let now = Instant::now();
        Supervisor {
            budget,
            page: page_size(),
            next_procs: now + TICK,
            next_tmp: now + TMP_TICK,
            tmp_failures: 0,
        }
    }

    /// How long until the next check is due; `None` when there is nothing
    /// to check.
    pub fn wait(&self) -> Option<Duration> {
        let procs = (self.budget.memory.is_some() || self.budget.tasks.is_some())
            .then_some(self.next_procs);
        let tmp = self.budget.tmp.as_ref().map(|_| self.next_tmp);
        let next = procs.into_iter().chain(tmp).min()?;
        Some(next.saturating_duration_since(Instant::now()))
    }

    /// Runs the checks that are due: the limit passed, if any.
    pub fn check(&mut self) -> Option<SessionLimit> {
        if Instant::now() >= self.next_procs {
            // The pace follows the cost of listing the host's processes
            // (many on a busy host); not that of measuring a session that
            // is near its limit, when the next check matters most.
            let started = Instant::now();
            let procs = descendants(&scan(), own_pid());
            let cost = started.elapsed();
            let over = self.check_procs(&procs);
            self.next_procs = next_after(Instant::now(), cost, TICK);
            if over.is_some() {
                return over;
            }
        }
        let now = Instant::now();
        if self.budget.tmp.is_some() && now >= self.next_tmp {
            let over = self.check_tmp();
            self.next_tmp = next_after(Instant::now(), now.elapsed(), TMP_TICK);
            return over;
        }
        None
    }

    fn check_procs(&self, procs: &[Proc]) -> Option<SessionLimit> {
        if let Some(max) = self.budget.tasks {
            if procs.iter().map(|p| p.threads.max(1)).sum::<u64>() > max {
                return Some(SessionLimit::Nproc);
            }
        }
        let max = self.budget.memory?;
        let shm = if self.budget.sysv {
            std::fs::read_to_string("/proc/sysvipc/shm")
                .map(|t| parse_sysv_shm(&t))
                .unwrap_or(0)
        } else {
            0
        };
        let rss: u64 = procs.iter().map(|p| p.rss_pages * self.page).sum();
        if rss.saturating_add(shm) <= max {
            return None;
        }
        // RSS counts a page shared by several processes (R forks) in each
        // of them; PSS divides it among them.
        let pss: u64 = procs
            .iter()
            .map(|p| pss(p.pid).unwrap_or(p.rss_pages * self.page))
            .sum();
        (pss.saturating_add(shm) > max).then_some(SessionLimit::Memory)
    }

    fn check_tmp(&mut self) -> Option<SessionLimit> {
        let q = self.budget.tmp.as_ref()?;
        match crate::tree::measure(q.dir.as_raw_fd()) {
            Ok(u) => {
                self.tmp_failures = 0;
                let bytes = u
                    .bytes
                    .saturating_add(unlinked_open_bytes(q.dir.as_raw_fd()));
                (bytes > q.bytes || u.inodes > q.inodes).then_some(SessionLimit::TmpSize)
            }
            Err(crate::tree::TreeError::Moved) => {
                self.tmp_failures += 1;
                (self.tmp_failures >= MAX_TMP_FAILURES).then_some(SessionLimit::TmpSize)
            }
            Err(_) => None,
        }
    }
}

fn own_pid() -> libc::pid_t {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

/// Bytes of the files on `dir`'s filesystem that the session's processes
/// hold open after removing them: no walk of the folder sees them.
fn unlinked_open_bytes(dir: RawFd) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(dev) = std::fs::metadata(format!("/proc/self/fd/{dir}")).map(|m| m.dev()) else {
        return 0;
    };
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    for p in descendants(&scan(), own_pid()) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", p.pid)) else {
            continue;
        };
        for fd in fds.flatten() {
            // metadata() follows the fd's link to the open file itself.
            let Ok(m) = std::fs::metadata(fd.path()) else {
                continue;
            };
            if m.nlink() == 0 && m.dev() == dev && m.is_file() && seen.insert(m.ino()) {
                total = total.saturating_add(m.blocks().saturating_mul(512));
            }
        }
    }
    total
}

/// Kills every descendant of this process, until none is left (they may be
/// forking while we kill). Returns `r_pid`'s wait status if it was reaped
/// on the way.
fn kill_descendants(r_pid: libc::pid_t) -> Option<libc::c_int> {
    let mut r_status = None;
    for _ in 0..10_000 {
        let left = descendants(&scan(), own_pid());
        for p in &left {
            sys::kill(p.pid, libc::SIGKILL);
        }
        for (pid, status) in sys::reaped() {
            if pid == r_pid {
                r_status = Some(status);
            }
        }
        if left.is_empty() {
            break;
        }
    }
    r_status
}

/// Ends the session: in a pid namespace of its own, one signal reaches all
/// of it (init reaps them as they go); otherwise its processes are hunted
/// down and reaped, R's wait status returned if it was among them.
fn stop(own_pid_ns: bool, r_pid: libc::pid_t) -> Option<libc::c_int> {
    if own_pid_ns {
        // From the namespace's init, -1 means every other process in it.
        sys::kill(-1, libc::SIGKILL);
        None
    } else {
        kill_descendants(r_pid)
    }
}

/// How the session's supervisor sits.
pub(crate) struct Post {
    /// R's pid.
    pub r_pid: libc::pid_t,
    /// The supervisor is the init of the session's pid namespace.
    pub own_pid_ns: bool,
    /// Pass the `FORWARDED` signals on to R (they do not reach it by
    /// themselves: the host signals a process group R is not in).
    pub forward: bool,
    /// fds to keep open (above stdio); the others are closed.
    pub keep: Vec<RawFd>,
    /// The session's cgroup, where the kernel enforces its limits: read
    /// (which limit stopped R?) and removed once R is gone.
    pub cgroup: Option<Cgroup>,
}

/// The supervisor's loop. `set` holds `FORWARDED` and SIGCHLD, blocked.
/// Once R is gone: ends the rest of the session, calls `report` with R's
/// wait status and the limit passed (if any), and exits the way R did.
pub(crate) fn run(
    mut post: Post,
    budget: Budget,
    set: &libc::sigset_t,
    report: impl Fn(libc::c_int, Option<SessionLimit>),
) -> ! {
    let mut keep = post.keep.clone();
    keep.extend(post.cgroup.as_ref().map(Cgroup::fd));
    sys::close_fds_except(&keep);
    // The supervisor is outside the session's Landlock domain and seccomp
    // filter: keep the session from its memory and /proc files even where
    // those layers are missing (ptrace access then needs CAP_SYS_PTRACE).
    sys::set_dumpable(false);
    let mut sup = Supervisor::new(budget);
    let mut passed = None;
    let mut r_status = None;
    while r_status.is_none() {
        // Once a limit is passed, only R's end is awaited.
        let wait = if passed.is_some() { None } else { sup.wait() };
        match sys::wait_signal(set, wait) {
            None => {
                passed = sup.check();
                if passed.is_some() {
                    r_status = stop(post.own_pid_ns, post.r_pid);
                }
            }
            Some(libc::SIGCHLD) => {
                for (pid, status) in sys::reaped() {
                    if pid == post.r_pid {
                        r_status = Some(status);
                    }
                }
            }
            Some(sig) => {
                if post.forward {
                    sys::kill(post.r_pid, sig);
                }
            }
        }
    }
    let status = r_status.unwrap_or(0);
    // What R left behind goes with it.
    stop(post.own_pid_ns, post.r_pid);
    let cgroup = post.cgroup.take();
    report(status, passed.or_else(|| cgroup.as_ref()?.passed()));
    drop(cgroup);
    sys::mirror(status)
}

/// Outside a pid namespace: forks the session's supervisor, which stays in
/// this process (the host's child, whose process group the host signals),
/// and returns in the child, which goes on to confine itself and exec R.
pub(crate) fn fork(
    ipc_fd: RawFd,
    budget: Budget,
    cgroup: Option<Cgroup>,
) -> Result<(), LaunchFailure> {
    sys::set_default_handler(libc::SIGCHLD);
    let mut waited: Vec<libc::c_int> = FORWARDED.to_vec();
    waited.push(libc::SIGCHLD);
    let set = sys::sigset(&waited);
    let old_mask =
        sys::block(&set).map_err(|e| LaunchFailure::os(Layer::Supervisor, "sigprocmask", e))?;
    // Orphans of the session become the supervisor's children, not init's:
    // it can count them and end them.
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(LaunchFailure::os(
            Layer::Supervisor,
            "PR_SET_CHILD_SUBREAPER",
            sys::errno(),
        ));
    }
    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() };
    // SAFETY: the launcher is single-threaded.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(LaunchFailure::os(
            Layer::Supervisor,
            "cannot fork the session",
            sys::errno(),
        ));
    }
    if pid == 0 {
        // SAFETY: getppid cannot fail.
        if sys::set_pdeathsig().is_err() || unsafe { libc::getppid() } != me {
            sys::exit_now(1);
        }
        sys::set_mask(&old_mask);
        if let Some(cg) = cgroup {
            if let Err(e) = cg.add(0) {
                report::fail(
                    ipc_fd,
                    LaunchFailure::new(
                        Layer::Cgroup,
                        format!("cannot join the session's cgroup: {e}"),
                        e.raw_os_error(),
                    ),
                );
            }
            // The supervisor removes it; this process execs R.
            std::mem::forget(cg);
        }
        return Ok(());
    }
    let mut keep = vec![ipc_fd];
    keep.extend(budget.tmp.as_ref().map(|q| q.dir.as_raw_fd()));
    let post = Post {
        r_pid: pid,
        own_pid_ns: false,
        // The host signals the launcher's process group, which R is in.
        forward: false,
        keep,
        cgroup,
    };
    run(post, budget, &set, |status, limit| {
        report::exit(ipc_fd, &ExitReport::from_wait_status(status, limit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32, state: u8) -> Proc {
        Proc {
            pid,
            ppid,
            state,
            threads: 1,
            rss_pages: 1,
        }
    }

    #[test]
    fn stat_lines_parse_whatever_the_command_name() {
        let line = "4242 (a) b) (c) S 17 4242 4242 0 -1 4194560 300 0 0 0 1 2 0 0 20 0 3 0 \
                    12345 1000000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let got = parse_stat(line).unwrap();
        assert_eq!(
            got,
            Proc {
                pid: 4242,
                ppid: 17,
                state: b'S',
                threads: 3,
                rss_pages: 250
            }
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let me = parse_stat(&own).unwrap();
        assert_eq!(me.pid as u32, std::process::id());
        assert!(me.threads >= 1 && me.rss_pages > 0);
    }

    #[test]
    fn descendants_follow_parents_and_skip_zombies_and_others() {
        let all = [
            p(10, 1, b'S'),
            p(11, 10, b'R'),
            p(12, 11, b'Z'),
            p(13, 12, b'S'),
            p(20, 1, b'S'),
            p(21, 20, b'S'),
        ];
        let got: Vec<i32> = descendants(&all, 10).iter().map(|p| p.pid).collect();
        assert_eq!(got, vec![11, 13]);
        assert!(descendants(&all, 13).is_empty());
    }

    #[test]
    fn sysv_segments_count_their_resident_bytes() {
        let text = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  \
                    cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
                    0 3 600 1048576 10 10 0 0 0 0 0 0 0 0 65536 0\n\
                    0 4 600 1048576 10 10 0 0 0 0 0 0 0 0 4096 0\n";
        assert_eq!(parse_sysv_shm(text), 65536 + 4096);
        assert_eq!(parse_sysv_shm(""), 0);
        assert_eq!(parse_sysv_shm("no columns\n1 2 3\n"), 0);
    }

    #[test]
    fn checks_slow_down_when_they_are_costly() {
        let t = Instant::now();
        assert_eq!(next_after(t, Duration::from_millis(1), TICK), t + TICK);
        assert_eq!(
            next_after(t, Duration::from_millis(30), TICK),
            t + Duration::from_millis(600)
        );
        assert_eq!(next_after(t, Duration::from_secs(1), TICK), t + MAX_WAIT);
    }

    #[test]
    fn an_empty_budget_never_wakes_the_supervisor() {
        let s = Supervisor::new(Budget::default());
        assert_eq!(s.wait(), None);
        let s = Supervisor::new(Budget {
            tasks: Some(4),
            ..Budget::default()
        });
        assert!(s.wait().unwrap() <= TICK);
    }

    #[test]
    fn this_process_is_within_its_own_budget() {
        let mut s = Supervisor::new(Budget {
            memory: Some(1 << 40),
            tasks: Some(1 << 20),
            ..Budget::default()
        });
        s.next_procs = Instant::now();
        assert_eq!(s.check(), None);
    }
}
