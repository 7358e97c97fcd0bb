//! The engine's ownership memory across restarts ([`Ownership`], kept in the state file): which services it owns,
//! which backends it is draining, what the health checks last said of each target (so that a restart flaps
//! nothing), which addresses it added to the VIP interface, and which sync daemons it started.
//!
//! The file is written atomically (temporary file, fsync, rename, fsync of the directory) *before* the kernel is
//! changed, so that a crash between the two never leaves a service in the kernel that the next run does not know it
//! owns. A service removed from the sources while the program was down is therefore still removed at the next start,
//! and services made by other tools are never mistaken for ours.

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

const FORMAT_VERSION: u32 = 1;

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
        self.interface.is_none() && self.addrs.is_empty()
    }
}

impl Ownership {
    /// Loads the state; a missing file is an empty state (first run).
    pub fn load(path: &Path) -> Result<Ownership, StateError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ownership::default()),
            Err(source) => return Err(StateError::Io { path: path.to_owned(), source }),
        };
        let file: StateFile = serde_json::from_str(&text)
            .map_err(|e| StateError::Corrupt { path: path.to_owned(), reason: e.to_string() })?;
        if file.version != FORMAT_VERSION {
            return Err(StateError::Corrupt {
                path: path.to_owned(),
                reason: format!("format version {} (this program writes {FORMAT_VERSION})", file.version),
            });
        }
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
        let mut tmp = tempfile_in(&dir, path).map_err(io_err)?;
        tmp.1.write_all(&bytes).map_err(io_err)?;
        tmp.1.sync_all().map_err(io_err)?;
        fs::rename(&tmp.0, path).map_err(io_err)?;
        // The rename is durable only once the directory entry is.
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io_err)?;
        Ok(())
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
mod tests {
    use super::*;

    #[test]
    fn the_state_file_is_private_and_a_directory_made_for_it_too() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("made/state.json");
        Ownership::default().save(&path).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        // An existing directory keeps its mode; the file is still private, also when it replaces a public one.
        let shared = root.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
        let path = shared.join("state.json");
        fs::write(&path, "{}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        Ownership::default().save(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&shared), 0o755);
    }
    use std::net::IpAddr;

    fn key(last: u8) -> ServiceKey {
        ServiceKey::tcp(IpAddr::from([192, 0, 2, last]), 80)
    }

    #[test]
    fn missing_file_is_a_first_run() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Ownership::load(&dir.path().join("none.json")).unwrap(), Ownership::default());
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let mut state = Ownership::default();
        state.owned.insert(key(1));
        state.owned.insert(ServiceKey::Fwmark { family: crate::model::Family::V6, mark: 7 });
        state.drains.insert((key(1), DestKey::new(IpAddr::from([10, 0, 0, 1]), 80)), 1_700_000_000);
        let check = crate::health::Check::new(
            crate::health::Probe::Http(crate::health::HttpProbe::new("/healthz")),
            std::time::Duration::from_millis(1500),
        );
        let mut down = HealthState::new(false);
        down.last_error = Some("connection refused".into());
        down.last_transition = Some(1_700_000_100);
        state.health.insert(TargetKey::new("10.0.0.1:8080".parse().unwrap(), check), down);
        state.vips = OwnedVips {
            interface: Some("ipvs0".into()),
            addrs: ["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()].into(),
        };
        state.save(&path).unwrap();
        assert_eq!(Ownership::load(&path).unwrap(), state);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn a_file_from_before_addresses_were_managed_owns_no_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, r#"{"version":1,"owned":[],"drains":[]}"#).unwrap();
        assert_eq!(Ownership::load(&path).unwrap().vips, OwnedVips::default());
    }

    #[test]
    fn corrupt_file_is_refused_not_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, "{not json").unwrap();
        let err = Ownership::load(&path).unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("state.json"));
    }
}
