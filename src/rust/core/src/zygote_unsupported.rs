//! The warm zygote needs Linux: pid namespaces for its sandboxed sessions,
//! and for every session a pidfd (so that the host can watch and signal a
//! process it did not spawn without racing pid reuse) and a child subreaper
//! (so that a session's orphans stay in reach). Other systems start every
//! session cold; the host never asks them for a zygote, and a runtime that
//! is asked to serve as one fails at once.

use crate::error::{Error, ErrorKind};
use std::os::fd::RawFd;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("a warm zygote needs Linux; sessions start cold on this system")]
    Unsupported,
}

impl From<ServeError> for Error {
    fn from(e: ServeError) -> Error {
        Error::new(ErrorKind::Zygote, e.to_string())
    }
}

/// What a forked session would need to go on in R.
pub struct SessionStart {
    pub token: String,
}

/// Fails: see the module's documentation.
pub fn serve(
    _ctrl: RawFd,
    _max_frame: usize,
    _warm: &mut dyn FnMut(),
) -> Result<SessionStart, ServeError> {
    Err(ServeError::Unsupported)
}
