//! The `Server` record: a registered MCP server, its verification state and its last good image.

use serde::{Deserialize, Serialize};

use super::conformance::ConformanceReport;
use super::poisoning::Finding;
use super::promotion::{PendingReview, PromotionPolicy};
use super::{
    BuildSpec, CommitSha, Egress, GitRef, McpServerInfo, McpTool, MetadataField, PhaseTimings,
    Provenance, RepoUrl, RepoUrlPolicy, ServerId, ServerMetadata, ServerOrigin, SettingSpec,
    Timestamp, ToolDrift, VerificationFailure, VerifiedImage,
};
use crate::error::{Error, Result};

/// Default container port of an MCP server (and of the stdio bridge).
pub const DEFAULT_MCP_PORT: u16 = 8000;
/// Default MCP path.
pub const DEFAULT_MCP_PATH: &str = "/mcp";

/// How a server speaks MCP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transport {
    /// The image serves streamable HTTP itself.
    Http {
        /// Container port.
        port: u16,
        /// MCP path, e.g. `/mcp`.
        path: String,
    },
    /// The server speaks stdio only: the verification build wraps it with the stdio bridge,
    /// which serves it on [`DEFAULT_MCP_PORT`] at [`DEFAULT_MCP_PATH`].
    Stdio {
        /// The command (and arguments) that starts the server inside the image.
        command: Vec<String>,
    },
}

impl Default for Transport {
    fn default() -> Self {
        Transport::Http {
            port: DEFAULT_MCP_PORT,
            path: DEFAULT_MCP_PATH.to_owned(),
        }
    }
}

impl Transport {
    /// Validates the transport.
    pub fn validate(&self) -> Result<()> {
        match self {
            Transport::Http { port, path } => {
                if *port == 0 {
                    return Err(Error::invalid("port", "must be 1-65535"));
                }
                super::validate_http_path(path)
            }
            Transport::Stdio { command } => {
                if command.is_empty() || command[0].trim().is_empty() {
                    return Err(Error::invalid("command", "stdio transport needs a command"));
                }
                if command.len() > 64 || command.iter().any(|a| a.len() > 4096 || a.contains('\0'))
                {
                    return Err(Error::invalid(
                        "command",
                        "at most 64 arguments of at most 4096 bytes, without NUL",
                    ));
                }
                Ok(())
            }
        }
    }

    /// The container port the running image serves MCP on.
    pub fn container_port(&self) -> u16 {
        match self {
            Transport::Http { port, .. } => *port,
            Transport::Stdio { .. } => DEFAULT_MCP_PORT,
        }
    }

    /// The MCP path of the running image.
    pub fn path(&self) -> &str {
        match self {
            Transport::Http { path, .. } => path,
            Transport::Stdio { .. } => DEFAULT_MCP_PATH,
        }
    }
}

/// What a server's tasks get: CPU and memory (Fargate units: 1024 = 1 vCPU), and the
/// privileges and network reach they keep. The defaults are least privilege: a non-root user,
/// no task role, internet egress only (see [`Egress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResources {
    /// CPU units.
    pub cpu_units: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Whether the image must run as its own (root) user. Without it a task whose image user is
    /// root or unset runs as [`NON_ROOT_USER`](super::NON_ROOT_USER).
    #[serde(default)]
    pub run_as_root: bool,
    /// Where the tasks may connect to.
    #[serde(default)]
    pub egress: Egress,
    /// Whether the tasks run with the deployment's task role (AWS credentials inside the
    /// container). Off by default: an MCP server gets no credentials unless it asks.
    #[serde(default)]
    pub task_role: bool,
}

impl Default for TaskResources {
    fn default() -> Self {
        Self {
            cpu_units: 256,
            memory_mib: 512,
            run_as_root: false,
            egress: Egress::default(),
            task_role: false,
        }
    }
}

impl TaskResources {
    /// Validates against the Fargate ranges (256-16384 CPU units, 512-122880 MiB).
    pub fn validate(&self) -> Result<()> {
        if !(256..=16384).contains(&self.cpu_units) {
            return Err(Error::invalid("cpu_units", "must be 256-16384"));
        }
        if !(512..=122_880).contains(&self.memory_mib) {
            return Err(Error::invalid("memory_mib", "must be 512-122880"));
        }
        Ok(())
    }
}

/// The verification state shown to users. Launchability does not depend on it: a server whose
/// re-verification failed keeps its last good image and stays launchable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationState {
    /// Never verified.
    Unverified,
    /// The last verification succeeded.
    Verified,
    /// The last verification failed (see [`Server::last_failure`]).
    Failed,
    /// The last verification completed but the promotion policy held it: its candidate waits in
    /// [`Server::pending_review`] for an admin while the live image (if any) stays launchable.
    NeedsReview,
}

