//! Plain-Rust core of securer: no R needed to build or test it.

pub mod audit;
pub mod child;
pub mod error;
pub mod fdpass;
pub mod files;
pub mod frame;
#[cfg(target_os = "linux")]
pub mod handoff;
pub mod host;
pub mod launch;
pub mod png;
pub mod policy;
pub mod report;
pub mod rvalue;
pub mod sandbox;
pub(crate) mod sys;
pub mod text;
pub mod tool_types;
pub mod tree;
#[cfg(target_os = "linux")]
pub mod zygote;

pub use error::{Error, ErrorKind};
