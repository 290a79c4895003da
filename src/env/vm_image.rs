//! The `qemu` provider's image: the platform's Debian root with a kernel,
//! as an ext4 disk in qcow2 beside the kernel and initrd it boots
//! directly (no boot loader, no partition table: `root=/dev/vda`).
//!
//! A box holds `metadata.json`, `vmlinuz`, `initrd.img` and
//! `disk.qcow2.zst`. Unpacked on a host, the disk is the read-only base
//! of every machine's own qcow2 overlay.
//!
//! Machines of one image differ only by what bess hands each one at boot
//! through QEMU's firmware configuration (`-fw_cfg opt/bess/seed`): a
//! shell script, run by the image's `bess-seed.service` before the
//! network and sshd start, that writes the host name, the address, the
//! environment's key for root and the machine's own SSH host key. This is
//! cloud-init's job done in ten lines: no Python in the image, nothing to
//! mount, and nothing written into the base disk.

use super::image::{ImageRecipe, compress, untar, write_box};
use super::provider::{Program, ProviderError};
use std::path::{Path, PathBuf};

/// What a virtual machine's root needs beyond a container's: an initrd
/// builder, udev for its devices and kmod for `modprobe`.
pub const VM_PACKAGES: &[&str] = &["initramfs-tools", "kmod", "udev"];

/// The fw_cfg name of a machine's seed.
pub const SEED_NAME: &str = "opt/bess/seed";

/// Run in the finished root of a VM image (after the common hooks).
pub const VM_CUSTOMIZE: &[&str] = &[
    "mkdir -p \"$1\"/usr/local/sbin && cat > \"$1\"/usr/local/sbin/bess-seed <<'EOF'\n\
#!/bin/sh\n\
# Applies what bess gave this machine at boot (QEMU fw_cfg opt/bess/seed).\n\
modprobe qemu_fw_cfg 2>/dev/null\n\
seed=/sys/firmware/qemu_fw_cfg/by_name/opt/bess/seed/raw\n\
[ -r \"$seed\" ] || exit 0\n\
exec /bin/sh \"$seed\"\n\
EOF\n\
chmod 0755 \"$1\"/usr/local/sbin/bess-seed",
    "cat > \"$1\"/etc/systemd/system/bess-seed.service <<'EOF'\n\
[Unit]\n\
Description=Identity of this machine given by bess\n\
DefaultDependencies=no\n\
After=local-fs.target systemd-modules-load.service\n\
Before=sysinit.target network-pre.target systemd-networkd.service ssh.service\n\
Wants=network-pre.target\n\
\n\
[Service]\n\
Type=oneshot\n\
RemainAfterExit=yes\n\
ExecStart=/usr/local/sbin/bess-seed\n\
\n\
[Install]\n\
WantedBy=sysinit.target\n\
EOF",
    "chroot \"$1\" systemctl enable bess-seed.service systemd-networkd.service",
    // apt's timers would take dpkg's lock in the middle of provisioning.
    "chroot \"$1\" systemctl mask apt-daily.timer apt-daily-upgrade.timer",
    "printf '/dev/vda / ext4 defaults 0 1\\n' > \"$1\"/etc/fstab",
];

/// The size of a machine's disk as its system sees it; the qcow2 files
/// hold only the blocks written.
pub const DISK_GIB: u64 = 8;

/// Members of a qemu box.
pub const KERNEL: &str = "vmlinuz";
pub const INITRD: &str = "initrd.img";
pub const DISK: &str = "disk.qcow2";
const DISK_MEMBER: &str = "disk.qcow2.zst";

/// How an architecture's virtual machines are made.
#[derive(Debug, Clone, Copy)]
pub struct VmArch {
    pub kernel_package: &'static str,
    pub qemu: Program,
    /// `-machine`.
    pub machine: &'static str,
    /// The serial console's device, for `console=`.
    pub console: &'static str,
}

