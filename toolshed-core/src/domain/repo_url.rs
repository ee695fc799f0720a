//! Repository URLs: https by default, never with embedded credentials.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest accepted repository URL.
pub const MAX_REPO_URL_LEN: usize = 2048;

/// Which repository URLs a caller accepts.
///
/// The default ([`Self::HTTPS_ONLY`]) accepts https URLs of public hosts only: a hosted service
/// must not let users make it read its own disk (`file://`) or reach its own network position
/// (loopback, link-local such as the instance metadata address, private ranges). Host names
/// are judged as written: a public name that resolves to a private address is the egress
/// policy's business, not this check's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepoUrlPolicy {
    /// Allow `file://` URLs (local repositories, tests).
    pub allow_file: bool,
    /// Allow hosts that are loopback, link-local, private or unspecified addresses (IPv4 or
    /// IPv6 literals) or `localhost` names.
    pub allow_private_hosts: bool,
    /// Allow plain `http://` (fake git hosts in tests only).
    allow_plain_http: bool,
}

impl RepoUrlPolicy {
    /// https to public hosts only (the default).
    pub const HTTPS_ONLY: Self = Self {
        allow_file: false,
        allow_private_hosts: false,
        allow_plain_http: false,
    };
    /// https to public hosts, and `file://`.
    pub const ALLOW_FILE: Self = Self {
        allow_file: true,
        allow_private_hosts: false,
        allow_plain_http: false,
    };
    /// What a single-user local backend accepts: `file://`, and https to any host, private
    /// ones included (a git server on the same machine or network).
    pub const LOCAL: Self = Self {
        allow_file: true,
        allow_private_hosts: true,
        allow_plain_http: false,
    };

    /// This policy, also accepting private hosts.
    pub const fn with_private_hosts(mut self) -> Self {
        self.allow_private_hosts = true;
        self
    }

    /// This policy, also accepting plain `http://` to private hosts: for tests against fake git
    /// hosts on loopback only.
    #[cfg(any(test, feature = "testing"))]
    pub const fn with_plain_http_for_tests(mut self) -> Self {
        self.allow_plain_http = true;
        self.allow_private_hosts = true;
        self
    }
}

/// A git repository URL.
///
/// ```
/// use toolshed_core::domain::{RepoUrl, RepoUrlPolicy};
/// assert!(RepoUrl::new("https://github.com/modelcontextprotocol/servers").is_ok());
/// assert!(RepoUrl::new("https://user:token@github.com/x/y").is_err());
/// assert!(RepoUrl::new("file:///tmp/repo").is_err());
/// assert!(RepoUrl::parse("file:///tmp/repo", RepoUrlPolicy::ALLOW_FILE).is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct RepoUrl(String);

impl RepoUrl {
    /// Parses an https URL.
    pub fn new(raw: impl AsRef<str>) -> Result<Self> {
        Self::parse(raw.as_ref(), RepoUrlPolicy::HTTPS_ONLY)
    }

