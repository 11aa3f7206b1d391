//! Walks of a directory tree that an untrusted process may have written:
//! measuring it (the fallback tier's folder quota) and removing it (the
//! host's clean-up of a session's folder).
//!
//! A walk never follows a symbolic link (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`)
//! and never changes a mode. It holds two fds at most whatever the depth:
//! only the directory being read is open; going back up reopens `..` and
//! checks that it is the directory (device and inode) recorded on the way
//! down, so a tree renamed under the walk stops it rather than leading it
//! out of the tree.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TreeError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the folder changed while it was walked (a directory was moved)")]
    Moved,
    #[error("{count} entries could not be removed, the first: {first}")]
    Incomplete { count: usize, first: String },
}

/// Space a tree takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Allocated bytes (`st_blocks * 512`: sparse files count what they use).
    pub bytes: u64,
    /// Entries (files, links, directories), each name counted once.
    pub inodes: u64,
}

type Id = (libc::dev_t, libc::ino_t);

fn io_err(what: impl Into<String>) -> TreeError {
    TreeError::Io {
        what: what.into(),
        source: std::io::Error::last_os_error(),
    }
}

fn lstat_at(dir: RawFd, name: &CStr) -> Option<libc::stat> {
    // SAFETY: stat is plain data that fstatat fills.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd, a NUL-terminated name and a stat buffer.
    let rc = unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    (rc == 0).then_some(st)
}

fn id_of(fd: RawFd) -> Option<Id> {
    // SAFETY: stat is plain data that fstat fills.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and stat buffer.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// Opens the directory `name` in `dir`; fails on anything but a directory
/// (a symbolic link to one included).
fn open_dir_at(dir: RawFd, name: &CStr) -> Result<OwnedFd, i32> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: a valid fd and a NUL-terminated name.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(crate::sys::errno());
    }
    // SAFETY: openat returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The names in a directory, without `.` and `..`.
fn names(dir: RawFd) -> Result<Vec<CString>, TreeError> {
    // fdopendir takes ownership of the fd it is given: give it a copy.
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd.
    let copy = unsafe { libc::fcntl(dir, libc::F_DUPFD_CLOEXEC, 0) };
    if copy < 0 {
        return Err(io_err("cannot duplicate a directory fd"));
    }
    // SAFETY: `copy` is an open directory fd that fdopendir now owns.
    let d = unsafe { libc::fdopendir(copy) };
    if d.is_null() {
        let e = io_err("cannot read a directory");
        // SAFETY: fdopendir failed, so `copy` is still ours to close.
        unsafe { libc::close(copy) };
        return Err(e);
    }
    // fdopendir may reuse the position of an fd read before: start over.
    // SAFETY: `d` is a valid DIR stream.
    unsafe { libc::rewinddir(d) };
    let mut out = Vec::new();
    loop {
        // SAFETY: `d` is a valid DIR stream; the entry lives until the next
        // readdir on it, and its name is copied out before that.
        let ent = unsafe { libc::readdir(d) };
        if ent.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated within the entry.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            out.push(name.to_owned());
        }
    }
    // SAFETY: closes the stream and the fd it owns.
    unsafe { libc::closedir(d) };
    Ok(out)
}

/// What a walk does with the entries it finds.
trait Visit {
    /// A non-directory entry (file, symbolic link, socket, ...) of `dir`.
    fn entry(&mut self, dir: RawFd, name: &CStr, st: &libc::stat);
    /// A directory about to be entered.
    fn directory(&mut self, st: &libc::stat);
    /// A directory that cannot be entered (unreadable, or replaced by a
    /// link since it was listed).
    fn unreadable(&mut self, dir: RawFd, name: &CStr, errno: i32);
    /// A directory whose entries were all visited; `parent` holds it.
    fn leave(&mut self, parent: RawFd, name: &CStr);
}

struct Level {
    fd: Option<OwnedFd>,
    id: Id,
    name: CString,
    /// Subdirectories not visited yet.
    pending: Vec<CString>,
}

fn scan(fd: RawFd, v: &mut impl Visit) -> Result<Vec<CString>, TreeError> {
    let mut dirs = Vec::new();
    for name in names(fd)? {
        let Some(st) = lstat_at(fd, &name) else {
            // Gone since it was listed.
            continue;
        };
        if is_dir(&st) {
            v.directory(&st);
            dirs.push(name);
        } else {
            v.entry(fd, &name, &st);
        }
    }
    Ok(dirs)
}

