//! `bess platform init|update|check|destroy`.

use super::super::audit::record;
use super::init::{destroy_environment, variables};
use super::view::{PlatformView, show_platform};
use super::{lock_platform, recover::recover, require_platform};
use crate::catalog::{EnvironmentRow, PlatformRow, now};
use crate::env::names::{check_domain, check_label};
use crate::env::network::IpRange;
use crate::env::platform::{PLATFORM_FILE, PlatformSpec};
use crate::env::source::{self, Fetched, PlatformSource, SourceKind};
use crate::env::template::{find_templates, render_all};
use crate::env::workspace::remove_tree;
use crate::ops::{OpsError, Repo};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// What `bess platform init` asks for.
#[derive(Debug, Clone, Default)]
pub struct PlatformInitRequest {
    pub name: String,
    /// A directory or a git URL.
    pub source: String,
    pub domain: String,
    /// IPv4 CIDR its machines' addresses come from.
    pub ip_range: String,
    /// Its environments' channel; the first channel when absent.
    pub channel: Option<String>,
}

/// Registers a platform: fetches its source, reads and checks its
/// `platform.toml`, records the revision.
pub fn init_platform(
    repo: &mut Repo,
    request: &PlatformInitRequest,
) -> Result<PlatformView, OpsError> {
    check_label("platform name", &request.name)?;
    check_domain(&request.domain)?;
    let range = IpRange::parse(&request.ip_range)?;
    let channel = request
        .channel
        .clone()
        .unwrap_or_else(|| repo.config.first_channel().to_string());
    repo.check_channel(&channel)?;
    let source = PlatformSource::parse(&request.source)?;
    recover(repo)?;
    let _lock = lock_platform(repo, &request.name)?;
    refuse_taken(repo, &request.name, &range)?;
    let store = store_of(repo, &request.name, source.kind);
    // A copy left by a platform of this name that is gone.
    remove_tree(&store)?;
    let (scratch, fetched, spec, text) = fetch_and_read(repo, &source, &store)?;
    check_against_repo(repo, &spec)?;
    let revision = fetched.revision.clone();
    fetched.keep(&store)?;
    drop(scratch);
    let at = now();
    let row = PlatformRow {
        name: request.name.clone(),
        source: source.location.clone(),
        source_kind: source.kind.name().into(),
        revision,
        spec: text,
        domain: request.domain.clone(),
        ip_range: range.to_string(),
        channel,
        zone_serial: 0,
        created_at: at,
        updated_at: at,
    };
    let writer = repo.catalog.write()?;
    if !writer.add_platform(&row)? {
        return Err(taken(&row.name));
    }
    let detail = json!({
        "platform": row.name, "source": row.source, "revision": row.revision,
        "domain": row.domain, "ip_range": row.ip_range, "channel": row.channel,
    });
    record(&writer, &repo.actor, "platform.init", detail)?;
    writer.commit()?;
    show_platform(repo, &row.name)
}

fn taken(name: &str) -> OpsError {
    OpsError::Conflict(format!(
        "a platform named `{name}` exists already; see `bess platform show {name}`"
    ))
}

/// A taken name, or a range sharing addresses with another platform's.
fn refuse_taken(repo: &Repo, name: &str, range: &IpRange) -> Result<(), OpsError> {
    for other in repo.catalog.reader().platforms()? {
        if other.name == name {
            return Err(taken(name));
        }
        if IpRange::parse(&other.ip_range).is_ok_and(|o| o.overlaps(range)) {
            return Err(OpsError::Conflict(format!(
                "--ip-range {range} overlaps {} of platform {}; platforms' ranges must not share addresses",
                other.ip_range, other.name
            )));
        }
    }
    Ok(())
}

fn store_of(repo: &Repo, name: &str, kind: SourceKind) -> PathBuf {
    source::store_path(&repo.config.layout.platform_sources_dir(), name, kind)
}

/// Fetches the source and reads `platform.toml` at the fetched revision;
/// returns the scratch directory (which holds the copy until kept).
fn fetch_and_read(
    repo: &Repo,
    source: &PlatformSource,
    store: &Path,
) -> Result<(tempfile::TempDir, Fetched, PlatformSpec, String), OpsError> {
    let tmp = repo.config.layout.tmp_dir();
    std::fs::create_dir_all(&tmp).map_err(OpsError::io("create", &tmp))?;
    if let Some(parent) = store.parent() {
        std::fs::create_dir_all(parent).map_err(OpsError::io("create", parent))?;
    }
    let scratch =
        tempfile::tempdir_in(&tmp).map_err(OpsError::io("create a directory in", &tmp))?;
    let fetched = source::fetch(source, store, scratch.path())?;
    let checkout = scratch.path().join("checkout");
    std::fs::create_dir(&checkout).map_err(OpsError::io("create", &checkout))?;
    source::export(
        source.kind,
        fetched.copy(store),
        &fetched.revision,
        &checkout,
    )?;
    let spec = PlatformSpec::load(&checkout)?;
    let file = checkout.join(PLATFORM_FILE);
    let text = std::fs::read_to_string(&file).map_err(OpsError::io("read", &file))?;
    Ok((scratch, fetched, spec, text))
}

