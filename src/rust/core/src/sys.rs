//! Small wrappers over system calls, each written once for the whole crate
//! (host, child, launcher, zygote and sandbox layers).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[cfg(native_linux)]
pub(crate) fn strerror(e: i32) -> String {
    std::io::Error::from_raw_os_error(e).to_string()
}

/// A path as a C string; EINVAL when it holds a NUL byte.
pub(crate) fn cpath(p: &Path) -> Result<CString, i32> {
    cstring(p.as_os_str().as_bytes()).ok_or(libc::EINVAL)
}

/// mount(2); `None` passes a null pointer where mount accepts one.
#[cfg(native_linux)]
pub(crate) fn mount(
    src: &str,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), i32> {
    let c = |s: &str| cstring(s.as_bytes()).ok_or(libc::EINVAL);
    let src = c(src)?;
    let target = cpath(target)?;
    let fstype = fstype.map(c).transpose()?;
    let data = data.map(c).transpose()?;
    // SAFETY: every pointer is a NUL-terminated string alive for the call,
    // or null where mount(2) accepts null.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data.as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr().cast()),
        )
    };
    if rc != 0 {
        return Err(errno());
    }
    Ok(())
}

/// A connected pair of stream sockets whose both ends close on exec (and,
/// on macOS, never raise SIGPIPE: see `SEND_FLAGS`).
pub(crate) fn socketpair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(native_linux)]
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    // Other systems have no SOCK_CLOEXEC: set below. (A fork by another
    // thread in between could inherit the pair; the host's R thread is the
    // only one that starts processes.)
    #[cfg(not(native_linux))]
    let kind = libc::SOCK_STREAM;
    let mut fds = [-1; 2];
    // SAFETY: `fds` is a valid array of two ints for socketpair to fill.
    let rc = unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded, so both fds are open and ours alone.
    let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&pair.0, &pair.1] {
        #[cfg(not(native_linux))]
        set_cloexec(fd.as_raw_fd())?;
        no_sigpipe(fd.as_raw_fd())?;
    }
    Ok(pair)
}

/// Flags for `send`/`sendmsg` on our sockets: a peer that is gone is an
/// error, never a SIGPIPE (R's handler for it would unwind through Rust
/// frames). macOS gets the same from `SO_NOSIGPIPE` on the socket
/// (`no_sigpipe`): its MSG_NOSIGNAL is recent.
#[cfg(not(target_vendor = "apple"))]
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(target_vendor = "apple")]
pub(crate) const SEND_FLAGS: libc::c_int = 0;

