//! Typed configuration of the services.

use std::path::PathBuf;
use std::time::Duration;

use crate::domain::server_json::PackageBuildSettings;
use crate::domain::{PromotionPolicy, RemoteEgressPolicy, RepoUrlPolicy, SessionCaps, TtlBounds};
use crate::error::{Error, Result};
use crate::ports::SnapshotLimits;

/// Timings, bounds and caps of the use cases. `Default` gives production values.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolshedConfig {
    /// Who takes verification leases (process / worker id), shown to a second caller.
    pub worker_id: String,
    /// How long a verification lease lasts without a heartbeat: after a crash, the run can be
    /// resumed by another process this long after the last heartbeat.
    pub lease_ttl: Duration,
    /// How often a running verification renews its lease while it works (also during a long
    /// single wait, such as a build start or the MCP handshake). Shorter than `lease_ttl`.
    pub lease_heartbeat: Duration,
    /// Pause between two build status polls (each poll renews the lease).
    pub build_poll_interval: Duration,
    /// A build still running this long after the run started fails the verification.
    pub build_timeout: Duration,
    /// Pause between two describes of the check task while it starts.
    pub task_poll_interval: Duration,
    /// How long the check task may take to get an endpoint (Fargate: typically 30-45 s).
    pub task_start_timeout: Duration,
    /// How long the MCP handshake may take once the check task has an endpoint.
    pub readiness_deadline: Duration,
    /// Expiry written on the check task's labels: the sweep stops a check task older than this.
    pub check_task_ttl: Duration,
    /// Session TTLs.
    pub ttl_bounds: TtlBounds,
    /// Live-session caps.
    pub session_caps: SessionCaps,
    /// The sweep never stops a task younger than this (a launch records its session just after
    /// starting the task).
    pub orphan_grace: Duration,
    /// Deadline of one tool call.
    pub tool_call_deadline: Duration,
    /// How long a tool call on a session that is still starting waits for the session's MCP
    /// endpoint to answer before it fails with `SessionStarting` (on top of
    /// `tool_call_deadline`). Zero: never wait.
    pub session_ready_deadline: Duration,
    /// How long the one MCP handshake of a status poll of a starting session may take: a poll
    /// stays quick; a server that needs longer is seen ready by a later poll.
    pub readiness_check_timeout: Duration,
    /// Bounds of the repository snapshot handed to the metadata generator.
    pub snapshot_limits: SnapshotLimits,
    /// How long a status poll trusts the task observation on a session record (kept fresh by
    /// task events and the batched refresher) before it describes the task itself. Zero: every
    /// poll describes.
    pub status_freshness: Duration,
    /// Re-reads after an optimistic-concurrency conflict before giving up.
    pub conflict_retries: u32,
    /// Which repository URLs registration accepts, whatever policy the caller parsed them with.
    /// Default: https to public hosts only (no `file://`, no loopback, link-local or private
    /// hosts), so a hosted deployment never clones from its own disk or network position.
    pub repo_policy: RepoUrlPolicy,
    /// When a completed verification waits for an admin's approval instead of going live
    /// (default: new high-severity findings and changed tool descriptions hold it); see
    /// [`PromotionPolicy`] and [`ENV_PROMOTION_POLICY`].
    pub promotion_policy: PromotionPolicy,
    /// The largest warm pool an admin may give a server (see
    /// [`WarmPool`](crate::domain::WarmPool)); 0 turns warm pools off. Warm sessions are live
    /// sessions: they also count against [`Self::session_caps`], so a pool never exceeds the
    /// per-server cap either.
    pub warm_pool_max_size: u32,
    /// How servers imported from a `pypi` or `npm` package are built: base images and package
    /// index (the deployment's, never the publisher's); see [`package_build_from`].
    pub package_build: PackageBuildSettings,
}

/// The environment variable every composition root reads the promotion policy from, in the form
/// [`PromotionPolicy::parse`] reads, e.g. `hold-on-high,hold-on-description-change` or
/// `promote-always`.
pub const ENV_PROMOTION_POLICY: &str = "TOOLSHED_PROMOTION_POLICY";

