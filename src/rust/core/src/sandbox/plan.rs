//! The policy's paths, checked and normalised, and the filesystem rules that
//! Landlock enforces in each tier.

use crate::policy::{LaunchFailure, Layer, SandboxPolicy};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Device nodes offered inside the sandbox.
pub(crate) const DEV_NODES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// Read-only system information offered in the fallback tier.
const FALLBACK_SYSTEM_INFO: [&str; 6] = [
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/loadavg",
    "/proc/uptime",
    "/sys/devices/system/cpu",
];

/// Entries of /proc/<pid> the fallback tier does not show: `net` lists the
/// host's sockets (its network namespace is the host's), `task` holds a
/// `net` of its own for each thread.
const FALLBACK_PROC_HIDDEN: [&str; 2] = ["net", "task"];

/// Entries (inodes) of a temporary folder of `tmp_size` bytes: as many as
/// tmpfs gives a mount of that size, within sane bounds.
pub(crate) fn tmp_inodes(tmp_size: u64) -> u64 {
    (tmp_size / 1024).clamp(4096, 1 << 20)
}

/// What Landlock allows beneath a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    /// Read files, list directories, execute.
    ReadExec,
    /// Everything but creating device nodes.
    ReadWrite,
    /// Read, write, truncate and ioctl on a device node.
    Device,
    /// Read files and list directories (procfs).
    ReadData,
    /// List directories only (the new root itself).
    ListDir,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FsRule {
    pub path: PathBuf,
    pub grant: Grant,
}

impl FsRule {
    pub fn new(path: impl Into<PathBuf>, grant: Grant) -> FsRule {
        FsRule {
            path: path.into(),
            grant,
        }
    }
}

/// A checked copy of the policy.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub strict: bool,
    pub read_only: Vec<PathBuf>,
    pub writable: Vec<PathBuf>,
    pub tmp_size: u64,
    pub fallback_tmp: Option<PathBuf>,
}

impl Plan {
    pub fn new(policy: &SandboxPolicy) -> Result<Plan, LaunchFailure> {
        let norm_all = |paths: &[PathBuf], what: &str| -> Result<Vec<PathBuf>, LaunchFailure> {
            let mut out: Vec<PathBuf> = Vec::new();
            for p in paths {
                let n = normalize(p, what)?;
                if !out.contains(&n) {
                    out.push(n);
                }
            }
            Ok(out)
        };
        let fallback_tmp = match &policy.fallback_tmp {
            Some(p) => Some(normalize(p, "fallback_tmp")?),
            None => None,
        };
        Ok(Plan {
            strict: policy.strict,
            read_only: norm_all(&policy.read_only, "read_only")?,
            writable: norm_all(&policy.writable, "writable")?,
            // tmpfs reads size=0 as "unlimited": never ask for that.
            tmp_size: policy.tmp_size.max(4096),
            fallback_tmp,
        })
    }

    /// Landlock rules of the fallback tier, on host paths. Called in the
    /// process that goes on to exec R: /proc/<pid> is its own.
    pub fn fallback_rules(&self) -> Vec<FsRule> {
        let mut rules: Vec<FsRule> = self
            .read_only
            .iter()
            .map(|p| FsRule::new(p, Grant::ReadExec))
            .collect();
        rules.extend(
            self.writable
                .iter()
                .map(|p| FsRule::new(p, Grant::ReadWrite)),
        );
        if let Some(t) = &self.fallback_tmp {
            rules.push(FsRule::new(t, Grant::ReadWrite));
        }
        // /proc/self of this process, whose pid R keeps after execve; not
        // the entries that show the host's network, nor the magic links
        // (root, cwd, exe), which a rule would follow to their targets
        // (root: the whole filesystem).
        let own = PathBuf::from(format!("/proc/{}", std::process::id()));
        if let Ok(entries) = std::fs::read_dir(&own) {
            rules.extend(entries.filter_map(|e| {
                let e = e.ok()?;
                let name = e.file_name();
                let hidden = FALLBACK_PROC_HIDDEN.iter().any(|h| name == *h);
                let link = e.file_type().ok()?.is_symlink();
                (!hidden && !link).then(|| FsRule::new(own.join(name), Grant::ReadData))
            }));
        }
        // Machine-wide figures (R's detectCores(), glibc's sysconf), not
        // other processes.
        rules.extend(
            FALLBACK_SYSTEM_INFO
                .iter()
                .map(|p| FsRule::new(p, Grant::ReadData)),
        );
        rules.extend(
            DEV_NODES
                .iter()
                .map(|d| FsRule::new(format!("/dev/{d}"), Grant::Device)),
        );
        rules
    }
}

