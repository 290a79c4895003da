//! Change serials: counters in small files that a writer bumps after each
//! change, so a running `bess serve` learns of it without asking the
//! filesystem or the catalog on every request. `public/.serial` counts
//! publishes (published paths may name other files now) and
//! `catalog/users.serial` counts changes to users (credentials verified
//! before it must be verified again).
//!
//! The file holds one little-endian u64 and is only ever overwritten in
//! place (never truncated or replaced), because the server reads it
//! through a shared mapping: a change in another process is visible to
//! the server's next request, at the cost of a memory read.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The publish serial's file under the public directory (not served: it is no channel).
pub fn publish_serial(public_dir: &Path) -> PathBuf {
    public_dir.join(".serial")
}

/// Opens the serial file, creating it as zero, and makes sure it holds
/// all 8 bytes a mapping reads.
fn open(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    if file.metadata()?.len() < 8 {
        file.write_all_at(&0u64.to_le_bytes(), 0)?;
    }
    Ok(file)
}

/// Tells servers that what the serial at `path` counts changed. Callers
/// hold the lock of what they changed (the publish lock, the catalog's
/// write transaction), so bumps never race one another.
pub fn bump(path: &Path) -> io::Result<()> {
    let file = open(path)?;
    let mut bytes = [0u8; 8];
    file.read_exact_at(&mut bytes, 0)?;
    let next = u64::from_le_bytes(bytes).wrapping_add(1);
    // One 8-byte write at offset 0: the page a server maps changes in
    // place. A reader that catches it half-written sees some other value,
    // which means "changed" just the same.
    file.write_all_at(&next.to_le_bytes(), 0)
}

/// A read-only shared mapping of the serial, read on every request.
pub struct SerialWatch {
    path: PathBuf,
    mapped: Mapped,
}

struct Mapped {
    map: memmap2::Mmap,
    /// The inode mapped: a serial file replaced (a restored tree) is
    /// mapped again when [`SerialWatch::remap_if_replaced`] notices.
    identity: (u64, u64),
}

impl SerialWatch {
    /// Maps the serial at `path`, creating it as zero when nothing bumped it yet.
    pub fn open(path: &Path) -> io::Result<SerialWatch> {
        let mapped = map(path)?;
        Ok(SerialWatch {
            path: path.to_path_buf(),
            mapped,
        })
    }

    /// The current serial: a memory read, no system call.
    pub fn current(&self) -> u64 {
        let counter = self.mapped.map.as_ptr().cast::<AtomicU64>();
        // SAFETY: the mapping is 8 bytes long, page-aligned (so 8-aligned)
        // and lives as long as `self`; another process changes it only by
        // an 8-byte write, which an atomic load reads whole or as another
        // value, both meaning "changed".
        let counter = unsafe { &*counter };
        u64::from_le(counter.load(Ordering::Acquire))
    }

    /// Maps the serial again when its file was replaced by another one.
    pub fn remap_if_replaced(&mut self) -> io::Result<()> {
        let same = std::fs::metadata(&self.path)
            .is_ok_and(|now| (now.dev(), now.ino()) == self.mapped.identity);
        if !same {
            self.mapped = map(&self.path)?;
        }
        Ok(())
    }
}

fn map(path: &Path) -> io::Result<Mapped> {
    let file = open(path)?;
    let meta = file.metadata()?;
    // SAFETY: the file is only ever overwritten in place by `bump`, never
    // truncated, so the 8 mapped bytes stay backed while mapped; they are
    // read only through the atomic in `current`.
    let map = unsafe { memmap2::MmapOptions::new().len(8).map(&file)? };
    Ok(Mapped {
        map,
        identity: (meta.dev(), meta.ino()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_in_place_is_seen_through_the_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = publish_serial(dir.path());
        let watch = SerialWatch::open(&path).unwrap();
        assert_eq!(watch.current(), 0);
        bump(&path).unwrap();
        assert_eq!(watch.current(), 1);
        bump(&path).unwrap();
        assert_eq!(watch.current(), 2);
    }

    #[test]
    fn a_replaced_serial_file_is_mapped_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = publish_serial(dir.path());
        let mut watch = SerialWatch::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, 7u64.to_le_bytes()).unwrap();
        assert_eq!(watch.current(), 0, "still the old inode");
        watch.remap_if_replaced().unwrap();
        assert_eq!(watch.current(), 7);
        bump(&path).unwrap();
        assert_eq!(watch.current(), 8);
    }

    #[test]
    fn a_short_serial_file_is_filled_before_it_is_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let path = publish_serial(dir.path());
        std::fs::write(&path, b"").unwrap();
        let watch = SerialWatch::open(&path).unwrap();
        assert_eq!(watch.current(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
    }
}
