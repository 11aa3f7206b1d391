//! The policy's paths, checked and normalised, and the filesystem rules that
//! Landlock enforces in each tier.

use crate::policy::{LaunchFailure, SandboxPolicy};
use crate::sys::failure;
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

    /// Landlock rules of the fallback tier, on host paths.
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
        // /proc/self of this process: no fork happens in this tier, so the
        // pid is R's own after execve.
        rules.push(FsRule::new(
            format!("/proc/{}", std::process::id()),
            Grant::ReadData,
        ));
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

/// Absolute, without `.`/`..`, not `/` itself, no NUL byte.
pub(crate) fn normalize(p: &Path, what: &str) -> Result<PathBuf, LaunchFailure> {
    let bad = |why: &str| failure("policy", format!("{what} path {p:?} {why}"), None);
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
            assert_eq!(e.layer, "policy", "{bad}");
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
        let proc_self = format!("/proc/{}", std::process::id());
        assert!(rules.contains(&FsRule::new(proc_self, Grant::ReadData)));
        assert!(!rules.iter().any(|r| r.path == Path::new("/proc")));
    }
}
