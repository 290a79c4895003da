//! `bess host bind-proxy`, `unbind-proxy` and `check`: the host's bind
//! zone, named.conf include and proxy files for environments.
//!
//! What the files say is a function of the catalog (which environments
//! are bound); each change writes candidates beside the files they
//! replace, checks each with the real tool, renames it into place, and
//! only then records the change and runs the reload commands. A check
//! that fails leaves every previous file and the catalog as they were.

use super::audit::record;
use super::env::{
    EnvironmentView, READY, host_lock, listen_port, lock_env, lock_platform_shared, recover,
    require_environment, require_platform, scheme, show_environment,
};
use super::{OpsError, Repo};
use crate::catalog::{EnvironmentRow, PlatformRow};
use crate::config::{HostSettings, ProxyKind};
use crate::env::files;
use crate::env::host::{
    ProxiedEnvironment, Upstream, Zone, apache_file, check_apache, check_include, check_nginx,
    check_zone, include_file, nginx_file, proxy_file_name, run_reload, serial_of, zone_file_name,
};
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};

/// What `bind-proxy` or `unbind-proxy` changed.
#[derive(Debug, Clone, Serialize)]
pub struct HostChange {
    pub platform: String,
    pub environment: String,
    pub bound: bool,
    /// Each file bess owns that the command looked at.
    pub files: Vec<FileChange>,
    /// Reload commands run.
    pub reloaded: Vec<String>,
}

/// One file and what happened to it.
#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    pub path: String,
    /// `written`, `unchanged` or `removed`.
    pub change: String,
}

impl HostChange {
    fn note(&mut self, path: &Path, change: &str) {
        self.files.push(FileChange {
            path: path.display().to_string(),
            change: change.into(),
        });
    }

    fn changed(&self, path: &Path) -> bool {
        let path = path.display().to_string();
        self.files
            .iter()
            .any(|f| f.path == path && f.change != "unchanged")
    }
}

/// Routes an environment's names: its records in the platform's zone and
/// its proxy file.
pub fn bind_proxy(repo: &mut Repo, platform: &str, env: &str) -> Result<HostChange, OpsError> {
    recover(repo)?;
    let row = require_environment(repo, platform, env)?;
    let _platform_lock = lock_platform_shared(repo, platform)?;
    let _env_lock = lock_env(repo, platform, &row.name)?;
    let row = require_environment(repo, platform, env)?;
    if row.state != READY {
        return Err(OpsError::Conflict(format!(
            "environment {platform}/{} is {}, not ready",
            row.name, row.state
        )));
    }
    apply(repo, &row, true)
}

/// Removes exactly what [`bind_proxy`] added for the environment.
pub fn unbind_proxy(repo: &mut Repo, platform: &str, env: &str) -> Result<HostChange, OpsError> {
    recover(repo)?;
    let row = require_environment(repo, platform, env)?;
    let _platform_lock = lock_platform_shared(repo, platform)?;
    let _env_lock = lock_env(repo, platform, &row.name)?;
    let row = require_environment(repo, platform, env)?;
    apply(repo, &row, false)
}

/// [`unbind_proxy`] for a caller that holds the environment's locks.
pub(crate) fn unbind_locked(repo: &mut Repo, env: &EnvironmentRow) -> Result<(), OpsError> {
    apply(repo, env, false).map(drop)
}

