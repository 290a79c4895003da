//! The `Vagrantfile` of an environment, for teams that run its machines
//! with vagrant (VirtualBox or libvirt): one machine per `[[machine]]`, its
//! box from bess's own catalog with the environment's credential, its
//! address on a private network, and its provisioning steps.
//!
//! A platform that ships its own `Vagrantfile-dist` gets that rendered
//! instead; bess writes this one only where the platform has none.

use super::platform::{MachineSpec, PlatformSpec};
use super::variables::{MachineVariables, Variables};
use std::fmt::Write;

/// The Vagrantfile's text.
pub fn vagrantfile(vars: &Variables, spec: &PlatformSpec) -> String {
    let mut out = format!(
        "# Written by `bess env init` for environment {} of platform {}.\n\
         # Edit the platform's platform.toml, or give it a Vagrantfile-dist, rather than this file.\n\
         Vagrant.configure(\"2\") do |config|\n",
        vars.environment, vars.platform
    );
    for machine in &spec.machines {
        if let Some(m) = vars.machines.get(&machine.name) {
            machine_block(&mut out, vars, m, machine);
        }
    }
    out.push_str("end\n");
    out
}

/// One `config.vm.define` block.
fn machine_block(out: &mut String, vars: &Variables, m: &MachineVariables, machine: &MachineSpec) {
    let box_url = with_credential(&m.box_url, &vars.credential.user, &vars.credential.password);
    let _ = writeln!(out, "  config.vm.define {} do |machine|", ruby(&m.name));
    let _ = writeln!(out, "    machine.vm.box = {}", ruby(&m.box_name));
    let _ = writeln!(out, "    machine.vm.box_url = {}", ruby(&box_url));
    let _ = writeln!(out, "    machine.vm.hostname = {}", ruby(&m.name));
    let _ = writeln!(
        out,
        "    machine.vm.network \"private_network\", ip: {}, netmask: {}",
        ruby(&m.ip),
        ruby(&vars.netmask)
    );
    for provider in ["libvirt", "virtualbox"] {
        let _ = writeln!(
            out,
            "    machine.vm.provider {} do |provider|",
            ruby(provider)
        );
        let _ = writeln!(out, "      provider.memory = {}", m.memory);
        let _ = writeln!(out, "      provider.cpus = {}", m.cpus);
        if provider == "libvirt" {
            // libvirt names domains after the workspace's directory (the
            // environment's name) by default: two platforms' environment
            // 1161 would clash.
            let prefix = format!("bess-{}-{}-", vars.platform, vars.environment);
            let _ = writeln!(out, "      provider.default_prefix = {}", ruby(&prefix));
        }
        let _ = writeln!(out, "    end");
    }
    for step in &machine.provision {
        match (&step.shell, &step.ansible) {
            (Some(path), _) => {
                let _ = writeln!(
                    out,
                    "    machine.vm.provision \"shell\", path: {}",
                    ruby(path)
                );
            }
            (None, Some(playbook)) => {
                let _ = writeln!(
                    out,
                    "    machine.vm.provision \"ansible\", playbook: {}",
                    ruby(playbook)
                );
            }
            (None, None) => {}
        }
    }
    let _ = writeln!(out, "  end");
}

/// `http://user:password@host/…`: vagrant sends these to the catalog
/// only, and bess's catalog hands out token URLs for the box files.
fn with_credential(url: &str, user: &str, password: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    // RFC 3986 unreserved characters stay as they are.
    const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let user = utf8_percent_encode(user, USERINFO);
    let password = utf8_percent_encode(password, USERINFO);
    format!("{scheme}://{user}:{password}@{rest}")
}

/// A Ruby string literal: double quotes, with `\`, `"` and `#` escaped
/// (no interpolation) and control characters as escapes.
fn ruby(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' | '"' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruby_strings_cannot_interpolate() {
        assert_eq!(ruby("a\"b#{x}\\"), "\"a\\\"b\\#{x}\\\\\"");
        assert_eq!(ruby("l\nm\u{1}"), "\"l\\nm\\u{1}\"");
    }

    #[test]
    fn credentials_are_escaped_into_the_url() {
        assert_eq!(
            with_credential(
                "http://10.77.0.1:8080/preprod/boxes/acme/b",
                "env.paas.1",
                "p@ss"
            ),
            "http://env.paas.1:p%40ss@10.77.0.1:8080/preprod/boxes/acme/b"
        );
    }
}
