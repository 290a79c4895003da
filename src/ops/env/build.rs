//! `bess platform build`: the platform's base image, built with
//! mmdebstrap from `[image]` of its platform.toml and added to bess's own
//! catalog as a box in the first channel, to be promoted like any box:
//! a root archive for the `nspawn` provider, or a disk, kernel and initrd
//! for `qemu` (`--provider qemu`).
//!
//! With a cache directory, built boxes are kept there under their
//! recipe's key (`<key>.box`): a build whose inputs did not change takes
//! the kept box instead of running mmdebstrap again. Builders of one key
//! wait for each other (a lock beside the box), so it is built once.

use super::super::audit::record;
use super::super::lock::NamedLock;
use super::{platform_dist, recover::recover, require_platform, stored_spec};
use crate::env::image::{ImageRecipe, build_rootfs, host_arch, pack_box};
use crate::env::vm_image::pack_vm_box;
use crate::ops::{BoxAddRequest, OpsError, Repo, add_box};
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};

/// What `bess platform build` asks for.
#[derive(Debug, Clone, Default)]
pub struct PlatformBuildRequest {
    pub platform: String,
    /// The box version; the UTC time of the build (`YYYYMMDD.HHMMSS`) when absent.
    pub version: Option<String>,
    /// Where built boxes are kept by recipe key, if anywhere.
    pub cache: Option<PathBuf>,
    /// `nspawn` (when empty) or `qemu`.
    pub provider: String,
}

/// What a build made.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformBuild {
    pub platform: String,
    #[serde(rename = "box")]
    pub box_name: String,
    pub version: String,
    pub provider: String,
    pub architecture: String,
    pub channel: String,
    pub sha256: String,
    pub size: u64,
    /// The recipe's key (SHA-256 of mmdebstrap's inputs).
    pub recipe: String,
    /// Whether the box came from the cache rather than mmdebstrap.
    pub cached: bool,
    pub packages: Vec<String>,
}

/// Builds (or takes from the cache) the platform's image and adds it as a box.
pub fn build_platform(
    repo: &mut Repo,
    request: &PlatformBuildRequest,
) -> Result<PlatformBuild, OpsError> {
    recover(repo)?;
    let platform = require_platform(repo, &request.platform)?;
    let spec = stored_spec(&platform.spec)?;
    let Some(image) = spec.image.clone() else {
        return Err(OpsError::Usage(format!(
            "platform {} has no [image] in its platform.toml; add one naming the box to build, e.g.\n\
             [image]\nbox = \"{}/bookworm\"\npackages = [\"nginx-light\"]",
            platform.name, platform.name
        )));
    };
    let provider = match request.provider.as_str() {
        "" => "nspawn",
        given => given,
    };
    let recipe =
        ImageRecipe::for_provider(&image, &platform_dist(repo, &spec), host_arch(), provider)?;
    let version = request.version.clone().unwrap_or_else(timestamp_version);
    crate::boxes::check_version(&version)
        .map_err(|e| OpsError::Usage(format!("--version: {e}")))?;
    let tmp = repo.config.layout.tmp_dir();
    std::fs::create_dir_all(&tmp).map_err(OpsError::io("create", &tmp))?;
    let scratch =
        tempfile::tempdir_in(&tmp).map_err(OpsError::io("create a directory in", &tmp))?;
    let (box_file, cached) = match &request.cache {
        Some(cache) => cached_box(&recipe, cache)?,
        None => (fresh_box(&recipe, scratch.path())?, false),
    };
    let box_request = BoxAddRequest {
        name: image.box_name.clone(),
        version: version.clone(),
        provider: provider.into(),
        arch: recipe.arch.clone(),
    };
    let mut file = std::fs::File::open(&box_file).map_err(OpsError::io("read", &box_file))?;
    let label = format!("image of platform {}", platform.name);
    let change = add_box(repo, &box_request, &mut file, &label)?;
    let writer = repo.catalog.write()?;
    let detail = json!({
        "platform": platform.name, "box": image.box_name, "version": version, "provider": provider,
        "recipe": recipe.key(), "cached": cached, "sha256": change.placement.sha256,
    });
    record(&writer, &repo.actor, "platform.build", detail)?;
    writer.commit()?;
    Ok(PlatformBuild {
        platform: platform.name,
        box_name: image.box_name,
        version,
        provider: provider.into(),
        architecture: recipe.arch.clone(),
        channel: change.placement.channel,
        sha256: change.placement.sha256,
        size: change.placement.size,
        recipe: recipe.key(),
        cached,
        packages: recipe.packages,
    })
}

/// `YYYYMMDD.HHMMSS` of now, UTC: a box version that sorts by time.
fn timestamp_version() -> String {
    let stamp = crate::ops::rfc3339(crate::catalog::now());
    // 2025-12-04T19:30:12Z → 20251204.193012
    let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
    format!("{}.{}", &digits[..8], &digits[8..14])
}

/// mmdebstrap into `dir`, packed as `dir/image.box`.
fn fresh_box(recipe: &ImageRecipe, dir: &Path) -> Result<PathBuf, OpsError> {
    let rootfs = dir.join("rootfs.tar");
    build_rootfs(recipe, &rootfs, &dir.join("mmdebstrap.log"))?;
    let boxed = dir.join("image.box");
    if recipe.provider == "qemu" {
        let scratch = dir.join("vm");
        pack_vm_box(recipe, &rootfs, &boxed, &scratch)?;
        crate::env::workspace::remove_tree(&scratch)?;
    } else {
        pack_box(recipe, &rootfs, &boxed)?;
    }
    let _ = std::fs::remove_file(&rootfs);
    Ok(boxed)
}

/// `<cache>/<key>.box`, built first if missing; whether it was there.
fn cached_box(recipe: &ImageRecipe, cache: &Path) -> Result<(PathBuf, bool), OpsError> {
    std::fs::create_dir_all(cache).map_err(OpsError::io("create", cache))?;
    let key = recipe.key();
    let boxed = cache.join(format!("{key}.box"));
    let _lock = NamedLock::acquire(&cache.join(format!("{key}.lock")), true)?;
    if boxed.is_file() {
        return Ok((boxed, true));
    }
    let work = tempfile::Builder::new()
        .prefix(&format!(".{key}-"))
        .tempdir_in(cache)
        .map_err(OpsError::io("create a directory in", cache))?;
    let built = fresh_box(recipe, work.path())?;
    std::fs::rename(&built, &boxed).map_err(OpsError::io("rename into place", &boxed))?;
    let recipe_file = cache.join(format!("{key}.json"));
    let text = serde_json::to_vec_pretty(recipe).expect("JSON");
    std::fs::write(&recipe_file, text).map_err(OpsError::io("write", &recipe_file))?;
    crate::pool::fsync_dir(cache).map_err(OpsError::io("flush", cache))?;
    Ok((boxed, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_time_are_box_versions() {
        let version = timestamp_version();
        assert_eq!(version.len(), 15, "{version}");
        crate::boxes::check_version(&version).unwrap();
    }
}
