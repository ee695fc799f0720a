//! The egress policy for remote servers ([`RemoteEgressPolicy`]) applied to real connections:
//! host names are resolved here, every address is checked, and the HTTP client connects only to
//! the checked addresses ([`EgressResolver`] is its DNS resolver), so a DNS answer that changes
//! between the check and the connection cannot slip a refused address in. IP-literal hosts,
//! which an HTTP client connects to without asking its resolver, are checked by
//! [`checked_addrs`] before any request.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::domain::RemoteEgressPolicy;
use crate::error::{Error, Result};

/// Longest a host name resolution may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves `host` and checks every address against `policy`.
///
/// # Errors
/// [`Error::EgressRefused`] naming the host when it does not resolve, resolves to no address,
/// or any of its addresses is refused; the error never names an address.
pub(crate) async fn checked_addrs(
    policy: &RemoteEgressPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>> {
    // `[::1]` as written in a URL.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare, port))).await
            {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(err)) => {
                    tracing::debug!(host, error = %err, "remote host does not resolve");
                    return Err(Error::EgressRefused {
                        host: host.to_owned(),
                        reason: "it does not resolve".to_owned(),
                    });
                }
                Err(_) => {
                    return Err(Error::EgressRefused {
                        host: host.to_owned(),
                        reason: format!(
                            "it did not resolve within {} s",
                            RESOLVE_TIMEOUT.as_secs()
                        ),
                    })
                }
            }
        }
    };
    let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    if let Err(err) = policy.check(host, &ips) {
        // The addresses go to the operator's log only.
        tracing::warn!(host, addresses = ?ips, "remote host refused by the egress policy");
        return Err(err);
    }
    Ok(addrs)
}

/// The HTTP client's DNS resolver for remote servers: answers only with addresses the policy
/// allows, and fails the connection when any address is refused.
#[derive(Debug, Clone)]
pub(crate) struct EgressResolver {
    policy: Arc<RemoteEgressPolicy>,
}

impl EgressResolver {
    /// A resolver applying `policy`.
    pub(crate) fn new(policy: Arc<RemoteEgressPolicy>) -> Self {
        Self { policy }
    }
}

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = checked_addrs(&policy, &host, 0)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_by_default() {
        let policy = RemoteEgressPolicy::default();
        let err = checked_addrs(&policy, "localhost", 443).await.unwrap_err();
        assert!(
            matches!(err, Error::EgressRefused { ref host, .. } if host == "localhost"),
            "{err}"
        );
        assert!(!err.to_string().contains("127.0.0.1"), "{err}");
    }

    #[tokio::test]
    async fn ip_literals_are_checked_without_resolution() {
        let policy = RemoteEgressPolicy::default();
        for host in ["169.254.169.254", "[::1]", "[::ffff:10.0.0.1]"] {
            let err = checked_addrs(&policy, host, 443).await.unwrap_err();
            assert!(matches!(err, Error::EgressRefused { .. }), "{host}: {err}");
        }
        let open = RemoteEgressPolicy::parse_allowed("X", "127.0.0.0/8").unwrap();
        let addrs = checked_addrs(&open, "127.0.0.1", 8443).await.unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:8443".parse().unwrap()]);
    }
}
