//! `bess env init` and `bess env destroy`.
//!
//! Init is one transaction in effect: the catalog rows (the environment in
//! state `creating`, its machines' addresses, its user) commit first, in
//! one write; the workspace is then built in a staging directory and
//! renamed into place; the state becomes `ready` last. A failure undoes
//! all of it; a process killed anywhere leaves a `creating` row whose
//! lock is free, which the next command discards (see `recover`).

use super::super::users::users_changed;
use super::view::{EnvironmentView, show_environment};
use super::{
    CREATING, DESTROYING, READY, lock_env, lock_platform_shared, platform_dist, range_of,
    recover::{discard, recover},
    repo_url, require_environment, require_platform, stored_spec, user_name, workspace,
};
use crate::catalog::{EnvironmentRow, MachineRow, PlatformRow, UserRow, now};
use crate::env::platform::PlatformSpec;
use crate::env::source::{self, SourceKind};
use crate::env::variables::{EnvironmentPlan, Variables};
use crate::env::workspace::{fill, remove_tree};
use crate::ops::{OpsError, Repo};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::Path;

/// What `bess env init` (or `POST /api/v1/platforms/<p>/environments`) asks for.
#[derive(Debug, Clone, Default)]
pub struct EnvInitRequest {
    pub platform: String,
    /// As typed: a ticket id such as `PROJ-42` (lowercased).
    pub name: String,
    /// Sites to include; every site of the platform when absent.
    pub sites: Option<Vec<String>>,
    /// The channel to install from; the platform's when absent.
    pub channel: Option<String>,
}

/// Length of generated passwords: 24 characters of 62 is 142 bits.
const PASSWORD_LENGTH: usize = 24;

/// Creates an environment: catalog rows, workspace, rendered templates.
pub fn init_environment(
    repo: &mut Repo,
    request: &EnvInitRequest,
) -> Result<EnvironmentView, OpsError> {
    let name = crate::env::names::environment_name(&request.name)?;
    recover(repo)?;
    require_platform(repo, &request.platform)?;
    let _platform_lock = lock_platform_shared(repo, &request.platform)?;
    // Read again under the lock: the platform may have changed meanwhile.
    let platform = require_platform(repo, &request.platform)?;
    let spec = stored_spec(&platform.spec)?;
    let sites = choose_sites(&platform.name, &spec, request.sites.as_deref())?;
    let channel = request.channel.clone().unwrap_or(platform.channel.clone());
    repo.check_channel(&channel)?;
    let _env_lock = lock_env(repo, &platform.name, &name)?;
    let password = new_password();
    let env = EnvironmentRow {
        platform: platform.name.clone(),
        name: name.clone(),
        channel,
        sites,
        revision: platform.revision.clone(),
        spec: platform.spec.clone(),
        state: CREATING.into(),
        user: user_name(&platform.name, &name),
        bound: false,
        created_at: now(),
        provisioned_at: None,
        provision_result: None,
    };
    let addresses = reserve(repo, &platform, &env, &spec, &password)?;
    users_changed(repo)?;
    let built = build(repo, &platform, &env, &spec, &addresses, &password);
    if let Err(error) = built {
        discard(repo, &env, None)?;
        return Err(error);
    }
    mark_ready(repo, &env, &addresses)?;
    show_environment(repo, &env.platform, &env.name)
}

/// The last write: the environment is whole; the log says what it got.
fn mark_ready(
    repo: &mut Repo,
    env: &EnvironmentRow,
    addresses: &BTreeMap<String, Ipv4Addr>,
) -> Result<(), OpsError> {
    let writer = repo.catalog.write()?;
    writer.set_environment_state(&env.platform, &env.name, READY)?;
    let machines: Vec<_> = addresses
        .iter()
        .map(|(m, ip)| json!({"name": m, "ip": ip.to_string()}))
        .collect();
    let detail = json!({
        "platform": env.platform, "environment": env.name, "sites": env.sites,
        "revision": env.revision, "user": env.user, "machines": machines,
    });
    let entry = crate::catalog::AuditEntry {
        channel: Some(env.channel.clone()),
        detail: detail.to_string(),
        ..repo.actor.entry("env.init")
    };
    writer.append_audit(&entry)?;
    Ok(writer.commit()?)
}