impl VmArch {
    /// The VM settings of Debian architecture `arch`.
    pub fn of(arch: &str) -> Result<VmArch, ProviderError> {
        match arch {
            "amd64" => Ok(VmArch {
                kernel_package: "linux-image-amd64",
                qemu: Program::QEMU_X86_64,
                machine: "q35",
                console: "ttyS0",
            }),
            "arm64" => Ok(VmArch {
                kernel_package: "linux-image-arm64",
                qemu: Program::QEMU_AARCH64,
                machine: "virt",
                console: "ttyAMA0",
            }),
            other => Err(ProviderError::State {
                machine: "-".into(),
                problem: format!(
                    "bess runs qemu machines on amd64 and arm64 hosts, not {other}; \
                     use provider = \"nspawn\" there"
                ),
            }),
        }
    }
}

/// Packs the root archive `rootfs` (mmdebstrap's tar) into the qemu box
/// `dest`, working in `scratch`. Needs root: the disk keeps the owners of
/// the root's files.
pub fn pack_vm_box(
    recipe: &ImageRecipe,
    rootfs: &Path,
    dest: &Path,
    scratch: &Path,
) -> Result<(), ProviderError> {
    if !rustix::process::geteuid().is_root() {
        return Err(ProviderError::State {
            machine: "-".into(),
            problem: "building a qemu image needs root: its disk keeps the owners of the \
                      root's files; run `bess platform build --provider qemu` as root"
                .into(),
        });
    }
    for program in [Program::TAR, Program::MKFS_EXT4, Program::QEMU_IMG] {
        program.require()?;
    }
    let root = scratch.join("root");
    std::fs::create_dir_all(&root).map_err(ProviderError::io("create", &root))?;
    let archive = std::fs::File::open(rootfs).map_err(ProviderError::io("read", rootfs))?;
    untar(archive, &root)?;
    let (kernel, initrd) = boot_files(&root)?;
    let raw = scratch.join("disk.raw");
    let raw_arg = raw.to_string_lossy();
    let size = format!("{DISK_GIB}G");
    let root_arg = root.to_string_lossy();
    let label = [
        "-q",
        "-F",
        "-L",
        "bess-root",
        "-d",
        &root_arg,
        &raw_arg,
        &size,
    ];
    Program::MKFS_EXT4.run(&label)?;
    let qcow2 = scratch.join(DISK);
    let qcow2_arg = qcow2.to_string_lossy();
    let convert = [
        "convert", "-q", "-f", "raw", "-O", "qcow2", &raw_arg, &qcow2_arg,
    ];
    Program::QEMU_IMG.run(&convert)?;
    let _ = std::fs::remove_file(&raw);
    let packed = scratch.join(DISK_MEMBER);
    compress(&qcow2, &packed)?;
    let _ = std::fs::remove_file(&qcow2);
    let metadata = serde_json::json!({
        "provider": "qemu",
        "architecture": recipe.arch,
        "format": "qcow2",
        "virtual_size": DISK_GIB,
        "disk": DISK_MEMBER,
        "kernel": KERNEL,
        "initrd": INITRD,
        "suite": recipe.suite,
        "packages": recipe.packages,
        "recipe": recipe.key(),
    });
    let members = [(KERNEL, kernel), (INITRD, initrd), (DISK_MEMBER, packed)];
    write_box(dest, &metadata, &members)
}

/// The newest kernel in the root's `/boot` and its initrd.
fn boot_files(root: &Path) -> Result<(PathBuf, PathBuf), ProviderError> {
    let boot = root.join("boot");
    let mut versions: Vec<String> = std::fs::read_dir(&boot)
        .map_err(ProviderError::io("read", &boot))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("vmlinuz-").map(str::to_string)
        })
        .collect();
    versions.sort();
    let no_kernel = |what: &str| ProviderError::State {
        machine: "-".into(),
        problem: format!(
            "the image has no {what} in /boot; a qemu image's packages must include a \
             Debian kernel (linux-image-amd64) and initramfs-tools"
        ),
    };
    let version = versions.pop().ok_or_else(|| no_kernel("kernel"))?;
    let kernel = boot.join(format!("vmlinuz-{version}"));
    let initrd = boot.join(format!("initrd.img-{version}"));
    if !initrd.is_file() {
        return Err(no_kernel(&format!("initrd.img-{version}")));
    }
    Ok((kernel, initrd))
}

