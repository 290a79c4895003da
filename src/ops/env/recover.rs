//! Finishing what dead processes left: an environment still `creating` or
//! `destroying` whose lock nobody holds is discarded whole (workspace,
//! staging copies, addresses, user, rows), and staging or trash
//! directories of environments nobody works on are deleted.
//!
//! Every `bess env`, `bess platform` and `bess host` command, and the
//! environment endpoints of the API, run this first.

use super::super::lock::NamedLock;
use super::super::users::{delete_user, users_changed};
use super::machines::STARTING;
use super::update::UPDATING;
use super::{CREATING, DESTROYING, env_lock_path, workspace};
use crate::catalog::EnvironmentRow;
use crate::env::workspace::remove_tree;
use crate::ops::{OpsError, Repo};
use serde_json::json;

/// Discards abandoned environments and leftovers; returns `platform/env`
/// of each environment discarded.
pub fn recover(repo: &mut Repo) -> Result<Vec<String>, OpsError> {
    let mut discarded = Vec::new();
    let envs = repo.catalog.reader().environments(None)?;
    let unfinished = envs
        .into_iter()
        .filter(|e| e.state == CREATING || e.state == DESTROYING);
    for env in unfinished {
        let path = env_lock_path(&repo.config.layout, &env.platform, &env.name);
        let Some(lock) = NamedLock::try_exclusive(&path)? else {
            continue; // its process is alive and at work
        };
        // Its process may have finished between the read and the lock.
        let now = repo
            .catalog
            .reader()
            .environment(&env.platform, &env.name)?;
        if let Some(env) = now.filter(|e| e.state == CREATING || e.state == DESTROYING) {
            discard(repo, &env, Some("env.recover"))?;
            discarded.push(format!("{}/{}", env.platform, env.name));
        }
        lock.remove_file();
    }
    interrupted(repo)?;
    sweep_leftovers(repo)?;
    Ok(discarded)
}

/// Environments left `starting` by a process that died become `failed`.
fn interrupted(repo: &mut Repo) -> Result<(), OpsError> {
    let envs = repo.catalog.reader().environments(None)?;
    for env in envs
        .into_iter()
        .filter(|e| e.state == STARTING || e.state == UPDATING)
    {
        let path = env_lock_path(&repo.config.layout, &env.platform, &env.name);
        let Some(_lock) = NamedLock::try_exclusive(&path)? else {
            continue; // its process is alive and at work
        };
        let now = repo
            .catalog
            .reader()
            .environment(&env.platform, &env.name)?;
        if let Some(env) = now.filter(|e| e.state == STARTING || e.state == UPDATING) {
            super::machines::mark_interrupted(repo, &env)?;
        }
    }
    Ok(())
}

/// Removes an environment's files and rows; the caller holds its lock.
/// `action` names the audit entry, if the removal is one to log.
pub(super) fn discard(
    repo: &mut Repo,
    env: &EnvironmentRow,
    action: Option<&str>,
) -> Result<(), OpsError> {
    // Machines first: their overlays and keys must not outlive the rows
    // that name them.
    super::machines::teardown(repo, env)?;
    let ws = workspace(repo, &env.platform, &env.name);
    if ws.root().exists() {
        let trash = ws.trash();
        std::fs::rename(ws.root(), &trash).map_err(OpsError::io("move aside", ws.root()))?;
    }
    for leftover in ws.leftovers() {
        remove_tree(&leftover)?;
    }
    let writer = repo.catalog.write()?;
    writer.remove_environment(&env.platform, &env.name)?;
    let actor = repo.actor.clone();
    match action {
        Some(action) => {
            delete_user(&writer, &actor, &env.user)?;
            let detail = json!({
                "platform": env.platform, "environment": env.name,
                "state": env.state, "user": env.user,
            });
            let entry = crate::catalog::AuditEntry {
                channel: Some(env.channel.clone()),
                detail: detail.to_string(),
                ..actor.entry(action)
            };
            writer.append_audit(&entry)?;
        }
        // An init undone at once: nothing of it was ever logged.
        None => {
            writer.remove_user(&env.user)?;
        }
    }
    writer.commit()?;
    users_changed(repo)
}

/// Staging and trash directories of environments whose lock is free.
fn sweep_leftovers(repo: &Repo) -> Result<(), OpsError> {
    let envs_dir = repo.config.layout.envs_dir();
    let Ok(platforms) = std::fs::read_dir(&envs_dir) else {
        return Ok(());
    };
    for platform in platforms.filter_map(Result::ok) {
        let Ok(entries) = std::fs::read_dir(platform.path()) else {
            continue;
        };
        let platform_name = platform.file_name().to_string_lossy().into_owned();
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(env) = leftover_owner(&name) else {
                continue;
            };
            let path = env_lock_path(&repo.config.layout, &platform_name, env);
            if let Some(_lock) = NamedLock::try_exclusive(&path)? {
                remove_tree(&entry.path())?;
            }
        }
    }
    Ok(())
}

/// `.tmp-<env>-<random>` or `.trash-<env>-<random>` → `<env>`.
fn leftover_owner(name: &str) -> Option<&str> {
    let rest = name
        .strip_prefix(".tmp-")
        .or_else(|| name.strip_prefix(".trash-"))?;
    let (env, _random) = rest.rsplit_once('-')?;
    (!env.is_empty()).then_some(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_name_their_environment() {
        assert_eq!(leftover_owner(".tmp-proj-42-a1B2c3"), Some("proj-42"));
        assert_eq!(leftover_owner(".trash-1161-00ff00ff00ff00ff"), Some("1161"));
        assert_eq!(leftover_owner("1161"), None);
        assert_eq!(leftover_owner(".tmp-"), None);
    }
}
