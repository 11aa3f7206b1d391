//! Layer 4: a seccomp filter (seccompiler), installed last.
//!
//! * EPERM: debugging/other processes' memory, mounting, namespaces,
//!   kernel modules and kexec, bpf, perf, keyrings, io_uring, userfaultfd,
//!   file handles, reboot/swap/acct, chroot, TIOCSTI/TIOCLINUX, and
//!   clone() with any namespace flag;
//! * ENOSYS: clone3 (its flags live in memory a filter cannot read; glibc
//!   falls back to clone);
//! * EAFNOSUPPORT: socket()/socketpair() of any family but AF_UNIX;
//! * fallback tier only (the host's filesystem is there, and Landlock before
//!   ABI 9 does not check connecting to a UNIX socket's path, e.g.
//!   /var/run/docker.sock): EPERM for connect() and for AF_UNIX datagram
//!   sockets, which could send to a path without connecting.
//!
//! Syscalls of another ABI (i386 on x86_64) kill the process; x32 calls
//! get ENOSYS. Other architectures: reported inactive.

use super::state;
use crate::policy::{LaunchFailure, LayerState};
use crate::sys::failure;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod filter {
    use crate::policy::LaunchFailure;
    use crate::sys::failure;
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    use std::collections::BTreeMap;

    #[cfg(target_arch = "x86_64")]
    const ARCH: TargetArch = TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    const ARCH: TargetArch = TargetArch::aarch64;

    /// Denied outright with EPERM.
    pub(super) const DENIED: &[(&str, libc::c_long)] = &[
        ("ptrace", libc::SYS_ptrace),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
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

    const NS_FLAGS: [libc::c_int; 7] = [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWCGROUP,
    ];

    fn err(e: seccompiler::BackendError) -> LaunchFailure {
        failure("seccomp", format!("cannot build the filter: {e}"), None)
    }

    fn rule(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompRule, LaunchFailure> {
        let cond = SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(err)?;
        SeccompRule::new(vec![cond]).map_err(err)
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

    pub(super) fn programs(fallback: bool) -> Result<Vec<BpfProgram>, LaunchFailure> {
        let mut eperm: BTreeMap<i64, Vec<SeccompRule>> =
            DENIED.iter().map(|&(_, nr)| (nr, Vec::new())).collect();
        // clone(flags, ...): any namespace flag set.
        let clone_rules = NS_FLAGS
            .iter()
            .map(|&f| rule(0, SeccompCmpOp::MaskedEq(f as u64), f as u64))
            .collect::<Result<Vec<_>, _>>()?;
        eperm.insert(libc::SYS_clone, clone_rules);
        // Pushing input into a terminal the host may share.
        eperm.insert(
            libc::SYS_ioctl,
            vec![
                #[allow(clippy::unnecessary_cast)] // c_int on some libcs
                rule(1, SeccompCmpOp::Eq, libc::TIOCSTI as u64)?,
                #[allow(clippy::unnecessary_cast)]
                rule(1, SeccompCmpOp::Eq, libc::TIOCLINUX as u64)?,
            ],
        );

        let mut enosys = BTreeMap::new();
        enosys.insert(libc::SYS_clone3, Vec::new());

        let not_unix = || rule(0, SeccompCmpOp::Ne, libc::AF_UNIX as u64);
        let mut sockets = BTreeMap::new();
        sockets.insert(libc::SYS_socket, vec![not_unix()?]);
        sockets.insert(libc::SYS_socketpair, vec![not_unix()?]);

        if fallback {
            eperm.insert(libc::SYS_connect, Vec::new());
            let conds = vec![
                SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    libc::AF_UNIX as u64,
                )
                .map_err(err)?,
                // The type argument carries SOCK_CLOEXEC/SOCK_NONBLOCK.
                SeccompCondition::new(
                    1,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::MaskedEq(0xf),
                    libc::SOCK_DGRAM as u64,
                )
                .map_err(err)?,
            ];
            eperm.insert(
                libc::SYS_socket,
                vec![SeccompRule::new(conds).map_err(err)?],
            );
        }

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

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn apply(_strict: bool, fallback: bool) -> Result<LayerState, LaunchFailure> {
    use crate::sys::{self, os_failure};
    sys::set_no_new_privs().map_err(|e| os_failure("seccomp", "PR_SET_NO_NEW_PRIVS", e))?;
    let progs = filter::programs(fallback)?;
    for p in &progs {
        seccompiler::apply_filter(p).map_err(|e| {
            let errno = match &e {
                seccompiler::Error::Seccomp(io) => io.raw_os_error(),
                _ => None,
            };
            failure("seccomp", format!("cannot install the filter: {e}"), errno)
        })?;
    }
    Ok(state(
        "seccomp",
        true,
        format!(
            "{}: {} syscalls denied (EPERM), clone with namespace flags denied, \
             TIOCSTI/TIOCLINUX denied, clone3 -> ENOSYS, non-AF_UNIX sockets -> EAFNOSUPPORT, \
             foreign syscall ABIs refused{}; no_new_privs",
            std::env::consts::ARCH,
            filter::DENIED.len(),
            if fallback {
                ", connect() and AF_UNIX datagram sockets denied (fallback tier)"
            } else {
                ""
            }
        ),
    ))
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn apply(strict: bool, _fallback: bool) -> Result<LayerState, LaunchFailure> {
    let why = format!(
        "no seccomp filter for architecture {}",
        std::env::consts::ARCH
    );
    if strict {
        return Err(failure("seccomp", why, None));
    }
    Ok(state("seccomp", false, why))
}
