//! The variables of an environment: everything its templates may use,
//! written to `etc/bess/variables.json` and handed to minijinja.
//!
//! Keys are part of bess's interface with platform authors (templates
//! name them), so they change only by addition.

use super::EnvError;
use super::names::host_name;
use super::platform::PlatformSpec;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Where the signing key goes on a machine, for `signed-by`.
pub const KEYRING: &str = "/etc/apt/keyrings/bess.gpg";

/// What an environment is made of, as the variables are computed from it.
#[derive(Debug, Clone)]
pub struct EnvironmentPlan<'a> {
    pub platform: &'a str,
    pub environment: &'a str,
    pub domain: &'a str,
    pub channel: &'a str,
    pub spec: &'a PlatformSpec,
    /// The sites chosen for this environment.
    pub sites: &'a [String],
    /// Each machine's address.
    pub addresses: &'a BTreeMap<String, Ipv4Addr>,
    /// The host's address on the machines' network, and its prefix length.
    pub gateway: Ipv4Addr,
    pub prefix: u8,
    /// The dist of machines without their own; the components to install from.
    pub dist: &'a str,
    pub components: &'a [String],
    /// Base URL machines reach `bess serve` at, without a trailing slash.
    pub repo_url: &'a str,
    /// The proxy's port, written into URLs unless it is 80.
    pub proxy_port: u16,
    pub user: &'a str,
    pub password: &'a str,
}

/// `etc/bess/variables.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Variables {
    pub environment: String,
    pub platform: String,
    pub domain: String,
    pub channel: String,
    pub dist: String,
    /// `<environment>.<platform>.<domain>`: the homepage's host.
    pub host: String,
    pub homepage_url: String,
    pub repo_url: String,
    /// One-line apt source of the environment's channel.
    pub apt_source: String,
    /// The `auth.conf.d` line with the environment's credential.
    pub apt_auth: String,
    pub key_url: String,
    /// Where the key goes on machines (`signed-by` of `apt_source`).
    pub keyring: String,
    pub box_catalog_url: String,
    pub credential: Credential,
    /// The host's address on the machines' network.
    pub gateway: String,
    pub netmask: String,
    pub machines: BTreeMap<String, MachineVariables>,
    pub sites: BTreeMap<String, EndpointVariables>,
    pub tools: BTreeMap<String, EndpointVariables>,
}

/// The environment's read-only user of `bess serve`.
#[derive(Debug, Clone, Serialize)]
pub struct Credential {
    pub user: String,
    pub password: String,
}

/// One machine.
#[derive(Debug, Clone, Serialize)]
pub struct MachineVariables {
    pub name: String,
    pub ip: String,
    #[serde(rename = "box")]
    pub box_name: String,
    /// The box's catalog in the environment's channel (no credentials).
    pub box_url: String,
    pub memory: u32,
    pub cpus: u32,
    pub dist: String,
    pub packages: Vec<String>,
}

/// One site or tool.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointVariables {
    pub name: String,
    pub title: String,
    /// `<name>.<environment>.<platform>.<domain>`.
    pub host: String,
    pub url: String,
    pub machine: String,
    pub ip: String,
    pub port: u16,
    pub path: String,
}