/// What the last successful probe found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolInventory {
    /// Handshake information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_info: Option<McpServerInfo>,
    /// The tools.
    #[serde(default)]
    pub tools: Vec<McpTool>,
    /// Set when the handshake succeeded but tools could not be listed without configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gated_reason: Option<String>,
    /// What the tool-poisoning scan found in the tools and the server's instructions (see
    /// [`RULES`](super::poisoning::RULES)). Findings inform; they never fail a verification.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// The [`tools_digest`](super::drift::tools_digest) of the tools; absent in records written
    /// before digests were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// What changed since the previous verified version; `None` for a first verification, for
    /// unchanged tools, and when either listing was gated (nothing to compare).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<ToolDrift>,
    /// How closely the server follows the MCP specification (see
    /// [`conformance::RULES`](super::conformance::RULES)); information like the findings, never
    /// a reason to fail. Absent in records written before reports were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conformance: Option<ConformanceReport>,
}

/// What a successful verification writes, in one atomic write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationCompletion {
    /// The new image (digest-pinned) and its commit; `None` for a remote, which is verified by
    /// handshake only and has no image.
    pub image: Option<VerifiedImage>,
    /// What the probe found.
    pub tools: ToolInventory,
    /// The deployment's promotion policy, applied in the same atomic write (see
    /// [`Server::record_verified`]).
    #[serde(default)]
    pub policy: PromotionPolicy,
    /// How long the run's phases took, recorded with the server (absent from completions
    /// written before timings were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<PhaseTimings>,
}

/// Everything needed to register a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerRegistration {
    /// Id.
    pub id: ServerId,
    /// Repository.
    pub repo: RepoUrl,
    /// Branch or tag to follow.
    pub git_ref: GitRef,
    /// How it speaks MCP.
    #[serde(default)]
    pub transport: Transport,
    /// Task size.
    #[serde(default)]
    pub resources: TaskResources,
    /// A description set by a person (never overwritten by generation).
    #[serde(default)]
    pub description: Option<String>,
    /// A language set by a person.
    #[serde(default)]
    pub language: Option<String>,
    /// How the image is built (context folder, Dockerfile, build arguments); the repository's
    /// root `Dockerfile` when absent.
    #[serde(default)]
    pub build: BuildSpec,
    /// The settings the server reads (API keys, options), declared so a launch can give them
    /// values; secret ones never have a stored value.
    #[serde(default)]
    pub settings: Vec<SettingSpec>,
    /// Where the code comes from: the repository (the default) or an imported package or image
    /// (see [`Toolshed::import_server`](crate::services::Toolshed::import_server)). Never read
    /// from a caller's JSON: only an import, which checked the package against its ecosystem's
    /// grammar, sets it.
    #[serde(skip)]
    pub origin: ServerOrigin,
}

impl ServerRegistration {
    /// A registration of `id` from `repo`, following `main`, every other field at its default:
    /// streamable HTTP (port 8000, `/mcp`), the default task size, the repository root's
    /// `Dockerfile`, no declared settings, no description or language.
    pub fn new(id: ServerId, repo: RepoUrl) -> Self {
        Self {
            id,
            repo,
            git_ref: GitRef::main(),
            transport: Transport::default(),
            resources: TaskResources::default(),
            description: None,
            language: None,
            build: BuildSpec::default(),
            settings: Vec::new(),
            origin: ServerOrigin::default(),
        }
    }

    /// A registration from a JSON object whose `repo` is parsed under `policy` (plain
    /// deserialisation applies the strict default policy).
    ///
    /// # Errors
    /// `InvalidInput { field: "repo_url" }` for a missing or refused repository URL,
    /// `InvalidInput { field: "body" }` for any other field that does not fit.
    pub fn from_json(mut value: serde_json::Value, policy: RepoUrlPolicy) -> Result<Self> {
        let object = value
            .as_object_mut()
            .ok_or_else(|| Error::invalid("body", "a registration is a JSON object"))?;
        let repo = match object.remove("repo") {
            Some(serde_json::Value::String(raw)) => RepoUrl::parse(&raw, policy)?,
            Some(_) => return Err(Error::invalid("repo_url", "must be a string")),
            None => return Err(Error::invalid("repo_url", "is required")),
        };
        // The other fields deserialise as usual; the repository, already checked, is put back
        // in place of a stand-in the strict policy accepts.
        object.insert(
            "repo".to_owned(),
            serde_json::Value::String("https://repository.invalid/checked".to_owned()),
        );
        let mut registration: Self =
            serde_json::from_value(value).map_err(|e| Error::invalid("body", e.to_string()))?;
        registration.repo = repo;
        Ok(registration)
    }
}

