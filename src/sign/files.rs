//! Private-file plumbing for secret keys: permission checks, crash-safe
//! no-clobber writes and moves, directory fsync.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::SignError;

/// Permission bits for group and others; none may be set on secrets.
const GROUP_OTHER: u32 = 0o077;

/// Creates `dir` (mode 0700) if missing, and refuses an existing one that
/// others can enter: a private file in a shared directory can be replaced.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), SignError> {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(|e| SignError::io("create directory", parent, e))?;
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            // The parent must learn about the new entry durably too.
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => check_private_dir(dir),
        Err(e) => Err(SignError::io("create directory", dir, e)),
    }
}

/// Fails unless `dir` is a directory without group/other permissions.
pub(crate) fn check_private_dir(dir: &Path) -> Result<(), SignError> {
    let meta = fs::metadata(dir).map_err(|e| SignError::io("inspect", dir, e))?;
    let mode = meta.mode() & 0o7777;
    if mode & GROUP_OTHER != 0 {
        return Err(SignError::InsecureKeyDir {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Reads a secret file, refusing it if group or others may access it.
/// The mode is taken from the opened descriptor so that the checked file
/// is the one that is read.
pub(crate) fn read_private(path: &Path) -> Result<Vec<u8>, SignError> {
    let mut file = File::open(path).map_err(|e| SignError::io("open", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| SignError::io("inspect", path, e))?;
    let mode = meta.mode() & 0o7777;
    if mode & GROUP_OTHER != 0 {
        return Err(SignError::InsecureKeyFile {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| SignError::io("read", path, e))?;
    Ok(bytes)
}

/// Writes `bytes` as `dir/name` (mode 0600): temp file, fsync, no-clobber
/// rename, fsync of the directory.  An existing `dir/name` is never touched.
pub(crate) fn write_new_private(
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<PathBuf, SignError> {
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = write_synced(&tmp, bytes).and_then(|()| link_no_clobber(&tmp, &target));
    // The temp name is only scaffolding; drop it whether or not we succeeded.
    let _ = fs::remove_file(&tmp);
    written?;
    sync_dir(dir)?;
    Ok(target)
}

/// Creates `path` exclusively with mode 0600 and flushes it to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SignError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| SignError::io("create", path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| SignError::io("write", path, e))
}

/// Gives `from` the additional name `to`, failing if `to` exists.
///
/// `rename(2)` silently replaces its target; `link(2)` is the portable
/// atomic "rename unless it exists" once the old name is removed after.
fn link_no_clobber(from: &Path, to: &Path) -> Result<(), SignError> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(SignError::KeyExists {
            path: to.to_path_buf(),
        }),
        Err(e) => Err(SignError::io("link", to, e)),
    }
}

/// Moves `from` to `to` without ever replacing an existing `to`, then makes
/// both directory entries durable.
///
/// A crash between link and unlink leaves the file under both names; a
/// retry sees an identical `to` and just finishes by removing `from`.
pub(crate) fn move_no_clobber(from: &Path, to: &Path) -> Result<(), SignError> {
    match link_no_clobber(from, to) {
        Ok(()) => {}
        Err(SignError::KeyExists { .. }) if same_contents(from, to)? => {}
        Err(e) => return Err(e),
    }
    fs::remove_file(from).map_err(|e| SignError::io("remove", from, e))?;
    for dir in [to.parent(), from.parent()].into_iter().flatten() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Whether two files hold the same bytes (both are read as secrets).
fn same_contents(a: &Path, b: &Path) -> Result<bool, SignError> {
    Ok(read_private(a)? == read_private(b)?)
}

/// Flushes a directory so that renames and new entries survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), SignError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SignError::io("sync directory", dir, e))
}

/// The entries of `dir` whose names end in `suffix` and do not start with a
/// dot (temp files); a missing directory has none.
pub(crate) fn list_names(dir: &Path, suffix: &str) -> Result<Vec<String>, SignError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SignError::io("list", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SignError::io("list", dir, e))?;
        if let Some(name) = entry.file_name().to_str()
            && name.ends_with(suffix)
            && !name.starts_with('.')
        {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}
