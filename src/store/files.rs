//! The database's files: the lock that keeps a second server off the same database, who may
//! read them, and noticing when the file is deleted or replaced under a running server.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Owner only: the database holds the signing secret and the password hashes.
pub(crate) const PRIVATE: u32 = 0o600;

/// `serve`'s hold on a database: a file beside it, locked (flock) for as long as the server
/// runs and released by the system however the process ends. It names its holder.
pub(crate) struct DbLock {
    file: File,
    path: PathBuf,
}

/// A clean stop removes the lock file (while still holding the lock), so that the database
/// is one file again; a crash leaves it, harmless, for the next server to take.
impl Drop for DbLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

impl DbLock {
    pub fn acquire(db: &Path) -> Result<DbLock> {
        let path = lock_path(db);
        // A stopping server removes its lock file. Had this process opened that file just
        // before, it would now hold a lock on a file nobody else can find: then try again.
        for _ in 0..10 {
            let lock = Self::try_acquire(db, &path)?;
            let held = lock.file.metadata().ok().map(|m| (m.dev(), m.ino()));
            if held.is_some() && held == identity(&path) {
                return Ok(lock);
            }
        }
        Err(Error::unavailable(format!(
            "cannot lock {}: it keeps being replaced",
            path.display()
        )))
    }

    fn try_acquire(db: &Path, path: &Path) -> Result<DbLock> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(PRIVATE)
            .open(path)
            .map_err(|e| Error::unavailable(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "another process"
                } else {
                    holder
                };
                return Err(Error::Conflict {
                    code: "in_use",
                    message: format!(
                        "{} is already served by another chatserver ({holder}); stop it first",
                        db.display()
                    ),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::unavailable(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )))
            }
        }
        let mut lock = DbLock {
            file,
            path: path.to_path_buf(),
        };
        lock.note(&format!("pid {}", std::process::id()));
        Ok(lock)
    }

    /// Writes who holds the lock, for the next server that finds it taken.
    pub fn note(&mut self, holder: &str) {
        let _ = self.file.set_len(0);
        let _ = self.file.seek(SeekFrom::Start(0));
        let _ = writeln!(self.file, "{holder}");
    }
}

/// Makes a new, empty file readable by its owner only (SQLite then gives its `-wal` and `-shm`
/// the same permissions).
pub(crate) fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE)
        .open(path)
}

/// Takes group and other permissions off the database and its `-wal` and `-shm` (files made by
/// earlier versions were world-readable).
pub(crate) fn make_private(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_os_string();
        name.push(suffix);
        let path = PathBuf::from(name);
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(PRIVATE)) {
                Ok(()) => tracing::info!(file = %path.display(), "made readable by its owner only"),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot restrict permissions")
                }
            }
        }
    }
}

/// Which file a path names: its device and inode.
pub(crate) fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}