/// A registered MCP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    /// Id.
    pub id: ServerId,
    /// Repository.
    #[serde(deserialize_with = "RepoUrl::deserialize_stored")]
    pub repo: RepoUrl,
    /// Branch or tag followed.
    pub git_ref: GitRef,
    /// How it speaks MCP.
    pub transport: Transport,
    /// Task size.
    pub resources: TaskResources,
    /// User-facing state of the last verification.
    pub state: VerificationState,
    /// The last good image. Only a completed verification sets it; a failed one never touches it.
    pub image: Option<VerifiedImage>,
    /// What the last successful probe found.
    pub tools: ToolInventory,
    /// Why the last verification failed, if it did.
    pub last_failure: Option<VerificationFailure>,
    /// Description, language, docs.
    pub metadata: ServerMetadata,
    /// How many verifications completed successfully.
    pub verification_count: u32,
    /// Registration time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version, bumped by every write of the repository.
    pub version: u64,
    /// How the image is built; records written before build specs existed load the default
    /// (the repository's root `Dockerfile`).
    #[serde(default)]
    pub build: BuildSpec,
    /// A verified candidate the promotion policy held for review; never launched until approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_review: Option<PendingReview>,
    /// The settings the server declared at registration (none on older records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<SettingSpec>,
    /// Warm-pool settings, set by an admin (off on older records).
    #[serde(default, skip_serializing_if = "super::WarmPool::is_off")]
    pub warm_pool: super::WarmPool,
    /// Where the code comes from; records written before imports existed are git servers.
    #[serde(default, skip_serializing_if = "ServerOrigin::is_git")]
    pub origin: ServerOrigin,
    /// How long the phases of the last completed verification took (promoted or held for
    /// review); absent before the first one and in records written before timings were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_timings: Option<PhaseTimings>,
}

/// Longest accepted manual description.
pub const MAX_DESCRIPTION_LEN: usize = 2000;
/// Longest accepted language name.
pub const MAX_LANGUAGE_LEN: usize = 64;

impl Server {
    /// A new, unverified server from a validated registration.
    pub fn register(reg: ServerRegistration, now: Timestamp) -> Result<Self> {
        reg.transport.validate()?;
        reg.resources.validate()?;
        let build = reg.build.checked()?;
        super::validate_settings(&reg.settings)?;
        let manual = |v: Option<String>, field: &'static str, max: usize| -> Result<_> {
            match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
                Some(s) if s.chars().count() > max => {
                    Err(Error::invalid(field, format!("at most {max} characters")))
                }
                Some(s) => Ok(Some(MetadataField {
                    value: s,
                    provenance: Provenance::manual(now),
                })),
                None => Ok(None),
            }
        };
        let metadata = ServerMetadata {
            description: manual(reg.description, "description", MAX_DESCRIPTION_LEN)?,
            language: manual(reg.language, "language", MAX_LANGUAGE_LEN)?,
            docs: None,
            last_error: None,
        };
        Ok(Self {
            id: reg.id,
            repo: reg.repo,
            git_ref: reg.git_ref,
            transport: reg.transport,
            resources: reg.resources,
            state: VerificationState::Unverified,
            image: None,
            tools: ToolInventory::default(),
            last_failure: None,
            metadata,
            verification_count: 0,
            created_at: now,
            updated_at: now,
            version: 0,
            build,
            pending_review: None,
            settings: reg.settings,
            warm_pool: super::WarmPool::default(),
            origin: reg.origin,
            last_timings: None,
        })
    }

    /// The commit of the last good image (`lastVerifiedSha`).
    pub fn last_verified_commit(&self) -> Option<&CommitSha> {
        self.image.as_ref().map(|i| &i.commit)
    }

    /// Records a successful verification under the completion's promotion policy: either the
    /// new image, commit and tools go live (state `Verified`), or they are held as the pending
    /// candidate (state `NeedsReview`, the live image untouched; see
    /// [`promotion`](super::promotion)). `last_failure` is cleared and one more verification
    /// completed either way. The version is left to the repository, which bumps it in the same
    /// atomic write.
    pub fn record_verified(&mut self, completion: &VerificationCompletion, now: Timestamp) {
        self.apply_completion(completion, now);
        self.last_timings = completion.timings.clone();
    }

    /// Records a failed verification: state `Failed` and the failure. The image (the last good
    /// one) and the tools stay, so the server remains launchable.
    pub fn record_failure(&mut self, failure: &VerificationFailure) {
        self.state = VerificationState::Failed;
        self.last_failure = Some(failure.clone());
        self.updated_at = failure.at;
    }

    /// Whether this host runs the server: every server but an imported remote, which runs at
    /// its own URL (verified by handshake only).
    ///
    /// # Errors
    /// [`Error::NotLaunchable`] for a remote, naming where it runs.
    pub fn ensure_launchable(&self) -> Result<()> {
        match self.origin.remote_url() {
            Some(url) => Err(Error::NotLaunchable {
                server_id: self.id.clone(),
                reason: format!("it is a remote server that runs at {url}; connect to it there"),
            }),
            None => Ok(()),
        }
    }

    /// The image a launch must run, or [`Error::NotVerified`] ([`Error::NotLaunchable`] for a
    /// remote, checked first).
    pub fn launchable_image(&self) -> Result<&VerifiedImage> {
        self.ensure_launchable()?;
        self.image.as_ref().ok_or_else(|| Error::NotVerified {
            server_id: self.id.clone(),
        })
    }
}
