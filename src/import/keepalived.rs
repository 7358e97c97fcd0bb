//! keepalived.conf import. Being written (issue 22).

use std::path::Path;

use super::{ImportError, Imported};

/// Reads `path` (and what it includes) and converts its `virtual_server` sections.
pub fn import(path: &Path) -> Result<Imported, ImportError> {
    Err(ImportError::Refused(format!("{}: keepalived import is not written yet", path.display())))
}
