//! An environment's network on this host, made with `ip`:
//!
//! ```text
//!  host ── <host_link> ═══ veth ═══ up0 ─┐  netns <env>
//!  gateway/32, a /32 route per machine    br0 ── m<hash> ═══ veth ═══ eth0  netns <env>.<machine>
//! ```
//!
//! The environment's namespace holds a bridge that its machines' links
//! join, so machines reach each other without the host forwarding
//! anything. The host reaches each machine by a /32 route through its own
//! veth, which lets two environments of one platform (one range, one
//! gateway address) live side by side. Machines get no default route:
//! nothing they send can leave for another network.
//!
//! Every step is idempotent, so `env up` after a kill finishes the job and
//! `env destroy` removes whatever exists.

use super::{EnvNetwork, Program, ProviderError};
use sha2::{Digest, Sha256};
use std::net::Ipv4Addr;
use std::path::Path;

/// The bridge inside the environment's namespace.
const BRIDGE: &str = "br0";
/// The environment namespace's end of the host's veth pair.
const UPLINK: &str = "up0";
/// A machine's interface in its own namespace.
pub const MACHINE_LINK: &str = "eth0";

impl EnvNetwork {
    /// The network of the environment whose namespace is `netns`.
    pub fn new(netns: &str, gateway: Ipv4Addr, prefix: u8) -> EnvNetwork {
        EnvNetwork {
            netns: netns.into(),
            host_link: format!("bh{}", short_hash(netns)),
            gateway,
            prefix,
        }
    }

    /// The namespace, bridge and host link, with the gateway address.
    pub fn ensure(&self) -> Result<(), ProviderError> {
        add_netns(&self.netns)?;
        let ns = self.netns.as_str();
        if !link_exists(Some(ns), BRIDGE)? {
            ip(&["-n", ns, "link", "add", BRIDGE, "type", "bridge"])?;
        }
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&["-n", ns, "link", "set", BRIDGE, "up"])?;
        if !link_exists(None, &self.host_link)? {
            // The peer is made inside the namespace: no name clash on the host.
            let host = self.host_link.as_str();
            ip(&[
                "link", "add", host, "type", "veth", "peer", "name", UPLINK, "netns", ns,
            ])?;
        }
        ip(&["-n", ns, "link", "set", UPLINK, "master", BRIDGE, "up"])?;
        let gateway = format!("{}/32", self.gateway);
        let listed = ip(&["-4", "-o", "addr", "show", "dev", &self.host_link])?;
        if !listed.stdout.contains(&format!("inet {gateway}")) {
            ip(&["addr", "add", &gateway, "dev", &self.host_link])?;
        }
        ip(&["link", "set", &self.host_link, "up"])?;
        Ok(())
    }

    /// A machine's own namespace `machine_ns` with `eth0` at `address`,
    /// joined to the bridge, and the host's route to it.
    pub fn attach(&self, machine_ns: &str, address: Ipv4Addr) -> Result<(), ProviderError> {
        add_netns(machine_ns)?;
        let link = machine_link(machine_ns);
        let ns = self.netns.as_str();
        if !link_exists(Some(machine_ns), MACHINE_LINK)? {
            if link_exists(Some(ns), &link)? {
                ip(&["-n", ns, "link", "del", &link])?;
            }
            let mac = machine_mac(address);
            let peer = [
                "peer",
                "name",
                MACHINE_LINK,
                "address",
                &mac,
                "netns",
                machine_ns,
            ];
            let mut args = vec!["-n", ns, "link", "add", &link, "type", "veth"];
            args.extend(peer);
            ip(&args)?;
        }
        ip(&["-n", ns, "link", "set", &link, "master", BRIDGE, "up"])?;
        self.address_machine(machine_ns, MACHINE_LINK, address)?;
        self.route(address)
    }

    /// A tap on the bridge for the virtual machine whose namespace would
    /// be `machine_ns` (the tap carries that name's link, so `detach`
    /// removes it), and the host's route to the machine's `address`.
    /// QEMU opens the tap from inside the environment's namespace.
    pub fn attach_tap(&self, machine_ns: &str, address: Ipv4Addr) -> Result<String, ProviderError> {
        let link = machine_link(machine_ns);
        let ns = self.netns.as_str();
        if !link_exists(Some(ns), &link)? {
            ip(&["-n", ns, "tuntap", "add", "dev", &link, "mode", "tap"])?;
        }
        ip(&["-n", ns, "link", "set", &link, "master", BRIDGE, "up"])?;
        self.route(address)?;
        Ok(link)
    }

    /// `address` on `link` in namespace `ns`, up, with loopback up.
    pub fn address_machine(
        &self,
        ns: &str,
        link: &str,
        address: Ipv4Addr,
    ) -> Result<(), ProviderError> {
        let cidr = format!("{address}/{}", self.prefix);
        let listed = ip(&["-n", ns, "-4", "-o", "addr", "show", "dev", link])?;
        if !listed.stdout.contains(&format!("inet {cidr}")) {
            ip(&["-n", ns, "addr", "add", &cidr, "dev", link])?;
        }
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&["-n", ns, "link", "set", link, "up"])?;
        Ok(())
    }

    /// The host's /32 route to a machine through this environment's link.
    pub fn route(&self, address: Ipv4Addr) -> Result<(), ProviderError> {
        let to = format!("{address}/32");
        let gateway = self.gateway.to_string();
        ip(&[
            "route",
            "replace",
            &to,
            "dev",
            &self.host_link,
            "src",
            &gateway,
        ])?;
        Ok(())
    }

    /// Removes a machine's route, link and namespace.
    pub fn detach(&self, machine_ns: &str, address: Ipv4Addr) -> Result<(), ProviderError> {
        self.unroute(address)?;
        let link = machine_link(machine_ns);
        if netns_exists(&self.netns) && link_exists(Some(&self.netns), &link)? {
            ip(&["-n", &self.netns, "link", "del", &link])?;
        }
        del_netns(machine_ns)
    }

    /// Removes the host's route to `address` if it goes through this network.
    pub fn unroute(&self, address: Ipv4Addr) -> Result<(), ProviderError> {
        let to = format!("{address}/32");
        let routes = ip(&["-4", "-o", "route", "show", &to])?;
        if routes.stdout.contains(&format!("dev {} ", self.host_link)) {
            ip(&["route", "del", &to, "dev", &self.host_link])?;
        }
        Ok(())
    }

    /// Removes the host link (its peer goes with it) and the namespace.
    pub fn remove(&self) -> Result<(), ProviderError> {
        if link_exists(None, &self.host_link)? {
            ip(&["link", "del", &self.host_link])?;
        }
        del_netns(&self.netns)
    }

    /// Whether any part of the network exists on this host.
    pub fn exists(&self) -> Result<bool, ProviderError> {
        Ok(netns_exists(&self.netns) || link_exists(None, &self.host_link)?)
    }
}

