//! Manifest files: `-f` paths (files or directories) of multi-document YAML (or JSON).
//!
//! - A file given by name is read whatever its extension. A directory contributes its `*.yaml`, `*.yml` and
//!   `*.json` files, sorted by name, NOT recursively (as `kubectl apply -f DIR` without `-R`); hidden entries
//!   (names starting with `.`, such as the `..data` links of a mounted ConfigMap) and subdirectories are skipped.
//! - Each document is identified as `path#index` (from 0). Its age for conflicts is its position: files in load
//!   order, then documents in file order.
//! - An empty document (an empty file, a trailing `---`) is skipped with a warning.
//! - A document that is not a `VirtualService` of `ipvs.dev/v1alpha1`, or does not match its schema (unknown
//!   field, wrong type), is an error for that document only; the file's other documents still load.
//! - A YAML syntax error makes the whole file an error (its document boundaries cannot be trusted), not the other
//!   files.
//! - A path or directory that cannot be read is a hard error for the whole load: the caller must never take it for
//!   "no objects", which would delete every service.
//! - `metadata` is optional in files (identity comes from the path); namespaces and names are not used.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;
use thiserror::Error;

pub use follow::{FollowError, follow};

use super::index::{Changed, ObjectIndex};
use crate::api::v1alpha1::{API_VERSION, KIND};
use crate::api::{Age, ObjectId, SourceObject, ValidationError, VirtualService};

/// File name extensions read from directories.
pub const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// A load that cannot be trusted at all.
#[derive(Debug, Error)]
pub enum LoadError {
    /// A path (given, or found in a directory) cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A directory cannot be listed.
    #[error("cannot list directory {}: {source}", path.display())]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// What a load found: objects, and problems of single documents or files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileLoad {
    /// Files read, in load order.
    pub files: Vec<PathBuf>,
    /// Every readable `VirtualService` document.
    pub objects: Vec<SourceObject>,
    /// Documents (or whole files) that could not be read as a `VirtualService`.
    pub errors: Vec<ValidationError>,
    /// Documents skipped without harm (empty ones).
    pub warnings: Vec<ValidationError>,
}

/// Loads every `VirtualService` document under `paths`.
pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<FileLoad, LoadError> {
    let mut load = FileLoad::default();
    for (index, path) in expand(paths)?.into_iter().enumerate() {
        let parsed = load_file(&path, index)?;
        load.objects.extend(parsed.objects);
        load.errors.extend(parsed.errors);
        load.warnings.extend(parsed.warnings);
        load.files.push(path);
    }
    Ok(load)
}

/// The files `paths` stand for, in load order, each once.
pub fn expand<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<PathBuf>, LoadError> {
    Ok(expand_with_metadata(paths)?.into_iter().map(|(file, _)| file).collect())
}

/// [`expand`], with each file's metadata (one `stat` per file: reloads compare it to tell what changed).
fn expand_with_metadata<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<(PathBuf, fs::Metadata)>, LoadError> {
    // (identity for de-duplication, path as given or found, metadata)
    let mut files: Vec<(PathBuf, PathBuf, fs::Metadata)> = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let meta = fs::metadata(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
        let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        if !meta.is_dir() {
            files.push((canonical, path.to_owned(), meta));
            continue;
        }
        let list_error = |source| LoadError::ListDir { path: path.to_owned(), source };
        let mut found = Vec::new();
        for entry in fs::read_dir(path).map_err(list_error)? {
            let entry = entry.map_err(list_error)?;
            let name = entry.file_name();
            let wanted = Path::new(&name).extension().is_some_and(|ext| EXTENSIONS.iter().any(|e| ext == *e));
            if name.as_encoded_bytes().starts_with(b".") || !wanted {
                continue;
            }
            let file = entry.path();
            // Follows symbolic links: a link to a file counts as a file, a dangling one cannot be read.
            let meta = fs::metadata(&file).map_err(|source| LoadError::Read { path: file.clone(), source })?;
            if meta.is_file() {
                // Identity from the directory's canonical path: one realpath per directory, not per file. A link
                // to a file named elsewhere may then be read twice; it is the same object claiming the same
                // service twice, reported as a conflict, never a wrong table.
                found.push((canonical.join(&name), file, meta));
            }
        }
        found.sort_by(|a, b| a.1.cmp(&b.1));
        files.extend(found);
    }
    // The same file named twice (`-f dir -f dir/a.yaml`) would conflict with itself: keep its first place.
    let mut seen = BTreeSet::new();
    files.retain(|(identity, _, _)| seen.insert(identity.clone()));
    Ok(files.into_iter().map(|(_, file, meta)| (file, meta)).collect())
}

