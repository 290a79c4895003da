//! Environment tooling: platforms, their environments and sites.
//!
//! This module holds the model and everything generated from it — names
//! that become DNS labels, `platform.toml`, IP ranges, the variables of an
//! environment, `-dist` templates, the workspace, the Vagrantfile, and the
//! host's bind and reverse-proxy files. It holds no SQL (the catalog keeps
//! the rows) and decides nothing about when things happen (`ops` does).

pub mod files;
pub mod host;
pub mod image;
pub mod names;
pub mod network;
pub mod platform;
pub mod provider;
pub mod source;
pub mod template;
pub mod vagrantfile;
pub mod variables;
pub mod vm_image;
pub mod workspace;

use std::path::PathBuf;

/// What went wrong with a platform, an environment or their files.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("`{value}` is not a valid {what}: {rule}")]
    Name {
        what: String,
        value: String,
        rule: String,
    },
    /// A platform source, template or generated file broke rules, one line each.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    #[error("{0}")]
    Usage(String),
    #[error("cannot {action} {path}: {source}{}", crate::disk::full_hint(source))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl EnvError {
    /// An I/O failure on `path`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> EnvError {
        let path = path.into();
        move |source| EnvError::Io {
            action,
            path,
            source,
        }
    }
}
