//! `bess user …`: accounts of `bess serve`, with argon2id password hashes.

use super::audit::record;
use super::{OpsError, Repo};
use crate::catalog::UserRow;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde_json::json;

/// A user to create.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub name: String,
    pub password: String,
    pub read: Vec<String>,
    pub upload: Vec<String>,
    pub admin: bool,
    /// Platforms whose environments the user may create and destroy.
    pub env: Vec<String>,
}

/// Shortest password accepted: these protect repositories reachable over a network.
const MIN_PASSWORD: usize = 12;

/// Creates a user; refuses a taken name, unknown channels or platforms and short passwords.
pub fn add_user(repo: &mut Repo, user: &NewUser) -> Result<UserRow, OpsError> {
    check_user_name(&user.name)?;
    for channel in user.read.iter().chain(&user.upload) {
        repo.check_channel(channel)?;
    }
    for platform in &user.env {
        if repo.catalog.reader().platform(platform)?.is_none() {
            return Err(OpsError::Usage(format!(
                "--env {platform}: no platform named `{platform}`; see `bess platform list`"
            )));
        }
    }
    let row = UserRow {
        name: user.name.clone(),
        password_hash: hash_password(&user.password)?,
        read: user.read.clone(),
        upload: user.upload.clone(),
        admin: user.admin,
        env: user.env.clone(),
        environment: None,
    };
    let writer = repo.catalog.write()?;
    insert_user(&writer, &repo.actor, &row)?;
    writer.commit()?;
    users_changed(repo)?;
    Ok(row)
}

/// Adds `row` inside a caller's transaction, with its audit entry; the
/// caller commits, then calls [`users_changed`].
pub(super) fn insert_user(
    writer: &crate::catalog::Writer<'_>,
    actor: &super::Actor,
    row: &UserRow,
) -> Result<(), OpsError> {
    if !writer.add_user(row)? {
        return Err(OpsError::Conflict(format!(
            "user `{}` already exists; change its password with `bess user passwd {}`",
            row.name, row.name
        )));
    }
    let detail = json!({
        "user": row.name, "read": row.read, "upload": row.upload, "admin": row.admin,
        "env": row.env, "environment": row.environment,
    });
    record(writer, actor, "user.add", detail)
}

/// Deletes user `name` inside a caller's transaction, with its audit
/// entry; `false` if there was none.
pub(super) fn delete_user(
    writer: &crate::catalog::Writer<'_>,
    actor: &super::Actor,
    name: &str,
) -> Result<bool, OpsError> {
    if !writer.remove_user(name)? {
        return Ok(false);
    }
    record(writer, actor, "user.remove", json!({ "user": name }))?;
    Ok(true)
}

/// Replaces a user's password.
pub fn set_password(repo: &mut Repo, name: &str, password: &str) -> Result<(), OpsError> {
    refuse_environment_user(repo, name, "passwd")?;
    let hash = hash_password(password)?;
    let writer = repo.catalog.write()?;
    if !writer.set_password(name, &hash)? {
        return Err(OpsError::NotFound(format!(
            "no user named `{name}`; see `bess user list`"
        )));
    }
    record(&writer, &repo.actor, "user.passwd", json!({ "user": name }))?;
    writer.commit()?;
    // Servers first: the truncation below may wait for their readers.
    users_changed(repo)?;
    // The old hash must not stay readable in the log or behind a reader.
    Ok(repo.catalog.truncate_wal()?)
}

/// Deletes a user.
pub fn remove_user(repo: &mut Repo, name: &str) -> Result<(), OpsError> {
    refuse_environment_user(repo, name, "remove")?;
    let writer = repo.catalog.write()?;
    if !delete_user(&writer, &repo.actor, name)? {
        return Err(OpsError::NotFound(format!(
            "no user named `{name}`; see `bess user list`"
        )));
    }
    writer.commit()?;
    users_changed(repo)?;
    Ok(repo.catalog.truncate_wal()?)
}

