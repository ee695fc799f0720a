//! Request and response bodies. Domain records (`Server`, `PlaygroundSession`, tool outputs,
//! instances) are answered through the typed views of [`views`], which serialise exactly as the
//! records do, so the OpenAPI document describes every field of every answer.

pub mod views;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use toolshed_core::domain::conformance::{self, CheckResult};
use toolshed_core::domain::poisoning::{highest_severity, Finding, Location, Severity, RULES};
use toolshed_core::domain::{
    ChangeKind, PlaygroundSession, Server, ServerId, SessionId, Timestamp, ToolDrift,
};
use utoipa::{IntoParams, ToSchema};

use views::{
    CheckOutcomeView, McpToolView, MetadataTextView, RunView, ServerBody, SessionBody,
    ToolCallResultBody, VerificationFailureView, VerifiedImageView,
};

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process serves requests.
    pub status: String,
    /// Which backend the process runs on (`local`, `aws`, or `custom` for a router built in code).
    pub backend: String,
    /// Whether stdio-only servers can be verified here (the stdio bridge was found), and why
    /// not; absent when the deployment provides the bridge itself (the AWS backend's build
    /// project).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdio_servers: Option<StdioSupport>,
}

/// Whether stdio-only servers can be verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StdioSupport {
    /// `true` when the stdio bridge was found.
    pub available: bool,
    /// Why not, or a warning about the bridge found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One server.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerView {
    /// The server record.
    pub server: ServerBody,
    /// What the tool-poisoning scan of the last verification found (also in
    /// `server.tools.findings`); empty for a clean or never verified server.
    pub findings: Vec<FindingView>,
    /// The highest severity among `findings`.
    pub highest_severity: Option<SeverityView>,
}

impl ServerView {
    /// The view of `server`, its findings typed.
    pub fn new(server: &Server) -> Self {
        let findings: Vec<FindingView> = server
            .tools
            .findings
            .iter()
            .cloned()
            .map(FindingView::from)
            .collect();
        let highest_severity = highest_severity(&server.tools.findings).map(SeverityView::from);
        Self {
            server: server.into(),
            findings,
            highest_severity,
        }
    }
}

/// How much a finding should worry a reviewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeverityView {
    /// Worth a look; common in honest servers too.
    Low,
    /// Unusual for an honest server.
    Medium,
    /// Deceptive by design.
    High,
}

impl From<Severity> for SeverityView {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Low => SeverityView::Low,
            Severity::Medium => SeverityView::Medium,
            Severity::High => SeverityView::High,
        }
    }
}

/// Where a finding was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LocationView {
    /// A tool's name.
    ToolName {
        /// The tool.
        tool: String,
    },
    /// A tool's description.
    ToolDescription {
        /// The tool.
        tool: String,
    },
    /// A parameter's description in a tool's input schema.
    ParameterDescription {
        /// The tool.
        tool: String,
        /// JSON pointer of the parameter's schema, e.g. `/properties/path`.
        pointer: String,
    },
    /// The server's `instructions`.
    ServerInstructions,
    /// A prompt's description.
    PromptDescription {
        /// The prompt.
        prompt: String,
    },
    /// The description of one of a prompt's arguments.
    PromptArgument {
        /// The prompt.
        prompt: String,
        /// The argument.
        argument: String,
    },
}

impl From<Location> for LocationView {
    fn from(l: Location) -> Self {
        match l {
            Location::ToolName { tool } => LocationView::ToolName { tool },
            Location::ToolDescription { tool } => LocationView::ToolDescription { tool },
            Location::ParameterDescription { tool, pointer } => {
                LocationView::ParameterDescription { tool, pointer }
            }
            Location::ServerInstructions => LocationView::ServerInstructions,
            Location::PromptDescription { prompt } => LocationView::PromptDescription { prompt },
            Location::PromptArgument { prompt, argument } => {
                LocationView::PromptArgument { prompt, argument }
            }
        }
    }
}

/// One finding of the tool-poisoning scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FindingView {
    /// The rule's id (`TP001`…; see the README's table).
    pub rule: String,
    /// The rule's short name, e.g. `hidden-unicode`.
    pub name: String,
    /// The rule's severity.
    pub severity: SeverityView,
    /// Where.
    pub location: LocationView,
    /// The offending text with some context, invisible characters shown as `\u{…}`.
    pub excerpt: String,
}

impl From<Finding> for FindingView {
    fn from(f: Finding) -> Self {
        let name = RULES
            .iter()
            .find(|r| r.id == f.rule)
            .map_or_else(String::new, |r| r.name.to_owned());
        Self {
            rule: f.rule,
            name,
            severity: f.severity.into(),
            location: f.location.into(),
            excerpt: f.excerpt,
        }
    }
}

