//! Files moved between the host and a session's writable space.
//!
//! Two sides use this module:
//!
//! - The child runtime (`Space`) resolves the paths of uploads, downloads
//!   and listings inside the session's writable space (its `/tmp`, or its
//!   folder, and the writable folders it was granted): a path outside it,
//!   or one whose symbolic links lead outside it, is refused by name. A
//!   file is opened without following a final link, and the path the
//!   kernel opened is checked again after opening.
//! - Both sides write through `AtomicFile`: the bytes go to a new file
//!   beside the target, created exclusively and without following links in
//!   the folder opened once at the start, and are renamed over the target
//!   only when complete. So the host writes exactly the path the user
//!   named, whatever the child sends or plants meanwhile (a link at the
//!   target is replaced, never followed), and a failed transfer leaves
//!   nothing behind.
//!
//! The sandbox is what confines the child; these checks give clear errors
//! and keep the runtime's own file operations inside the space also where
//! there is no sandbox (`sandbox = FALSE`).

use crate::sys;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use thiserror::Error;

/// What is wrong with a file operation; R raises a class per problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileProblem {
    /// The file or its folder does not exist.
    NotFound,
    /// The path is outside the writable space.
    Outside,
    /// A symbolic link on the path leads outside the writable space.
    Symlink,
    /// Not a regular file (a folder, a FIFO, a device).
    NotFile,
    /// Larger than the cap.
    TooLarge,
    /// Reading or writing failed.
    Io,
}

impl FileProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            FileProblem::NotFound => "not_found",
            FileProblem::Outside => "outside",
            FileProblem::Symlink => "symlink",
            FileProblem::NotFile => "not_file",
            FileProblem::TooLarge => "too_large",
            FileProblem::Io => "io",
        }
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{message}")]
pub struct FileError {
    pub problem: FileProblem,
    pub message: String,
}

fn fail(problem: FileProblem, message: impl Into<String>) -> FileError {
    FileError {
        problem,
        message: message.into(),
    }
}

fn shown(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// An error of the system call on `path`, by errno.
fn os_fail(path: &Path, e: &std::io::Error) -> FileError {
    let problem = match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => FileProblem::NotFound,
        Some(libc::ELOOP) => FileProblem::Symlink,
        Some(libc::EISDIR) => FileProblem::NotFile,
        Some(libc::EFBIG) => FileProblem::TooLarge,
        _ => FileProblem::Io,
    };
    let what = match problem {
        FileProblem::NotFound => "does not exist".to_string(),
        FileProblem::Symlink => "is a symbolic link".to_string(),
        FileProblem::NotFile => "is a folder".to_string(),
        _ => format!("cannot be used: {e}"),
    };
    fail(problem, format!("{} {what}", shown(path)))
}

/// `path` made absolute (relative to `base`) and lexically normal: no
/// `.`, no `..` (which stops at the root), no repeated separators.
pub fn normalize(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn within(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|r| path.starts_with(r))
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The path in the session, under the folder listed.
    pub path: PathBuf,
    /// "file", "directory", "symlink" or "other".
    pub kind: &'static str,
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub modified: f64,
}

/// A session's writable space: its roots as named (the first is where
/// relative paths start) and as the kernel resolves them.
#[derive(Debug, Clone)]
pub struct Space {
    roots: Vec<PathBuf>,
    real: Vec<PathBuf>,
}

impl Space {
    /// The space of `roots` (absolute paths). Roots that do not exist are
    /// left out; the first one must exist.
    pub fn new(roots: &[PathBuf]) -> Result<Space, FileError> {
        let mut named = Vec::new();
        let mut real = Vec::new();
        for (i, root) in roots.iter().enumerate() {
            if !root.is_absolute() {
                return Err(fail(
                    FileProblem::Io,
                    format!(
                        "the writable folder {} is not an absolute path",
                        shown(root)
                    ),
                ));
            }
            match std::fs::canonicalize(root) {
                Ok(r) => {
                    named.push(normalize(Path::new("/"), root));
                    real.push(r);
                }
                Err(e) if i == 0 => return Err(os_fail(root, &e)),
                Err(_) => {}
            }
        }
        if named.is_empty() {
            return Err(fail(FileProblem::Io, "the session has no writable folder"));
        }
        Ok(Space { roots: named, real })
    }

    /// `path` (absolute, or relative to the first root) as an absolute,
    /// lexically normal path inside one of the roots, links not yet
    /// resolved.
    pub fn locate(&self, path: &Path) -> Result<PathBuf, FileError> {
        let p = normalize(&self.roots[0], path);
        if within(&p, &self.roots) {
            Ok(p)
        } else {
            Err(fail(
                FileProblem::Outside,
                format!(
                    "{} is outside the session's writable space ({})",
                    shown(&p),
                    self.describe()
                ),
            ))
        }
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self.roots.iter().map(|r| shown(r)).collect();
        names.join(", ")
    }

