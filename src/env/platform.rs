//! `platform.toml`: what a platform is made of — its machines, the sites
//! they serve and the tools its homepage links to.
//!
//! The file sits at the root of the platform's source tree:
//!
//! ```toml
//! description = "The PaaS: API, back office and their database"
//! dist = "bookworm"
//!
//! [[machine]]
//! name = "web"
//! box = "acme/bookworm"
//! memory = 1024
//! packages = ["myapp"]
//! provision = [{ shell = "provision/web.sh" }]
//!
//! [[site]]
//! name = "v5"
//! machine = "web"
//! port = 80
//!
//! [[tool]]
//! name = "phpmyadmin"
//! title = "phpMyAdmin"
//! machine = "db"
//! port = 8080
//! path = "/phpmyadmin/"
//! ```

use super::EnvError;
use super::names::check_label;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file name at the root of every platform source.
pub const PLATFORM_FILE: &str = "platform.toml";

/// A parsed, validated `platform.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PlatformSpec {
    /// One line for `platform show` and the homepage.
    #[serde(default)]
    pub description: String,
    /// The dist machines install packages from (a name in `dists.list`);
    /// the first of `dists.list` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dist: Option<String>,
    #[serde(default, rename = "machine")]
    pub machines: Vec<MachineSpec>,
    #[serde(default, rename = "site")]
    pub sites: Vec<SiteSpec>,
    #[serde(default, rename = "tool")]
    pub tools: Vec<ToolSpec>,
    /// What runs the machines: `nspawn` (the default), `qemu` or `vagrant`.
    #[serde(default = "default_provider")]
    pub provider: String,
    /// The base image `bess platform build` makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSpec>,
}

/// `[image]`: the machines' base image, built by `bess platform build`
/// with mmdebstrap and published as a box of bess's own catalog.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageSpec {
    /// The box it is published as; machines name it in `box`.
    #[serde(rename = "box")]
    pub box_name: String,
    /// The Debian suite; the platform's dist when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    /// The Debian mirror; mmdebstrap's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// Debian packages in the image, beside the ones every machine needs
    /// (systemd, dbus, iproute2, openssh-server).
    #[serde(default)]
    pub packages: Vec<String>,
}

/// Scripts a machine runs around `bess env update`, relative to the
/// platform source; each runs in the machine with `sh`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Before anything changes: save what a rollback would need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// After the new versions are installed, before the services start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate: Option<String>,
    /// After the services start: a failure rolls the update back. An
    /// HTTP check of each site of the machine when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// After a rollback reinstalled the previous versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<String>,
}

impl Hooks {
    /// `(name, file)` of each hook given.
    pub fn given(&self) -> Vec<(&'static str, &str)> {
        [
            ("backup", &self.backup),
            ("migrate", &self.migrate),
            ("check", &self.check),
            ("restore", &self.restore),
        ]
        .into_iter()
        .filter_map(|(name, file)| file.as_deref().map(|f| (name, f)))
        .collect()
    }
}

/// A `[[machine]]`: one container or VM of every environment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MachineSpec {
    pub name: String,
    /// A box of bess's own catalog, `name` or `org/name`.
    #[serde(rename = "box")]
    pub box_name: String,
    /// Memory in MiB.
    #[serde(default = "default_memory")]
    pub memory: u32,
    #[serde(default = "default_cpus")]
    pub cpus: u32,
    /// Packages installed from the environment's channel.
    #[serde(default)]
    pub packages: Vec<String>,
    /// This machine's dist, when it differs from the platform's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dist: Option<String>,
    /// Steps run after the packages are installed, in order.
    #[serde(default)]
    pub provision: Vec<ProvisionStep>,
    /// systemd units `bess env update` stops before installing and starts after.
    #[serde(default)]
    pub services: Vec<String>,
    /// Scripts `bess env update` runs: backup, migrate, check, restore.
    #[serde(default)]
    pub hooks: Hooks,
}

/// One provisioning step: a shell script run in the machine, or an
/// Ansible playbook run from the host; paths are relative to the source root.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ansible: Option<String>,
}