/// The promotion policy `lookup` gives for [`ENV_PROMOTION_POLICY`]; `None` when it is unset or
/// blank (keep the default).
///
/// # Errors
/// `InvalidInput { field: "config" }` naming the variable when the value does not parse.
pub fn promotion_policy_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<PromotionPolicy>> {
    match lookup(ENV_PROMOTION_POLICY).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(raw) => PromotionPolicy::parse(&raw)
            .map(Some)
            .map_err(|e| Error::invalid("config", format!("{ENV_PROMOTION_POLICY}: {e}"))),
    }
}

/// The base image of generated PyPI package builds (Python 3 with `venv` and `pip`).
pub const ENV_PYTHON_BASE_IMAGE: &str = "TOOLSHED_PYTHON_BASE_IMAGE";
/// The base image of generated npm package builds (Node.js with `npm`).
pub const ENV_NODE_BASE_IMAGE: &str = "TOOLSHED_NODE_BASE_IMAGE";
/// The PyPI index generated builds install from (an https URL; the public index when unset).
pub const ENV_PIP_INDEX_URL: &str = "TOOLSHED_PIP_INDEX_URL";
/// A CA bundle file the builder adds to generated package builds, for an index behind a
/// private CA (read by the builder adapter; see
/// [`PackageBuildSettings::with_ca_bundle`]).
pub const ENV_PACKAGE_CA_BUNDLE: &str = "TOOLSHED_PACKAGE_CA_BUNDLE";

/// The package build settings `lookup` gives ([`ENV_PYTHON_BASE_IMAGE`], [`ENV_NODE_BASE_IMAGE`],
/// [`ENV_PIP_INDEX_URL`], and whether [`ENV_PACKAGE_CA_BUNDLE`] is set), over the defaults.
///
/// # Errors
/// `InvalidInput { field: "config" }` naming the variable when a value does not fit.
pub fn package_build_from(lookup: impl Fn(&str) -> Option<String>) -> Result<PackageBuildSettings> {
    let get = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mut settings = PackageBuildSettings::default_images();
    for (name, slot) in [
        (ENV_PYTHON_BASE_IMAGE, &mut settings.python_base_image),
        (ENV_NODE_BASE_IMAGE, &mut settings.node_base_image),
    ] {
        if let Some(image) = get(name) {
            // Written after FROM: one word of image-reference characters.
            if image.len() > 255
                || !image
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "./:@_-".contains(c))
            {
                return Err(Error::invalid(
                    "config",
                    format!("{name} must be an image reference"),
                ));
            }
            *slot = image;
        }
    }
    if let Some(raw) = get(ENV_PIP_INDEX_URL) {
        let url = url::Url::parse(&raw)
            .ok()
            .filter(|u| u.scheme() == "https" && u.username().is_empty() && u.password().is_none())
            .ok_or_else(|| {
                Error::invalid(
                    "config",
                    format!("{ENV_PIP_INDEX_URL} must be an https URL without credentials"),
                )
            })?;
        settings.pip_index_url = Some(url);
    }
    settings.with_ca_bundle = get(ENV_PACKAGE_CA_BUNDLE).is_some();
    Ok(settings)
}

/// Networks (comma-separated CIDRs) remote servers may resolve to on top of the public internet,
/// for a private deployment or a test (e.g. `127.0.0.0/8,::1`). Unset: public addresses only.
pub const ENV_REMOTE_ALLOWED_NETWORKS: &str = "TOOLSHED_REMOTE_ALLOWED_NETWORKS";
/// A PEM file of certificate authorities trusted for remote servers on top of the built-in
/// roots (a private CA, or a test's).
pub const ENV_REMOTE_CA_BUNDLE: &str = "TOOLSHED_REMOTE_CA_BUNDLE";

/// How the probe reaches imported remote servers: the egress policy and extra trusted roots.
/// Read by the composition roots, which hand them to the probe adapter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteAccessSettings {
    /// Which addresses a remote may resolve to (default: public ones only).
    pub policy: RemoteEgressPolicy,
    /// A PEM bundle of extra certificate authorities.
    pub ca_bundle: Option<PathBuf>,
}

