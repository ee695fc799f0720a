//! Typed views of the domain records the API answers with. Each view serialises exactly as its
//! domain record does (same field names, enum spellings, `null`s and omitted fields), so the
//! answers did not change when they got a schema; the OpenAPI document describes them through
//! these views instead of untyped objects. Only content that is free-form by nature (a tool's
//! input schema, a server's capabilities, MCP content items, structured tool output) stays
//! untyped JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use toolshed_core::domain::conformance::{
    CheckResult, ConformanceReport, Outcome, ProtocolEra, SchemaState, ToolSchemas,
};
use toolshed_core::domain::poisoning::Finding;
use toolshed_core::domain::{
    DocsRef, Egress, Endpoint, ImageRef, InstanceState, InstanceView, McpServerInfo, McpTool,
    MetadataFailure, MetadataField, PendingReview, PhaseTimings, PlaygroundSession, Provenance,
    ProvenanceSource, ReviewReason, Server, ServerMetadata, SessionState, SettingSpec, StopReason,
    TaskExit, TaskResources, Timestamp, ToolCallOutput, ToolDrift, ToolInventory, Transport,
    VerificationFailure, VerificationPhase, VerificationState, VerificationStep, VerifiedImage,
};
use toolshed_core::services::{InstanceHealth, RunStatus};
use utoipa::ToSchema;

use super::{ChangeKindView, LocationView, SeverityView, ToolChangeView};

/// Whether a server's last completed verification succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationStateView {
    /// Never verified.
    Unverified,
    /// The last verification succeeded.
    Verified,
    /// The last verification failed.
    Failed,
    /// The last verification completed but the promotion policy held it: its candidate waits in
    /// `pending_review` for an admin, the live image (if any) stays launchable.
    NeedsReview,
}

impl From<VerificationState> for VerificationStateView {
    fn from(s: VerificationState) -> Self {
        match s {
            VerificationState::Unverified => Self::Unverified,
            VerificationState::Verified => Self::Verified,
            VerificationState::Failed => Self::Failed,
            VerificationState::NeedsReview => Self::NeedsReview,
        }
    }
}

/// How a server speaks MCP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TransportView {
    /// The image serves streamable HTTP itself.
    Http {
        /// Container port.
        port: u16,
        /// MCP path, e.g. `/mcp`.
        path: String,
    },
    /// A stdio server, served over HTTP by the stdio bridge.
    Stdio {
        /// The command and its arguments.
        command: Vec<String>,
    },
}

impl From<&Transport> for TransportView {
    fn from(t: &Transport) -> Self {
        match t {
            Transport::Http { port, path } => Self::Http {
                port: *port,
                path: path.clone(),
            },
            Transport::Stdio { command } => Self::Stdio {
                command: command.clone(),
            },
        }
    }
}

/// Where a server's tasks may open connections to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EgressView {
    /// No outbound connections.
    None,
    /// Outbound HTTPS to public addresses.
    Internet,
}

impl From<Egress> for EgressView {
    fn from(e: Egress) -> Self {
        match e {
            Egress::None => Self::None,
            Egress::Internet => Self::Internet,
        }
    }
}

/// What a server's tasks get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct TaskResourcesView {
    /// CPU units (1024 = 1 vCPU).
    pub cpu_units: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Whether the image runs as its own (root) user.
    pub run_as_root: bool,
    /// Where the tasks may connect to.
    pub egress: EgressView,
    /// Whether the tasks run with the deployment's task role.
    pub task_role: bool,
}

impl From<&TaskResources> for TaskResourcesView {
    fn from(r: &TaskResources) -> Self {
        Self {
            cpu_units: r.cpu_units,
            memory_mib: r.memory_mib,
            run_as_root: r.run_as_root,
            egress: r.egress.into(),
            task_role: r.task_role,
        }
    }
}

/// A built image: repository, the tag it was pushed with, and the digest that tag resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ImageRefView {
    /// The repository.
    pub repository: String,
    /// The tag it was pushed with.
    pub tag: String,
    /// The digest (`sha256:` and hex).
    pub digest: String,
}

impl From<&ImageRef> for ImageRefView {
    fn from(i: &ImageRef) -> Self {
        Self {
            repository: i.repository().to_owned(),
            tag: i.tag().to_string(),
            digest: i.digest().to_string(),
        }
    }
}

/// The image a server was last verified with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VerifiedImageView {
    /// The image.
    pub image: ImageRefView,
    /// The commit it was built from.
    pub commit: String,
    /// When verification completed (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub verified_at: Timestamp,
}

impl From<&VerifiedImage> for VerifiedImageView {
    fn from(v: &VerifiedImage) -> Self {
        Self {
            image: (&v.image).into(),
            commit: v.commit.to_string(),
            verified_at: v.verified_at,
        }
    }
}

/// Who answered the MCP handshake.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct McpServerInfoView {
    /// Negotiated protocol version.
    pub protocol_version: String,
    /// Server name from `initialize`.
    pub name: Option<String>,
    /// Server version from `initialize`.
    pub version: Option<String>,
    /// Capabilities as sent by the server (free-form).
    pub capabilities: Value,
    /// The server's `instructions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

impl From<&McpServerInfo> for McpServerInfoView {
    fn from(i: &McpServerInfo) -> Self {
        Self {
            protocol_version: i.protocol_version.clone(),
            name: i.name.clone(),
            version: i.version.clone(),
            capabilities: i.capabilities.clone(),
            instructions: i.instructions.clone(),
        }
    }
}

/// One tool a server offers.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct McpToolView {
    /// Tool name.
    pub name: String,
    /// Human description, when the server gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON schema of its arguments, as the server sent it (free-form).
    pub input_schema: Value,
}

impl From<&McpTool> for McpToolView {
    fn from(t: &McpTool) -> Self {
        Self {
            name: t.name.clone(),
            description: t.description.clone(),
            input_schema: t.input_schema.clone(),
        }
    }
}

/// One finding as stored with the tools (the rule's name is in the top-level `findings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StoredFindingView {
    /// The rule's id.
    pub rule: String,
    /// The rule's severity.
    pub severity: SeverityView,
    /// Where.
    pub location: LocationView,
    /// The offending text, escaped and cut.
    pub excerpt: String,
}

impl From<&Finding> for StoredFindingView {
    fn from(f: &Finding) -> Self {
        Self {
            rule: f.rule.clone(),
            severity: f.severity.into(),
            location: f.location.clone().into(),
            excerpt: f.excerpt.clone(),
        }
    }
}