    fn check_real(&self, named: &Path, real: &Path) -> Result<(), FileError> {
        if within(real, &self.real) {
            Ok(())
        } else {
            Err(fail(
                FileProblem::Symlink,
                format!(
                    "{} leads outside the session's writable space through a symbolic link",
                    shown(named)
                ),
            ))
        }
    }

    /// An existing path inside the space, links resolved (they must stay
    /// inside it).
    pub fn existing(&self, path: &Path) -> Result<PathBuf, FileError> {
        let p = self.locate(path)?;
        let real = std::fs::canonicalize(&p).map_err(|e| os_fail(&p, &e))?;
        self.check_real(&p, &real)?;
        Ok(real)
    }

    /// Where a file written to `path` goes: its folder resolved (inside the
    /// space), its name kept. A link at the name itself is replaced by the
    /// write, not followed.
    pub fn target(&self, path: &Path) -> Result<PathBuf, FileError> {
        let p = self.locate(path)?;
        let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
            return Err(fail(
                FileProblem::NotFile,
                format!("{} is not a file name", shown(&p)),
            ));
        };
        let dir = std::fs::canonicalize(parent).map_err(|e| os_fail(parent, &e))?;
        self.check_real(parent, &dir)?;
        if !dir.is_dir() {
            return Err(fail(
                FileProblem::NotFound,
                format!("{} is not a folder", shown(parent)),
            ));
        }
        let target = dir.join(name);
        if std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
            return Err(fail(
                FileProblem::NotFile,
                format!("{} is a folder", shown(&p)),
            ));
        }
        Ok(target)
    }

    /// Opens an existing regular file of at most `max` bytes for reading:
    /// the file and its size.
    pub fn open_read(&self, path: &Path, max: u64) -> Result<(File, u64), FileError> {
        let named = self.locate(path)?;
        let real = self.existing(path)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&real)
            .map_err(|e| os_fail(&named, &e))?;
        let meta = file.metadata().map_err(|e| os_fail(&named, &e))?;
        if !meta.is_file() {
            let what = if meta.is_dir() {
                "is a folder"
            } else {
                "is not a regular file"
            };
            return Err(fail(
                FileProblem::NotFile,
                format!("{} {what}", shown(&named)),
            ));
        }
        #[cfg(target_os = "linux")]
        {
            // A folder on the way may have become a link since it was
            // resolved: what the kernel opened is what counts.
            let at = format!("/proc/self/fd/{}", file.as_raw_fd());
            if let Ok(opened) = std::fs::read_link(at) {
                self.check_real(&named, &opened)?;
            }
        }
        if meta.len() > max {
            return Err(fail(
                FileProblem::TooLarge,
                format!(
                    "{} holds {} bytes, more than the limit of {max} bytes",
                    shown(&named),
                    meta.len()
                ),
            ));
        }
        Ok((file, meta.len()))
    }

    /// The entries of the folder `dir` (and of its subfolders with
    /// `recursive`; links are listed, never followed), sorted by path, at
    /// most `max_entries`; true when more were left out.
    pub fn list(
        &self,
        dir: &Path,
        recursive: bool,
        max_entries: usize,
    ) -> Result<(Vec<Entry>, bool), FileError> {
        let named = self.locate(dir)?;
        let real = self.existing(dir)?;
        if !real.is_dir() {
            return Err(fail(
                FileProblem::NotFile,
                format!("{} is not a folder", shown(&named)),
            ));
        }
        let mut out = Vec::new();
        let mut todo = vec![(real, named)];
        let mut truncated = false;
        while let Some((real_dir, shown_dir)) = todo.pop() {
            let Ok(rd) = std::fs::read_dir(&real_dir) else {
                continue;
            };
            for item in rd.flatten() {
                if out.len() >= max_entries {
                    truncated = true;
                    break;
                }
                let Ok(meta) = std::fs::symlink_metadata(item.path()) else {
                    continue;
                };
                let ft = meta.file_type();
                let kind = if ft.is_symlink() {
                    "symlink"
                } else if ft.is_dir() {
                    "directory"
                } else if ft.is_file() {
                    "file"
                } else {
                    "other"
                };
                let path = shown_dir.join(item.file_name());
                if recursive && ft.is_dir() {
                    todo.push((item.path(), path.clone()));
                }
                out.push(Entry {
                    path,
                    kind,
                    size: meta.len(),
                    modified: meta.mtime() as f64 + meta.mtime_nsec() as f64 / 1e9,
                });
            }
            if truncated {
                break;
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((out, truncated))
    }
}

/// Reads up to `n` bytes (fewer only at the end of the file).
pub fn read_chunk(file: &mut File, n: usize) -> Result<Vec<u8>, FileError> {
    let mut buf = Vec::with_capacity(n.min(1 << 24));
    file.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|e| fail(FileProblem::Io, format!("reading the file failed: {e}")))?;
    Ok(buf)
}

