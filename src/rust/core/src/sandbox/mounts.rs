//! Layer 2: a fresh root, built by pid 1 in its new mount namespace.
//!
//! `collect` runs with the launcher's own credentials and clones (with
//! `open_tree`) a detached copy of every path to expose, already set
//! read-only/nosuid/nodev (recursively, submounts included). `build` then
//! mounts a tmpfs, a new /proc, pivots into the tmpfs, detaches the host's
//! tree, and attaches: a private /tmp tmpfs of capped size, the device
//! nodes, the cloned trees at their canonical paths, symlinks the policy
//! lists (Debian's /bin -> usr/bin), and finally makes the root read-only.

use super::plan::{tmp_inodes, Plan, DEV_NODES};
use crate::policy::{LaunchFailure, Layer};
use crate::sys::{self, cpath, mount};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// The size of the root tmpfs itself: it holds only mount points and links.
const ROOT_TMPFS: &str = "mode=0755,size=1048576,nr_inodes=4096";

struct Bind {
    dest: PathBuf,
    tree: OwnedFd,
    writable: bool,
    is_dir: bool,
}

/// What `collect` found on the host.
pub(crate) struct Sources {
    binds: Vec<Bind>,
    /// (path, link target) for listed paths that are symlinks.
    links: Vec<(PathBuf, PathBuf)>,
    /// (path as listed, canonical path) when they differ.
    aliases: Vec<(PathBuf, PathBuf)>,
    devs: Vec<(&'static str, OwnedFd)>,
    notes: Vec<String>,
}

/// The root as built.
pub(crate) struct Root {
    pub read_only: Vec<PathBuf>,
    pub writable: Vec<PathBuf>,
    pub dev_nodes: Vec<String>,
    pub proc_mounted: bool,
    links: Vec<PathBuf>,
    tmp_size: u64,
    notes: Vec<String>,
}

impl Root {
    pub fn detail(&self) -> String {
        let list = |v: &[PathBuf]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        let mut d = format!(
            "tmpfs root via pivot_root, read-only; read-only binds: {}; writable binds: {}; \
             symlinks: {}; /tmp: private tmpfs of {} bytes; /dev: {}; /proc: {}",
            list(&self.read_only),
            list(&self.writable),
            list(&self.links),
            self.tmp_size,
            self.dev_nodes.join(" "),
            if self.proc_mounted {
                "new instance for the pid namespace"
            } else {
                "absent"
            }
        );
        if !self.notes.is_empty() {
            d.push_str("; ");
            d.push_str(&self.notes.join("; "));
        }
        d
    }
}

/// A detached copy of the mount tree at `path`.
fn open_tree(path: &Path, recursive: bool) -> Result<OwnedFd, i32> {
    let c = cpath(path)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: open_tree with a valid NUL-terminated path and integer flags.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(sys::errno());
    }
    // SAFETY: open_tree returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn setattr(dirfd: i32, path: &CString, at_flags: libc::c_int, set: u64) -> Result<(), i32> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is NUL-terminated and `attr` is a valid struct
    // mount_attr whose size is passed along.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            at_flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(sys::errno());
    }
    Ok(())
}

/// Adds mount attributes to every mount of a detached tree.
fn set_tree_attrs(tree: &OwnedFd, set: u64) -> Result<(), i32> {
    setattr(
        tree.as_raw_fd(),
        &CString::default(),
        libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
        set,
    )
}

fn move_mount(tree: &OwnedFd, to: &Path) -> Result<(), i32> {
    let to = cpath(to)?;
    let empty = CString::default();
    // SAFETY: both paths are NUL-terminated strings alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(sys::errno());
    }
    Ok(())
}

/// A policy path under the zygote's /tmp, taken along into a forked
/// session's own /tmp (which hides the zygote's).
pub(crate) struct Carried {
    path: PathBuf,
    what: CarriedKind,
}

enum CarriedKind {
    Tree { tree: OwnedFd, is_dir: bool },
    Link(PathBuf),
}