/// The changes since the previous verified version, as stored with the tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StoredDriftView {
    /// The commit of the previous verified version, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_commit: Option<String>,
    /// The digest of the previous version's tools.
    pub previous_digest: String,
    /// The changes, by tool then kind.
    pub changes: Vec<ToolChangeView>,
}

impl From<&ToolDrift> for StoredDriftView {
    fn from(d: &ToolDrift) -> Self {
        Self {
            previous_commit: d.previous_commit.as_ref().map(ToString::to_string),
            previous_digest: d.previous_digest.clone(),
            changes: d
                .changes
                .iter()
                .map(|c| ToolChangeView {
                    kind: ChangeKindView::from(c.kind),
                    tool: c.tool.clone(),
                    parameter: c.parameter.clone(),
                    before: c.before.clone(),
                    after: c.after.clone(),
                })
                .collect(),
        }
    }
}

/// What the last verification found of a server's tools.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ToolInventoryView {
    /// Who answered the handshake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_info: Option<McpServerInfoView>,
    /// The tools.
    pub tools: Vec<McpToolView>,
    /// Why the tools could not be listed, when they were gated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gated_reason: Option<String>,
    /// What the tool-poisoning scan found.
    pub findings: Vec<StoredFindingView>,
    /// The digest of the tool definitions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The changes since the previous verified version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<StoredDriftView>,
    /// How closely the server follows the MCP specification; absent for records verified
    /// before reports were kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conformance: Option<ConformanceReportView>,
}

impl From<&ToolInventory> for ToolInventoryView {
    fn from(t: &ToolInventory) -> Self {
        Self {
            server_info: t.server_info.as_ref().map(Into::into),
            tools: t.tools.iter().map(Into::into).collect(),
            gated_reason: t.gated_reason.clone(),
            findings: t.findings.iter().map(Into::into).collect(),
            digest: t.digest.clone(),
            drift: t.drift.as_ref().map(Into::into),
            conformance: t.conformance.as_ref().map(Into::into),
        }
    }
}

/// How the client and the server agreed on a protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolEraView {
    /// The `initialize` handshake: one negotiated version, the others not announced.
    Initialize,
    /// `server/discover` (2026-07-28 on): the server announces its versions, the client picks
    /// one and sends it with every request.
    Discover,
}

impl From<ProtocolEra> for ProtocolEraView {
    fn from(e: ProtocolEra) -> Self {
        match e {
            ProtocolEra::Initialize => Self::Initialize,
            ProtocolEra::Discover => Self::Discover,
        }
    }
}

/// The outcome of one conformance check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcomeView {
    /// The server does what the specification asks.
    Pass,
    /// A SHOULD is not met, or the fact could not be observed.
    Warn,
    /// A MUST is not met, or the server misbehaves in a way a host cannot work around.
    Fail,
}

impl From<Outcome> for CheckOutcomeView {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Pass => Self::Pass,
            Outcome::Warn => Self::Warn,
            Outcome::Fail => Self::Fail,
        }
    }
}

/// One conformance check as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConformanceCheckView {
    /// The rule's id (`MCP-C001`…; see the README's table).
    pub id: String,
    /// Its outcome.
    pub outcome: CheckOutcomeView,
    /// What was seen, invisible characters shown as `\u{…}`, at most 300 characters.
    pub detail: String,
}

impl From<&CheckResult> for ConformanceCheckView {
    fn from(c: &CheckResult) -> Self {
        Self {
            id: c.id.clone(),
            outcome: c.outcome.into(),
            detail: c.detail.clone(),
        }
    }
}

/// What a tool's schema turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemaStateView {
    /// The tool declares none.
    Absent,
    /// A JSON Schema object of type `object` that passes its meta-schema.
    Valid,
    /// Present but not a usable JSON Schema object.
    Invalid,
}

impl From<SchemaState> for SchemaStateView {
    fn from(s: SchemaState) -> Self {
        match s {
            SchemaState::Absent => Self::Absent,
            SchemaState::Valid => Self::Valid,
            SchemaState::Invalid => Self::Invalid,
        }
    }
}

/// The schemas of one tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ToolSchemasView {
    /// The tool's name, as listed.
    pub tool: String,
    /// Its input schema.
    pub input_schema: SchemaStateView,
    /// Its output schema (optional in MCP).
    pub output_schema: SchemaStateView,
}

impl From<&ToolSchemas> for ToolSchemasView {
    fn from(t: &ToolSchemas) -> Self {
        Self {
            tool: t.tool.clone(),
            input_schema: t.input_schema.into(),
            output_schema: t.output_schema.into(),
        }
    }
}

/// The conformance report recorded with a verified inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConformanceReportView {
    /// How the protocol version was agreed.
    pub era: ProtocolEraView,
    /// The negotiated protocol version.
    pub protocol_version: String,
    /// The versions the server supports, when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supported_versions: Option<Vec<String>>,
    /// One result per rule.
    pub checks: Vec<ConformanceCheckView>,
    /// Per tool, what its schemas are.
    pub tools: Vec<ToolSchemasView>,
}

impl From<&ConformanceReport> for ConformanceReportView {
    fn from(r: &ConformanceReport) -> Self {
        Self {
            era: r.era.into(),
            protocol_version: r.protocol_version.clone(),
            supported_versions: r.supported_versions.clone(),
            checks: r.checks.iter().map(Into::into).collect(),
            tools: r.tools.iter().map(Into::into).collect(),
        }
    }
}

/// The steps of a verification, as a failure records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationStepView {
    /// Resolve the followed ref to a commit.
    ResolveCommit,
    /// Build and push the image.
    Build,
    /// Resolve the pushed tag to its digest.
    ResolveDigest,
    /// Start the image once and check it speaks MCP.
    Check,
    /// Record the new image, commit and tools.
    Record,
}

impl From<VerificationStep> for VerificationStepView {
    fn from(s: VerificationStep) -> Self {
        match s {
            VerificationStep::ResolveCommit => Self::ResolveCommit,
            VerificationStep::Build => Self::Build,
            VerificationStep::ResolveDigest => Self::ResolveDigest,
            VerificationStep::Check => Self::Check,
            VerificationStep::Record => Self::Record,
        }
    }
}

