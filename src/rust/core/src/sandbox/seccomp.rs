//! Layer 4: a seccomp filter (seccompiler), installed last.
//!
//! Every tier:
//!
//! * EPERM: debugging/other processes' memory, mounting, namespaces,
//!   kernel modules and kexec, bpf, perf, keyrings, io_uring, userfaultfd,
//!   file handles, reboot/swap/acct/quotas, chroot, the kernel log, LSM
//!   attributes, TIOCSTI/TIOCLINUX, clone() with any namespace flag, and
//!   personality() flags other than Linux's own (ADDR_NO_RANDOMIZE, ...);
//! * ENOSYS: clone3 (its flags live in memory a filter cannot read; glibc
//!   falls back to clone); inotify and fanotify (watching the host's files
//!   on read-only binds, exhausting the user's inotify instances, which
//!   the host shares); memfd_create (memory no process maps, which the
//!   session's supervisor could not count);
//! * EAFNOSUPPORT: socket()/socketpair() of any family but AF_UNIX.
//!
//! The fallback tier shares the host's pids, IPC, network and filesystem,
//! so its filter also covers what the namespaces cover elsewhere and
//! Landlock does not:
//!
//! * other processes: prlimit64, setpriority, sched_set*, ioprio_set,
//!   migrate_pages, move_pages and get_robust_list only on the caller
//!   itself (pid 0 or R's own); pidfd_open -> ENOSYS; signals outside the
//!   session are Landlock's (scoped signals, ABI 6), and without that
//!   scoping kill and friends reach only R itself;
//! * file metadata Landlock has no right for: chmod, chown and utime
//!   families, extended attributes, chattr's ioctls, file_setattr;
//! * SysV IPC and POSIX message queues (the host's);
//! * UNIX sockets: connect() (Landlock before ABI 9 does not check a
//!   socket's path, e.g. /var/run/docker.sock), datagram sockets (which
//!   send to a path without connecting), bind() (abstract names the host's
//!   programs would use could be taken over);
//! * O_TMPFILE opens and openat2 (files outside the folder quota's sight);
//! * setsid(), and setpgid() to any group but the session's: the host
//!   stops a session by killing its process group, which no process of the
//!   session may leave (processx ignores a failed setsid()).
//!
//! Syscalls of another ABI (i386 on x86_64) kill the process; x32 calls
//! get ENOSYS. Other architectures: reported inactive.

use crate::policy::{LaunchFailure, Layer, LayerState};

