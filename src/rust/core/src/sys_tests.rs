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
