//! Where desired state comes from. Every source has the same shape: it turns what it reads into
//! [`SourceObject`](crate::api::SourceObject)s (or per-object errors) at its border, keeps them in an
//! [`ObjectIndex`] through `apply` / `delete` / `reset`, and the index computes the desired table.
//!
//! Each source has a `follow` that takes a [`DesiredState`] to feed and runs until aborted: it marks the state
//! ready once it has a complete view (the agent runs no pass before), never takes a failed read for "no objects",
//! and reports each problem once (logs for files, the objects' status for Kubernetes). Adding a source is a module
//! here plus one line of wiring in [`daemon`](crate::daemon).
//!
//! - [`file`](mod@file): manifest files and directories (`-f`); [`file::follow`] watches a directory (inotify and
//!   a periodic re-scan).
//! - [`kubernetes`]: VirtualServices, EndpointSlices and this node's Node, watched ([`kubernetes::follow`]);
//!   [`endpoints`] resolves `backendsFrom` from the slices.
//! - [`DesiredState`] (in `desired.rs`): the index shared between the sources and the agent, with the keys
//!   changed since the agent last looked.

pub mod admission;
mod desired;
pub mod endpoints;
pub mod file;
mod index;
pub mod kubernetes;
mod problems;

pub use desired::{DesiredState, Snapshot};
pub use file::{FileLoad, FileSource, FollowError, LoadError, Reload};
#[cfg(any(test, feature = "testing"))]
pub use index::DesiredOutcome;
pub use index::{Changed, ObjectIndex, ObjectReport, ObjectState, ReportChange, ReportsWanted};
pub use problems::ProblemLog;
