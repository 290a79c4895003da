//! A platform's IPv4 range and the addresses it hands out.
//!
//! The first address after the network's is the host's end of the
//! machines' network (the gateway, and where machines reach `bess serve`);
//! machines get the addresses after it, up to the one before broadcast.
//! Which of those are taken is the catalog's business (a UNIQUE column),
//! not this module's.

use super::EnvError;
use std::net::Ipv4Addr;

/// Widest prefix accepted: a /30 leaves one machine beside the host.
const MAX_PREFIX: u8 = 30;

/// An IPv4 network in CIDR notation, `10.77.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: u32,
    prefix: u8,
}

impl IpRange {
    /// Parses `a.b.c.d/prefix`, refusing host bits and IPv6.
    pub fn parse(text: &str) -> Result<IpRange, EnvError> {
        let invalid = |rule: String| EnvError::Usage(format!("--ip-range `{text}`: {rule}"));
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| invalid("write a network in CIDR notation, e.g. 10.77.0.0/24".into()))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| {
            invalid("not an IPv4 network (machines' networks are IPv4), e.g. 10.77.0.0/24".into())
        })?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=MAX_PREFIX).contains(p))
            .ok_or_else(|| invalid(format!("the prefix length must be 8 to {MAX_PREFIX}")))?;
        let range = IpRange {
            network: u32::from(addr) & mask(prefix),
            prefix,
        };
        if range.network != u32::from(addr) {
            return Err(invalid(format!(
                "host bits are set; the network is {range}"
            )));
        }
        Ok(range)
    }

    /// The host's address on the machines' network (network + 1).
    pub fn host_address(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    /// Addresses machines may get, lowest first.
    pub fn machine_addresses(&self) -> impl Iterator<Item = u32> {
        let broadcast = self.network | !mask(self.prefix);
        (self.network + 2)..broadcast
    }

    /// How many machines fit.
    pub fn capacity(&self) -> usize {
        self.machine_addresses().count()
    }

    /// Whether `address` is one [`IpRange::machine_addresses`] yields.
    pub fn holds_machine(&self, address: u32) -> bool {
        self.machine_addresses().any(|a| a == address)
    }

    /// Whether two ranges share an address.
    pub fn overlaps(&self, other: &IpRange) -> bool {
        let prefix = self.prefix.min(other.prefix);
        self.network & mask(prefix) == other.network & mask(prefix)
    }

    /// The prefix length, for the machines' netmask.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX << (32 - u32::from(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_hands_out_the_addresses_between_host_and_broadcast() {
        let range = IpRange::parse("10.77.0.0/24").unwrap();
        assert_eq!(range.to_string(), "10.77.0.0/24");
        assert_eq!(range.host_address(), Ipv4Addr::new(10, 77, 0, 1));
        let first = range.machine_addresses().next().unwrap();
        assert_eq!(Ipv4Addr::from(first), Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(range.capacity(), 253);
        assert!(!range.holds_machine(u32::from(Ipv4Addr::new(10, 77, 0, 255))));
        let tiny = IpRange::parse("10.9.0.0/30").unwrap();
        assert_eq!(tiny.capacity(), 1);
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        for (text, complaint) in [
            ("10.77.0.5/24", "the network is 10.77.0.0/24"),
            ("10.77.0.0", "CIDR notation"),
            ("fd00::/64", "IPv4"),
            ("10.77.0.0/31", "8 to 30"),
            ("10.77.0.0/x", "8 to 30"),
        ] {
            let error = IpRange::parse(text).unwrap_err().to_string();
            assert!(error.contains(complaint), "{text}: {error}");
        }
    }

    #[test]
    fn overlapping_ranges_are_seen() {
        let a = IpRange::parse("10.77.0.0/16").unwrap();
        let b = IpRange::parse("10.77.5.0/24").unwrap();
        let c = IpRange::parse("10.78.0.0/24").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }
}