/// Writes the platform's zone, the include and the environment's proxy
/// file as they must be now, records it, then reloads.
fn apply(repo: &mut Repo, env: &EnvironmentRow, bind: bool) -> Result<HostChange, OpsError> {
    let _host_lock = host_lock(&repo.config.layout)?;
    let platform = require_platform(repo, &env.platform)?;
    let host = repo.config.settings.host.clone();
    let mut change = HostChange {
        platform: env.platform.clone(),
        environment: env.name.clone(),
        bound: bind,
        files: Vec::new(),
        reloaded: Vec::new(),
    };
    let serial = write_zone(repo, &host, &platform, env, bind, &mut change)?;
    let zone_path = zone_path(&host, &platform);
    write_include(repo, &host, serial.map(|_| &platform), None, &mut change)?;
    write_proxy_file(repo, &host, env, bind, &mut change)?;
    let bind_changed = change.changed(&zone_path) || change.changed(&host.bind_include);
    let proxy_changed = change.changed(&proxy_path(&host, env));
    if env.bound != bind || bind_changed || proxy_changed {
        record_change(repo, env, serial, &change)?;
    }
    if bind_changed {
        run_reload(&host.bind_reload, "bind")?;
        change.reloaded.push(host.bind_reload.join(" "));
    }
    if proxy_changed {
        let command = host.proxy_reload_command();
        run_reload(&command, host.proxy.name())?;
        change.reloaded.push(command.join(" "));
    }
    change.reloaded.retain(|c| !c.is_empty());
    Ok(change)
}

/// Records what the files now say, with its audit entry.
fn record_change(
    repo: &mut Repo,
    env: &EnvironmentRow,
    serial: Option<u32>,
    change: &HostChange,
) -> Result<(), OpsError> {
    let writer = repo.catalog.write()?;
    writer.set_bound(&env.platform, &env.name, change.bound)?;
    if let Some(serial) = serial {
        writer.set_zone_serial(&env.platform, serial)?;
    }
    let action = if change.bound {
        "host.bind-proxy"
    } else {
        "host.unbind-proxy"
    };
    let files: Vec<_> = change
        .files
        .iter()
        .filter(|f| f.change != "unchanged")
        .collect();
    let detail = json!({ "platform": env.platform, "environment": env.name, "files": files });
    record(&writer, &repo.actor, action, detail)?;
    Ok(writer.commit()?)
}

fn origin(platform: &PlatformRow) -> String {
    format!("{}.{}", platform.name, platform.domain)
}

fn zone_path(host: &HostSettings, platform: &PlatformRow) -> PathBuf {
    host.bind_zone_dir.join(zone_file_name(&origin(platform)))
}

fn proxy_path(host: &HostSettings, env: &EnvironmentRow) -> PathBuf {
    host.proxy_dir()
        .join(proxy_file_name(&env.platform, &env.name))
}

/// The zone with `env` in or out; returns the serial the zone has now
/// (`None` when the platform has and needs no zone).
fn write_zone(
    repo: &Repo,
    host: &HostSettings,
    platform: &PlatformRow,
    env: &EnvironmentRow,
    bind: bool,
    change: &mut HostChange,
) -> Result<Option<u32>, OpsError> {
    let path = zone_path(host, platform);
    let installed = std::fs::read_to_string(&path).ok();
    if !bind && installed.is_none() && platform.zone_serial == 0 {
        return Ok(None);
    }
    let environments = bound_after(repo, platform, env, bind)?;
    let held = installed.as_deref().and_then(serial_of).unwrap_or(0);
    let mut zone = Zone {
        origin: origin(platform),
        serial: held,
        proxy: host.proxy_address,
        environments,
    };
    if installed.as_deref() == Some(zone.text().as_str()) {
        change.note(&path, "unchanged");
        return Ok(Some(held.max(platform.zone_serial)));
    }
    // Secondaries and caches take a zone only when its serial grows.
    zone.serial = held.max(platform.zone_serial).saturating_add(1);
    let text = zone.text();
    install_checked(&path, &text, |candidate| {
        Ok(check_zone(
            &host.named_checkzone,
            &zone.origin,
            candidate,
            &path,
        )?)
    })?;
    change.note(&path, "written");
    Ok(Some(zone.serial))
}

/// The platform's bound environments once `env` is bound or not.
fn bound_after(
    repo: &Repo,
    platform: &PlatformRow,
    env: &EnvironmentRow,
    bind: bool,
) -> Result<Vec<String>, OpsError> {
    let mut environments: Vec<String> = repo
        .catalog
        .reader()
        .environments(Some(&platform.name))?
        .into_iter()
        .filter(|e| e.bound && e.name != env.name)
        .map(|e| e.name)
        .collect();
    if bind {
        environments.push(env.name.clone());
    }
    environments.sort();
    Ok(environments)
}