/// The dists a platform names must be in `dists.list`.
fn check_against_repo(repo: &Repo, spec: &PlatformSpec) -> Result<(), OpsError> {
    let named = spec
        .dist
        .iter()
        .chain(spec.machines.iter().filter_map(|m| m.dist.as_ref()));
    let mut problems = Vec::new();
    for dist in named {
        if !repo.config.dists.contains(dist) {
            problems.push(format!(
                "{PLATFORM_FILE}: dist = {dist:?} is not in {} ({}); add it there or fix the platform",
                repo.config.layout.dists_file().display(),
                repo.config.dists.names().join(", ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(OpsError::Invalid(problems))
    }
}

/// Fetches the platform's source again and records its new revision;
/// existing environments keep theirs. Returns the view and the old revision.
pub fn update_platform(repo: &mut Repo, name: &str) -> Result<(PlatformView, String), OpsError> {
    recover(repo)?;
    require_platform(repo, name)?;
    let _lock = lock_platform(repo, name)?;
    let platform = require_platform(repo, name)?;
    let kind = SourceKind::from_name(&platform.source_kind);
    let source = PlatformSource {
        kind,
        location: platform.source.clone(),
    };
    let store = store_of(repo, name, kind);
    let (scratch, fetched, spec, text) = fetch_and_read(repo, &source, &store)?;
    check_against_repo(repo, &spec)?;
    let revision = fetched.revision.clone();
    fetched.keep(&store)?;
    drop(scratch);
    let writer = repo.catalog.write()?;
    writer.set_platform_revision(name, &revision, &text, now())?;
    let detail = json!({ "platform": name, "from": platform.revision, "to": revision });
    record(&writer, &repo.actor, "platform.update", detail)?;
    writer.commit()?;
    Ok((show_platform(repo, name)?, platform.revision))
}

/// The result of `bess platform check`.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformCheck {
    pub platform: String,
    pub revision: String,
    /// No item is a problem (warnings allowed).
    pub ok: bool,
    pub checks: Vec<PlatformCheckItem>,
}

/// One thing `bess platform check` looked at.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformCheckItem {
    pub check: String,
    /// `ok`, `warning` or `problem`.
    pub status: String,
    pub detail: String,
}

impl PlatformCheck {
    fn add(&mut self, check: &str, status: &str, detail: impl Into<String>) {
        self.ok &= status != "problem";
        self.checks.push(PlatformCheckItem {
            check: check.into(),
            status: status.into(),
            detail: detail.into(),
        });
    }
}

/// Checks a platform's recorded revision: the source can be read, its
/// `platform.toml` is valid here, its templates render, its boxes are in
/// the catalog, and the host has the tools environments need.
pub fn check_platform(repo: &mut Repo, name: &str) -> Result<PlatformCheck, OpsError> {
    recover(repo)?;
    let platform = require_platform(repo, name)?;
    let mut report = PlatformCheck {
        platform: name.into(),
        revision: platform.revision.clone(),
        ok: true,
        checks: Vec::new(),
    };
    let tmp = repo.config.layout.tmp_dir();
    std::fs::create_dir_all(&tmp).map_err(OpsError::io("create", &tmp))?;
    let scratch =
        tempfile::tempdir_in(&tmp).map_err(OpsError::io("create a directory in", &tmp))?;
    let checkout = scratch.path().join("checkout");
    std::fs::create_dir(&checkout).map_err(OpsError::io("create", &checkout))?;
    match super::init::export_source(repo, &platform, &checkout) {
        Ok(()) => report.add(
            "source",
            "ok",
            format!(
                "revision {} of {}",
                source::short(&platform.revision),
                platform.source
            ),
        ),
        Err(e) => report.add("source", "problem", e.to_string()),
    }
    let spec = match PlatformSpec::load(&checkout) {
        Ok(spec) => spec,
        Err(e) => {
            report.add(PLATFORM_FILE, "problem", e.to_string());
            return Ok(report);
        }
    };
    let summary = format!(
        "{} machines, {} sites, {} tools",
        spec.machines.len(),
        spec.sites.len(),
        spec.tools.len()
    );
    match check_against_repo(repo, &spec) {
        Ok(()) => report.add(PLATFORM_FILE, "ok", summary),
        Err(e) => report.add(PLATFORM_FILE, "problem", e.to_string()),
    }
    check_templates(repo, &platform, &spec, &checkout, &mut report);
    check_boxes(repo, &platform, &spec, &mut report)?;
    check_tools(repo, &platform, &mut report);
    Ok(report)
}

/// Renders every template with the variables of a sample environment.
fn check_templates(
    repo: &Repo,
    platform: &PlatformRow,
    spec: &PlatformSpec,
    checkout: &Path,
    report: &mut PlatformCheck,
) {
    let sample = EnvironmentRow {
        platform: platform.name.clone(),
        name: "check".into(),
        channel: platform.channel.clone(),
        sites: spec.site_names(),
        revision: platform.revision.clone(),
        spec: platform.spec.clone(),
        state: "ready".into(),
        user: super::user_name(&platform.name, "check"),
        bound: false,
        created_at: now(),
        provisioned_at: None,
        provision_result: None,
    };
    let range = super::range_of(platform);
    let addresses: BTreeMap<String, Ipv4Addr> = match &range {
        Ok(range) => spec
            .machines
            .iter()
            .zip(range.machine_addresses())
            .map(|(m, a)| (m.name.clone(), Ipv4Addr::from(a)))
            .collect(),
        Err(_) => BTreeMap::new(),
    };
    let rendered = variables(repo, platform, &sample, spec, &addresses, "sample-password")
        .and_then(|vars| serde_json::to_value(vars).map_err(|e| OpsError::Usage(e.to_string())))
        .and_then(|json| Ok(render_all(checkout, &json)?));
    match rendered {
        Ok(files) => {
            let count = find_templates(checkout).map_or(files.len(), |t| t.len());
            report.add("templates", "ok", format!("{count} templates render"));
        }
        Err(e) => report.add("templates", "problem", e.to_string()),
    }
}

/// Boxes are built and added later; their absence is a warning.
fn check_boxes(
    repo: &Repo,
    platform: &PlatformRow,
    spec: &PlatformSpec,
    report: &mut PlatformCheck,
) -> Result<(), OpsError> {
    let placed = crate::ops::list_boxes(repo, Some(&platform.channel), None)?;
    for machine in &spec.machines {
        if placed.iter().any(|b| b.name == machine.box_name) {
            report.add(
                "box",
                "ok",
                format!(
                    "{}: {} is in {}",
                    machine.name, machine.box_name, platform.channel
                ),
            );
        } else {
            report.add("box", "warning", format!(
                "{}: box {} is not in channel {} yet; machines need it to start (`bess box add`)",
                machine.name, machine.box_name, platform.channel
            ));
        }
    }
    Ok(())
}

/// The programs bess runs for this platform's environments.
fn check_tools(repo: &Repo, platform: &PlatformRow, report: &mut PlatformCheck) {
    let host = &repo.config.settings.host;
    let mut tools = crate::env::host::tools(host);
    if platform.source_kind == "git" {
        tools.insert(0, crate::env::host::Tool::new("git", "git", "git"));
    }
    for tool in tools {
        match tool.find() {
            Some(path) => report.add("tool", "ok", format!("{}: {}", tool.role, path.display())),
            None => report.add(
                "tool",
                "problem",
                format!(
                    "{}: `{}` is not installed (apt-get install {})",
                    tool.role, tool.program, tool.package
                ),
            ),
        }
    }
}

/// Removes a platform: refused while it has environments unless `force`,
/// which destroys them first; then its zone, source copy and row.
pub fn destroy_platform(repo: &mut Repo, name: &str, force: bool) -> Result<Vec<String>, OpsError> {
    recover(repo)?;
    require_platform(repo, name)?;
    let envs: Vec<String> = repo
        .catalog
        .reader()
        .environments(Some(name))?
        .into_iter()
        .map(|e| e.name)
        .collect();
    if !envs.is_empty() && !force {
        return Err(OpsError::Conflict(format!(
            "platform {name} has environments ({}); destroy them with `bess env destroy {name} ENV`, \
             or pass --force to destroy them too",
            envs.join(", ")
        )));
    }
    for env in &envs {
        destroy_environment(repo, name, env)?;
    }
    let _lock = lock_platform(repo, name)?;
    let platform = require_platform(repo, name)?;
    if let Some(e) = repo.catalog.reader().environments(Some(name))?.first() {
        return Err(OpsError::Conflict(format!(
            "environment {name}/{} was created meanwhile; run the command again",
            e.name
        )));
    }
    if platform.zone_serial > 0 {
        crate::ops::host::remove_platform_zone(repo, &platform)?;
    }
    let kind = SourceKind::from_name(&platform.source_kind);
    remove_tree(&store_of(repo, name, kind))?;
    remove_tree(&repo.config.layout.envs_dir().join(name))?;
    let writer = repo.catalog.write()?;
    writer.remove_platform(name)?;
    let detail = json!({ "platform": name, "environments": envs, "revision": platform.revision });
    record(&writer, &repo.actor, "platform.destroy", detail)?;
    writer.commit()?;
    Ok(envs)
}