/// Landlock rules of a namespaced tier, on the paths of the new root: the
/// root itself may be listed (it holds only what the policy lists).
pub(crate) fn root_rules<'a>(
    read_only: impl IntoIterator<Item = &'a PathBuf>,
    writable: impl IntoIterator<Item = &'a PathBuf>,
    dev_nodes: impl IntoIterator<Item = &'a str>,
    proc_mounted: bool,
) -> Vec<FsRule> {
    let mut rules = vec![FsRule::new("/", Grant::ListDir)];
    rules.extend(
        read_only
            .into_iter()
            .map(|p| FsRule::new(p, Grant::ReadExec)),
    );
    rules.extend(
        writable
            .into_iter()
            .map(|p| FsRule::new(p, Grant::ReadWrite)),
    );
    rules.push(FsRule::new("/tmp", Grant::ReadWrite));
    rules.extend(
        dev_nodes
            .into_iter()
            .map(|d| FsRule::new(format!("/dev/{d}"), Grant::Device)),
    );
    if proc_mounted {
        rules.push(FsRule::new("/proc", Grant::ReadData));
    }
    rules
}

/// Absolute, without `.`/`..`, not `/` itself, no NUL byte.
pub(crate) fn normalize(p: &Path, what: &str) -> Result<PathBuf, LaunchFailure> {
    let bad =
        |why: &str| LaunchFailure::new(Layer::Policy, format!("{what} path {p:?} {why}"), None);
    if p.as_os_str().as_bytes().contains(&0) {
        return Err(bad("contains a NUL byte"));
    }
    if !p.is_absolute() {
        return Err(bad("is not absolute"));
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(s) => out.push(s),
            Component::ParentDir => return Err(bad("contains '..'")),
            Component::Prefix(_) => return Err(bad("has a prefix")),
        }
    }
    if out == Path::new("/") {
        return Err(bad("would expose the whole filesystem"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(ro: &[&str]) -> SandboxPolicy {
        SandboxPolicy {
            strict: false,
            read_only: ro.iter().map(PathBuf::from).collect(),
            writable: vec![],
            tmp_size: 0,
            no_namespaces: false,
            fallback_tmp: None,
            zygote: false,
        }
    }

    #[test]
    fn paths_are_normalised_and_checked() {
        let plan = Plan::new(&policy(&["/usr/./lib/", "/usr/lib", "/etc"])).unwrap();
        assert_eq!(
            plan.read_only,
            vec![PathBuf::from("/usr/lib"), PathBuf::from("/etc")]
        );
        assert_eq!(plan.tmp_size, 4096);
        for bad in ["usr", "/usr/../etc", "/", "//.", "/a\0b"] {
            let e = Plan::new(&policy(&[bad])).unwrap_err();
            assert_eq!(e.layer, Layer::Policy, "{bad}");
        }
    }

    #[test]
    fn fallback_rules_cover_tmp_proc_and_devices() {
        let mut p = policy(&["/usr"]);
        p.fallback_tmp = Some("/var/tmp/x".into());
        let rules = Plan::new(&p).unwrap().fallback_rules();
        assert!(rules.contains(&FsRule::new("/usr", Grant::ReadExec)));
        assert!(rules.contains(&FsRule::new("/var/tmp/x", Grant::ReadWrite)));
        assert!(rules.contains(&FsRule::new("/dev/null", Grant::Device)));
        let proc_self = PathBuf::from(format!("/proc/{}", std::process::id()));
        assert!(rules.contains(&FsRule::new(proc_self.join("status"), Grant::ReadData)));
        assert!(rules.contains(&FsRule::new(proc_self.join("environ"), Grant::ReadData)));
        assert!(!rules.iter().any(|r| r.path == proc_self.join("net")));
        assert!(!rules.iter().any(|r| r.path == proc_self.join("task")));
        for link in ["root", "cwd", "exe"] {
            assert!(
                !rules.iter().any(|r| r.path == proc_self.join(link)),
                "{link}"
            );
        }
        assert!(!rules.iter().any(|r| r.path == Path::new("/proc")));
    }

    #[test]
    fn root_rules_list_the_root_and_grant_tmp_devices_and_proc() {
        let ro = [PathBuf::from("/usr")];
        let rw = [PathBuf::from("/data")];
        let rules = root_rules(&ro, &rw, ["null"], true);
        assert_eq!(rules[0], FsRule::new("/", Grant::ListDir));
        assert!(rules.contains(&FsRule::new("/usr", Grant::ReadExec)));
        assert!(rules.contains(&FsRule::new("/data", Grant::ReadWrite)));
        assert!(rules.contains(&FsRule::new("/tmp", Grant::ReadWrite)));
        assert!(rules.contains(&FsRule::new("/dev/null", Grant::Device)));
        assert!(rules.contains(&FsRule::new("/proc", Grant::ReadData)));
        assert!(!root_rules(&ro, &rw, [], false)
            .iter()
            .any(|r| r.path == Path::new("/proc")));
    }

    #[test]
    fn tmp_inodes_follow_the_size_within_bounds() {
        assert_eq!(tmp_inodes(0), 4096);
        assert_eq!(tmp_inodes(256 << 20), 262144);
        assert_eq!(tmp_inodes(u64::MAX), 1 << 20);
    }
}
