//! Generations of a dist's metadata, switched atomically.
//!
//! `public/<channel>/dists/<dist>` is a symlink to one complete generation
//! directory under `public/<channel>/.dists/<dist>/<n>/`. A publish builds
//! generation n+1 beside the current one, makes it durable, then replaces
//! the symlink with one `rename(2)`: a client (or a crash) sees the old
//! generation or the new one, never a mix of the two. Index files live once
//! in a by-hash store shared by all generations, and every generation links
//! its `by-hash` directories to it, so a client that read an older InRelease
//! still finds the files it lists while that generation is kept.

use super::release::{FileSums, parse_files};
use crate::pool::{fsync_dir, sync_filesystem};
use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// The published metadata of one dist in one channel.
#[derive(Debug, Clone)]
pub struct DistTree {
    channel_dir: PathBuf,
    dist: String,
}

impl DistTree {
    /// The dist `dist` of the channel published at `channel_dir`.
    pub fn new(channel_dir: PathBuf, dist: &str) -> DistTree {
        DistTree {
            channel_dir,
            dist: dist.to_string(),
        }
    }

    /// `dists/<dist>`: what apt reads.
    pub fn link_path(&self) -> PathBuf {
        self.channel_dir.join("dists").join(&self.dist)
    }

    fn store(&self) -> PathBuf {
        self.channel_dir.join(".dists").join(&self.dist)
    }

    fn generation_dir(&self, n: u64) -> PathBuf {
        self.store().join(n.to_string())
    }

    fn by_hash_dir(&self, index_dir: &str) -> PathBuf {
        self.store().join("by-hash").join(index_dir)
    }

