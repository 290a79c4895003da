//! The Vagrant box catalog ("box metadata") of one name in one channel:
//! the JSON `vagrant box add URL` and `vagrant box outdated` read.

use super::version::compare_box_versions;
use serde::Serialize;
use std::collections::BTreeMap;

/// The architecture marked `default_architecture` when a provider has it.
const PREFERRED_ARCH: &str = "amd64";

/// One downloadable box file of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub version: String,
    pub provider: String,
    pub arch: String,
    pub sha256: String,
    /// Absolute URL, token included.
    pub url: String,
}

/// The catalog document.
#[derive(Debug, Clone, Serialize)]
pub struct VagrantCatalog {
    pub name: String,
    pub description: String,
    pub versions: Vec<CatalogVersion>,
}

/// One version and its box files.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogVersion {
    pub version: String,
    pub providers: Vec<CatalogProvider>,
}

/// One box file, as vagrant expects it.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogProvider {
    pub name: String,
    pub url: String,
    pub checksum_type: &'static str,
    pub checksum: String,
    pub architecture: String,
    pub default_architecture: bool,
}

impl VagrantCatalog {
    /// Groups offers by version, newest first (Gem::Version order).
    ///
    /// Within a version, each provider's default architecture (amd64 when
    /// offered, else the first) is listed after its other architectures:
    /// vagrant before 2.4 ignores architectures and keeps the last entry
    /// of a provider, which is then the default one.
    pub fn new(name: &str, description: String, offers: Vec<Offer>) -> VagrantCatalog {
        let mut by_version: BTreeMap<String, Vec<Offer>> = BTreeMap::new();
        for offer in offers {
            by_version
                .entry(offer.version.clone())
                .or_default()
                .push(offer);
        }
        let mut versions: Vec<CatalogVersion> = by_version
            .into_iter()
            .map(|(version, offers)| CatalogVersion {
                version,
                providers: providers(offers),
            })
            .collect();
        versions.sort_by(|a, b| compare_box_versions(&b.version, &a.version));
        VagrantCatalog {
            name: name.to_string(),
            description,
            versions,
        }
    }
}

fn providers(offers: Vec<Offer>) -> Vec<CatalogProvider> {
    let mut by_provider: BTreeMap<String, Vec<Offer>> = BTreeMap::new();
    for offer in offers {
        by_provider
            .entry(offer.provider.clone())
            .or_default()
            .push(offer);
    }
    let mut listed = Vec::new();
    for (_, mut offers) in by_provider {
        offers.sort_by(|a, b| a.arch.cmp(&b.arch));
        let default = offers
            .iter()
            .position(|o| o.arch == PREFERRED_ARCH)
            .unwrap_or(0);
        let chosen = offers.remove(default);
        let entry = |offer: Offer, default_architecture| CatalogProvider {
            name: offer.provider,
            url: offer.url,
            checksum_type: "sha256",
            checksum: offer.sha256,
            architecture: offer.arch,
            default_architecture,
        };
        listed.extend(offers.into_iter().map(|o| entry(o, false)));
        listed.push(entry(chosen, true));
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(version: &str, provider: &str, arch: &str) -> Offer {
        Offer {
            version: version.into(),
            provider: provider.into(),
            arch: arch.into(),
            sha256: format!("{version}{provider}{arch}"),
            url: format!("http://h/{version}/{provider}-{arch}.box"),
        }
    }

    #[test]
    fn newest_version_first_and_default_architecture_last() {
        let catalog = VagrantCatalog::new(
            "acme/base",
            "d".into(),
            vec![
                offer("1.9.0", "libvirt", "amd64"),
                offer("1.10.0", "libvirt", "amd64"),
                offer("1.10.0", "libvirt", "arm64"),
                offer("1.10.0", "virtualbox", "arm64"),
            ],
        );
        let versions: Vec<&str> = catalog
            .versions
            .iter()
            .map(|v| v.version.as_str())
            .collect();
        assert_eq!(versions, ["1.10.0", "1.9.0"]);
        let p = &catalog.versions[0].providers;
        let listed: Vec<(&str, &str, bool)> = p
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.architecture.as_str(),
                    p.default_architecture,
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("libvirt", "arm64", false),
                ("libvirt", "amd64", true),
                ("virtualbox", "arm64", true)
            ]
        );
        let json = serde_json::to_value(&catalog).unwrap();
        assert_eq!(
            json["versions"][0]["providers"][1]["checksum_type"],
            "sha256"
        );
    }
}
