//! The one error shape that leaves the core for R: what kind of failure,
//! which sandbox layer (when one is involved), a message, the errno and the
//! pid of the child concerned. Every module's own error type converts into
//! it, and the glue turns it into one R value (a `securer_rs_error` list).

#[cfg(unix)]
use crate::files::{FileError, FileProblem};
use crate::png::PngError;
use thiserror::Error;

/// What went wrong, coarse enough for R to choose a condition class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// An argument from R was invalid (a launch spec, a frame kind, ...).
    Input,
    /// The launcher could not be started.
    Spawn,
    /// A socket, pipe or pidfd could not be made or set up.
    Socket,
    /// The child (or the zygote) is not running, or its handle was released.
    NotRunning,
    /// A write to the child did not drain in time.
    Timeout,
    /// Reading from or writing to the peer failed.
    Io,
    /// The peer closed the connection.
    Closed,
    /// A wait was interrupted by a signal.
    Interrupted,
    /// The peer sent something the protocol does not allow.
    Protocol,
    /// The request does not fit the session's state (an exec while another
    /// is outstanding, a tool reply nobody asked for).
    State,
    /// A value was refused by the value checker.
    Value,
    /// The zygote could not fork a session.
    Zygote,
    /// A sandbox layer or the launcher failed (`layer` says which).
    Launch,
    /// The audit log could not be written.
    Audit,
    /// The kernel's random source failed.
    Random,
    /// A file operation in a session's writable space failed; the problem
    /// picks the R class.
    #[cfg(unix)]
    File(crate::files::FileProblem),
    /// An image from the child is not a valid PNG within the caps.
    Image,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Input => "input",
            ErrorKind::Spawn => "spawn",
            ErrorKind::Socket => "socket",
            ErrorKind::NotRunning => "not_running",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Io => "io",
            ErrorKind::Closed => "closed",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Protocol => "protocol",
            ErrorKind::State => "state",
            ErrorKind::Value => "value",
            ErrorKind::Zygote => "zygote",
            ErrorKind::Launch => "launch",
            ErrorKind::Audit => "audit",
            ErrorKind::Random => "random",
            #[cfg(unix)]
            ErrorKind::File(p) => match p {
                FileProblem::NotFound => "file_not_found",
                FileProblem::Outside => "file_outside",
                FileProblem::Symlink => "file_symlink",
                FileProblem::NotFile => "file_not_file",
                FileProblem::TooLarge => "file_too_large",
                FileProblem::Io => "file_io",
            },
            ErrorKind::Image => "image",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    /// The sandbox layer concerned, for launch failures.
    pub layer: Option<String>,
    pub message: String,
    pub errno: Option<i32>,
    /// The child process concerned, when there is one.
    pub pid: Option<u32>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            layer: None,
            message: message.into(),
            errno: None,
            pid: None,
        }
    }

    /// An error caused by `source`: its message, and the errno of the
    /// first `std::io::Error` in its chain.
    pub fn caused_by(kind: ErrorKind, source: &(dyn std::error::Error + 'static)) -> Error {
        Error {
            errno: errno_in(source),
            ..Error::new(kind, source.to_string())
        }
    }

    pub fn with_pid(mut self, pid: u32) -> Error {
        if pid != 0 {
            self.pid = Some(pid);
        }
        self
    }

    pub fn with_errno(mut self, errno: Option<i32>) -> Error {
        self.errno = errno;
        self
    }
}

/// The errno of the first `std::io::Error` in an error's chain.
fn errno_in(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io.raw_os_error();
        }
        cur = err.source();
    }
    None
}

impl From<crate::policy::LaunchFailure> for Error {
    fn from(f: crate::policy::LaunchFailure) -> Error {
        Error {
            kind: ErrorKind::Launch,
            layer: Some(f.layer.to_string()),
            message: f.message,
            errno: f.errno,
            pid: None,
        }
    }
}

impl From<crate::frame::FrameError> for Error {
    fn from(e: crate::frame::FrameError) -> Error {
        Error::new(ErrorKind::Protocol, e.to_string())
    }
}

impl From<crate::rvalue::ValueError> for Error {
    fn from(e: crate::rvalue::ValueError) -> Error {
        Error::new(ErrorKind::Value, e.to_string())
    }
}

#[cfg(unix)]
impl From<FileError> for Error {
    fn from(e: FileError) -> Error {
        Error::new(ErrorKind::File(e.problem), e.message)
    }
}

impl From<PngError> for Error {
    fn from(e: PngError) -> Error {
        Error::new(ErrorKind::Image, e.to_string())
    }
}

#[cfg(unix)]
impl From<crate::audit::AuditError> for Error {
    fn from(e: crate::audit::AuditError) -> Error {
        Error::caused_by(ErrorKind::Audit, &e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_is_found_in_the_source_chain() {
        #[derive(Debug, Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Error::caused_by(
            ErrorKind::Io,
            &Outer(std::io::Error::from_raw_os_error(libc::EPIPE)),
        );
        assert_eq!((e.kind, e.errno), (ErrorKind::Io, Some(libc::EPIPE)));
        assert_eq!(e.message, "outer");
    }

    #[test]
    fn launch_failures_keep_their_layer() {
        let failure: crate::policy::LaunchFailure =
            serde_json::from_str(r#"{"layer":"landlock","message":"not supported","errno":38}"#)
                .expect("a launch failure");
        let e: Error = failure.into();
        assert_eq!(e.kind, ErrorKind::Launch);
        assert_eq!(e.layer.as_deref(), Some("landlock"));
        assert_eq!(e.errno, Some(libc::ENOSYS));
    }
}
