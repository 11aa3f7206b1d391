//! A cgroup v2 subtree for a session's limits, where the host delegates one:
//! the kernel then bounds the memory (`memory.max`, swap included, the whole
//! session killed together on OOM) and the tasks (`pids.max`) of all the
//! session's processes, shared memory and tmpfs pages included.
//!
//! Detected, never assumed: the v2 hierarchy must be mounted, offer the
//! memory and pids controllers to our cgroup, and its parent must be
//! writable by us (as systemd's user manager makes `user@UID.service`'s
//! subtree, or root's whole tree). A session's cgroup is a sibling of the
//! host's, `securer-<launcher pid>`; the launcher (or the fallback tier's
//! supervisor) stays outside it, reads its events when R has died to say
//! which limit stopped it, and removes it. Cgroups of launchers that died
//! without cleaning up are removed by the next launch.
//!
//! Where no delegation is found, the session's supervisor enforces the same
//! limits (see `supervisor`); forked sessions always use their init.

use crate::policy::{Limits, SessionLimit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

const NEEDED: [&str; 2] = ["memory", "pids"];
const PREFIX: &str = "securer-";

/// What the host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// Session cgroups can be made in `parent`.
    Delegated { parent: PathBuf },
    /// Why not.
    Unusable(String),
}

impl Found {
    pub fn describe(&self) -> String {
        match self {
            Found::Delegated { parent } => {
                format!("cgroup v2 delegated at {}", parent.display())
            }
            Found::Unusable(why) => format!("no cgroup v2 delegation: {why}"),
        }
    }
}

/// Our cgroup v2 path, from /proc/self/cgroup ("0::/path").
fn own_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))
}

