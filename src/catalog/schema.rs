//! Catalog migrations: an append-only list, tracked by `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry moves the schema from version `index` to `index + 1`. Never edit
/// a published entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: packages, their placements in channels/dists/components.
    "CREATE TABLE packages (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL,
        version     TEXT NOT NULL,   -- as written in the control file
        version_key TEXT NOT NULL,   -- identity: epoch 0 dropped
        arch        TEXT NOT NULL,
        source      TEXT NOT NULL,
        size        INTEGER NOT NULL,
        md5         TEXT NOT NULL,
        sha1        TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        sha512      TEXT NOT NULL,
        pool_name   TEXT NOT NULL,   -- <prefix>/<source>/<name>_<version>_<arch>.deb (older catalogs may hold <prefix>/<name>_…, until `bess repo publish --refresh` moves them)
        added_at    INTEGER NOT NULL,
        UNIQUE (name, version_key, arch),
        UNIQUE (pool_name)
    );
    CREATE INDEX packages_sha256 ON packages (sha256);
    -- Apart from packages, so listing 60,000 packages reads small rows.
    CREATE TABLE controls (
        package_id INTEGER PRIMARY KEY REFERENCES packages (id),
        control    TEXT NOT NULL     -- control paragraph, computed fields removed
    );
    CREATE TABLE placements (
        channel    TEXT NOT NULL,
        dist       TEXT NOT NULL,
        component  TEXT NOT NULL,
        package_id INTEGER NOT NULL REFERENCES packages (id),
        placed_at  INTEGER NOT NULL,
        PRIMARY KEY (channel, dist, component, package_id)
    ) WITHOUT ROWID;
    CREATE INDEX placements_package ON placements (package_id);",
    // 2: dists whose publication lags behind their placements.
    "CREATE TABLE pending_publications (
        channel TEXT NOT NULL,
        dist    TEXT NOT NULL,
        seq     INTEGER NOT NULL,   -- bumped on every change, so a publish
                                    -- clears only what its snapshot saw
        PRIMARY KEY (channel, dist)
    ) WITHOUT ROWID;",
    // 3: pool-tree files a publish must link or withdraw. The public tree
    //    is changed only by publishing, under the publish lock.
    "CREATE TABLE tree_queue (
        id        INTEGER PRIMARY KEY,
        channel   TEXT NOT NULL,
        component TEXT NOT NULL,
        package_id INTEGER NOT NULL REFERENCES packages (id)
    );
    CREATE INDEX tree_queue_channel ON tree_queue (channel, id);",
    // 4: users of `bess serve`; passwords as argon2id hashes only.
    "CREATE TABLE users (
        name          TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,   -- PHC string, argon2id
        read          TEXT NOT NULL,   -- channels, comma-separated
        upload        TEXT NOT NULL,   -- channels, comma-separated
        admin         INTEGER NOT NULL,
        created_at    INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // 5: versions a channel keeps whatever `bess repo prune` decides.
    "CREATE TABLE pins (
        channel     TEXT NOT NULL,
        package     TEXT NOT NULL,
        version     TEXT NOT NULL,   -- as the operator wrote it
        version_key TEXT NOT NULL,   -- identity: epoch 0 dropped
        pinned_at   INTEGER NOT NULL,
        PRIMARY KEY (channel, package, version_key)
    ) WITHOUT ROWID;",
    // 6: the audit log: every change, who made it and from where, written
    //    in the transaction of the change itself.
    "CREATE TABLE audit (
        id      INTEGER PRIMARY KEY,
        at      INTEGER NOT NULL,   -- seconds since the Unix epoch
        actor   TEXT NOT NULL,      -- local user name, or the HTTP user
        origin  TEXT NOT NULL,      -- 'cli' or 'http'
        action  TEXT NOT NULL,      -- ingest, promote, remove, prune, pin, ...
        channel TEXT,
        dist    TEXT,               -- comma-separated when one change spans dists
        package TEXT,
        version TEXT,
        arch    TEXT,
        detail  TEXT NOT NULL       -- JSON object; never a password or a hash of one
    );
    CREATE INDEX audit_package ON audit (package, id);
    CREATE INDEX audit_at ON audit (at);",
    // 7: Vagrant boxes and their placements in channels.
    "CREATE TABLE boxes (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL,   -- `name` or `org/name`
        version     TEXT NOT NULL,   -- as given
        version_key TEXT NOT NULL,   -- identity: Gem::Version canonical form
        provider    TEXT NOT NULL,
        arch        TEXT NOT NULL,
        size        INTEGER NOT NULL,
        sha256      TEXT NOT NULL,
        added_at    INTEGER NOT NULL,
        UNIQUE (name, version_key, provider, arch)
    );
    CREATE INDEX boxes_sha256 ON boxes (sha256);
    CREATE TABLE box_placements (
        channel   TEXT NOT NULL,
        box_id    INTEGER NOT NULL REFERENCES boxes (id),
        placed_at INTEGER NOT NULL,
        PRIMARY KEY (channel, box_id)
    ) WITHOUT ROWID;
    CREATE INDEX box_placements_box ON box_placements (box_id);",
    // 8: environments: platforms, their environments and machines, the
    //    packages installed in machines, and the users rights about them.
    "CREATE TABLE platforms (
        name        TEXT PRIMARY KEY,
        source      TEXT NOT NULL,      -- a directory or a git URL, as given
        source_kind TEXT NOT NULL,      -- 'git' or 'dir'
        revision    TEXT NOT NULL,      -- commit, or SHA-256 of the directory's snapshot
        spec        TEXT NOT NULL,      -- platform.toml at that revision
        domain      TEXT NOT NULL,
        ip_range    TEXT NOT NULL,      -- IPv4 CIDR; ranges never overlap
        channel     TEXT NOT NULL,      -- default channel of its environments
        zone_serial INTEGER NOT NULL DEFAULT 0,   -- 0: bess has written no zone yet
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE environments (
        platform    TEXT NOT NULL REFERENCES platforms (name),
        name        TEXT NOT NULL,
        channel     TEXT NOT NULL,
        sites       TEXT NOT NULL,      -- comma-separated
        revision    TEXT NOT NULL,      -- the platform's revision its workspace holds
        spec        TEXT NOT NULL,      -- platform.toml at that revision
        state       TEXT NOT NULL,      -- creating, ready, destroying
        user        TEXT NOT NULL,      -- its read-only user of bess serve
        bound       INTEGER NOT NULL DEFAULT 0,   -- bind-proxy in effect
        created_at  INTEGER NOT NULL,
        provisioned_at   INTEGER,
        provision_result TEXT,
        PRIMARY KEY (platform, name)
    ) WITHOUT ROWID;
    CREATE TABLE machines (
        platform    TEXT NOT NULL,
        environment TEXT NOT NULL,
        name        TEXT NOT NULL,
        address     INTEGER NOT NULL UNIQUE,   -- IPv4 as a number: one machine per address, whatever the process
        state       TEXT NOT NULL,
        PRIMARY KEY (platform, environment, name),
        FOREIGN KEY (platform, environment) REFERENCES environments (platform, name) ON DELETE CASCADE
    ) WITHOUT ROWID;
    CREATE TABLE installed_packages (
        platform    TEXT NOT NULL,
        environment TEXT NOT NULL,
        machine     TEXT NOT NULL,
        package     TEXT NOT NULL,
        version     TEXT NOT NULL,
        channel     TEXT NOT NULL,
        installed_at INTEGER NOT NULL,
        PRIMARY KEY (platform, environment, machine, package),
        FOREIGN KEY (platform, environment, machine)
            REFERENCES machines (platform, environment, name) ON DELETE CASCADE
    ) WITHOUT ROWID;
    ALTER TABLE users ADD COLUMN env TEXT NOT NULL DEFAULT '';   -- platforms, comma-separated: may create and destroy their environments
    ALTER TABLE users ADD COLUMN environment TEXT;               -- 'platform/env' owning this read-only user",
    // 9: what provisioning did in each machine, step by step, for the
    //    homepage and `bess env status`.
    "CREATE TABLE provision_steps (
        platform    TEXT NOT NULL,
        environment TEXT NOT NULL,
        machine     TEXT NOT NULL,
        seq         INTEGER NOT NULL,   -- order within the machine's last provisioning
        step        TEXT NOT NULL,      -- 'apt source', 'apt-get install myapp', 'shell provision/web.sh', ...
        status      TEXT NOT NULL,      -- running, ok, failed
        started_at  INTEGER NOT NULL,
        finished_at INTEGER,
        output      TEXT NOT NULL DEFAULT '',   -- the last lines the step printed
        PRIMARY KEY (platform, environment, machine, seq),
        FOREIGN KEY (platform, environment, machine)
            REFERENCES machines (platform, environment, name) ON DELETE CASCADE
    ) WITHOUT ROWID;",
    // 10: a zero epoch stays in the identity when the upstream version has
    //     a colon (`0:1:2.0` is not `1:2.0`); rows written before kept
    //     only what followed the epoch.
    "UPDATE packages SET version_key = '0:' || version_key
     WHERE instr(version, ':') > 0
       AND ltrim(substr(version, 1, instr(version, ':') - 1), '0') = ''
       AND instr(substr(version, instr(version, ':') + 1), ':') > 0;",
];