/// The phases of a verification whose durations are recorded, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationPhaseView {
    /// Resolve the followed ref (or an imported server's package pin) to a commit.
    ResolveCommit,
    /// Start the build and poll it until it succeeded (pushing the image included).
    Build,
    /// Resolve the pushed tag to its digest in the image store.
    ResolveDigest,
    /// Prepare and start the check task.
    StartCheckTask,
    /// Wait until the check task runs and has an endpoint.
    AwaitEndpoint,
    /// The MCP handshake and the listings the probe takes.
    McpHandshake,
    /// Stop the check task.
    StopCheckTask,
    /// Move the checked image to its verified tag.
    StoreImage,
    /// Scan the listed tools (poisoning rules, drift).
    ScanTools,
}

impl From<VerificationPhase> for VerificationPhaseView {
    fn from(p: VerificationPhase) -> Self {
        match p {
            VerificationPhase::ResolveCommit => Self::ResolveCommit,
            VerificationPhase::Build => Self::Build,
            VerificationPhase::ResolveDigest => Self::ResolveDigest,
            VerificationPhase::StartCheckTask => Self::StartCheckTask,
            VerificationPhase::AwaitEndpoint => Self::AwaitEndpoint,
            VerificationPhase::McpHandshake => Self::McpHandshake,
            VerificationPhase::StopCheckTask => Self::StopCheckTask,
            VerificationPhase::StoreImage => Self::StoreImage,
            VerificationPhase::ScanTools => Self::ScanTools,
        }
    }
}

/// How long one phase took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct PhaseTimingView {
    /// The phase.
    pub phase: VerificationPhaseView,
    /// Its duration in milliseconds.
    pub millis: u64,
}

/// How long the phases of a verification took. Phases are contiguous: each lasts from the end
/// of the previous one (or `started_at`) to its own end, so they add up to `ended_at -
/// started_at`; the final record write is not included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PhaseTimingsView {
    /// When the first phase began (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    /// When the last phase ended (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub ended_at: Timestamp,
    /// The phases in the order they first ran.
    pub phases: Vec<PhaseTimingView>,
}

impl From<&PhaseTimings> for PhaseTimingsView {
    fn from(t: &PhaseTimings) -> Self {
        Self {
            started_at: t.started_at,
            ended_at: t.ended_at,
            phases: t
                .phases
                .iter()
                .map(|p| PhaseTimingView {
                    phase: p.phase.into(),
                    millis: p.millis,
                })
                .collect(),
        }
    }
}

/// Why a verification failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VerificationFailureView {
    /// The failed step.
    pub step: VerificationStepView,
    /// Why, for humans.
    pub reason: String,
    /// The commit that was being verified, when known.
    pub commit: Option<String>,
    /// A link to the build log, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    /// When (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Whether a retry may succeed.
    pub retryable: bool,
}

impl From<&VerificationFailure> for VerificationFailureView {
    fn from(f: &VerificationFailure) -> Self {
        Self {
            step: f.step.into(),
            reason: f.reason.clone(),
            commit: f.commit.as_ref().map(ToString::to_string),
            log_url: f.log_url.clone(),
            at: f.at,
            retryable: f.retryable,
        }
    }
}

/// Who or what set a metadata field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProvenanceSourceView {
    /// Set by a person.
    Manual,
    /// Generated by a language model.
    Generated {
        /// Model name as reported by the API.
        model: String,
        /// Prompt tokens billed.
        input_tokens: u32,
        /// Completion tokens billed.
        output_tokens: u32,
    },
    /// Derived offline from the repository.
    Heuristic,
}

impl From<&ProvenanceSource> for ProvenanceSourceView {
    fn from(s: &ProvenanceSource) -> Self {
        match s {
            ProvenanceSource::Manual => Self::Manual,
            ProvenanceSource::Generated {
                model,
                input_tokens,
                output_tokens,
            } => Self::Generated {
                model: model.clone(),
                input_tokens: *input_tokens,
                output_tokens: *output_tokens,
            },
            ProvenanceSource::Heuristic => Self::Heuristic,
        }
    }
}

/// Where a metadata value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProvenanceView {
    /// Who or what set it.
    pub source: ProvenanceSourceView,
    /// When (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// A remark, e.g. why a generation fell back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl From<&Provenance> for ProvenanceView {
    fn from(p: &Provenance) -> Self {
        Self {
            source: (&p.source).into(),
            at: p.at,
            note: p.note.clone(),
        }
    }
}

/// A text metadata value with its provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MetadataTextView {
    /// The value.
    pub value: String,
    /// Where it came from.
    pub provenance: ProvenanceView,
}

impl From<&MetadataField<String>> for MetadataTextView {
    fn from(f: &MetadataField<String>) -> Self {
        Self {
            value: f.value.clone(),
            provenance: (&f.provenance).into(),
        }
    }
}

/// Where a server's long documentation is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DocsRefView {
    /// Storage key.
    pub key: String,
    /// Size in bytes.
    pub bytes: u64,
    /// The commit it documents.
    pub commit: String,
    /// Where it came from.
    pub provenance: ProvenanceView,
}

impl From<&DocsRef> for DocsRefView {
    fn from(d: &DocsRef) -> Self {
        Self {
            key: d.key.clone(),
            bytes: d.bytes,
            commit: d.commit.to_string(),
            provenance: (&d.provenance).into(),
        }
    }
}

/// Why the last metadata generation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MetadataFailureView {
    /// Why, for humans.
    pub reason: String,
    /// When (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Whether a retry may succeed.
    pub retryable: bool,
}

impl From<&MetadataFailure> for MetadataFailureView {
    fn from(f: &MetadataFailure) -> Self {
        Self {
            reason: f.reason.clone(),
            at: f.at,
            retryable: f.retryable,
        }
    }
}

/// Description, language and documentation of a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ServerMetadataView {
    /// Description, with provenance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<MetadataTextView>,
    /// Primary language, with provenance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<MetadataTextView>,
    /// The long documentation's storage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docs: Option<DocsRefView>,
    /// Why the last generation failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<MetadataFailureView>,
}

impl From<&ServerMetadata> for ServerMetadataView {
    fn from(m: &ServerMetadata) -> Self {
        Self {
            description: m.description.as_ref().map(Into::into),
            language: m.language.as_ref().map(Into::into),
            docs: m.docs.as_ref().map(Into::into),
            last_error: m.last_error.as_ref().map(Into::into),
        }
    }
}

