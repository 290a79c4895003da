//! Bind zones: one per platform, `<platform>.<domain>`, holding a record
//! for each bound environment and a wildcard for its sites, all pointing
//! at the proxy; and the `named.conf` include that lists the zones.
//!
//! A platform's zone stays (with no environment in it) after its last
//! environment is unbound, so names of unbound environments get a
//! definite NXDOMAIN from this server instead of going elsewhere; `bess
//! platform destroy` removes it.

use std::fmt::Write;
use std::net::IpAddr;
use std::path::Path;

/// What a platform's zone says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// `<platform>.<domain>`, without the final dot.
    pub origin: String,
    pub serial: u32,
    /// Where every name points: the proxy's address.
    pub proxy: IpAddr,
    /// Bound environments.
    pub environments: Vec<String>,
}

/// Seconds resolvers keep answers: environments come and go.
const TTL: u32 = 60;

impl Zone {
    /// The zone file's text.
    pub fn text(&self) -> String {
        let kind = match self.proxy {
            IpAddr::V4(_) => "A",
            IpAddr::V6(_) => "AAAA",
        };
        let mut out = format!(
            "; Written by bess for platform zone {origin}; `bess host bind-proxy` and\n\
             ; `bess host unbind-proxy` rewrite it.\n\
             $ORIGIN {origin}.\n\
             $TTL {TTL}\n\
             @\tIN\tSOA\t{origin}. hostmaster.{origin}. (\n\
             \t\t{serial}\t; serial\n\
             \t\t3600\t; refresh\n\
             \t\t600\t; retry\n\
             \t\t86400\t; expire\n\
             \t\t{TTL} )\t; negative answers\n\
             @\tIN\tNS\t{origin}.\n\
             @\tIN\t{kind}\t{proxy}\n",
            origin = self.origin,
            serial = self.serial,
            proxy = self.proxy,
        );
        for env in &self.environments {
            let _ = writeln!(out, "{env}\tIN\t{kind}\t{}", self.proxy);
            let _ = writeln!(out, "*.{env}\tIN\t{kind}\t{}", self.proxy);
        }
        out
    }
}

/// The serial a zone file bess wrote holds.
pub fn serial_of(text: &str) -> Option<u32> {
    text.lines()
        .find(|l| l.trim_end().ends_with("; serial"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|s| s.parse().ok())
}

/// `<origin>.zone`.
pub fn zone_file_name(origin: &str) -> String {
    format!("{origin}.zone")
}

/// The include file: a `zone` statement per origin, with its file in `zone_dir`.
pub fn include_file(origins: &[String], zone_dir: &Path) -> String {
    let mut out = String::from(
        "// Written by bess: the zones of platforms whose environments\n\
         // `bess host bind-proxy` routes. named.conf includes this file.\n",
    );
    for origin in origins {
        let file = zone_dir.join(zone_file_name(origin));
        let _ = writeln!(
            out,
            "zone \"{origin}\" {{ type primary; file \"{}\"; }};",
            file.display()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_points_each_environment_and_its_sites_at_the_proxy() {
        let zone = Zone {
            origin: "paas.example.test".into(),
            serial: 7,
            proxy: "192.0.2.10".parse().unwrap(),
            environments: vec!["1161".into(), "proj-42".into()],
        };
        let text = zone.text();
        assert!(text.contains("$ORIGIN paas.example.test.\n"));
        assert!(text.contains("1161\tIN\tA\t192.0.2.10\n*.1161\tIN\tA\t192.0.2.10\n"));
        assert!(text.contains("*.proj-42\tIN\tA"));
        assert_eq!(serial_of(&text), Some(7));
        let v6 = Zone {
            proxy: "::1".parse().unwrap(),
            ..zone
        };
        assert!(v6.text().contains("1161\tIN\tAAAA\t::1"));
    }

    #[test]
    fn the_include_names_each_zone_file() {
        let text = include_file(
            &["paas.example.test".into()],
            Path::new("/var/lib/bind/bess"),
        );
        assert!(text.contains(
            "zone \"paas.example.test\" { type primary; file \"/var/lib/bind/bess/paas.example.test.zone\"; };"
        ));
    }
}