/// A machine's MAC address, made of its IPv4 address: a machine started
/// again keeps it, so the host's and the other machines' ARP caches stay
/// right. A new random one would leave them sending to the old address
/// until their entries go stale, half a minute or more.
pub fn machine_mac(address: Ipv4Addr) -> String {
    let [a, b, c, d] = address.octets();
    // 02: locally administered, unicast.
    format!("02:b5:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// The bridge's end of a machine's veth pair: `m` and a hash of its namespace.
pub fn machine_link(machine_ns: &str) -> String {
    format!("m{}", short_hash(machine_ns))
}

/// Ten hex digits of SHA-256: interface names hold 15 characters.
fn short_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))[..10].to_string()
}

fn ip(args: &[&str]) -> Result<super::RunOutput, ProviderError> {
    Program::IP.run(args)
}

/// Whether `/run/netns/<name>` exists.
pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn add_netns(name: &str) -> Result<(), ProviderError> {
    if !netns_exists(name) {
        ip(&["netns", "add", name])?;
    }
    Ok(())
}

fn del_netns(name: &str) -> Result<(), ProviderError> {
    if netns_exists(name) {
        ip(&["netns", "del", name])?;
    }
    Ok(())
}

/// Whether `link` exists in namespace `ns` (the host's when `None`).
fn link_exists(ns: Option<&str>, link: &str) -> Result<bool, ProviderError> {
    let mut args = Vec::new();
    if let Some(ns) = ns {
        if !netns_exists(ns) {
            return Ok(false);
        }
        args.extend(["-n", ns]);
    }
    args.extend(["-o", "link", "show", "dev", link]);
    Ok(Program::IP.output(&args, &[])?.success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_mac_is_its_address_and_locally_administered() {
        let mac = machine_mac(Ipv4Addr::new(10, 231, 7, 2));
        assert_eq!(mac, "02:b5:0a:e7:07:02");
    }

    #[test]
    fn link_names_fit_the_kernel_limit() {
        let net = EnvNetwork::new(
            "bess-0123abcd.a-platform-with-a-long-name.proj-4242",
            Ipv4Addr::new(10, 213, 0, 1),
            24,
        );
        assert_eq!(net.host_link.len(), 12);
        assert!(machine_link(&format!("{}.web", net.netns)).len() <= 15);
        assert_ne!(
            machine_link("bess-x.p.e.web"),
            machine_link("bess-x.p.e.db")
        );
    }
}