/// macOS: no SIGPIPE from writes to this socket (`SO_NOSIGPIPE`). The
/// option belongs to the socket, so it holds in every process the fd is
/// passed to. Elsewhere `SEND_FLAGS` does it per call.
pub(crate) fn no_sigpipe(fd: RawFd) -> std::io::Result<()> {
    #[cfg(target_vendor = "apple")]
    {
        let on: libc::c_int = 1;
        // SAFETY: setsockopt with a pointer to a live int and its size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_NOSIGPIPE,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_vendor = "apple"))]
    let _ = fd;
    Ok(())
}

/// Marks `fd` close-on-exec (where it could not be opened so).
#[cfg(not(native_linux))]
pub(crate) fn set_cloexec(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on an fd number with integer arguments only.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

pub(crate) fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on an fd number with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Waits up to `timeout_ms` (-1: forever) for `events` on one fd. Returns
/// the events that occurred (0 on timeout or interruption).
pub(crate) fn poll_one(fd: RawFd, events: libc::c_short, timeout_ms: i32) -> libc::c_short {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd for the duration of the call.
    if unsafe { libc::poll(&mut p, 1, timeout_ms) } > 0 {
        p.revents
    } else {
        0
    }
}

/// The lowest address the calling thread's stack may reach (for the main
/// thread, glibc derives it from the stack's mapping and its limit), or
/// `None` where that is not known.
pub(crate) fn stack_floor() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `attr` is initialised by pthread_getattr_np before it is read
    // and destroyed once; the out-pointers are valid locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        (ok && !addr.is_null()).then_some(addr as usize)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// Gives back memory that an idle process holds without using it; each
/// page comes back as a zero page when touched again:
/// - its stack below the caller's frame (less 16 KiB for the calls made
///   from there), down to `stack_floor`, the lowest address the stack may
///   reach: what the deepest evaluation left behind (an R session's code
///   runs ~370 KiB deep);
/// - the free pages inside malloc's heap.
pub(crate) fn release_unused(stack_floor: usize) {
    const KEEP: usize = 16 * 1024;
    // SAFETY: sysconf with a valid name.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    let top = here.saturating_sub(KEEP) & !(page - 1);
    let bottom = stack_floor.saturating_add(page - 1) & !(page - 1);
    if top > bottom {
        // SAFETY: [bottom, top) lies below this frame and the room kept for
        // the calls made from it, within the stack's limit: no live data
        // (the process has no other thread on this stack). Unmapped parts
        // make madvise report ENOMEM and are otherwise skipped.
        unsafe {
            libc::madvise(
                bottom as *mut libc::c_void,
                top - bottom,
                libc::MADV_DONTNEED,
            )
        };
    }
    #[cfg(target_env = "gnu")]
    // SAFETY: glibc's call; it releases only the pages of free chunks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Takes up, for good, the free chunks of malloc's heap (glibc), and
/// returns how many bytes they held. A process forked afterwards allocates
/// from fresh pages at the top of the heap instead of from free chunks
/// spread over the heap it shares with its parent, each of which it would
/// copy to use (and those of their neighbours in malloc's lists): in a
/// zygote's idle session that was ~0.5 MiB of R's heap and nearly all of
/// its supervisor's.
///
/// Each pass merges the free chunks and returns their whole pages to the
/// kernel first (`malloc_trim`), so what is taken holds little memory;
/// chunks within `SLACK` of the heap's end are left to the top chunk, where
/// allocations come from anyway. Passes go on until one takes nothing
/// (merging can make chunks an earlier pass could not take).
#[cfg(target_env = "gnu")]
pub(crate) fn take_up_free_heap() -> usize {
    const SLACK: usize = 512 * 1024;
    let mut taken = 0usize;
    for _ in 0..4 {
        // SAFETY: glibc's calls. The chunks taken are never written, used
        // or freed; one that came from the heap's end is freed at once.
        let pass = unsafe {
            libc::malloc_trim(0);
            let end = (libc::sbrk(0) as usize).saturating_sub(SLACK);
            // Largest first, each request taking the best-fitting chunk
            // (split if larger): 1 MiB down to 1 KiB by halves, then every
            // small-chunk size.
            let sizes = (0..=10)
                .map(|k| (1usize << 20) >> k)
                .chain((1..=63).rev().map(|k| k * 16));
            let mut pass = 0usize;
            for size in sizes {
                loop {
                    let p = libc::malloc(size);
                    if p.is_null() {
                        break;
                    }
                    if (p as usize).saturating_add(size) > end {
                        libc::free(p);
                        break;
                    }
                    pass += size;
                }
            }
            pass
        };
        taken += pass;
        if pass == 0 {
            break;
        }
    }
    taken
}

/// Awaits a reply by polling for a moment before sleeping (the host, after
/// each request).
///
/// A process asleep in poll() leaves its core idle, and an idle vCPU (or a
/// core in a deep idle state) takes tens of microseconds to wake: on the
/// 2-core development VM a round trip between two C processes took 47 us
/// with the cores idle and 12 us with them busy (bench/pingpong.c). A
/// reply due within a few hundred microseconds is seen sooner by a process
/// that stays runnable; it yields between polls. Only while the core has
/// nothing else to do: once the thread has been kept off its core for
/// `STOLEN` since the spin began (another task's time slice, which is
/// milliseconds; an interrupt or a kernel thread takes microseconds), it
/// stops, and does not spin again for a while. A spinning thread that
/// yields to a busy task waits out that task's time slice, where a
/// sleeping one is woken at once: each spin that finds the core busy
/// doubles the pause, up to `MAX_BACKOFF`, so that a core kept busy costs
/// that slice rarely.
#[derive(Debug, Default)]
pub(crate) struct Spinner {
    until: Option<std::time::Instant>,
    quiet_until: Option<std::time::Instant>,
    /// The pause after the last spin that found the core busy (zero once a
    /// spin ran without finding it so).
    backoff: std::time::Duration,
}

impl Spinner {
    /// How long after a message is sent its reply is awaited by polling.
    pub(crate) const SPIN: std::time::Duration = std::time::Duration::from_micros(250);
    /// How long a spin may be kept off its core before it counts the core
    /// as busy. (A rule of a share of the spin's time, three quarters,
    /// took the few microseconds of an interrupt early in a spin for a
    /// busy core, and stopped spinning for 50 ms or more: some sessions'
    /// round trips were a fifth slower than others'.)
    const STOLEN: std::time::Duration = std::time::Duration::from_micros(50);
    /// No spinning for this long after one found the core busy; twice as
    /// long after each further one, up to `MAX_BACKOFF`.
    const BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);
    const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(2);

    /// A message was sent: its reply is awaited by polling (unless the
    /// core was found busy lately).
    pub(crate) fn arm(&mut self) {
        let now = std::time::Instant::now();
        self.until = match self.quiet_until {
            Some(t) if now < t => None,
            _ => Some(now + Self::SPIN),
        };
    }

    /// A spin found the core busy: no spinning for twice as long as after
    /// the last such one (at least `BACKOFF`, at most `MAX_BACKOFF`).
    fn found_busy(&mut self, now: std::time::Instant) {
        self.backoff = (self.backoff * 2).clamp(Self::BACKOFF, Self::MAX_BACKOFF);
        self.quiet_until = Some(now + self.backoff);
    }

    /// Whether the next poll() spins.
    #[cfg(test)]
    pub(crate) fn armed(&self) -> bool {
        self.until.is_some()
    }

    /// Whether a spin that ran for `wall` and had `cpu` of it was kept off
    /// its core by another task.
    pub(crate) fn kept_off(wall: std::time::Duration, cpu: std::time::Duration) -> bool {
        wall.saturating_sub(cpu) > Self::STOLEN
    }

    /// Polls `fds` without blocking until one is ready, `end` passes or the
    /// spin is over; poll()'s result (0: none ready, and the caller sleeps
    /// in poll() for the rest of its wait). Once per arming.
    pub(crate) fn poll(
        &mut self,
        fds: &mut [libc::pollfd],
        end: std::time::Instant,
    ) -> libc::c_int {
        let start = std::time::Instant::now();
        let until = match self.until.take() {
            Some(t) if t > start && end > start => t.min(end),
            _ => return 0,
        };
        let cpu_start = thread_cpu();
        loop {
            // SAFETY: `fds` is a live slice of pollfd; a zero timeout never
            // blocks.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
            if n != 0 {
                self.backoff = std::time::Duration::ZERO;
                return n;
            }
            let now = std::time::Instant::now();
            let wall = now - start;
            // (The thread's CPU clock is a system call: read once it can
            // matter.)
            if wall > Self::STOLEN && Self::kept_off(wall, thread_cpu().saturating_sub(cpu_start)) {
                self.found_busy(now);
                return 0;
            }
            if now >= until {
                self.backoff = std::time::Duration::ZERO;
                return 0;
            }
            // SAFETY: sched_yield() takes no arguments and has no failure
            // that matters here.
            unsafe { libc::sched_yield() };
        }
    }
}

/// CPU time of the calling thread (zero if the clock is unavailable, which
/// ends a spin at its first check).
fn thread_cpu() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Sends all of `bytes` on a blocking socket; a peer that is gone is an
/// error (`SEND_FLAGS`).
pub(crate) fn send_all(fd: RawFd, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: pointer and length describe the live `bytes` slice.
        let n = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), SEND_FLAGS) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            match err.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => {
                    poll_one(fd, libc::POLLOUT, 1000);
                    continue;
                }
                _ => return Err(err),
            }
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// A C string of a path; `None` when it holds a NUL byte.
pub(crate) fn cstring(bytes: &[u8]) -> Option<CString> {
    CString::new(bytes).ok()
}