/// A registered server.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ServerBody {
    /// The server id.
    pub id: String,
    /// The git repository.
    pub repo: String,
    /// The branch or tag followed.
    pub git_ref: String,
    /// How it speaks MCP.
    pub transport: TransportView,
    /// What its tasks get.
    pub resources: TaskResourcesView,
    /// Verification state.
    pub state: VerificationStateView,
    /// The last verified image.
    pub image: Option<VerifiedImageView>,
    /// What the last verification found of its tools.
    pub tools: ToolInventoryView,
    /// Why the last verification failed.
    pub last_failure: Option<VerificationFailureView>,
    /// Description, language and documentation.
    pub metadata: ServerMetadataView,
    /// Completed verifications.
    pub verification_count: u32,
    /// Registration time (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Last change (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version.
    pub version: u64,
    /// How the image is built.
    pub build: BuildView,
    /// A verified candidate the promotion policy held; launches keep running `image` until an
    /// admin approves it (`POST /api/servers/{id}/approve` with its digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_review: Option<PendingReviewView>,
    /// The settings it declares (never their values, except declared defaults); absent when
    /// it declares none, as in the record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<SettingView>,
    /// Its warm pool, when it keeps one (`PUT /api/servers/{id}/warm-pool`, scope `admin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<WarmPoolView>,
    /// Where an imported server comes from (`POST /api/import`); absent for a server built
    /// from its git repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<OriginView>,
    /// How long the phases of the last completed verification took; absent before the first
    /// one (and for verifications recorded before timings were kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_timings: Option<PhaseTimingsView>,
}

/// A declared setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SettingView {
    /// The environment variable the server reads.
    pub name: String,
    /// What the value is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether a launch must give a value (unless there is a default).
    pub required: bool,
    /// Whether the value is a secret.
    pub secret: bool,
    /// The value used when a launch gives none (never on a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

impl From<&SettingSpec> for SettingView {
    fn from(s: &SettingSpec) -> Self {
        Self {
            name: s.name.to_string(),
            description: s.description.clone(),
            required: s.required,
            secret: s.secret,
            default: s.default.clone(),
        }
    }
}

/// A server's warm pool: ready sessions kept for launches to claim at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct WarmPoolView {
    /// How many ready, unclaimed sessions the server keeps.
    pub size: u32,
    /// How long a warm session waits unclaimed before it is retired, in seconds.
    pub idle_ttl_seconds: u64,
}

impl From<toolshed_core::domain::WarmPool> for WarmPoolView {
    fn from(p: toolshed_core::domain::WarmPool) -> Self {
        Self {
            size: p.size,
            idle_ttl_seconds: p.idle_ttl.as_secs(),
        }
    }
}

/// What a server was imported from.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OriginView {
    /// Always `imported`.
    pub kind: String,
    /// The MCP Registry name (`io.github.owner/server`).
    pub registry_name: String,
    /// The package, image or remote.
    pub source: PackageSourceView,
}

/// An imported package, image or remote.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PackageSourceView {
    /// A published image, pinned by digest (`registry/repository[:tag]@sha256:…`).
    Oci {
        /// The reference.
        reference: String,
    },
    /// A PyPI package at an exact version.
    Pypi {
        /// The project.
        package: String,
        /// The version.
        version: String,
    },
    /// An npm package at an exact version.
    Npm {
        /// The package.
        package: String,
        /// The version.
        version: String,
    },
    /// A remote server's https endpoint.
    Remote {
        /// The URL.
        url: String,
    },
}

impl OriginView {
    fn of(origin: &toolshed_core::domain::ServerOrigin) -> Option<Self> {
        use toolshed_core::domain::server_json::PackageSource;
        let toolshed_core::domain::ServerOrigin::Imported {
            registry_name,
            source,
        } = origin
        else {
            return None;
        };
        let source = match source {
            PackageSource::Oci { reference } => PackageSourceView::Oci {
                reference: reference.clone(),
            },
            PackageSource::Pypi { package, version } => PackageSourceView::Pypi {
                package: package.clone(),
                version: version.clone(),
            },
            PackageSource::Npm { package, version } => PackageSourceView::Npm {
                package: package.clone(),
                version: version.clone(),
            },
            PackageSource::Remote { url } => PackageSourceView::Remote { url: url.clone() },
        };
        Some(Self {
            kind: "imported".to_owned(),
            registry_name: registry_name.clone(),
            source,
        })
    }
}

/// How a server's image is built: context folder, Dockerfile and build arguments.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BuildView {
    /// The build context, a folder of the repository (`.` for its root).
    pub context: String,
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
    /// Build arguments, name → value.
    pub args: std::collections::BTreeMap<String, String>,
}

impl From<&toolshed_core::domain::BuildSpec> for BuildView {
    fn from(b: &toolshed_core::domain::BuildSpec) -> Self {
        Self {
            context: b.context.clone(),
            dockerfile: b.dockerfile.clone(),
            args: b.args.clone(),
        }
    }
}

impl From<&Server> for ServerBody {
    fn from(s: &Server) -> Self {
        Self {
            id: s.id.to_string(),
            repo: s.repo.to_string(),
            git_ref: s.git_ref.to_string(),
            transport: (&s.transport).into(),
            resources: (&s.resources).into(),
            state: s.state.into(),
            image: s.image.as_ref().map(Into::into),
            tools: (&s.tools).into(),
            last_failure: s.last_failure.as_ref().map(Into::into),
            metadata: (&s.metadata).into(),
            verification_count: s.verification_count,
            created_at: s.created_at,
            updated_at: s.updated_at,
            version: s.version,
            build: (&s.build).into(),
            pending_review: s.pending_review.as_ref().map(Into::into),
            settings: s.settings.iter().map(Into::into).collect(),
            warm_pool: (!s.warm_pool.is_off()).then(|| s.warm_pool.into()),
            origin: OriginView::of(&s.origin),
            last_timings: s.last_timings.as_ref().map(Into::into),
        }
    }
}

/// Where a running MCP server answers streamable HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EndpointView {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// HTTP path of the MCP endpoint.
    pub path: String,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> Self {
        Self {
            host: e.host.clone(),
            port: e.port,
            path: e.path.clone(),
        }
    }
}

/// A session's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStateView {
    /// The task was started but its MCP endpoint has not answered yet (the task may be pending,
    /// or its server still loading). Tool calls wait for it, up to a deadline.
    Starting,
    /// The task runs and its MCP endpoint answered a handshake.
    Running,
    /// Ended.
    Stopped,
}

