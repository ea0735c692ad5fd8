//! Which addresses the status checks may connect to. A tenant controls the names the checks look
//! up (`mta-sts.<domain>`), so without this a status check could be made to open connections to
//! the provider's own loopback, private network or link-local services.
//!
//! Refused: every range of IANA's IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and
//! its updates: loopback, private use, shared CGNAT space, link-local, documentation,
//! benchmarking, "this network", unspecified, ULA, discard-only, translation prefixes, ...),
//! multicast, the reserved 240.0.0.0/4 with the broadcast address, and IPv6 outside 2000::/3
//! (nothing else is allocated as global unicast) -- unless the configuration allows it
//! (`status_allow_addresses`, CIDR). The caller resolves once, checks every address and connects
//! to the checked addresses only: no second lookup between the check and the connection (DNS
//! rebinding).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// IPv4 special-purpose ranges: (network, prefix length, registry name).
const V4: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "\"this network\""),
    ([10, 0, 0, 0], 8, "private use"),
    ([100, 64, 0, 0], 10, "shared address space (CGNAT)"),
    ([127, 0, 0, 0], 8, "loopback"),
    ([169, 254, 0, 0], 16, "link-local"),
    ([172, 16, 0, 0], 12, "private use"),
    ([192, 0, 0, 0], 24, "IETF protocol assignments"),
    ([192, 0, 2, 0], 24, "documentation (TEST-NET-1)"),
    ([192, 31, 196, 0], 24, "AS112-v4"),
    ([192, 52, 193, 0], 24, "AMT"),
    ([192, 88, 99, 0], 24, "deprecated 6to4 relay anycast"),
    ([192, 168, 0, 0], 16, "private use"),
    ([192, 175, 48, 0], 24, "direct delegation AS112 service"),
    ([198, 18, 0, 0], 15, "benchmarking"),
    ([198, 51, 100, 0], 24, "documentation (TEST-NET-2)"),
    ([203, 0, 113, 0], 24, "documentation (TEST-NET-3)"),
    ([224, 0, 0, 0], 4, "multicast"),
    ([240, 0, 0, 0], 4, "reserved"),
    ([255, 255, 255, 255], 32, "limited broadcast"),
];

/// IPv6 special-purpose ranges inside 2000::/3 (everything outside it is refused anyway, with
/// a name from [`v6_outside`]).
const V6: &[(u16, u16, u8, &str)] = &[
    (0x2001, 0x0000, 23, "IETF protocol assignments"),
    (0x2001, 0x0db8, 32, "documentation"),
    (0x2002, 0x0000, 16, "6to4"),
    (0x3fff, 0x0000, 20, "documentation"),
];

/// The configured exceptions and the check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allow: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a network in CIDR notation (e.g. 127.0.0.2/32)")]
pub struct BadNetwork(String);

impl AddressPolicy {
    /// `allow`: CIDR networks that may be connected to although they are special-purpose.
    pub fn new<S: AsRef<str>>(allow: &[S]) -> Result<Self, BadNetwork> {
        let allow = allow
            .iter()
            .map(|s| {
                let s = s.as_ref().trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| BadNetwork(s.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allow })
    }

    /// `Ok` when the checks may connect to `ip`; otherwise the name of the range that refuses it.
    pub fn check(&self, ip: IpAddr) -> Result<(), &'static str> {
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        match special(ip) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

/// The special-purpose range `ip` is in, if any.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    V4.iter()
        .find(|(net, len, _)| {
            Ipv4Net::new(Ipv4Addr::from(*net), *len).is_ok_and(|n| n.contains(&ip))
        })
        .map(|(_, _, why)| *why)
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let global_unicast =
        Ipv6Net::new(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3).is_ok_and(|n| n.contains(&ip));
    if !global_unicast {
        return Some(v6_outside(ip));
    }
    V6.iter()
        .find(|(a, b, len, _)| {
            Ipv6Net::new(Ipv6Addr::new(*a, *b, 0, 0, 0, 0, 0, 0), *len)
                .is_ok_and(|n| n.contains(&ip))
        })
        .map(|(_, _, _, why)| *why)
}

/// A name for an IPv6 address outside 2000::/3.
fn v6_outside(ip: Ipv6Addr) -> &'static str {
    let s = ip.segments();
    if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if ip.to_ipv4_mapped().is_some() {
        "IPv4-mapped"
    } else if s[0] == 0x64 && s[1] == 0xff9b {
        "IPv4/IPv6 translation"
    } else if s[0] == 0x0100 {
        "discard-only"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "unique local"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "link-local"
    } else if s[0] & 0xff00 == 0xff00 {
        "multicast"
    } else {
        "not global unicast (outside 2000::/3)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn special_purpose_addresses_are_refused() {
        let p = AddressPolicy::default();
        for (a, why) in [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.0.0.1", "private use"),
            ("172.16.0.1", "private use"),
            ("172.31.255.255", "private use"),
            ("192.168.1.1", "private use"),
            ("100.64.0.1", "shared address space (CGNAT)"),
            ("100.127.255.255", "shared address space (CGNAT)"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "\"this network\""),
            ("192.0.0.8", "IETF protocol assignments"),
            ("192.0.2.25", "documentation (TEST-NET-1)"),
            ("198.51.100.1", "documentation (TEST-NET-2)"),
            ("203.0.113.9", "documentation (TEST-NET-3)"),
            ("198.19.0.1", "benchmarking"),
            ("224.0.0.251", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "reserved"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "IPv4-mapped"),
            ("::ffff:8.8.8.8", "IPv4-mapped"),
            ("64:ff9b::a00:1", "IPv4/IPv6 translation"),
            ("100::1", "discard-only"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("fec0::1", "not global unicast (outside 2000::/3)"),
            ("2001:db8::25", "documentation"),
            ("3fff::1", "documentation"),
            ("2001::1", "IETF protocol assignments"),
            ("2002:a00:1::1", "6to4"),
        ] {
            assert_eq!(p.check(ip(a)), Err(why), "{a}");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "198.20.0.1",
            "223.255.255.255",
            "2a00:1450:4001::1",
            "2606:4700::1111",
            "2001:200::1",
        ] {
            assert_eq!(p.check(ip(a)), Ok(()), "{a}");
        }
    }

    #[test]
    fn the_configuration_allows_exactly_what_it_names() {
        let p = AddressPolicy::new(&["127.0.0.2/32", "fd00::/64", "10.1.2.3"]).unwrap();
        assert_eq!(p.check(ip("127.0.0.2")), Ok(()));
        assert_eq!(p.check(ip("127.0.0.1")), Err("loopback"));
        assert_eq!(p.check(ip("10.1.2.3")), Ok(()));
        assert_eq!(p.check(ip("10.1.2.4")), Err("private use"));
        assert_eq!(p.check(ip("fd00::5")), Ok(()));
        assert_eq!(p.check(ip("fd00:0:0:1::5")), Err("unique local"));
        assert!(AddressPolicy::new(&["127.0.0.2/33"]).is_err());
        assert!(AddressPolicy::new(&["localhost"]).is_err());
        // a host part is cut to the network
        let p = AddressPolicy::new(&["127.0.0.9/24"]).unwrap();
        assert_eq!(p.check(ip("127.0.0.200")), Ok(()));
    }
}