/// Unpacks the qemu box at `path` into the empty directory `dest`:
/// `vmlinuz`, `initrd.img` and `disk.qcow2` (read-only: it is the base of
/// every machine's overlay, and a write to it would corrupt them all).
pub fn unpack_vm_box(path: &Path, dest: &Path) -> Result<(), ProviderError> {
    use std::os::unix::fs::PermissionsExt;
    let file = std::fs::File::open(path).map_err(ProviderError::io("read", path))?;
    let mut archive = tar::Archive::new(file);
    let entries = archive.entries().map_err(ProviderError::io("read", path))?;
    let mut found = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(ProviderError::io("read", path))?;
        let name = entry
            .path()
            .map_err(ProviderError::io("read", path))?
            .to_string_lossy()
            .into_owned();
        let (target, packed) = match name.as_str() {
            KERNEL | INITRD => (dest.join(&name), false),
            DISK_MEMBER => (dest.join(DISK), true),
            _ => continue,
        };
        let mut out =
            std::fs::File::create(&target).map_err(ProviderError::io("create", &target))?;
        let copied = if packed {
            let mut decoder =
                zstd::stream::Decoder::new(&mut entry).map_err(ProviderError::io("read", path))?;
            std::io::copy(&mut decoder, &mut out)
        } else {
            std::io::copy(&mut entry, &mut out)
        };
        copied.map_err(ProviderError::io("unpack into", &target))?;
        out.sync_all()
            .map_err(ProviderError::io("flush", &target))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o444))
            .map_err(ProviderError::io("set the mode of", &target))?;
        found.push(name);
    }
    for wanted in [KERNEL, INITRD, DISK_MEMBER] {
        if !found.iter().any(|f| f == wanted) {
            return Err(ProviderError::State {
                machine: "-".into(),
                problem: format!(
                    "the box {} has no {wanted}; qemu boxes are made by \
                     `bess platform build PLATFORM --provider qemu`",
                    path.display()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_vm_box_unpacks_to_its_kernel_initrd_and_disk() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<(&str, PathBuf)> = [KERNEL, INITRD, DISK]
            .iter()
            .map(|name| {
                let path = dir.path().join(format!("src-{name}"));
                std::fs::write(&path, format!("{name} bytes")).unwrap();
                (*name, path)
            })
            .collect();
        let packed = dir.path().join("disk.zst");
        compress(&files[2].1, &packed).unwrap();
        let members = [
            (KERNEL, files[0].1.clone()),
            (INITRD, files[1].1.clone()),
            (DISK_MEMBER, packed),
        ];
        let boxed = dir.path().join("vm.box");
        let metadata = serde_json::json!({ "provider": "qemu" });
        write_box(&boxed, &metadata, &members).unwrap();
        assert_eq!(
            crate::boxes::inspect(&boxed, "qemu").unwrap().provider,
            "qemu"
        );
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        unpack_vm_box(&boxed, &out).unwrap();
        for name in [KERNEL, INITRD, DISK] {
            let text = std::fs::read_to_string(out.join(name)).unwrap();
            assert_eq!(text, format!("{name} bytes"));
        }
    }

    #[test]
    fn a_box_without_a_disk_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("k");
        std::fs::write(&kernel, "k").unwrap();
        let boxed = dir.path().join("vm.box");
        let metadata = serde_json::json!({ "provider": "qemu" });
        write_box(&boxed, &metadata, &[(KERNEL, kernel)]).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let error = unpack_vm_box(&boxed, &out).unwrap_err().to_string();
        assert!(error.contains("has no initrd.img"), "{error}");
    }

    #[test]
    fn only_amd64_and_arm64_run_qemu_machines() {
        assert_eq!(VmArch::of("amd64").unwrap().console, "ttyS0");
        assert_eq!(VmArch::of("arm64").unwrap().machine, "virt");
        let error = VmArch::of("s390x").unwrap_err().to_string();
        assert!(error.contains("not s390x"), "{error}");
    }
}