/// The include listing every platform's zone: those bess wrote before,
/// plus `adding`, less `removing`.
fn write_include(
    repo: &Repo,
    host: &HostSettings,
    adding: Option<&PlatformRow>,
    removing: Option<&PlatformRow>,
    change: &mut HostChange,
) -> Result<(), OpsError> {
    let platforms = repo.catalog.reader().platforms()?;
    let mut origins: Vec<String> = platforms
        .iter()
        .filter(|p| p.zone_serial > 0 || adding.is_some_and(|a| a.name == p.name))
        .filter(|p| removing.is_none_or(|r| r.name != p.name))
        .map(origin)
        .collect();
    origins.sort();
    origins.dedup();
    let path = &host.bind_include;
    let installed = std::fs::read_to_string(path).ok();
    if origins.is_empty() && installed.is_none() {
        return Ok(());
    }
    let text = include_file(&origins, &host.bind_zone_dir);
    if installed.as_deref() == Some(text.as_str()) {
        change.note(path, "unchanged");
        return Ok(());
    }
    install_checked(path, &text, |candidate| {
        Ok(check_include(&host.named_checkconf, candidate, path)?)
    })?;
    change.note(path, "written");
    Ok(())
}

/// The environment's proxy file, written (bind) or removed (unbind).
fn write_proxy_file(
    repo: &Repo,
    host: &HostSettings,
    env: &EnvironmentRow,
    bind: bool,
    change: &mut HostChange,
) -> Result<(), OpsError> {
    let path = proxy_path(host, env);
    if !bind {
        if files::remove(&path)? {
            change.note(&path, "removed");
        }
        return Ok(());
    }
    let view = show_environment(repo, &env.platform, &env.name)?;
    let proxied = proxied(repo, host, &view)?;
    let text = match host.proxy {
        ProxyKind::Nginx => nginx_file(&proxied),
        ProxyKind::Apache => apache_file(&proxied),
    };
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        change.note(&path, "unchanged");
        return Ok(());
    }
    let tmp = repo.config.layout.tmp_dir();
    std::fs::create_dir_all(&tmp).map_err(OpsError::io("create", &tmp))?;
    let scratch =
        tempfile::tempdir_in(&tmp).map_err(OpsError::io("create a directory in", &tmp))?;
    install_checked(&path, &text, |candidate| {
        let listen = proxied.listen;
        let checked = match host.proxy {
            ProxyKind::Nginx => check_nginx(&host.nginx, candidate, &path, scratch.path()),
            ProxyKind::Apache => check_apache(
                &host.apache2,
                &host.apache_modules_dir,
                listen,
                candidate,
                &path,
                scratch.path(),
            ),
        };
        Ok(checked?)
    })?;
    change.note(&path, "written");
    Ok(())
}

/// What the proxy file of an environment routes.
fn proxied(
    repo: &Repo,
    host: &HostSettings,
    view: &EnvironmentView,
) -> Result<ProxiedEnvironment, OpsError> {
    let upstreams = view
        .sites
        .iter()
        .chain(&view.tools)
        .filter_map(|e| {
            let ip = e.ip.parse().ok()?;
            Some(Upstream {
                host: e.host.clone(),
                ip,
                port: e.port,
            })
        })
        .collect();
    Ok(ProxiedEnvironment {
        platform: view.platform.clone(),
        environment: view.name.clone(),
        homepage_host: view.host.clone(),
        upstreams,
        listen: (host.proxy_address, host.proxy_port),
        serve_url: serve_url(repo),
    })
}

