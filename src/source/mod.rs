//! Where desired state comes from. Every source has the same shape: it turns what it reads into
//! [`SourceObject`](crate::api::SourceObject)s (or per-object errors) at its border, keeps them in an
//! [`ObjectIndex`] through `apply` / `delete` / `reset`, and the index computes the desired table.
//!
//! - [`file`](mod@file): manifest files and directories (`-f`).
//! - Kubernetes (later): a watch feeding the same index.

pub mod endpoints;
mod feed;
pub mod file;
mod index;
pub mod kubernetes;

pub use feed::{DesiredState, Snapshot};
pub use file::{FileLoad, FileSource, LoadError, Reload};
pub use index::{Changed, DesiredOutcome, ObjectIndex, ObjectReport, ObjectState, ReportChange, ReportsWanted};
