//! Who the client is behind trusted reverse proxies.
//!
//! Each proxy appends the address it received the request from to `X-Forwarded-For`, so
//! the header is read from the right, and believed only as far as the hops are proxies
//! named in `server.trusted_proxies`: the first hop that is not one of them is the client.
//! Anything to its left was written by the client and proves nothing. From a peer that
//! is not a trusted proxy the header is ignored altogether, so a client can never pick
//! the address its failed authentications are counted against.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The address failed authentications are counted against: `peer` itself unless it is
/// a trusted proxy; otherwise the nearest hop of `X-Forwarded-For` that is not a trusted
/// proxy. A hop that does not parse ends the walk at the last address a trusted proxy
/// vouched for (so garbage is counted against the proxy that passed it on). Trusting a
/// proxy means trusting whoever can send through it or from its address: on the CA host
/// itself, `127.0.0.1` lets every local user name any client address.
pub(super) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    // An IPv4 peer on a dual-stack socket shows up as ::ffff:a.b.c.d; compare it (and
    // every hop) as the IPv4 address it is, so an IPv4 entry in the list matches.
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Header lines in order, each split on commas, walked from the right. Bytes, not
    // text: a client's own (leftmost) part may hold anything, and only the hops actually
    // walked are parsed.
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .flat_map(|v| v.as_bytes().rsplit(|b| *b == b','));
    let mut client = peer;
    for hop in hops {
        match parse_hop(hop) {
            Some(ip) if is_trusted(&ip) => client = ip,
            Some(ip) => return ip,
            None => return client,
        }
    }
    client
}

/// `192.0.2.1`, `2001:db8::1`, or either with a port (`192.0.2.1:443`,
/// `[2001:db8::1]:443`), surrounding spaces allowed; IPv4-mapped IPv6 as IPv4.
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok()?.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn proxies() -> Vec<IpNet> {
        vec![
            "10.0.0.0/24".parse().unwrap(),
            "2001:db8::/64".parse().unwrap(),
        ]
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let h = headers(&["203.0.113.7"]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &[]), ip("10.0.0.5"));
    }

    #[test]
    fn a_peer_that_is_not_a_trusted_proxy_cannot_name_another_client() {
        let h = headers(&["203.0.113.7"]);
        assert_eq!(
            client_ip(ip("198.51.100.9"), &h, &proxies()),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_last_hop_is_the_client() {
        let h = headers(&["203.0.113.7"]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &proxies()), ip("203.0.113.7"));
    }

    #[test]
    fn hops_the_client_wrote_itself_are_not_believed() {
        // The client sent "X-Forwarded-For: 1.1.1.1"; the proxy appended the real address.
        let h = headers(&["1.1.1.1, 203.0.113.7"]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &proxies()), ip("203.0.113.7"));
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_to_the_first_untrusted_hop() {
        let h = headers(&["1.1.1.1, 203.0.113.7", "10.0.0.9", "2001:db8::2"]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &proxies()), ip("203.0.113.7"));
    }

    #[test]
    fn ports_and_ipv6_hops_parse() {
        let h = headers(&["[2001:db8:1::7]:5000"]);
        assert_eq!(
            client_ip(ip("10.0.0.5"), &h, &proxies()),
            ip("2001:db8:1::7")
        );
        let h = headers(&["203.0.113.7:443"]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &proxies()), ip("203.0.113.7"));
    }

    #[test]
    fn garbage_stops_at_the_last_address_a_trusted_proxy_vouched_for() {
        let h = headers(&["203.0.113.7, unknown", "10.0.0.9"]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &proxies()), ip("10.0.0.9"));
        let h = headers(&[""]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &proxies()), ip("10.0.0.5"));
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_selves() {
        // A dual-stack listener sees an IPv4 proxy as ::ffff:10.0.0.5.
        let h = headers(&["::ffff:10.0.0.9, 203.0.113.7", "::ffff:10.0.0.8"]);
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.5"), &h, &proxies()),
            ip("203.0.113.7")
        );
        let h = headers(&["::ffff:203.0.113.7"]);
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.5"), &h, &proxies()),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn bytes_the_client_wrote_left_of_the_proxy_entry_do_not_matter() {
        let mut h = HeaderMap::new();
        let value = axum::http::HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.7").unwrap();
        h.append("x-forwarded-for", value);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &proxies()), ip("203.0.113.7"));
    }

    #[test]
    fn a_trusted_proxy_without_the_header_is_the_client() {
        assert_eq!(
            client_ip(ip("10.0.0.5"), &HeaderMap::new(), &proxies()),
            ip("10.0.0.5")
        );
    }
}
