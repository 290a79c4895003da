//! Who may read the catalog's files: their owner only, because the users
//! table holds the password hash of every user of `bess serve`.
//!
//! bess creates a new catalog file itself, mode 0600, before SQLite opens
//! it; SQLite gives the `-wal`, `-shm` and `-journal` files it creates the
//! mode of the database file. A catalog that an older bess left readable
//! by others is tightened, with its `-wal` and `-shm`, the next time any
//! bess process opens it (every process opens the catalog read-write and
//! may migrate it). Owner-only, not group-readable: the Debian package runs
//! the service and the commands as the `bess` user, and a member of its
//! group could not use a WAL catalog read-only anyway (readers write the
//! `-shm` file), so group read would only expose the hashes.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of the catalog and its companion files.
pub const MODE: u32 = 0o600;

/// Creates an empty `path` with [`MODE`] unless it exists; SQLite makes a
/// new database of an empty file.
pub fn create_private(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The database file and the `-wal` and `-shm` files SQLite keeps beside it.
pub fn with_companions(path: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_path_buf(), with("-wal"), with("-shm")]
}

/// Takes group and other permissions away from the catalog and its
/// companions, where any are set. Returns the path at fault on failure.
///
/// A process that does not own a file may not change its mode (`EPERM`);
/// it leaves the file to its owner's next command rather than fail.
pub fn restrict(path: &Path) -> Result<(), (PathBuf, io::Error)> {
    for file in with_companions(path) {
        let mode = match fs::metadata(&file) {
            Ok(meta) => meta.permissions().mode() & 0o7777,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err((file, e)),
        };
        if mode & 0o077 == 0 {
            continue;
        }
        match fs::set_permissions(&file, fs::Permissions::from_mode(mode & 0o700)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
            Err(e) => return Err((file, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn new_files_are_private_and_old_ones_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("catalog.db");
        create_private(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        let [_, wal, shm] = with_companions(&db);
        for (file, old) in [(&db, 0o644), (&wal, 0o664), (&shm, 0o604)] {
            fs::write(file, b"").unwrap();
            fs::set_permissions(file, fs::Permissions::from_mode(old)).unwrap();
        }
        restrict(&db).unwrap();
        for file in [&db, &wal, &shm] {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
        fs::write(&db, b"kept").unwrap();
        create_private(&db).unwrap();
        assert_eq!(
            fs::read(&db).unwrap(),
            b"kept",
            "an existing file is left as it is"
        );
    }
}
