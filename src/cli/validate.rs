//! `validate`: offline checks of manifests, no kernel needed.
//!
//! - As `run` and `apply` read files (the default): every VirtualService through the same index (validation,
//!   conflicts by age); `backendsFrom` and `nodeSelector` are refused, since only the agent resolves them.
//! - As a cluster will receive them (`--kubernetes`, in `cluster`): VirtualServices may use `backendsFrom` and
//!   `nodeSelector` (their syntax checked as Kubernetes would), VirtualServicePools are checked too, and objects
//!   need a name, once.
//! - Both: `-` reads standard input. A document of another kind (a Namespace, a Deployment, Istio's
//!   `VirtualService`) is skipped and counted, not an error: a directory of manifests holds more than ours. A
//!   document of this API's group that is no kind of it, or no object at all, is an error.

mod cluster;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_yaml::Value;
use tracing::warn;

use super::args::ValidateArgs;
use super::{EXIT_ERROR, EXIT_OK};
use crate::api::pool::POOL_KIND;
use crate::api::v1alpha1::{API_VERSION, KIND};
use crate::api::{Age, ObjectId, SourceObject, ValidationError};
use crate::source::ObjectIndex;
use crate::source::file::{Document, FileText, document_id, each_value, each_value_read, expand, read_value};

/// The path that stands for standard input.
const STDIN: &str = "-";

/// The API group of this program's kinds.
const GROUP: &str = "ipvs.dev";

/// Runs `validate`; the exit code is 1 when any object is invalid or conflicts with another.
pub fn validate(args: &ValidateArgs) -> Result<i32> {
    // As `run` reads files, each is read part by part when its turn comes; a cluster's check takes them whole.
    let inputs = read_inputs(&args.files, args.kubernetes)?;
    let outcome = if args.kubernetes { cluster::check(inputs) } else { check_files(inputs) };
    for error in &outcome.errors {
        eprintln!("error: {error}");
    }
    for conflict in &outcome.conflicts {
        eprintln!("conflict: {conflict}");
    }
    let mut summary =
        format!("{}; {} error(s), {} conflict(s)", outcome.valid, outcome.errors.len(), outcome.conflicts.len());
    if outcome.skipped > 0 {
        summary.push_str(&format!("; {} other document(s) skipped", outcome.skipped));
    }
    println!("{summary}");
    Ok(if outcome.errors.is_empty() && outcome.conflicts.is_empty() { EXIT_OK } else { EXIT_ERROR })
}

/// What a check found.
struct Outcome {
    /// What is valid, for the summary (`3 valid service(s) with 7 backend(s)`).
    valid: String,
    /// Every problem of every document.
    errors: Vec<ValidationError>,
    /// Objects refused because another claims the same service, one line each.
    conflicts: Vec<String>,
    /// Documents of other kinds.
    skipped: usize,
}

/// One input: its path (`<stdin>` for standard input) and its content; `None`: a file read part by part when its
/// turn comes, so that a large one is never held whole.
struct Input {
    path: PathBuf,
    bytes: Option<Vec<u8>>,
}

/// The `-f` paths' files, read (directories as `run` lists them), and standard input where `-` is given. A path
/// that cannot be read is an error for the whole command, as for `run`: no check passes on an unread file. With
/// `whole`, every file is read here; otherwise each is only opened here (which finds the files that cannot be
/// read) and read when its turn comes (a file that fails then is an error of the check).
fn read_inputs(paths: &[PathBuf], whole: bool) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    let mut seen = BTreeSet::new();
    let mut stdin_read = false;
    for path in paths {
        if path.as_os_str() == STDIN {
            if stdin_read {
                bail!("-f - is given twice: standard input can be read once");
            }
            stdin_read = true;
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes).context("reading standard input")?;
            inputs.push(input(PathBuf::from("<stdin>"), bytes));
            continue;
        }
        for file in expand(&[path]).context("reading manifests")? {
            // The same file named twice (`-f dir -f dir/a.yaml`) is read once, as `run` reads it.
            if !seen.insert(std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone())) {
                continue;
            }
            let cannot = || format!("reading manifests: cannot read {}", file.display());
            if whole {
                let bytes = std::fs::read(&file).with_context(cannot)?;
                inputs.push(input(file, bytes));
            } else {
                std::fs::File::open(&file).with_context(cannot)?;
                inputs.push(Input { path: file, bytes: None });
            }
        }
    }
    Ok(inputs)
}

fn input(path: PathBuf, bytes: Vec<u8>) -> Input {
    Input { path, bytes: Some(bytes) }
}

/// What a document is, from its `apiVersion` and `kind`.
enum Kind {
    /// Nothing (`---` alone).
    Empty,
    /// A VirtualService of this API.
    VirtualService,
    /// A VirtualServicePool of this API.
    Pool,
    /// A `v1` list (`kubectl get -o yaml` writes one): its items are documents.
    List(Vec<Value>),
    /// Another kind, of another API.
    Other { kind: String, api_version: String },
    /// Not an object, or one of this API's group that is no kind of it: `parse_document` says what is wrong.
    Refused,
}