/// Parses the text of one file (the `file`-th of the load) into objects and per-document problems.
pub fn parse_documents(path: &Path, file: usize, text: &str) -> FileLoad {
    let mut load = FileLoad { files: vec![path.to_owned()], ..FileLoad::default() };
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            Ok(value) => documents.push(value),
            Err(e) => {
                // The stream cannot go on after a syntax error (the next call repeats it forever), and the
                // documents before it may be cut short, so none of this file's documents is trusted.
                let id = ObjectId::File { path: path.to_owned() };
                load.errors.push(ValidationError::new(id, "", format!("invalid YAML: {e}")));
                return load;
            }
        }
    }
    for (index, value) in documents.into_iter().enumerate() {
        let id =
            ObjectId::document(path, index).named(metadata_text(&value, "namespace"), metadata_text(&value, "name"));
        match parse_document(&id, value) {
            Document::Empty => load.warnings.push(ValidationError::new(id, "", "empty document, skipped")),
            Document::Invalid(error) => load.errors.push(error),
            Document::Object(object) => load.objects.push(SourceObject {
                id,
                age: Age::loaded(file, index),
                spec: object.spec,
                generation: None,
            }),
        }
    }
    load
}

/// `metadata.<field>` of a document, when it is a string (read before the schema check, so that even a document
/// that fails it is named by what it is).
fn metadata_text<'a>(document: &'a Value, field: &str) -> Option<&'a str> {
    document.get("metadata")?.get(field)?.as_str()
}

/// What one document turned out to be.
pub(crate) enum Document {
    /// Nothing (`---` alone, an empty file).
    Empty,
    /// Not a `VirtualService` of this API, or not of its schema.
    Invalid(ValidationError),
    /// A `VirtualService`, read.
    Object(Box<VirtualService>),
}

/// Top-level fields of a manifest; anything else is most likely a misplaced spec field.
const TOP_LEVEL_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];

