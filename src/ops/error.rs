//! The errors a use case reports to the CLI or the HTTP API.

use crate::catalog::CatalogError;
use crate::config::ConfigError;
use crate::pool::PoolError;
use std::path::PathBuf;

/// Why an operation was refused or failed. Refusals (`Invalid`, `Conflict`,
/// `NotFound`, `Usage`) change nothing; the HTTP API maps them to 4xx.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Sign(#[from] crate::sign::SignError),
    #[error(transparent)]
    Provider(#[from] crate::env::provider::ProviderError),
    #[error(transparent)]
    Publish(crate::publish::PublishError),
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Usage(String),
    /// Publish targets left behind the local publication (which is complete).
    #[error("{0}")]
    Targets(String),
    #[error("cannot {action} {path}: {source}{}", crate::disk::full_hint(source))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl OpsError {
    /// An I/O failure on `path`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> OpsError {
        let path = path.into();
        move |source| OpsError::Io {
            action,
            path,
            source,
        }
    }

    /// Whether the request was refused (the client's fault) rather than failed.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            OpsError::Invalid(_)
                | OpsError::Conflict(_)
                | OpsError::NotFound(_)
                | OpsError::Usage(_)
        )
    }
}

impl From<crate::env::EnvError> for OpsError {
    /// Names, sources and templates are the user's to fix (4xx over
    /// HTTP); only I/O stays a failure.
    fn from(error: crate::env::EnvError) -> OpsError {
        use crate::env::EnvError;
        match error {
            EnvError::Name { .. } | EnvError::Usage(_) => OpsError::Usage(error.to_string()),
            EnvError::Invalid(lines) => OpsError::Invalid(lines),
            EnvError::Io {
                action,
                path,
                source,
            } => OpsError::Io {
                action,
                path,
                source,
            },
        }
    }
}
