//! What `bess platform list|show --json`, `bess env list|show|urls --json`
//! and the API print: one set of structures, so the CLI and the HTTP
//! answers are the same JSON.

use super::{require_environment, require_platform, stored_spec};
use crate::catalog::{EnvironmentRow, PlatformRow};
use crate::env::platform::PlatformSpec;
use crate::env::variables::EndpointVariables;
use crate::ops::clock::rfc3339;
use crate::ops::{OpsError, Repo};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// A platform.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformView {
    pub name: String,
    pub description: String,
    pub source: String,
    /// `git` or `dir`.
    pub source_kind: String,
    pub revision: String,
    pub domain: String,
    pub ip_range: String,
    pub channel: String,
    pub dist: String,
    pub machines: Vec<String>,
    pub sites: Vec<String>,
    pub tools: Vec<String>,
    /// Names of its environments.
    pub environments: Vec<String>,
    pub created: String,
    pub updated: String,
    /// Its `platform.toml`, as read at `revision`.
    pub spec: PlatformSpec,
}

/// An environment.
#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentView {
    pub platform: String,
    pub name: String,
    pub channel: String,
    /// `creating`, `ready` or `destroying`.
    pub state: String,
    pub created: String,
    /// The platform's revision the workspace was made from.
    pub revision: String,
    /// The homepage's host, `<env>.<platform>.<domain>`.
    pub host: String,
    pub homepage_url: String,
    /// Its read-only user of `bess serve`.
    pub user: String,
    /// Whether `bess host bind-proxy` routes its names.
    pub bound: bool,
    /// The workspace, relative to the repository.
    pub workspace: String,
    pub sites: Vec<EndpointVariables>,
    pub tools: Vec<EndpointVariables>,
    pub machines: Vec<MachineView>,
    /// Every package a machine declares: installed and available versions.
    pub packages: Vec<PackageView>,
    /// The last provisioning, once machines have been provisioned.
    pub provisioned: Option<Provisioned>,
    /// The steps of each machine's last provisioning, in order.
    pub steps: Vec<StepView>,
}

/// One step of a machine's last provisioning.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub machine: String,
    pub step: String,
    /// `running`, `ok` or `failed`.
    pub status: String,
    pub started: String,
    pub finished: Option<String>,
    /// The last lines it printed.
    pub output: String,
}

/// A machine of an environment.
#[derive(Debug, Clone, Serialize)]
pub struct MachineView {
    pub name: String,
    pub ip: String,
    /// `defined` until a provider creates it.
    pub state: String,
    #[serde(rename = "box")]
    pub box_name: String,
    pub memory: u32,
}

/// A package a machine installs from the environment's channel.
#[derive(Debug, Clone, Serialize)]
pub struct PackageView {
    pub machine: String,
    pub package: String,
    pub channel: String,
    pub dist: String,
    /// The version installed, once provisioning recorded one.
    pub installed: Option<String>,
    /// The newest version in the channel for the dist, if any.
    pub available: Option<String>,
}

/// The last provisioning of an environment.
#[derive(Debug, Clone, Serialize)]
pub struct Provisioned {
    pub at: String,
    pub result: String,
}

/// `bess env urls`.
#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentUrls {
    pub homepage: String,
    pub sites: BTreeMap<String, String>,
    pub tools: BTreeMap<String, String>,
}

/// Every platform.
pub fn list_platforms(repo: &Repo) -> Result<Vec<PlatformView>, OpsError> {
    let rows = repo.catalog.reader().platforms()?;
    rows.iter().map(|p| platform_view(repo, p)).collect()
}

/// One platform.
pub fn show_platform(repo: &Repo, name: &str) -> Result<PlatformView, OpsError> {
    platform_view(repo, &require_platform(repo, name)?)
}

fn platform_view(repo: &Repo, p: &PlatformRow) -> Result<PlatformView, OpsError> {
    let spec = stored_spec(&p.spec)?;
    let environments = repo.catalog.reader().environments(Some(&p.name))?;
    Ok(PlatformView {
        name: p.name.clone(),
        description: spec.description.clone(),
        source: p.source.clone(),
        source_kind: p.source_kind.clone(),
        revision: p.revision.clone(),
        domain: p.domain.clone(),
        ip_range: p.ip_range.clone(),
        channel: p.channel.clone(),
        dist: super::platform_dist(repo, &spec),
        machines: spec.machines.iter().map(|m| m.name.clone()).collect(),
        sites: spec.site_names(),
        tools: spec.tools.iter().map(|t| t.name.clone()).collect(),
        environments: environments.into_iter().map(|e| e.name).collect(),
        created: rfc3339(p.created_at),
        updated: rfc3339(p.updated_at),
        spec,
    })
}

/// Environments of one platform, or of all.
pub fn list_environments(
    repo: &Repo,
    platform: Option<&str>,
) -> Result<Vec<EnvironmentView>, OpsError> {
    if let Some(platform) = platform {
        require_platform(repo, platform)?;
    }
    let rows = repo.catalog.reader().environments(platform)?;
    rows.iter().map(|e| environment_view(repo, e)).collect()
}