    /// Parses under an explicit policy.
    pub fn parse(raw: &str, policy: RepoUrlPolicy) -> Result<Self> {
        let invalid = |reason: &str| Error::invalid("repo_url", reason.to_owned());
        if raw.len() > MAX_REPO_URL_LEN {
            return Err(invalid("longer than 2048 characters"));
        }
        if raw.trim() != raw || raw.is_empty() {
            return Err(invalid(
                "must be a non-empty URL without surrounding whitespace",
            ));
        }
        let url = url::Url::parse(raw).map_err(|e| invalid(&format!("not a URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            // Never echo the URL back: it contains the credential.
            return Err(invalid(
                "must not embed credentials; configure them for the git backend instead",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must not have a query or fragment"));
        }
        match url.scheme() {
            "https" | "http" if url.scheme() == "https" || policy.allow_plain_http => {
                let host = match url.host() {
                    Some(url::Host::Domain("")) | None => {
                        return Err(invalid("https URL has no host"))
                    }
                    Some(host) => host,
                };
                if !policy.allow_private_hosts {
                    if let Some(why) = private_host(&host) {
                        return Err(invalid(&format!(
                            "host {host} is {why}; this deployment only accepts public hosts"
                        )));
                    }
                }
                let path = url.path().trim_matches('/');
                if path.is_empty() {
                    return Err(invalid("https URL has no repository path"));
                }
            }
            "file" if policy.allow_file => {
                if url.path().len() <= 1 {
                    return Err(invalid("file URL has no path"));
                }
            }
            "file" => {
                return Err(invalid(
                    "file:// URLs are not allowed here (the caller did not enable them)",
                ))
            }
            other => {
                return Err(invalid(&format!(
                    "scheme {other:?} is not allowed; use https://"
                )))
            }
        }
        Ok(Self(url.to_string()))
    }

    /// The URL string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a `file://` URL.
    pub fn is_file(&self) -> bool {
        self.0.starts_with("file:")
    }

    /// Checks this (already parsed) URL against another policy, e.g. a deployment's.
    ///
    /// # Errors
    /// `InvalidInput { field: "repo_url" }` when `policy` does not accept it.
    pub fn check(&self, policy: RepoUrlPolicy) -> Result<()> {
        Self::parse(&self.0, policy).map(|_| ())
    }

    /// The host, lower case (`None` for `file://`).
    pub fn host(&self) -> Option<String> {
        url::Url::parse(&self.0)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    }

    /// Deserialises a URL read back from storage: the registering caller's policy was applied
    /// when it was stored, so any policy's URL is accepted here. Only for records a backend
    /// wrote itself, never for input.
    ///
    /// # Errors
    /// The deserialiser's error for a string no policy accepts.
    pub fn deserialize_stored<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        let stored = RepoUrlPolicy {
            allow_file: true,
            allow_private_hosts: true,
            allow_plain_http: true,
        };
        Self::parse(&raw, stored).map_err(serde::de::Error::custom)
    }
}

/// Why a host is not public, or `None` when it is.
fn private_host(host: &url::Host<&str>) -> Option<&'static str> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    fn v4(ip: Ipv4Addr) -> Option<&'static str> {
        let [a, b, ..] = ip.octets();
        if ip.is_loopback() {
            Some("a loopback address")
        } else if ip.is_link_local() {
            Some("a link-local address")
        } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
            Some("a private address")
        } else if ip.is_unspecified() || a == 0 || ip.is_broadcast() || ip.is_multicast() {
            Some("not a unicast host address")
        } else {
            None
        }
    }
    fn v6(ip: Ipv6Addr) -> Option<&'static str> {
        let first = ip.segments()[0];
        if let Some(mapped) = ip.to_ipv4_mapped() {
            v4(mapped)
        } else if ip.is_loopback() {
            Some("a loopback address")
        } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
            Some("a link-local address")
        } else if first & 0xfe00 == 0xfc00 {
            Some("a private address")
        } else if ip.is_unspecified() || ip.is_multicast() {
            Some("not a unicast host address")
        } else {
            None
        }
    }
    match host {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            (name == "localhost" || name.ends_with(".localhost")).then_some("a loopback name")
        }
        url::Host::Ipv4(ip) => v4(*ip),
        url::Host::Ipv6(ip) => v6(*ip),
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<RepoUrl> for String {
    fn from(v: RepoUrl) -> String {
        v.0
    }
}

