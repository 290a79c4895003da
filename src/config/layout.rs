//! Where each part of a repository lives on disk.
//!
//! Everything sits under one root so that the pool, the temp area and the
//! published trees share a filesystem: renames are atomic and hard links work.

use std::path::{Path, PathBuf};

/// Paths of one repository.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout of the repository rooted at `root`.
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }

    /// The repository's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `bess.toml`: settings.
    pub fn settings_file(&self) -> PathBuf {
        self.root.join("bess.toml")
    }

    /// `dists.list`: the operators' list of distributions.
    pub fn dists_file(&self) -> PathBuf {
        self.root.join("dists.list")
    }

    /// `archs.list`: the operators' list of architectures.
    pub fn archs_file(&self) -> PathBuf {
        self.root.join("archs.list")
    }

    /// The SQLite catalog, the source of truth.
    pub fn catalog_file(&self) -> PathBuf {
        self.root.join("catalog").join("catalog.db")
    }

    /// Bumped after every change to users, so servers drop credentials
    /// they verified before it (see `crate::serial`).
    pub fn users_serial(&self) -> PathBuf {
        self.root.join("catalog").join("users.serial")
    }

    /// Environments' workspaces, `envs/<platform>/<env>/`.
    pub fn envs_dir(&self) -> PathBuf {
        self.root.join("envs")
    }

    /// Platforms' sources as fetched: a bare git clone or a directory
    /// snapshot per platform (fetched again when missing).
    pub fn platform_sources_dir(&self) -> PathBuf {
        self.cache_dir().join("platforms")
    }

    /// Lock files of environments, platforms and the host's files.
    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("catalog").join("locks")
    }

    /// The content-addressed object store.
    pub fn pool_dir(&self) -> PathBuf {
        self.root.join("pool")
    }

    /// Scratch space on the same filesystem as the pool, for atomic renames.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Derived data that speeds publishing up and can be deleted at any time.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// What each `[[publish.target]]` already holds (`<name>.db`); see
    /// `catalog::TargetLedger`.
    pub fn targets_dir(&self) -> PathBuf {
        self.root.join("targets")
    }

    /// Signing keys (secret material, owner-only).
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// The key of box download tokens (secret, owner-only).
    pub fn box_token_secret(&self) -> PathBuf {
        self.keys_dir().join("box-token.secret")
    }

    /// The published box files of one channel.
    pub fn boxes_dir(&self, channel: &str) -> PathBuf {
        self.channel_dir(channel).join("boxes")
    }

    /// Root of everything served to clients.
    pub fn public_dir(&self) -> PathBuf {
        self.root.join("public")
    }

    /// The published tree of one channel.
    pub fn channel_dir(&self, channel: &str) -> PathBuf {
        self.public_dir().join(channel)
    }
}
