//! Which addresses this host may connect to when it reaches a server someone else runs (an
//! imported remote): the URL comes from an untrusted document, so it must not make the prober
//! reach this deployment's own network (instance metadata, internal services, loopback).
//!
//! The rules are pure: [`RemoteEgressPolicy::check`] judges one address. The MCP adapter
//! resolves the host, refuses the connection when **any** resolved address is refused, and
//! connects only to the checked addresses (so a DNS answer that changes between the check and
//! the connection cannot slip a refused address in).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::error::{Error, Result};

/// IPv4 ranges no remote may resolve to, with why (shown in logs and tests, never to callers
/// with the address).
const REFUSED_V4: &[(Ipv4Net, &str)] = &[
    (
        Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8),
        "this-network",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8),
        "private",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10),
        "shared address space (CGNAT)",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8),
        "loopback",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16),
        "link-local (cloud metadata)",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12),
        "private",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 0, 0), 24),
        "protocol assignments",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 2, 0), 24),
        "documentation",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16),
        "private",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15),
        "benchmarking",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(198, 51, 100, 0), 24),
        "documentation",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(203, 0, 113, 0), 24),
        "documentation",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4),
        "multicast",
    ),
    // 240/4 holds the limited broadcast address 255.255.255.255 too.
    (
        Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4),
        "reserved or broadcast",
    ),
];

/// IPv6 ranges no remote may resolve to. The forms that embed an IPv4 address (mapped,
/// compatible, NAT64, 6to4) are judged by the address they embed instead.
const REFUSED_V6: &[(Ipv6Net, &str)] = &[
    (
        Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 128),
        "unspecified",
    ),
    (Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128), "loopback"),
    (
        Ipv6Net::new_assert(Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),
        "discard-only",
    ),
    (
        Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
        "documentation",
    ),
    (
        Ipv6Net::new_assert(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
        "unique-local",
    ),
    (
        Ipv6Net::new_assert(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
        "link-local",
    ),
    (
        Ipv6Net::new_assert(Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),
        "site-local",
    ),
    (
        Ipv6Net::new_assert(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
        "multicast",
    ),
];

/// Most networks a deployment may add to the allowed ones.
pub const MAX_ALLOWED_NETWORKS: usize = 64;

/// The deployment's rules for connections to remote MCP servers. The default refuses every
/// non-public address; [`Self::with_allowed`] opens networks a private deployment (or a test)
/// trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteEgressPolicy {
    allowed: Vec<IpNet>,
}

impl RemoteEgressPolicy {
    /// The default policy plus networks the deployment trusts, which win over the refused
    /// ranges (e.g. `127.0.0.0/8` for a test server, `10.1.0.0/16` for a private one).
    pub fn with_allowed(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Reads a comma- or space-separated CIDR list (a bare address is one host).
    ///
    /// # Errors
    /// `InvalidInput { field: "config" }` naming `setting` for an entry that is not a network,
    /// or more than [`MAX_ALLOWED_NETWORKS`] of them.
    pub fn parse_allowed(setting: &str, raw: &str) -> Result<Self> {
        let mut allowed = Vec::new();
        for item in raw
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    Error::invalid(
                        "config",
                        format!("{setting}: {item:?} is not a network (CIDR) or an address"),
                    )
                })?;
            allowed.push(net.trunc());
        }
        if allowed.len() > MAX_ALLOWED_NETWORKS {
            return Err(Error::invalid(
                "config",
                format!("{setting}: at most {MAX_ALLOWED_NETWORKS} networks"),
            ));
        }
        Ok(Self { allowed })
    }

    /// The networks opened on top of the default rules.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Why `addr` is refused, or `None` when a connection to it is allowed.
    pub fn refusal(&self, addr: IpAddr) -> Option<&'static str> {
        if self.allowed.iter().any(|net| net.contains(&addr)) {
            return None;
        }
        // An IPv4 address written as IPv6 reaches the IPv4 address: judge that one (and the
        // allowed networks again, written as IPv4).
        if let IpAddr::V6(v6) = addr {
            if let Some(v4) = embedded_v4(v6) {
                return self.refusal(IpAddr::V4(v4));
            }
        }
        match addr {
            IpAddr::V4(v4) => REFUSED_V4
                .iter()
                .find(|(net, _)| net.contains(&v4))
                .map(|(_, why)| *why),
            IpAddr::V6(v6) => REFUSED_V6
                .iter()
                .find(|(net, _)| net.contains(&v6))
                .map(|(_, why)| *why),
        }
    }

    /// Checks every address `host` resolved to: all must be allowed, and there must be one.
    ///
    /// # Errors
    /// [`Error::EgressRefused`] naming the host (never the address: it may be internal).
    pub fn check(&self, host: &str, addrs: &[IpAddr]) -> Result<()> {
        if addrs.is_empty() {
            return Err(Error::EgressRefused {
                host: host.to_owned(),
                reason: "it resolves to no address".to_owned(),
            });
        }
        match addrs.iter().find_map(|a| self.refusal(*a)) {
            None => Ok(()),
            Some(why) => Err(Error::EgressRefused {
                host: host.to_owned(),
                reason: format!(
                    "it resolves to a {why} address, outside the networks remote servers may use"
                ),
            }),
        }
    }
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`, not `::` or `::1`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:AABB:CCDD::`).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, a, b, ..] => Some(Ipv4Addr::new(
            (a >> 8) as u8,
            a as u8,
            (b >> 8) as u8,
            b as u8,
        )),
        _ => None,
    }
}

