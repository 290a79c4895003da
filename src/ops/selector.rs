//! `PKG` or `PKG=VERSION` arguments of promote and remove.

use super::OpsError;
use crate::deb::Version;

/// Names a package, and optionally one exact version of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub name: String,
    pub version: Option<Version>,
}

impl Selector {
    /// Parses `pkg` or `pkg=version`.
    pub fn parse(text: &str) -> Result<Selector, OpsError> {
        let (name, version) = match text.split_once('=') {
            Some((name, version)) => (name, Some(version)),
            None => (text, None),
        };
        crate::deb::check_package_name(name)
            .map_err(|e| OpsError::Usage(format!("`{text}`: package name `{name}`: {e}")))?;
        let version = version
            .map(Version::parse)
            .transpose()
            .map_err(|e| OpsError::Usage(format!("`{text}`: {e}")))?;
        Ok(Selector {
            name: name.to_string(),
            version,
        })
    }

    /// Whether `version` (as stored) is the one selected.
    pub fn matches_version(&self, version: &str) -> bool {
        match &self.version {
            None => true,
            Some(wanted) => Version::parse(version).is_ok_and(|v| &v == wanted),
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}={v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}
