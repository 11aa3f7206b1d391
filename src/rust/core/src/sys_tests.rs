use super::*;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn readable(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[test]
fn an_armed_spinner_sees_a_reply_already_there() {
    let (a, b) = socketpair().expect("socketpair");
    send_all(b.as_raw_fd(), b"x").expect("write");
    let mut spin = Spinner::default();
    spin.arm();
    let mut p = [readable(a.as_raw_fd())];
    assert_eq!(spin.poll(&mut p, far()), 1);
    assert_ne!(p[0].revents & libc::POLLIN, 0);
}

#[test]
fn a_spinner_polls_once_per_arming_and_never_past_the_wait() {
    let (a, b) = socketpair().expect("socketpair");
    send_all(b.as_raw_fd(), b"x").expect("write");
    let mut p = [readable(a.as_raw_fd())];
    // Control: armed, it finds the byte.
    let mut spin = Spinner::default();
    spin.arm();
    assert_eq!(spin.poll(&mut p, far()), 1);
    // Its arming is spent: the caller sleeps in poll() instead.
    assert_eq!(spin.poll(&mut p, far()), 0);
    // Never armed, or a wait already over: no polling at all.
    assert_eq!(Spinner::default().poll(&mut p, far()), 0);
    let mut spin = Spinner::default();
    spin.arm();
    assert_eq!(spin.poll(&mut p, Instant::now()), 0);
}

#[test]
fn a_spin_without_a_reply_ends_within_its_moment() {
    let (a, _b) = socketpair().expect("socketpair");
    let mut p = [readable(a.as_raw_fd())];
    let mut spin = Spinner::default();
    spin.arm();
    let cpu = thread_cpu();
    assert_eq!(spin.poll(&mut p, far()), 0);
    // 250 us of polling, not the 10 s the caller would wait: CPU time,
    // which a busy machine does not stretch.
    assert!(thread_cpu() - cpu < Duration::from_millis(100));
}

// Another thread busy on this thread's core: the spin stops, and the next
// arming does not spin.
#[cfg(target_os = "linux")]
#[test]
fn a_spin_that_takes_the_core_from_another_task_stops_and_backs_off() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    fn pin(cpu: usize) {
        // SAFETY: `set` is a zeroed cpu_set_t filled by CPU_SET; 0 is the
        // calling thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            assert_eq!(
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
                0
            );
        }
    }
    // SAFETY: sched_getcpu() takes no arguments.
    let cpu = unsafe { libc::sched_getcpu() };
    assert!(cpu >= 0);
    let cpu = cpu as usize;
    pin(cpu);
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            pin(cpu);
            while !stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
    };
    // Until the busy thread runs on the core.
    std::thread::sleep(Duration::from_millis(20));
    let (a, _b) = socketpair().expect("socketpair");
    let mut p = [readable(a.as_raw_fd())];
    let mut spin = Spinner::default();
    spin.arm();
    assert!(spin.until.is_some());
    assert_eq!(spin.poll(&mut p, far()), 0);
    spin.arm();
    let backed_off = spin.until.is_none();
    stop.store(true, Ordering::Relaxed);
    busy.join().expect("busy thread");
    assert!(backed_off, "the spin did not notice the busy thread");
    // Control: alone on the core, it spins again once the back-off is over.
    spin.quiet_until = Some(Instant::now());
    spin.arm();
    assert!(spin.until.is_some());
}

// Up to 50 us off the core (an interrupt, a kernel thread) are not
// a busy core; another task's time slice is. (The rule before took 10 us
// off a 30 us spin for a busy core, and stopped spinning for 50 ms.)
#[test]
fn only_a_time_slice_taken_by_another_task_counts_as_a_busy_core() {
    let us = Duration::from_micros;
    assert!(!Spinner::kept_off(us(30), us(20)));
    assert!(!Spinner::kept_off(us(250), us(240)));
    assert!(!Spinner::kept_off(us(20), us(0)));
    assert!(Spinner::kept_off(us(3000), us(40)));
    assert!(Spinner::kept_off(us(100), us(40)));
    assert!(!Spinner::kept_off(us(100), us(60)));
}

// Each spin that finds the core busy pauses spinning twice as long as the
// last, up to a cap; one that does not resets the pause.
#[test]
fn spins_that_keep_finding_the_core_busy_pause_longer_each_time() {
    let (a, b) = socketpair().expect("socketpair");
    let mut p = [readable(a.as_raw_fd())];
    let mut spin = Spinner::default();
    let mut pauses = Vec::new();
    for _ in 0..8 {
        let now = Instant::now();
        spin.found_busy(now);
        assert_eq!(spin.quiet_until, Some(now + spin.backoff));
        spin.arm();
        assert!(!spin.armed());
        pauses.push(spin.backoff);
    }
    assert_eq!(pauses[0], Spinner::BACKOFF);
    assert_eq!(pauses[1], Spinner::BACKOFF * 2);
    assert_eq!(pauses[2], Spinner::BACKOFF * 4);
    assert_eq!(pauses[7], Spinner::MAX_BACKOFF);
    // A spin that finds its reply resets the pause.
    send_all(b.as_raw_fd(), b"x").expect("write");
    spin.quiet_until = None;
    spin.arm();
    assert_eq!(spin.poll(&mut p, far()), 1);
    assert_eq!(spin.backoff, Duration::ZERO);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_stack_floor_lies_below_the_caller_within_its_stack() {
    let here = 0u8;
    let here = std::hint::black_box(&here) as *const u8 as usize;
    let floor = stack_floor().expect("this thread's stack bounds");
    assert!(floor < here);
    // A test thread's stack is a few MiB; a main thread's is its limit.
    assert!(here - floor < 1 << 30, "{:#x} below {:#x}", floor, here);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn releasing_the_stack_keeps_the_caller_s_frames_and_the_stack_usable() {
    // In a thread of its own, so that no other test's frames are below.
    std::thread::spawn(|| {
        fn deep(n: usize) -> u64 {
            let buf = std::hint::black_box([n as u8; 4096]);
            if n == 0 {
                buf[0] as u64
            } else {
                deep(n - 1) + buf[0] as u64
            }
        }
        let kept = std::hint::black_box([7u8; 256]);
        assert_eq!(deep(64), (0..=64).sum::<u64>());
        release_unused(stack_floor().expect("this thread's stack bounds"));
        assert!(kept.iter().all(|&b| b == 7));
        // The stack still works after its unused pages went.
        assert_eq!(deep(64), (0..=64).sum::<u64>());
    })
    .join()
    .expect("the thread ran");
}
