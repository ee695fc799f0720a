//! How far a server's tasks may reach: the user they run as, the network they may open, the
//! privileges they keep. Both runners (ECS and Docker) apply the same rules from here.

use serde::{Deserialize, Serialize};

/// The user a task runs as when its image's user is root or unset and the server was not
/// registered as needing root (the conventional "nonroot" uid and gid of distroless images).
pub const NON_ROOT_USER: &str = "65532:65532";

/// Where a server's tasks may open connections to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Egress {
    /// No outbound connections: locally an internal engine network, on AWS a security group
    /// without egress rules. Only the MCP endpoint is reachable, from the host / the VPC.
    None,
    /// Outbound HTTPS to public addresses (never the VPC, private ranges or instance metadata on
    /// AWS).
    #[default]
    Internet,
}

impl Egress {
    /// `none` or `internet`.
    pub fn as_str(self) -> &'static str {
        match self {
            Egress::None => "none",
            Egress::Internet => "internet",
        }
    }
}

impl std::fmt::Display for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an image user string (`name`, `uid`, `name:group`, `uid:gid`) means root. An empty
/// user means the image's default, which is root.
pub fn is_root_user(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or_default().trim();
    name.is_empty() || name == "root" || name == "0"
}

/// The user a task runs as.
///
/// `image_user` is the image's configured user when the runner can read it (`None` when unset or
/// unknown). Without `run_as_root`, root or an unknown user becomes [`NON_ROOT_USER`] and a
/// named non-root user is kept; with `run_as_root`, the image's own user is kept (`None`: the
/// image's default).
///
/// ```
/// use toolshed_core::domain::{effective_user, NON_ROOT_USER};
/// assert_eq!(effective_user(false, Some("root")).as_deref(), Some(NON_ROOT_USER));
/// assert_eq!(effective_user(false, None).as_deref(), Some(NON_ROOT_USER));
/// assert_eq!(effective_user(false, Some("app")).as_deref(), Some("app"));
/// assert_eq!(effective_user(true, Some("root")).as_deref(), Some("root"));
/// assert_eq!(effective_user(true, None), None);
/// ```
pub fn effective_user(run_as_root: bool, image_user: Option<&str>) -> Option<String> {
    match image_user.map(str::trim).filter(|u| !u.is_empty()) {
        Some(user) if run_as_root || !is_root_user(user) => Some(user.to_owned()),
        None if run_as_root => None,
        _ => Some(NON_ROOT_USER.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_users() {
        for root in ["", "root", "0", "0:0", "root:root", " 0 "] {
            assert!(is_root_user(root), "{root:?}");
        }
        for other in ["app", "1000", "65532:65532", "nobody:nogroup", "rooted"] {
            assert!(!is_root_user(other), "{other:?}");
        }
    }

    #[test]
    fn users_under_each_policy() {
        let cases = [
            (false, None, Some(NON_ROOT_USER)),
            (false, Some(""), Some(NON_ROOT_USER)),
            (false, Some("root"), Some(NON_ROOT_USER)),
            (false, Some("0:0"), Some(NON_ROOT_USER)),
            (false, Some("1000:1000"), Some("1000:1000")),
            (true, None, None),
            (true, Some("root"), Some("root")),
            (true, Some("app"), Some("app")),
        ];
        for (run_as_root, image, want) in cases {
            assert_eq!(
                effective_user(run_as_root, image).as_deref(),
                want,
                "{run_as_root} {image:?}"
            );
        }
    }

    #[test]
    fn egress_serialises_as_words() {
        assert_eq!(serde_json::to_string(&Egress::None).unwrap(), "\"none\"");
        assert_eq!(Egress::default(), Egress::Internet);
    }
}
