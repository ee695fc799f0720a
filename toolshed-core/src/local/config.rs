//! [`LocalConfig`]: every setting of the local backend, read once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::domain::DeploymentId;
use crate::error::{Error, Result};
use crate::services::ToolshedConfig;

/// Data directory (SQLite file, docs). Default `$XDG_DATA_HOME/toolshed`, else
/// `~/.local/share/toolshed`.
pub const ENV_DATA_DIR: &str = "TOOLSHED_DATA_DIR";
/// `host:port` of an OCI registry to push images to (default: the engine's image store).
pub const ENV_REGISTRY: &str = "TOOLSHED_REGISTRY";
/// Path of the static stdio bridge (default: next to the running executable, else on `PATH`).
pub const ENV_STDIO_BRIDGE: &str = "TOOLSHED_STDIO_BRIDGE";
/// A token for https git remotes.
pub const ENV_GIT_TOKEN: &str = "TOOLSHED_GIT_TOKEN";
/// Seconds a verification lease lasts without a heartbeat (default 60): how long after a crash
/// a run can be resumed. Heartbeats go every third of it.
pub const ENV_LEASE_TTL_SECS: &str = "TOOLSHED_LEASE_TTL_SECS";
/// The only host the git token is sent to (default `github.com`).
pub const ENV_GIT_TOKEN_HOST: &str = crate::adapters::git::ENV_GIT_TOKEN_HOST;
/// The deployment id labelling this backend's containers (default: one made on first use and
/// stored in the database).
pub const ENV_DEPLOYMENT_ID: &str = "TOOLSHED_DEPLOYMENT_ID";

/// A secret string whose `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; pass it on, never print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// Settings of the local backend.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Data directory (the SQLite file and the docs live there).
    pub data_dir: PathBuf,
    /// `host:port` of a registry, or `None` for the engine store.
    pub registry: Option<String>,
    /// An explicit stdio bridge binary; `None` looks next to the executable, then on `PATH`.
    pub stdio_bridge: Option<PathBuf>,
    /// Token for https git remotes.
    pub git_token: Option<SecretString>,
    /// The only host [`Self::git_token`] is sent to (host name, optional `:port`); default
    /// `github.com`.
    pub git_token_host: String,
    /// Service timings and limits ([`local_service_config`] by default).
    pub service: ToolshedConfig,
    /// The owner of the containers this backend starts; `None` (the default) uses the id stored
    /// in the database, made on first use.
    pub deployment_id: Option<DeploymentId>,
    /// The CA bundle generated package builds carry for the package index
    /// (`TOOLSHED_PACKAGE_CA_BUNDLE`, e.g. `/etc/ssl/certs/ca-certificates.crt` where the index
    /// answers through an intercepting proxy); see [`ToolshedConfig::package_build`].
    pub package_ca_bundle: Option<PathBuf>,
    /// How imported remote servers are reached (`TOOLSHED_REMOTE_ALLOWED_NETWORKS`,
    /// `TOOLSHED_REMOTE_CA_BUNDLE`; default: public addresses and the built-in roots only).
    pub remote_access: crate::services::RemoteAccessSettings,
}

