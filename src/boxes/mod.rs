//! Vagrant boxes on the same engine: box identities (name, version,
//! provider, architecture), box-file validation, the Vagrant catalog JSON
//! and the signed tokens that let vagrant download a box file.
//!
//! Like `deb/`, this layer knows nothing of SQLite or HTTP: `ops/` stores
//! boxes in the pool and the catalog, `serve/` answers vagrant.

mod archive;
mod identity;
mod metadata;
mod token;
mod version;

pub use archive::{BoxContents, BoxFormat, inspect};
pub use identity::{BoxIdentity, check_name, check_version};
pub use metadata::{CatalogProvider, CatalogVersion, Offer, VagrantCatalog};
pub use token::{Grant, TokenError, TokenSecret, expiry};
pub use version::{compare_box_versions, version_key};

use std::path::PathBuf;

/// Why a box, a box name or a token secret was refused.
#[derive(Debug, thiserror::Error)]
pub enum BoxError {
    #[error("box {part} `{value}` is not valid: {rule}")]
    Identity {
        part: &'static str,
        value: String,
        rule: &'static str,
    },
    #[error("not a box file: {0}")]
    NotABox(String),
    #[error(
        "metadata.json of the box names provider `{found}`, but the box is being added for provider `{expected}`; pass --provider {found} or fix the box"
    )]
    ProviderMismatch { found: String, expected: String },
    #[error("box token secret {path}: {reason}")]
    Secret { path: PathBuf, reason: String },
    #[error("cannot {action} {path}: {source}{}", crate::disk::full_hint(source))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
