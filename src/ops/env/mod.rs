//! Environments: `bess env …`, `bess platform …` and their API. The
//! catalog holds platforms, environments, machines and users; `env`
//! builds what is generated from them; this module decides the order in
//! which both change, so that an interrupted command leaves nothing a
//! later one cannot clean.
//!
//! Locks are always taken platform first (shared while environments are
//! made from its source, exclusive while the source or the platform
//! itself changes), then environment.

mod access;
mod build;
mod fetch;
mod init;
mod machines;
mod platform;
mod platform_machines;
mod provision;
mod recover;
mod update;
mod view;

pub use access::{env_inventory, machine_logs, ssh_command};
pub use build::{PlatformBuild, PlatformBuildRequest, build_platform};
pub use init::{EnvInitRequest, destroy_environment, init_environment};
pub use machines::{EnvStatus, MachineOutcome, MachineStatus, env_halt, env_status, env_up};
pub use platform::{
    PlatformCheck, PlatformCheckItem, PlatformInitRequest, check_platform, destroy_platform,
    init_platform, update_platform,
};
pub use platform_machines::{EnvironmentOutcome, platform_halt, platform_up, platform_verdict};
pub use recover::recover;
pub use update::{UpdateOutcome, env_update};
pub use view::{
    EnvironmentUrls, EnvironmentView, MachineView, PackageView, PlatformView, StepView,
    environment_urls, list_environments, list_platforms, show_environment, show_platform,
};

use super::lock::NamedLock;
use super::{OpsError, Repo};
use crate::catalog::{EnvironmentRow, PlatformRow};
use crate::config::{Layout, RepoConfig};
use crate::env::network::IpRange;
use crate::env::platform::PlatformSpec;
use crate::env::workspace::Workspace;
use std::path::PathBuf;

/// An environment being made; its rows and files are discarded if the
/// process that makes it dies.
pub const CREATING: &str = "creating";
/// An environment whose workspace is complete.
pub const READY: &str = "ready";
/// An environment being removed; finished by the next command if the
/// process that removes it dies.
pub const DESTROYING: &str = "destroying";

fn env_lock_path(layout: &Layout, platform: &str, env: &str) -> PathBuf {
    layout
        .locks_dir()
        .join(format!("env.{platform}.{env}.lock"))
}

fn platform_lock_path(layout: &Layout, platform: &str) -> PathBuf {
    layout.locks_dir().join(format!("platform.{platform}.lock"))
}

/// The lock of the host's DNS and proxy files.
pub(crate) fn host_lock(layout: &Layout) -> Result<NamedLock, OpsError> {
    NamedLock::acquire(&layout.locks_dir().join("host.lock"), true)
}

/// Shared: environments are being made from the platform's source.
pub(crate) fn lock_platform_shared(repo: &Repo, platform: &str) -> Result<NamedLock, OpsError> {
    NamedLock::acquire(&platform_lock_path(&repo.config.layout, platform), false)
}

/// Exclusive: the platform's source or the platform itself changes.
pub(crate) fn lock_platform(repo: &Repo, platform: &str) -> Result<NamedLock, OpsError> {
    NamedLock::acquire(&platform_lock_path(&repo.config.layout, platform), true)
}

pub(crate) fn lock_env(repo: &Repo, platform: &str, env: &str) -> Result<NamedLock, OpsError> {
    NamedLock::acquire(&env_lock_path(&repo.config.layout, platform, env), true)
}

/// The platform named `name`, or an error saying how to find one.
pub(crate) fn require_platform(repo: &Repo, name: &str) -> Result<PlatformRow, OpsError> {
    repo.catalog.reader().platform(name)?.ok_or_else(|| {
        OpsError::NotFound(format!(
            "no platform named `{name}`; see `bess platform list`"
        ))
    })
}

/// Environment `env` of `platform` (an id as typed: `PROJ-42` finds `proj-42`).
pub(crate) fn require_environment(
    repo: &Repo,
    platform: &str,
    env: &str,
) -> Result<EnvironmentRow, OpsError> {
    let name = crate::env::names::environment_name(env)?;
    require_platform(repo, platform)?;
    repo.catalog
        .reader()
        .environment(platform, &name)?
        .ok_or_else(|| {
            OpsError::NotFound(format!(
                "platform {platform} has no environment `{name}`; see `bess env list --platform {platform}`"
            ))
        })
}

/// The workspace of an environment.
pub(crate) fn workspace(repo: &Repo, platform: &str, env: &str) -> Workspace {
    Workspace::at(&repo.config.layout.envs_dir(), platform, env)
}

/// The `platform.toml` a row recorded (checked when it was recorded).
pub(crate) fn stored_spec(text: &str) -> Result<PlatformSpec, OpsError> {
    Ok(PlatformSpec::parse(text)?)
}

/// The range a platform row recorded.
pub(crate) fn range_of(platform: &PlatformRow) -> Result<IpRange, OpsError> {
    Ok(IpRange::parse(&platform.ip_range)?)
}

/// The read-only user an environment gets.
pub(crate) fn user_name(platform: &str, env: &str) -> String {
    format!("env.{platform}.{env}")
}

/// The URL machines reach `bess serve` at: `[environments] repo-url`, else
/// `[serve] listen`'s port at the host's address on the platform's network.
pub(crate) fn repo_url(config: &RepoConfig, range: &IpRange) -> String {
    let settings = &config.settings;
    if let Some(url) = &settings.environments.repo_url {
        return url.trim_end_matches('/').to_string();
    }
    let port = listen_port(&settings.serve.listen);
    let scheme = scheme(config);
    format!("{scheme}://{}:{port}", range.host_address())
}

/// `http` or `https`, as `bess serve` speaks.
pub(crate) fn scheme(config: &RepoConfig) -> &'static str {
    if config.settings.serve.tls_certificate.is_some() {
        "https"
    } else {
        "http"
    }
}

/// The port of `[serve] listen` (`0.0.0.0:8080`, `[::]:8080`).
pub(crate) fn listen_port(listen: &str) -> u16 {
    listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080)
}

/// The dist machines install from: the platform's, else the first of `dists.list`.
pub(crate) fn platform_dist(repo: &Repo, spec: &PlatformSpec) -> String {
    spec.dist
        .clone()
        .or_else(|| repo.config.dists.names().first().cloned())
        .unwrap_or_default()
}