impl LocalConfig {
    /// Defaults for `data_dir`: everything else as [`LocalConfig::from_lookup`] with no variable.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            registry: None,
            stdio_bridge: None,
            git_token: None,
            git_token_host: crate::adapters::git::DEFAULT_TOKEN_HOST.to_owned(),
            service: local_service_config(),
            deployment_id: None,
            package_ca_bundle: None,
            remote_access: Default::default(),
        }
    }

    /// From the process environment: `TOOLSHED_DATA_DIR`, `TOOLSHED_REGISTRY`,
    /// `TOOLSHED_STDIO_BRIDGE`, `TOOLSHED_GIT_TOKEN`, `TOOLSHED_GIT_TOKEN_HOST`,
    /// `TOOLSHED_DEPLOYMENT_ID`, `TOOLSHED_LEASE_TTL_SECS`, `TOOLSHED_PROMOTION_POLICY`, the package
    /// build settings (`TOOLSHED_PYTHON_BASE_IMAGE`, `TOOLSHED_NODE_BASE_IMAGE`,
    /// `TOOLSHED_PIP_INDEX_URL`, `TOOLSHED_PACKAGE_CA_BUNDLE`), the remote access settings
    /// (`TOOLSHED_REMOTE_ALLOWED_NETWORKS`, `TOOLSHED_REMOTE_CA_BUNDLE`) (and `XDG_DATA_HOME` / `HOME` for the default
    /// data directory).
    ///
    /// # Errors
    /// `InvalidInput` naming the variable when a value is malformed.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Self::from_env`], reading variables through `lookup` (empty values count as unset).
    ///
    /// # Errors
    /// `InvalidInput` naming the variable when a value is malformed.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let data_dir = match get(ENV_DATA_DIR) {
            Some(dir) => PathBuf::from(dir),
            None => default_data_dir(&get),
        };
        let registry = get(ENV_REGISTRY).map(|r| r.trim().to_owned());
        if let Some(registry) = &registry {
            if registry.contains('/') || registry.contains(char::is_whitespace) {
                return Err(Error::invalid(
                    "config",
                    format!("{ENV_REGISTRY} must be host:port of a registry, not {registry:?}"),
                ));
            }
        }
        let mut service = local_service_config();
        if let Some(raw) = get(ENV_LEASE_TTL_SECS) {
            let secs: u64 = raw.trim().parse().ok().filter(|s| *s >= 3).ok_or_else(|| {
                Error::invalid(
                    "config",
                    format!("{ENV_LEASE_TTL_SECS} must be a whole number of seconds, at least 3"),
                )
            })?;
            service.lease_ttl = Duration::from_secs(secs);
            service.lease_heartbeat = service.lease_ttl / 3;
        }
        service.package_build = crate::services::package_build_from(get)?;
        if let Some(policy) = crate::services::promotion_policy_from(get)? {
            service.promotion_policy = policy;
        }
        let git_token_host = match get(ENV_GIT_TOKEN_HOST) {
            Some(host) => crate::adapters::git::validate_token_host(&host)
                .map_err(|e| Error::invalid("config", format!("{ENV_GIT_TOKEN_HOST}: {e}")))?,
            None => crate::adapters::git::DEFAULT_TOKEN_HOST.to_owned(),
        };
        let deployment_id = get(ENV_DEPLOYMENT_ID)
            .map(|v| {
                DeploymentId::new(v.trim())
                    .map_err(|e| Error::invalid("config", format!("{ENV_DEPLOYMENT_ID}: {e}")))
            })
            .transpose()?;
        Ok(Self {
            data_dir,
            registry,
            deployment_id,
            stdio_bridge: get(ENV_STDIO_BRIDGE).map(PathBuf::from),
            git_token: get(ENV_GIT_TOKEN).map(SecretString::new),
            git_token_host,
            service,
            package_ca_bundle: get(crate::services::ENV_PACKAGE_CA_BUNDLE).map(PathBuf::from),
            remote_access: crate::services::remote_access_from(get)?,
        })
    }

    /// The SQLite file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join(crate::adapters::sqlite::DB_FILE)
    }

    /// Overrides the data directory.
    pub fn with_data_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.data_dir = dir.as_ref().to_path_buf();
        self
    }
}

/// `$XDG_DATA_HOME/toolshed`, else `~/.local/share/toolshed`, else `./.toolshed`.
fn default_data_dir(get: &impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(dir) = get("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("toolshed");
    }
    if let Some(home) = get("HOME") {
        return PathBuf::from(home).join(".local/share/toolshed");
    }
    PathBuf::from(".toolshed")
}

