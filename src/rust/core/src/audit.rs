//! Audit log appends: one line per write, under an exclusive lock, so that
//! lines from several sessions (or processes) writing one file never
//! interleave. The file is created 0600 and a symlink is refused.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuditError {
    #[error("{0} is a symbolic link; audit logs must be regular files")]
    Symlink(String),
    #[error("the directory of {0} does not exist")]
    NoDirectory(String),
    #[error("cannot open {path}: {message}")]
    Open { path: String, message: String },
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
    #[error("the path contains a NUL byte")]
    Nul,
    #[error(
        "{0} is not a regular file (a FIFO, device or folder); audit logs must be regular files"
    )]
    NotRegular(String),
}

/// Opens (creating it 0600 if missing) the log at `path`, refusing links,
/// FIFOs, devices and folders, without blocking.
pub fn open_log(path: &Path) -> Result<std::fs::File, AuditError> {
    let shown = path.display().to_string();
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| AuditError::Nul)?;
    // O_NONBLOCK: opening a FIFO must fail now (ENXIO without a reader), not
    // hang the host; what opened is then checked to be a regular file.
    // SAFETY: c is a valid NUL-terminated path; flags and mode are integers.
    let raw = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_WRONLY
                | libc::O_APPEND
                | libc::O_CREAT
                | libc::O_NOFOLLOW
                | libc::O_CLOEXEC
                | libc::O_NONBLOCK,
            0o600 as libc::c_uint,
        )
    };
    if raw < 0 {
        let err = std::io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ELOOP) => AuditError::Symlink(shown),
            Some(libc::ENOENT) => AuditError::NoDirectory(shown),
            Some(libc::ENXIO | libc::EISDIR) => AuditError::NotRegular(shown),
            _ => AuditError::Open {
                path: shown,
                message: err.to_string(),
            },
        });
    }
    // SAFETY: open succeeded; the fd is ours alone.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let file = std::fs::File::from(fd);
    match file.metadata() {
        Ok(m) if m.file_type().is_file() => Ok(file),
        _ => Err(AuditError::NotRegular(shown)),
    }
}

/// Appends `line` and a newline, under an exclusive lock.
pub fn append_line(path: &Path, line: &str) -> Result<(), AuditError> {
    let file = open_log(path)?;
    let mut bytes = line.as_bytes().to_vec();
    bytes.push(b'\n');
    // SAFETY: the fd is open; flock only takes integers. The lock is
    // released when the file is closed.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    crate::sys::write_all(file.as_raw_fd(), &bytes).map_err(|e| AuditError::Write {
        path: path.display().to_string(),
        message: std::io::Error::from_raw_os_error(e).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("securer-audit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn creates_0600_and_appends_whole_lines() {
        let d = scratch("lines");
        let p = d.join("a.jsonl");
        append_line(&p, "{\"a\":1}").unwrap();
        append_line(&p, "{\"a\":2}").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n"
        );
    }

    #[test]
    fn refuses_symlinks_and_missing_directories() {
        let d = scratch("links");
        let target = d.join("target");
        std::fs::write(&target, "").unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            append_line(&link, "x"),
            Err(AuditError::Symlink(_))
        ));
        assert!(matches!(
            append_line(&d.join("nope/a.jsonl"), "x"),
            Err(AuditError::NoDirectory(_))
        ));
    }

    #[test]
    fn refuses_fifos_and_folders_without_blocking() {
        let d = scratch("fifo");
        let fifo = d.join("fifo");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: c is a valid path; mode is an integer.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Without a reader, a blocking open would wait forever.
        assert!(matches!(
            append_line(&fifo, "x"),
            Err(AuditError::NotRegular(_))
        ));
        // With a reader the open succeeds, and the type check refuses it.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        assert!(matches!(
            append_line(&fifo, "x"),
            Err(AuditError::NotRegular(_))
        ));
        drop(reader);
        assert!(matches!(
            append_line(&d, "x"),
            Err(AuditError::NotRegular(_))
        ));
    }

    #[test]
    fn concurrent_writers_never_interleave() {
        let d = scratch("race");
        let p = d.join("race.jsonl");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let p = p.clone();
                std::thread::spawn(move || {
                    let line = format!("{t}").repeat(100_000);
                    for _ in 0..20 {
                        append_line(&p, &line).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 80);
        for l in lines {
            let first = l.as_bytes()[0];
            assert!(l.len() == 100_000 && l.bytes().all(|b| b == first));
        }
    }
}
