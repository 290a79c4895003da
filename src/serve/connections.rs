//! Open connections per client address, capped below the server's total.
//!
//! Without a cap per address, one host opening slow connections (headers
//! sent a byte at a time) held every permit of `max-connections` until
//! their header deadline, and everyone else waited. Reverse proxies in
//! `trusted-proxies` carry many clients and are exempt.

use crate::config::Cidr;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts of open connections by peer address.
pub struct PerAddress {
    cap: usize,
    exempt: Vec<Cidr>,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One counted connection; dropping it counts it out.
pub struct Claim {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    /// At most `cap` connections from each address not in `exempt`.
    pub fn new(cap: usize, exempt: Vec<Cidr>) -> PerAddress {
        PerAddress {
            cap,
            exempt,
            open: Arc::default(),
        }
    }

    /// New limits over the same counts (connections open stay counted).
    pub fn with_limits(&self, cap: usize, exempt: Vec<Cidr>) -> PerAddress {
        PerAddress {
            cap,
            exempt,
            open: self.open.clone(),
        }
    }

    /// Counts a new connection from `ip`, or `None` when it has too many.
    pub fn claim(&self, ip: IpAddr) -> Option<Claim> {
        let ip = ip.to_canonical();
        let exempt = self.exempt.iter().any(|net| net.contains(ip));
        let mut open = self.open.lock().expect("connections lock");
        let count = open.entry(ip).or_default();
        if *count >= self.cap && !exempt {
            if *count == 0 {
                open.remove(&ip);
            }
            return None;
        }
        *count += 1;
        Some(Claim {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("connections lock");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_cap_and_proxies_none() {
        let proxy = Cidr::parse("10.0.0.1").unwrap();
        let caps = PerAddress::new(2, vec![proxy]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = caps.claim(a).unwrap();
        let _second = caps.claim(a).unwrap();
        assert!(caps.claim(a).is_none());
        assert!(caps.claim("192.0.2.2".parse().unwrap()).is_some());
        drop(first);
        assert!(
            caps.claim(a).is_some(),
            "a closed connection frees its place"
        );
        let held: Vec<_> = (0..5)
            .map(|_| caps.claim("10.0.0.1".parse().unwrap()).unwrap())
            .collect();
        assert_eq!(held.len(), 5);
    }
}
