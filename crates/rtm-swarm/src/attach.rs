//! Whether this process can reach the engines at all: their addresses are
//! on the overlay network, which only a container attached to it routes.
//! Run elsewhere (on a host), a probe of `10.0.x.y` leaves through the
//! default route and whatever answers there is taken for the engine —
//! seen on this project's machine (a foreign 404). So `ping` (and with it
//! `/readyz`) fails until rtmanager runs attached to the network.
//!
//! The check reads this network namespace's IPv4 routes
//! (`/proc/net/route`) and wants each IPv4 subnet of the network routed
//! directly (no gateway), as Docker sets it up for an attached container.

use std::net::Ipv4Addr;

/// One directly connected IPv4 route: destination and mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route {
    dest: u32,
    mask: u32,
}

/// The directly connected routes of `/proc/net/route`'s text.
fn direct_routes(text: &str) -> Vec<Route> {
    // The kernel prints each address as the u32 of its network-order
    // bytes in this host's byte order: `to_ne_bytes` gives the bytes back.
    let addr = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, gateway, mask) = (addr(f.get(1)?)?, addr(f.get(2)?)?, addr(f.get(7)?)?);
            (gateway == [0; 4]).then(|| Route {
                dest: u32::from_be_bytes(dest),
                mask: u32::from_be_bytes(mask),
            })
        })
        .collect()
}

/// `a.b.c.d/n` → (address, prefix length); `None` for IPv6 or junk.
fn parse_subnet(s: &str) -> Option<(u32, u32)> {
    let (addr, len) = s.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((u32::from(addr), len))
}

/// Whether `subnet` is routed directly by one of `routes`' text: a route
/// at most as specific as the subnet that contains it.
pub(crate) fn routed_here(routes: &str, subnet: &str) -> Option<bool> {
    let (addr, len) = parse_subnet(subnet)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some(
        direct_routes(routes)
            .iter()
            .any(|r| r.mask != 0 && (r.mask & mask) == r.mask && (addr & r.mask) == r.dest),
    )
}

impl crate::SwarmRuntime {
    /// `Ok` when every IPv4 subnet of the engines' network is routed
    /// directly here, or when the network does not exist yet (nothing to
    /// probe) or this system has no `/proc/net/route` (not Linux: not
    /// checked).
    pub(crate) async fn check_attached(&self) -> Result<(), rtm_domain::RuntimeError> {
        let name = &self.config().docker.network;
        let net = match self.api().network(name).await {
            Ok(net) => net,
            Err(e) if crate::error::is_not_found(&e) => return Ok(()),
            Err(e) => return Err(crate::error::to_runtime(e, &format!("network {name}"))),
        };
        let Ok(routes) = std::fs::read_to_string("/proc/net/route") else {
            return Ok(());
        };
        let subnets = net
            .pointer("/IPAM/Config")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("Subnet")?.as_str());
        for subnet in subnets {
            if routed_here(&routes, subnet) == Some(false) {
                return Err(rtm_domain::RuntimeError::Other(format!(
                    "rtmanager is not attached to the engines' network {name} ({subnet} is not \
                     routed here): probes of engines would leave through the default route; \
                     run rtmanager attached to that network (docs/swarm.md)"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's table (x86, little-endian), plus an attached overlay.
    const TABLE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
        eth1\t0022000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    #[test]
    #[cfg(target_endian = "little")]
    fn a_subnet_is_routed_here_only_through_a_direct_route() {
        assert_eq!(routed_here(TABLE, "10.0.34.0/24"), Some(true));
        assert_eq!(routed_here(TABLE, "172.17.0.0/16"), Some(true));
        assert_eq!(
            routed_here(TABLE, "172.17.3.0/24"),
            Some(true),
            "inside a wider route"
        );
        assert_eq!(
            routed_here(TABLE, "10.0.35.0/24"),
            Some(false),
            "only the default route"
        );
        assert_eq!(
            routed_here(TABLE, "10.0.0.0/8"),
            Some(false),
            "wider than the route"
        );
        assert_eq!(routed_here(TABLE, "fd00::/64"), None);
    }

    /// The table of a container attached to an overlay network of subnet
    /// 10.0.72.0/24 on this machine (`/proc/<pid>/net/route`, read from
    /// the host), and the host's own table, which lacks that route.
    #[test]
    #[cfg(target_endian = "little")]
    fn an_attached_container_routes_the_overlay_subnet_and_the_host_does_not() {
        let attached =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth1\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t0048000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            eth1\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let host =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            docker_gwbridge\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(routed_here(attached, "10.0.72.0/24"), Some(true));
        assert_eq!(routed_here(host, "10.0.72.0/24"), Some(false));
    }
}
