//! `[host]` and `[environments]` of `bess.toml`: where bess writes the
//! host's DNS and reverse-proxy files for environments, which tools check
//! and reload them, and how machines reach `bess serve`.

use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

/// The reverse proxy that routes `<site>.<env>.<platform>.<domain>` to machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyKind {
    Nginx,
    Apache,
}

impl ProxyKind {
    /// `nginx` or `apache`, as written in `bess.toml`.
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Nginx => "nginx",
            ProxyKind::Apache => "apache",
        }
    }
}

/// The `[host]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct HostSettings {
    /// Which reverse proxy `bess host bind-proxy` configures.
    pub proxy: ProxyKind,
    /// The address environment names resolve to: where the proxy listens.
    pub proxy_address: IpAddr,
    /// The port the proxy listens on for environments' names.
    pub proxy_port: u16,
    /// Where the proxy reaches `bess serve` for environment homepages;
    /// by default `[serve] listen` (a wildcard address read as loopback).
    pub serve_url: Option<String>,
    /// One zone file per platform, `<platform>.<domain>.zone`.
    pub bind_zone_dir: PathBuf,
    /// The file of `zone` statements bess owns; named.conf includes it.
    pub bind_include: PathBuf,
    /// One nginx file per environment (include `*.conf` of it in `http {}`).
    pub nginx_sites_dir: PathBuf,
    /// One apache file per environment (`IncludeOptional` `*.conf` of it).
    pub apache_sites_dir: PathBuf,
    /// Apache's modules, loaded by the configuration that checks a candidate.
    pub apache_modules_dir: PathBuf,
    /// Run after zones changed and passed their checks; `[]` runs nothing.
    pub bind_reload: Vec<String>,
    /// Run after proxy files changed and passed their check; by default
    /// `nginx -s reload` or `apache2ctl graceful`; `[]` runs nothing.
    pub proxy_reload: Option<Vec<String>>,
    /// The checking tools: a path, or a name looked up in PATH and /usr/sbin.
    pub named_checkzone: String,
    pub named_checkconf: String,
    pub nginx: String,
    pub apache2: String,
}

impl Default for HostSettings {
    fn default() -> HostSettings {
        HostSettings {
            proxy: ProxyKind::Nginx,
            proxy_address: IpAddr::from([127, 0, 0, 1]),
            proxy_port: 80,
            serve_url: None,
            bind_zone_dir: "/var/lib/bind/bess".into(),
            bind_include: "/var/lib/bind/bess/named.conf".into(),
            nginx_sites_dir: "/etc/nginx/bess".into(),
            apache_sites_dir: "/etc/apache2/bess".into(),
            apache_modules_dir: "/usr/lib/apache2/modules".into(),
            bind_reload: vec!["rndc".into(), "reload".into()],
            proxy_reload: None,
            named_checkzone: "named-checkzone".into(),
            named_checkconf: "named-checkconf".into(),
            nginx: "nginx".into(),
            apache2: "apache2".into(),
        }
    }
}

impl HostSettings {
    /// The command that reloads the configured proxy.
    pub fn proxy_reload_command(&self) -> Vec<String> {
        if let Some(command) = &self.proxy_reload {
            return command.clone();
        }
        let words: &[&str] = match self.proxy {
            ProxyKind::Nginx => &["nginx", "-s", "reload"],
            ProxyKind::Apache => &["apache2ctl", "graceful"],
        };
        words.iter().map(|w| w.to_string()).collect()
    }

    /// The directory of the configured proxy's files.
    pub fn proxy_dir(&self) -> &std::path::Path {
        match self.proxy {
            ProxyKind::Nginx => &self.nginx_sites_dir,
            ProxyKind::Apache => &self.apache_sites_dir,
        }
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        if self.proxy_port == 0 {
            return Err("[host] proxy-port = 0; give the port the proxy listens on".into());
        }
        for (key, path) in [
            ("bind-zone-dir", &self.bind_zone_dir),
            ("bind-include", &self.bind_include),
            ("nginx-sites-dir", &self.nginx_sites_dir),
            ("apache-sites-dir", &self.apache_sites_dir),
            ("apache-modules-dir", &self.apache_modules_dir),
        ] {
            if !path.is_absolute() {
                return Err(format!("[host] {key} = {path:?} must be an absolute path"));
            }
        }
        let reloads = [
            ("bind-reload", Some(&self.bind_reload)),
            ("proxy-reload", self.proxy_reload.as_ref()),
        ];
        for (key, command) in reloads {
            if command.is_some_and(|c| c.first().is_some_and(|w| w.trim().is_empty())) {
                return Err(format!(
                    "[host] {key} starts with an empty word; write the command as [\"program\", \"arg\", …], or [] to run nothing"
                ));
            }
        }
        super::settings::check_url("[host] serve-url", self.serve_url.as_deref())
    }
}

/// The `[environments]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct EnvironmentSettings {
    /// The URL machines install packages from (apt sources, box catalog,
    /// key); by default `bess serve`'s port at the host's address on the
    /// platform's network (the first address of its range).
    pub repo_url: Option<String>,
}

impl EnvironmentSettings {
    pub(super) fn validate(&self) -> Result<(), String> {
        super::settings::check_url("[environments] repo-url", self.repo_url.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let host: HostSettings = toml::from_str("").unwrap();
        assert_eq!(host.proxy_reload_command(), ["nginx", "-s", "reload"]);
        let host: HostSettings = toml::from_str(
            "proxy = \"apache\"\nproxy-port = 8081\nproxy-reload = []\nbind-reload = [\"kill\", \"-HUP\", \"12\"]",
        )
        .unwrap();
        host.validate().unwrap();
        assert_eq!(host.proxy, ProxyKind::Apache);
        assert!(host.proxy_reload_command().is_empty());
        assert_eq!(host.proxy_dir(), std::path::Path::new("/etc/apache2/bess"));
        assert!(toml::from_str::<HostSettings>("proxy = \"caddy\"").is_err());
    }

    #[test]
    fn bad_values_are_named() {
        for (text, complaint) in [
            ("proxy-port = 0", "proxy-port = 0"),
            ("bind-zone-dir = \"zones\"", "bind-zone-dir"),
            ("bind-reload = [\"\"]", "bind-reload"),
            ("serve-url = \"ftp://x\"", "serve-url"),
        ] {
            let host: HostSettings = toml::from_str(text).unwrap();
            let error = host.validate().unwrap_err();
            assert!(error.contains(complaint), "{text}: {error}");
        }
    }
}