/// Clones what the zygote's root shows at each of `paths` under /tmp
/// (binds keep their read-only and other attributes); `place_carried`
/// puts them back once the session's /tmp is mounted.
pub(crate) fn carry_from_tmp<'a>(
    paths: impl IntoIterator<Item = &'a PathBuf>,
) -> Result<Vec<Carried>, LaunchFailure> {
    let mut out = Vec::new();
    for path in paths {
        if !path.starts_with("/tmp") || path == Path::new("/tmp") {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        let what = if meta.file_type().is_symlink() {
            match std::fs::read_link(path) {
                Ok(target) => CarriedKind::Link(target),
                Err(_) => continue,
            }
        } else {
            let tree = open_tree(path, true).map_err(|e| {
                LaunchFailure::os(Layer::Root, format!("cannot clone {}", path.display()), e)
            })?;
            CarriedKind::Tree {
                tree,
                is_dir: meta.is_dir(),
            }
        };
        out.push(Carried {
            path: path.clone(),
            what,
        });
    }
    // Parents before children.
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Puts the carried paths back under the session's new /tmp.
pub(crate) fn place_carried(carried: Vec<Carried>) -> Result<(), LaunchFailure> {
    for c in carried {
        let fail = |e: i32| {
            LaunchFailure::os(
                Layer::Root,
                format!("cannot carry {} into the session's /tmp", c.path.display()),
                e,
            )
        };
        if let Some(parent) = c.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(e.raw_os_error().unwrap_or(0)))?;
        }
        match &c.what {
            CarriedKind::Link(target) => std::os::unix::fs::symlink(target, &c.path)
                .map_err(|e| fail(e.raw_os_error().unwrap_or(0)))?,
            CarriedKind::Tree { tree, is_dir } => {
                let point = if *is_dir {
                    std::fs::create_dir_all(&c.path)
                } else {
                    std::fs::File::create(&c.path).map(drop)
                };
                point.map_err(|e| fail(e.raw_os_error().unwrap_or(0)))?;
                move_mount(tree, &c.path).map_err(fail)?;
            }
        }
    }
    Ok(())
}

/// Places the sandbox's own mounts live.
fn reserved(p: &Path) -> bool {
    p == Path::new("/tmp") || p.starts_with("/proc") || p.starts_with("/dev")
}

fn io_note(path: &Path, what: &str, e: &std::io::Error) -> String {
    format!("{} {what} ({e})", path.display())
}

/// Makes every mount of this (new) mount namespace private: nothing
/// mounted in it may propagate back to the host.
pub(crate) fn make_private() -> Result<(), LaunchFailure> {
    mount(
        "none",
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .map_err(|e| LaunchFailure::os(Layer::Root, "cannot make the mount namespace private", e))
}

/// Opens what the root will show, with the launcher's host credentials.
pub(crate) fn collect(plan: &Plan) -> Result<Sources, LaunchFailure> {
    make_private()?;

    let mut s = Sources {
        binds: Vec::new(),
        links: Vec::new(),
        aliases: Vec::new(),
        devs: Vec::new(),
        notes: Vec::new(),
    };
    let entries = plan
        .read_only
        .iter()
        .map(|p| (p, false))
        .chain(plan.writable.iter().map(|p| (p, true)));
    for (path, writable) in entries {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                s.notes.push(io_note(path, "skipped", &e));
                continue;
            }
        };
        if meta.file_type().is_symlink() {
            match std::fs::read_link(path) {
                Ok(target) => s.links.push((path.clone(), target)),
                Err(e) => s.notes.push(io_note(path, "skipped", &e)),
            }
            continue;
        }
        let canon = match std::fs::canonicalize(path) {
            Ok(c) => c,
            Err(e) => {
                s.notes.push(io_note(path, "skipped", &e));
                continue;
            }
        };
        if canon == Path::new("/") || reserved(&canon) {
            s.notes.push(format!(
                "{} skipped (the sandbox provides its own)",
                path.display()
            ));
            continue;
        }
        if s.binds.iter().any(|b| b.dest == canon) {
            s.notes.push(format!(
                "{} listed twice, kept the first (read-only wins)",
                path.display()
            ));
            continue;
        }
        let tree = open_tree(&canon, true).map_err(|e| {
            LaunchFailure::os(
                Layer::Root,
                format!("cannot clone the mount of {}", path.display()),
                e,
            )
        })?;
        let attrs = if writable {
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
        } else {
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
        };
        set_tree_attrs(&tree, attrs).map_err(|e| {
            LaunchFailure::os(
                Layer::Root,
                format!("cannot set mount attributes on {}", path.display()),
                e,
            )
        })?;
        if canon != *path {
            s.aliases.push((path.clone(), canon.clone()));
        }
        s.binds.push(Bind {
            dest: canon,
            tree,
            writable,
            is_dir: meta.is_dir(),
        });
    }
    // Parents before children.
    s.binds.sort_by(|a, b| a.dest.cmp(&b.dest));
    for d in DEV_NODES {
        let p = Path::new("/dev").join(d);
        match open_tree(&p, false) {
            Ok(t) => {
                set_tree_attrs(&t, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC).map_err(|e| {
                    LaunchFailure::os(
                        Layer::Root,
                        format!("mount attributes of {}", p.display()),
                        e,
                    )
                })?;
                s.devs.push((d, t));
            }
            Err(e) => s
                .notes
                .push(format!("{} missing ({})", p.display(), sys::strerror(e))),
        }
    }
    Ok(s)
}

