//! Platforms, environments and their machines. A machine's address is
//! UNIQUE across the whole catalog, so two processes allocating at once
//! can never both take one: the second transaction fails instead.

use super::{CatalogError, Reader, Writer};
use rusqlite::{OptionalExtension, Row, params};

/// A platform as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformRow {
    pub name: String,
    /// A directory or a git URL, as given to `bess platform init`.
    pub source: String,
    /// `git` or `dir`.
    pub source_kind: String,
    /// The commit, or the SHA-256 of a directory's snapshot.
    pub revision: String,
    /// `platform.toml` at that revision.
    pub spec: String,
    pub domain: String,
    /// IPv4 CIDR.
    pub ip_range: String,
    /// The channel its environments install from unless told otherwise.
    pub channel: String,
    /// The serial of the zone bess last wrote; 0 when none was written.
    pub zone_serial: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An environment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentRow {
    pub platform: String,
    pub name: String,
    pub channel: String,
    pub sites: Vec<String>,
    pub revision: String,
    pub spec: String,
    /// `creating`, `ready` or `destroying`.
    pub state: String,
    /// Its read-only user of `bess serve`.
    pub user: String,
    /// Whether `bess host bind-proxy` is in effect.
    pub bound: bool,
    pub created_at: i64,
    pub provisioned_at: Option<i64>,
    pub provision_result: Option<String>,
}

/// A machine of an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRow {
    pub platform: String,
    pub environment: String,
    pub name: String,
    pub address: std::net::Ipv4Addr,
    pub state: String,
}

/// A package version installed in a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledRow {
    pub machine: String,
    pub package: String,
    pub version: String,
    pub channel: String,
    pub installed_at: i64,
}

const PLATFORM_COLUMNS: &str = "name, source, source_kind, revision, spec, domain, ip_range, \
     channel, zone_serial, created_at, updated_at";

const ENVIRONMENT_COLUMNS: &str = "platform, name, channel, sites, revision, spec, state, user, \
     bound, created_at, provisioned_at, provision_result";

fn platform_row(r: &Row<'_>) -> rusqlite::Result<PlatformRow> {
    Ok(PlatformRow {
        name: r.get(0)?,
        source: r.get(1)?,
        source_kind: r.get(2)?,
        revision: r.get(3)?,
        spec: r.get(4)?,
        domain: r.get(5)?,
        ip_range: r.get(6)?,
        channel: r.get(7)?,
        zone_serial: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

fn environment_row(r: &Row<'_>) -> rusqlite::Result<EnvironmentRow> {
    let sites: String = r.get(3)?;
    Ok(EnvironmentRow {
        platform: r.get(0)?,
        name: r.get(1)?,
        channel: r.get(2)?,
        sites: sites
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        revision: r.get(4)?,
        spec: r.get(5)?,
        state: r.get(6)?,
        user: r.get(7)?,
        bound: r.get(8)?,
        created_at: r.get(9)?,
        provisioned_at: r.get(10)?,
        provision_result: r.get(11)?,
    })
}

fn machine_row(r: &Row<'_>) -> rusqlite::Result<MachineRow> {
    Ok(MachineRow {
        platform: r.get(0)?,
        environment: r.get(1)?,
        name: r.get(2)?,
        address: std::net::Ipv4Addr::from(r.get::<_, u32>(3)?),
        state: r.get(4)?,
    })
}

impl Reader<'_> {
    /// Every platform, by name.
    pub fn platforms(&self) -> Result<Vec<PlatformRow>, CatalogError> {
        let sql = format!("SELECT {PLATFORM_COLUMNS} FROM platforms ORDER BY name");
        let mut stmt = self.conn.prepare_cached(&sql).map_err(self.fail())?;
        let rows = stmt.query_map([], platform_row).map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// One platform, if known.
    pub fn platform(&self, name: &str) -> Result<Option<PlatformRow>, CatalogError> {
        let sql = format!("SELECT {PLATFORM_COLUMNS} FROM platforms WHERE name = ?1");
        self.conn
            .query_row(&sql, params![name], platform_row)
            .optional()
            .map_err(self.fail())
    }

    /// Environments of one platform, or of all, by platform and name.
    pub fn environments(
        &self,
        platform: Option<&str>,
    ) -> Result<Vec<EnvironmentRow>, CatalogError> {
        let sql = format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments
             WHERE ?1 IS NULL OR platform = ?1 ORDER BY platform, name"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(self.fail())?;
        let rows = stmt
            .query_map(params![platform], environment_row)
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// One environment, if known.
    pub fn environment(
        &self,
        platform: &str,
        name: &str,
    ) -> Result<Option<EnvironmentRow>, CatalogError> {
        let sql = format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE platform = ?1 AND name = ?2"
        );
        self.conn
            .query_row(&sql, params![platform, name], environment_row)
            .optional()
            .map_err(self.fail())
    }

    /// The machines of one environment, by name.
    pub fn machines(&self, platform: &str, env: &str) -> Result<Vec<MachineRow>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT platform, environment, name, address, state FROM machines
                 WHERE platform = ?1 AND environment = ?2 ORDER BY name",
            )
            .map_err(self.fail())?;
        let rows = stmt
            .query_map(params![platform, env], machine_row)
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// Every address a machine holds, in any platform.
    pub fn used_addresses(&self) -> Result<Vec<u32>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT address FROM machines ORDER BY address")
            .map_err(self.fail())?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }

    /// The packages installed in an environment's machines.
    pub fn installed_packages(
        &self,
        platform: &str,
        env: &str,
    ) -> Result<Vec<InstalledRow>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT machine, package, version, channel, installed_at FROM installed_packages
                 WHERE platform = ?1 AND environment = ?2 ORDER BY machine, package",
            )
            .map_err(self.fail())?;
        let rows = stmt
            .query_map(params![platform, env], |r| {
                Ok(InstalledRow {
                    machine: r.get(0)?,
                    package: r.get(1)?,
                    version: r.get(2)?,
                    channel: r.get(3)?,
                    installed_at: r.get(4)?,
                })
            })
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }
}

