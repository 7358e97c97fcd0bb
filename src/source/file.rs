//! Manifest files: `-f` paths (files or directories) of multi-document YAML (or JSON).
//!
//! - A file given by name is read whatever its extension. A directory contributes its `*.yaml`, `*.yml` and
//!   `*.json` files, sorted by name, NOT recursively (as `kubectl apply -f DIR` without `-R`); hidden entries
//!   (names starting with `.`, such as the `..data` links of a mounted ConfigMap) and subdirectories are skipped.
//! - Each document is identified as `path#index` (from 0). Its age for conflicts is its position: files in load
//!   order, then documents in file order.
//! - An empty document (an empty file, a trailing `---`) is skipped with a warning.
//! - The stream is cut into documents before any is parsed ([`split`]), so every problem costs one document only:
//!   a YAML syntax error, a duplicate key or bytes that are not UTF-8 inside a document make that document
//!   unreadable (with its line in the file); a document that is not a `VirtualService` of `ipvs.dev/v1alpha1` is
//!   an error of its own; a field that does not match the schema (unknown, of the wrong type, a number beyond 64
//!   bits) is one problem of the object, which still names its service and reports its other problems
//!   ([`document`]). A UTF-8 byte-order mark before a document is accepted.
//! - A path or directory that cannot be read is a hard error for the whole load: the caller must never take it for
//!   "no objects", which would delete every service.
//! - Identity: files are meant to mean the same under `kubectl apply`, so each object needs a valid
//!   `metadata.name` (namespace `default` when not given), and two documents with one namespace/name are an error
//!   of the younger one ([`ObjectIndex`] decides, across files).
//! - Memory: a file is read part by part ([`each_value_read`], cut where the parts' documents are the whole's) and
//!   its documents are parsed one at a time and handed over (to the index, which keeps only what each validates
//!   to), so that a large file is never held whole: by `validate`, by [`load`], and by [`FileSource`] for every file
//!   of which the index holds nothing yet (the first load of `run`, `plan` and `apply`, a new file). A changed file
//!   whose objects the index holds is still read whole before the index is touched: its objects are replaced as
//!   they are read, and the index cannot give the old ones back if a read failed midway (see
//!   [`FileSource::reload_into`]).

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

pub use follow::{FollowError, follow};

use super::index::{Changed, ObjectIndex};
use serde_yaml::Value;

use crate::api::{Age, ObjectId, SourceObject, ValidationError};
pub(crate) use document::{Document, read_value, schema_error};

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
    /// Documents that could not be read as a `VirtualService`.
    pub errors: Vec<ValidationError>,
    /// Fields of the `objects` that could not be read (the objects are invalid while they have any).
    pub problems: Vec<ValidationError>,
    /// Documents skipped without harm (empty ones).
    pub warnings: Vec<ValidationError>,
}

/// Loads every `VirtualService` document under `paths`.
pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<FileLoad, LoadError> {
    load_in(paths, PART)
}

/// [`load`], each file read in parts of at least `part` bytes (but the last).
fn load_in<P: AsRef<Path>>(paths: &[P], part: usize) -> Result<FileLoad, LoadError> {
    let mut load = FileLoad::default();
    for (index, path) in expand(paths)?.into_iter().enumerate() {
        read_documents(&path, index, part, |item| load.take(item))?;
        load.files.push(path);
    }
    Ok(load)
}

