//! Machine images: a Debian root built by mmdebstrap from `[image]` of
//! platform.toml, packed as a box (`metadata.json` and `rootfs.tar.zst`
//! in a plain tar), and unpacked again on the hosts that run machines.
//! The `qemu` image starts from the same kind of root, with a kernel; see
//! `vm_image.rs` for its disk.
//!
//! A recipe's key is the SHA-256 of everything that goes into mmdebstrap
//! (suite, mirror, packages, architecture, the hooks below, and
//! [`RECIPE_VERSION`]): a cache of built boxes keyed by it is never
//! stale for its inputs, and a change of any input builds anew.

use super::platform::ImageSpec;
use super::provider::{Program, ProviderError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;

/// Bumped whenever bess changes how it builds images.
pub const RECIPE_VERSION: u32 = 1;

/// What every machine needs: an init, the system bus, `ip`, and sshd for
/// `bess env ssh` and Ansible.
pub const BASE_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "openssh-server",
];

/// Run in the finished root: host keys are made per machine, machines
/// install from bess's channel only (they reach no Debian mirror), and
/// each machine gets its own machine id at first boot.
const CUSTOMIZE: &[&str] = &[
    "rm -f \"$1\"/etc/ssh/ssh_host_*",
    "rm -f \"$1\"/etc/apt/sources.list",
    "printf 'uninitialized\\n' > \"$1\"/etc/machine-id",
];

/// The name of the root archive inside a box.
pub const ROOTFS: &str = "rootfs.tar.zst";

/// Everything mmdebstrap is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRecipe {
    pub recipe_version: u32,
    pub suite: String,
    pub mirror: Option<String>,
    /// Sorted, without duplicates, the base packages included.
    pub packages: Vec<String>,
    pub arch: String,
    pub customize: Vec<String>,
    /// `qemu` for a virtual machine's image; absent for nspawn, so the keys
    /// of nspawn recipes stayed what they were before qemu images existed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub provider: String,
}

impl ImageRecipe {
    /// The recipe of `[image]`; `default_suite` when it names none.
    pub fn new(spec: &ImageSpec, default_suite: &str, arch: &str) -> ImageRecipe {
        let mut packages: Vec<String> = BASE_PACKAGES.iter().map(|p| p.to_string()).collect();
        packages.extend(spec.packages.iter().cloned());
        packages.sort();
        packages.dedup();
        ImageRecipe {
            recipe_version: RECIPE_VERSION,
            suite: spec.suite.clone().unwrap_or_else(|| default_suite.into()),
            mirror: spec.mirror.clone(),
            packages,
            arch: arch.into(),
            customize: CUSTOMIZE.iter().map(|c| c.to_string()).collect(),
            provider: String::new(),
        }
    }

    /// The recipe of `[image]` for machines of `provider` (`nspawn` or `qemu`).
    pub fn for_provider(
        spec: &ImageSpec,
        default_suite: &str,
        arch: &str,
        provider: &str,
    ) -> Result<ImageRecipe, ProviderError> {
        let mut recipe = ImageRecipe::new(spec, default_suite, arch);
        match provider {
            "nspawn" => Ok(recipe),
            "qemu" => {
                let vm = super::vm_image::VmArch::of(arch)?;
                recipe.packages.extend(
                    super::vm_image::VM_PACKAGES
                        .iter()
                        .map(|p| p.to_string())
                        .chain([vm.kernel_package.to_string()]),
                );
                recipe.packages.sort();
                recipe.packages.dedup();
                recipe
                    .customize
                    .extend(super::vm_image::VM_CUSTOMIZE.iter().map(|c| c.to_string()));
                recipe.provider = provider.into();
                Ok(recipe)
            }
            other => Err(ProviderError::State {
                machine: "-".into(),
                problem: format!(
                    "bess builds images for the nspawn and qemu providers, not `{other}`; \
                     vagrant machines take their boxes from the catalog as they are"
                ),
            }),
        }
    }

    /// The SHA-256 of the recipe, in hex.
    pub fn key(&self) -> String {
        let json = serde_json::to_vec(self).expect("a recipe serializes");
        hex::encode(Sha256::digest(&json))
    }

    /// mmdebstrap's arguments, writing a tar to `out`.
    pub fn mmdebstrap_args(&self, out: &Path) -> Vec<String> {
        let mut args = vec![
            "--variant=minbase".to_string(),
            format!("--architectures={}", self.arch),
            format!("--include={}", self.packages.join(",")),
        ];
        for hook in &self.customize {
            args.push(format!("--customize-hook={hook}"));
        }
        args.push(self.suite.clone());
        args.push(out.display().to_string());
        if let Some(mirror) = &self.mirror {
            args.push(mirror.clone());
        }
        args
    }
}