/// One step of a machine's last provisioning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    pub machine: String,
    pub seq: i64,
    pub step: String,
    /// `running`, `ok` or `failed`.
    pub status: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub output: String,
}

impl Reader<'_> {
    /// The steps of the last provisioning of an environment's machines.
    pub fn provision_steps(&self, platform: &str, env: &str) -> Result<Vec<StepRow>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT machine, seq, step, status, started_at, finished_at, output
                 FROM provision_steps WHERE platform = ?1 AND environment = ?2
                 ORDER BY machine, seq",
            )
            .map_err(self.fail())?;
        let rows = stmt
            .query_map(params![platform, env], |r| {
                Ok(StepRow {
                    machine: r.get(0)?,
                    seq: r.get(1)?,
                    step: r.get(2)?,
                    status: r.get(3)?,
                    started_at: r.get(4)?,
                    finished_at: r.get(5)?,
                    output: r.get(6)?,
                })
            })
            .map_err(self.fail())?;
        rows.collect::<Result<_, _>>().map_err(self.fail())
    }
}

impl Writer<'_> {
    /// Sets a machine's state.
    pub fn set_machine_state(
        &self,
        platform: &str,
        env: &str,
        machine: &str,
        state: &str,
    ) -> Result<(), CatalogError> {
        self.tx
            .execute(
                "UPDATE machines SET state = ?4 WHERE platform = ?1 AND environment = ?2 AND name = ?3",
                params![platform, env, machine, state],
            )
            .map_err(self.fail())?;
        Ok(())
    }

    /// Records the outcome of an environment's last provisioning.
    pub fn set_provisioned(
        &self,
        platform: &str,
        env: &str,
        at: i64,
        result: &str,
    ) -> Result<(), CatalogError> {
        self.tx
            .execute(
                "UPDATE environments SET provisioned_at = ?3, provision_result = ?4
                 WHERE platform = ?1 AND name = ?2",
                params![platform, env, at, result],
            )
            .map_err(self.fail())?;
        Ok(())
    }

    /// Records the version of a package installed in a machine.
    pub fn set_installed(
        &self,
        platform: &str,
        env: &str,
        row: &InstalledRow,
    ) -> Result<(), CatalogError> {
        self.tx
            .execute(
                "INSERT OR REPLACE INTO installed_packages
                 (platform, environment, machine, package, version, channel, installed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    platform,
                    env,
                    row.machine,
                    row.package,
                    row.version,
                    row.channel,
                    row.installed_at
                ],
            )
            .map_err(self.fail())?;
        Ok(())
    }

    /// Forgets a machine's provisioning steps: a new provisioning starts.
    pub fn clear_steps(
        &self,
        platform: &str,
        env: &str,
        machine: &str,
    ) -> Result<(), CatalogError> {
        self.tx
            .execute(
                "DELETE FROM provision_steps WHERE platform = ?1 AND environment = ?2 AND machine = ?3",
                params![platform, env, machine],
            )
            .map_err(self.fail())?;
        Ok(())
    }

    /// Adds or updates one provisioning step.
    pub fn put_step(&self, platform: &str, env: &str, step: &StepRow) -> Result<(), CatalogError> {
        self.tx
            .execute(
                "INSERT OR REPLACE INTO provision_steps
                 (platform, environment, machine, seq, step, status, started_at, finished_at, output)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    platform,
                    env,
                    step.machine,
                    step.seq,
                    step.step,
                    step.status,
                    step.started_at,
                    step.finished_at,
                    step.output
                ],
            )
            .map_err(self.fail())?;
        Ok(())
    }

    /// Adds a platform; `false` if the name is taken.
    pub fn add_platform(&self, p: &PlatformRow) -> Result<bool, CatalogError> {
        let sql = format!(
            "INSERT OR IGNORE INTO platforms ({PLATFORM_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        );
        let changed = self
            .tx
            .execute(
                &sql,
                params![
                    p.name,
                    p.source,
                    p.source_kind,
                    p.revision,
                    p.spec,
                    p.domain,
                    p.ip_range,
                    p.channel,
                    p.zone_serial,
                    p.created_at,
                    p.updated_at
                ],
            )
            .map_err(self.fail())?;
        Ok(changed > 0)
    }

    /// Records a new revision of a platform's source.
    pub fn set_platform_revision(
        &self,
        name: &str,
        revision: &str,
        spec: &str,
        at: i64,
    ) -> Result<(), CatalogError> {
        self.tx
            .execute(
                "UPDATE platforms SET revision = ?2, spec = ?3, updated_at = ?4 WHERE name = ?1",
                params![name, revision, spec, at],
            )
            .map_err(self.fail())?;
        Ok(())
    }

    /// Records the serial of the zone just written for a platform.
    pub fn set_zone_serial(&self, platform: &str, serial: u32) -> Result<(), CatalogError> {
        self.tx
            .execute(
                "UPDATE platforms SET zone_serial = ?2 WHERE name = ?1",
                params![platform, serial],
            )
            .map_err(self.fail())?;
        Ok(())
    }

    /// Deletes a platform without environments; `false` if there was none.
    pub fn remove_platform(&self, name: &str) -> Result<bool, CatalogError> {
        let changed = self
            .tx
            .execute("DELETE FROM platforms WHERE name = ?1", params![name])
            .map_err(self.fail())?;
        Ok(changed > 0)
    }

    /// Adds an environment; `false` if the platform already has one of this name.
    pub fn add_environment(&self, e: &EnvironmentRow) -> Result<bool, CatalogError> {
        let sql = format!(
            "INSERT OR IGNORE INTO environments ({ENVIRONMENT_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        );
        let changed = self
            .tx
            .execute(
                &sql,
                params![
                    e.platform,
                    e.name,
                    e.channel,
                    e.sites.join(","),
                    e.revision,
                    e.spec,
                    e.state,
                    e.user,
                    e.bound,
                    e.created_at,
                    e.provisioned_at,
                    e.provision_result
                ],
            )
            .map_err(self.fail())?;
        Ok(changed > 0)
    }

    /// Sets an environment's state.
    pub fn set_environment_state(
        &self,
        platform: &str,
        name: &str,
        state: &str,
    ) -> Result<(), CatalogError> {
        self.tx
            .execute(
                "UPDATE environments SET state = ?3 WHERE platform = ?1 AND name = ?2",
                params![platform, name, state],
            )
            .map_err(self.fail())?;
        Ok(())
    }

    /// Records whether bind-proxy is in effect for an environment.
    pub fn set_bound(&self, platform: &str, name: &str, bound: bool) -> Result<(), CatalogError> {
        self.tx
            .execute(
                "UPDATE environments SET bound = ?3 WHERE platform = ?1 AND name = ?2",
                params![platform, name, bound],
            )
            .map_err(self.fail())?;
        Ok(())
    }

    /// Deletes an environment with its machines (their addresses return
    /// to the pool) and their installed packages.
    pub fn remove_environment(&self, platform: &str, name: &str) -> Result<bool, CatalogError> {
        let changed = self
            .tx
            .execute(
                "DELETE FROM environments WHERE platform = ?1 AND name = ?2",
                params![platform, name],
            )
            .map_err(self.fail())?;
        Ok(changed > 0)
    }

    /// Adds a machine; fails if its address is taken.
    pub fn add_machine(&self, m: &MachineRow) -> Result<(), CatalogError> {
        self.tx
            .execute(
                "INSERT INTO machines (platform, environment, name, address, state)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    m.platform,
                    m.environment,
                    m.name,
                    u32::from(m.address),
                    m.state
                ],
            )
            .map_err(self.fail())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Catalog;
    use super::*;

    fn platform() -> PlatformRow {
        PlatformRow {
            name: "paas".into(),
            source: "/src".into(),
            source_kind: "dir".into(),
            revision: "abc".into(),
            spec: String::new(),
            domain: "example.test".into(),
            ip_range: "10.77.0.0/24".into(),
            channel: "preprod".into(),
            zone_serial: 0,
            created_at: 1,
            updated_at: 1,
        }
    }

    fn environment(name: &str) -> EnvironmentRow {
        EnvironmentRow {
            platform: "paas".into(),
            name: name.into(),
            channel: "preprod".into(),
            sites: vec!["v5".into(), "api".into()],
            revision: "abc".into(),
            spec: String::new(),
            state: "creating".into(),
            user: format!("env.paas.{name}"),
            bound: false,
            created_at: 2,
            provisioned_at: None,
            provision_result: None,
        }
    }

    fn machine(env: &str, address: [u8; 4]) -> MachineRow {
        MachineRow {
            platform: "paas".into(),
            environment: env.into(),
            name: "web".into(),
            address: address.into(),
            state: "defined".into(),
        }
    }

    #[test]
    fn addresses_are_unique_and_return_with_their_environment() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&dir.path().join("c.db")).unwrap();
        let w = catalog.write().unwrap();
        assert!(w.add_platform(&platform()).unwrap());
        assert!(!w.add_platform(&platform()).unwrap());
        assert!(w.add_environment(&environment("1161")).unwrap());
        assert!(!w.add_environment(&environment("1161")).unwrap());
        assert!(w.add_environment(&environment("1162")).unwrap());
        w.add_machine(&machine("1161", [10, 77, 0, 2])).unwrap();
        assert!(w.add_machine(&machine("1162", [10, 77, 0, 2])).is_err());
        w.add_machine(&machine("1162", [10, 77, 0, 3])).unwrap();
        w.commit().unwrap();
        let r = catalog.reader();
        assert_eq!(r.used_addresses().unwrap().len(), 2);
        assert_eq!(
            r.environment("paas", "1161").unwrap().unwrap().sites,
            ["v5", "api"]
        );
        assert_eq!(
            r.machines("paas", "1162").unwrap()[0].address,
            std::net::Ipv4Addr::new(10, 77, 0, 3)
        );
        let w = catalog.write().unwrap();
        assert!(w.remove_environment("paas", "1161").unwrap());
        w.commit().unwrap();
        let used = catalog.reader().used_addresses().unwrap();
        assert_eq!(used, [u32::from(std::net::Ipv4Addr::new(10, 77, 0, 3))]);
    }
}