/// Checks that `url` is one this host may reach a remote at: `https`, a host, no credentials.
///
/// # Errors
/// `InvalidInput { field: "url" }`.
pub fn check_remote_url(url: &url::Url) -> Result<()> {
    if url.scheme() != "https" {
        return Err(Error::invalid(
            "url",
            format!("a remote is reached over https only, not {}", url.scheme()),
        ));
    }
    if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(
            "url",
            "a remote URL needs a host and no credentials",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(addr: &str) -> Option<&'static str> {
        RemoteEgressPolicy::default().refusal(addr.parse().unwrap())
    }

    #[test]
    fn each_refused_ipv4_range() {
        for (addr, why) in [
            ("0.0.0.0", "this-network"),
            ("10.1.2.3", "private"),
            ("100.64.0.1", "shared address space (CGNAT)"),
            ("100.127.255.254", "shared address space (CGNAT)"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("169.254.169.254", "link-local (cloud metadata)"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.8", "protocol assignments"),
            ("192.0.2.10", "documentation"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved or broadcast"),
            ("255.255.255.255", "reserved or broadcast"),
        ] {
            assert_eq!(refused(addr), Some(why), "{addr}");
        }
    }

    #[test]
    fn public_ipv4_next_to_refused_ranges_is_allowed() {
        for addr in [
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "169.253.255.255",
            "223.255.255.255",
        ] {
            assert_eq!(refused(addr), None, "{addr}");
        }
    }

    #[test]
    fn each_refused_ipv6_range() {
        for (addr, why) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("100::1", "discard-only"),
            ("2001:db8::1", "documentation"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
        ] {
            assert_eq!(refused(addr), Some(why), "{addr}");
        }
        assert_eq!(refused("2606:4700:4700::1111"), None);
    }

    #[test]
    fn ipv6_forms_of_refused_ipv4_are_refused() {
        for (addr, why) in [
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local (cloud metadata)"),
            ("::ffff:10.0.0.1", "private"),
            ("::127.0.0.1", "loopback"),
            ("::192.168.0.1", "private"),
            ("64:ff9b::a9fe:a9fe", "link-local (cloud metadata)"),
            ("2002:7f00:1::", "loopback"),
            ("2002:c0a8:101::1", "private"),
        ] {
            assert_eq!(refused(addr), Some(why), "{addr}");
        }
        assert_eq!(refused("::ffff:1.1.1.1"), None);
        assert_eq!(refused("64:ff9b::101:101"), None);
    }

    #[test]
    fn allowed_networks_win_and_apply_to_mapped_forms() {
        let policy =
            RemoteEgressPolicy::parse_allowed("SETTING", "127.0.0.0/8, ::1 10.2.0.0/16").unwrap();
        for addr in ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.2.3.4"] {
            assert_eq!(policy.refusal(addr.parse().unwrap()), None, "{addr}");
        }
        assert_eq!(policy.refusal("10.3.0.1".parse().unwrap()), Some("private"));
        assert_eq!(
            policy.refusal("169.254.169.254".parse().unwrap()),
            Some("link-local (cloud metadata)")
        );
    }

    #[test]
    fn a_bad_allowed_network_names_the_setting() {
        let err = RemoteEgressPolicy::parse_allowed("TOOLSHED_X", "10.0.0.0/8,nope").unwrap_err();
        assert!(err.to_string().contains("TOOLSHED_X"), "{err}");
        assert!(RemoteEgressPolicy::parse_allowed("X", "10.0.0.0/33").is_err());
        assert!(RemoteEgressPolicy::parse_allowed("X", "")
            .unwrap()
            .allowed()
            .is_empty());
    }

    #[test]
    fn check_refuses_when_any_address_is_refused_and_names_only_the_host() {
        let policy = RemoteEgressPolicy::default();
        let public: IpAddr = "1.1.1.1".parse().unwrap();
        let private: IpAddr = "10.0.0.7".parse().unwrap();
        assert!(policy.check("mcp.example.com", &[public]).is_ok());
        let err = policy
            .check("mcp.example.com", &[public, private])
            .unwrap_err();
        assert!(matches!(err, Error::EgressRefused { ref host, .. } if host == "mcp.example.com"));
        let text = err.to_string();
        assert!(
            text.contains("mcp.example.com") && !text.contains("10.0.0.7"),
            "{text}"
        );
        assert!(policy.check("nowhere.example", &[]).is_err());
    }

    #[test]
    fn only_https_urls_without_credentials() {
        let ok = url::Url::parse("https://mcp.example.com/mcp").unwrap();
        assert!(check_remote_url(&ok).is_ok());
        for bad in [
            "http://mcp.example.com/mcp",
            "ftp://mcp.example.com/",
            "https://user:pw@mcp.example.com/mcp",
        ] {
            let url = url::Url::parse(bad).unwrap();
            assert!(check_remote_url(&url).is_err(), "{bad}");
        }
    }
}