/// Reads one document (`id` names it in errors) as a `VirtualService`.
pub(crate) fn parse_document(id: &ObjectId, mut value: Value) -> Document {
    let invalid = |field: &str, message: String| Document::Invalid(ValidationError::new(id.clone(), field, message));
    if let Err(e) = value.apply_merge() {
        return invalid("", format!("invalid YAML merge key: {e}"));
    }
    let mapping = match &mut value {
        Value::Null => return Document::Empty,
        Value::Mapping(mapping) => mapping,
        other => return invalid("", format!("expected a mapping (a {KIND} object), found {}", type_name(other))),
    };
    let text = |key: &str| mapping.get(key).and_then(Value::as_str).map(str::to_owned);
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if kind.as_deref() != Some(KIND) || api_version.as_deref() != Some(API_VERSION) {
        let field = if kind.as_deref() != Some(KIND) { "kind" } else { "apiVersion" };
        let found = |v: Option<String>| v.map_or_else(|| "none".to_owned(), |v| format!("`{v}`"));
        return invalid(
            field,
            format!(
                "expected kind {KIND} of apiVersion {API_VERSION}, found kind {} of apiVersion {}",
                found(kind),
                found(api_version)
            ),
        );
    }
    for key in mapping.keys() {
        let name = key.as_str().unwrap_or_default();
        if !TOP_LEVEL_FIELDS.contains(&name) {
            let expected = TOP_LEVEL_FIELDS.join("`, `");
            return invalid(name, format!("unknown field `{name}`, expected one of `{expected}`"));
        }
    }
    // Identity comes from the path, so files may leave metadata out.
    if !mapping.contains_key("metadata") {
        mapping.insert(Value::from("metadata"), Value::Mapping(Default::default()));
    }
    match serde_path_to_error::deserialize::<_, VirtualService>(value) {
        Ok(object) => Document::Object(Box::new(object)),
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." { String::new() } else { path };
            invalid(&field, e.into_inner().to_string())
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A set of `-f` paths, feeding an [`ObjectIndex`] document by document.
///
/// Reloads are incremental: a file whose size, modification and change times and inode are those of the last load
/// is neither read nor parsed again (its objects stay in the index as they are, validated once), so a change to one
/// file of a large directory costs that file, not the directory.
#[derive(Debug, Clone)]
pub struct FileSource {
    paths: Vec<PathBuf>,
    files: HashMap<PathBuf, FileRecord>,
}

/// What one file held at its last load.
#[derive(Debug, Clone)]
struct FileRecord {
    stamp: Stamp,
    /// Load position of the file (ages embed it).
    position: usize,
    /// The objects (documents, or the whole file) it gave the index.
    ids: Vec<ObjectId>,
}

/// Enough of a file's metadata to tell that it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }
}

/// What one reload did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reload {
    /// Service keys whose desired entry changed.
    pub changed: Changed,
    /// Problems without harm (empty documents) in the files read this time.
    pub warnings: Vec<ValidationError>,
    /// Files read and parsed this time.
    pub files_read: usize,
    /// Files the paths stand for now.
    pub files: usize,
    /// Whether the paths were listed again (every file stat'ed), rather than only the files named by the caller.
    pub listed: bool,
}

impl FileSource {
    /// A source over `paths`, not loaded yet.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        FileSource { paths, files: HashMap::new() }
    }

    /// The paths given.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Brings `index` up to date with the files as they are now, reading only the files that changed since the
    /// last call. Every file is read before the index is touched: on a [`LoadError`] the index keeps what the last
    /// good reload gave it (an unreadable path is never taken for "no objects").
    pub fn reload_into(&mut self, index: &mut ObjectIndex) -> Result<Reload, LoadError> {
        let listed = expand_with_metadata(&self.paths)?;
        let mut read = Vec::with_capacity(listed.len());
        for (position, (path, meta)) in listed.into_iter().enumerate() {
            let stamp = Stamp::of(&meta);
            let unchanged = self.files.get(&path).is_some_and(|record| record.stamp == stamp);
            let load = if unchanged { None } else { Some(load_file(&path, position)?) };
            read.push((path, stamp, position, load));
        }

        let mut report = Reload { files: read.len(), listed: true, ..Reload::default() };
        let mut previous = std::mem::take(&mut self.files);
        report.changed = index.batch(|index| {
            for (path, stamp, position, load) in read {
                let old = previous.remove(&path);
                let ids = match load {
                    Some(load) => {
                        report.files_read += 1;
                        report.warnings.extend(load.warnings.iter().cloned());
                        feed(index, load, old.map(|o| o.ids).unwrap_or_default())
                    }
                    None => {
                        let old = old.unwrap_or_else(|| FileRecord { stamp, position, ids: Vec::new() });
                        if old.position != position {
                            for id in &old.ids {
                                if let ObjectId::Document { index: document, .. } = id {
                                    index.reage(id, Age::loaded(position, *document));
                                }
                            }
                        }
                        old.ids
                    }
                };
                self.files.insert(path, FileRecord { stamp, position, ids });
            }
            // Files no longer found under the paths (deleted, renamed away, no longer matching).
            for record in previous.into_values() {
                for id in &record.ids {
                    index.delete(id);
                }
            }
        });
        Ok(report)
    }
}