/// Walks the directory `root` (named `name` in its parent), depth first;
/// `leave` is called for every directory below `root`, not for `root`.
fn walk(root: OwnedFd, name: CString, v: &mut impl Visit) -> Result<(), TreeError> {
    let id = id_of(root.as_raw_fd()).ok_or_else(|| io_err("cannot stat the folder"))?;
    let pending = scan(root.as_raw_fd(), v)?;
    let mut stack = vec![Level {
        fd: Some(root),
        id,
        name,
        pending,
    }];
    loop {
        let depth = stack.len();
        let top = &mut stack[depth - 1];
        if let Some(name) = top.pending.pop() {
            let Some(fd) = top.fd.as_ref().map(|f| f.as_raw_fd()) else {
                return Err(TreeError::Moved);
            };
            match open_dir_at(fd, &name) {
                Ok(child) => {
                    let id = id_of(child.as_raw_fd())
                        .ok_or_else(|| io_err("cannot stat a directory"))?;
                    let pending = scan(child.as_raw_fd(), v)?;
                    // Only the deepest level keeps its fd.
                    top.fd = None;
                    stack.push(Level {
                        fd: Some(child),
                        id,
                        name,
                        pending,
                    });
                }
                Err(libc::ENOENT) => {}
                Err(e) => v.unreadable(fd, &name, e),
            }
            continue;
        }
        let Some(done) = stack.pop() else {
            return Ok(());
        };
        let Some(parent) = stack.last_mut() else {
            return Ok(());
        };
        let Some(done_fd) = done.fd else {
            return Err(TreeError::Moved);
        };
        if parent.fd.is_none() {
            let up = open_dir_at(done_fd.as_raw_fd(), c"..").map_err(|_| TreeError::Moved)?;
            if id_of(up.as_raw_fd()) != Some(parent.id) {
                return Err(TreeError::Moved);
            }
            parent.fd = Some(up);
        }
        drop(done_fd);
        if let Some(pfd) = &parent.fd {
            v.leave(pfd.as_raw_fd(), &done.name);
        }
    }
}

struct Measure(Usage);

impl Measure {
    fn add(&mut self, st: &libc::stat) {
        self.0.inodes += 1;
        self.0.bytes = self
            .0
            .bytes
            .saturating_add((st.st_blocks as u64).saturating_mul(512));
    }
}

impl Visit for Measure {
    fn entry(&mut self, _: RawFd, _: &CStr, st: &libc::stat) {
        self.add(st);
    }
    fn directory(&mut self, st: &libc::stat) {
        self.add(st);
    }
    fn unreadable(&mut self, _: RawFd, _: &CStr, _: i32) {}
    fn leave(&mut self, _: RawFd, _: &CStr) {}
}

/// The space the tree under the open directory `dir` takes (the directory
/// itself not counted).
pub fn measure(dir: RawFd) -> Result<Usage, TreeError> {
    let root = open_dir_at(dir, c".").map_err(|_| io_err("cannot open the folder"))?;
    let mut m = Measure(Usage::default());
    walk(root, CString::default(), &mut m)?;
    Ok(m.0)
}

#[derive(Default)]
struct Remove {
    failed: usize,
    first: Option<String>,
}

impl Remove {
    fn unlink(&mut self, dir: RawFd, name: &CStr, flags: libc::c_int) {
        // SAFETY: a valid fd and a NUL-terminated name; unlinkat never
        // follows a link (it removes the link itself).
        if unsafe { libc::unlinkat(dir, name.as_ptr(), flags) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOENT) {
                return;
            }
            self.failed += 1;
            self.first
                .get_or_insert_with(|| format!("{}: {e}", name.to_string_lossy()));
        }
    }
}

impl Visit for Remove {
    fn entry(&mut self, dir: RawFd, name: &CStr, _: &libc::stat) {
        self.unlink(dir, name, 0);
    }
    fn directory(&mut self, _: &libc::stat) {}
    fn unreadable(&mut self, dir: RawFd, name: &CStr, errno: i32) {
        if errno == libc::ENOTDIR || errno == libc::ELOOP {
            // Replaced by a link or a file since it was listed.
            self.unlink(dir, name, 0);
        } else {
            // Unreadable: removable only when empty.
            self.unlink(dir, name, libc::AT_REMOVEDIR);
        }
    }
    fn leave(&mut self, parent: RawFd, name: &CStr) {
        self.unlink(parent, name, libc::AT_REMOVEDIR);
    }
}

