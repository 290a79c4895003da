//! The bytes of `bess.json` and `.bess/users.json` as the repository
//! stands (`publish::store_manifest` defines them).

use super::TargetError;
use super::plan::json_file;
use crate::catalog::UserRow;
use crate::config::RepoConfig;
use crate::publish::store_manifest::{
    FORMAT, PublishedUser, PublishedUsers, StoreManifest, USERS_KEY,
};

/// `bess.json`: what the repository publishes.
pub fn manifest(config: &RepoConfig) -> Vec<u8> {
    json_file(&StoreManifest {
        format: FORMAT,
        channels: config.settings.channels.clone(),
        dists: config.dists.names().to_vec(),
        components: config.settings.components.clone(),
        archs: config.archs.names().to_vec(),
    })
}

/// `.bess/users.json`: every user whose password hash is argon2, by name,
/// and the names of those left out (the caller warns; their hash is
/// never shown).
pub fn users(rows: Vec<UserRow>) -> (Vec<u8>, Vec<String>) {
    let mut users = Vec::new();
    let mut left_out = Vec::new();
    for row in rows {
        // A frontend verifies argon2 only; any other hash would be a
        // weaker secret put into a bucket.
        if !row.password_hash.starts_with("$argon2") {
            left_out.push(row.name);
            continue;
        }
        users.push(PublishedUser {
            name: row.name,
            password_hash: row.password_hash,
            read: row.read,
            upload: row.upload,
            admin: row.admin,
        });
    }
    users.sort_by(|a, b| a.name.cmp(&b.name));
    let bytes = json_file(&PublishedUsers {
        format: FORMAT,
        users,
    });
    (bytes, left_out)
}

/// The users' bytes read from the catalog, warning on stderr about each
/// user left out: a user command or publish still succeeds, but that user
/// cannot log in on a frontend.
pub fn users_of(reader: &crate::catalog::Reader<'_>) -> Result<Vec<u8>, TargetError> {
    let (bytes, left_out) = users(reader.users()?);
    for name in left_out {
        eprintln!(
            "warning: user `{name}` has a password hash that is not argon2, so it is left out \
             of {USERS_KEY} and cannot log in on a frontend; set its password again with \
             `bess user passwd {name}`"
        );
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, hash: &str) -> UserRow {
        UserRow {
            name: name.into(),
            password_hash: hash.into(),
            read: vec!["prod".into()],
            upload: Vec::new(),
            admin: false,
            env: Vec::new(),
            environment: None,
        }
    }

    #[test]
    fn only_argon2_hashes_are_published_sorted_by_name() {
        let (bytes, left_out) = users(vec![
            row("zoe", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"),
            row("old", "$2b$12$bcrypt"),
            row("ann", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"),
        ]);
        assert_eq!(left_out, ["old"]);
        let parsed: PublishedUsers =
            crate::publish::store_manifest::parse(USERS_KEY, &bytes).unwrap();
        let names: Vec<&str> = parsed.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["ann", "zoe"]);
        assert!(!String::from_utf8(bytes).unwrap().contains("bcrypt"));
    }
}
