//! The policy's paths, checked and normalised, and the one description of
//! what a session may touch on the filesystem (`grant_rules`), which every
//! rendering starts from: Landlock rules in each Linux tier, the Seatbelt
//! profile on macOS (`seatbelt`).

use crate::policy::{LaunchFailure, Layer, SandboxPolicy};
use std::path::{Component, Path, PathBuf};

/// Device nodes offered inside the sandbox.
pub(crate) const DEV_NODES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// Read-only system information offered in the fallback tier.
#[cfg(native_linux)]
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
#[cfg(native_linux)]
const FALLBACK_PROC_HIDDEN: [&str; 2] = ["net", "task"];

/// Entries (inodes) of a temporary folder of `tmp_size` bytes: as many as
/// tmpfs gives a mount of that size, within sane bounds.
#[cfg(native_linux)]
pub(crate) fn tmp_inodes(tmp_size: u64) -> u64 {
    (tmp_size / 1024).clamp(4096, 1 << 20)
}

/// What a session may do beneath a path (Landlock's rights on Linux, see
/// `seatbelt` for macOS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    /// Read files, list directories, execute.
    ReadExec,
    /// Everything but creating device nodes.
    ReadWrite,
    /// Read, write, truncate and ioctl on a device node.
    Device,
    /// Read files and list directories (procfs).
    #[cfg(native_linux)]
    ReadData,
    /// List directories only (the new root itself).
    #[cfg(native_linux)]
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
    #[cfg(native_linux)]
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
            #[cfg(native_linux)]
            tmp_size: policy.tmp_size.max(4096),
            fallback_tmp,
        })
    }

    /// What the session may touch, on host paths: the policy's paths, its
    /// folder on the host (`fallback_tmp`) and the device nodes. The
    /// fallback tier's Landlock rules and the Seatbelt profile both start
    /// from it.
    pub fn grants(&self) -> Vec<FsRule> {
        grant_rules(
            &self.read_only,
            &self.writable,
            self.fallback_tmp.as_deref(),
            DEV_NODES,
        )
    }

    /// Landlock rules of the fallback tier, on host paths. Called in the
    /// process that goes on to exec R: /proc/<pid> is its own.
    #[cfg(native_linux)]
    pub fn fallback_rules(&self) -> Vec<FsRule> {
        let mut rules = self.grants();
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
        rules
    }
}

/// The one description of what a session may touch: read-only paths (read,
/// list, execute), writable paths and its temporary folder (read and
/// write), the device nodes (`/dev/<name>`). Each tier and platform passes
/// its own view of the paths: the host's (fallback tier, macOS) or the new
/// root's, where the temporary folder is `/tmp`.
pub(crate) fn grant_rules<'a>(
    read_only: impl IntoIterator<Item = &'a PathBuf>,
    writable: impl IntoIterator<Item = &'a PathBuf>,
    tmp: Option<&Path>,
    dev_nodes: impl IntoIterator<Item = &'a str>,
) -> Vec<FsRule> {
    let mut rules: Vec<FsRule> = read_only
        .into_iter()
        .map(|p| FsRule::new(p, Grant::ReadExec))
        .collect();
    rules.extend(
        writable
            .into_iter()
            .map(|p| FsRule::new(p, Grant::ReadWrite)),
    );
    rules.extend(tmp.map(|t| FsRule::new(t, Grant::ReadWrite)));
    rules.extend(
        dev_nodes
            .into_iter()
            .map(|d| FsRule::new(format!("/dev/{d}"), Grant::Device)),
    );
    rules
}

/// Landlock rules of a namespaced tier, on the paths of the new root: the
/// root itself may be listed (it holds only what the policy lists).
#[cfg(native_linux)]
pub(crate) fn root_rules<'a>(
    read_only: impl IntoIterator<Item = &'a PathBuf>,
    writable: impl IntoIterator<Item = &'a PathBuf>,
    dev_nodes: impl IntoIterator<Item = &'a str>,
    proc_mounted: bool,
) -> Vec<FsRule> {
    let mut rules = vec![FsRule::new("/", Grant::ListDir)];
    rules.extend(grant_rules(
        read_only,
        writable,
        Some(Path::new("/tmp")),
        dev_nodes,
    ));
    if proc_mounted {
        rules.push(FsRule::new("/proc", Grant::ReadData));
    }
    rules
}

/// Absolute, without `.`/`..`, not `/` itself, no NUL byte.
pub(crate) fn normalize(p: &Path, what: &str) -> Result<PathBuf, LaunchFailure> {
    let bad =
        |why: &str| LaunchFailure::new(Layer::Policy, format!("{what} path {p:?} {why}"), None);
    // Lossy: a NUL byte stays one. (Windows renders macOS profiles too:
    // there "/..." has a root but is not absolute.)
    if p.as_os_str().to_string_lossy().contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    if !p.has_root() {
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
            sandbox_exec: None,
        }
    }

    #[test]
    fn paths_are_normalised_and_checked() {
        let plan = Plan::new(&policy(&["/usr/./lib/", "/usr/lib", "/etc"])).unwrap();
        assert_eq!(
            plan.read_only,
            vec![PathBuf::from("/usr/lib"), PathBuf::from("/etc")]
        );
        #[cfg(native_linux)]
        assert_eq!(plan.tmp_size, 4096);
        for bad in ["usr", "/usr/../etc", "/", "//.", "/a\0b"] {
            let e = Plan::new(&policy(&[bad])).unwrap_err();
            assert_eq!(e.layer, Layer::Policy, "{bad}");
        }
    }

    #[test]
    fn grants_cover_the_policy_paths_the_folder_and_devices_once_each() {
        let mut p = policy(&["/usr", "/usr/lib/R"]);
        p.writable = vec!["/srv/out".into()];
        p.fallback_tmp = Some("/var/tmp/x".into());
        let rules = Plan::new(&p).unwrap().grants();
        let want: Vec<FsRule> = [
            FsRule::new("/usr", Grant::ReadExec),
            FsRule::new("/usr/lib/R", Grant::ReadExec),
            FsRule::new("/srv/out", Grant::ReadWrite),
            FsRule::new("/var/tmp/x", Grant::ReadWrite),
        ]
        .into_iter()
        .chain(
            DEV_NODES
                .iter()
                .map(|d| FsRule::new(format!("/dev/{d}"), Grant::Device)),
        )
        .collect();
        assert_eq!(rules, want);
    }

    #[cfg(native_linux)]
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
        // The fallback tier renders the grants and adds its own /proc view.
        let grants = Plan::new(&p).unwrap().grants();
        assert_eq!(rules[..grants.len()], grants[..]);
    }

    #[cfg(native_linux)]
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

    #[cfg(native_linux)]
    #[test]
    fn tmp_inodes_follow_the_size_within_bounds() {
        assert_eq!(tmp_inodes(0), 4096);
        assert_eq!(tmp_inodes(256 << 20), 262144);
        assert_eq!(tmp_inodes(u64::MAX), 1 << 20);
    }
}