#[cfg(any(native_linux, test))]
/// A pipe whose both ends close on exec.
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), i32> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    #[cfg(native_linux)]
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    // Other systems have no pipe2: close-on-exec is set below (see
    // `socketpair`).
    // SAFETY: `fds` is a valid array of two ints for pipe to fill.
    #[cfg(not(native_linux))]
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    if rc != 0 {
        return Err(errno());
    }
    // SAFETY: the call succeeded, so both fds are open and owned by nobody
    // else.
    let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    #[cfg(not(native_linux))]
    for fd in [&pair.0, &pair.1] {
        set_cloexec(fd.as_raw_fd()).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    }
    Ok(pair)
}

pub(crate) fn write_all(fd: RawFd, mut bytes: &[u8]) -> Result<(), i32> {
    while !bytes.is_empty() {
        // SAFETY: pointer and length describe the live `bytes` slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

#[cfg(native_linux)]
/// Reads one byte; `None` at end of file or on error.
pub(crate) fn read_byte(fd: RawFd) -> Option<u8> {
    let mut b = 0u8;
    loop {
        // SAFETY: reads at most one byte into `b`.
        let n = unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
        if n == 1 {
            return Some(b);
        }
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        return None;
    }
}

#[cfg(native_linux)]
/// Reads up to a newline (not included), end of file or `max` bytes.
pub(crate) fn read_line(fd: RawFd, max: usize) -> Vec<u8> {
    let mut line = Vec::new();
    while line.len() < max {
        match read_byte(fd) {
            Some(b'\n') | None => break,
            Some(b) => line.push(b),
        }
    }
    line
}

#[cfg(native_linux)]
pub(crate) fn set_pdeathsig() -> Result<(), i32> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(errno());
    }
    Ok(())
}