    /// The generation `dists/<dist>` points to, if published.
    pub fn current(&self) -> io::Result<Option<u64>> {
        let link = self.link_path();
        match fs::read_link(&link) {
            Ok(target) => Ok(target
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(io::Error::other(format!(
                "{} is not a symlink made by bess; move it away and publish again",
                link.display()
            ))),
            Err(e) => Err(e),
        }
    }

    /// The `Release` text of the current generation, if published.
    pub fn current_release(&self) -> io::Result<Option<String>> {
        match fs::read_to_string(self.link_path().join("Release")) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Generation numbers present on disk, oldest first.
    fn generations(&self) -> io::Result<Vec<u64>> {
        let mut found = Vec::new();
        match fs::read_dir(self.store()) {
            Ok(entries) => {
                for entry in entries {
                    if let Some(n) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
                        found.push(n);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        found.sort_unstable();
        Ok(found)
    }

    /// Starts generation `current + 1`, clearing any leftover of a crashed publish.
    pub fn begin(&self) -> io::Result<Generation> {
        let next = self.current()?.map_or(1, |n| n + 1);
        let dir = self.generation_dir(next);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        Ok(Generation {
            tree: self.clone(),
            number: next,
            dir,
        })
    }

    /// Deletes generations beyond the newest `keep` and the by-hash files
    /// that none of the kept ones lists.
    pub fn prune(&self, keep: usize) -> io::Result<()> {
        let current = self.current()?;
        let all = self.generations()?;
        let mut kept = Vec::new();
        for n in all.iter().rev() {
            let stale = current.is_some_and(|c| *n > c);
            if stale || kept.len() >= keep {
                fs::remove_dir_all(self.generation_dir(*n))?;
            } else {
                kept.push(*n);
            }
        }
        let mut wanted = HashSet::new();
        for n in kept {
            let text =
                fs::read_to_string(self.generation_dir(n).join("Release")).unwrap_or_default();
            for file in parse_files(&text).unwrap_or_default() {
                for (kind, hash) in file.by_hash() {
                    wanted.insert(by_hash_rel(&file.path, kind, hash));
                }
            }
        }
        remove_unwanted(&self.store().join("by-hash"), &wanted)
    }
}

/// `<index dir>/<TYPE>/<hex>` of a file listed as `<index dir>/<name>`.
fn by_hash_rel(path: &str, kind: &str, hash: &str) -> PathBuf {
    let dir = Path::new(path).parent().unwrap_or(Path::new(""));
    dir.join(kind).join(hash)
}

fn remove_unwanted(root: &Path, wanted: &HashSet<PathBuf>) -> io::Result<()> {
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e)
                if e.io_error()
                    .is_some_and(|io| io.kind() == io::ErrorKind::NotFound) =>
            {
                continue;
            }
            Err(e) => return Err(io::Error::other(e)),
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(root).expect("walked below root");
        if !wanted.contains(rel) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// A generation being written; invisible until [`Generation::switch`].
#[derive(Debug)]
pub struct Generation {
    tree: DistTree,
    number: u64,
    dir: PathBuf,
}

impl Generation {
    /// The generation number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Directory for temp files of new index files of `index_dir`: the
    /// by-hash store itself, so adopting one is a rename.
    pub fn temp_dir(&self, index_dir: &str) -> PathBuf {
        self.tree.by_hash_dir(index_dir)
    }

    /// Whether the by-hash store already holds a file with these sums.
    pub fn has_index_file(&self, sums: &FileSums) -> bool {
        self.primary_path(sums).is_file()
    }

    fn primary_path(&self, sums: &FileSums) -> PathBuf {
        let index_dir = Path::new(&sums.path)
            .parent()
            .and_then(|p| p.to_str())
            .unwrap_or("");
        self.tree
            .by_hash_dir(index_dir)
            .join("SHA256")
            .join(&sums.sha256)
    }

    /// Adds an index file (`<component>/binary-<arch>/<name>`) whose bytes
    /// are in `temp` (or already in the store when `temp` is `None`): stored
    /// once in the by-hash store under every hash kind, hard-linked into the
    /// generation.
    pub fn add_index_file(&self, sums: &FileSums, temp: Option<&Path>) -> io::Result<()> {
        let primary = self.primary_path(sums);
        let store = primary
            .parent()
            .and_then(Path::parent)
            .expect("store/SHA256/hash")
            .to_path_buf();
        if let Some(temp) = temp {
            if primary.is_file() {
                fs::remove_file(temp)?;
            } else {
                fs::create_dir_all(primary.parent().expect("has a parent"))?;
                fs::rename(temp, &primary)?;
            }
        }
        for (kind, hash) in sums.by_hash() {
            link_if_missing(&primary, &store.join(kind).join(hash))?;
        }
        let dest = self.dir.join(&sums.path);
        link_if_missing(&primary, &dest)?;
        let by_hash = dest.with_file_name("by-hash");
        if fs::symlink_metadata(&by_hash).is_err() {
            let index_dir = Path::new(&sums.path).parent().unwrap_or(Path::new(""));
            let depth = index_dir.components().count() + 1;
            let target = PathBuf::from("../".repeat(depth))
                .join("by-hash")
                .join(index_dir);
            symlink(target, by_hash)?;
        }
        Ok(())
    }

    /// Adds a small index file from memory.
    pub fn add_index_bytes(&self, sums: &FileSums, data: &[u8]) -> io::Result<()> {
        if self.has_index_file(sums) {
            return self.add_index_file(sums, None);
        }
        let dir = self.temp_dir(
            Path::new(&sums.path)
                .parent()
                .and_then(|p| p.to_str())
                .unwrap_or(""),
        );
        fs::create_dir_all(&dir)?;
        let temp = dir.join(format!(".small-{}", std::process::id()));
        fs::write(&temp, data)?;
        self.add_index_file(sums, Some(&temp))
    }

    /// Writes a file at the top of the generation (`Release`, `InRelease`, …).
    pub fn add_top_file(&self, name: &str, data: &[u8]) -> io::Result<()> {
        write_new(&self.dir.join(name), data)
    }

    /// Drops the generation without publishing it.
    pub fn abandon(self) -> io::Result<()> {
        fs::remove_dir_all(&self.dir)
    }

    /// Makes the generation durable, then points `dists/<dist>` at it.
    pub fn switch(self) -> io::Result<u64> {
        sync_filesystem(&self.dir)?;
        let link = self.tree.link_path();
        let dists = link.parent().expect("dists/<dist> has a parent");
        fs::create_dir_all(dists)?;
        let temp = dists.join(format!(".{}.new", self.tree.dist));
        let _ = fs::remove_file(&temp);
        symlink(
            Path::new("../.dists")
                .join(&self.tree.dist)
                .join(self.number.to_string()),
            &temp,
        )?;
        fs::rename(&temp, &link)?;
        fsync_dir(dists)?;
        Ok(self.number)
    }
}

/// Writes a file that nobody reads yet (durability comes from the syncfs in `switch`).
fn write_new(path: &Path, data: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&temp, data)?;
    fs::rename(&temp, path)
}

fn link_if_missing(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::hard_link(from, to) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}