/// The chosen sites, each checked against the platform.
fn choose_sites(
    platform: &str,
    spec: &PlatformSpec,
    wanted: Option<&[String]>,
) -> Result<Vec<String>, OpsError> {
    let all = spec.site_names();
    let Some(wanted) = wanted else {
        return Ok(all);
    };
    let mut chosen = Vec::new();
    for site in wanted {
        if !all.contains(site) {
            return Err(OpsError::Usage(format!(
                "--sites: `{site}` is not a site of platform {platform} (its sites: {})",
                all.join(", ")
            )));
        }
        if !chosen.contains(site) {
            chosen.push(site.clone());
        }
    }
    Ok(chosen)
}

/// A random password of letters and digits: safe in URLs, auth.conf,
/// shell and every template syntax without quoting.
fn new_password() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut password = String::with_capacity(PASSWORD_LENGTH);
    while password.len() < PASSWORD_LENGTH {
        // Rejection sampling keeps every character equally likely.
        let byte = (OsRng.next_u32() & 0xff) as usize;
        if byte < 248 {
            password.push(char::from(ALPHABET[byte % ALPHABET.len()]));
        }
    }
    password
}

/// The first write: the environment in state `creating`, an address for
/// every machine, and the environment's read-only user.
fn reserve(
    repo: &mut Repo,
    platform: &PlatformRow,
    env: &EnvironmentRow,
    spec: &PlatformSpec,
    password: &str,
) -> Result<BTreeMap<String, Ipv4Addr>, OpsError> {
    let user = UserRow {
        name: env.user.clone(),
        password_hash: crate::ops::hash_password(password)?,
        read: vec![env.channel.clone()],
        upload: Vec::new(),
        admin: false,
        env: Vec::new(),
        environment: Some(format!("{}/{}", env.platform, env.name)),
    };
    let writer = repo.catalog.write()?;
    if let Some(existing) = writer.reader().environment(&env.platform, &env.name)? {
        return Err(OpsError::Conflict(format!(
            "platform {} already has an environment `{}` (state {}); `bess env destroy {} {}` first",
            env.platform, env.name, existing.state, env.platform, env.name
        )));
    }
    writer.add_environment(env)?;
    let addresses = allocate(&writer, platform, env, spec)?;
    if !writer.add_user(&user)? {
        return Err(OpsError::Conflict(format!(
            "a user named `{}` already exists; environment {}/{} needs that name for its own \
             read-only user: remove that user, or choose another environment name",
            user.name, env.platform, env.name
        )));
    }
    writer.commit()?;
    Ok(addresses)
}

/// The lowest free address of the range for each machine. The writer's
/// transaction (BEGIN IMMEDIATE) keeps other processes out meanwhile, and
/// the UNIQUE address column would refuse a double allocation anyway.
fn allocate(
    writer: &crate::catalog::Writer<'_>,
    platform: &PlatformRow,
    env: &EnvironmentRow,
    spec: &PlatformSpec,
) -> Result<BTreeMap<String, Ipv4Addr>, OpsError> {
    let range = range_of(platform)?;
    let taken: HashSet<u32> = writer.reader().used_addresses()?.into_iter().collect();
    let mut free = range.machine_addresses().filter(|a| !taken.contains(a));
    let mut addresses = BTreeMap::new();
    for machine in &spec.machines {
        let Some(address) = free.next() else {
            let others = writer.reader().environments(Some(&platform.name))?.len() - 1;
            return Err(full_range(platform, others, spec.machines.len()));
        };
        writer.add_machine(&MachineRow {
            platform: env.platform.clone(),
            environment: env.name.clone(),
            name: machine.name.clone(),
            address: Ipv4Addr::from(address),
            state: "defined".into(),
        })?;
        addresses.insert(machine.name.clone(), Ipv4Addr::from(address));
    }
    Ok(addresses)
}

fn full_range(platform: &PlatformRow, others: usize, needed: usize) -> OpsError {
    let capacity = range_of(platform).map(|r| r.capacity()).unwrap_or(0);
    OpsError::Conflict(format!(
        "the IP range {} of platform {} is full: it has room for {capacity} machines, \
         {others} other environments hold addresses, and this one needs {needed}; destroy an \
         environment (`bess env list --platform {}`) or create the platform again with a wider --ip-range",
        platform.ip_range, platform.name, platform.name
    ))
}