/// One conformance check with its rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamedCheckView {
    /// The rule's id (`MCP-C001`…; see the README's table).
    pub id: String,
    /// The rule's short name, e.g. `tool-name-characters`.
    pub name: String,
    /// How strong the requirement is: `MUST`, `SHOULD` or `expected`.
    pub requirement: String,
    /// The outcome.
    pub outcome: CheckOutcomeView,
    /// What was seen, invisible characters shown as `\u{…}`.
    pub detail: String,
}

impl From<&CheckResult> for NamedCheckView {
    fn from(c: &CheckResult) -> Self {
        let rule = conformance::rule(&c.id);
        Self {
            id: c.id.clone(),
            name: rule.map_or_else(String::new, |r| r.name.to_owned()),
            requirement: rule.map_or_else(String::new, |r| r.requirement.to_string()),
            outcome: c.outcome.into(),
            detail: c.detail.clone(),
        }
    }
}

/// What kind of change a drift entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKindView {
    /// A new tool.
    Added,
    /// A tool no longer offered.
    Removed,
    /// The description of a tool that kept its name changed.
    DescriptionChanged,
    /// An argument became required.
    RequiredParameterAdded,
    /// The input schema changed.
    InputSchemaChanged,
}

impl From<ChangeKind> for ChangeKindView {
    fn from(k: ChangeKind) -> Self {
        match k {
            ChangeKind::Added => ChangeKindView::Added,
            ChangeKind::Removed => ChangeKindView::Removed,
            ChangeKind::DescriptionChanged => ChangeKindView::DescriptionChanged,
            ChangeKind::RequiredParameterAdded => ChangeKindView::RequiredParameterAdded,
            ChangeKind::InputSchemaChanged => ChangeKindView::InputSchemaChanged,
        }
    }
}

/// One change between two verified versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ToolChangeView {
    /// What changed.
    pub kind: ChangeKindView,
    /// The tool.
    pub tool: String,
    /// The argument, for `required_parameter_added`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// The previous description (escaped, cut), for `description_changed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The new description (escaped, cut), for `description_changed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// The changes since the previous verified version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DriftView {
    /// The previous verified commit.
    pub previous_commit: Option<String>,
    /// The digest of the previous version's tools.
    pub previous_digest: String,
    /// The changes, by tool then kind.
    pub changes: Vec<ToolChangeView>,
}

impl From<ToolDrift> for DriftView {
    fn from(d: ToolDrift) -> Self {
        Self {
            previous_commit: d.previous_commit.map(|c| c.to_string()),
            previous_digest: d.previous_digest,
            changes: d
                .changes
                .into_iter()
                .map(|c| ToolChangeView {
                    kind: c.kind.into(),
                    tool: c.tool,
                    parameter: c.parameter,
                    before: c.before,
                    after: c.after,
                })
                .collect(),
        }
    }
}

/// `GET /api/servers/{id}/drift`: what the last verification changed in the tools.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DriftResponse {
    /// The server.
    pub server_id: String,
    /// The commit of the last verified version (`null` before the first verification).
    pub commit: Option<String>,
    /// The digest of its tool definitions.
    pub digest: Option<String>,
    /// The changes from the verified version before it; `null` after a first verification,
    /// when the tools did not change, or when either listing was gated.
    pub drift: Option<DriftView>,
}

impl DriftResponse {
    /// The drift of `server`'s last verification.
    pub fn new(server: &Server) -> Self {
        Self {
            server_id: server.id.to_string(),
            commit: server.last_verified_commit().map(|c| c.to_string()),
            digest: server.tools.digest.clone(),
            drift: server.tools.drift.clone().map(DriftView::from),
        }
    }
}

/// `GET /api/servers` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListServersQuery {
    /// Only servers whose id sorts after this one (the `next` of the previous page).
    #[param(value_type = Option<String>)]
    pub after: Option<ServerId>,
    /// Page size, 1-1000 (default 100).
    pub limit: Option<usize>,
}

/// `POST /api/import` query: which entry of the document, and the server id.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The index of the package to import (default: the first `oci`, else `pypi`, else `npm`;
    /// the first remote when there is no package).
    pub package: Option<usize>,
    /// The index of the remote to import instead of a package (not with `package`).
    pub remote: Option<usize>,
    /// The server id (default: made from the registry name, e.g. `io.github.x/time` → `time`).
    #[param(value_type = Option<String>)]
    pub id: Option<ServerId>,
}

