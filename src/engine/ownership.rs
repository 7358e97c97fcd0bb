//! The engine's ownership memory across restarts ([`Ownership`], kept in the state file): which services it owns,
//! which backends it is draining, what the health checks last said of each target (so that a restart flaps
//! nothing), which addresses it added to the VIP interface, and which sync daemons it started.
//!
//! The file is written atomically (temporary file, fsync, rename, fsync of the directory) *before* the kernel is
//! changed, so that a crash between the two never leaves a service in the kernel that the next run does not know it
//! owns. A service removed from the sources while the program was down is therefore still removed at the next start,
//! and services made by other tools are never mistaken for ours.
//!
//! **Format versions.** The file says which format it is in (`version`). This binary reads every format up to
//! [`FORMAT_VERSION`] (each older one is converted as it is read) and refuses a newer one with
//! [`StateError::TooNew`] before anything is planned: a state it cannot read must never drive deletions. The
//! version is raised only when an older binary would misread the file. A field added with a default that an older
//! binary can ignore keeps the version, provided that losing it (an older binary rewrites the file without it) only
//! ever forgets in the safe direction: `vips.created` is such a field (forgotten, the interface is left in place).
//! `tests/fixtures/state/` holds files of every format and form this program has written; each must still load
//! with its meaning.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::health::{HealthState, TargetKey};
use crate::model::{DestKey, ServiceKey, SyncDaemon};

/// Default location of the state file.
pub const DEFAULT_STATE_PATH: &str = "/var/lib/ipvs-reconciler/state.json";

/// The format this binary writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Errors reading or writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file exists but could not be read or written.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file exists but is not a state file this version understands. Refusing is safer than forgetting what we
    /// own (which would leak services) or guessing.
    #[error(
        "state file {path} is unreadable ({reason}); fix or remove it (removing forgets which services this program owns)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file was written by a newer binary in a format this one does not know. Nothing is planned from it: a
    /// guess could delete what the newer binary made.
    #[error(
        "state file {path} has format {found}; this binary reads formats up to {supported}: run the newer \
         ipvs-reconciler that wrote it, or move the file away to start over (this program then forgets what it \
         made: its services and addresses stay in the kernel, unmanaged)"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its format.
        found: u32,
        /// The newest format this binary reads.
        supported: u32,
    },
}

/// One drained destination: since when (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainRecord {
    /// The service.
    pub service: ServiceKey,
    /// The destination being drained.
    pub dest: DestKey,
    /// When draining began, unix seconds.
    pub since: u64,
}

/// What the engine remembers between runs: what it owns, and what it is in the middle of (drains, health).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// Services this program created or adopted and has not deleted.
    pub owned: BTreeSet<ServiceKey>,
    /// Destinations being drained and since when.
    pub drains: BTreeMap<(ServiceKey, DestKey), u64>,
    /// Each probe target's health as of its last transition (targets in use only).
    pub health: BTreeMap<TargetKey, HealthState>,
    /// The addresses this program added to the VIP interface and has not removed.
    pub vips: OwnedVips,
    /// The connection-sync daemons this program started, as it asked for them.
    pub daemons: Vec<SyncDaemon>,
}

/// The addresses this program added, and the interface it added them to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedVips {
    /// The interface (`None` before the first address).
    pub interface: Option<String>,
    /// The addresses.
    pub addrs: BTreeSet<IpAddr>,
    /// The index of `interface` when this program made it (it was missing): `cleanup` removes that interface, and
    /// only while it still has this index (one deleted and made again by someone else is theirs). Absent in files
    /// written before it was recorded: an interface made then is not known to be ours, and is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u32>,
}

/// One target's saved health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthRecord {
    /// The target (backend address and port, source, check).
    pub target: TargetKey,
    /// What its checks last said.
    pub state: HealthState,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    owned: Vec<ServiceKey>,
    #[serde(default)]
    drains: Vec<DrainRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    health: Vec<HealthRecord>,
    /// Absent in files written before addresses were managed: nothing added yet.
    #[serde(default, skip_serializing_if = "OwnedVips::is_empty")]
    vips: OwnedVips,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    daemons: Vec<SyncDaemon>,
}