impl TryFrom<String> for RepoUrl {
    type Error = Error;
    /// The strict default policy: deserialised input is never trusted to name the host's disk or
    /// network (records read back from storage use [`RepoUrl::deserialize_stored`]).
    fn try_from(v: String) -> Result<Self> {
        Self::parse(&v, RepoUrlPolicy::HTTPS_ONLY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https() {
        let u = RepoUrl::new("https://github.com/a/b.git").unwrap();
        assert_eq!(u.as_str(), "https://github.com/a/b.git");
        assert!(!u.is_file());
    }

    #[test]
    fn rejects_bad_urls_with_clear_messages() {
        let cases = [
            ("http://github.com/a/b", "scheme \"http\""),
            ("ssh://git@github.com/a/b", "credentials"),
            ("git@github.com:a/b.git", "not a URL"),
            ("https://tok@github.com/a/b", "credentials"),
            ("https://github.com/", "no repository path"),
            ("https://github.com/a/b?x=1", "query"),
            (" https://github.com/a/b", "whitespace"),
            ("file:///tmp/x", "not allowed here"),
        ];
        for (raw, needle) in cases {
            let err = RepoUrl::new(raw).unwrap_err().to_string();
            assert!(err.contains(needle), "{raw}: {err}");
            assert!(!err.contains("tok@"), "credential echoed: {err}");
        }
        let long = format!("https://github.com/{}", "a".repeat(2100));
        assert!(RepoUrl::new(long).unwrap_err().to_string().contains("2048"));
    }

    #[test]
    fn file_urls_when_allowed() {
        let u = RepoUrl::parse("file:///tmp/repo", RepoUrlPolicy::ALLOW_FILE).unwrap();
        assert!(u.is_file());
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    const PRIVATE: &[&str] = &[
        "https://127.0.0.1/a/b",
        "https://127.1.2.3:8443/a/b",
        "https://localhost/a/b",
        "https://LocalHost./a/b",
        "https://git.localhost/a/b",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.5/a/b",
        "https://172.16.3.4/a/b",
        "https://192.168.1.1/a/b",
        "https://100.64.0.1/a/b",
        "https://0.0.0.0/a/b",
        "https://0x7f000001/a/b",
        "https://[::1]/a/b",
        "https://[::]/a/b",
        "https://[fe80::1]/a/b",
        "https://[fd00:ec2::254]/a/b",
        "https://[::ffff:169.254.169.254]/a/b",
        "https://[::ffff:127.0.0.1]/a/b",
    ];

    #[test]
    fn private_hosts_are_refused_by_default_with_a_clear_error() {
        for raw in PRIVATE {
            let err = RepoUrl::new(raw).unwrap_err();
            match &err {
                Error::InvalidInput { field, reason } => {
                    assert_eq!(*field, "repo_url");
                    assert!(
                        reason.contains("only accepts public hosts"),
                        "{raw}: {reason}"
                    );
                }
                other => panic!("{raw}: {other:?}"),
            }
            assert!(
                RepoUrl::parse(raw, RepoUrlPolicy::ALLOW_FILE).is_err(),
                "{raw}"
            );
        }
    }

    #[test]
    fn private_hosts_when_the_policy_allows_them() {
        for raw in PRIVATE {
            let url = RepoUrl::parse(raw, RepoUrlPolicy::LOCAL).unwrap();
            assert!(url.check(RepoUrlPolicy::HTTPS_ONLY).is_err(), "{raw}");
            assert!(url
                .check(RepoUrlPolicy::HTTPS_ONLY.with_private_hosts())
                .is_ok());
        }
        for public in [
            "https://github.com/a/b",
            "https://8.8.8.8/a/b",
            "https://[2001:db8::1]/a/b",
            "https://localhost.example.com/a/b",
        ] {
            assert!(RepoUrl::new(public).is_ok(), "{public}");
        }
    }

    #[test]
    fn plain_http_only_through_the_test_policy() {
        let raw = "http://127.0.0.1:9/a/b";
        assert!(RepoUrl::parse(raw, RepoUrlPolicy::LOCAL).is_err());
        let url =
            RepoUrl::parse(raw, RepoUrlPolicy::HTTPS_ONLY.with_plain_http_for_tests()).unwrap();
        assert_eq!(url.host().as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn deserialising_uses_the_strict_policy() {
        let ok: RepoUrl = serde_json::from_str("\"https://github.com/a/b\"").unwrap();
        assert_eq!(ok.as_str(), "https://github.com/a/b");
        for raw in [
            "\"file:///etc\"",
            "\"https://169.254.169.254/latest\"",
            "\"https://localhost/a/b\"",
            "\"http://github.com/a/b\"",
        ] {
            let err = serde_json::from_str::<RepoUrl>(raw)
                .unwrap_err()
                .to_string();
            assert!(err.contains("invalid repo_url"), "{raw}: {err}");
        }
    }

    #[test]
    fn stored_records_read_back_whatever_policy_registered_them() {
        #[derive(Deserialize)]
        struct Stored {
            #[serde(deserialize_with = "RepoUrl::deserialize_stored")]
            repo: RepoUrl,
        }
        for raw in ["file:///tmp/repo", "https://10.0.0.5/a/b"] {
            let s: Stored = serde_json::from_value(serde_json::json!({ "repo": raw })).unwrap();
            assert_eq!(s.repo.as_str(), raw);
        }
        let bad = serde_json::from_value::<Stored>(serde_json::json!({"repo": "ftp://x/y"}));
        assert!(bad.is_err());
    }
}