impl ImportQuery {
    /// The import options.
    ///
    /// # Errors
    /// `InvalidInput` (field `remote`) when both a package and a remote are asked for.
    pub fn into_options(self) -> toolshed_core::Result<toolshed_core::services::ImportOptions> {
        use toolshed_core::domain::server_json::PackageChoice;
        let choice = match (self.package, self.remote) {
            (Some(_), Some(_)) => {
                return Err(toolshed_core::Error::invalid(
                    "remote",
                    "ask for a package or a remote, not both",
                ))
            }
            (Some(i), None) => PackageChoice::Package(i),
            (None, Some(i)) => PackageChoice::Remote(i),
            (None, None) => PackageChoice::Preferred,
        };
        Ok(toolshed_core::services::ImportOptions {
            choice,
            id: self.id,
        })
    }
}

/// A `server.json` document of the MCP Registry (`$schema`, `name`, `description`, `version`,
/// `packages`, `remotes`, ...), read as untrusted input.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(value_type = Object)]
pub struct ServerJsonDocument(pub serde_json::Value);

/// What an import registered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportedView {
    /// The new, unverified server (`origin` says what was imported).
    pub server: ServerBody,
    /// What the import left out (e.g. runtime arguments this host decides itself).
    pub notes: Vec<String>,
}

impl ImportedView {
    /// The view of an import.
    pub fn new(imported: &toolshed_core::services::Imported) -> Self {
        Self {
            server: (&imported.server).into(),
            notes: imported.notes.clone(),
        }
    }
}

/// A page of servers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerPage {
    /// The servers, by id.
    pub servers: Vec<ServerBody>,
    /// The `after` of the next page, when the page was full.
    pub next: Option<String>,
}

/// `POST /api/servers/{id}/approve` and `/reject` body: which candidate the decision is about.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// The candidate's image digest (`sha256:` and 64 lowercase hex digits) as
    /// `pending_review.digest` shows it, or its full 40-digit commit. A candidate replaced since
    /// is refused with 409 `review_mismatch`.
    pub digest: String,
}

/// `PUT /api/servers/{id}/warm-pool` body: the server's warm pool (size 0 turns it off and
/// retires its sessions).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmPoolRequest {
    /// Ready sessions to keep; at most the deployment's warm-pool cap and per-server session cap.
    #[schema(minimum = 0, maximum = 100)]
    pub size: u32,
    /// Seconds a warm session may wait unclaimed before it is retired (default 600).
    #[schema(minimum = 60, maximum = 86400)]
    #[serde(default)]
    pub idle_ttl_seconds: Option<u64>,
}

impl WarmPoolRequest {
    /// The domain settings (validated by the service).
    pub fn pool(&self) -> toolshed_core::domain::WarmPool {
        toolshed_core::domain::WarmPool {
            size: self.size,
            idle_ttl: self.idle_ttl_seconds.map_or(
                toolshed_core::domain::DEFAULT_WARM_IDLE_TTL,
                std::time::Duration::from_secs,
            ),
        }
    }
}

/// `POST /api/servers/{id}/reverify` body (optional) and query.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReverifyRequest {
    /// Rebuild even when the commit is unchanged and its image still exists.
    #[serde(default)]
    pub force: Option<bool>,
}

/// What a re-verification request did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReverifyResponse {
    /// `started` (202) or `up_to_date` (200).
    pub status: String,
    /// The server.
    pub server_id: String,
    /// The commit being (or already) verified.
    pub commit: Option<String>,
    /// The run, when one was started.
    pub run_id: Option<String>,
    /// Where to follow the verification.
    pub status_url: String,
}

/// A verification's progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VerificationStatus {
    /// The server.
    pub server_id: String,
    /// Of the last completed run.
    pub state: views::VerificationStateView,
    /// Whether a live run holds the lease now.
    pub in_progress: bool,
    /// The run holding the lease (live, or `stale` when its holder died and the run waits for
    /// the resume worker).
    pub run: Option<RunView>,
    /// The last good image.
    pub image: Option<VerifiedImageView>,
    /// Why the last run failed.
    pub last_failure: Option<VerificationFailureView>,
    /// Completed verifications.
    pub verification_count: u32,
    /// How long the phases of the last completed verification took.
    pub last_timings: Option<views::PhaseTimingsView>,
}

/// `POST /api/servers/{id}/playground` body (optional). The TTL bounds and the key's pattern are
/// declared in the OpenAPI document from the service's configuration.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct LaunchBody {
    /// Session TTL in seconds (default and bounds from the service configuration).
    #[serde(default, deserialize_with = "whole::opt_u64")]
    pub ttl_seconds: Option<u64>,
    /// Makes a retried launch return the same session; the `Idempotency-Key` header also works.
    pub idempotency_key: Option<String>,
    /// Values of the server's declared settings, name → value (declared defaults fill the
    /// rest). A required setting without value or default, or an undeclared name, is refused
    /// (422) before anything starts. Values go into the session's task only: never stored,
    /// logged or returned.
    #[serde(default)]
    pub settings: Option<std::collections::BTreeMap<String, String>>,
}

