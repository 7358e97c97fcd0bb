//! Conversion of another tool's configuration into `VirtualService` manifests (`ipvs-reconciler import`):
//! keepalived's `virtual_server` sections and checkers (`import::keepalived`), and `ipvsadm -Sn` rules
//! (`import::ipvsadm`).
//!
//! An import produces objects and notes; it never touches the kernel, and it never drops anything silently:
//! every item of the input that does not shape the result is a [`Note`] with its file and line. A note of kind
//! [`NoteKind::NotMapped`] means the result is partial (something that shapes the IPVS table or the checks was
//! not converted); [`NoteKind::Adjusted`] means it was converted with a documented change (a timeout shortened, a
//! default made explicit), and the import is still complete.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

use crate::api::v1alpha1::VirtualService;
use crate::director::DirectorConfig;

pub mod ipvsadm;
pub mod keepalived;

/// A place in the input: a file (or `-` for standard input) and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    /// The file as the user named it (includes: as resolved from the including file).
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

impl Place {
    /// `file` at `line`.
    pub fn new(file: impl Into<PathBuf>, line: usize) -> Self {
        Place { file: file.into(), line }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// What a note says about the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoteKind {
    /// Converted with a documented change; the import is still complete.
    Adjusted,
    /// Not converted: the result is partial.
    NotMapped,
}

/// One remark about the input, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Note {
    /// Where the item is; `None` when it is not one place (a default applied to the whole file).
    pub place: Option<Place>,
    /// Whether the result is partial because of it.
    pub kind: NoteKind,
    /// What happened, in a user's words (the keyword, why, and what was done instead if anything).
    pub message: String,
}

impl Note {
    /// An item that was not converted.
    pub fn not_mapped(place: Option<Place>, message: impl Into<String>) -> Self {
        Note { place, kind: NoteKind::NotMapped, message: message.into() }
    }

    /// An item converted with a change.
    pub fn adjusted(place: Option<Place>, message: impl Into<String>) -> Self {
        Note { place, kind: NoteKind::Adjusted, message: message.into() }
    }
}

impl fmt::Display for Note {
    /// `file:line: not mapped: message` (or `note:` for an adjustment): the form compilers use, so editors jump
    /// to it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            NoteKind::Adjusted => "note",
            NoteKind::NotMapped => "not mapped",
        };
        match &self.place {
            Some(place) => write!(f, "{place}: {kind}: {}", self.message),
            None => write!(f, "{kind}: {}", self.message),
        }
    }
}

/// What an import produced.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// The objects, in the order of the input; names are unique.
    pub objects: Vec<VirtualService>,
    /// Director settings (connection timeouts, sync daemons) for `--director-config`, when the input has any.
    pub director: Option<DirectorConfig>,
    /// Everything that did not convert as it is, in the order of the input.
    pub notes: Vec<Note>,
}

impl Imported {
    /// Whether something that shapes the table or the checks was not converted.
    pub fn is_partial(&self) -> bool {
        self.notes.iter().any(|note| note.kind == NoteKind::NotMapped)
    }
}

/// An input that cannot be imported at all (exit 1).
#[derive(Debug, Error)]
pub enum ImportError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The input is malformed at a place.
    #[error("{place}: {message}")]
    Syntax {
        /// Where.
        place: Place,
        /// What is wrong, in a user's words.
        message: String,
    },
    /// The input is refused as a whole (e.g. `ipvsadm -S` output with names instead of numbers).
    #[error("{0}")]
    Refused(String),
}
