//! Machine images from bess's catalog, as vagrant gets boxes: the box
//! catalog of the machine's `box_url` read with the environment's
//! credential, the newest version offering the provider chosen, its file
//! downloaded through the token URL the catalog lists, its SHA-256
//! checked against the catalog's, and unpacked once per host into
//! `<repo>/cache/images/<sha256>/`: `rootfs/` for nspawn, `vm/` (kernel,
//! initrd, base disk) for qemu.
//!
//! The cache belongs to the repository because it is derived data like
//! the rest of `cache/` (rebuilt from the catalog when deleted), because
//! bess runs as the repository's owner and needs no other writable
//! system directory, and because it sits on the repository's filesystem
//! beside `machines/`, whose overlays use it as their lower layer. Do not
//! delete it while machines run.

use super::super::lock::NamedLock;
use crate::ops::{OpsError, Repo};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The parts of a Vagrant box catalog that matter here.
#[derive(Debug, Deserialize)]
struct Catalog {
    versions: Vec<CatalogVersion>,
}

#[derive(Debug, Deserialize)]
struct CatalogVersion {
    version: String,
    providers: Vec<CatalogProvider>,
}

#[derive(Debug, Deserialize)]
struct CatalogProvider {
    name: String,
    url: String,
    checksum: String,
    #[serde(default)]
    architecture: String,
}

/// An image chosen from the catalog.
#[derive(Debug, Clone)]
pub struct ChosenImage {
    /// The unpacked image on this host.
    pub path: PathBuf,
}

/// The unpacked image of the newest version of the box at `box_url`
/// that offers `provider`, downloading it if this host has not yet.
pub fn machine_image(
    repo: &Repo,
    box_url: &str,
    credential: (&str, &str),
    provider: &str,
) -> Result<ChosenImage, OpsError> {
    let catalog = read_catalog(box_url, credential)?;
    let arch = crate::env::image::host_arch();
    let chosen = catalog.versions.iter().find_map(|v| {
        let offers = v.providers.iter().filter(|p| p.name == provider);
        let offer = offers
            .clone()
            .find(|p| p.architecture == arch)
            .or_else(|| offers.clone().next())?;
        Some((v.version.clone(), offer))
    });
    let Some((_version, offer)) = chosen else {
        return Err(OpsError::NotFound(format!(
            "the box catalog {box_url} has no version for provider {provider}; build one with \
             `bess platform build PLATFORM` (or `bess box add`), and promote it to the environment's channel"
        )));
    };
    let images = repo.config.layout.cache_dir().join("images");
    let path = images.join(&offer.checksum);
    if !path.is_dir() {
        download(&images, offer, provider)?;
    }
    Ok(ChosenImage {
        path: path.join(unpacked_dir(provider)),
    })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn basic(credential: (&str, &str)) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", credential.0, credential.1));
    format!("Basic {token}")
}

fn read_catalog(box_url: &str, credential: (&str, &str)) -> Result<Catalog, OpsError> {
    let failed = |problem: String| {
        OpsError::Conflict(format!(
            "cannot read the box catalog {box_url}: {problem}; is `bess serve` running and \
             reachable there ([serve] listen, or [environments] repo-url)?"
        ))
    };
    let mut response = agent()
        .get(box_url)
        .header("Authorization", &basic(credential))
        .header("Accept", "application/json")
        .call()
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| failed(e.to_string()))?;
    if !status.is_success() {
        return Err(failed(format!("HTTP {status}: {}", text.trim())));
    }
    serde_json::from_str(&text).map_err(|e| failed(format!("not a box catalog: {e}")))
}

/// Where a box of `provider` is unpacked in its image directory.
fn unpacked_dir(provider: &str) -> &'static str {
    if provider == "qemu" { "vm" } else { "rootfs" }
}

/// Downloads and unpacks one image, under a lock so a host does it once.
fn download(images: &Path, offer: &CatalogProvider, provider: &str) -> Result<(), OpsError> {
    std::fs::create_dir_all(images).map_err(OpsError::io("create", images))?;
    let _lock = NamedLock::acquire(&images.join(format!("{}.lock", offer.checksum)), true)?;
    let done = images.join(&offer.checksum);
    if done.is_dir() {
        return Ok(());
    }
    let work = tempfile::Builder::new()
        .prefix(&format!(".{}-", offer.checksum))
        .tempdir_in(images)
        .map_err(OpsError::io("create a directory in", images))?;
    let file = work.path().join("image.box");
    fetch_checked(&offer.url, &offer.checksum, &file)?;
    let root = work.path().join(unpacked_dir(provider));
    std::fs::create_dir(&root).map_err(OpsError::io("create", &root))?;
    if provider == "qemu" {
        crate::env::vm_image::unpack_vm_box(&file, &root)?;
    } else {
        crate::env::image::unpack_box(&file, &root)?;
    }
    std::fs::remove_file(&file).map_err(OpsError::io("remove", &file))?;
    crate::pool::sync_filesystem(&root).map_err(OpsError::io("flush", &root))?;
    let kept = work.keep();
    std::fs::rename(&kept, &done).map_err(OpsError::io("rename into place", &done))?;
    Ok(())
}

/// Streams `url` into `dest`, refusing it unless its SHA-256 is `sha256`.
fn fetch_checked(url: &str, sha256: &str, dest: &Path) -> Result<(), OpsError> {
    // The token in the URL is the credential; never print it.
    let shown = url.split('?').next().unwrap_or(url).to_string();
    let failed =
        |problem: String| OpsError::Conflict(format!("cannot download {shown}: {problem}"));
    let mut response = agent().get(url).call().map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("HTTP {}", response.status())));
    }
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut out = std::fs::File::create(dest).map_err(OpsError::io("create", dest))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buffer)
            .map_err(|e| failed(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        std::io::Write::write_all(&mut out, &buffer[..n]).map_err(OpsError::io("write", dest))?;
    }
    let got = hex::encode(hasher.finalize());
    if got != sha256 {
        return Err(failed(format!(
            "its SHA-256 is {got}, but the catalog says {sha256}; the box or the catalog is corrupt"
        )));
    }
    Ok(())
}