/// One session, with the links to follow it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    /// The session record.
    pub session: SessionBody,
    /// The runner's task handle (ECS task ARN or container id); clients may select the session
    /// by it (`task_arn` / `taskArn`).
    pub task_arn: String,
    /// Status URL (refreshes from the runner).
    pub status_url: String,
    /// Execute URL.
    pub execute_url: String,
    /// While `starting`: since when (the launch, RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starting_since: Option<Timestamp>,
    /// While `starting`: for how many seconds so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_for_secs: Option<u64>,
}

impl SessionView {
    /// The view of `session` at `now` (the service's time).
    pub fn new(session: &PlaygroundSession, now: Timestamp) -> Self {
        let server = &session.server_id;
        let starting_for = session.starting_for(now);
        Self {
            starting_since: starting_for.map(|_| session.created_at),
            starting_for_secs: starting_for.map(|d| d.as_secs()),
            task_arn: session.task.to_string(),
            status_url: format!(
                "/api/servers/{server}/playground/status?session_id={}",
                session.id
            ),
            execute_url: format!("/api/servers/{server}/execute"),
            session: session.into(),
        }
    }
}

/// Which session: by id, or by the task ARN clients were given at launch. Both names are
/// accepted in `snake_case` and `camelCase`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionSelector {
    /// The session id.
    #[serde(default, alias = "sessionId")]
    #[param(value_type = Option<String>)]
    #[schema(value_type = Option<String>)]
    pub session_id: Option<SessionId>,
    /// The task ARN (or container id on the local backend).
    #[serde(default, alias = "taskArn")]
    pub task_arn: Option<String>,
}

/// `POST /api/servers/{id}/execute` body. The OpenAPI document declares `tool` required; the
/// playground UI's `command` form (`<tool> [<JSON object of arguments>]`) is still accepted
/// without `tool`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ExecuteRequest {
    /// The session (default: the server's newest live session).
    #[serde(default, alias = "sessionId")]
    #[schema(value_type = Option<String>)]
    pub session_id: Option<SessionId>,
    /// Or the session's task ARN.
    #[serde(default, alias = "taskArn")]
    pub task_arn: Option<String>,
    /// The tool to call: 1-128 visible ASCII characters.
    #[schema(value_type = String)]
    pub tool: Option<String>,
    /// Its arguments (a JSON object).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub arguments: Map<String, Value>,
    /// Instead of `tool`/`arguments`, a command line as the playground UI sends it.
    #[serde(default)]
    #[schema(ignore)]
    pub command: Option<String>,
}

/// A tool's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExecuteResponse {
    /// The session that answered.
    pub session_id: String,
    /// The tool called.
    pub tool: String,
    /// The MCP result.
    pub result: ToolCallResultBody,
}

/// A server's documentation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocsResponse {
    /// The server.
    pub server_id: String,
    /// Description (manual or generated), with provenance.
    pub description: Option<MetadataTextView>,
    /// Primary language, with provenance.
    pub language: Option<MetadataTextView>,
    /// The tools found by the last verification.
    pub tools: Vec<McpToolView>,
    /// What the tool-poisoning scan found in those tools.
    pub findings: Vec<FindingView>,
    /// The conformance checks of the last verification, with their rules (empty when no report
    /// was recorded).
    pub conformance: Vec<NamedCheckView>,
    /// The long documentation (Markdown), when generated.
    pub markdown: Option<String>,
    /// Its storage key.
    pub docs_key: Option<String>,
    /// The commit it documents.
    pub commit: Option<String>,
}

