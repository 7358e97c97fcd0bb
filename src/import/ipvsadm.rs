//! `ipvsadm -Sn` rules import. Being written (issue 22).

use std::path::Path;

use super::{ImportError, Imported};

/// Converts the rules in `text`, read from `source` (a path, or `-` for standard input), into objects.
pub fn import(text: &str, source: &Path) -> Result<Imported, ImportError> {
    let _ = text;
    Err(ImportError::Refused(format!("{}: ipvsadm import is not written yet", source.display())))
}
