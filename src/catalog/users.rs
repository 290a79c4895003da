//! Users of the server and their rights, with password hashes (never passwords).

use super::{CatalogError, Reader, Writer, now};
use rusqlite::{OptionalExtension, params};

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserRow {
    pub name: String,
    #[serde(skip)]
    pub password_hash: String,
    /// Channels the user may read.
    pub read: Vec<String>,
    /// Channels the user may upload to.
    pub upload: Vec<String>,
    pub admin: bool,
    /// Platforms whose environments the user may create and destroy.
    pub env: Vec<String>,
    /// The environment (`platform/env`) this user was made for, if any:
    /// it goes when the environment does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

fn split(list: String) -> Vec<String> {
    list.split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

impl Reader<'_> {
    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<UserRow>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name, password_hash, read, upload, admin, env, environment FROM users ORDER BY name",
            )
            .map_err(self.fail())?;
        let rows = stmt.query_map([], user_row).map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// One user, if known.
    pub fn user(&self, name: &str) -> Result<Option<UserRow>, CatalogError> {
        self.conn
            .query_row(
                "SELECT name, password_hash, read, upload, admin, env, environment FROM users WHERE name = ?1",
                params![name],
                user_row,
            )
            .optional()
            .map_err(self.fail())
    }
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        name: r.get(0)?,
        password_hash: r.get(1)?,
        read: split(r.get(2)?),
        upload: split(r.get(3)?),
        admin: r.get(4)?,
        env: split(r.get(5)?),
        environment: r.get(6)?,
    })
}

impl Writer<'_> {
    /// Adds a user; `false` if the name is taken.
    pub fn add_user(&self, user: &UserRow) -> Result<bool, CatalogError> {
        let changed = self
            .tx
            .execute(
                "INSERT OR IGNORE INTO users
                   (name, password_hash, read, upload, admin, env, environment, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    user.name,
                    user.password_hash,
                    user.read.join(","),
                    user.upload.join(","),
                    user.admin,
                    user.env.join(","),
                    user.environment,
                    now()
                ],
            )
            .map_err(self.fail())?;
        Ok(changed > 0)
    }

    /// Replaces a user's password hash; `false` if there is no such user.
    pub fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, CatalogError> {
        let changed = self
            .tx
            .execute(
                "UPDATE users SET password_hash = ?2 WHERE name = ?1",
                params![name, password_hash],
            )
            .map_err(self.fail())?;
        Ok(changed > 0)
    }

    /// Deletes a user; `false` if there was none.
    pub fn remove_user(&self, name: &str) -> Result<bool, CatalogError> {
        let changed = self
            .tx
            .execute("DELETE FROM users WHERE name = ?1", params![name])
            .map_err(self.fail())?;
        Ok(changed > 0)
    }
}