/// `POST /api/servers` body: a registration. Every field's constraints are declared in the
/// OpenAPI document and checked by [`RegisterRequest::into_registration`] with the same patterns.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// The server id: 1-63 of `a-z`, `0-9`, `-`, starting with a letter or digit.
    pub id: String,
    /// The git repository: an `https://` URL without credentials, query or fragment (`file://`
    /// where the deployment allows local repositories).
    pub repo: String,
    /// The branch or tag to follow.
    pub git_ref: String,
    /// How the server speaks MCP (default: streamable HTTP on port 8000 at `/mcp`).
    #[serde(default)]
    pub transport: Option<TransportBody>,
    /// Task size (default: 256 CPU units, 512 MiB).
    #[serde(default)]
    pub resources: Option<ResourcesBody>,
    /// A description set by a person (never overwritten by generation).
    #[serde(default)]
    pub description: Option<String>,
    /// The primary language, set by a person.
    #[serde(default)]
    pub language: Option<String>,
    /// How the image is built (default: the repository root's `Dockerfile`, no arguments).
    #[serde(default)]
    pub build: Option<BuildBody>,
    /// The settings the server reads from its environment (API keys, options), at most 64.
    /// Launches give their values; views show these declarations, never values.
    #[serde(default)]
    pub settings: Option<Vec<SettingBody>>,
    /// Values of declared settings the verification's check task runs with (e.g. an API key
    /// that unlocks the tool list), name → value. Kept in the secret store, never in the
    /// server's record, never returned; re-verifications use them again.
    #[serde(default)]
    pub test_values: Option<std::collections::BTreeMap<String, String>>,
}

/// One setting a server declares: the environment variable it reads.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingBody {
    /// The variable name: `[A-Za-z_][A-Za-z0-9_]{0,255}`.
    pub name: String,
    /// What the value is for (at most 500 characters).
    #[serde(default)]
    pub description: Option<String>,
    /// Whether a launch must give a value (unless there is a default).
    #[serde(default)]
    pub required: bool,
    /// Whether the value is a secret: kept in the secret store only, never returned. A secret
    /// has no default.
    #[serde(default)]
    pub secret: bool,
    /// The value used when a launch gives none (stored in plain text: not for secrets).
    #[serde(default)]
    pub default: Option<String>,
}

/// `build` of a registration: where in the repository the server's image is built from. Use
/// `context` for a server in a subfolder of a monorepo. Build arguments are visible in the
/// image's history and in the server's record: never put secrets in them.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildBody {
    /// The build context: a folder of the repository, relative to its root, without `..`
    /// (default `.`).
    #[serde(default)]
    pub context: Option<String>,
    /// The Dockerfile, relative to the context (default `Dockerfile`).
    #[serde(default)]
    pub dockerfile: Option<String>,
    /// Build arguments (`ARG` values), name → value; at most 32. Not for secrets.
    #[serde(default)]
    pub args: Option<std::collections::BTreeMap<String, String>>,
}

/// JSON integers also written with a zero fraction (`512.0`): JSON Schema's `integer` admits
/// them, so a client generated from the document may send them.
pub(crate) mod whole {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};

    fn number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        if let Some(v) = n.as_u64() {
            return Ok(v);
        }
        match n.as_f64() {
            Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Ok(f as u64),
            _ => Err(D::Error::custom(format!(
                "{n} is not a whole number of range"
            ))),
        }
    }

    /// A `u16`.
    pub fn u16<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        let v = number(d)?;
        u16::try_from(v).map_err(|_| D::Error::custom(format!("{v} is out of range")))
    }

    /// A `u32`.
    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let v = number(d)?;
        u32::try_from(v).map_err(|_| D::Error::custom(format!("{v} is out of range")))
    }

    /// An optional `u64` (`null` is `None`).
    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let v = Option::<serde_json::Number>::deserialize(d)?;
        match v {
            None => Ok(None),
            Some(n) => number(n)
                .map(Some)
                .map_err(|e| D::Error::custom(e.to_string())),
        }
    }
}

/// How a server speaks MCP.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TransportBody {
    /// Streamable HTTP inside the container.
    Http {
        /// The container port, 1-65535.
        #[serde(deserialize_with = "whole::u16")]
        port: u16,
        /// The MCP path, starting with `/`.
        path: String,
    },
    /// A stdio server, served over HTTP by the stdio bridge.
    Stdio {
        /// The command and its arguments.
        command: Vec<String>,
    },
}

/// A task's size.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub struct ResourcesBody {
    /// CPU units, 256-16384.
    #[serde(deserialize_with = "whole::u32")]
    pub cpu_units: u32,
    /// Memory in MiB, 512-122880.
    #[serde(deserialize_with = "whole::u32")]
    pub memory_mib: u32,
}

/// `POST /api/servers/{id}/playground/stop` body: which session (`session_id` or `task_arn`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct StopRequest {
    /// The session id.
    #[serde(default, alias = "sessionId")]
    #[schema(value_type = Option<String>)]
    pub session_id: Option<SessionId>,
    /// The task ARN (or container id on the local backend).
    #[serde(default, alias = "taskArn")]
    pub task_arn: Option<String>,
}

impl From<StopRequest> for SessionSelector {
    fn from(r: StopRequest) -> Self {
        SessionSelector {
            session_id: r.session_id,
            task_arn: r.task_arn,
        }
    }
}
