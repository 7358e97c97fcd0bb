//! `import`: another tool's configuration as manifests. The conversion is `crate::import`'s; this prints it,
//! writes the files and maps the outcome to the exit code.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::args::{ImportArgs, ImportFrom};
use super::{EXIT_ERROR, EXIT_OK, EXIT_PARTIAL};
use crate::import::{self, ImportError, Imported};

/// The file the director settings are written to with `-o DIR`.
const DIRECTOR_FILE: &str = "director.yaml";

/// Runs `import`; notes go to stderr, one per line, before the manifests are written.
pub fn import(args: &ImportArgs) -> Result<i32> {
    let imported = match read(&args.from) {
        Ok(imported) => imported,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(EXIT_ERROR);
        }
    };
    let Imported { mut objects, director, notes } = imported;
    for note in &notes {
        eprintln!("{note}");
    }
    if let Some(namespace) = &args.namespace {
        for object in &mut objects {
            object.metadata.namespace = Some(namespace.clone());
        }
    }
    // Where the director settings go: checked before anything is written, so that a refusal writes nothing.
    let director_path = match (&director, &args.director_output, &args.output_dir) {
        (None, _, _) => None,
        (Some(_), Some(path), _) => Some(path.clone()),
        (Some(_), None, Some(dir)) => {
            let path = beside(dir);
            if path.exists() {
                eprintln!(
                    "error: {} exists and is not replaced: give --director-output FILE for the imported director \
                     settings (nothing was written)",
                    path.display()
                );
                return Ok(EXIT_ERROR);
            }
            Some(path)
        }
        (Some(_), None, None) => None,
    };
    match &args.output_dir {
        Some(dir) => write_dir(dir, &objects)?,
        None => {
            let mut out = std::io::stdout().lock();
            for object in &objects {
                writeln!(out, "---")?;
                out.write_all(serde_yaml::to_string(object)?.as_bytes())?;
            }
            out.flush()?;
        }
    }
    if let Some(director) = &director {
        let text = serde_yaml::to_string(director)?;
        match &director_path {
            Some(path) => {
                write_file(path, &text)?;
                eprintln!("wrote the director settings to {} (for --director-config)", path.display());
            }
            // Not on stdout: it is another file, read by --director-config, not a manifest.
            None => eprintln!(
                "director settings (for --director-config; written to a file with -o DIR or --director-output):\n{text}"
            ),
        }
    }
    let partial = notes.iter().any(|note| note.kind == import::NoteKind::NotMapped);
    if partial {
        eprintln!(
            "import is partial: the items marked `not mapped` above shape the table or the checks and were not \
             converted (exit {EXIT_PARTIAL})"
        );
        return Ok(EXIT_PARTIAL);
    }
    Ok(EXIT_OK)
}

fn read(from: &ImportFrom) -> Result<Imported, ImportError> {
    match from {
        ImportFrom::Keepalived { file } => import::keepalived::import(file),
        ImportFrom::Ipvsadm { file } => {
            let (text, source) = match file {
                Some(path) if path.as_os_str() != "-" => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|source| ImportError::Read { path: path.clone(), source })?;
                    (text, path.clone())
                }
                _ => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .map_err(|source| ImportError::Read { path: PathBuf::from("-"), source })?;
                    (text, PathBuf::from("-"))
                }
            };
            import::ipvsadm::import(&text, &source)
        }
    }
}

/// `director.yaml` beside the manifest directory `dir` (in its parent): the file source does not read it there.
fn beside(dir: &Path) -> PathBuf {
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parent.join(DIRECTOR_FILE)
}

/// One NAME.yaml per object. Existing files of those names are replaced (each atomically); nothing else in the
/// directory is touched.
fn write_dir(dir: &Path, objects: &[crate::api::v1alpha1::VirtualService]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for object in objects {
        let name = object.metadata.name.as_deref().unwrap_or("unnamed");
        write_file(&dir.join(format!("{name}.yaml")), &serde_yaml::to_string(object)?)?;
    }
    eprintln!("wrote {} manifest(s) into {}", objects.len(), dir.display());
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}
