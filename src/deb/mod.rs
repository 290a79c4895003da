//! Reading and validating binary packages (`.deb`, deb(5)) held in memory; nothing here touches the disk
//! but [`check_ar_headers`], which reads the member headers of a file the caller opened.
//!
//! [`inspect`] checks the `ar` layout, the signatures of the compressed
//! members, and the control paragraph, and returns what the repository
//! needs to know. The data member is never decompressed: checking its
//! signature is enough to catch mislabelled members and keeps ingesting
//! tens of thousands of packages fast.

mod ar;
mod changes;
mod control;
mod control_tar;
mod escape;
mod extent;
mod layout;
mod names;
#[cfg(test)]
mod test_support;
mod version;
// liblzma through lzma-sys: xz2 cannot re-initialise a decoder in place,
// and reusing its dictionary was the largest cost of ingesting small packages.
#[allow(unsafe_code)]
mod xz;

pub use ar::{ArError, ProbeError, check_headers as check_ar_headers};
pub use changes::{Changes, ChangesError, ListedFile};
pub use control::{Control, ControlError};
pub use control_tar::ControlTarError;
pub use extent::missing_bytes;
pub use layout::LayoutError;
pub use names::{NameError, check_architecture, check_package_name};
pub use version::{Version, VersionError};

/// Fields every binary package must have, in the order they are checked.
const REQUIRED_FIELDS: [&str; 5] = [
    "Package",
    "Version",
    "Architecture",
    "Maintainer",
    "Description",
];

/// Fields the repository computes from the file itself; a package that
/// carries them must not be able to override the real values.
const COMPUTED_FIELDS: [&str; 6] = ["Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512"];

/// Why a `.deb` was refused. Messages name the member or field and the value
/// at fault; the caller adds the file path.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error(transparent)]
    Layout {
        #[from]
        source: LayoutError,
    },
    #[error(transparent)]
    ControlTar {
        #[from]
        source: ControlTarError,
    },
    #[error(
        "the control file is not valid UTF-8 (first bad byte at offset {offset}); re-encode it as UTF-8"
    )]
    NotUtf8 { offset: usize },
    #[error("control file, {reason}")]
    Control { reason: ControlError },
    #[error(
        "the control file lacks the required field `{field}` (or it is empty); add it and rebuild the package"
    )]
    MissingField { field: &'static str },
    #[error("field `Package`: {reason}")]
    Package { reason: NameError },
    #[error("field `Version`: {reason}")]
    Version { reason: VersionError },
    #[error("field `Architecture`: {reason}")]
    Architecture { reason: NameError },
    #[error(
        "field `Source`: `{value}` is neither `name` nor `name (version)`",
        value = escape::Escaped(.value)
    )]
    SourceSyntax { value: String },
    #[error("field `Source`: {reason}")]
    SourceName { reason: NameError },
    #[error("field `Source`: {reason}")]
    SourceVersion { reason: VersionError },
}

/// What bess needs to know about one .deb after validating it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebInfo {
    pub package: String,
    pub version: Version,
    pub architecture: String,
    /// Source package name: the `Source:` field stripped of any ` (version)`, else the package name.
    pub source: String,
    /// The control paragraph, field order kept, WITHOUT the fields the repository computes
    /// (Filename, Size, MD5sum, SHA1, SHA256, SHA512 — case-insensitive; dropped silently).
    pub control: Control,
}

/// Checks a file's first bytes (at least 8 of them) for the `ar` magic
/// every package starts with, so a stream of anything else is refused
/// before the rest of it is read.
pub fn check_magic(start: &[u8]) -> Result<(), ArError> {
    if start.starts_with(ar::MAGIC) {
        Ok(())
    } else {
        Err(ArError::NotAr {})
    }
}

/// Validates a whole `.deb` held in memory and extracts its metadata.
pub fn inspect(data: &[u8]) -> Result<DebInfo, DebError> {
    let layout = layout::read_layout(data)?;
    let bytes = control_tar::read_control(&layout.control)?;
    let text = String::from_utf8(bytes).map_err(|err| DebError::NotUtf8 {
        offset: err.utf8_error().valid_up_to(),
    })?;
    let control = Control::parse(&text).map_err(|reason| DebError::Control { reason })?;
    DebInfo::from_control(control)
}

impl DebInfo {
    /// Checks the fields of a package's control paragraph and drops the
    /// computed ones.
    pub fn from_control(mut control: Control) -> Result<DebInfo, DebError> {
        for field in REQUIRED_FIELDS {
            if control.get(field).is_none_or(str::is_empty) {
                return Err(DebError::MissingField { field });
            }
        }
        let field = |name| control.get(name).unwrap_or_default();
        let package = field("Package");
        check_package_name(package).map_err(|reason| DebError::Package { reason })?;
        let version =
            Version::parse(field("Version")).map_err(|reason| DebError::Version { reason })?;
        let architecture = field("Architecture");
        check_architecture(architecture).map_err(|reason| DebError::Architecture { reason })?;
        let source = source_name(control.get("Source"), package)?;
        let (package, architecture) = (package.to_owned(), architecture.to_owned());
        for computed in COMPUTED_FIELDS {
            control.remove(computed);
        }
        Ok(DebInfo {
            package,
            version,
            architecture,
            source,
            control,
        })
    }
}

/// The source package name from a `Source:` value (`name` or
/// `name (version)`, both parts validated), defaulting to the package name.
fn source_name(value: Option<&str>, package: &str) -> Result<String, DebError> {
    let Some(value) = value else {
        return Ok(package.to_owned());
    };
    let (name, version) = split_source(value).ok_or_else(|| DebError::SourceSyntax {
        value: value.to_owned(),
    })?;
    check_package_name(name).map_err(|reason| DebError::SourceName { reason })?;
    if let Some(version) = version {
        Version::parse(version).map_err(|reason| DebError::SourceVersion { reason })?;
    }
    Ok(name.to_owned())
}

/// Splits `name (version)` into its parts; `None` if the parentheses are
/// malformed. Only spaces and tabs are trimmed, so a multi-line value
/// still fails validation.
fn split_source(value: &str) -> Option<(&str, Option<&str>)> {
    let Some((name, rest)) = value.split_once('(') else {
        return Some((value, None));
    };
    let version = rest.strip_suffix(')')?;
    let blank = [' ', '\t'];
    Some((
        name.trim_end_matches(blank),
        Some(version.trim_matches(blank)),
    ))
}

#[cfg(test)]
mod tests;