/// One environment.
pub fn show_environment(
    repo: &Repo,
    platform: &str,
    env: &str,
) -> Result<EnvironmentView, OpsError> {
    let row = require_environment(repo, platform, env)?;
    environment_view(repo, &row)
}

/// The homepage's, sites' and tools' URLs of an environment.
pub fn environment_urls(
    repo: &Repo,
    platform: &str,
    env: &str,
) -> Result<EnvironmentUrls, OpsError> {
    let view = show_environment(repo, platform, env)?;
    let urls = |list: &[EndpointVariables]| {
        list.iter()
            .map(|e| (e.name.clone(), e.url.clone()))
            .collect()
    };
    Ok(EnvironmentUrls {
        homepage: view.homepage_url,
        sites: urls(&view.sites),
        tools: urls(&view.tools),
    })
}

fn environment_view(repo: &Repo, e: &EnvironmentRow) -> Result<EnvironmentView, OpsError> {
    let platform = require_platform(repo, &e.platform)?;
    let spec = stored_spec(&e.spec)?;
    let mut machines = repo.catalog.reader().machines(&e.platform, &e.name)?;
    // In the order platform.toml declares them.
    machines.sort_by_key(|m| spec.machines.iter().position(|s| s.name == m.name));
    let addresses: BTreeMap<String, Ipv4Addr> = machines
        .iter()
        .map(|m| (m.name.clone(), m.address))
        .collect();
    // The same computation as the workspace's variables, without the password.
    let vars = super::init::variables(repo, &platform, e, &spec, &addresses, "")?;
    let machine_views = machine_views(&machines, &spec);
    Ok(EnvironmentView {
        platform: e.platform.clone(),
        name: e.name.clone(),
        channel: e.channel.clone(),
        state: e.state.clone(),
        created: rfc3339(e.created_at),
        revision: e.revision.clone(),
        host: vars.host.clone(),
        homepage_url: vars.homepage_url.clone(),
        user: e.user.clone(),
        bound: e.bound,
        workspace: format!("envs/{}/{}", e.platform, e.name),
        sites: e
            .sites
            .iter()
            .filter_map(|s| vars.sites.get(s).cloned())
            .collect(),
        tools: vars.tools.values().cloned().collect(),
        machines: machine_views,
        packages: packages(repo, e, &spec, &vars.dist)?,
        provisioned: e.provisioned_at.map(|at| Provisioned {
            at: rfc3339(at),
            result: e.provision_result.clone().unwrap_or_default(),
        }),
        steps: steps(repo, e)?,
    })
}

fn steps(repo: &Repo, e: &EnvironmentRow) -> Result<Vec<StepView>, OpsError> {
    let rows = repo
        .catalog
        .reader()
        .provision_steps(&e.platform, &e.name)?;
    Ok(rows
        .into_iter()
        .map(|s| StepView {
            machine: s.machine,
            step: s.step,
            status: s.status,
            started: rfc3339(s.started_at),
            finished: s.finished_at.map(rfc3339),
            output: s.output,
        })
        .collect())
}

/// The machines, with what platform.toml declares of each.
fn machine_views(machines: &[crate::catalog::MachineRow], spec: &PlatformSpec) -> Vec<MachineView> {
    machines
        .iter()
        .map(|m| {
            let declared = spec.machine(&m.name);
            MachineView {
                name: m.name.clone(),
                ip: m.address.to_string(),
                state: m.state.clone(),
                box_name: declared.map(|d| d.box_name.clone()).unwrap_or_default(),
                memory: declared.map_or(0, |d| d.memory),
            }
        })
        .collect()
}

/// Each declared package of each machine, with the version installed
/// (recorded by provisioning) and the newest one its channel offers.
fn packages(
    repo: &Repo,
    e: &EnvironmentRow,
    spec: &PlatformSpec,
    platform_dist: &str,
) -> Result<Vec<PackageView>, OpsError> {
    let installed = repo
        .catalog
        .reader()
        .installed_packages(&e.platform, &e.name)?;
    let mut views = Vec::new();
    for machine in &spec.machines {
        let dist = machine.dist.clone().unwrap_or(platform_dist.to_string());
        for package in &machine.packages {
            let installed = installed
                .iter()
                .find(|i| i.machine == machine.name && &i.package == package)
                .map(|i| i.version.clone());
            views.push(PackageView {
                machine: machine.name.clone(),
                package: package.clone(),
                channel: e.channel.clone(),
                available: newest_in(repo, package, &e.channel, &dist)?,
                dist: dist.clone(),
                installed,
            });
        }
    }
    Ok(views)
}

/// The newest version of `package` placed in `channel` for `dist`.
pub(super) fn newest_in(
    repo: &Repo,
    package: &str,
    channel: &str,
    dist: &str,
) -> Result<Option<String>, OpsError> {
    let versions = match crate::ops::versions(repo, package) {
        Ok(versions) => versions,
        Err(OpsError::NotFound(_)) => return Ok(None),
        Err(error) => return Err(error),
    };
    // Newest first.
    Ok(versions
        .into_iter()
        .find(|v| {
            v.placements
                .iter()
                .any(|p| p.channel == channel && p.dist == dist)
        })
        .map(|v| v.version))
}