impl ProvisionStep {
    /// The file the step runs.
    pub fn file(&self) -> &str {
        self.shell
            .as_deref()
            .or(self.ansible.as_deref())
            .unwrap_or("")
    }
}

/// A `[[site]]`: a web application reachable at `<site>.<env>.<platform>.<domain>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SiteSpec {
    pub name: String,
    /// The machine that serves it.
    pub machine: String,
    /// The port it listens on there.
    pub port: u16,
    /// Where the application starts on its host (`/`, or `/app/`).
    #[serde(default = "default_path")]
    pub path: String,
    /// What the homepage calls it; the name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// A `[[tool]]`: phpMyAdmin, RabbitMQ management, Elasticsearch HQ… — a
/// web interface the homepage links to, proxied like a site.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ToolSpec {
    /// A DNS label: the tool's host is `<tool>.<env>.<platform>.<domain>`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub machine: String,
    pub port: u16,
    #[serde(default = "default_path")]
    pub path: String,
}

fn default_memory() -> u32 {
    512
}

fn default_cpus() -> u32 {
    1
}

fn default_path() -> String {
    "/".into()
}

fn default_provider() -> String {
    "nspawn".into()
}

/// The providers a platform may name.
pub const PROVIDERS: [&str; 3] = ["nspawn", "qemu", "vagrant"];

