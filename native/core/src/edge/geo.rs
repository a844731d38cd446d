//! The client's region at the edge, from its address: what a token's licensed regions are checked against.
//!
//! The address is the connection's peer, unless the peer is a configured trusted proxy (a load balancer in front
//! of the edge): then `X-Forwarded-For` is read from the right, skipping trusted proxies. The region comes from
//! the first layer that knows the address (the control plane flattens the GeoIP database into the first layer and
//! the configured network table into the second: `services/common/geo.py` has the same rules), by longest prefix;
//! loopback addresses have their own region (the all-in-one), anything else the default ("" = unknown).

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Deserialize;

use crate::Error;

/// Most `X-Forwarded-For` hops looked at.
const MAX_HOPS: usize = 32;

/// What the control plane hands the data plane (`edge.config.EdgeGeoConfig` writes it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoConfig {
    /// Lookup layers, first match wins: each a list of `(network, region)`, e.g. `("203.0.113.0/24", "JP")`.
    #[serde(default)]
    pub layers: Vec<Vec<(String, String)>>,
    #[serde(default)]
    pub loopback_region: String,
    #[serde(default)]
    pub default_region: String,
    /// Networks whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// Longest-prefix matching: one hash map per prefix length, longest first.
#[derive(Debug, Default)]
struct PrefixTable {
    v4: Vec<(u8, HashMap<u32, String>)>,
    v6: Vec<(u8, HashMap<u128, String>)>,
}

fn mask4(addr: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask6(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (128 - u32::from(len)))
    }
}

fn parse_network(text: &str) -> crate::Result<(IpAddr, u8)> {
    let bad = || {
        Error::InvalidArgument(format!(
            "edge config: {text:?} is not a network (address/length)"
        ))
    };
    let (addr, len) = text.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if (addr.is_ipv4() && len > 32) || len > 128 {
        return Err(bad());
    }
    Ok((addr, len))
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

impl PrefixTable {
    fn build(entries: &[(String, String)]) -> crate::Result<Self> {
        let mut v4: HashMap<u8, HashMap<u32, String>> = HashMap::new();
        let mut v6: HashMap<u8, HashMap<u128, String>> = HashMap::new();
        for (network, value) in entries {
            match parse_network(network)? {
                (IpAddr::V4(a), len) => {
                    v4.entry(len)
                        .or_default()
                        .insert(mask4(u32::from(a), len), value.clone());
                }
                (IpAddr::V6(a), len) => {
                    v6.entry(len)
                        .or_default()
                        .insert(mask6(u128::from(a), len), value.clone());
                }
            }
        }
        let mut table = Self {
            v4: v4.into_iter().collect(),
            v6: v6.into_iter().collect(),
        };
        table.v4.sort_by_key(|e| std::cmp::Reverse(e.0));
        table.v6.sort_by_key(|e| std::cmp::Reverse(e.0));
        Ok(table)
    }

    fn get(&self, addr: IpAddr) -> Option<&str> {
        match canonical(addr) {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4
                    .iter()
                    .find_map(|(len, map)| map.get(&mask4(a, *len)).map(String::as_str))
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6
                    .iter()
                    .find_map(|(len, map)| map.get(&mask6(a, *len)).map(String::as_str))
            }
        }
    }
}

/// The edge's geo lookups.
#[derive(Debug)]
pub struct Geo {
    layers: Vec<PrefixTable>,
    trusted: PrefixTable,
    loopback_region: String,
    default_region: String,
}

impl Geo {
    pub fn new(config: &GeoConfig) -> crate::Result<Self> {
        let trusted: Vec<(String, String)> = config
            .trusted_proxies
            .iter()
            .map(|n| (n.clone(), String::new()))
            .collect();
        Ok(Self {
            layers: config
                .layers
                .iter()
                .map(|layer| PrefixTable::build(layer))
                .collect::<crate::Result<_>>()?,
            trusted: PrefixTable::build(&trusted)?,
            loopback_region: config.loopback_region.clone(),
            default_region: config.default_region.clone(),
        })
    }

    /// The client's address: the peer, or behind trusted proxies the first untrusted hop from the right.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let mut client = canonical(peer);
        let Some(chain) = forwarded_for else {
            return client;
        };
        for hop in chain.rsplit(',').take(MAX_HOPS) {
            if self.trusted.get(client).is_none() {
                break;
            }
            match hop.trim().parse::<IpAddr>() {
                Ok(addr) => client = canonical(addr),
                Err(_) => break,
            }
        }
        client
    }

    /// The ISO 3166-1 alpha-2 region of `addr` ("" when unknown).
    pub fn region(&self, addr: IpAddr) -> &str {
        let addr = canonical(addr);
        if addr.is_loopback() {
            return &self.loopback_region;
        }
        self.layers
            .iter()
            .find_map(|layer| layer.get(addr))
            .unwrap_or(&self.default_region)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn layers_longest_prefix_loopback_and_forwarded_chains() {
        let geo = Geo::new(&GeoConfig {
            layers: vec![
                pairs(&[
                    ("203.0.113.0/24", "JP"),
                    ("203.0.113.128/25", "KR"),
                    ("2001:db8::/32", "DE"),
                ]),
                pairs(&[("203.0.0.0/8", "AU"), ("198.51.100.0/24", "FR")]),
            ],
            loopback_region: "US".into(),
            default_region: String::new(),
            trusted_proxies: vec!["10.0.0.0/8".into()],
        })
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(geo.region(ip("203.0.113.9")), "JP");
        assert_eq!(geo.region(ip("203.0.113.200")), "KR");
        assert_eq!(
            geo.region(ip("203.9.9.9")),
            "AU",
            "the second layer answers what the first does not"
        );
        assert_eq!(geo.region(ip("198.51.100.1")), "FR");
        assert_eq!(geo.region(ip("::ffff:198.51.100.1")), "FR");
        assert_eq!(geo.region(ip("2001:db8::5")), "DE");
        assert_eq!(geo.region(ip("127.0.0.1")), "US");
        assert_eq!(geo.region(ip("::1")), "US");
        assert_eq!(geo.region(ip("192.0.2.1")), "");
        let peer = ip("192.0.2.1");
        assert_eq!(
            geo.client(peer, Some("203.0.113.9")),
            peer,
            "an untrusted peer's header is ignored"
        );
        let lb = ip("10.1.2.3");
        assert_eq!(geo.client(lb, Some("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(
            geo.client(lb, Some("6.6.6.6, 203.0.113.9, 10.9.9.9")),
            ip("203.0.113.9")
        );
        assert_eq!(geo.client(lb, Some("junk")), lb);
        assert!(Geo::new(&GeoConfig {
            layers: vec![pairs(&[("1.2.3.4/33", "XX")])],
            ..GeoConfig::default()
        })
        .is_err());
    }
}
