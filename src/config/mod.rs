//! Repository settings: `bess.toml`, `dists.list` and `archs.list` turned
//! into typed, validated values, and the on-disk layout of a repository.

mod front;
mod host;
mod layout;
mod lists;
mod settings;
mod targets;

pub use front::{DEFAULT_FRONTEND_CONFIG, FrontSettings, StoreSettings, StoreUrl};
pub use host::{EnvironmentSettings, HostSettings, ProxyKind};
pub use layout::Layout;
pub use lists::{NameList, check_arch_name, check_dist_name, parse_list};
pub use settings::{
    BoxSettings, Checksum, Cidr, DistRule, IncomingSettings, IngestSettings, PruneRule,
    PublishSettings, ReleaseSettings, Settings, TEMPLATE as SETTINGS_TEMPLATE, is_host_name,
};
pub use targets::{PublishTarget, TargetKind, TargetLayout};

use std::path::PathBuf;

/// Everything wrong with a repository's configuration files.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{path} is not a bess repository (no bess.toml); create one with `bess init DIR`, or point to one with --repo DIR or $BESS_REPO"
    )]
    NotARepository { path: PathBuf },
}

/// A repository's configuration, read once per command.
#[derive(Debug, Clone)]
pub struct RepoConfig {
    pub layout: Layout,
    pub settings: Settings,
    pub dists: NameList,
    pub archs: NameList,
}

impl RepoConfig {
    /// Reads and validates `bess.toml`, `dists.list` and `archs.list` of the repository at `root`.
    pub fn load(root: &std::path::Path) -> Result<RepoConfig, ConfigError> {
        let layout = Layout::new(root);
        if !layout.settings_file().is_file() {
            return Err(ConfigError::NotARepository {
                path: root.to_path_buf(),
            });
        }
        let settings = Settings::load(&layout.settings_file())?;
        let dists = NameList::load(&layout.dists_file(), lists::check_dist_name)?;
        let archs = NameList::load(&layout.archs_file(), lists::check_arch_name)?;
        let config = RepoConfig {
            layout,
            settings,
            dists,
            archs,
        };
        config.check_rules()?;
        Ok(config)
    }

    /// The channel uploads enter.
    pub fn first_channel(&self) -> &str {
        &self.settings.channels[0]
    }

    /// The channel after `channel` in the pipeline, if any.
    pub fn next_channel(&self, channel: &str) -> Option<&str> {
        let channels = &self.settings.channels;
        let at = channels.iter().position(|c| c == channel)?;
        channels.get(at + 1).map(String::as_str)
    }

    /// Dist rules must name dists that exist, or they would silently publish nothing.
    fn check_rules(&self) -> Result<(), ConfigError> {
        for rule in &self.settings.dist_rules {
            for dist in &rule.dists {
                if !self.dists.contains(dist) {
                    return Err(ConfigError::Invalid {
                        path: self.layout.settings_file(),
                        message: format!(
                            "dist rule for versions containing `{}` names dist `{dist}`, which is not in {}; add it there or fix the rule",
                            rule.version_contains,
                            self.layout.dists_file().display()
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}