/// The cgroup2 mount point and the hierarchy path it shows, from
/// /proc/self/mountinfo.
fn mount_of(mountinfo: &str) -> Option<(PathBuf, String)> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let f: Vec<&str> = left.split_whitespace().collect();
        Some((PathBuf::from(unescape(f.get(4)?)), unescape(f.get(3)?)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn words(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn writable(path: &Path) -> bool {
    let Ok(c) = crate::sys::cpath(path) else {
        return false;
    };
    // SAFETY: a NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// Detection on the files given (`root` prefixes every path: tests use a
/// fake tree).
fn detect_in(proc_cgroup: &str, mountinfo: &str, root: &Path) -> Found {
    let Some(own) = own_path(proc_cgroup) else {
        return Found::Unusable("this host has no cgroup v2 hierarchy".into());
    };
    let Some((mnt, mnt_root)) = mount_of(mountinfo) else {
        return Found::Unusable("the cgroup v2 hierarchy is not mounted".into());
    };
    let Some(rel) = own.strip_prefix(mnt_root.trim_end_matches('/')) else {
        return Found::Unusable(format!(
            "our cgroup {own} is outside the mounted hierarchy ({mnt_root})"
        ));
    };
    let on_disk = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    let dir = mnt.join(rel.trim_start_matches('/'));
    let offered = words(&on_disk(&dir.join("cgroup.controllers")));
    let missing: Vec<&str> = NEEDED
        .iter()
        .copied()
        .filter(|c| !offered.iter().any(|o| o == c))
        .collect();
    if !missing.is_empty() {
        return Found::Unusable(format!(
            "{} offers {} to our cgroup, not {}",
            mnt.display(),
            if offered.is_empty() {
                "no controller".to_string()
            } else {
                offered.join(" ")
            },
            missing.join(" and ")
        ));
    }
    // The root cgroup may hold processes and children at once; any other
    // holds ours, so sessions go beside it, in its parent.
    let parent = if dir == mnt {
        dir
    } else {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    };
    let enabled = words(&on_disk(&parent.join("cgroup.subtree_control")));
    if !NEEDED.iter().all(|c| enabled.iter().any(|e| e == c)) {
        return Found::Unusable(format!(
            "{} does not enable memory and pids for its children",
            parent.display()
        ));
    }
    if !writable(&on_disk(&parent)) || !writable(&on_disk(&parent.join("cgroup.procs"))) {
        return Found::Unusable(format!("{} is not writable by us", parent.display()));
    }
    Found::Delegated { parent }
}

pub(crate) fn detect() -> Found {
    let cg = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    detect_in(&cg, &mi, Path::new("/"))
}

/// A session's own cgroup.
pub(crate) struct Cgroup {
    path: PathBuf,
    dir: OwnedFd,
}

fn write_at(dir: &OwnedFd, file: &str, text: &str) -> std::io::Result<()> {
    let c = crate::sys::cstring(file.as_bytes())
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a valid directory fd and a NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openat returned a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    crate::sys::write_all(fd.as_raw_fd(), text.as_bytes())
        .map_err(std::io::Error::from_raw_os_error)
}

fn read_at(dir: &OwnedFd, file: &str) -> String {
    std::fs::read_to_string(format!("/proc/self/fd/{}/{file}", dir.as_raw_fd())).unwrap_or_default()
}

/// Value of `key` in a flat-keyed cgroup file ("key value" lines).
fn event(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// Removes the session cgroups of launchers that are gone.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks that the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0 && crate::sys::errno() == libc::ESRCH;
        if gone {
            // Fails harmlessly while anything still runs in it.
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

impl Cgroup {
    /// Makes this launcher's session cgroup under `parent`, with the
    /// memory and task limits of `limits`.
    pub fn create(parent: &Path, limits: &Limits) -> std::io::Result<Cgroup> {
        remove_stale(parent);
        // SAFETY: getpid cannot fail.
        let path = parent.join(format!("{PREFIX}{}", unsafe { libc::getpid() }));
        std::fs::create_dir(&path)?;
        let made = (|| {
            let dir = std::fs::File::open(&path)?;
            let cg = Cgroup {
                path: path.clone(),
                dir: OwnedFd::from(dir),
            };
            if let Some(m) = limits.memory {
                write_at(&cg.dir, "memory.max", &m.to_string())?;
                // Swap would let the session hold more than memory.max.
                let _ = write_at(&cg.dir, "memory.swap.max", "0");
                // On OOM the whole session goes, not one of its processes.
                let _ = write_at(&cg.dir, "memory.oom.group", "1");
            }
            if let Some(n) = limits.nproc {
                write_at(&cg.dir, "pids.max", &n.to_string())?;
            }
            Ok(cg)
        })();
        if made.is_err() {
            let _ = std::fs::remove_dir(&path);
        }
        made
    }

    /// Moves process `pid` (0: the caller) into the session's cgroup.
    pub fn add(&self, pid: libc::pid_t) -> std::io::Result<()> {
        write_at(&self.dir, "cgroup.procs", &pid.to_string())
    }

    /// The limit the kernel enforced, once the session's processes are gone.
    pub fn passed(&self) -> Option<SessionLimit> {
        if event(&read_at(&self.dir, "memory.events"), "oom_kill") > 0 {
            return Some(SessionLimit::Memory);
        }
        (event(&read_at(&self.dir, "pids.events"), "max") > 0).then_some(SessionLimit::Nproc)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fd of its directory, which supervisors keep open.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.dir.as_raw_fd()
    }
}

impl Cgroup {
    /// Removes the cgroup once nothing runs in it (by a process that is
    /// about to exit without running destructors).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";

    fn fake(controllers: &str, subtree: &str) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "securer-cgroup-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let parent = root.join("sys/fs/cgroup/user.slice/user@1000.service/app.slice");
        let own = parent.join("run-1.scope");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join("cgroup.controllers"), controllers).unwrap();
        std::fs::write(parent.join("cgroup.subtree_control"), subtree).unwrap();
        std::fs::write(parent.join("cgroup.procs"), "").unwrap();
        root
    }

    const OWN: &str = "0::/user.slice/user@1000.service/app.slice/run-1.scope\n";

    #[test]
    fn a_delegated_parent_is_found() {
        let root = fake("cpu memory pids\n", "cpu memory pids\n");
        let got = detect_in(OWN, MOUNTINFO, &root);
        assert_eq!(
            got,
            Found::Delegated {
                parent: "/sys/fs/cgroup/user.slice/user@1000.service/app.slice".into()
            }
        );
        crate::tree::remove(&root).unwrap();
    }

    #[test]
    fn missing_controllers_are_named() {
        let root = fake("hugetlb\n", "hugetlb\n");
        let Found::Unusable(why) = detect_in(OWN, MOUNTINFO, &root) else {
            panic!("found a delegation");
        };
        assert!(why.contains("offers hugetlb"), "{why}");
        assert!(why.contains("not memory and pids"), "{why}");
        crate::tree::remove(&root).unwrap();
    }

    #[test]
    fn no_hierarchy_or_mount_is_unusable() {
        let root = fake("memory pids", "memory pids");
        assert!(matches!(
            detect_in("4:memory:/x\n", MOUNTINFO, &root),
            Found::Unusable(w) if w.contains("no cgroup v2")
        ));
        assert!(matches!(
            detect_in(OWN, "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n", &root),
            Found::Unusable(w) if w.contains("not mounted")
        ));
        crate::tree::remove(&root).unwrap();
    }

    #[test]
    fn this_hosts_finding_is_described() {
        let d = detect().describe();
        assert!(d.starts_with("cgroup v2 delegated at") || d.starts_with("no cgroup v2"));
    }

    #[test]
    fn events_are_read_by_key() {
        let text = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\noom_group_kill 1\n";
        assert_eq!(event(text, "oom_kill"), 2);
        assert_eq!(event(text, "max"), 3);
        assert_eq!(event(text, "oom"), 1);
        assert_eq!(event(text, "absent"), 0);
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        let mi = "30 22 0:26 / /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            mount_of(mi),
            Some((PathBuf::from("/sys/fs/my cgroup"), "/".to_string()))
        );
    }
}