/// Where the proxy reaches `bess serve`: `[host] serve-url`, else `[serve]
/// listen` with a wildcard address read as loopback.
pub fn serve_url(repo: &Repo) -> String {
    let settings = &repo.config.settings;
    if let Some(url) = &settings.host.serve_url {
        return url.trim_end_matches('/').to_string();
    }
    let listen = &settings.serve.listen;
    let port = listen_port(listen);
    let address = match listen.parse::<std::net::SocketAddr>().map(|a| a.ip()) {
        Ok(std::net::IpAddr::V6(v6)) if v6.is_unspecified() => "[::1]".to_string(),
        Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
        Ok(ip) if !ip.is_unspecified() => ip.to_string(),
        _ => "127.0.0.1".to_string(),
    };
    format!("{}://{address}:{port}", scheme(&repo.config))
}

/// Writes `text` beside `path`, runs `check` on it, and renames it into
/// place only if the check passed.
fn install_checked(
    path: &Path,
    text: &str,
    check: impl FnOnce(&Path) -> Result<(), OpsError>,
) -> Result<(), OpsError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| {
        OpsError::Usage(format!(
            "cannot create {} ({e}); create it, writable by the user bess runs as, or change [host] in bess.toml",
            dir.display()
        ))
    })?;
    let candidate = files::temp_beside(path);
    let outcome = files::write_private(&candidate, text.as_bytes(), 0o644)
        .map_err(OpsError::from)
        .and_then(|()| check(&candidate))
        .and_then(|()| Ok(files::commit(&candidate, path)?));
    if outcome.is_err() {
        let _ = std::fs::remove_file(&candidate);
    }
    outcome
}

/// Removes a platform's zone and its line in the include (platform destroy).
pub(crate) fn remove_platform_zone(
    repo: &mut Repo,
    platform: &PlatformRow,
) -> Result<(), OpsError> {
    let _host_lock = host_lock(&repo.config.layout)?;
    let host = repo.config.settings.host.clone();
    let mut change = HostChange {
        platform: platform.name.clone(),
        environment: String::new(),
        bound: false,
        files: Vec::new(),
        reloaded: Vec::new(),
    };
    write_include(repo, &host, None, Some(platform), &mut change)?;
    let path = zone_path(&host, platform);
    let removed = files::remove(&path)?;
    if removed || change.changed(&host.bind_include) {
        run_reload(&host.bind_reload, "bind")?;
    }
    Ok(())
}

/// What `bess host check` found.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    /// `nginx` or `apache`.
    pub proxy: String,
    /// Every tool found and every owned file in sync.
    pub ok: bool,
    pub tools: Vec<ToolStatus>,
    /// The files bess owns, or left behind.
    pub files: Vec<OwnedFile>,
}

/// A tool bess runs, and where it is.
#[derive(Debug, Clone, Serialize)]
pub struct ToolStatus {
    pub role: String,
    pub program: String,
    pub package: String,
    /// `None` when it is not installed.
    pub path: Option<String>,
}

/// A file bess owns, compared with what the catalog says it must hold.
#[derive(Debug, Clone, Serialize)]
pub struct OwnedFile {
    pub path: String,
    /// `zone`, `include` or the proxy's name.
    pub kind: String,
    /// The platform, or `platform/env`, it is for.
    pub owner: String,
    /// `in sync`, `differs`, `missing` or `stale` (bess wrote it, nothing needs it).
    pub status: String,
}

/// Which host tools exist and which configuration bess owns.
pub fn host_check(repo: &mut Repo) -> Result<HostReport, OpsError> {
    recover(repo)?;
    let host = repo.config.settings.host.clone();
    let mut tools: Vec<ToolStatus> = crate::env::host::tools(&host)
        .into_iter()
        .map(|t| ToolStatus {
            path: t.find().map(|p| p.display().to_string()),
            role: t.role.into(),
            program: t.program,
            package: t.package.into(),
        })
        .collect();
    tools.push(ToolStatus {
        role: "platform sources".into(),
        path: crate::env::host::find_program("git").map(|p| p.display().to_string()),
        program: "git".into(),
        package: "git".into(),
    });
    let mut files = expected_files(repo, &host)?;
    files.extend(stale_files(&host, &files));
    let ok = tools.iter().all(|t| t.path.is_some()) && files.iter().all(|f| f.status == "in sync");
    Ok(HostReport {
        proxy: host.proxy.name().into(),
        ok,
        tools,
        files,
    })
}