fn mkdir(p: &Path) -> Result<(), LaunchFailure> {
    std::fs::create_dir_all(p).map_err(|e| {
        let errno = e.raw_os_error();
        LaunchFailure::new(
            Layer::Root,
            format!("cannot create {}: {e}", p.display()),
            errno,
        )
    })
}

/// Creates the mount point for a bind; `Err` is a note.
fn mount_point(b: &Bind) -> Result<(), String> {
    let p = &b.dest;
    if b.is_dir {
        return std::fs::create_dir_all(p).map_err(|e| io_note(p, "mount point", &e));
    }
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_note(p, "mount point", &e))?;
    }
    if std::fs::symlink_metadata(p).is_err() {
        std::fs::File::create(p).map_err(|e| io_note(p, "mount point", &e))?;
    }
    Ok(())
}

/// Builds the new root and enters it. Runs as uid 0 of the user namespace.
pub(crate) fn build(plan: &Plan, sources: Sources) -> Result<Root, LaunchFailure> {
    let Sources {
        binds,
        links,
        aliases,
        devs,
        mut notes,
    } = sources;

    // Any directory will do as the mount point of the new root: the host's
    // tree is detached below, and the sources are already open.
    let staging = ["/tmp", "/mnt"]
        .iter()
        .map(Path::new)
        .find(|p| p.is_dir())
        .ok_or_else(|| {
            LaunchFailure::new(
                Layer::Root,
                "no /tmp or /mnt to build the new root on",
                None,
            )
        })?;
    let nosuid_nodev = libc::MS_NOSUID | libc::MS_NODEV;
    mount(
        "tmpfs",
        staging,
        Some("tmpfs"),
        nosuid_nodev,
        Some(ROOT_TMPFS),
    )
    .map_err(|e| LaunchFailure::os(Layer::Root, "cannot mount the root tmpfs", e))?;

    // procfs can only be mounted while the host's /proc is visible.
    let proc_dir = staging.join("proc");
    mkdir(&proc_dir)?;
    // hidepid: processes R may not ptrace (init, outside its Landlock
    // domain) are not even listed. Kernels before 5.8 want "hidepid=2".
    let proc_flags = nosuid_nodev | libc::MS_NOEXEC;
    let proc_mounted = match mount(
        "proc",
        &proc_dir,
        Some("proc"),
        proc_flags,
        Some("hidepid=invisible"),
    )
    .or_else(|_| {
        mount(
            "proc",
            &proc_dir,
            Some("proc"),
            proc_flags,
            Some("hidepid=2"),
        )
    })
    .or_else(|_| mount("proc", &proc_dir, Some("proc"), proc_flags, None))
    {
        Ok(()) => true,
        Err(e) => {
            notes.push(format!("no /proc ({})", sys::strerror(e)));
            false
        }
    };

    let staging_c =
        cpath(staging).map_err(|e| LaunchFailure::os(Layer::Root, "the staging path", e))?;
    let dot = CString::from(c".");
    // SAFETY: NUL-terminated paths alive for the calls.
    unsafe {
        if libc::chdir(staging_c.as_ptr()) != 0 {
            return Err(LaunchFailure::os(
                Layer::Root,
                "chdir to the new root",
                sys::errno(),
            ));
        }
        // Stacks the old root on top of the new one, then detaches it.
        if libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) != 0 {
            return Err(LaunchFailure::os(Layer::Root, "pivot_root", sys::errno()));
        }
        if libc::umount2(dot.as_ptr(), libc::MNT_DETACH) != 0 {
            return Err(LaunchFailure::os(
                Layer::Root,
                "cannot detach the host's root",
                sys::errno(),
            ));
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            return Err(LaunchFailure::os(Layer::Root, "chdir to /", sys::errno()));
        }
    }

    let tmp = Path::new("/tmp");
    mkdir(tmp)?;
    let opts = format!(
        "mode=1777,size={},nr_inodes={}",
        plan.tmp_size,
        tmp_inodes(plan.tmp_size)
    );
    mount("tmpfs", tmp, Some("tmpfs"), nosuid_nodev, Some(&opts))
        .map_err(|e| LaunchFailure::os(Layer::Root, "cannot mount the /tmp tmpfs", e))?;

    mkdir(Path::new("/dev"))?;
    let mut dev_nodes = Vec::new();
    for (name, tree) in devs {
        let p = Path::new("/dev").join(name);
        let placed = std::fs::File::create(&p)
            .map_err(|e| e.raw_os_error().unwrap_or(0))
            .and_then(|_| move_mount(&tree, &p));
        match placed {
            Ok(()) => dev_nodes.push(name.to_string()),
            Err(e) => notes.push(format!(
                "{} not mounted ({})",
                p.display(),
                sys::strerror(e)
            )),
        }
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, Path::new("/dev").join(name));
    }

    let mut read_only = Vec::new();
    let mut writable = Vec::new();
    for b in binds {
        if let Err(note) = mount_point(&b) {
            notes.push(note);
            continue;
        }
        if let Err(e) = move_mount(&b.tree, &b.dest) {
            notes.push(format!(
                "{} not mounted ({})",
                b.dest.display(),
                sys::strerror(e)
            ));
            continue;
        }
        if b.writable {
            writable.push(b.dest);
        } else {
            read_only.push(b.dest);
        }
    }

    let mut made_links = Vec::new();
    for (path, target) in links {
        if std::fs::symlink_metadata(&path).is_ok() {
            notes.push(format!("{} exists, link not made", path.display()));
            continue;
        }
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        match std::os::unix::fs::symlink(&target, &path) {
            Ok(()) => made_links.push(path),
            Err(e) => notes.push(io_note(&path, "link not made", &e)),
        }
    }
    // A listed path reached through a symlink the policy did not list
    // (e.g. /lib/x86_64-linux-gnu with /lib -> usr/lib) still resolves.
    for (path, canon) in aliases {
        if std::fs::symlink_metadata(&path).is_ok() || path.exists() {
            continue;
        }
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        match std::os::unix::fs::symlink(&canon, &path) {
            Ok(()) => made_links.push(path),
            Err(e) => notes.push(io_note(&path, "link not made", &e)),
        }
    }

    setattr(
        libc::AT_FDCWD,
        &CString::from(c"/"),
        0,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    )
    .map_err(|e| LaunchFailure::os(Layer::Root, "cannot make the root read-only", e))?;

    Ok(Root {
        read_only,
        writable,
        dev_nodes,
        proc_mounted,
        links: made_links,
        tmp_size: plan.tmp_size,
        notes,
    })
}