impl From<SessionState> for SessionStateView {
    fn from(s: SessionState) -> Self {
        match s {
            SessionState::Starting => Self::Starting,
            SessionState::Running => Self::Running,
            SessionState::Stopped => Self::Stopped,
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopReasonView {
    /// A client asked.
    Requested,
    /// Its TTL ran out.
    Expired,
    /// The task ended by itself.
    TaskExited,
    /// The task never started.
    LaunchFailed,
    /// A warm-pool session retired unclaimed (its server's image changed or its pool shrank).
    Retired,
}

impl From<StopReason> for StopReasonView {
    fn from(r: StopReason) -> Self {
        match r {
            StopReason::Requested => Self::Requested,
            StopReason::Expired => Self::Expired,
            StopReason::TaskExited => Self::TaskExited,
            StopReason::LaunchFailed => Self::LaunchFailed,
            StopReason::Retired => Self::Retired,
        }
    }
}

/// How a session's task ended by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TaskExitView {
    /// The server container's exit code, when known.
    pub exit_code: Option<i64>,
    /// Whether it was killed for using more memory than its limit (raise the server's
    /// `memory_mib`).
    pub out_of_memory: bool,
    /// The same in words, e.g. `exited with status 1`.
    pub summary: String,
}

impl From<TaskExit> for TaskExitView {
    fn from(e: TaskExit) -> Self {
        Self {
            exit_code: e.exit_code,
            out_of_memory: e.out_of_memory,
            summary: e.to_string(),
        }
    }
}

/// A playground session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SessionBody {
    /// The session id.
    pub id: String,
    /// The server.
    pub server_id: String,
    /// The image it runs.
    pub image: ImageRefView,
    /// The runner's task handle (ECS task ARN or container id).
    pub task: String,
    /// Where the server answers, once known.
    pub endpoint: Option<EndpointView>,
    /// Lifecycle state.
    pub state: SessionStateView,
    /// Why it ended.
    pub stop_reason: Option<StopReasonView>,
    /// How its task ended, when it ended by itself (`stop_reason` `task_exited`) and the runner
    /// said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_exit: Option<TaskExitView>,
    /// The idempotency key it was launched with.
    pub idempotency_key: Option<String>,
    /// Launch time (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When its TTL runs out (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    /// When it ended (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub stopped_at: Option<Timestamp>,
    /// The principal that launched it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// When its MCP endpoint first answered (RFC 3339): the move to `running`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ready_at: Option<Timestamp>,
    /// Whether it waits in its server's warm pool, unclaimed (admins see these in listings).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warm: bool,
    /// When a launch claimed it from the warm pool (RFC 3339): the launch answered at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub claimed_at: Option<Timestamp>,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl From<&PlaygroundSession> for SessionBody {
    fn from(s: &PlaygroundSession) -> Self {
        Self {
            id: s.id.to_string(),
            server_id: s.server_id.to_string(),
            image: (&s.image).into(),
            task: s.task.to_string(),
            endpoint: s.endpoint.as_ref().map(Into::into),
            state: s.state.into(),
            stop_reason: s.stop_reason.map(Into::into),
            task_exit: s.task_exit().map(Into::into),
            idempotency_key: s.idempotency_key.as_ref().map(ToString::to_string),
            created_at: s.created_at,
            expires_at: s.expires_at,
            stopped_at: s.stopped_at,
            owner: s.owner.as_ref().map(ToString::to_string),
            ready_at: s.ready_at,
            warm: s.warm,
            claimed_at: s.claimed_at,
            version: s.version,
        }
    }
}

/// A tool's answer. A tool that fails answers with `is_error: true`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ToolCallResultBody {
    /// MCP content items as sent (text, image, resource…; free-form).
    #[schema(value_type = Vec<Object>)]
    pub content: Vec<Value>,
    /// Structured content, when the tool sends it (free-form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured: Option<Value>,
    /// Whether the tool reported an error.
    pub is_error: bool,
    /// Whether the output was cut to the size cap.
    pub truncated: bool,
}

impl From<&ToolCallOutput> for ToolCallResultBody {
    fn from(o: &ToolCallOutput) -> Self {
        Self {
            content: o.content.clone(),
            structured: o.structured.clone(),
            is_error: o.is_error,
            truncated: o.truncated,
        }
    }
}

/// The step a running verification is at, as the status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunStepView {
    /// Resolving the followed ref to a commit.
    ResolveCommit,
    /// Building and pushing the image.
    Build,
    /// Resolving the pushed tag to its digest.
    ResolveDigest,
    /// Checking the image speaks MCP.
    Check,
    /// Recording the result.
    Record,
}

impl From<VerificationStep> for RunStepView {
    fn from(s: VerificationStep) -> Self {
        match s {
            VerificationStep::ResolveCommit => Self::ResolveCommit,
            VerificationStep::Build => Self::Build,
            VerificationStep::ResolveDigest => Self::ResolveDigest,
            VerificationStep::Check => Self::Check,
            VerificationStep::Record => Self::Record,
        }
    }
}

/// The verification run holding a server's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RunView {
    /// The run's id.
    pub run_id: String,
    /// The commit being verified.
    pub commit: String,
    /// The step it is at.
    pub step: RunStepView,
    /// Whether it was forced.
    pub forced: bool,
    /// When it started (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    /// Who holds the lease.
    pub holder: String,
    /// When the lease expires unless renewed (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub lease_expires_at: Timestamp,
    /// The lease expired without a heartbeat: the run waits for the resume worker.
    pub stale: bool,
}

impl From<&RunStatus> for RunView {
    fn from(r: &RunStatus) -> Self {
        Self {
            run_id: r.run_id.clone(),
            commit: r.commit.to_string(),
            step: r.step.into(),
            forced: r.forced,
            started_at: r.started_at,
            holder: r.holder.clone(),
            lease_expires_at: r.lease_expires_at,
            stale: r.stale,
        }
    }
}

/// An instance's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStateView {
    /// Recorded, not started yet.
    Requested,
    /// Its task is being started.
    Creating,
    /// Its task runs; its MCP endpoint has not answered yet.
    Starting,
    /// Its task runs and its MCP endpoint answered.
    Created,
    /// It failed (see `failure`).
    Failed,
    /// Stopped on request.
    Stopped,
}