/// The files the catalog says bess wrote, each compared with what it
/// would write now (a zone's serial aside).
fn expected_files(repo: &Repo, host: &HostSettings) -> Result<Vec<OwnedFile>, OpsError> {
    let mut owned = Vec::new();
    let platforms = repo.catalog.reader().platforms()?;
    let mut origins = Vec::new();
    for platform in platforms.iter().filter(|p| p.zone_serial > 0) {
        origins.push(origin(platform));
        let envs = repo.catalog.reader().environments(Some(&platform.name))?;
        let zone = Zone {
            origin: origin(platform),
            serial: 0,
            proxy: host.proxy_address,
            environments: envs
                .into_iter()
                .filter(|e| e.bound)
                .map(|e| e.name)
                .collect(),
        };
        let path = zone_path(host, platform);
        let status = compare(&path, &zone.text(), true);
        owned.push(owned_file(&path, "zone", &platform.name, status));
    }
    if !origins.is_empty() {
        origins.sort();
        let text = include_file(&origins, &host.bind_zone_dir);
        let status = compare(&host.bind_include, &text, false);
        owned.push(owned_file(
            &host.bind_include,
            "include",
            "all platforms",
            status,
        ));
    }
    owned.extend(expected_proxy_files(repo, host)?);
    Ok(owned)
}

/// The proxy file of every bound environment.
fn expected_proxy_files(repo: &Repo, host: &HostSettings) -> Result<Vec<OwnedFile>, OpsError> {
    let mut owned = Vec::new();
    for env in repo
        .catalog
        .reader()
        .environments(None)?
        .iter()
        .filter(|e| e.bound)
    {
        let view = show_environment(repo, &env.platform, &env.name)?;
        let proxied = proxied(repo, host, &view)?;
        let text = match host.proxy {
            ProxyKind::Nginx => nginx_file(&proxied),
            ProxyKind::Apache => apache_file(&proxied),
        };
        let path = proxy_path(host, env);
        let owner = format!("{}/{}", env.platform, env.name);
        owned.push(owned_file(
            &path,
            host.proxy.name(),
            &owner,
            compare(&path, &text, false),
        ));
    }
    Ok(owned)
}

fn owned_file(path: &Path, kind: &str, owner: &str, status: &str) -> OwnedFile {
    OwnedFile {
        path: path.display().to_string(),
        kind: kind.into(),
        owner: owner.into(),
        status: status.into(),
    }
}

/// `in sync`, `differs` or `missing`; zones compare without their serial.
fn compare(path: &Path, expected: &str, zone: bool) -> &'static str {
    let Ok(found) = std::fs::read_to_string(path) else {
        return "missing";
    };
    let strip = |text: &str| -> String {
        text.lines()
            .filter(|l| !(zone && l.trim_end().ends_with("; serial")))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if strip(&found) == strip(expected) {
        "in sync"
    } else {
        "differs"
    }
}

/// Files bess wrote (they start with its header) that nothing needs now.
fn stale_files(host: &HostSettings, owned: &[OwnedFile]) -> Vec<OwnedFile> {
    let mut stale = Vec::new();
    for (dir, kind) in [
        (&host.bind_zone_dir, "zone"),
        (&host.proxy_dir().to_path_buf(), host.proxy.name()),
    ] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let known =
                owned.iter().any(|o| Path::new(&o.path) == path) || path == host.bind_include;
            if known || !written_by_bess(&path) {
                continue;
            }
            stale.push(owned_file(&path, kind, "", "stale"));
        }
    }
    stale
}

fn written_by_bess(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 32];
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let n = file.read(&mut head).unwrap_or(0);
    let head = String::from_utf8_lossy(&head[..n]);
    head.starts_with("; Written by bess") || head.starts_with("# Written by bess")
}
