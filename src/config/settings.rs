//! `bess.toml`: channels, components, release metadata and ingest rules.

use super::ConfigError;
use serde::Deserialize;
use std::path::Path;

/// The settings of one repository, as written in `bess.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Release pipeline, in order; uploads enter the first channel.
    #[serde(default = "default_channels")]
    pub channels: Vec<String>,
    /// Archive areas packages may be published in.
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    /// Component used when an upload names none.
    #[serde(default = "default_component")]
    pub default_component: String,
    /// Version patterns that restrict a package to some dists when `--dist` is absent.
    #[serde(default, rename = "dist-rule")]
    pub dist_rules: Vec<DistRule>,
    /// What `Release` files say, and how long they stay valid.
    #[serde(default)]
    pub release: ReleaseSettings,
}

/// The `[release]` table: fields of the published `Release` files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ReleaseSettings {
    /// `Origin:`; apt refuses an update when it changes, so set it once.
    pub origin: String,
    /// `Label:`; same rule as `origin`.
    pub label: String,
    /// `Suite:`; empty means the dist's codename.
    pub suite: String,
    /// Days until `Valid-Until`; 0 leaves the field out.
    pub valid_days: u32,
    /// Publications whose by-hash files are kept, so clients midway
    /// through an update never see a hash mismatch.
    pub by_hash_generations: u32,
    /// Store the uncompressed `Packages` beside `.gz` and `.xz`. Release
    /// always lists it; like Debian's mirrors, bess does not store it by
    /// default, since apt fetches a compressed index.
    pub uncompressed_index: bool,
}

impl Default for ReleaseSettings {
    fn default() -> ReleaseSettings {
        ReleaseSettings {
            origin: "bess".into(),
            label: "bess".into(),
            suite: String::new(),
            valid_days: 30,
            by_hash_generations: 3,
            uncompressed_index: false,
        }
    }
}

/// "Versions containing this text are built for these dists only."
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DistRule {
    pub version_contains: String,
    pub dists: Vec<String>,
}

fn default_channels() -> Vec<String> {
    vec!["preprod".into(), "prod".into()]
}

fn default_components() -> Vec<String> {
    vec!["main".into()]
}

fn default_component() -> String {
    "main".into()
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            channels: default_channels(),
            components: default_components(),
            default_component: default_component(),
            dist_rules: Vec::new(),
            release: ReleaseSettings::default(),
        }
    }
}

impl Settings {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let settings: Settings = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        settings.validate().map_err(invalid)?;
        Ok(settings)
    }

    /// The dists a version is restricted to by the first matching rule.
    pub fn dists_for_version(&self, version: &str) -> Option<&[String]> {
        self.dist_rules
            .iter()
            .find(|rule| version.contains(&rule.version_contains))
            .map(|rule| rule.dists.as_slice())
    }

    fn validate(&self) -> Result<(), String> {
        check_names("channels", &self.channels)?;
        check_names("components", &self.components)?;
        if !self.components.contains(&self.default_component) {
            return Err(format!(
                "default-component `{}` is not in components {:?}; add it to components",
                self.default_component, self.components
            ));
        }
        let release = &self.release;
        for (key, value) in [
            ("origin", &release.origin),
            ("label", &release.label),
            ("suite", &release.suite),
        ] {
            if value.chars().any(|c| c.is_control()) || (key != "suite" && value.trim().is_empty())
            {
                return Err(format!(
                    "[release] {key} = {value:?} must be one non-empty line"
                ));
            }
        }
        if release.by_hash_generations == 0 {
            return Err("[release] by-hash-generations must be at least 1".into());
        }
        for rule in &self.dist_rules {
            if rule.version_contains.is_empty() || rule.dists.is_empty() {
                return Err(
                    "every [[dist-rule]] needs a non-empty version-contains and at least one dist"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

/// Channel and component names become directories and URL segments.
fn check_names(key: &str, names: &[String]) -> Result<(), String> {
    if names.is_empty() {
        return Err(format!("`{key}` must list at least one name"));
    }
    for (i, name) in names.iter().enumerate() {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid || matches!(name.as_str(), "api" | "key.gpg") {
            return Err(format!(
                "`{key}` entry `{name}` is not a valid name: use letters, digits, `-`, `_`, `.`, starting with a letter or digit (and not `api`)"
            ));
        }
        if names[..i].contains(name) {
            return Err(format!("`{key}` lists `{name}` twice"));
        }
    }
    Ok(())
}

/// The `bess.toml` written by `bess init`: every default spelled out and explained.
pub const TEMPLATE: &str = r#"# bess repository settings. See `bess --help`.

# The release pipeline, in order. Uploads enter the first channel;
# `bess repo promote` copies exact versions to the next one.
channels = ["preprod", "prod"]

# Archive areas (the "main" in `deb URL bookworm main`).
components = ["main"]
default-component = "main"

# Fields of the published Release files. apt refuses an update when
# Origin or Label change, so choose them once.
[release]
origin = "bess"
label = "bess"
# suite = ""               # empty: the dist's codename
valid-days = 30            # Valid-Until = Date + 30 days; 0 = no Valid-Until
by-hash-generations = 3    # publications whose index files stay reachable by hash
uncompressed-index = false # also store the uncompressed Packages (always listed in Release)

# Without --dist, a package is published in every dist of dists.list,
# unless its version matches a rule below (first match wins).
# [[dist-rule]]
# version-contains = "+deb12"
# dists = ["bookworm"]
#
# [[dist-rule]]
# version-contains = "~jammy"
# dists = ["jammy"]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_to_defaults() {
        let settings: Settings = toml::from_str(TEMPLATE).unwrap();
        settings.validate().unwrap();
        assert_eq!(settings.channels, ["preprod", "prod"]);
        assert_eq!(settings.default_component, "main");
    }

    #[test]
    fn first_matching_rule_wins() {
        let settings: Settings = toml::from_str(
            "[[dist-rule]]\nversion-contains = \"+deb12\"\ndists = [\"bookworm\"]\n\
             [[dist-rule]]\nversion-contains = \"+deb\"\ndists = [\"bullseye\"]\n",
        )
        .unwrap();
        assert_eq!(
            settings.dists_for_version("8.2.7-1+deb12u1").unwrap(),
            ["bookworm"]
        );
        assert_eq!(
            settings.dists_for_version("1.0+deb11u2").unwrap(),
            ["bullseye"]
        );
        assert!(settings.dists_for_version("1.0-1").is_none());
    }

    #[test]
    fn unknown_key_is_refused() {
        assert!(toml::from_str::<Settings>("chanels = [\"a\"]").is_err());
    }

    #[test]
    fn traversal_channel_is_refused() {
        let settings = Settings {
            channels: vec!["..".into()],
            ..Settings::default()
        };
        assert!(settings.validate().is_err());
    }
}