impl FileLoad {
    /// Takes one document of a file.
    fn take(&mut self, item: Item) {
        match item {
            Item::Object(object, problems) => {
                self.problems.extend(problems);
                self.objects.push(*object);
            }
            Item::Unreadable(_, errors) => self.errors.extend(errors),
            Item::Empty(warning) => self.warnings.push(warning),
        }
    }
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

/// One document of a file, as the index takes it.
#[derive(Debug)]
pub(crate) enum Item {
    /// A `VirtualService`, with the problems of the fields that could not be read (none, usually).
    Object(Box<SourceObject>, Vec<ValidationError>),
    /// A document that could not be read as one (or a whole file that could not be split into documents).
    Unreadable(ObjectId, Vec<ValidationError>),
    /// An empty document, skipped.
    Empty(ValidationError),
}

/// Parses the text of one file (the `file`-th of the load) into objects and per-document problems.
pub fn parse_documents(path: &Path, file: usize, text: &str) -> FileLoad {
    collect(path, file, FileText::Text(text))
}

/// [`parse_documents`] of text or bytes.
fn collect(path: &Path, file: usize, text: FileText<'_>) -> FileLoad {
    let mut load = FileLoad { files: vec![path.to_owned()], ..FileLoad::default() };
    each_document(path, file, text, |item| load.take(item));
    load
}

/// A file's content: text, or bytes that are not all UTF-8.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FileText<'a> {
    /// All of it is UTF-8.
    Text(&'a str),
    /// Some of it is not.
    Bytes(&'a [u8]),
}

/// Each document of one file as a YAML value, or the problem that makes it unreadable (its YAML, bytes that are
/// not UTF-8), by its index in the file and its identity before its metadata is read (`path#index`); the stream
/// is cut into documents first ([`split`]).
pub(crate) fn each_value(
    path: &Path,
    text: FileText<'_>,
    mut each: impl FnMut(usize, &ObjectId, Result<Value, ValidationError>),
) {
    // One path for every identity of this file's objects.
    let shared: Arc<Path> = Arc::from(path);
    each_value_of_part(&shared, text, (0, 0), &mut each);
}

/// About how many bytes of a file [`each_value_read`] holds at once.
const PART: usize = 1 << 20;

/// [`each_value`] over a file read part by part, each of about [`PART`] bytes and cut where the parts' documents
/// are the whole file's ([`split::CutPoints`]), so that a large file is never held whole; fails only when reading
/// fails (what was read by then has been handed over).
pub(crate) fn each_value_read(
    path: &Path,
    reader: impl io::BufRead,
    each: impl FnMut(usize, &ObjectId, Result<Value, ValidationError>),
) -> io::Result<()> {
    each_value_read_in(path, reader, PART, each)
}

/// [`each_value_read`] in parts of at least `part` bytes (but the last).
fn each_value_read_in(
    path: &Path,
    mut reader: impl io::BufRead,
    part_size: usize,
    mut each: impl FnMut(usize, &ObjectId, Result<Value, ValidationError>),
) -> io::Result<()> {
    let shared: Arc<Path> = Arc::from(path);
    let mut cuts = split::CutPoints::default();
    let (mut part, mut line) = (Vec::new(), Vec::new());
    let mut next = (0, 0);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if cuts.before(&String::from_utf8_lossy(&line)) && part.len() >= part_size {
            next = each_value_of_part(&shared, file_text(&part), next, &mut each);
            part.clear();
        }
        part.extend_from_slice(&line);
    }
    // The last part (never empty after a cut: it starts with a `---` line), or the whole file (perhaps empty).
    each_value_of_part(&shared, file_text(&part), next, &mut each);
    Ok(())
}

fn file_text(bytes: &[u8]) -> FileText<'_> {
    match std::str::from_utf8(bytes) {
        Ok(text) => FileText::Text(text),
        Err(_) => FileText::Bytes(bytes),
    }
}

