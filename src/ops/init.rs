//! `bess init`: create a repository directory.

use super::OpsError;
use crate::catalog::Catalog;
use crate::config::{Layout, NameList, SETTINGS_TEMPLATE};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// What `bess init` needs.
#[derive(Debug, Clone)]
pub struct InitRequest {
    pub root: PathBuf,
    pub dists: NameList,
    pub archs: NameList,
}

/// Creates the configuration files and the data layout under `root`.
///
/// Refuses to touch a directory that already holds a repository.
pub fn init(request: &InitRequest) -> Result<Layout, OpsError> {
    let layout = Layout::new(&request.root);
    if layout.settings_file().exists() {
        return Err(OpsError::Usage(format!(
            "{} already holds a bess repository; nothing was changed",
            request.root.display()
        )));
    }
    let catalog_dir = layout
        .catalog_file()
        .parent()
        .expect("catalog is in a directory")
        .to_path_buf();
    for dir in [
        layout.root().to_path_buf(),
        layout.pool_dir(),
        layout.tmp_dir(),
        layout.public_dir(),
    ] {
        fs::create_dir_all(&dir).map_err(OpsError::io("create directory", &dir))?;
    }
    // Owner-only: the keys sign as the repository, the catalog holds the
    // users' password hashes (the catalog file itself is 0600 too).
    for private in [layout.keys_dir(), catalog_dir] {
        fs::create_dir_all(&private).map_err(OpsError::io("create directory", &private))?;
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700))
            .map_err(OpsError::io("restrict", &private))?;
    }
    write_list(&layout.dists_file(), DISTS_HEADER, &request.dists)?;
    write_list(&layout.archs_file(), ARCHS_HEADER, &request.archs)?;
    Catalog::open(&layout.catalog_file())?;
    // bess.toml last: its presence is what marks a complete repository.
    write_file(&layout.settings_file(), SETTINGS_TEMPLATE)?;
    Ok(layout)
}

const DISTS_HEADER: &str = "# Distributions this repository publishes, one codename per line.\n\
# A package ingested without --dist is published in every one of them.\n";

const ARCHS_HEADER: &str = "# Architectures this repository publishes, one per line.\n\
# `Architecture: all` packages are published in every one of them.\n";

fn write_list(path: &std::path::Path, header: &str, list: &NameList) -> Result<(), OpsError> {
    let mut text = header.to_string();
    for name in list.names() {
        text.push_str(name);
        text.push('\n');
    }
    write_file(path, &text)
}

fn write_file(path: &std::path::Path, text: &str) -> Result<(), OpsError> {
    crate::pool::write_atomically(path, text.as_bytes()).map_err(OpsError::io("write", path))
}