#[cfg(native_linux)]
pub(crate) fn set_no_new_privs() -> Result<(), i32> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) };
    if rc != 0 {
        return Err(errno());
    }
    Ok(())
}

#[cfg(native_linux)]
pub(crate) fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in signals {
        // SAFETY: `set` is a valid sigset_t; invalid numbers only return EINVAL.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    set
}

#[cfg(native_linux)]
/// Blocks `set`, returning the previous mask.
pub(crate) fn block(set: &libc::sigset_t) -> Result<libc::sigset_t, i32> {
    // SAFETY: sigset_t is plain data, filled by sigprocmask.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to valid sigset_t values.
    if unsafe { libc::sigprocmask(libc::SIG_BLOCK, set, &mut old) } != 0 {
        return Err(errno());
    }
    Ok(old)
}

#[cfg(native_linux)]
pub(crate) fn set_mask(mask: &libc::sigset_t) {
    // SAFETY: `mask` is a valid sigset_t; the old mask is not wanted.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
}

#[cfg(native_linux)]
/// Waits for one of the (blocked) signals in `set`, at most `timeout`
/// (`None`: forever). `None` when the time ran out.
pub(crate) fn wait_signal(
    set: &libc::sigset_t,
    timeout: Option<std::time::Duration>,
) -> Option<libc::c_int> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    loop {
        // SAFETY: `set` is a valid sigset_t and `ts` a valid timespec or
        // null; no siginfo is requested.
        let s = unsafe {
            match &ts {
                Some(ts) => libc::sigtimedwait(set, std::ptr::null_mut(), ts),
                None => libc::sigwaitinfo(set, std::ptr::null_mut()),
            }
        };
        if s > 0 {
            return Some(s);
        }
        if errno() == libc::EAGAIN {
            return None;
        }
    }
}

pub(crate) fn set_default_handler(sig: libc::c_int) {
    // SAFETY: installs the default disposition; no handler code is involved.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// Rust's runtime ignores SIGPIPE, and ignored signals survive execve:
/// give R the default disposition back (a forked session, which does not
/// exec).
#[cfg(native_linux)]
pub(crate) fn default_sigpipe() {
    set_default_handler(libc::SIGPIPE);
}

/// Before execve: every signal's disposition back at its default. Ignored
/// signals survive execve: Rust's runtime ignores SIGPIPE, and a host
/// started in the background by a non-interactive shell ignores SIGINT
/// and SIGQUIT, which would leave the program deaf to interrupts (a shell
/// cannot even trap a signal ignored on entry). Handlers are reset by
/// execve anyway; only ignored signals change here.
pub(crate) fn default_signals() {
    // The classic signals (1-31 on Linux and macOS); real-time ones are
    // Linux only and never ignored by the host.
    for sig in 1..32 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            set_default_handler(sig);
        }
    }
}

#[cfg(native_linux)]
pub(crate) fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill with integer arguments; failure (process gone) is harmless.
    unsafe { libc::kill(pid, sig) };
}

#[cfg(native_linux)]
/// Waits for `pid` without blocking; `Some(raw status)` once it is gone.
pub(crate) fn try_wait(pid: libc::pid_t) -> Option<libc::c_int> {
    let mut status = 0;
    // SAFETY: `status` is a valid int for waitpid to fill.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r == pid {
        Some(status)
    } else if r < 0 && errno() == libc::ECHILD {
        Some(0)
    } else {
        None
    }
}