fn kind_of(value: &Value) -> Kind {
    let text = |key: &str| value.get(key).and_then(Value::as_str);
    let (Some(kind), Some(api_version)) = (text("kind"), text("apiVersion")) else {
        return if value.is_null() { Kind::Empty } else { Kind::Refused };
    };
    match (api_version, kind) {
        (API_VERSION, KIND) => Kind::VirtualService,
        (API_VERSION, POOL_KIND) => Kind::Pool,
        _ if api_version.split('/').next() == Some(GROUP) => Kind::Refused,
        ("v1", list) if list.ends_with("List") => match value.get("items") {
            Some(Value::Sequence(items)) => Kind::List(items.clone()),
            _ => Kind::Refused,
        },
        _ => Kind::Other { kind: kind.to_owned(), api_version: api_version.to_owned() },
    }
}

/// The documents of every input, each with its identity (`path#index (namespace/name)`, as `run` names them) and
/// its age (its position), lists unfolded. A document that cannot be read (its YAML, bytes that are not UTF-8) is
/// an error of its own: the input's other documents are still read, as `run` reads them.
fn each_document(
    inputs: Vec<Input>,
    mut visit: impl FnMut(ObjectId, Age, Kind, Value),
    errors: &mut Vec<ValidationError>,
) {
    for (position, input) in inputs.into_iter().enumerate() {
        let mut each = |index, unnamed: &ObjectId, value| {
            let value = match value {
                Ok(value) => value,
                Err(error) => return errors.push(error),
            };
            let age = Age::loaded(position, index);
            let items = match kind_of(&value) {
                Kind::List(items) => items,
                kind => return visit(document_id(unnamed, &value), age, kind, value),
            };
            for item in items {
                visit(document_id(unnamed, &item), age, kind_of(&item), item);
            }
        };
        let Some(bytes) = input.bytes else {
            let read = std::fs::File::open(&input.path)
                .and_then(|file| each_value_read(&input.path, std::io::BufReader::new(file), &mut each));
            if let Err(e) = read {
                let id = ObjectId::File { path: input.path.clone() };
                errors.push(ValidationError::new(id, "", format!("cannot read: {e}")));
            }
            continue;
        };
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) => FileText::Text(text),
            Err(_) => FileText::Bytes(&bytes),
        };
        each_value(&input.path, text, each);
    }
}

/// The default check: the documents as `run` and `apply` would take them.
fn check_files(inputs: Vec<Input>) -> Outcome {
    let mut errors = Vec::new();
    // Objects go to the index as they are read: only what they validate to is kept, never every document's spec.
    let mut index = ObjectIndex::new();
    let mut unreadable: Vec<(ObjectId, Vec<ValidationError>)> = Vec::new();
    let mut skipped = 0;
    each_document(
        inputs,
        |id, age, kind, value| match kind {
            Kind::Empty => warn!("{id}: empty document, skipped"),
            Kind::Pool | Kind::Other { .. } => {
                skipped += 1;
                let (kind, api_version) = match &kind {
                    Kind::Other { kind, api_version } => (kind.as_str(), api_version.as_str()),
                    _ => (POOL_KIND, API_VERSION),
                };
                // Echoed input, cut to a readable length.
                let (kind, api_version): (String, String) =
                    (kind.chars().take(64).collect(), api_version.chars().take(64).collect());
                warn!(
                    "{id}: kind {kind} of {api_version} skipped: `run` and `apply` read VirtualServices only and refuse \
                     it (`validate --kubernetes` checks manifests for a cluster)"
                );
            }
            Kind::VirtualService | Kind::Refused | Kind::List(_) => match read_value(&id, value) {
                Document::Empty => warn!("{id}: empty document, skipped"),
                Document::Unreadable(found) => match unreadable.iter_mut().find(|(known, _)| *known == id) {
                    Some((_, errors)) => errors.extend(found),
                    None => unreadable.push((id, found)),
                },
                Document::Object { object, problems } => {
                    index.apply_read(SourceObject { id, age, spec: object.spec, generation: None }, problems);
                }
            },
        },
        &mut errors,
    );
    for error in errors {
        unreadable.push((error.object.clone(), vec![error]));
    }
    for (id, errors) in unreadable {
        index.apply_unreadable(id, errors);
    }
    let table = index.table();
    let backends: usize = table.services.values().map(|s| s.dests.len()).sum();
    Outcome {
        valid: format!("{} valid service(s) with {backends} backend(s)", table.services.len()),
        errors: index.errors(),
        conflicts: index.conflicts().iter().map(ToString::to_string).collect(),
        skipped,
    }
}

#[cfg(test)]
mod tests;
