//! Who the client is: the connection's peer, or, when that peer is a
//! reverse proxy listed in `[serve] trusted-proxies`, the address the
//! proxy says it forwarded for.
//!
//! Behind a proxy every connection comes from the proxy, so the brake on
//! guessing and the allow-lists would treat all clients as one. The
//! forwarding headers are believed only from a trusted peer, since anyone
//! else could write them; of the addresses they list, the client is the
//! nearest one that is not itself a trusted proxy (RFC 7239 section 7.4:
//! each proxy appends, so only the right-hand end is vouched for).

use crate::config::Cidr;
use hyper::HeaderMap;
use std::net::{IpAddr, SocketAddr};

/// The address a request is from, for the brake, allow-lists and logs.
pub fn address(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops = forwarded_for(headers).or_else(|| x_forwarded_for(headers));
    let Some(hops) = hops else {
        return peer;
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        // An entry that is not an address (`unknown`, an obfuscated
        // name) ends what can be believed: the last trusted hop stands.
        let Some(ip) = hop else {
            break;
        };
        client = *ip;
        if !is_trusted(*ip) {
            break;
        }
    }
    client
}

/// The `for=` addresses of every `Forwarded` header, in order (`None` for
/// one that names no address).
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        let value = value.to_str().ok()?;
        for element in value.split(',') {
            let node = element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case("for").then_some(value)
            });
            hops.push(node.and_then(node_address));
        }
    }
    (!hops.is_empty()).then_some(hops)
}

/// The addresses of every `X-Forwarded-For` header, in order.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let value = value.to_str().ok()?;
        hops.extend(value.split(',').map(|hop| node_address(hop.trim())));
    }
    (!hops.is_empty()).then_some(hops)
}

/// `192.0.2.1`, `"192.0.2.1:8080"`, `"[2001:db8::1]"` or `"[2001:db8::1]:443"`.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = node.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    let bracketed = node.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|n| Cidr::parse(n).unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_taken_at_their_address() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(address(ip("198.51.100.7"), &h, &[]), ip("198.51.100.7"));
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            address(ip("198.51.100.7"), &h, &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let trusted = nets(&["127.0.0.1"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(address(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
        let h = headers(&[("forwarded", "for=\"[2001:db8::7]:4711\";proto=https")]);
        assert_eq!(address(ip("127.0.0.1"), &h, &trusted), ip("2001:db8::7"));
        // No header: the proxy itself.
        assert_eq!(
            address(ip("127.0.0.1"), &headers(&[]), &trusted),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn only_the_right_hand_end_is_believed() {
        let trusted = nets(&["127.0.0.1", "10.1.0.0/16"]);
        // The client wrote 1.1.1.1 itself; the outer proxy appended what it saw.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.1.2.3")]);
        assert_eq!(address(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "unknown"),
        ]);
        assert_eq!(address(ip("127.0.0.1"), &h, &trusted), ip("127.0.0.1"));
        let h = headers(&[("forwarded", "for=1.1.1.1, for=_hidden, for=10.1.0.9")]);
        assert_eq!(address(ip("127.0.0.1"), &h, &trusted), ip("10.1.0.9"));
    }
}