impl From<InstanceState> for InstanceStateView {
    fn from(s: InstanceState) -> Self {
        match s {
            InstanceState::Requested => Self::Requested,
            InstanceState::Creating => Self::Creating,
            InstanceState::Starting => Self::Starting,
            InstanceState::Created => Self::Created,
            InstanceState::Failed => Self::Failed,
            InstanceState::Stopped => Self::Stopped,
        }
    }
}

/// An instance, environment values redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InstanceRecord {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The server it was created from.
    pub server_id: String,
    /// The image it runs, `repository@sha256:…`.
    pub image: String,
    /// Lifecycle state.
    pub state: InstanceStateView,
    /// Owner principal.
    pub owner: Option<String>,
    /// Environment variable names, each mapped to `"<redacted>"`.
    pub env: BTreeMap<String, String>,
    /// Restarts so far.
    pub restart_count: u32,
    /// The runner's task handle.
    pub task: Option<String>,
    /// MCP endpoint URL.
    pub endpoint: Option<String>,
    /// Why it failed.
    pub failure: Option<String>,
    /// Creation time (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Last change (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// When it was stopped (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub stopped_at: Option<Timestamp>,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl From<&InstanceView> for InstanceRecord {
    fn from(v: &InstanceView) -> Self {
        Self {
            id: v.id.to_string(),
            name: v.name.to_string(),
            server_id: v.server_id.to_string(),
            image: v.image.clone(),
            state: v.state.into(),
            owner: v.owner.as_ref().map(ToString::to_string),
            env: v.env.clone(),
            restart_count: v.restart_count,
            task: v.task.clone(),
            endpoint: v.endpoint.clone(),
            failure: v.failure.clone(),
            created_at: v.created_at,
            updated_at: v.updated_at,
            stopped_at: v.stopped_at,
            version: v.version,
        }
    }
}

/// Health of an instance's task, as the runner and an MCP handshake see it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InstanceHealthBody {
    /// The task runs.
    pub live: bool,
    /// The server completed an MCP handshake.
    pub ready: bool,
    /// The runner's view of the task (`pending`, `running`, `stopped`, `missing`).
    pub task_state: String,
    /// Why it is not ready, when it is not.
    pub detail: Option<String>,
    /// When this check ran (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub checked_at: Timestamp,
}