/// A file written beside its target and renamed over it once complete
/// (see the module doc). Dropped before `commit`, it leaves nothing.
#[derive(Debug)]
pub struct AtomicFile {
    dir: OwnedFd,
    tmp: CString,
    name: CString,
    file: Option<File>,
    target: PathBuf,
    written: u64,
    max: u64,
}

impl AtomicFile {
    /// Starts writing `target` (at most `max` bytes). Its folder must exist
    /// and is opened once, following the links of the path the caller
    /// named; from then on everything happens inside that folder.
    pub fn create(target: &Path, max: u64) -> Result<AtomicFile, FileError> {
        let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
            return Err(fail(
                FileProblem::NotFile,
                format!("{} is not a file name", shown(target)),
            ));
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let bad_path = |_| {
            fail(
                FileProblem::Io,
                format!("{} holds a NUL byte", shown(target)),
            )
        };
        let cdir = sys::cpath(parent).map_err(bad_path)?;
        let name = sys::cstring(name.as_bytes()).ok_or_else(|| bad_path(0))?;
        // SAFETY: a NUL-terminated path; the fd returned is owned below.
        let fd = unsafe {
            libc::open(
                cdir.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(fail(
                FileProblem::NotFound,
                format!("the folder {} cannot be opened: {e}", shown(parent)),
            ));
        }
        // SAFETY: open() returned a new fd that nothing else owns.
        let dir = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: stat is plain data that fstatat fills.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid fd, a NUL-terminated name and a stat buffer.
        let rc = unsafe {
            libc::fstatat(
                dir.as_raw_fd(),
                name.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(fail(
                FileProblem::NotFile,
                format!("{} is a folder", shown(target)),
            ));
        }
        let mut rand = [0u8; 8];
        crate::host::random_bytes(&mut rand).map_err(|e| fail(FileProblem::Io, e.message))?;
        let hex: String = rand.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = sys::cstring(format!(".securer-{hex}.part").as_bytes())
            .ok_or_else(|| fail(FileProblem::Io, "bad temporary name"))?;
        // SAFETY: a valid directory fd and a NUL-terminated name; the new
        // fd is owned below. O_EXCL | O_NOFOLLOW: never an existing file,
        // never through a link.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                tmp.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o666 as libc::c_uint,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(fail(
                FileProblem::Io,
                format!("cannot create a file in {}: {e}", shown(parent)),
            ));
        }
        // SAFETY: openat() returned a new fd that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        Ok(AtomicFile {
            dir,
            tmp,
            name,
            file: Some(file),
            target: target.to_path_buf(),
            written: 0,
            max,
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        let n = bytes.len() as u64;
        if self.written + n > self.max {
            return Err(fail(
                FileProblem::TooLarge,
                format!(
                    "{} would hold more than the limit of {} bytes",
                    shown(&self.target),
                    self.max
                ),
            ));
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| fail(FileProblem::Io, "the file was already finished"))?;
        file.write_all(bytes).map_err(|e| {
            let problem = match e.raw_os_error() {
                Some(libc::EFBIG) | Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
                    FileProblem::TooLarge
                }
                _ => FileProblem::Io,
            };
            fail(
                problem,
                format!("writing {} failed: {e}", shown(&self.target)),
            )
        })?;
        self.written += n;
        Ok(())
    }

    /// Renames the complete file over the target.
    pub fn commit(mut self) -> Result<(), FileError> {
        drop(self.file.take());
        // SAFETY: valid directory fd and NUL-terminated names.
        let rc = unsafe {
            libc::renameat(
                self.dir.as_raw_fd(),
                self.tmp.as_ptr(),
                self.dir.as_raw_fd(),
                self.name.as_ptr(),
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return Err(os_fail(&self.target, &e));
        }
        // Renamed: nothing is left to remove.
        self.tmp = CString::default();
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_bytes().is_empty() {
            // SAFETY: valid directory fd and NUL-terminated name; unlinkat
            // never follows a link.
            unsafe { libc::unlinkat(self.dir.as_raw_fd(), self.tmp.as_ptr(), 0) };
        }
    }
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
