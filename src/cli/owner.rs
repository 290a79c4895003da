//! Commands run as the repository's owner.
//!
//! A packaged repository belongs to the `bess` user, which `bess serve`
//! runs as. An operator running the CLI as root would otherwise leave
//! root-owned files behind (lock files, pool and public directories,
//! caches) that the service can then no longer write: so root becomes the
//! owner before touching anything, and any other user is refused with the
//! command that works.

use anyhow::{Context, bail};
use nix::unistd::{Gid, Uid, User};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Becomes the owner of the repository at `repo` when running as root;
/// refuses a user who is neither root nor the owner. A path that is no
/// repository (no `bess.toml`: a remote command run anywhere) is left
/// alone, and to the command to report if it needs one.
pub fn become_owner(repo: &Path, verbose: bool) -> anyhow::Result<()> {
    let is_repository = crate::config::Layout::new(repo).settings_file().exists();
    let meta = std::fs::metadata(repo);
    let (true, Ok(meta)) = (is_repository, meta) else {
        return Ok(());
    };
    let me = Uid::current();
    let owner = Uid::from_raw(meta.uid());
    if me == owner {
        return Ok(());
    }
    let user = User::from_uid(owner).ok().flatten();
    let name = user
        .as_ref()
        .map_or_else(|| format!("uid {owner}"), |u| u.name.clone());
    if !me.is_root() {
        bail!(
            "{} belongs to {name}, and files this command creates must too; run it as {name}: \
             runuser -u {name} -- bess {}",
            repo.display(),
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        );
    }
    switch(owner, Gid::from_raw(meta.gid()), user.as_ref())
        .with_context(|| format!("cannot become {name}, the owner of {}", repo.display()))?;
    if verbose {
        eprintln!("running as {name}, the owner of {}", repo.display());
    }
    Ok(())
}

/// Drops root for `uid`: its groups first, while still allowed to.
fn switch(uid: Uid, gid: Gid, user: Option<&User>) -> nix::Result<()> {
    match user {
        Some(user) => {
            let name =
                std::ffi::CString::new(user.name.as_str()).map_err(|_| nix::Error::EINVAL)?;
            nix::unistd::initgroups(&name, gid)?;
        }
        None => nix::unistd::setgroups(&[gid])?,
    }
    nix::unistd::setgid(gid)?;
    nix::unistd::setuid(uid)
}
