//! Client addresses as the abuse limits count them: one unit per IPv4 address or IPv6 /64.
//!
//! Shared by the HTTP API's limits and the SSH front door's, so that both count a client
//! the same way.

use std::net::IpAddr;

/// An IPv6 client usually owns a whole /64, so that is the unit counted; IPv4 (and
/// IPv4-mapped IPv6) addresses count one by one.
pub fn network_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}