#[cfg(native_linux)]
/// Waits for `pid`, retrying on EINTR.
pub(crate) fn wait_blocking(pid: libc::pid_t) -> libc::c_int {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid int for waitpid to fill.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return status;
        }
        if r < 0 && errno() != libc::EINTR {
            return 0;
        }
    }
}

/// Closes every fd above 2 except those in `keep`.
pub(crate) fn close_fds_except(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep.iter().filter(|&&f| f > 2).map(|&f| f as u32).collect();
    keep.sort_unstable();
    let mut from: u32 = 3;
    for k in keep.into_iter().chain(std::iter::once(u32::MAX)) {
        if k > from {
            close_range(from, k - 1);
        }
        from = k.saturating_add(1);
    }
}

/// Closes the fds `from..=to`.
fn close_range(from: u32, to: u32) {
    #[cfg(native_linux)]
    {
        // SAFETY: close_range only closes fds; no memory is passed.
        if unsafe { libc::syscall(libc::SYS_close_range, from, to, 0u32) } == 0 {
            return;
        }
    }
    // Kernels before 5.9, other systems: one by one, up to the highest fd
    // this process may hold (bounded).
    for fd in from..=to.min(max_fd()) {
        // SAFETY: closing an fd number this process owns.
        unsafe { libc::close(fd as RawFd) };
    }
}

/// The highest fd number worth closing: 65535 (as high as fds go unless
/// the open files limit was raised), or below that limit, up to 2^20.
fn max_fd() -> u32 {
    // SAFETY: rlimit is plain data, filled by getrlimit.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a live rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let limit = if rc != 0 { 0 } else { lim.rlim_cur };
    (limit.clamp(1 << 16, 1 << 20) - 1) as u32
}

#[cfg(native_linux)]
/// True when the other end of the pipe `fd` is gone.
pub(crate) fn peer_gone(fd: &OwnedFd) -> bool {
    poll_one(fd.as_raw_fd(), libc::POLLIN, 0) & (libc::POLLHUP | libc::POLLERR) != 0
}

#[cfg(native_linux)]
/// The children that have exited, reaped one by one without blocking:
/// `(pid, wait status)`.
pub(crate) fn reaped() -> impl Iterator<Item = (libc::pid_t, libc::c_int)> {
    std::iter::from_fn(|| {
        let mut status = 0;
        // SAFETY: `status` is a valid int for waitpid to fill.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        (pid > 0).then_some((pid, status))
    })
}

/// Makes `to` a copy of `from` that survives exec (`from` may equal `to`).
pub(crate) fn install_fd(from: RawFd, to: RawFd) -> Result<(), i32> {
    // dup2 onto itself would keep FD_CLOEXEC: clear it explicitly then.
    // SAFETY: fcntl/dup2 on fd numbers; results are checked.
    let rc = unsafe {
        if from == to {
            libc::fcntl(to, libc::F_SETFD, 0)
        } else {
            libc::dup2(from, to)
        }
    };
    if rc < 0 {
        return Err(errno());
    }
    Ok(())
}

#[cfg(native_linux)]
/// Sets this process's name (what `ps` shows; `comm`, at most 15 bytes).
pub(crate) fn set_name(name: &std::ffi::CStr) {
    // SAFETY: prctl with a valid NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

#[cfg(native_linux)]
pub(crate) fn set_dumpable(on: bool) {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong, 0, 0, 0) };
}

#[cfg(native_linux)]
/// Ends this process as the wait status `status` says: same exit code, or
/// death by the same signal (without a core file).
pub(crate) fn mirror(status: libc::c_int) -> ! {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid rlimit struct; failure only means a core file
        // may be written.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
        set_dumpable(false);
        set_default_handler(sig);
        set_mask(&sigset(&[]));
        // SAFETY: getpid cannot fail.
        kill(unsafe { libc::getpid() }, sig);
        exit_now(128 + sig)
    }
    if libc::WIFEXITED(status) {
        exit_now(libc::WEXITSTATUS(status))
    }
    exit_now(1)
}

#[cfg(native_linux)]
pub(crate) fn describe_status(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exit status {}", libc::WEXITSTATUS(status))
    }
}

/// Ends the process at once, without unwinding or atexit handlers.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
#[path = "sys_tests.rs"]
mod tests;