/// The remote access settings `lookup` gives ([`ENV_REMOTE_ALLOWED_NETWORKS`],
/// [`ENV_REMOTE_CA_BUNDLE`]), over the defaults.
///
/// # Errors
/// `InvalidInput { field: "config" }` naming the variable when a value does not fit.
pub fn remote_access_from(lookup: impl Fn(&str) -> Option<String>) -> Result<RemoteAccessSettings> {
    let get = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let policy = match get(ENV_REMOTE_ALLOWED_NETWORKS) {
        Some(raw) => RemoteEgressPolicy::parse_allowed(ENV_REMOTE_ALLOWED_NETWORKS, &raw)?,
        None => RemoteEgressPolicy::default(),
    };
    Ok(RemoteAccessSettings {
        policy,
        ca_bundle: get(ENV_REMOTE_CA_BUNDLE).map(PathBuf::from),
    })
}

impl Default for ToolshedConfig {
    fn default() -> Self {
        Self {
            worker_id: format!("worker-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            lease_ttl: Duration::from_secs(60),
            lease_heartbeat: Duration::from_secs(20),
            build_poll_interval: Duration::from_secs(10),
            build_timeout: Duration::from_secs(60 * 60),
            task_poll_interval: Duration::from_secs(3),
            task_start_timeout: Duration::from_secs(5 * 60),
            readiness_deadline: Duration::from_secs(120),
            check_task_ttl: Duration::from_secs(30 * 60),
            ttl_bounds: TtlBounds::default(),
            session_caps: SessionCaps::default(),
            orphan_grace: Duration::from_secs(2 * 60),
            tool_call_deadline: Duration::from_secs(30),
            session_ready_deadline: Duration::from_secs(20),
            readiness_check_timeout: Duration::from_secs(2),
            snapshot_limits: SnapshotLimits::default(),
            status_freshness: Duration::from_secs(15),
            conflict_retries: 5,
            repo_policy: RepoUrlPolicy::HTTPS_ONLY,
            promotion_policy: PromotionPolicy::default(),
            warm_pool_max_size: 3,
            package_build: PackageBuildSettings::default_images(),
        }
    }
}

impl ToolshedConfig {
    /// Checks the values are consistent.
    ///
    /// # Errors
    /// `InvalidInput` naming the offending field.
    pub fn validate(&self) -> Result<()> {
        if self.worker_id.trim().is_empty() || self.worker_id.len() > 256 {
            return Err(Error::invalid("worker_id", "must be 1-256 characters"));
        }
        for (field, wait) in [
            ("build_poll_interval", self.build_poll_interval),
            ("task_poll_interval", self.task_poll_interval),
            ("lease_heartbeat", self.lease_heartbeat),
        ] {
            if wait >= self.lease_ttl {
                return Err(Error::invalid(
                    field,
                    format!(
                        "must be shorter than lease_ttl ({} ms): the lease must be renewed before it expires",
                        self.lease_ttl.as_millis()
                    ),
                ));
            }
        }
        if self.lease_heartbeat.is_zero() {
            return Err(Error::invalid("lease_heartbeat", "must be positive"));
        }
        if self.session_caps.per_server == 0 || self.session_caps.total == 0 {
            return Err(Error::invalid("session_caps", "caps must be at least 1"));
        }
        if self.check_task_ttl.is_zero() || self.tool_call_deadline.is_zero() {
            return Err(Error::invalid(
                "check_task_ttl",
                "check_task_ttl and tool_call_deadline must be positive",
            ));
        }
        if self.readiness_check_timeout.is_zero() {
            return Err(Error::invalid(
                "readiness_check_timeout",
                "must be positive: a status poll needs time for one MCP handshake",
            ));
        }
        Ok(())
    }
}

/// `t + d`, saturating far in the future instead of overflowing.
pub(crate) fn plus(t: crate::domain::Timestamp, d: Duration) -> crate::domain::Timestamp {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// `later - earlier` as a std duration (zero when negative).
pub(crate) fn since(
    later: crate::domain::Timestamp,
    earlier: crate::domain::Timestamp,
) -> Duration {
    (later - earlier).to_std().unwrap_or(Duration::ZERO)
}