/// Brings the schema up to date; safe to call from every process.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
    }
    tx.commit()
}

/// The schema version this build writes.
pub fn latest() -> usize {
    MIGRATIONS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_10_keeps_a_zero_epoch_before_a_colon() {
        let mut conn = Connection::open_in_memory().unwrap();
        {
            let tx = conn.transaction().unwrap();
            for sql in &MIGRATIONS[..9] {
                tx.execute_batch(sql).unwrap();
            }
            tx.pragma_update(None, "user_version", 9).unwrap();
            tx.commit().unwrap();
        }
        // As bess wrote them before: the zero epoch dropped.
        for (name, version, key) in [
            ("colon", "0:1:2.0", "1:2.0"),
            ("zeros", "000:1:2.0-1", "1:2.0-1"),
            ("plain", "0:3.0", "3.0"),
            ("epoch", "1:2.0", "1:2.0"),
        ] {
            conn.execute(
                "INSERT INTO packages (name, version, version_key, arch, source, size, md5, sha1,
                 sha256, sha512, pool_name, added_at)
                 VALUES (?1, ?2, ?3, 'amd64', ?1, 1, '', '', '', '', ?1, 0)",
                [name, version, key],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        let key = |name: &str| -> String {
            conn.query_row(
                "SELECT version_key FROM packages WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(key("colon"), "0:1:2.0");
        assert_eq!(key("zeros"), "0:1:2.0-1");
        assert_eq!(key("plain"), "3.0");
        assert_eq!(key("epoch"), "1:2.0");
        // The same as the identity bess computes now.
        let now = crate::deb::Version::parse("000:1:2.0-1")
            .unwrap()
            .canonical();
        assert_eq!(key("zeros"), now);
    }
}
