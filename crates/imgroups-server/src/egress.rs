//! Where webhooks may be delivered: the server's outbound policy.
//!
//! A webhook URL is chosen by whoever holds an account token, and the server then makes
//! requests to it from inside its own network. Without a policy that is a server-side request
//! forgery tool: cloud metadata services (`169.254.169.254`), the host's own loopback
//! services, the private network behind the server. So by default:
//!
//! - only `https://` URLs (`http://` with [`Policy::allow_http`], for local development);
//! - no destination in a special-purpose range ([`special`]): loopback, private, link-local
//!   (metadata services live there), carrier-grade NAT, multicast, unspecified, broadcast,
//!   reserved, and the IPv6 equivalents, IPv4-mapped addresses included — unless a network of
//!   [`Policy::allow`] names it;
//! - the check runs when an endpoint is registered over the API (every address the host
//!   resolves to must pass) and again at every delivery, inside the HTTP client's resolver
//!   (`Resolver`), so a name that later resolves elsewhere (DNS rebinding) is still caught
//!   at connect time; redirects are never followed (see `webhooks`).
//!
//! Failures reported to the endpoint's owner (`lastError`) are generic on purpose: telling
//! "connection refused" from "timed out" would make webhooks a port scanner.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use imgroups_core::{Error, Result};
pub use ipnet::IpNet;

/// The outbound policy for webhook deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Allow plain `http://` URLs (local development).
    pub allow_http: bool,
    /// Networks allowed although they are special-purpose (e.g. `127.0.0.1/32` for a local
    /// receiver, `10.0.0.0/8` for an internal one).
    pub allow: Vec<IpNet>,
}

/// What `lastError` says when the policy refused the destination at delivery time.
pub(crate) const REFUSED: &str = "destination not allowed by the server's webhook policy";

impl Policy {
    /// Whether a delivery may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !special(ip) || self.allow.iter().any(|net| net.contains(&ip))
    }

    /// Checks a URL against the scheme rule and, resolving its host, the address rule. For
    /// registration through the API; the message says what to change.
    pub(crate) async fn check_url(&self, url: &str) -> Result<()> {
        let refuse = |why: String| {
            Error::invalid(format!("webhook url refused: {why}")).with("field", "url")
        };
        let parsed =
            reqwest::Url::parse(url).map_err(|err| refuse(format!("not a valid url ({err})")))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(refuse(
                    "only https:// urls are accepted (the server allows http:// only when \
                     started with --webhook-allow-http)"
                        .to_owned(),
                ))
            }
            other => return Err(refuse(format!("unsupported scheme {other:?}"))),
        }
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs: Vec<IpAddr> = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
                .await
                .map_err(|_| refuse(format!("host {name:?} does not resolve")))?
                .map(|addr| addr.ip())
                .collect(),
            None => return Err(refuse("no host".to_owned())),
        };
        if addrs.is_empty() {
            return Err(refuse("the host has no address".to_owned()));
        }
        // Every address, not just one: a name with one public and one private address would
        // otherwise reach the private one on some deliveries.
        if let Some(ip) = addrs.iter().find(|ip| !self.permits(**ip)) {
            return Err(refuse(format!(
                "it points to {ip}, a loopback, private, link-local or otherwise special-purpose \
                 address (the server allows such networks only when named with \
                 --webhook-allow-net)"
            )));
        }
        Ok(())
    }

    /// The delivery-time check of what the resolver does not see: the scheme, and a host
    /// given as an IP literal (the HTTP client connects to those without resolving).
    pub(crate) fn check_delivery(&self, url: &reqwest::Url) -> std::result::Result<(), ()> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            _ => return Err(()),
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) if !self.permits(IpAddr::V4(ip)) => Err(()),
            Some(url::Host::Ipv6(ip)) if !self.permits(IpAddr::V6(ip)) => Err(()),
            None => Err(()),
            _ => Ok(()),
        }
    }
}

/// The webhook client's resolver: the system's, minus every address the policy refuses.
/// A name left with no address fails to connect, and the attempt is recorded as refused.
pub(crate) struct Resolver {
    pub(crate) policy: Arc<Policy>,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found.filter(|a| policy.permits(a.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(Refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The resolver's error when the policy left a name no address.
#[derive(Debug, thiserror::Error)]
#[error("{REFUSED}")]
pub(crate) struct Refused;

/// Whether `ip` is in a special-purpose range: anything but the public unicast internet.
pub fn special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => special_v4(ip),
        IpAddr::V6(ip) => {
            // An IPv4 address in IPv6 clothing reaches the IPv4 host.
            if let Some(v4) = ip.to_ipv4_mapped() {
                return special_v4(v4);
            }
            special_v6(ip)
        }
    }
}

fn special_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: cloud metadata services
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // 100.64/10, carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // 192.0.0/24, protocol assignments
        || (a == 198 && (18..20).contains(&b)) // 198.18/15, benchmarking
        || a >= 240 // 240/4 reserved
}

fn special_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local (fd00:ec2::254 is a metadata service)
        || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0064 && s[1] == 0xff9b) // 64:ff9b::/96 NAT64: embeds an IPv4 address
        || (s[0] == 0x2002) // 6to4: embeds an IPv4 address
        || (s[0..6] == [0, 0, 0, 0, 0, 0]) // ::/96 IPv4-compatible (deprecated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn special_purpose_ranges_are_refused_and_public_ones_allowed() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "ff02::1",
        ] {
            assert!(special(ip(s)), "{s} must be special");
        }
        for s in [
            "1.1.1.1",
            "93.184.215.14",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!special(ip(s)), "{s} is public");
        }
    }

    #[test]
    fn the_allow_list_opens_named_networks_only() {
        let policy = Policy {
            allow_http: true,
            allow: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(!policy.permits(ip("10.0.0.1")));
        assert!(!policy.permits(ip("::1")));
    }

    #[tokio::test]
    async fn urls_are_checked_for_scheme_and_every_address() {
        let strict = Policy::default();
        for (url, why) in [
            ("http://example.com/hook", "only https://"),
            ("https://127.0.0.1:22/", "special-purpose"),
            ("https://[::1]/", "special-purpose"),
            (
                "https://169.254.169.254/latest/meta-data",
                "special-purpose",
            ),
            ("https://localhost:8080/", "special-purpose"),
            ("ftp://example.com/", "unsupported scheme"),
        ] {
            let err = strict.check_url(url).await.unwrap_err();
            assert!(err.message.contains(why), "{url}: {}", err.message);
            assert_eq!(err.kind, imgroups_core::ErrorKind::InvalidArgument);
        }
        strict
            .check_url("https://93.184.215.14/hook")
            .await
            .unwrap();
        let dev = Policy {
            allow_http: true,
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        };
        dev.check_url("http://127.0.0.1:9999/hook").await.unwrap();
        dev.check_url("http://localhost:9999/hook").await.unwrap();
        dev.check_url("http://10.0.0.1/hook").await.unwrap_err();
    }

    #[test]
    fn deliveries_to_literal_addresses_are_checked_too() {
        let strict = Policy::default();
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(strict.check_delivery(&url("https://127.0.0.1/")).is_err());
        assert!(strict
            .check_delivery(&url("https://[::ffff:10.0.0.1]/"))
            .is_err());
        assert!(strict.check_delivery(&url("http://example.com/")).is_err());
        assert!(strict.check_delivery(&url("https://example.com/")).is_ok());
    }
}