/// [`each_value`] for a part of a file cut where [`split::CutPoints`] allows (the whole file is one part):
/// `first` is the index of its first document and the number of lines before it; returns the next part's.
fn each_value_of_part(
    shared: &Arc<Path>,
    text: FileText<'_>,
    first: (usize, usize),
    each: &mut impl FnMut(usize, &ObjectId, Result<Value, ValidationError>),
) -> (usize, usize) {
    let (first_index, first_line) = first;
    let lossy;
    let (text, bytes) = match text {
        FileText::Text(text) => (text, None),
        FileText::Bytes(bytes) => {
            lossy = String::from_utf8_lossy(bytes);
            (lossy.as_ref(), Some(bytes))
        }
    };
    let byte_lines: Vec<&[u8]> = bytes.map(|b| b.split_inclusive(|c| *c == b'\n').collect()).unwrap_or_default();
    let pieces = split::documents(text);
    for (number, piece) in pieces.iter().enumerate() {
        let index = first_index + number;
        let unnamed = ObjectId::document_of(shared, index);
        if bytes.is_some() {
            // The lossy text has the same lines as the bytes: a document whose own lines are not UTF-8 is
            // refused alone, naming its first bad line.
            let lines = piece.text.lines().count().max(1);
            let mut own = byte_lines.iter().enumerate().skip(piece.line_offset).take(lines);
            if let Some((line, _)) = own.find(|(_, l)| std::str::from_utf8(l).is_err()) {
                let line = first_line + line + 1;
                let error = ValidationError::new(unnamed.clone(), "", format!("not UTF-8 text (line {line})"));
                each(index, &unnamed, Err(error));
                continue;
            }
        }
        let piece = split::Piece { text: piece.text, line_offset: first_line + piece.line_offset };
        let value = document::parse(unnamed.clone(), &piece);
        each(index, &unnamed, value);
    }
    (first_index + pieces.len(), first_line + text.bytes().filter(|b| *b == b'\n').count())
}

/// Reads the documents of one file (the `file`-th of the load) one by one, handing each to `each` as soon as it
/// is read: a large file is never held as parsed values all at once, only as text.
pub(crate) fn each_document(path: &Path, file: usize, text: FileText<'_>, mut each: impl FnMut(Item)) {
    each_value(path, text, |index, unnamed, value| items_of((file, index), unnamed, value, &mut each));
}

/// [`each_document`] of the file at `path`, read in parts of at least `part` bytes (but the last), so that it is
/// never held whole; fails when the file cannot be opened or read (what was read by then has been handed over).
fn read_documents(path: &Path, file: usize, part: usize, mut each: impl FnMut(Item)) -> Result<(), LoadError> {
    let read_error = |source| LoadError::Read { path: path.to_owned(), source };
    let reader = io::BufReader::new(fs::File::open(path).map_err(read_error)?);
    each_value_read_in(path, reader, part, |index, unnamed, value| {
        items_of((file, index), unnamed, value, &mut each);
    })
    .map_err(read_error)
}

/// The objects of one document (the `index`-th of the `file`-th file), or why it cannot be read.
fn items_of(
    (file, index): (usize, usize),
    unnamed: &ObjectId,
    value: Result<Value, ValidationError>,
    each: &mut impl FnMut(Item),
) {
    let value = match value {
        Ok(value) => value,
        Err(error) => return each(Item::Unreadable(error.object.clone(), vec![error])),
    };
    // A `List` (what `kubectl get -o yaml` writes) holds its objects as items: kubectl apply takes each.
    let items = match value {
        Value::Mapping(mut list) if is_list(&list) => match list.remove("items") {
            Some(Value::Sequence(items)) => items,
            _ => Vec::new(),
        },
        value => vec![value],
    };
    for item in items {
        let id = document_id(unnamed, &item);
        each(match read_value(&id, item) {
            Document::Empty => Item::Empty(ValidationError::new(id, "", "empty document, skipped")),
            Document::Unreadable(errors) => Item::Unreadable(id, errors),
            Document::Object { object, problems } => {
                let age = Age::loaded(file, index);
                Item::Object(Box::new(SourceObject { id, age, spec: object.spec, generation: None }), problems)
            }
        });
    }
}

/// Whether a document is a `List` of `v1` (its items are the objects).
fn is_list(document: &serde_yaml::Mapping) -> bool {
    let text = |key: &str| document.get(key).and_then(Value::as_str);
    text("kind") == Some("List") && text("apiVersion") == Some("v1")
}

