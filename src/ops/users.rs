//! `bess user …`: accounts of `bess serve`, with argon2id password hashes.

use super::audit::record;
use super::{OpsError, Repo};
use crate::catalog::UserRow;
use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use serde_json::json;

/// A user to create.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub name: String,
    pub password: String,
    pub read: Vec<String>,
    pub upload: Vec<String>,
    pub admin: bool,
}

/// Shortest password accepted: these protect repositories reachable over a network.
const MIN_PASSWORD: usize = 12;

/// Creates a user; refuses a taken name, unknown channels and short passwords.
pub fn add_user(repo: &mut Repo, user: &NewUser) -> Result<UserRow, OpsError> {
    check_user_name(&user.name)?;
    for channel in user.read.iter().chain(&user.upload) {
        repo.check_channel(channel)?;
    }
    let row = UserRow {
        name: user.name.clone(),
        password_hash: hash_password(&user.password)?,
        read: user.read.clone(),
        upload: user.upload.clone(),
        admin: user.admin,
    };
    let writer = repo.catalog.write()?;
    if !writer.add_user(&row)? {
        return Err(OpsError::Conflict(format!(
            "user `{}` already exists; change its password with `bess user passwd {}`",
            user.name, user.name
        )));
    }
    let detail = json!({
        "user": row.name, "read": row.read, "upload": row.upload, "admin": row.admin,
    });
    record(&writer, &repo.actor, "user.add", detail)?;
    writer.commit()?;
    Ok(row)
}

/// Replaces a user's password.
pub fn set_password(repo: &mut Repo, name: &str, password: &str) -> Result<(), OpsError> {
    let hash = hash_password(password)?;
    let writer = repo.catalog.write()?;
    if !writer.set_password(name, &hash)? {
        return Err(OpsError::NotFound(format!(
            "no user named `{name}`; see `bess user list`"
        )));
    }
    record(&writer, &repo.actor, "user.passwd", json!({ "user": name }))?;
    writer.commit()?;
    Ok(())
}

/// Deletes a user.
pub fn remove_user(repo: &mut Repo, name: &str) -> Result<(), OpsError> {
    let writer = repo.catalog.write()?;
    if !writer.remove_user(name)? {
        return Err(OpsError::NotFound(format!(
            "no user named `{name}`; see `bess user list`"
        )));
    }
    record(&writer, &repo.actor, "user.remove", json!({ "user": name }))?;
    writer.commit()?;
    Ok(())
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
    PasswordHash::new(stored).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
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
    fn short_passwords_and_odd_names_are_refused() {
        assert!(hash_password("short").is_err());
        assert!(check_user_name("ci-bot").is_ok());
        assert!(check_user_name("Root").is_err());
        assert!(check_user_name("a:b").is_err());
    }
}