/// What the filter is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    /// In namespaces of the session's own.
    Namespaced,
    /// Sharing the host's namespaces: `pid` is R's (the caller's, kept
    /// across execve), `pgid` the process group the host kills to stop the
    /// session; `signals_scoped`: Landlock keeps signals inside the
    /// session.
    Fallback {
        pid: u32,
        pgid: u32,
        signals_scoped: bool,
    },
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod filter {
    use super::Tier;
    use crate::policy::{LaunchFailure, Layer};
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    use std::collections::BTreeMap;

    #[cfg(target_arch = "x86_64")]
    const ARCH: TargetArch = TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    const ARCH: TargetArch = TargetArch::aarch64;

    // Syscalls newer than the libc crate knows; numbers from 424 on are
    // the same on every architecture.
    const SYS_LSM_SET_SELF_ATTR: libc::c_long = 460;
    const SYS_SETXATTRAT: libc::c_long = 463;
    const SYS_REMOVEXATTRAT: libc::c_long = 466;
    const SYS_OPEN_TREE_ATTR: libc::c_long = 467;
    const SYS_FILE_SETATTR: libc::c_long = 469;

    /// Denied outright with EPERM, in every tier.
    pub(super) const DENIED: &[(&str, libc::c_long)] = &[
        ("ptrace", libc::SYS_ptrace),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        ("process_madvise", libc::SYS_process_madvise),
        ("process_mrelease", libc::SYS_process_mrelease),
        ("pidfd_getfd", libc::SYS_pidfd_getfd),
        ("kcmp", libc::SYS_kcmp),
        ("mount", libc::SYS_mount),
        ("umount2", libc::SYS_umount2),
        ("pivot_root", libc::SYS_pivot_root),
        ("chroot", libc::SYS_chroot),
        ("fsopen", libc::SYS_fsopen),
        ("fsconfig", libc::SYS_fsconfig),
        ("fsmount", libc::SYS_fsmount),
        ("fspick", libc::SYS_fspick),
        ("open_tree", libc::SYS_open_tree),
        ("open_tree_attr", SYS_OPEN_TREE_ATTR),
        ("move_mount", libc::SYS_move_mount),
        ("mount_setattr", libc::SYS_mount_setattr),
        ("unshare", libc::SYS_unshare),
        ("setns", libc::SYS_setns),
        ("kexec_load", libc::SYS_kexec_load),
        ("kexec_file_load", libc::SYS_kexec_file_load),
        ("init_module", libc::SYS_init_module),
        ("finit_module", libc::SYS_finit_module),
        ("delete_module", libc::SYS_delete_module),
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("keyctl", libc::SYS_keyctl),
        ("add_key", libc::SYS_add_key),
        ("request_key", libc::SYS_request_key),
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("io_uring_enter", libc::SYS_io_uring_enter),
        ("io_uring_register", libc::SYS_io_uring_register),
        ("userfaultfd", libc::SYS_userfaultfd),
        ("open_by_handle_at", libc::SYS_open_by_handle_at),
        ("name_to_handle_at", libc::SYS_name_to_handle_at),
        ("reboot", libc::SYS_reboot),
        ("swapon", libc::SYS_swapon),
        ("swapoff", libc::SYS_swapoff),
        ("acct", libc::SYS_acct),
        ("quotactl", libc::SYS_quotactl),
        ("quotactl_fd", libc::SYS_quotactl_fd),
        ("syslog", libc::SYS_syslog),
        ("lsm_set_self_attr", SYS_LSM_SET_SELF_ATTR),
        ("vhangup", libc::SYS_vhangup),
        #[cfg(target_arch = "x86_64")]
        ("iopl", libc::SYS_iopl),
        #[cfg(target_arch = "x86_64")]
        ("ioperm", libc::SYS_ioperm),
        #[cfg(target_arch = "x86_64")]
        ("modify_ldt", libc::SYS_modify_ldt),
        #[cfg(target_arch = "x86_64")]
        ("uselib", libc::SYS_uselib),
    ];

    /// "Not implemented here" (ENOSYS), in every tier: callers fall back.
    pub(super) const ABSENT: &[(&str, libc::c_long)] = &[
        ("clone3", libc::SYS_clone3),
        #[cfg(target_arch = "x86_64")]
        ("inotify_init", libc::SYS_inotify_init),
        ("inotify_init1", libc::SYS_inotify_init1),
        ("fanotify_init", libc::SYS_fanotify_init),
        ("memfd_create", libc::SYS_memfd_create),
    ];

    /// Denied with EPERM in the fallback tier: the host's files' metadata
    /// and its IPC objects.
    pub(super) const FALLBACK_DENIED: &[(&str, libc::c_long)] = &[
        #[cfg(target_arch = "x86_64")]
        ("chmod", libc::SYS_chmod),
        ("fchmod", libc::SYS_fchmod),
        ("fchmodat", libc::SYS_fchmodat),
        ("fchmodat2", libc::SYS_fchmodat2),
        #[cfg(target_arch = "x86_64")]
        ("chown", libc::SYS_chown),
        ("fchown", libc::SYS_fchown),
        #[cfg(target_arch = "x86_64")]
        ("lchown", libc::SYS_lchown),
        ("fchownat", libc::SYS_fchownat),
        #[cfg(target_arch = "x86_64")]
        ("utime", libc::SYS_utime),
        #[cfg(target_arch = "x86_64")]
        ("utimes", libc::SYS_utimes),
        #[cfg(target_arch = "x86_64")]
        ("futimesat", libc::SYS_futimesat),
        ("utimensat", libc::SYS_utimensat),
        ("setxattr", libc::SYS_setxattr),
        ("lsetxattr", libc::SYS_lsetxattr),
        ("fsetxattr", libc::SYS_fsetxattr),
        ("setxattrat", SYS_SETXATTRAT),
        ("removexattr", libc::SYS_removexattr),
        ("lremovexattr", libc::SYS_lremovexattr),
        ("fremovexattr", libc::SYS_fremovexattr),
        ("removexattrat", SYS_REMOVEXATTRAT),
        ("file_setattr", SYS_FILE_SETATTR),
        ("shmget", libc::SYS_shmget),
        ("shmat", libc::SYS_shmat),
        ("shmdt", libc::SYS_shmdt),
        ("shmctl", libc::SYS_shmctl),
        ("semget", libc::SYS_semget),
        ("semop", libc::SYS_semop),
        ("semtimedop", libc::SYS_semtimedop),
        ("semctl", libc::SYS_semctl),
        ("msgget", libc::SYS_msgget),
        ("msgsnd", libc::SYS_msgsnd),
        ("msgrcv", libc::SYS_msgrcv),
        ("msgctl", libc::SYS_msgctl),
        ("mq_open", libc::SYS_mq_open),
        ("mq_unlink", libc::SYS_mq_unlink),
        ("mq_timedsend", libc::SYS_mq_timedsend),
        ("mq_timedreceive", libc::SYS_mq_timedreceive),
        ("mq_notify", libc::SYS_mq_notify),
        ("mq_getsetattr", libc::SYS_mq_getsetattr),
        ("connect", libc::SYS_connect),
        ("bind", libc::SYS_bind),
    ];

    /// Syscalls whose first argument is a process: in the fallback tier
    /// only the caller itself (0 or R's pid).
    pub(super) const SELF_ONLY: &[(&str, libc::c_long)] = &[
        ("prlimit64", libc::SYS_prlimit64),
        ("sched_setaffinity", libc::SYS_sched_setaffinity),
        ("sched_setscheduler", libc::SYS_sched_setscheduler),
        ("sched_setparam", libc::SYS_sched_setparam),
        ("sched_setattr", libc::SYS_sched_setattr),
        ("migrate_pages", libc::SYS_migrate_pages),
        ("move_pages", libc::SYS_move_pages),
        ("get_robust_list", libc::SYS_get_robust_list),
    ];

    /// Signal-sending syscalls whose first argument is the target.
    const SIGNALS: &[libc::c_long] = &[
        libc::SYS_kill,
        libc::SYS_tkill,
        libc::SYS_tgkill,
        libc::SYS_rt_sigqueueinfo,
        libc::SYS_rt_tgsigqueueinfo,
    ];

    const NS_FLAGS: [libc::c_int; 7] = [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWCGROUP,
    ];

    /// personality() values allowed: Linux's own, PER_LINUX32, UNAME26
    /// variants and the query (0xffffffff); as Docker's default profile.
    const PERSONALITIES: [u64; 5] = [0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

    const PRIO_PROCESS: u64 = 0;
    const IOPRIO_WHO_PROCESS: u64 = 1;
    const O_TMPFILE: u64 = 0o20_000_000;
    /// chattr's ioctls (FS_IOC_SETFLAGS, its 32-bit form, FS_IOC_FSSETXATTR).
    const CHATTR: [u64; 3] = [0x4008_6602, 0x4004_6602, 0x401c_5820];

    fn err(e: seccompiler::BackendError) -> LaunchFailure {
        LaunchFailure::new(
            Layer::Seccomp,
            format!("cannot build the filter: {e}"),
            None,
        )
    }

    fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, LaunchFailure> {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(err)
    }

    /// A rule that matches when every condition holds.
    fn all(conds: Vec<SeccompCondition>) -> Result<SeccompRule, LaunchFailure> {
        SeccompRule::new(conds).map_err(err)
    }

    fn rule(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompRule, LaunchFailure> {
        all(vec![cond(arg, op, value)?])
    }

    /// Matches when argument `arg` is another process than the caller.
    fn not_self(arg: u8, pid: u32) -> Result<SeccompRule, LaunchFailure> {
        all(vec![
            cond(arg, SeccompCmpOp::Ne, 0)?,
            cond(arg, SeccompCmpOp::Ne, u64::from(pid))?,
        ])
    }

    fn compile(
        rules: BTreeMap<i64, Vec<SeccompRule>>,
        errno: i32,
    ) -> Result<BpfProgram, LaunchFailure> {
        let f = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            ARCH,
        )
        .map_err(err)?;
        BpfProgram::try_from(f).map_err(err)
    }

    fn unconditional(list: &[(&str, libc::c_long)]) -> BTreeMap<i64, Vec<SeccompRule>> {
        list.iter().map(|&(_, nr)| (nr, Vec::new())).collect()
    }

    pub(super) fn programs(tier: Tier) -> Result<Vec<BpfProgram>, LaunchFailure> {
        let mut eperm = unconditional(DENIED);
        // clone(flags, ...): any namespace flag set.
        let clone_rules = NS_FLAGS
            .iter()
            .map(|&f| rule(0, SeccompCmpOp::MaskedEq(f as u64), f as u64))
            .collect::<Result<Vec<_>, _>>()?;
        eperm.insert(libc::SYS_clone, clone_rules);
        // Pushing input into a terminal the host may share.
        #[allow(clippy::unnecessary_cast)] // c_int on some libcs
        let mut ioctls = vec![
            rule(1, SeccompCmpOp::Eq, libc::TIOCSTI as u64)?,
            rule(1, SeccompCmpOp::Eq, libc::TIOCLINUX as u64)?,
        ];
        let personality = PERSONALITIES
            .iter()
            .map(|&p| cond(0, SeccompCmpOp::Ne, p))
            .collect::<Result<Vec<_>, _>>()?;
        eperm.insert(libc::SYS_personality, vec![all(personality)?]);

        let mut enosys = unconditional(ABSENT);

        let not_unix = || rule(0, SeccompCmpOp::Ne, libc::AF_UNIX as u64);
        let mut sockets = BTreeMap::new();
        sockets.insert(libc::SYS_socket, vec![not_unix()?]);
        sockets.insert(libc::SYS_socketpair, vec![not_unix()?]);

        if let Tier::Fallback {
            pid,
            pgid,
            signals_scoped,
        } = tier
        {
            eperm.extend(unconditional(FALLBACK_DENIED));
            eperm.insert(libc::SYS_setsid, Vec::new());
            eperm.insert(
                libc::SYS_setpgid,
                vec![rule(1, SeccompCmpOp::Ne, u64::from(pgid))?],
            );
            for &(_, nr) in SELF_ONLY {
                eperm.insert(nr, vec![not_self(0, pid)?]);
            }
            // setpriority(which, who, prio): PRIO_PROCESS of the caller only
            // (PRIO_USER would renice every process of the host's user).
            eperm.insert(
                libc::SYS_setpriority,
                vec![
                    rule(0, SeccompCmpOp::Ne, PRIO_PROCESS)?,
                    rule(1, SeccompCmpOp::Ne, 0)?,
                ],
            );
            // ioprio_set(which, who, ioprio): likewise.
            eperm.insert(
                libc::SYS_ioprio_set,
                vec![
                    rule(0, SeccompCmpOp::Ne, IOPRIO_WHO_PROCESS)?,
                    not_self(1, pid)?,
                ],
            );
            if !signals_scoped {
                for &nr in SIGNALS {
                    eperm.insert(nr, vec![not_self(0, pid)?]);
                }
                eperm.insert(libc::SYS_pidfd_send_signal, Vec::new());
            }
            // AF_UNIX datagram sockets; the type argument carries
            // SOCK_CLOEXEC/SOCK_NONBLOCK.
            eperm.insert(
                libc::SYS_socket,
                vec![all(vec![
                    cond(0, SeccompCmpOp::Eq, libc::AF_UNIX as u64)?,
                    cond(1, SeccompCmpOp::MaskedEq(0xf), libc::SOCK_DGRAM as u64)?,
                ])?],
            );
            #[cfg(target_arch = "x86_64")]
            eperm.insert(
                libc::SYS_open,
                vec![rule(1, SeccompCmpOp::MaskedEq(O_TMPFILE), O_TMPFILE)?],
            );
            eperm.insert(
                libc::SYS_openat,
                vec![rule(2, SeccompCmpOp::MaskedEq(O_TMPFILE), O_TMPFILE)?],
            );
            for c in CHATTR {
                ioctls.push(rule(1, SeccompCmpOp::Eq, c)?);
            }
            enosys.insert(libc::SYS_pidfd_open, Vec::new());
            // Its flags live in memory a filter cannot read (O_TMPFILE).
            enosys.insert(libc::SYS_openat2, Vec::new());
        }
        eperm.insert(libc::SYS_ioctl, ioctls);

        let mut progs = vec![
            compile(eperm, libc::EPERM)?,
            compile(enosys, libc::ENOSYS)?,
            compile(sockets, libc::EAFNOSUPPORT)?,
        ];
        #[cfg(target_arch = "x86_64")]
        progs.push(x32_guard());
        Ok(progs)
    }

    /// x32 system calls share x86_64's audit arch but carry bit 30 in the
    /// number, so the filters above would not match them: refuse them all.
    #[cfg(target_arch = "x86_64")]
    fn x32_guard() -> BpfProgram {
        use seccompiler::sock_filter;
        // BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_JMP|BPF_JGE|BPF_K,
        // BPF_RET|BPF_K.
        const LD_W_ABS: u16 = 0x20;
        const JEQ_K: u16 = 0x15;
        const JGE_K: u16 = 0x35;
        const RET_K: u16 = 0x06;
        const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
        const X32_BIT: u32 = 0x4000_0000;
        let ins = |code, jt, jf, k| sock_filter { code, jt, jf, k };
        vec![
            ins(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
            ins(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
            ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
            ins(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
            ins(JGE_K, 0, 1, X32_BIT),
            ins(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
            ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        ]
    }
}

/// The namespaced tier's filter, compiled once per process: a zygote
/// compiles it before its first fork (`prepare`), so that its sessions
/// install it without building it, which would write to pages of the heap
/// they share with the zygote.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
static NAMESPACED: std::sync::OnceLock<Result<Vec<seccompiler::BpfProgram>, LaunchFailure>> =
    std::sync::OnceLock::new();

/// Compiles the namespaced tier's filter now (see `NAMESPACED`).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn prepare() {
    let _ = NAMESPACED.get_or_init(|| filter::programs(Tier::Namespaced));
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn prepare() {}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn apply(_strict: bool, tier: Tier) -> Result<LayerState, LaunchFailure> {
    use crate::sys;
    sys::set_no_new_privs()
        .map_err(|e| LaunchFailure::os(Layer::Seccomp, "PR_SET_NO_NEW_PRIVS", e))?;
    let fallback;
    let progs = match tier {
        Tier::Namespaced => match NAMESPACED.get_or_init(|| filter::programs(tier)) {
            Ok(progs) => progs,
            Err(e) => return Err(e.clone()),
        },
        Tier::Fallback { .. } => {
            fallback = filter::programs(tier)?;
            &fallback
        }
    };
    for p in progs {
        seccompiler::apply_filter(p).map_err(|e| {
            let errno = match &e {
                seccompiler::Error::Seccomp(io) => io.raw_os_error(),
                _ => None,
            };
            LaunchFailure::new(
                Layer::Seccomp,
                format!("cannot install the filter: {e}"),
                errno,
            )
        })?;
    }
    let mut detail = format!(
        "{}: {} syscalls denied (EPERM: ptrace and other processes' memory, mounts, \
         namespaces, modules, bpf, perf, keyrings, io_uring, the kernel log, ...), clone with \
         namespace flags denied, TIOCSTI/TIOCLINUX denied, personality flags denied; ENOSYS: \
         clone3, inotify, fanotify, memfd_create; non-AF_UNIX sockets -> EAFNOSUPPORT; \
         foreign syscall ABIs refused; no_new_privs",
        std::env::consts::ARCH,
        filter::DENIED.len(),
    );
    if let Tier::Fallback { signals_scoped, .. } = tier {
        detail.push_str(&format!(
            "; fallback tier: {} more denied (chmod/chown/utime families, extended attributes, \
             chattr, SysV IPC, POSIX message queues, connect(), bind(), AF_UNIX datagram \
             sockets, O_TMPFILE, openat2), \
             prlimit/setpriority/sched_set*/ioprio_set/migrate_pages/move_pages only on R \
             itself, no new session or process group (setsid, setpgid), pidfd_open -> ENOSYS{}",
            filter::FALLBACK_DENIED.len() + filter::SELF_ONLY.len(),
            if signals_scoped {
                "; signals scoped by Landlock"
            } else {
                "; signals only to R itself (no Landlock signal scoping)"
            }
        ));
    }
    Ok(LayerState::new(Layer::Seccomp, true, detail))
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn apply(strict: bool, _tier: Tier) -> Result<LayerState, LaunchFailure> {
    let why = format!(
        "no seccomp filter for architecture {}",
        std::env::consts::ARCH
    );
    if strict {
        return Err(LaunchFailure::new(Layer::Seccomp, why, None));
    }
    Ok(LayerState::new(Layer::Seccomp, false, why))
}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use super::*;

    #[test]
    fn every_tier_compiles() {
        for tier in [
            Tier::Namespaced,
            Tier::Fallback {
                pid: 1234,
                pgid: 1200,
                signals_scoped: true,
            },
            Tier::Fallback {
                pid: 1234,
                pgid: 1200,
                signals_scoped: false,
            },
        ] {
            let progs = filter::programs(tier).unwrap();
            assert!(progs.len() >= 3, "{tier:?}");
            assert!(progs.iter().all(|p| !p.is_empty()));
        }
    }

    #[test]
    fn the_fallback_lists_do_not_overlap_the_common_ones() {
        for (name, nr) in filter::FALLBACK_DENIED.iter().chain(filter::SELF_ONLY) {
            assert!(
                !filter::DENIED.iter().any(|(_, d)| d == nr),
                "{name} is denied in every tier already"
            );
            assert!(!filter::ABSENT.iter().any(|(_, d)| d == nr), "{name}");
        }
    }
}
