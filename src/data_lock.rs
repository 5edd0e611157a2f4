//! One `avb dev` per data folder: it runs the folder's Temporal dev server and owns its SQLite
//! files, so a second one on the same folder is refused at once, naming the process that holds
//! it, instead of fighting over the database and the ports.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// Held while the process runs; the operating system releases it when the process ends, however
/// it ends.
pub struct DataLock {
    _file: File,
}

/// The lock file in `data_dir`.
pub fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join("avb-dev.lock")
}

fn open(data_dir: &Path) -> anyhow::Result<File> {
    let path = lock_path(data_dir);
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))
}

/// Whether a process holds the data folder now (looked at without taking it, so the holder's
/// pid in the file stays as it is).
pub fn is_held(data_dir: &Path) -> bool {
    open(data_dir).map_or(true, |file| file.try_lock().is_err())
}

impl DataLock {
    /// Takes the data folder for this process, or says who has it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<Self> {
        let path = lock_path(data_dir);
        let mut file = open(data_dir)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                file.rewind()?;
                writeln!(file, "{}", std::process::id())?;
                Ok(Self { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another avb dev".to_string()
                } else {
                    format!("another avb dev (pid {holder})")
                };
                anyhow::bail!(
                    "the data folder {} is in use by {who}: stop it, or give this one its own \
                     folder with AVB_DATA_DIR",
                    data_dir.display()
                )
            }
            Err(std::fs::TryLockError::Error(e)) => {
                anyhow::bail!("cannot lock {}: {e}", path.display())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_by_name_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tmp");
        let first = DataLock::acquire(dir.path()).expect("first");
        let err = DataLock::acquire(dir.path())
            .err()
            .expect("second refused")
            .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())) && err.contains("AVB_DATA_DIR"),
            "{err}"
        );
        assert!(is_held(dir.path()));
        drop(first);
        assert!(!is_held(dir.path()));
        DataLock::acquire(dir.path()).expect("free again");
    }
}