/// The workspace, built in a staging directory and renamed into place.
fn build(
    repo: &Repo,
    platform: &PlatformRow,
    env: &EnvironmentRow,
    spec: &PlatformSpec,
    addresses: &BTreeMap<String, Ipv4Addr>,
    password: &str,
) -> Result<(), OpsError> {
    let vars = variables(repo, platform, env, spec, addresses, password)?;
    let ws = workspace(repo, &env.platform, &env.name);
    let staging = ws.staging()?;
    let built = export_source(repo, platform, &staging)
        .and_then(|()| Ok(fill(&staging, &vars, spec)?))
        .and_then(|()| {
            crate::pool::sync_filesystem(&staging).map_err(OpsError::io("flush", &staging))
        })
        .and_then(|()| {
            // Left by a process that died after renaming it into place.
            remove_tree(ws.root())?;
            std::fs::rename(&staging, ws.root())
                .map_err(OpsError::io("rename into place", ws.root()))?;
            crate::pool::fsync_dir(ws.platform_dir())
                .map_err(OpsError::io("flush", ws.platform_dir()))
        });
    if built.is_err() {
        let _ = remove_tree(&staging);
    }
    built
}

/// Every variable of an environment.
pub(super) fn variables(
    repo: &Repo,
    platform: &PlatformRow,
    env: &EnvironmentRow,
    spec: &PlatformSpec,
    addresses: &BTreeMap<String, Ipv4Addr>,
    password: &str,
) -> Result<Variables, OpsError> {
    let range = range_of(platform)?;
    let dist = platform_dist(repo, spec);
    let repo_url = repo_url(&repo.config, &range);
    let plan = EnvironmentPlan {
        platform: &platform.name,
        environment: &env.name,
        domain: &platform.domain,
        channel: &env.channel,
        spec,
        sites: &env.sites,
        addresses,
        gateway: range.host_address(),
        prefix: range.prefix(),
        dist: &dist,
        components: &repo.config.settings.components,
        repo_url: &repo_url,
        proxy_port: repo.config.settings.host.proxy_port,
        user: &env.user,
        password,
    };
    Ok(plan.variables()?)
}

/// The platform's files at its recorded revision, into `dest`. A store
/// deleted with the cache is fetched again into a scratch copy for this
/// once (`bess platform update` keeps a new one).
pub(super) fn export_source(
    repo: &Repo,
    platform: &PlatformRow,
    dest: &Path,
) -> Result<(), OpsError> {
    let kind = SourceKind::from_name(&platform.source_kind);
    let store = source::store_path(
        &repo.config.layout.platform_sources_dir(),
        &platform.name,
        kind,
    );
    if store.is_dir() {
        return Ok(source::export(kind, &store, &platform.revision, dest)?);
    }
    let tmp = repo.config.layout.tmp_dir();
    let scratch =
        tempfile::tempdir_in(&tmp).map_err(OpsError::io("create a directory in", &tmp))?;
    let given = source::PlatformSource {
        kind,
        location: platform.source.clone(),
    };
    let fetched = source::fetch(&given, &store, scratch.path())?;
    Ok(source::export(
        kind,
        fetched.copy(&store),
        &platform.revision,
        dest,
    )?)
}

/// Removes an environment: unbinds its names from the host's DNS and
/// proxy first (nothing is removed if that fails), then its workspace,
/// addresses, user and rows.
pub fn destroy_environment(repo: &mut Repo, platform: &str, env: &str) -> Result<(), OpsError> {
    recover(repo)?;
    let row = require_environment(repo, platform, env)?;
    let _platform_lock = lock_platform_shared(repo, platform)?;
    let lock = lock_env(repo, platform, &row.name)?;
    let row = require_environment(repo, platform, env)?;
    if row.bound {
        crate::ops::host::unbind_locked(repo, &row)?;
    }
    let writer = repo.catalog.write()?;
    writer.set_environment_state(&row.platform, &row.name, DESTROYING)?;
    writer.commit()?;
    discard(repo, &row, Some("env.destroy"))?;
    lock.remove_file();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_and_plain() {
        let a = new_password();
        assert_eq!(a.len(), PASSWORD_LENGTH);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, new_password());
    }

    #[test]
    fn sites_must_belong_to_the_platform() {
        let spec = PlatformSpec::parse(
            "[[machine]]\nname = \"web\"\nbox = \"b\"\n[[site]]\nname = \"v5\"\nmachine = \"web\"\nport = 80\n",
        )
        .unwrap();
        assert_eq!(choose_sites("paas", &spec, None).unwrap(), ["v5"]);
        let error = choose_sites("paas", &spec, Some(&["v6".into()]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`v6` is not a site of platform paas (its sites: v5)"),
            "{error}"
        );
    }
}