/// An environment's own user lives and dies with it: its password is in
/// the environment's workspace and rendered files.
fn refuse_environment_user(repo: &Repo, name: &str, command: &str) -> Result<(), OpsError> {
    let owner = repo
        .catalog
        .reader()
        .user(name)?
        .and_then(|u| u.environment);
    let Some(owner) = owner else {
        return Ok(());
    };
    let (platform, env) = owner.split_once('/').unwrap_or((&owner, ""));
    Err(OpsError::Conflict(format!(
        "user `{name}` belongs to environment {owner}, whose files hold its password; \
         `bess user {command}` would break them: `bess env destroy {platform} {env}` removes it"
    )))
}

/// Tells running servers that credentials they verified may be stale:
/// a removed user, an old password or old rights must stop working on the
/// very next request, not when a cache entry expires.
/// Publish targets get the new `.bess/users.json` at once, for the same
/// reason (their frontends read it from there).
pub(super) fn users_changed(repo: &Repo) -> Result<(), OpsError> {
    let serial = repo.config.layout.users_serial();
    let bumped = crate::serial::bump(&serial);
    super::targets::sync_users(repo);
    bumped.map_err(|e| {
        OpsError::Usage(format!(
            "the change is saved, but running `bess serve` processes could not be told \
             ({}: {e}); they accept the old credentials for up to a minute unless restarted",
            serial.display()
        ))
    })
}

/// Every user.
pub fn list_users(repo: &Repo) -> Result<Vec<UserRow>, OpsError> {
    Ok(repo.catalog.reader().users()?)
}

/// An argon2id hash (PHC string) of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, OpsError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(OpsError::Usage(format!(
            "the password is shorter than {MIN_PASSWORD} characters; choose a longer one"
        )));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| OpsError::Usage(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches a stored hash (argon2's comparison is constant-time).
pub fn verify_password(password: &str, stored: &str) -> bool {
    verify_password_in(password, stored, &mut Vec::new())
}

/// Largest argon2 memory cost a stored hash may ask for, in KiB: a
/// tampered hash must not make the server allocate without bound.
const MAX_MEMORY_KIB: u32 = 256 * 1024;

/// [`verify_password`] with argon2's working memory in `memory`, grown to
/// the hash's memory cost and kept by the caller: a server verifying on a
/// fixed set of threads then holds that memory once per thread, however
/// many logins arrive.
pub fn verify_password_in(password: &str, stored: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let algorithm = Algorithm::try_from(hash.algorithm);
    let version = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let (Ok(algorithm), Ok(version), Ok(params)) = (algorithm, version, Params::try_from(&hash))
    else {
        return false;
    };
    if params.m_cost() > MAX_MEMORY_KIB {
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut computed = [0u8; Output::MAX_LENGTH];
    let computed = &mut computed[..expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            computed,
            &mut memory[..blocks],
        )
        .is_ok()
        // `Output`'s comparison is constant-time.
        && Output::new(computed).is_ok_and(|computed| computed == expected)
}

fn check_user_name(name: &str) -> Result<(), OpsError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if valid {
        return Ok(());
    }
    Err(OpsError::Usage(format!(
        "user name `{name}` is not valid: use lowercase letters, digits, `-`, `_`, `.` (at most 64), starting with a letter or digit"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_never_contain_the_password() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse battery!", &hash));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn verifying_in_kept_memory_agrees_and_reuses_it() {
        let hash = hash_password("correct horse battery").unwrap();
        let mut memory = Vec::new();
        assert!(verify_password_in(
            "correct horse battery",
            &hash,
            &mut memory
        ));
        let blocks = memory.len();
        assert_eq!(blocks, Params::DEFAULT_M_COST as usize);
        assert!(!verify_password_in(
            "correct horse batterz",
            &hash,
            &mut memory
        ));
        assert_eq!(memory.len(), blocks, "the memory is reused, not grown");
        let greedy = hash.replace("m=19456", "m=4194304");
        assert!(!verify_password_in(
            "correct horse battery",
            &greedy,
            &mut memory
        ));
        assert_eq!(
            memory.len(),
            blocks,
            "an outsized cost is refused before allocating"
        );
    }

    #[test]
    fn short_passwords_and_odd_names_are_refused() {
        assert!(hash_password("short").is_err());
        assert!(check_user_name("ci-bot").is_ok());
        assert!(check_user_name("Root").is_err());
        assert!(check_user_name("a:b").is_err());
    }
}