/// Removes `path` (a file, a link or a whole tree) without following any
/// link below it. `path`'s parent is trusted (the host's own folder); what
/// is below it may have been written by the sandboxed code.
pub fn remove(path: &Path) -> Result<(), TreeError> {
    let what = || path.display().to_string();
    let (Some(parent), Some(base)) = (path.parent(), path.file_name()) else {
        return Err(TreeError::Io {
            what: what(),
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        });
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let cparent = crate::sys::cpath(parent).map_err(|e| TreeError::Io {
        what: what(),
        source: std::io::Error::from_raw_os_error(e),
    })?;
    let base = crate::sys::cstring(base.as_bytes()).ok_or_else(|| TreeError::Io {
        what: what(),
        source: std::io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    // SAFETY: a NUL-terminated path.
    let pfd = unsafe {
        libc::open(
            cparent.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if pfd < 0 {
        return Err(io_err(what()));
    }
    // SAFETY: open returned a new fd that nothing else owns.
    let pfd = unsafe { OwnedFd::from_raw_fd(pfd) };
    let mut r = Remove::default();
    match lstat_at(pfd.as_raw_fd(), &base) {
        None => return Ok(()),
        Some(st) if !is_dir(&st) => r.unlink(pfd.as_raw_fd(), &base, 0),
        Some(_) => match open_dir_at(pfd.as_raw_fd(), &base) {
            Ok(root) => {
                walk(root, base.clone(), &mut r)?;
                r.unlink(pfd.as_raw_fd(), &base, libc::AT_REMOVEDIR);
            }
            Err(e) => r.unreadable(pfd.as_raw_fd(), &base, e),
        },
    }
    match r.first {
        None => Ok(()),
        Some(first) => Err(TreeError::Incomplete {
            count: r.failed,
            first,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::PathBuf;

    /// A fresh folder under the system's temporary folder, removed (with
    /// the code under test) when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = remove(&self.0);
        }
    }

    fn tempdir() -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "securer-tree-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir(&p).unwrap();
        TempDir(p)
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn open(p: &Path) -> OwnedFd {
        let c = crate::sys::cpath(p).unwrap();
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
        assert!(fd >= 0);
        // SAFETY: a new fd.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    /// A tree with links to host files and folders (absolute and relative),
    /// a link loop, an empty folder of mode 000 (what `mkdir(d, 0)` makes)
    /// and a chain of folders deeper than PATH_MAX allows to name.
    fn plant(root: &Path, outside: &Path) {
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/file"), vec![7u8; 10000]).unwrap();
        symlink(outside, root.join("link-to-dir")).unwrap();
        symlink(outside.join("target"), root.join("a/link-to-file")).unwrap();
        symlink(outside.join("locked"), root.join("link-to-locked")).unwrap();
        symlink("../../..", root.join("a/b/up")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        std::fs::create_dir(root.join("closed")).unwrap();
        std::fs::set_permissions(root.join("closed"), std::fs::Permissions::from_mode(0o000))
            .unwrap();
        std::fs::create_dir(root.join("deep")).unwrap();
        let mut cur = open(&root.join("deep"));
        for _ in 0..3000 {
            // SAFETY: a valid fd and a NUL-terminated name.
            assert_eq!(
                unsafe { libc::mkdirat(cur.as_raw_fd(), c"d".as_ptr(), 0o700) },
                0
            );
            cur = open_dir_at(cur.as_raw_fd(), c"d").unwrap();
        }
        // SAFETY: a valid fd and a NUL-terminated name.
        let f = unsafe {
            libc::openat(
                cur.as_raw_fd(),
                c"bottom".as_ptr(),
                libc::O_CREAT | libc::O_WRONLY,
                0o600,
            )
        };
        assert!(f >= 0);
        // SAFETY: closing the fd just opened.
        unsafe { libc::close(f) };
    }

    fn outside() -> TempDir {
        let o = tempdir();
        std::fs::write(o.path().join("target"), b"keep me").unwrap();
        std::fs::set_permissions(
            o.path().join("target"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::create_dir(o.path().join("locked")).unwrap();
        std::fs::set_permissions(
            o.path().join("locked"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        o
    }

    #[test]
    fn remove_never_follows_links_nor_changes_modes() {
        let out = outside();
        let before: Vec<u32> = ["", "target", "locked"]
            .iter()
            .map(|p| mode(&out.path().join(p)))
            .collect();
        let session = tempdir();
        let root = session.path().join("securer-x");
        std::fs::create_dir(&root).unwrap();
        plant(&root, out.path());
        remove(&root).unwrap();
        assert!(std::fs::symlink_metadata(&root).is_err());
        let after: Vec<u32> = ["", "target", "locked"]
            .iter()
            .map(|p| mode(&out.path().join(p)))
            .collect();
        assert_eq!(before, after);
        assert_eq!(
            std::fs::read(out.path().join("target")).unwrap(),
            b"keep me"
        );
        std::fs::set_permissions(
            out.path().join("locked"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
    }

    #[test]
    fn remove_takes_a_file_or_a_link_without_touching_the_target() {
        let out = outside();
        let d = tempdir();
        let link = d.path().join("l");
        symlink(out.path(), &link).unwrap();
        remove(&link).unwrap();
        assert!(out.path().join("target").exists());
        let f = d.path().join("f");
        std::fs::write(&f, b"").unwrap();
        remove(&f).unwrap();
        assert!(!f.exists());
        // Nothing there: nothing to do.
        remove(&f).unwrap();
    }

    #[test]
    fn measure_counts_allocated_bytes_and_entries_without_following_links() {
        let out = outside();
        std::fs::write(out.path().join("big"), vec![1u8; 1 << 20]).unwrap();
        let d = tempdir();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/f"), vec![1u8; 100_000]).unwrap();
        symlink(out.path(), d.path().join("l")).unwrap();
        let u = measure(open(d.path()).as_raw_fd()).unwrap();
        assert_eq!(u.inodes, 3);
        assert!(u.bytes >= 100_000, "{u:?}");
        assert!(u.bytes < 1 << 20, "{u:?}");
    }

    #[test]
    fn measure_walks_a_deep_tree_with_few_fds() {
        let out = outside();
        let d = tempdir();
        plant(d.path(), out.path());
        let u = measure(open(d.path()).as_raw_fd()).unwrap();
        assert!(u.inodes > 3000, "{u:?}");
        remove(&d.path().join("deep")).unwrap();
    }
}