/// Service timings suited to a local engine: fast polls, short deadlines.
pub fn local_service_config() -> ToolshedConfig {
    ToolshedConfig {
        build_poll_interval: Duration::from_millis(200),
        build_timeout: Duration::from_secs(15 * 60),
        task_poll_interval: Duration::from_millis(100),
        task_start_timeout: Duration::from_secs(60),
        readiness_deadline: Duration::from_secs(30),
        // An inspect costs no throttled quota: records are trusted briefly (the API's engine
        // event watcher keeps them current anyway; the CLI has no watcher).
        status_freshness: Duration::from_secs(2),
        // One user's own machine: local repositories and git servers on the local network.
        repo_policy: crate::domain::RepoUrlPolicy::LOCAL,
        ..ToolshedConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn reads_each_setting_and_defaults_the_data_dir() {
        let config = LocalConfig::from_lookup(lookup(&[
            ("TOOLSHED_DATA_DIR", "/data"),
            ("TOOLSHED_REGISTRY", "127.0.0.1:5000"),
            ("TOOLSHED_STDIO_BRIDGE", "/opt/bridge"),
            ("TOOLSHED_GIT_TOKEN", "s3cret"),
        ]))
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/data"));
        assert_eq!(config.registry.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(config.stdio_bridge, Some(PathBuf::from("/opt/bridge")));
        assert_eq!(
            config.git_token.as_ref().map(SecretString::expose),
            Some("s3cret")
        );
        assert!(!format!("{config:?}").contains("s3cret"));

        let config =
            LocalConfig::from_lookup(lookup(&[("HOME", "/home/u"), ("TOOLSHED_REGISTRY", " ")]))
                .unwrap();
        assert_eq!(
            config.data_dir,
            PathBuf::from("/home/u/.local/share/toolshed")
        );
        assert_eq!(config.registry, None);
        let config =
            LocalConfig::from_lookup(lookup(&[("HOME", "/home/u"), ("XDG_DATA_HOME", "/x")]))
                .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/x/toolshed"));
    }

    #[test]
    fn the_git_token_host_defaults_to_github_and_is_validated() {
        let config = LocalConfig::from_lookup(lookup(&[("HOME", "/h")])).unwrap();
        assert_eq!(config.git_token_host, "github.com");
        let config = LocalConfig::from_lookup(lookup(&[(
            "TOOLSHED_GIT_TOKEN_HOST",
            "Git.Example.com:8443",
        )]))
        .unwrap();
        assert_eq!(config.git_token_host, "git.example.com:8443");
        for bad in ["https://github.com", "github.com/org", "tok@github.com"] {
            let err = LocalConfig::from_lookup(move |name| {
                (name == "TOOLSHED_GIT_TOKEN_HOST").then(|| bad.to_owned())
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains("TOOLSHED_GIT_TOKEN_HOST"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_malformed_registry_names_the_variable() {
        let err = LocalConfig::from_lookup(lookup(&[("TOOLSHED_REGISTRY", "https://r.example/x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TOOLSHED_REGISTRY"), "{err}");
    }

    #[test]
    fn the_promotion_policy_defaults_to_holding_and_is_validated() {
        use crate::domain::PromotionPolicy;
        let config = LocalConfig::from_lookup(lookup(&[("HOME", "/h")])).unwrap();
        assert_eq!(config.service.promotion_policy, PromotionPolicy::default());
        let config =
            LocalConfig::from_lookup(lookup(&[("TOOLSHED_PROMOTION_POLICY", "promote-always")]))
                .unwrap();
        assert_eq!(
            config.service.promotion_policy,
            PromotionPolicy::PROMOTE_ALWAYS
        );
        let config = LocalConfig::from_lookup(lookup(&[(
            "TOOLSHED_PROMOTION_POLICY",
            "hold-on-medium,hold-on-breaking-change",
        )]))
        .unwrap();
        assert_eq!(
            config.service.promotion_policy.to_string(),
            "hold-on-medium,hold-on-breaking-change"
        );
        let err = LocalConfig::from_lookup(lookup(&[(
            "TOOLSHED_PROMOTION_POLICY",
            "promote-always,hold-on-high",
        )]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("TOOLSHED_PROMOTION_POLICY"), "{err}");
    }
}