/// The Debian architecture of this host.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// Runs mmdebstrap; its whole output goes to `log`.
pub fn build_rootfs(recipe: &ImageRecipe, out: &Path, log: &Path) -> Result<(), ProviderError> {
    Program::MMDEBSTRAP.require()?;
    let args = recipe.mmdebstrap_args(out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = Program::MMDEBSTRAP.output(&args, &[])?;
    std::fs::write(log, &run.output).map_err(ProviderError::io("write", log))?;
    run.check(&format!(
        "mmdebstrap {} (its log: {})",
        args.join(" "),
        log.display()
    ))
}

/// Packs `rootfs` (a tar) into the box `dest`: `metadata.json` and
/// `rootfs.tar.zst`, with fixed times and owners so equal roots give
/// equal boxes.
pub fn pack_box(recipe: &ImageRecipe, rootfs: &Path, dest: &Path) -> Result<(), ProviderError> {
    let compressed = dest.with_extension("zst.tmp");
    let metadata = serde_json::json!({
        "provider": "nspawn",
        "architecture": recipe.arch,
        "format": ROOTFS,
        "suite": recipe.suite,
        "packages": recipe.packages,
        "recipe": recipe.key(),
    });
    let packed = compress(rootfs, &compressed)
        .and_then(|()| write_box(dest, &metadata, &[(ROOTFS, compressed.clone())]));
    let _ = std::fs::remove_file(&compressed);
    packed
}

/// `metadata.json`, then each member, in a plain tar with fixed times and
/// owners, flushed to disk.
pub(super) fn write_box(
    dest: &Path,
    metadata: &serde_json::Value,
    members: &[(&str, std::path::PathBuf)],
) -> Result<(), ProviderError> {
    let file = std::fs::File::create(dest).map_err(ProviderError::io("create", dest))?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    let text = serde_json::to_vec_pretty(metadata).expect("JSON");
    append(
        &mut builder,
        "metadata.json",
        text.len() as u64,
        &mut &text[..],
    )
    .map_err(ProviderError::io("write", dest))?;
    for (name, path) in members {
        let mut member = std::fs::File::open(path).map_err(ProviderError::io("read", path))?;
        let size = member
            .metadata()
            .map_err(ProviderError::io("read", path))?
            .len();
        append(&mut builder, name, size, &mut member).map_err(ProviderError::io("write", dest))?;
    }
    let mut out = builder
        .into_inner()
        .map_err(ProviderError::io("write", dest))?;
    out.flush().map_err(ProviderError::io("write", dest))?;
    out.get_ref()
        .sync_all()
        .map_err(ProviderError::io("flush", dest))
}

fn append(
    builder: &mut tar::Builder<impl Write>,
    name: &str,
    size: u64,
    data: &mut dyn Read,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, data)
}

pub(super) fn compress(from: &Path, to: &Path) -> Result<(), ProviderError> {
    let mut input = std::fs::File::open(from).map_err(ProviderError::io("read", from))?;
    let output = std::fs::File::create(to).map_err(ProviderError::io("create", to))?;
    let mut encoder =
        zstd::stream::Encoder::new(output, 3).map_err(ProviderError::io("compress into", to))?;
    std::io::copy(&mut input, &mut encoder).map_err(ProviderError::io("compress into", to))?;
    encoder
        .finish()
        .map_err(ProviderError::io("compress into", to))?;
    Ok(())
}

/// Unpacks the root of the box at `path` into the empty directory
/// `dest`, with owners, modes, device nodes and extended attributes
/// (GNU tar writes them; the archive is decompressed here).
pub fn unpack_box(path: &Path, dest: &Path) -> Result<(), ProviderError> {
    Program::TAR.require()?;
    let file = std::fs::File::open(path).map_err(ProviderError::io("read", path))?;
    let mut archive = tar::Archive::new(file);
    let entries = archive.entries().map_err(ProviderError::io("read", path))?;
    for entry in entries {
        let entry = entry.map_err(ProviderError::io("read", path))?;
        let is_root = entry.path().is_ok_and(|p| p == Path::new(ROOTFS));
        if is_root {
            return untar(
                zstd::stream::Decoder::new(entry).map_err(ProviderError::io("read", path))?,
                dest,
            );
        }
    }
    Err(ProviderError::State {
        machine: "-".into(),
        problem: format!(
            "the box {} has no {ROOTFS}; nspawn boxes are made by `bess platform build`",
            path.display()
        ),
    })
}

pub(super) fn untar(mut data: impl Read, dest: &Path) -> Result<(), ProviderError> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("tar")
        .args([
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "-xpf",
            "-",
            "-C",
        ])
        .arg(dest)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ProviderError::io("run", "tar"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let copied = std::io::copy(&mut data, &mut stdin);
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(ProviderError::io("run", "tar"))?;
    copied.map_err(ProviderError::io("unpack into", dest))?;
    if out.status.success() {
        return Ok(());
    }
    Err(ProviderError::Command {
        command: format!("tar -x -C {}", dest.display()),
        status: out.status.to_string(),
        output: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(packages: &[&str]) -> ImageSpec {
        ImageSpec {
            box_name: "example/bookworm".into(),
            suite: None,
            mirror: None,
            packages: packages.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn the_key_follows_every_input() {
        let a = ImageRecipe::new(&spec(&["nginx-light", "python3"]), "bookworm", "amd64");
        let b = ImageRecipe::new(
            &spec(&["python3", "nginx-light", "dbus"]),
            "bookworm",
            "amd64",
        );
        assert_eq!(a.key(), b.key(), "order and base packages do not matter");
        let c = ImageRecipe::new(&spec(&["nginx-light"]), "bookworm", "amd64");
        assert_ne!(a.key(), c.key());
        let d = ImageRecipe::new(&spec(&["nginx-light", "python3"]), "trixie", "amd64");
        assert_ne!(a.key(), d.key());
        assert!(a.packages.contains(&"openssh-server".to_string()));
    }

    #[test]
    fn a_packed_box_unpacks_to_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hostname"), "image\n").unwrap();
        let rootfs = dir.path().join("rootfs.tar");
        let status = std::process::Command::new("tar")
            .arg("-cf")
            .arg(&rootfs)
            .arg("-C")
            .arg(&root)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        let recipe = ImageRecipe::new(&spec(&[]), "bookworm", "amd64");
        let boxed = dir.path().join("image.box");
        pack_box(&recipe, &rootfs, &boxed).unwrap();
        let contents = crate::boxes::inspect(&boxed, "nspawn").unwrap();
        assert_eq!(contents.provider, "nspawn");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        unpack_box(&boxed, &out).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("etc/hostname")).unwrap(),
            "image\n"
        );
    }
}
