//! Layer 3: Landlock. Handles every filesystem right of the kernel's ABI
//! (at least ABI 6's), TCP bind/connect (no port is allowed), and scopes
//! abstract UNIX sockets and signals to the sandbox's own domain.
//!
//! Best-effort compatibility, but the report says what was enforced, and a
//! strict policy fails unless everything requested is.

use super::plan::{FsRule, Grant};
use crate::policy::{LaunchFailure, Layer, LayerState};
use crate::sys;
use landlock::{
    Access, AccessFs, AccessNet, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetError, RulesetStatus, Scope, ABI,
};
use std::os::fd::AsRawFd;

/// The ABI whose features the design asks for (filesystem, TCP, scopes).
const WANTED_ABI: i32 = 6;

/// The kernel's Landlock ABI version, or the errno saying why there is none.
fn kernel_abi() -> Result<i32, i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: landlock_create_ruleset(NULL, 0, VERSION) only returns a number.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        Err(sys::errno())
    } else {
        Ok(v as i32)
    }
}

/// Whether Landlock can keep this process's signals inside its domain
/// (ABI 6).
pub(crate) fn signals_scoped() -> bool {
    kernel_abi().is_ok_and(|v| v >= 6)
}

fn ll_failure(what: &str, e: RulesetError) -> LaunchFailure {
    // Find the system error under the crate's wrappers, if any.
    let mut errno = None;
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            errno = io.raw_os_error();
            break;
        }
        src = s.source();
    }
    LaunchFailure::new(Layer::Landlock, format!("{what}: {e}"), errno)
}

fn is_dir(fd: &PathFd) -> Option<bool> {
    use std::os::fd::AsFd;
    // SAFETY: stat is plain data, filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd (O_PATH is fine for fstat) and a valid stat buffer.
    if unsafe { libc::fstat(fd.as_fd().as_raw_fd(), &mut st) } != 0 {
        return None;
    }
    Some(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

pub(crate) fn apply(rules: &[FsRule], strict: bool) -> Result<LayerState, LaunchFailure> {
    let kernel = match kernel_abi() {
        Ok(v) if v > 0 => v,
        Ok(v) => {
            return missing(strict, format!("kernel reports Landlock ABI {v}"), None);
        }
        Err(e) => {
            let why = if e == libc::EOPNOTSUPP {
                "Landlock is disabled at boot".to_string()
            } else if e == libc::ENOSYS {
                "the kernel has no Landlock".to_string()
            } else {
                format!("Landlock unavailable: {}", sys::strerror(e))
            };
            return missing(strict, why, Some(e));
        }
    };
    // Ask for the best the kernel offers, and never less than the design
    // wants: on an older kernel the status then says "partially".
    let abi = ABI::from(kernel.max(WANTED_ABI));
    let fs_all = AccessFs::from_all(abi);
    let read_exec = AccessFs::from_read(abi);
    let read_data: BitFlags<AccessFs> = AccessFs::ReadFile | AccessFs::ReadDir;
    let read_write = fs_all & !(AccessFs::MakeChar | AccessFs::MakeBlock);
    let device = fs_all
        & (AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate | AccessFs::IoctlDev);
    let file_only = AccessFs::from_file(abi);

    let mut ruleset = Ruleset::default()
        .handle_access(fs_all)
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .map_err(|e| ll_failure("cannot create the ruleset", e))?;

    let mut granted = 0;
    let mut skipped = Vec::new();
    for rule in rules {
        let fd = match PathFd::new(&rule.path) {
            Ok(fd) => fd,
            Err(_) => {
                skipped.push(rule.path.display().to_string());
                continue;
            }
        };
        let mut access = match rule.grant {
            Grant::ReadExec => read_exec,
            Grant::ReadWrite => read_write,
            Grant::Device => device,
            Grant::ReadData => read_data,
            Grant::ListDir => BitFlags::from(AccessFs::ReadDir),
        };
        match is_dir(&fd) {
            Some(true) => {}
            Some(false) => access &= file_only,
            None => {
                skipped.push(rule.path.display().to_string());
                continue;
            }
        }
        if access.is_empty() {
            continue;
        }
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| {
                ll_failure(&format!("cannot add a rule for {}", rule.path.display()), e)
            })?;
        granted += 1;
    }
    let status = ruleset
        .restrict_self()
        .map_err(|e| ll_failure("landlock_restrict_self", e))?;

    let mut features = vec![format!("filesystem ({granted} path rules)")];
    let mut lacking = Vec::new();
    if kernel >= 4 {
        features.push("TCP bind/connect denied".into());
    } else {
        lacking.push("TCP bind/connect (ABI 4)");
    }
    if kernel >= 6 {
        features.push("abstract UNIX sockets and signals scoped".into());
    } else {
        lacking.push("abstract UNIX socket and signal scoping (ABI 6)");
    }
    let mut detail = format!(
        "kernel ABI {kernel}, requested ABI {abi}: {}",
        match status.ruleset {
            RulesetStatus::FullyEnforced => "fully enforced",
            RulesetStatus::PartiallyEnforced => "partially enforced",
            RulesetStatus::NotEnforced => "not enforced",
        }
    );
    detail.push_str(&format!("; {}", features.join(", ")));
    if !lacking.is_empty() {
        detail.push_str(&format!("; missing: {}", lacking.join(", ")));
    }
    if !skipped.is_empty() {
        detail.push_str(&format!("; skipped (cannot open): {}", skipped.join(" ")));
    }
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(LayerState::new(Layer::Landlock, true, detail)),
        RulesetStatus::PartiallyEnforced if !strict => {
            Ok(LayerState::new(Layer::Landlock, true, detail))
        }
        RulesetStatus::NotEnforced if !strict => {
            Ok(LayerState::new(Layer::Landlock, false, detail))
        }
        _ => Err(LaunchFailure::new(Layer::Landlock, detail, None)),
    }
}

fn missing(strict: bool, why: String, errno: Option<i32>) -> Result<LayerState, LaunchFailure> {
    if strict {
        return Err(LaunchFailure::new(Layer::Landlock, why, errno));
    }
    Ok(LayerState::new(Layer::Landlock, false, why))
}