/// A document's identity: `unnamed` (`path#index`), with `(namespace/name)` when its metadata says.
pub(crate) fn document_id(unnamed: &ObjectId, value: &Value) -> ObjectId {
    let text = |field: &str| value.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str);
    unnamed.clone().named(text("namespace"), text("name"))
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
    /// About how many bytes of a file are held at once when it is read part by part ([`PART`]; less in tests).
    part: usize,
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
        FileSource { paths, files: HashMap::new(), part: PART }
    }

    /// The paths given.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Brings `index` up to date with the files as they are now, reading only the files that changed since the
    /// last call. On a [`LoadError`] the index keeps what the last good reload gave it (an unreadable path is never
    /// taken for "no objects"): a changed file whose objects the index holds is read whole before the index is
    /// touched (its objects are replaced as its documents are fed, and the old ones could not be put back); the
    /// files of which it holds nothing (all of them at the first load) are then read part by part as they are fed,
    /// and a read that fails midway deletes what they gave, which leaves the index as it was. Only then are the
    /// other changes made.
    pub fn reload_into(&mut self, index: &mut ObjectIndex) -> Result<Reload, LoadError> {
        let listed = expand_with_metadata(&self.paths)?;
        let mut read = Vec::with_capacity(listed.len());
        for (position, (path, meta)) in listed.into_iter().enumerate() {
            let stamp = Stamp::of(&meta);
            let record = self.files.get(&path);
            let load = match record {
                Some(record) if record.stamp == stamp => Load::Unchanged,
                Some(record) if !record.ids.is_empty() => Load::Whole(read_file(&path)?),
                _ => Load::Parts,
            };
            read.push((path, stamp, position, load));
        }

        let mut report = Reload { files: read.len(), listed: true, ..Reload::default() };
        let mut failed = None;
        let part = self.part;
        report.changed = index.batch(|index| {
            let new = read.iter().filter(|(.., load)| matches!(load, Load::Parts));
            let mut fed = match feed_new(index, new.map(|(path, _, position, _)| (&**path, *position)), part) {
                Ok(fed) => fed.into_iter(),
                Err(error) => {
                    failed = Some(error);
                    return;
                }
            };
            let mut previous = std::mem::take(&mut self.files);
            for (path, stamp, position, load) in read {
                let old = previous.remove(&path);
                let ids = match load {
                    Load::Parts => {
                        report.files_read += 1;
                        let (ids, warnings) = fed.next().unwrap_or_default();
                        report.warnings.extend(warnings);
                        ids
                    }
                    Load::Whole(content) => {
                        report.files_read += 1;
                        let old = old.map(|o| o.ids).unwrap_or_default();
                        feed(index, (&path, position, &content), old, &mut report.warnings)
                    }
                    Load::Unchanged => {
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
        match failed {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }
}

impl FileSource {
    /// Brings `index` up to date with what changed at `paths` only (what inotify reported), when that is the
    /// common case: files already known, edited in place or replaced by a rename. Anything that may change which
    /// files there are — a new or removed file, a directory or a symbolic link (a mounted ConfigMap swaps its
    /// `..data` link) — lists the paths again, as [`FileSource::reload_into`]. Editor leftovers (hidden names, other
    /// extensions, gone again) are ignored. A change of one file in a directory of 10,000 thus costs that file.
    /// Files are read, and a failure leaves the index as it was, as by [`FileSource::reload_into`].
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
                let load = if record.ids.is_empty() { Load::Parts } else { Load::Whole(read_file(path)?) };
                read.push((path.clone(), stamp, record.position, load));
            }
        }
        let mut report = Reload { files: self.files.len(), ..Reload::default() };
        let mut failed = None;
        let part = self.part;
        report.changed = index.batch(|index| {
            let new = read.iter().filter(|(.., load)| matches!(load, Load::Parts));
            let mut fed = match feed_new(index, new.map(|(path, _, position, _)| (&**path, *position)), part) {
                Ok(fed) => fed.into_iter(),
                Err(error) => {
                    failed = Some(error);
                    return;
                }
            };
            for (path, stamp, position, load) in read {
                report.files_read += 1;
                let old = self.files.remove(&path).map(|r| r.ids).unwrap_or_default();
                let ids = match load {
                    Load::Whole(content) => feed(index, (&path, position, &content), old, &mut report.warnings),
                    // The file gave nothing before (`old` is empty).
                    _ => {
                        let (ids, warnings) = fed.next().unwrap_or_default();
                        report.warnings.extend(warnings);
                        ids
                    }
                };
                self.files.insert(path, FileRecord { stamp, position, ids });
            }
        });
        match failed {
            Some(error) => Err(error),
            None => Ok(report),
        }
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

/// How a reload reads one file.
#[derive(Debug)]
enum Load {
    /// Not at all: it has not changed since the last load.
    Unchanged,
    /// Whole, before the index is touched: the index holds objects of it.
    Whole(Content),
    /// Part by part, as it is fed: the index holds nothing of it.
    Parts,
}

/// A file's content as read: text, or bytes that are not all UTF-8 (their UTF-8 documents are still read).
#[derive(Debug)]
enum Content {
    Text(String),
    Bytes(Vec<u8>),
}

impl Content {
    fn text(&self) -> FileText<'_> {
        match self {
            Content::Text(text) => FileText::Text(text),
            Content::Bytes(bytes) => FileText::Bytes(bytes),
        }
    }
}

/// Reads one file (parsing comes later, document by document, as the index takes them).
fn read_file(path: &Path) -> Result<Content, LoadError> {
    let bytes = fs::read(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => Content::Text(text),
        Err(e) => Content::Bytes(e.into_bytes()),
    })
}

/// Gives the index what one file (the `position`-th of the load) holds now, document by document, replacing what
/// it held (`old`); returns the objects it holds now. Empty documents' warnings go to `warnings`.
fn feed(
    index: &mut ObjectIndex,
    (path, position, content): (&Path, usize, &Content),
    old: Vec<ObjectId>,
    warnings: &mut Vec<ValidationError>,
) -> Vec<ObjectId> {
    let mut ids: Vec<ObjectId> = Vec::new();
    each_document(path, position, content.text(), |item| give(index, item, &mut ids, warnings));
    let kept: BTreeSet<&ObjectId> = ids.iter().collect();
    for id in old.iter().filter(|id| !kept.contains(id)) {
        index.delete(id);
    }
    ids
}

/// Gives the index one document of a file, noting its identity in `ids` (empty documents' warnings go to
/// `warnings`).
fn give(index: &mut ObjectIndex, item: Item, ids: &mut Vec<ObjectId>, warnings: &mut Vec<ValidationError>) {
    match item {
        Item::Object(object, problems) => {
            ids.push(object.id.clone());
            index.apply_read(*object, problems);
        }
        Item::Unreadable(id, errors) => {
            ids.push(id.clone());
            index.apply_unreadable(id, errors);
        }
        Item::Empty(warning) => warnings.push(warning),
    }
}

/// What one file gave the index: its objects, and its empty documents' warnings.
type Fed = (Vec<ObjectId>, Vec<ValidationError>);

/// Gives the index what `files` (each with its load position) hold, each read in parts of at least `part` bytes as
/// it is fed, never whole; the index must hold nothing of them (identities name their file). Returns, for each
/// file, the objects it gave and its warnings. When one cannot be opened or read, every object they gave is
/// deleted again, which leaves the index as it was (none of them was there before), and the error is returned.
fn feed_new<'a>(
    index: &mut ObjectIndex,
    files: impl Iterator<Item = (&'a Path, usize)>,
    part: usize,
) -> Result<Vec<Fed>, LoadError> {
    let mut fed = Vec::new();
    for (path, position) in files {
        let (mut ids, mut warnings) = (Vec::new(), Vec::new());
        let read = read_documents(path, position, part, |item| give(index, item, &mut ids, &mut warnings));
        if let Err(error) = read {
            for id in fed.iter().flat_map(|(ids, _): &Fed| ids).chain(&ids) {
                index.delete(id);
            }
            return Err(error);
        }
        fed.push((ids, warnings));
    }
    Ok(fed)
}

mod document;
mod follow;
mod split;
mod words;

#[cfg(test)]
mod tests;
