//! The host's configuration for environments: a bind zone per platform,
//! the `named.conf` include listing those zones, and a reverse-proxy file
//! (nginx or apache) per environment; the tools that check them.
//!
//! Everything here is text generated from plain values and checks run on
//! candidate files; `ops::host` decides what to write when.

mod check;
mod proxy;
mod zone;

pub use check::{Rejection, check_apache, check_include, check_nginx, check_zone, run_reload};
pub use proxy::{ProxiedEnvironment, Upstream, apache_file, nginx_file, proxy_file_name};
pub use zone::{Zone, include_file, serial_of, zone_file_name};

use crate::config::{HostSettings, ProxyKind};
use std::path::{Path, PathBuf};

/// A program bess runs on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// What it is for, in the words `bess host check` prints.
    pub role: &'static str,
    /// As configured: a path or a name looked up in PATH, /usr/sbin, /sbin.
    pub program: String,
    /// The Debian package that brings it.
    pub package: &'static str,
}

impl Tool {
    pub fn new(role: &'static str, program: &str, package: &'static str) -> Tool {
        Tool {
            role,
            program: program.to_string(),
            package,
        }
    }

    /// Where the program is, if it is installed.
    pub fn find(&self) -> Option<PathBuf> {
        find_program(&self.program)
    }
}

/// The checking tools the configured proxy and bind need.
pub fn tools(host: &HostSettings) -> Vec<Tool> {
    let mut tools = vec![
        Tool::new("zone check", &host.named_checkzone, "bind9-utils"),
        Tool::new("named.conf check", &host.named_checkconf, "bind9-utils"),
    ];
    tools.push(match host.proxy {
        ProxyKind::Nginx => Tool::new("proxy check", &host.nginx, "nginx"),
        ProxyKind::Apache => Tool::new("proxy check", &host.apache2, "apache2"),
    });
    tools
}

/// `program` if it is a path to a file, else the first file of that
/// name in PATH, /usr/sbin or /sbin (where Debian puts named and nginx,
/// and which a non-root PATH often lacks).
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_path_and_sbin() {
        assert!(find_program("sh").is_some());
        assert!(find_program("/bin/sh").is_some());
        assert!(find_program("no-such-program-bess").is_none());
        let host = HostSettings::default();
        let names: Vec<String> = tools(&host).into_iter().map(|t| t.program).collect();
        assert_eq!(names, ["named-checkzone", "named-checkconf", "nginx"]);
    }
}
