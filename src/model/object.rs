//! Who asked for a service: the identity of a declaration, as messages, conflicts and status name it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The identity of a `VirtualService`: a Kubernetes object, or a document of a manifest file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectId {
    /// A Kubernetes object: `namespace/name`.
    Kubernetes {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A document of a manifest file: `path#index (namespace/name)` (index counts from 0, in file order; the name
    /// is the document's `metadata`, when it has one, so that a message about a file of fifty documents can be
    /// found by what the object is as well as by where).
    Document {
        /// The file (shared: every object of a file, and every copy of its identity the index keeps, point at one
        /// path).
        path: Arc<Path>,
        /// Position of the document in the file.
        index: usize,
        /// `namespace/name` from the document's metadata (namespace `default` when only a name is given); shared, as
        /// the path is, by every copy of the identity.
        name: Option<Arc<str>>,
    },
    /// A whole file, for problems found before its documents could be told apart (a YAML syntax error).
    File {
        /// The file.
        path: PathBuf,
    },
}

impl ObjectId {
    /// A Kubernetes object's identity.
    pub fn kubernetes(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectId::Kubernetes { namespace: namespace.into(), name: name.into() }
    }

    /// A document of the file `path` (shared with its other documents' identities), without a name.
    pub fn document_of(path: &Arc<Path>, index: usize) -> Self {
        ObjectId::Document { path: Arc::clone(path), index, name: None }
    }

    /// A file document's identity, without a name.
    pub fn document(path: impl Into<PathBuf>, index: usize) -> Self {
        ObjectId::Document { path: Arc::from(path.into()), index, name: None }
    }

    /// This identity with the document's `metadata` name (`namespace` defaults to `default`, as kubectl's); no
    /// change for other kinds of identity or when `name` is `None`.
    pub fn named(self, namespace: Option<&str>, name: Option<&str>) -> Self {
        match (self, name) {
            (ObjectId::Document { path, index, .. }, Some(name)) => {
                let namespace = namespace.unwrap_or("default");
                ObjectId::Document {
                    path,
                    index,
                    name: Some(format!("{}/{}", readable(namespace), readable(name)).into()),
                }
            }
            (id, _) => id,
        }
    }
}

/// Longest name kept whole in an identity: Kubernetes names have at most 253 characters, so a longer one is invalid
/// anyway (and reported so); it is cut, to keep every message that names the object readable.
const MAX_NAME: usize = 253;

fn readable(name: &str) -> std::borrow::Cow<'_, str> {
    if name.chars().count() <= MAX_NAME {
        return name.into();
    }
    let kept: String = name.chars().take(64).collect();
    format!("{kept}…").into()
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectId::Kubernetes { namespace, name } => write!(f, "{namespace}/{name}"),
            ObjectId::Document { path, index, name: None } => write!(f, "{}#{index}", path.display()),
            ObjectId::Document { path, index, name: Some(name) } => write!(f, "{}#{index} ({name})", path.display()),
            ObjectId::File { path } => write!(f, "{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_named_by_where_and_what_it_is() {
        let id = ObjectId::document("web.yaml", 3);
        assert_eq!(id.to_string(), "web.yaml#3");
        assert_eq!(id.clone().named(None, Some("web")).to_string(), "web.yaml#3 (default/web)");
        assert_eq!(id.clone().named(Some("prod"), Some("web")).to_string(), "web.yaml#3 (prod/web)");
        assert_eq!(id.named(Some("prod"), None).to_string(), "web.yaml#3");
        assert_eq!(ObjectId::kubernetes("a", "b").named(Some("x"), Some("y")).to_string(), "a/b");
    }
}
