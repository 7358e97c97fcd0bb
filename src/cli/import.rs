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
    match &args.output_dir {
        Some(dir) => write_dir(dir, &objects, director.as_ref())?,
        None => {
            let mut out = std::io::stdout().lock();
            for object in &objects {
                writeln!(out, "---")?;
                out.write_all(serde_yaml::to_string(object)?.as_bytes())?;
            }
            out.flush()?;
            if let Some(director) = &director {
                // Not on stdout: it is another file, read by --director-config, not a manifest.
                eprintln!(
                    "director settings (for --director-config; written as {DIRECTOR_FILE} with -o DIR):\n{}",
                    serde_yaml::to_string(director)?
                );
            }
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

/// One NAME.yaml per object, and director.yaml when there are director settings. Existing files of those names
/// are replaced (each atomically); nothing else in the directory is touched.
fn write_dir(
    dir: &Path,
    objects: &[crate::api::v1alpha1::VirtualService],
    director: Option<&crate::director::DirectorConfig>,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for object in objects {
        let name = object.metadata.name.as_deref().unwrap_or("unnamed");
        write_file(&dir.join(format!("{name}.yaml")), &serde_yaml::to_string(object)?)?;
    }
    if let Some(director) = director {
        write_file(&dir.join(DIRECTOR_FILE), &serde_yaml::to_string(director)?)?;
    }
    eprintln!(
        "wrote {} manifest(s){} into {}",
        objects.len(),
        if director.is_some() { format!(" and {DIRECTOR_FILE}") } else { String::new() },
        dir.display()
    );
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}
