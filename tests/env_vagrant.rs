//! The `vagrant` provider through the real binary, on a host that cannot
//! run VMs (no VirtualBox, no vagrant-libvirt): the Vagrantfile bess
//! drives is one `vagrant validate` accepts, and `env up` fails each
//! machine by name saying what to install, leaving an environment that
//! `env status` reports and `env destroy` removes. Needs no root.

mod common;

use common::env::{copy_example, init_platform};
use common::{Sandbox, have_tool};
use std::process::Command;

/// The example platform as `paas`, its machines run by vagrant, and
/// environment 1161; vagrant's home is the sandbox's.
fn vagrant_platform() -> Sandbox {
    let mut sb = Sandbox::new("bookworm", "amd64");
    sb.env.push((
        "VAGRANT_HOME".into(),
        sb.path("vagrant-home").display().to_string(),
    ));
    let source = copy_example(&sb.path("platform"));
    let toml = source.join("platform.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(text.contains("provider = \"nspawn\""), "{text}");
    std::fs::write(
        &toml,
        text.replace("provider = \"nspawn\"", "provider = \"vagrant\""),
    )
    .unwrap();
    init_platform(&sb, "paas", &source, "10.231.13.0/24");
    sb.ok(&["env", "init", "paas", "1161"]);
    sb
}

/// Whether vagrant could start VMs here: then `env up` would really try.
fn host_runs_vms(sb: &Sandbox) -> bool {
    let plugins = Command::new("vagrant")
        .env("VAGRANT_HOME", sb.path("vagrant-home"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .args(["plugin", "list"])
        .output()
        .unwrap();
    let plugins = String::from_utf8_lossy(&plugins.stdout);
    let libvirt = plugins.lines().any(|l| l.starts_with("vagrant-libvirt "));
    let virtualbox = Command::new("sh")
        .args(["-c", "command -v VBoxManage"])
        .output()
        .is_ok_and(|o| o.status.success());
    libvirt || virtualbox
}

#[test]
fn vagrant_without_a_vm_backend_fails_each_machine_by_name_and_destroys_cleanly() {
    if !have_tool("vagrant") {
        return;
    }
    let sb = vagrant_platform();
    if host_runs_vms(&sb) {
        eprintln!("skipping: this host has a VM provider for vagrant, env up would start VMs");
        return;
    }
    let ws = sb.repo.join("envs/paas/1161");
    let validate = Command::new("vagrant")
        .current_dir(&ws)
        .env("VAGRANT_HOME", sb.path("vagrant-home"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .args(["validate", "--ignore-provider"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&validate.stdout);
    assert!(validate.status.success(), "{said}");
    assert!(
        said.contains("Vagrantfile validated successfully"),
        "{said}"
    );

    let error = sb.fails(&["env", "up", "paas", "1161"]);
    for machine in ["web", "db"] {
        assert!(
            error.contains(&format!(
                "machine {machine}: vagrant has no VM provider to run it on this host"
            )),
            "{error}"
        );
    }
    assert!(
        error.contains("apt-get install vagrant-libvirt libvirt-daemon-system"),
        "{error}"
    );
    assert!(error.contains("or install VirtualBox"), "{error}");
    assert!(error.contains("bess env reload paas 1161"), "{error}");

    let status = sb.json(&["env", "status", "paas", "1161"]);
    assert_eq!(status["state"], "failed", "{status}");
    for m in status["machines"].as_array().unwrap() {
        assert_eq!(m["state"], "failed", "{status}");
        assert_eq!(m["observed"], "absent", "{status}");
        assert_eq!(m["provider"], "vagrant", "{status}");
    }
    // Nothing of vagrant's was made, and the environment goes whole.
    assert!(!sb.repo.join("machines/paas/1161").exists());
    sb.ok(&["env", "destroy", "paas", "1161"]);
    assert!(!ws.exists());
    assert!(!sb.repo.join("machines/paas").exists());
    assert_eq!(sb.json(&["env", "list"]), serde_json::json!([]));
}

/// Without vagrant on PATH, `env up` names the package, before any
/// machine is touched.
#[test]
fn env_up_without_vagrant_names_the_package_to_install() {
    let sb = vagrant_platform();
    let empty = sb.path("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_REPO", &sb.repo)
        .env("PATH", &empty)
        .args(["env", "up", "paas", "1161"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains(
            "`vagrant` is not installed on this host; install it with `apt-get install vagrant`"
        ),
        "{error}"
    );
    let status = sb.json(&["env", "status", "paas", "1161"]);
    assert_eq!(status["state"], "ready", "{status}");
    sb.ok(&["env", "destroy", "paas", "1161"]);
}