impl From<&InstanceHealth> for InstanceHealthBody {
    fn from(h: &InstanceHealth) -> Self {
        Self {
            live: h.live,
            ready: h.ready,
            task_state: h.task_state.clone(),
            detail: h.detail.clone(),
            checked_at: h.checked_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;
    use toolshed_core::domain::poisoning::{Location, Severity};
    use toolshed_core::domain::{
        ChangeKind, CommitSha, GitRef, IdempotencyKey, ImageDigest, ImageTag, InstanceId,
        InstanceName, ObservedTaskState, PrincipalId, RepoUrl, ServerId, ServerRegistration,
        SessionId, TaskHandle, TaskObservation, ToolChange,
    };

    use super::*;

    fn at(secs: i64) -> Timestamp {
        chrono::Utc
            .timestamp_opt(1_790_000_000 + secs, 123_456_789)
            .single()
            .expect("valid time")
    }

    fn commit(c: char) -> CommitSha {
        CommitSha::new(c.to_string().repeat(40)).expect("commit")
    }

    fn image() -> ImageRef {
        ImageRef::new(
            "127.0.0.1:5000/toolshed",
            ImageTag::new("time-aaaaaaaaaaaa").expect("tag"),
            ImageDigest::new(format!("sha256:{}", "0".repeat(64))).expect("digest"),
        )
        .expect("image")
    }

    fn provenance(source: ProvenanceSource, note: Option<&str>) -> Provenance {
        Provenance {
            source,
            at: at(5),
            note: note.map(str::to_owned),
        }
    }

    /// A server with every optional part filled in (`full`) or none (a fresh registration).
    fn server(full: bool) -> Server {
        let reg = ServerRegistration {
            git_ref: GitRef::new("main").expect("ref"),
            ..ServerRegistration::new(
                ServerId::new("time").expect("id"),
                RepoUrl::new("https://github.com/example/time").expect("repo"),
            )
        };
        let mut s = Server::register(reg, at(0)).expect("register");
        if !full {
            return s;
        }
        s.transport = Transport::Stdio {
            command: vec!["uvx".into(), "mcp-server-time".into()],
        };
        s.resources.egress = Egress::None;
        s.resources.run_as_root = true;
        s.state = VerificationState::Failed;
        s.image = Some(VerifiedImage {
            image: image(),
            commit: commit('a'),
            verified_at: at(1),
        });
        s.tools = ToolInventory {
            server_info: Some(McpServerInfo {
                protocol_version: "2025-06-18".into(),
                name: Some("time".into()),
                version: None,
                capabilities: json!({"tools": {"listChanged": true}}),
                instructions: Some("Use UTC.".into()),
            }),
            tools: vec![
                McpTool {
                    name: "get_time".into(),
                    description: Some("Now".into()),
                    input_schema: json!({"type": "object"}),
                },
                McpTool {
                    name: "bare".into(),
                    description: None,
                    input_schema: Value::Null,
                },
            ],
            gated_reason: Some("needs a key".into()),
            findings: vec![
                Finding {
                    rule: "TP001".into(),
                    severity: Severity::High,
                    location: Location::ParameterDescription {
                        tool: "get_time".into(),
                        pointer: "/properties/tz".into(),
                    },
                    excerpt: "x".into(),
                },
                Finding {
                    rule: "TP002".into(),
                    severity: Severity::Low,
                    location: Location::ServerInstructions,
                    excerpt: "y".into(),
                },
            ],
            digest: Some("sha256:abc".into()),
            drift: Some(ToolDrift {
                previous_commit: Some(commit('b')),
                previous_digest: "sha256:def".into(),
                changes: vec![ToolChange {
                    kind: ChangeKind::DescriptionChanged,
                    tool: "get_time".into(),
                    parameter: None,
                    before: Some("Then".into()),
                    after: Some("Now".into()),
                }],
            }),
            conformance: None,
        };
        s.tools.conformance = Some(toolshed_core::domain::conformance::assess(
            &toolshed_core::domain::ProbeReport {
                server: s.tools.server_info.clone().expect("server info"),
                listing: toolshed_core::domain::ListingFacts {
                    supported_versions: Some(vec!["2025-06-18".into()]),
                    ..toolshed_core::domain::ListingFacts::one_stable_page(&s.tools.tools)
                },
                tools: toolshed_core::domain::ToolsOutcome::Listed {
                    tools: s.tools.tools.clone(),
                },
            },
        ));
        s.last_failure = Some(VerificationFailure {
            step: VerificationStep::ResolveDigest,
            reason: "no digest".into(),
            commit: None,
            log_url: Some("https://logs.example/1".into()),
            at: at(2),
            retryable: true,
        });
        s.metadata = ServerMetadata {
            description: Some(MetadataField {
                value: "Tells the time".into(),
                provenance: provenance(
                    ProvenanceSource::Generated {
                        model: "m".into(),
                        input_tokens: 3,
                        output_tokens: 4,
                    },
                    Some("fallback"),
                ),
            }),
            language: Some(MetadataField {
                value: "Python".into(),
                provenance: provenance(ProvenanceSource::Heuristic, None),
            }),
            docs: Some(DocsRef {
                key: "docs/time.md".into(),
                bytes: 42,
                commit: commit('c'),
                provenance: provenance(ProvenanceSource::Manual, None),
            }),
            last_error: Some(MetadataFailure {
                reason: "quota".into(),
                at: at(3),
                retryable: false,
            }),
        };
        s.verification_count = 7;
        s.version = 9;
        let mut timings = PhaseTimings::start(at(0));
        timings.end(VerificationPhase::ResolveCommit, at(1));
        timings.end(VerificationPhase::Build, at(40));
        timings.end(VerificationPhase::McpHandshake, at(44));
        s.last_timings = Some(timings);
        if full {
            s.origin = toolshed_core::domain::ServerOrigin::Imported {
                registry_name: "io.github.example/time".into(),
                source: toolshed_core::domain::server_json::PackageSource::Pypi {
                    package: "mcp-server-time".into(),
                    version: "2026.10.19".into(),
                },
            };
        }
        s
    }

    fn same<D: Serialize, V: Serialize>(domain: &D, view: &V) {
        let domain = serde_json::to_value(domain).expect("domain serialises");
        let view = serde_json::to_value(view).expect("view serialises");
        assert_eq!(
            view, domain,
            "the view must answer what the record serialises to"
        );
    }

    #[test]
    fn server_views_serialise_as_the_record() {
        for full in [false, true] {
            let s = server(full);
            same(&s, &ServerBody::from(&s));
            same(
                &s.tools.tools,
                &s.tools
                    .tools
                    .iter()
                    .map(McpToolView::from)
                    .collect::<Vec<_>>(),
            );
            if let Some(d) = &s.metadata.description {
                same(d, &MetadataTextView::from(d));
            }
        }
        // The other drift, finding and failure shapes.
        let mut s = server(true);
        if let Some(d) = s.tools.drift.as_mut() {
            d.previous_commit = None;
        }
        if let Some(f) = s.last_failure.as_mut() {
            f.commit = Some(commit('d'));
            f.log_url = None;
        }
        s.transport = Transport::Http {
            port: 8080,
            path: "/x".into(),
        };
        same(&s, &ServerBody::from(&s));
    }

    #[test]
    fn session_view_serialises_as_the_record() {
        let mut session = PlaygroundSession {
            id: SessionId::random(),
            server_id: ServerId::new("time").expect("id"),
            image: image(),
            task: TaskHandle::new("arn:aws:ecs:eu-west-1:1:task/c/abc").expect("task"),
            endpoint: None,
            state: SessionState::Starting,
            stop_reason: None,
            idempotency_key: None,
            created_at: at(0),
            expires_at: at(600),
            stopped_at: None,
            owner: None,
            ready_at: None,
            observed: None,
            warm: false,
            claimed_at: None,
            version: 1,
        };
        same(&session, &SessionBody::from(&session));
        session.state = SessionState::Running;
        session.ready_at = Some(at(5));
        same(&session, &SessionBody::from(&session));
        session.endpoint = Some(Endpoint::new("10.0.0.1", 8000, "/mcp").expect("endpoint"));
        session.state = SessionState::Stopped;
        session.stop_reason = Some(StopReason::TaskExited);
        session.idempotency_key = Some(IdempotencyKey::new("k-1").expect("key"));
        session.stopped_at = Some(at(60));
        session.owner = Some(PrincipalId::new("user:alice").expect("principal"));
        same(&session, &SessionBody::from(&session));
        // How the task ended is read from the record's last observation (which the view does
        // not show otherwise).
        session.observed = Some(TaskObservation {
            state: ObservedTaskState::Stopped,
            endpoint: None,
            observed_at: at(59),
            exit: Some(TaskExit {
                exit_code: Some(137),
                out_of_memory: true,
            }),
        });
        let body = serde_json::to_value(SessionBody::from(&session)).expect("view serialises");
        assert_eq!(
            body["task_exit"],
            json!({"exit_code": 137, "out_of_memory": true,
                   "summary": "killed for using more memory than its limit"})
        );
        session.stop_reason = Some(StopReason::Requested);
        let body = serde_json::to_value(SessionBody::from(&session)).expect("view serialises");
        assert!(body.get("task_exit").is_none(), "{body}");
    }

    #[test]
    fn tool_output_view_serialises_as_the_record() {
        let mut out = ToolCallOutput {
            content: vec![json!({"type": "text", "text": "12:00"})],
            structured: None,
            is_error: false,
            truncated: false,
        };
        same(&out, &ToolCallResultBody::from(&out));
        out.structured = Some(json!({"time": "12:00"}));
        out.is_error = true;
        out.truncated = true;
        same(&out, &ToolCallResultBody::from(&out));
    }

    #[test]
    fn instance_views_serialise_as_the_record() {
        let mut view = InstanceView {
            id: InstanceId::random(),
            name: InstanceName::new("time-prod").expect("name"),
            server_id: ServerId::new("time").expect("id"),
            image: image().pinned(),
            state: InstanceState::Created,
            owner: None,
            env: BTreeMap::from([("TZ".to_owned(), "<redacted>".to_owned())]),
            restart_count: 2,
            task: None,
            endpoint: None,
            failure: None,
            created_at: at(0),
            updated_at: at(1),
            stopped_at: None,
            version: 3,
        };
        same(&view, &InstanceRecord::from(&view));
        view.owner = Some(PrincipalId::new("user:bob").expect("principal"));
        view.task = Some("c-1".into());
        view.endpoint = Some("http://10.0.0.1:8000/mcp".into());
        view.failure = Some("exited".into());
        view.stopped_at = Some(at(9));
        view.state = InstanceState::Failed;
        same(&view, &InstanceRecord::from(&view));
        let mut health = InstanceHealth {
            live: true,
            ready: false,
            task_state: "running".into(),
            detail: None,
            checked_at: at(4),
        };
        same(&health, &InstanceHealthBody::from(&health));
        health.detail = Some("no handshake".into());
        same(&health, &InstanceHealthBody::from(&health));
    }

    #[test]
    fn run_view_answers_the_step_as_the_status_always_did() {
        for step in [
            VerificationStep::ResolveCommit,
            VerificationStep::Build,
            VerificationStep::ResolveDigest,
            VerificationStep::Check,
            VerificationStep::Record,
        ] {
            let run = RunStatus {
                run_id: "r-1".into(),
                commit: commit('a'),
                forced: true,
                step,
                started_at: at(0),
                holder: "worker-1".into(),
                lease_expires_at: at(30),
                stale: false,
            };
            // The shape the status answered before it was typed.
            let before = json!({
                "run_id": run.run_id,
                "commit": run.commit,
                "step": run.step.to_string(),
                "forced": run.forced,
                "started_at": run.started_at,
                "holder": run.holder,
                "lease_expires_at": run.lease_expires_at,
                "stale": run.stale,
            });
            same(&before, &RunView::from(&run));
        }
    }

    /// Where a property's schema is untyped (any JSON, or an object without properties), by
    /// `Schema.property` (`[]` for array items), walking nested and `oneOf` variants.
    fn untyped(name: &str, schema: &Value, found: &mut Vec<String>) {
        let Some(obj) = schema.as_object() else {
            return;
        };
        if obj.contains_key("$ref") || obj.contains_key("enum") {
            return;
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            if let Some(variants) = obj.get(key).and_then(Value::as_array) {
                for v in variants {
                    untyped(name, v, found);
                }
                return;
            }
        }
        let types: Vec<&str> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let types: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
        if types.is_empty() {
            if obj.get("type").is_none() {
                found.push(name.to_owned());
            }
            return;
        }
        if types.contains(&"array") {
            match obj.get("items") {
                Some(items) => untyped(&format!("{name}[]"), items, found),
                None => found.push(format!("{name}[]")),
            }
        }
        if types.contains(&"object") {
            let props = obj.get("properties").and_then(Value::as_object);
            let extra = obj.get("additionalProperties");
            match (props, extra) {
                (Some(props), _) => {
                    for (p, s) in props {
                        untyped(&format!("{name}.{p}"), s, found);
                    }
                }
                (None, Some(extra)) if extra.is_object() => {
                    untyped(&format!("{name}{{}}"), extra, found);
                }
                _ => found.push(name.to_owned()),
            }
        }
    }

    #[test]
    fn every_answer_is_typed_but_free_form_content() {
        let doc = serde_json::to_value(crate::openapi()).expect("document serialises");
        let mut found = Vec::new();
        let schemas = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .expect("schemas");
        for (name, schema) in schemas {
            untyped(name, schema, &mut found);
        }
        let paths = doc
            .pointer("/paths")
            .and_then(Value::as_object)
            .expect("paths");
        for (path, ops) in paths {
            for (method, op) in ops.as_object().into_iter().flatten() {
                let responses = op.get("responses").and_then(Value::as_object);
                for (status, response) in responses.into_iter().flatten() {
                    let content = response.get("content").and_then(Value::as_object);
                    for (media, body) in content.into_iter().flatten() {
                        if media == "application/json" {
                            if let Some(schema) = body.get("schema") {
                                untyped(&format!("{method} {path} {status}"), schema, &mut found);
                            }
                        }
                    }
                }
            }
        }
        found.sort();
        // Free-form by nature: error details, a tool call's arguments (a request), a server's
        // capabilities and a tool's input schema as the server sent them, MCP content items and
        // structured tool output.
        let free_form = [
            "ErrorBody.details",
            "ExecuteRequest.arguments",
            "McpServerInfoView.capabilities",
            "McpToolView.input_schema",
            "ServerJsonDocument",
            "ToolCallResultBody.content[]",
            "ToolCallResultBody.structured",
        ];
        assert_eq!(found, free_form, "untyped schema parts");
    }
}

/// Why a candidate waits for review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ReviewReasonView {
    /// A finding at or above the policy's threshold the live version did not have.
    Finding {
        /// The rule's id, e.g. `TP002`.
        rule: String,
        /// Its severity.
        severity: SeverityView,
        /// Where it was found.
        location: LocationView,
    },
    /// A change since the live version the policy holds on.
    Change {
        /// What changed.
        kind: ChangeKindView,
        /// The tool.
        tool: String,
        /// The parameter, for a newly required one.
        #[serde(skip_serializing_if = "Option::is_none")]
        parameter: Option<String>,
    },
}

impl From<&ReviewReason> for ReviewReasonView {
    fn from(r: &ReviewReason) -> Self {
        match r {
            ReviewReason::Finding {
                rule,
                severity,
                location,
            } => Self::Finding {
                rule: rule.clone(),
                severity: (*severity).into(),
                location: location.clone().into(),
            },
            ReviewReason::Change {
                kind,
                tool,
                parameter,
            } => Self::Change {
                kind: (*kind).into(),
                tool: tool.clone(),
                parameter: parameter.clone(),
            },
        }
    }
}

/// A verified candidate held for review by the deployment's promotion policy.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PendingReviewView {
    /// The candidate's image digest (`sha256:…`): what an approval names.
    pub digest: String,
    /// The commit it was built from.
    pub commit: String,
    /// The candidate image.
    pub image: VerifiedImageView,
    /// What its verification found (findings, drift from the live version).
    pub tools: ToolInventoryView,
    /// Why it was held.
    pub reasons: Vec<ReviewReasonView>,
    /// When it was held (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub held_at: Timestamp,
}

impl From<&PendingReview> for PendingReviewView {
    fn from(p: &PendingReview) -> Self {
        Self {
            digest: p.image.image.digest().to_string(),
            commit: p.image.commit.to_string(),
            image: (&p.image).into(),
            tools: (&p.tools).into(),
            reasons: p.reasons.iter().map(Into::into).collect(),
            held_at: p.held_at,
        }
    }
}