impl OwnedVips {
    fn is_empty(&self) -> bool {
        self.interface.is_none() && self.addrs.is_empty() && self.created.is_none()
    }
}

/// The one field every format has, read first: the rest of a newer format may not parse as this binary's.
#[derive(Deserialize)]
struct Version {
    version: u32,
}

impl Ownership {
    /// Loads the state; a missing file is an empty state (first run).
    pub fn load(path: &Path) -> Result<Ownership, StateError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ownership::default()),
            Err(source) => return Err(StateError::Io { path: path.to_owned(), source }),
        };
        let corrupt = |reason: String| StateError::Corrupt { path: path.to_owned(), reason };
        let Version { version } = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        let file: StateFile = match version {
            // Format 1 in every form it was written: `drains`, `health`, `vips`, `daemons` and `vips.created` were
            // added with defaults meaning "none yet", which is what a file without them meant.
            1 => serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?,
            found if found > FORMAT_VERSION => {
                return Err(StateError::TooNew { path: path.to_owned(), found, supported: FORMAT_VERSION });
            }
            other => return Err(corrupt(format!("format {other} never existed"))),
        };
        Ok(Ownership {
            owned: file.owned.into_iter().collect(),
            drains: file.drains.into_iter().map(|d| ((d.service, d.dest), d.since)).collect(),
            health: file.health.into_iter().map(|h| (h.target, h.state)).collect(),
            vips: file.vips,
            daemons: file.daemons,
        })
    }

    /// Writes the state atomically: readers see the old or the new file, never a torn one, even across a crash.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io_err = |source| StateError::Io { path: path.to_owned(), source };
        let file = StateFile {
            version: FORMAT_VERSION,
            owned: self.owned.iter().copied().collect(),
            drains: self
                .drains
                .iter()
                .map(|((service, dest), since)| DrainRecord { service: *service, dest: *dest, since: *since })
                .collect(),
            health: self
                .health
                .iter()
                .map(|(target, state)| HealthRecord { target: target.clone(), state: state.clone() })
                .collect(),
            vips: self.vips.clone(),
            daemons: self.daemons.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| io_err(io::Error::other(e)))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        // The file says which services and addresses this node's agent may delete: only root reads it. A directory
        // made here is private too; one that exists (a hostPath an admin prepared) is left as it is.
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(io_err)?;
        let (tmp, mut file) = tempfile_in(&dir, path).map_err(io_err)?;
        let written = file.write_all(&bytes).and_then(|()| file.sync_all()).and_then(|()| fs::rename(&tmp, path));
        if let Err(e) = written {
            // The previous file is intact. A temporary left behind would hold space on a full disk (each process
            // names its own), and the next save must find what room there is.
            drop(file);
            let _ = fs::remove_file(&tmp);
            return Err(io_err(e));
        }
        // The rename is durable only once the directory entry is.
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io_err)?;
        Ok(())
    }

    /// Removes the state file (after `cleanup` removed everything it lists); a missing file is already removed.
    pub fn remove(path: &Path) -> Result<(), StateError> {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(StateError::Io { path: path.to_owned(), source }),
        }
        // As for a save: the removal is durable only once the directory entry is.
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        File::open(&dir).and_then(|d| d.sync_all()).map_err(|source| StateError::Io { path: path.to_owned(), source })
    }

    /// Whether nothing is owned or remembered.
    pub fn is_empty(&self) -> bool {
        *self == Ownership::default()
    }
}

fn tempfile_in(dir: &Path, target: &Path) -> io::Result<(PathBuf, File)> {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    // truncate: a temporary left by a crash of a process with the same pid is replaced; mode: see `save`.
    let file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    // A leftover temporary keeps the mode it was made with: set it.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok((tmp, file))
}

#[cfg(test)]
mod tests;
