//! What names a box: `org/name`, a Vagrant version, a provider and an
//! architecture, each checked strictly because together they become a
//! path under `public/<channel>/boxes/` and a URL.

use super::BoxError;
use super::version::version_key;

/// A box's identity, validated: the same identity always means the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BoxIdentity {
    pub name: String,
    pub version: String,
    pub provider: String,
    pub arch: String,
}

impl BoxIdentity {
    /// Checks every part; the error names the part at fault.
    pub fn new(
        name: &str,
        version: &str,
        provider: &str,
        arch: &str,
    ) -> Result<BoxIdentity, BoxError> {
        check_name(name)?;
        check_version(version)?;
        check_word("provider", provider)?;
        check_word("architecture", arch)?;
        Ok(BoxIdentity {
            name: name.to_string(),
            version: version.to_string(),
            provider: provider.to_string(),
            arch: arch.to_string(),
        })
    }

    /// The version as identity: `1.2` and `1.2.0` are one version to Vagrant.
    pub fn version_key(&self) -> String {
        version_key(&self.version)
    }

    /// Where the box is published under `public/<channel>/boxes/`, and its
    /// URL path: `<name>/<version>/<provider>-<arch>.box`. Providers and
    /// architectures have no `-`, so the file name splits back unambiguously.
    pub fn file_path(&self) -> String {
        format!(
            "{}/{}/{}-{}.box",
            self.name, self.version, self.provider, self.arch
        )
    }

    /// The identity a published file path names (the inverse of
    /// [`BoxIdentity::file_path`]), if the segments are one.
    pub fn from_file_segments(segments: &[String]) -> Option<BoxIdentity> {
        let (file, rest) = segments.split_last()?;
        let (version, name) = rest.split_last()?;
        if name.is_empty() || name.len() > 2 {
            return None;
        }
        let (provider, arch) = file.strip_suffix(".box")?.split_once('-')?;
        BoxIdentity::new(&name.join("/"), version, provider, arch).ok()
    }

    /// `name version (provider, arch)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "box {} {} ({}, {})",
            self.name, self.version, self.provider, self.arch
        )
    }
}

/// `name` or `org/name`; each part letters, digits, `.`, `_`, `-`, starting
/// with a letter or digit (so never `.` or `..`), at most 64 characters.
pub fn check_name(name: &str) -> Result<(), BoxError> {
    let parts: Vec<&str> = name.split('/').collect();
    let plain = |part: &&str| {
        !part.is_empty()
            && part.len() <= 64
            && part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    if parts.len() <= 2 && parts.iter().all(plain) {
        return Ok(());
    }
    Err(BoxError::Identity {
        part: "name",
        value: name.to_string(),
        rule: "use `name` or `org/name`: letters, digits, `.`, `_`, `-`, each part starting with a letter or digit (at most 64 characters)",
    })
}

/// What `Gem::Version` parses, narrowed to URL-safe text: digits, then
/// `.`-separated letters or digits, optionally a `-` prerelease
/// (`1.2.0`, `2.0.rc1`, `1.0-beta.2`).
pub fn check_version(version: &str) -> Result<(), BoxError> {
    let (release, prerelease) = match version.split_once('-') {
        Some((release, pre)) => (release, Some(pre)),
        None => (version, None),
    };
    let alnum_parts = |text: &str| {
        text.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
    };
    let valid = version.len() <= 64
        && release.starts_with(|c: char| c.is_ascii_digit())
        && release
            .split('.')
            .next()
            .is_some_and(|first| first.chars().all(|c| c.is_ascii_digit()))
        && alnum_parts(release)
        && prerelease.is_none_or(alnum_parts);
    if valid {
        return Ok(());
    }
    Err(BoxError::Identity {
        part: "version",
        value: version.to_string(),
        rule: "use a version Vagrant parses, like 1.2.0, 2.0.rc1 or 1.0-beta.2 (digits first, `.`-separated letters or digits, at most 64 characters)",
    })
}

/// Providers (`libvirt`, `virtualbox`, `vmware_desktop`) and architectures
/// (`amd64`, `arm64`): lowercase letters, digits and `_`.
fn check_word(part: &'static str, value: &str) -> Result<(), BoxError> {
    let valid = !value.is_empty()
        && value.len() <= 32
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        return Ok(());
    }
    Err(BoxError::Identity {
        part,
        value: value.to_string(),
        rule: "use lowercase letters, digits and `_` (at most 32 characters), e.g. libvirt, virtualbox, amd64, arm64",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_identities_round_trip_through_their_path() {
        let id = BoxIdentity::new("acme/base", "1.2.0", "libvirt", "amd64").unwrap();
        assert_eq!(id.file_path(), "acme/base/1.2.0/libvirt-amd64.box");
        let segments: Vec<String> = id.file_path().split('/').map(String::from).collect();
        assert_eq!(BoxIdentity::from_file_segments(&segments), Some(id));
        let plain = BoxIdentity::new("base", "1.0-rc.1", "vmware_desktop", "arm64").unwrap();
        let segments: Vec<String> = plain.file_path().split('/').map(String::from).collect();
        assert_eq!(BoxIdentity::from_file_segments(&segments), Some(plain));
    }

    #[test]
    fn hostile_parts_are_refused() {
        for name in [
            "", "..", ".hidden", "a/b/c", "a//b", "a/..", "a b", "a\\b", "/a", "a/",
        ] {
            assert!(check_name(name).is_err(), "name {name:?}");
        }
        for version in [
            "", "v1", "1..2", "1.", ".1", "1.2/3", "1.0-", "1.0-a-b", "1 2", "a.1",
        ] {
            assert!(check_version(version).is_err(), "version {version:?}");
        }
        for word in ["", "Libvirt", "lib-virt", "a/b", "..", "_x"] {
            assert!(
                BoxIdentity::new("a", "1", word, "amd64").is_err(),
                "{word:?}"
            );
            assert!(
                BoxIdentity::new("a", "1", "libvirt", word).is_err(),
                "{word:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn accepted_paths_stay_plain(name in "[a-z./_-]{1,12}", version in "[0-9a-z.-]{1,8}") {
            if let Ok(id) = BoxIdentity::new(&name, &version, "libvirt", "amd64") {
                for segment in id.file_path().split('/') {
                    prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
                    prop_assert!(!segment.starts_with('.'));
                }
            }
        }
    }
}