impl EnvironmentPlan<'_> {
    /// Every variable, or the first name longer than DNS allows.
    pub fn variables(&self) -> Result<Variables, EnvError> {
        let host = host_name(&[self.environment, self.platform, self.domain])?;
        let channel_url = format!("{}/{}", self.repo_url, self.channel);
        let box_catalog_url = format!("{channel_url}/boxes");
        Ok(Variables {
            environment: self.environment.into(),
            platform: self.platform.into(),
            domain: self.domain.into(),
            channel: self.channel.into(),
            dist: self.dist.into(),
            homepage_url: format!("http://{host}{}/", self.port_suffix()),
            host,
            repo_url: self.repo_url.into(),
            apt_source: format!(
                "deb [signed-by={KEYRING}] {channel_url} {} {}",
                self.dist,
                self.components.join(" ")
            ),
            apt_auth: format!(
                "machine {channel_url} login {} password {}",
                self.user, self.password
            ),
            key_url: format!("{}/key.gpg", self.repo_url),
            keyring: KEYRING.into(),
            credential: Credential {
                user: self.user.into(),
                password: self.password.into(),
            },
            gateway: self.gateway.to_string(),
            netmask: Ipv4Addr::from(u32::MAX << (32 - u32::from(self.prefix))).to_string(),
            machines: self.machines(&box_catalog_url),
            sites: self.sites()?,
            tools: self.tools()?,
            box_catalog_url,
        })
    }

    fn port_suffix(&self) -> String {
        match self.proxy_port {
            80 => String::new(),
            port => format!(":{port}"),
        }
    }

    fn ip_of(&self, machine: &str) -> String {
        self.addresses
            .get(machine)
            .map(Ipv4Addr::to_string)
            .unwrap_or_default()
    }

    fn machines(&self, box_catalog_url: &str) -> BTreeMap<String, MachineVariables> {
        let machines = self.spec.machines.iter().map(|m| {
            let vars = MachineVariables {
                name: m.name.clone(),
                ip: self.ip_of(&m.name),
                box_name: m.box_name.clone(),
                box_url: format!("{box_catalog_url}/{}", m.box_name),
                memory: m.memory,
                cpus: m.cpus,
                dist: m.dist.clone().unwrap_or_else(|| self.dist.into()),
                packages: m.packages.clone(),
            };
            (m.name.clone(), vars)
        });
        machines.collect()
    }

    fn sites(&self) -> Result<BTreeMap<String, EndpointVariables>, EnvError> {
        let chosen = self
            .spec
            .sites
            .iter()
            .filter(|s| self.sites.contains(&s.name));
        chosen
            .map(|s| self.endpoint(&s.name, s.title.as_deref(), &s.machine, s.port, &s.path))
            .collect()
    }

    fn tools(&self) -> Result<BTreeMap<String, EndpointVariables>, EnvError> {
        let tools = self.spec.tools.iter();
        tools
            .map(|t| self.endpoint(&t.name, t.title.as_deref(), &t.machine, t.port, &t.path))
            .collect()
    }

    fn endpoint(
        &self,
        name: &str,
        title: Option<&str>,
        machine: &str,
        port: u16,
        path: &str,
    ) -> Result<(String, EndpointVariables), EnvError> {
        let host = host_name(&[name, self.environment, self.platform, self.domain])?;
        let vars = EndpointVariables {
            name: name.into(),
            title: title.unwrap_or(name).into(),
            url: format!("http://{host}{}{path}", self.port_suffix()),
            host,
            machine: machine.into(),
            ip: self.ip_of(machine),
            port,
            path: path.into(),
        };
        Ok((name.to_string(), vars))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SPEC: &str = r#"
dist = "bookworm"
[[machine]]
name = "web"
box = "acme/bookworm"
packages = ["myapp"]
[[site]]
name = "v5"
machine = "web"
port = 8080
[[site]]
name = "api"
machine = "web"
port = 8081
path = "/v1/"
[[tool]]
name = "phpmyadmin"
title = "phpMyAdmin"
machine = "web"
port = 8082
"#;

    #[test]
    fn variables_name_every_host_and_url() {
        let spec = PlatformSpec::parse(SPEC).unwrap();
        let addresses = BTreeMap::from([("web".to_string(), Ipv4Addr::new(10, 77, 0, 2))]);
        let sites = vec!["api".to_string()];
        let plan = EnvironmentPlan {
            platform: "paas",
            environment: "1161",
            domain: "example.test",
            channel: "preprod",
            spec: &spec,
            sites: &sites,
            addresses: &addresses,
            gateway: Ipv4Addr::new(10, 77, 0, 1),
            prefix: 24,
            dist: "bookworm",
            components: &["main".to_string()],
            repo_url: "http://10.77.0.1:8080",
            proxy_port: 8088,
            user: "env.paas.1161",
            password: "secretsecret",
        };
        let v = plan.variables().unwrap();
        assert_eq!(v.host, "1161.paas.example.test");
        assert_eq!(v.homepage_url, "http://1161.paas.example.test:8088/");
        assert_eq!(v.sites.len(), 1, "only the chosen sites");
        assert_eq!(
            v.sites["api"].url,
            "http://api.1161.paas.example.test:8088/v1/"
        );
        assert_eq!(v.sites["api"].ip, "10.77.0.2");
        assert_eq!(v.tools["phpmyadmin"].title, "phpMyAdmin");
        assert_eq!(
            v.apt_source,
            "deb [signed-by=/etc/apt/keyrings/bess.gpg] http://10.77.0.1:8080/preprod bookworm main"
        );
        assert_eq!(
            v.apt_auth,
            "machine http://10.77.0.1:8080/preprod login env.paas.1161 password secretsecret"
        );
        assert_eq!(
            v.machines["web"].box_url,
            "http://10.77.0.1:8080/preprod/boxes/acme/bookworm"
        );
        assert_eq!(v.netmask, "255.255.255.0");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["machines"]["web"]["box"], "acme/bookworm");
        assert_eq!(json["credential"]["user"], "env.paas.1161");
    }
}