impl PlatformSpec {
    /// Reads `platform.toml` at the root of `source`, checking that the
    /// files its steps name exist there.
    pub fn load(source: &Path) -> Result<PlatformSpec, EnvError> {
        let path = source.join(PLATFORM_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(EnvError::Invalid(vec![format!(
                    "the platform source has no {PLATFORM_FILE} at its root; every platform \
                     declares its machines and sites there (see conf/platforms/example/{PLATFORM_FILE})"
                )]));
            }
            Err(source) => return Err(EnvError::io("read", &path)(source)),
        };
        let spec = PlatformSpec::parse(&text)?;
        spec.check_files(source)?;
        Ok(spec)
    }

    /// Parses and validates the text of a `platform.toml`.
    pub fn parse(text: &str) -> Result<PlatformSpec, EnvError> {
        let spec: PlatformSpec = toml::from_str(text)
            .map_err(|e| EnvError::Invalid(vec![format!("{PLATFORM_FILE}: {e}")]))?;
        let problems = spec.problems();
        if problems.is_empty() {
            Ok(spec)
        } else {
            Err(EnvError::Invalid(
                problems
                    .into_iter()
                    .map(|p| format!("{PLATFORM_FILE}: {p}"))
                    .collect(),
            ))
        }
    }

    /// Every rule the file breaks, one sentence each.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.machines.is_empty() {
            problems.push("declare at least one [[machine]]".to_string());
        }
        let mut machines: Vec<&str> = Vec::new();
        for m in &self.machines {
            problems.extend(label_problem("[[machine]] name", &m.name));
            if machines.contains(&m.name.as_str()) {
                problems.push(format!("two [[machine]] tables are named `{}`", m.name));
            }
            machines.push(&m.name);
            problems.extend(machine_problems(m));
        }
        if !PROVIDERS.contains(&self.provider.as_str()) {
            problems.push(format!(
                "provider = {:?} is not one bess drives; use one of {}",
                self.provider,
                PROVIDERS.join(", ")
            ));
        }
        if let Some(image) = &self.image {
            problems.extend(image_problems(image));
        }
        let mut hosts: Vec<&str> = Vec::new();
        for (kind, name, machine, port, path) in self.endpoints() {
            let what = format!("[[{kind}]] `{name}`");
            problems.extend(label_problem(&format!("[[{kind}]] name"), name));
            if hosts.contains(&name) {
                problems.push(format!(
                    "{what}: another site or tool has this name, and each becomes a host name"
                ));
            }
            hosts.push(name);
            if !machines.contains(&machine) {
                problems.push(format!(
                    "{what}: machine = {machine:?} is not a [[machine]] name (machines: {})",
                    machines.join(", ")
                ));
            }
            if port == 0 {
                problems.push(format!("{what}: port = 0; give the port it listens on"));
            }
            if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                problems.push(format!(
                    "{what}: path = {path:?} must start with `/` and hold no spaces"
                ));
            }
        }
        problems
    }

    /// `(kind, name, machine, port, path)` of every site, then every tool.
    fn endpoints(&self) -> impl Iterator<Item = (&'static str, &str, &str, u16, &str)> {
        let sites = self.sites.iter().map(|s| {
            let s = (s.name.as_str(), s.machine.as_str(), s.port, s.path.as_str());
            ("site", s.0, s.1, s.2, s.3)
        });
        let tools = self.tools.iter().map(|t| {
            let t = (t.name.as_str(), t.machine.as_str(), t.port, t.path.as_str());
            ("tool", t.0, t.1, t.2, t.3)
        });
        sites.chain(tools)
    }

    /// The provisioning files must exist in the source, inside it.
    fn check_files(&self, source: &Path) -> Result<(), EnvError> {
        let mut problems = Vec::new();
        for m in &self.machines {
            let steps = m.provision.iter().map(ProvisionStep::file);
            let hooks = m.hooks.given().into_iter().map(|(_, file)| file);
            for file in steps.chain(hooks) {
                if !source.join(file).is_file() {
                    problems.push(format!(
                        "{PLATFORM_FILE}: [[machine]] `{}`: provision file {file:?} is not in the platform source",
                        m.name
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(EnvError::Invalid(problems))
        }
    }

    /// The machine named `name`.
    pub fn machine(&self, name: &str) -> Option<&MachineSpec> {
        self.machines.iter().find(|m| m.name == name)
    }

    /// Names of every site, in file order.
    pub fn site_names(&self) -> Vec<String> {
        self.sites.iter().map(|s| s.name.clone()).collect()
    }
}

fn label_problem(what: &str, value: &str) -> Option<String> {
    check_label(what, value).err().map(|e| e.to_string())
}

fn machine_problems(m: &MachineSpec) -> Vec<String> {
    let what = format!("[[machine]] `{}`", m.name);
    let mut problems = Vec::new();
    if let Err(e) = crate::boxes::check_name(&m.box_name) {
        problems.push(format!("{what}: box: {e}"));
    }
    if m.memory < 64 {
        problems.push(format!(
            "{what}: memory = {} MiB is too little; give at least 64",
            m.memory
        ));
    }
    if m.cpus == 0 {
        problems.push(format!("{what}: cpus = 0; give at least 1"));
    }
    for package in &m.packages {
        if let Err(e) = crate::deb::check_package_name(package) {
            problems.push(format!("{what}: packages: {e}"));
        }
    }
    for step in &m.provision {
        problems.extend(step_problem(&what, step));
    }
    for (hook, file) in m.hooks.given() {
        if !inside_source(file) {
            problems.push(format!(
                "{what}: hooks.{hook} = {file:?} must be a path inside the platform source, without `..`"
            ));
        }
    }
    for service in &m.services {
        let plain = !service.is_empty()
            && service
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
        if !plain {
            problems.push(format!(
                "{what}: services: {service:?} is not a systemd unit name (letters, digits, `-_.@`)"
            ));
        }
    }
    problems
}

fn image_problems(image: &ImageSpec) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = crate::boxes::check_name(&image.box_name) {
        problems.push(format!("[image] box: {e}"));
    }
    for package in &image.packages {
        if let Err(e) = crate::deb::check_package_name(package) {
            problems.push(format!("[image] packages: {e}"));
        }
    }
    let plain =
        |text: &str| !text.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control());
    if let Some(suite) = &image.suite
        && !plain(suite)
    {
        problems.push(format!(
            "[image] suite = {suite:?} must be one word, e.g. bookworm"
        ));
    }
    if let Some(mirror) = &image.mirror
        && !(plain(mirror) && (mirror.starts_with("http://") || mirror.starts_with("https://")))
    {
        problems.push(format!(
            "[image] mirror = {mirror:?} must be an http:// or https:// URL, e.g. http://deb.debian.org/debian"
        ));
    }
    problems
}

/// A relative path without `..`: inside the platform source.
fn inside_source(file: &str) -> bool {
    let relative = Path::new(file);
    !file.is_empty()
        && relative.is_relative()
        && relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

fn step_problem(what: &str, step: &ProvisionStep) -> Option<String> {
    let file = match (&step.shell, &step.ansible) {
        (Some(file), None) | (None, Some(file)) => file,
        _ => {
            return Some(format!(
                "{what}: each provision step is {{ shell = \"FILE\" }} or {{ ansible = \"PLAYBOOK\" }}, exactly one"
            ));
        }
    };
    (!inside_source(file)).then(|| {
        format!("{what}: provision file {file:?} must be a path inside the platform source, without `..`")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
description = "test"
dist = "bookworm"

[[machine]]
name = "web"
box = "acme/bookworm"
packages = ["myapp"]
provision = [{ shell = "provision/web.sh" }]

[[machine]]
name = "db"
box = "acme/bookworm"
memory = 2048

[[site]]
name = "v5"
machine = "web"
port = 80

[[tool]]
name = "phpmyadmin"
title = "phpMyAdmin"
machine = "db"
port = 8080
path = "/phpmyadmin/"
"#;

    #[test]
    fn a_good_file_parses_with_defaults() {
        let spec = PlatformSpec::parse(GOOD).unwrap();
        assert_eq!(spec.machines.len(), 2);
        assert_eq!(spec.machines[0].memory, 512);
        assert_eq!(spec.machines[1].memory, 2048);
        assert_eq!(spec.sites[0].path, "/");
        assert_eq!(spec.tools[0].title.as_deref(), Some("phpMyAdmin"));
        assert_eq!(spec.machines[0].provision[0].file(), "provision/web.sh");
    }

    fn problems_of(text: &str) -> String {
        match PlatformSpec::parse(text) {
            Err(EnvError::Invalid(lines)) => lines.join("\n"),
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn each_broken_rule_is_named() {
        for (from, to, complaint) in [
            (
                "machine = \"web\"\nport = 80",
                "machine = \"wbe\"\nport = 80",
                "machine = \"wbe\" is not a [[machine]] name (machines: web, db)",
            ),
            (
                "name = \"v5\"",
                "name = \"V5\"",
                "`V5` is not a valid [[site]] name",
            ),
            (
                "name = \"v5\"",
                "name = \"phpmyadmin\"",
                "another site or tool has this name",
            ),
            (
                "name = \"db\"",
                "name = \"web\"",
                "two [[machine]] tables are named `web`",
            ),
            ("port = 80", "port = 0", "port = 0"),
            (
                "packages = [\"myapp\"]",
                "packages = [\"My_App\"]",
                "packages: `My_App`",
            ),
            ("provision/web.sh", "../web.sh", "without `..`"),
            ("{ shell = \"provision/web.sh\" }", "{ }", "exactly one"),
            (
                "memory = 2048",
                "memory = 2048\ndisk = 3",
                "unknown field `disk`",
            ),
            (
                "path = \"/phpmyadmin/\"",
                "path = \"phpmyadmin\"",
                "must start with `/`",
            ),
        ] {
            assert!(GOOD.contains(from), "{from}");
            let problems = problems_of(&GOOD.replacen(from, to, 1));
            assert!(problems.contains(complaint), "{to}: {problems}");
            assert!(problems.starts_with("platform.toml: "), "{problems}");
        }
    }

    #[test]
    fn a_source_without_the_file_or_a_step_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = PlatformSpec::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("no platform.toml at its root"), "{error}");
        std::fs::write(dir.path().join(PLATFORM_FILE), GOOD).unwrap();
        let error = PlatformSpec::load(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("\"provision/web.sh\" is not in the platform source"),
            "{error}"
        );
        std::fs::create_dir(dir.path().join("provision")).unwrap();
        std::fs::write(dir.path().join("provision/web.sh"), "#!/bin/sh\n").unwrap();
        PlatformSpec::load(dir.path()).unwrap();
    }
}
