//! Plain-Rust core of securer: no R needed to build or test it.
//!
//! Platforms: everything builds on Linux and macOS; the Linux sandbox, the
//! warm zygote and pidfd-based process handling only where
//! `cfg(native_linux)` (Linux without the `portable` feature, see
//! build.rs), macOS's Seatbelt path everywhere on Unix
//! (`launch::portable`). On Windows only the pure modules build (framing,
//! value checking, text, tool types, policy, the Seatbelt rendering): R
//! sessions need Unix, and the R package says to use WSL2 there.

#[cfg(unix)]
pub mod audit;
#[cfg(unix)]
pub mod child;
pub mod error;
#[cfg(native_linux)]
pub mod fdpass;
#[cfg(unix)]
pub mod files;
pub mod frame;
#[cfg(native_linux)]
pub mod handoff;
#[cfg(unix)]
pub mod host;
#[cfg(unix)]
pub mod launch;
pub mod plain;
pub mod png;
pub mod policy;
#[cfg(unix)]
pub mod report;
pub mod request;
pub mod rvalue;
pub mod sandbox;
#[cfg(unix)]
pub(crate) mod sys;
pub mod text;
pub mod tool_types;
#[cfg(unix)]
pub mod tree;
#[cfg(native_linux)]
pub mod zygote;
/// Elsewhere every session starts cold; a zygote's entry point says so.
#[cfg(all(unix, not(native_linux)))]
#[path = "zygote_unsupported.rs"]
pub mod zygote;

pub use error::{Error, ErrorKind};
