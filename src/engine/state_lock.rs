//! One process at a time per state file: an exclusive `flock` on a lock file beside it (`state.json.lock`).
//!
//! The state file says what this program may delete, and every writer keeps its own copy in memory: two writers
//! would each overwrite the other's file with a picture that lacks the other's services (leaked, or deleted by the
//! next pass as "no longer declared"). So `run` and `agent` hold the lock for their whole life, `apply` for its
//! pass, and `cleanup` refuses while anyone holds it (unless forced). `plan` and `dump` only read the file, which
//! is replaced atomically, so they take no lock: they work beside a running `run`.
//!
//! Why a lock file and not the state file itself: the state file is replaced by a rename at every save, and a lock
//! on the old inode would not exclude a process that opens the new one. The kernel drops a `flock` when its holder
//! exits, however it exits, so a lock is never stale. The holder writes its command and pid into the file, so that
//! a refusal can name it. `cleanup` removes the lock file with the state; a process that opened it just before can
//! then hold a lock on a file no longer at the path, so [`StateLock::acquire`] checks, after locking, that the path
//! still names the file it locked, and starts again when it does not.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Errors taking the lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("state file {state} is in use by {holder} (lock {lock}): {hint}", state = .state.display(), lock = .lock.display())]
    Busy {
        /// The state file.
        state: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// Who holds it, as it wrote itself into the lock file (`a running ipvs-reconciler run, pid 42`).
        holder: String,
        /// What to do about it, for the command that was refused.
        hint: &'static str,
    },
    /// The lock file could not be made, opened or locked.
    #[error("cannot lock state file {state} (lock file {lock}): {source}", state = .state.display(), lock = .lock.display())]
    Io {
        /// The state file.
        state: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// What the refused command should do, by command.
fn hint(command: &str) -> &'static str {
    match command {
        "cleanup" => {
            "stop it first (it would put back what its sources still declare), or pass --force to clean up anyway"
        }
        _ => {
            "two processes must not share one state file (each would overwrite what the other owns); stop the other \
             one, or give this one its own --state"
        }
    }
}

/// The exclusive lock on a state file, held until dropped.
#[derive(Debug)]
pub struct StateLock {
    /// Held for its lock: dropping it (or exiting, however) releases it.
    _file: Flock<File>,
    path: PathBuf,
}

impl StateLock {
    /// The lock file of the state file `state`.
    pub fn path_for(state: &Path) -> PathBuf {
        let mut name = state.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "state".into());
        name.push(".lock");
        state.with_file_name(name)
    }

    /// Takes the lock of `state` for `command` (`run`, `agent`, `apply`, `cleanup`), or says who holds it. Never
    /// waits: a second process is refused at once. The directory is made (private) when missing, as a save makes
    /// it.
    pub fn acquire(state: &Path, command: &str) -> Result<StateLock, LockError> {
        let path = Self::path_for(state);
        let io_err = |source| LockError::Io { state: state.to_owned(), lock: path.clone(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_err)?;
        }
        // A few rounds: each one that loses a race with a removal of the lock file starts again.
        for _ in 0..5 {
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(io_err)?;
            let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => locked,
                Err((_, Errno::EWOULDBLOCK)) => {
                    return Err(LockError::Busy {
                        state: state.to_owned(),
                        lock: path.clone(),
                        holder: holder_of(&path),
                        hint: hint(command),
                    });
                }
                Err((_, errno)) => return Err(io_err(io::Error::from(errno))),
            };
            if !still_at_path(&file, &path).map_err(io_err)? {
                continue;
            }
            // Who holds it, for the message of whoever is refused.
            let record = format!("ipvs-reconciler {command}, pid {}\n", std::process::id());
            file.set_len(0).and_then(|()| file.write_all(record.as_bytes())).map_err(io_err)?;
            return Ok(StateLock { _file: file, path });
        }
        Err(io_err(io::Error::other("the lock file kept being replaced while it was being locked")))
    }

    /// Who holds the lock of `state` now, without taking it (`None`: nobody; for `cleanup --dry-run`, which
    /// changes nothing and so needs no lock, but says what a real run would meet).
    pub fn holder(state: &Path) -> Option<String> {
        let path = Self::path_for(state);
        let file = fs::File::open(&path).ok()?;
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Ok(_released_on_drop) => None,
            Err((_, Errno::EWOULDBLOCK)) => Some(holder_of(&path)),
            Err(_) => None,
        }
    }

    /// Removes the lock file, then releases the lock (`cleanup`, once the state file is gone too). Whoever opens
    /// the path afterwards makes a new file; whoever opened the old one finds, once locked, that it is no longer at
    /// the path, and starts again.
    pub fn remove(self) -> Result<(), io::Error> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Whether `path` still names the file `file` has open (same device and inode).
fn still_at_path(file: &File, path: &Path) -> io::Result<bool> {
    let held = file.metadata()?;
    match fs::metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The holder's record in the lock file, for a message; a generic one when it cannot be read (the holder may not
/// have written it yet).
fn holder_of(lock: &Path) -> String {
    let record = fs::read_to_string(lock).unwrap_or_default();
    let record = record.trim();
    if record.is_empty() || record.len() > 200 {
        "another ipvs-reconciler process".to_owned()
    } else {
        format!("a running {record}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_named_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("made/state.json");
        let first = StateLock::acquire(&state, "run").unwrap();
        assert_eq!(StateLock::path_for(&state), dir.path().join("made/state.json.lock"));
        assert!(StateLock::path_for(&state).exists());
        assert!(!state.exists(), "the lock is beside the state file, not in it");

        // A flock is per open file: a second open in this process is refused as another process would be.
        let err = StateLock::acquire(&state, "run").unwrap_err();
        let pid = std::process::id();
        match &err {
            LockError::Busy { holder, .. } => assert_eq!(holder, &format!("a running ipvs-reconciler run, pid {pid}")),
            other => panic!("expected Busy, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.starts_with(&format!("state file {} is in use by", state.display())), "{message}");
        assert!(message.contains("give this one its own --state"), "{message}");
        let cleanup = StateLock::acquire(&state, "cleanup").unwrap_err().to_string();
        assert!(cleanup.contains("or pass --force"), "{cleanup}");
        assert_eq!(StateLock::holder(&state), Some(format!("a running ipvs-reconciler run, pid {pid}")));

        drop(first);
        assert_eq!(StateLock::holder(&state), None);
        let second = StateLock::acquire(&state, "apply").unwrap();
        assert!(fs::read_to_string(StateLock::path_for(&state)).unwrap().starts_with("ipvs-reconciler apply"));
        drop(second);
    }

    #[test]
    fn a_removed_lock_file_is_made_again_and_locks_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        let lock = StateLock::acquire(&state, "cleanup").unwrap();
        // Opened before the removal: once the holder is gone, this file is no longer the lock file.
        let stale = fs::File::open(StateLock::path_for(&state)).unwrap();
        lock.remove().unwrap();
        assert!(!StateLock::path_for(&state).exists());
        assert!(still_at_path(&stale, &StateLock::path_for(&state)).is_ok_and(|at| !at));
        let again = StateLock::acquire(&state, "run").unwrap();
        assert!(StateLock::acquire(&state, "run").is_err());
        drop(again);
    }

    #[test]
    fn nobody_holds_the_lock_of_a_state_never_locked() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(StateLock::holder(&dir.path().join("state.json")), None);
    }
}