impl FileSource {
    /// Brings `index` up to date with what changed at `paths` only (what inotify reported), when that is the
    /// common case: files already known, edited in place or replaced by a rename. Anything that may change which
    /// files there are — a new or removed file, a directory or a symbolic link (a mounted ConfigMap swaps its
    /// `..data` link) — lists the paths again, as [`FileSource::reload_into`]. Editor leftovers (hidden names, other
    /// extensions, gone again) are ignored. A change of one file in a directory of 10,000 thus costs that file.
    pub fn reload_paths_into(
        &mut self,
        index: &mut ObjectIndex,
        paths: &BTreeSet<PathBuf>,
    ) -> Result<Reload, LoadError> {
        if self.files.is_empty() {
            return self.reload_into(index);
        }
        let mut read = Vec::new();
        for path in paths {
            let Some(record) = self.files.get(path) else {
                if self.may_change_the_listing(path) {
                    return self.reload_into(index);
                }
                continue;
            };
            let meta = match fs::metadata(path) {
                Ok(meta) if meta.is_file() => meta,
                // Gone (or no longer a file): the listing changes.
                _ => return self.reload_into(index),
            };
            let stamp = Stamp::of(&meta);
            if stamp != record.stamp {
                read.push((path.clone(), stamp, record.position, load_file(path, record.position)?));
            }
        }
        let mut report = Reload { files: self.files.len(), ..Reload::default() };
        report.changed = index.batch(|index| {
            for (path, stamp, position, load) in read {
                report.files_read += 1;
                report.warnings.extend(load.warnings.iter().cloned());
                let old = self.files.remove(&path).map(|r| r.ids).unwrap_or_default();
                let ids = feed(index, load, old);
                self.files.insert(path, FileRecord { stamp, position, ids });
            }
        });
        Ok(report)
    }

    /// Whether an event at `path`, a file this source does not know, may change which files there are.
    fn may_change_the_listing(&self, path: &Path) -> bool {
        let name = path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default();
        let listable =
            !name.starts_with(b".") && path.extension().is_some_and(|ext| EXTENSIONS.iter().any(|e| ext == *e));
        // A name a listing would take, a directory, a link: list again. A plain file with another name, or
        // one already gone, is an editor's leftover.
        listable || fs::symlink_metadata(path).is_ok_and(|m| !m.is_file())
    }
}

/// Reads and parses one file, the `position`-th of the load.
fn load_file(path: &Path, position: usize) -> Result<FileLoad, LoadError> {
    let bytes = fs::read(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => parse_documents(path, position, &text),
        Err(_) => FileLoad {
            files: vec![path.to_owned()],
            errors: vec![ValidationError::new(ObjectId::File { path: path.to_owned() }, "", "not UTF-8 text")],
            ..FileLoad::default()
        },
    })
}

/// Gives the index what one file holds now, replacing what it held (`old`); returns the objects it holds now.
fn feed(index: &mut ObjectIndex, load: FileLoad, old: Vec<ObjectId>) -> Vec<ObjectId> {
    let mut ids: Vec<ObjectId> = load.objects.iter().map(|o| o.id.clone()).collect();
    let mut unreadable: Vec<(ObjectId, Vec<ValidationError>)> = Vec::new();
    for error in load.errors {
        match unreadable.iter_mut().find(|(id, _)| *id == error.object) {
            Some((_, errors)) => errors.push(error),
            None => unreadable.push((error.object.clone(), vec![error])),
        }
    }
    ids.extend(unreadable.iter().map(|(id, _)| id.clone()));
    for id in old.iter().filter(|id| !ids.contains(id)) {
        index.delete(id);
    }
    for (id, errors) in unreadable {
        index.apply_unreadable(id, errors);
    }
    for object in load.objects {
        index.apply(object);
    }
    ids
}

mod follow;

#[cfg(test)]
mod tests;
