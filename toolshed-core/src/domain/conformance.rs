//! The conformance report: how closely a verified server follows the MCP specification in what a
//! host relies on — the handshake's protocol version, a tool list that does not change between
//! two listings, tool names, input and output schemas, and pagination.
//!
//! The probe gathers the facts ([`ListingFacts`]: a second listing, the cursors it followed, the
//! output schemas); this module judges them. The rules are data ([`RULES`]): each has an id, the
//! strength of the requirement it checks and why it matters. A check passes, warns (a SHOULD of
//! the specification is not met, or the fact could not be observed) or fails (a MUST is not met,
//! or the server misbehaved in a way a host cannot work around). A report never fails a
//! verification by itself: it is recorded with the inventory for people to read.
//!
//! Tool names follow "Tool Names" of the MCP specification (revision 2026-07-28, unchanged since
//! 2025-11-25): 1–128 characters, only `A-Z a-z 0-9 _ - .`, unique within a server. Input
//! schemas are JSON Schema objects of `type: object`, draft 2020-12 unless `$schema` names
//! another (same revisions).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::drift::tools_digest;
use super::poisoning::escape;
use super::{McpTool, ProbeReport, ToolsOutcome};

/// How the client and the server agreed on a protocol version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolEra {
    /// The `initialize` request and its result (every revision up to 2025-11-25): the server
    /// answers with one version and does not say which others it supports.
    #[default]
    Initialize,
    /// `server/discover` (revision 2026-07-28 and later): the server announces every version it
    /// supports, the client picks one and sends it with each request (`_meta`); there is no
    /// `initialize`.
    Discover,
}

impl fmt::Display for ProtocolEra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProtocolEra::Initialize => "initialize",
            ProtocolEra::Discover => "discover",
        })
    }
}

/// A second `tools/list` taken right after the first, on the same session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SecondListing {
    /// It answered: the [`tools_digest`] of what it listed.
    Listed {
        /// The digest of the second listing's tools.
        digest: String,
        /// How many tools it listed.
        tools: usize,
    },
    /// It failed; what happened (bounded).
    Failed {
        /// Why.
        reason: String,
    },
}

/// What the probe observed about a server's protocol and tool listing, beyond the tools.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListingFacts {
    /// How the protocol version was agreed.
    #[serde(default)]
    pub era: ProtocolEra,
    /// The versions the server says it supports (its `server/discover` answer, escaped and
    /// bounded by the probe); `None` when it does not say (the `initialize` handshake never
    /// does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_versions: Option<Vec<String>>,
    /// `tools/list` pages read in the first listing; 0 when the probe did not list tools.
    #[serde(default)]
    pub pages: u32,
    /// A cursor the server sent a second time in one listing (escaped, bounded): the probe
    /// stopped following there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeated_cursor: Option<String>,
    /// The second listing; `None` when none was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_listing: Option<SecondListing>,
    /// The output schemas of the tools that declare one, by tool name.
    #[serde(default)]
    pub output_schemas: BTreeMap<String, Value>,
    /// The prompts the server lists (read only when it announces the `prompts` capability;
    /// bounded like tools), for the tool-poisoning scan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<crate::domain::McpPrompt>,
}

impl ListingFacts {
    /// The facts of a server that lists `tools` in one page, the same tools again on the second
    /// listing, and declares no output schema (what test doubles of the probe report).
    pub fn one_stable_page(tools: &[McpTool]) -> Self {
        Self {
            pages: 1,
            second_listing: Some(SecondListing::Listed {
                digest: tools_digest(tools),
                tools: tools.len(),
            }),
            ..Self::default()
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The server does what the specification asks.
    Pass,
    /// A SHOULD is not met, or the fact could not be observed.
    Warn,
    /// A MUST is not met, or the server misbehaves in a way a host cannot work around.
    Fail,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so a width given by the caller lines up columns.
        f.pad(match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
        })
    }
}

/// One check of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The rule's id, e.g. `MCP-C003`.
    pub id: String,
    /// Its outcome.
    pub outcome: Outcome,
    /// What was seen: escaped (invisible and control characters as `\u{…}`) and at most
    /// [`DETAIL_CHARS`] characters.
    pub detail: String,
}

/// What a tool's schema turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaState {
    /// The tool declares none.
    Absent,
    /// A JSON Schema of `type: object` that passes its meta-schema and compiles.
    Valid,
    /// Present but not a usable JSON Schema object.
    Invalid,
}

/// The schemas of one tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolSchemas {
    /// The tool's name, as listed.
    pub tool: String,
    /// Its input schema (required by the specification).
    pub input_schema: SchemaState,
    /// Its output schema (optional).
    pub output_schema: SchemaState,
}

/// The conformance report of one verified server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConformanceReport {
    /// How the protocol version was agreed.
    pub era: ProtocolEra,
    /// The negotiated protocol version (escaped, bounded).
    pub protocol_version: String,
    /// The versions the server supports, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_versions: Option<Vec<String>>,
    /// One result per rule, in [`RULES`] order.
    pub checks: Vec<CheckResult>,
    /// Per tool, what its schemas are (empty when the tools were not listed).
    #[serde(default)]
    pub tools: Vec<ToolSchemas>,
}

impl ConformanceReport {
    /// The worst outcome of the checks (`Pass` for a report without checks).
    pub fn overall(&self) -> Outcome {
        self.checks
            .iter()
            .map(|c| c.outcome)
            .max()
            .unwrap_or(Outcome::Pass)
    }

    /// The result of the rule `id`, when the report has it.
    pub fn check(&self, id: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id)
    }
}

/// Longest detail, in characters.
pub const DETAIL_CHARS: usize = 300;
/// Longest tool name the specification recommends.
pub const MAX_TOOL_NAME_CHARS: usize = 128;
/// Published protocol revisions: those with the `initialize` handshake (up to 2025-11-25), then
/// those with `server/discover`.
pub const KNOWN_VERSIONS: &[&str] = &[
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// The first revision without `initialize`: from it on, versions are agreed by
/// `server/discover`.
pub const FIRST_DISCOVER_VERSION: &str = "2026-07-28";
/// Names quoted in one detail before "and N more".
const NAMES_SHOWN: usize = 5;
/// Longest quoted name, in characters.
const NAME_CHARS: usize = 32;

/// How strong the requirement behind a rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// The specification says MUST.
    Must,
    /// The specification says SHOULD.
    Should,
    /// Hosts depend on it though the specification does not say it in words.
    Expected,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Requirement::Must => "MUST",
            Requirement::Should => "SHOULD",
            Requirement::Expected => "expected",
        })
    }
}

/// What a rule reads.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The negotiated protocol version.
    pub protocol_version: &'a str,
    /// The listed tools; `None` when the listing was gated.
    pub tools: Option<&'a [McpTool]>,
    /// What the probe observed.
    pub facts: &'a ListingFacts,
}

/// One rule of the report.
#[derive(Clone, Copy)]
pub struct Rule {
    /// Stable id, e.g. `MCP-C001`.
    pub id: &'static str,
    /// Short name.
    pub name: &'static str,
    /// Strength of the requirement.
    pub requirement: Requirement,
    /// Why it matters, for people reading a report.
    pub rationale: &'static str,
    /// The judgement: outcome and an unescaped, unbounded detail.
    pub judge: fn(&Subject<'_>) -> (Outcome, String),
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("requirement", &self.requirement)
            .finish_non_exhaustive()
    }
}

/// The rules, in report order.
pub const RULES: &[Rule] = &[
    Rule {
        id: "MCP-C001",
        name: "protocol-version",
        requirement: Requirement::Must,
        rationale: "The handshake (`server/discover`, or `initialize` before 2026-07-28) agrees \
                    on a published protocol revision that belongs to its era; an unknown one \
                    means the host cannot know which messages the server understands.",
        judge: protocol_version,
    },
    Rule {
        id: "MCP-C002",
        name: "stable-tool-list",
        requirement: Requirement::Expected,
        rationale: "Two listings in a row give the same tools: a list that changes without \
                    notice cannot be reviewed, and a reviewed tool may not be the one called.",
        judge: stable_listing,
    },
    Rule {
        id: "MCP-C003",
        name: "tool-name-length",
        requirement: Requirement::Should,
        rationale: "Tool names are 1 to 128 characters (\"Tool Names\", MCP 2026-07-28); hosts \
                    and model APIs refuse others.",
        judge: name_length,
    },
    Rule {
        id: "MCP-C004",
        name: "tool-name-characters",
        requirement: Requirement::Should,
        rationale: "Tool names use only ASCII letters, digits, underscore, hyphen and dot \
                    (\"Tool Names\", MCP 2026-07-28); spaces and other characters break hosts \
                    and can disguise a name.",
        judge: name_characters,
    },
    Rule {
        id: "MCP-C005",
        name: "tool-name-unique",
        requirement: Requirement::Should,
        rationale: "Tool names are unique within a server: calls are addressed by name, so a \
                    duplicate makes one of the tools unreachable or ambiguous.",
        judge: names_unique,
    },
    Rule {
        id: "MCP-C006",
        name: "input-schema",
        requirement: Requirement::Must,
        rationale: "Every tool's input schema is a valid JSON Schema object of type `object` \
                    (draft 2020-12 unless it names another; MCP 2026-07-28): hosts build and \
                    check arguments from it.",
        judge: input_schemas,
    },
    Rule {
        id: "MCP-C007",
        name: "output-schema",
        requirement: Requirement::Must,
        rationale: "Output schemas are optional; one that is declared must be a valid JSON \
                    Schema object of type `object`, since structured results are checked \
                    against it.",
        judge: output_schemas,
    },
    Rule {
        id: "MCP-C008",
        name: "pagination",
        requirement: Requirement::Expected,
        rationale: "A paginated `tools/list` ends: a cursor that comes back would make a client \
                    list forever.",
        judge: pagination,
    },
];

/// Judges a probe report: every rule, in [`RULES`] order, and each tool's schemas.
pub fn assess(report: &ProbeReport) -> ConformanceReport {
    let tools = match &report.tools {
        ToolsOutcome::Listed { tools } => Some(tools.as_slice()),
        ToolsOutcome::Gated { .. } => None,
    };
    let subject = Subject {
        protocol_version: &report.server.protocol_version,
        tools,
        facts: &report.listing,
    };
    let checks = RULES
        .iter()
        .map(|rule| {
            let (outcome, detail) = (rule.judge)(&subject);
            CheckResult {
                id: rule.id.to_owned(),
                outcome,
                detail: bounded(&escape(&detail), DETAIL_CHARS),
            }
        })
        .collect();
    let per_tool = tools
        .unwrap_or_default()
        .iter()
        .map(|t| ToolSchemas {
            tool: t.name.clone(),
            input_schema: schema_state(Some(&t.input_schema)),
            output_schema: schema_state(report.listing.output_schemas.get(&t.name)),
        })
        .collect();
    ConformanceReport {
        era: report.listing.era,
        protocol_version: bounded(&escape(&report.server.protocol_version), NAME_CHARS),
        supported_versions: report.listing.supported_versions.as_ref().map(|versions| {
            versions
                .iter()
                .take(NAMES_SHOWN * 4)
                .map(|v| bounded(&escape(v), NAME_CHARS))
                .collect()
        }),
        checks,
        tools: per_tool,
    }
}

/// The rule `id`, when there is one.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// Why a schema is not a usable JSON Schema object, or `None` when it is.
///
/// The top level must be an object of `type: "object"`; the schema must pass the meta-schema of
/// its draft (2020-12 when it names none) and compile (patterns, references).
pub fn schema_problem(schema: &Value) -> Option<String> {
    let Some(object) = schema.as_object() else {
        return Some(format!("is {}, not an object", kind(schema)));
    };
    match object.get("type") {
        Some(Value::String(t)) if t == "object" => {}
        Some(other) => return Some(format!("has type {other}, not \"object\"")),
        None => return Some("has no top-level type (must be \"object\")".to_owned()),
    }
    if let Err(err) = jsonschema::meta::validate(schema) {
        return Some(format!("fails its meta-schema: {err}"));
    }
    if let Err(err) = jsonschema::validator_for(schema) {
        return Some(format!("does not compile: {err}"));
    }
    None
}

fn schema_state(schema: Option<&Value>) -> SchemaState {
    match schema {
        None => SchemaState::Absent,
        Some(s) if schema_problem(s).is_none() => SchemaState::Valid,
        Some(_) => SchemaState::Invalid,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

const GATED: &str = "not checked: tools/list is gated behind configuration";

fn protocol_version(s: &Subject<'_>) -> (Outcome, String) {
    let supported = match &s.facts.supported_versions {
        Some(v) => format!("supports {}", v.join(", ")),
        None => "supported versions not announced".to_owned(),
    };
    let era = s.facts.era;
    if !KNOWN_VERSIONS.contains(&s.protocol_version) {
        return (
            Outcome::Warn,
            format!(
                "{era} era; negotiated {}, not a published revision; {supported}",
                quote(s.protocol_version)
            ),
        );
    }
    // ISO dates compare as text. A version agreed in the wrong era means the server mixes the
    // two handshakes: a host cannot tell which rules its messages follow.
    let discover_version = s.protocol_version >= FIRST_DISCOVER_VERSION;
    if discover_version != (era == ProtocolEra::Discover) {
        return (
            Outcome::Fail,
            format!(
                "{era} era; negotiated {}, a revision of the {} era; {supported}",
                s.protocol_version,
                if discover_version {
                    "discover"
                } else {
                    "initialize"
                }
            ),
        );
    }
    if let Some(versions) = &s.facts.supported_versions {
        if !versions.iter().any(|v| v == s.protocol_version) {
            return (
                Outcome::Fail,
                format!(
                    "{era} era; negotiated {}, which the server does not announce; {supported}",
                    s.protocol_version
                ),
            );
        }
    }
    (
        Outcome::Pass,
        format!("{era} era; negotiated {}; {supported}", s.protocol_version),
    )
}

fn stable_listing(s: &Subject<'_>) -> (Outcome, String) {
    let Some(tools) = s.tools else {
        return (Outcome::Warn, GATED.to_owned());
    };
    match &s.facts.second_listing {
        None => (
            Outcome::Warn,
            "not checked: no second listing was taken".to_owned(),
        ),
        Some(SecondListing::Failed { reason }) => {
            (Outcome::Warn, format!("second listing failed: {reason}"))
        }
        Some(SecondListing::Listed {
            digest,
            tools: count,
        }) => {
            let first = tools_digest(tools);
            if *digest == first {
                (
                    Outcome::Pass,
                    format!("two listings gave the same {} tools ({first})", tools.len()),
                )
            } else {
                (
                    Outcome::Fail,
                    format!(
                        "two listings differ: {} tools ({first}), then {count} ({digest})",
                        tools.len()
                    ),
                )
            }
        }
    }
}

/// Pass when no tool is in `bad`, else `failing` with the offending names quoted.
fn names_verdict(
    tools: &[McpTool],
    bad: &[&str],
    failing: Outcome,
    what: &str,
) -> (Outcome, String) {
    if bad.is_empty() {
        return (Outcome::Pass, format!("{} tool names checked", tools.len()));
    }
    (
        failing,
        format!("{} {what}: {}", bad.len(), quote_names(bad)),
    )
}

fn quote_names(names: &[&str]) -> String {
    let mut shown: Vec<String> = names.iter().take(NAMES_SHOWN).map(|n| quote(n)).collect();
    if names.len() > NAMES_SHOWN {
        shown.push(format!("and {} more", names.len() - NAMES_SHOWN));
    }
    shown.join(", ")
}

fn name_length(s: &Subject<'_>) -> (Outcome, String) {
    let Some(tools) = s.tools else {
        return (Outcome::Warn, GATED.to_owned());
    };
    let bad: Vec<&str> = tools
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| n.is_empty() || n.chars().count() > MAX_TOOL_NAME_CHARS)
        .collect();
    names_verdict(
        tools,
        &bad,
        Outcome::Warn,
        "names empty or longer than 128 characters",
    )
}

/// Whether `c` may appear in a tool name.
pub fn is_tool_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn name_characters(s: &Subject<'_>) -> (Outcome, String) {
    let Some(tools) = s.tools else {
        return (Outcome::Warn, GATED.to_owned());
    };
    let bad: Vec<&str> = tools
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| !n.chars().all(is_tool_name_char))
        .collect();
    names_verdict(
        tools,
        &bad,
        Outcome::Warn,
        "names with characters outside A-Z a-z 0-9 _ - .",
    )
}

fn names_unique(s: &Subject<'_>) -> (Outcome, String) {
    let Some(tools) = s.tools else {
        return (Outcome::Warn, GATED.to_owned());
    };
    let mut seen = BTreeSet::new();
    let mut repeated = BTreeSet::new();
    for tool in tools {
        if !seen.insert(tool.name.as_str()) {
            repeated.insert(tool.name.as_str());
        }
    }
    let repeated: Vec<&str> = repeated.into_iter().collect();
    names_verdict(
        tools,
        &repeated,
        Outcome::Warn,
        "names listed more than once",
    )
}

/// Pass when every schema is usable, else `Fail` with the first problems.
fn schemas_verdict<'a>(
    schemas: impl Iterator<Item = (&'a str, &'a Value)>,
    what: &str,
    none: &str,
) -> (Outcome, String) {
    let mut checked = 0usize;
    let mut problems: Vec<String> = Vec::new();
    let mut bad = 0usize;
    for (tool, schema) in schemas {
        checked += 1;
        if let Some(problem) = schema_problem(schema) {
            bad += 1;
            if problems.len() < 2 {
                problems.push(format!("{} {}", quote(tool), bounded(&problem, 100)));
            }
        }
    }
    if checked == 0 {
        return (Outcome::Pass, none.to_owned());
    }
    if bad == 0 {
        return (Outcome::Pass, format!("{checked} {what} valid"));
    }
    let more = if bad > problems.len() {
        format!("; and {} more", bad - problems.len())
    } else {
        String::new()
    };
    (
        Outcome::Fail,
        format!(
            "{bad} of {checked} {what} invalid: {}{more}",
            problems.join("; ")
        ),
    )
}

fn input_schemas(s: &Subject<'_>) -> (Outcome, String) {
    let Some(tools) = s.tools else {
        return (Outcome::Warn, GATED.to_owned());
    };
    schemas_verdict(
        tools.iter().map(|t| (t.name.as_str(), &t.input_schema)),
        "input schemas",
        "no tools listed",
    )
}

fn output_schemas(s: &Subject<'_>) -> (Outcome, String) {
    let Some(tools) = s.tools else {
        return (Outcome::Warn, GATED.to_owned());
    };
    let declared = tools
        .iter()
        .filter(|t| s.facts.output_schemas.contains_key(&t.name))
        .count();
    let (outcome, detail) = schemas_verdict(
        s.facts
            .output_schemas
            .iter()
            .map(|(name, schema)| (name.as_str(), schema)),
        "output schemas",
        "no tool declares an output schema",
    );
    if declared == 0 {
        return (outcome, detail);
    }
    (
        outcome,
        format!(
            "{declared} of {} tools declare an output schema; {detail}",
            tools.len()
        ),
    )
}

fn pagination(s: &Subject<'_>) -> (Outcome, String) {
    if s.tools.is_none() {
        return (Outcome::Warn, GATED.to_owned());
    }
    let pages = s.facts.pages;
    if let Some(cursor) = &s.facts.repeated_cursor {
        return (
            Outcome::Fail,
            format!(
                "cursor {} came back after {pages} pages: listing stopped there",
                quote(cursor)
            ),
        );
    }
    match pages {
        0 => (
            Outcome::Warn,
            "not checked: the probe recorded no pages".to_owned(),
        ),
        1 => (Outcome::Pass, "one page, no cursor".to_owned()),
        n => (Outcome::Pass, format!("{n} pages followed to the end")),
    }
}

/// `text` escaped, cut to [`NAME_CHARS`] and in double quotes.
fn quote(text: &str) -> String {
    format!("\"{}\"", bounded(&escape(text), NAME_CHARS))
}

/// `text` cut to at most `max` characters (an ellipsis marks the cut).
fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::McpServerInfo;
    use serde_json::json;

    fn tool(name: &str) -> McpTool {
        McpTool {
            name: name.to_owned(),
            description: Some("Does a thing.".to_owned()),
            input_schema: json!({"type": "object", "properties": {"x": {"type": "string"}}}),
        }
    }

    fn report(tools: Vec<McpTool>, facts: ListingFacts) -> ProbeReport {
        ProbeReport {
            server: McpServerInfo {
                protocol_version: "2025-06-18".to_owned(),
                name: Some("s".to_owned()),
                version: Some("1".to_owned()),
                capabilities: json!({"tools": {}}),
                instructions: None,
            },
            tools: ToolsOutcome::Listed { tools },
            listing: facts,
        }
    }

    fn good_facts(tools: &[McpTool]) -> ListingFacts {
        ListingFacts::one_stable_page(tools)
    }

    fn benign() -> ProbeReport {
        let tools = vec![tool("get_user"), tool("admin.tools.list"), tool("DATA-v2")];
        let mut facts = good_facts(&tools);
        facts.output_schemas.insert(
            "get_user".to_owned(),
            json!({"type": "object", "properties": {"result": {"type": "string"}}}),
        );
        report(tools, facts)
    }

    fn outcome(r: &ConformanceReport, id: &str) -> Outcome {
        r.check(id).map(|c| c.outcome).expect("rule in the report")
    }

    /// A report that trips `id` (and a benign server that does not) for every rule.
    fn positives() -> Vec<(&'static str, ProbeReport, Outcome)> {
        let mut unknown_version = benign();
        unknown_version.server.protocol_version = "1999-01-01".to_owned();

        let mut unstable = benign();
        unstable.listing.second_listing = Some(SecondListing::Listed {
            digest: tools_digest(&[tool("other")]),
            tools: 1,
        });

        let long = vec![tool(&"a".repeat(129)), tool("ok")];
        let long = report(long.clone(), good_facts(&long));

        let odd = vec![tool("read file"), tool("ok/slash"), tool("ok")];
        let odd = report(odd.clone(), good_facts(&odd));

        let twice = vec![tool("dup"), tool("dup"), tool("ok")];
        let twice = report(twice.clone(), good_facts(&twice));

        let mut untyped = tool("untyped");
        untyped.input_schema = json!({"properties": {}});
        let bad_input = vec![untyped, tool("ok")];
        let bad_input = report(bad_input.clone(), good_facts(&bad_input));

        let mut bad_output = benign();
        bad_output.listing.output_schemas.insert(
            "DATA-v2".to_owned(),
            json!({"type": "object", "minProperties": -1}),
        );

        let mut looping = benign();
        looping.listing.pages = 3;
        looping.listing.repeated_cursor = Some("page-2".to_owned());

        vec![
            ("MCP-C001", unknown_version, Outcome::Warn),
            ("MCP-C002", unstable, Outcome::Fail),
            ("MCP-C003", long, Outcome::Warn),
            ("MCP-C004", odd, Outcome::Warn),
            ("MCP-C005", twice, Outcome::Warn),
            ("MCP-C006", bad_input, Outcome::Fail),
            ("MCP-C007", bad_output, Outcome::Fail),
            ("MCP-C008", looping, Outcome::Fail),
        ]
    }

    #[test]
    fn every_rule_has_a_positive_and_a_benign_case() {
        let good = assess(&benign());
        assert_eq!(good.overall(), Outcome::Pass, "{good:#?}");
        let mut covered = Vec::new();
        for (id, bad, expected) in positives() {
            let judged = assess(&bad);
            assert_eq!(outcome(&judged, id), expected, "{id}: {judged:#?}");
            // Only the planted rule trips.
            for check in &judged.checks {
                if check.id != id {
                    assert_eq!(check.outcome, Outcome::Pass, "{id} also tripped {check:?}");
                }
            }
            covered.push(id);
        }
        let all: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        assert_eq!(covered, all, "every rule needs its cases");
    }

    #[test]
    fn details_name_what_was_seen() {
        let cases = positives();
        let detail = |id: &str| {
            let (_, r, _) = cases.iter().find(|(i, _, _)| *i == id).expect("case");
            assess(r).check(id).expect("check").detail.clone()
        };
        assert!(detail("MCP-C001").contains("\"1999-01-01\""));
        assert!(detail("MCP-C001").starts_with("initialize era"));
        assert!(
            detail("MCP-C004").contains("\"read file\""),
            "{}",
            detail("MCP-C004")
        );
        assert!(detail("MCP-C004").contains("\"ok/slash\""));
        assert!(detail("MCP-C005").contains("\"dup\""));
        assert!(detail("MCP-C006").contains("\"untyped\" has no top-level type"));
        assert!(
            detail("MCP-C007").contains("fails its meta-schema"),
            "{}",
            detail("MCP-C007")
        );
        assert!(detail("MCP-C008").contains("\"page-2\""));
        let good = assess(&benign());
        assert_eq!(
            good.check("MCP-C001").map(|c| c.detail.as_str()),
            Some("initialize era; negotiated 2025-06-18; supported versions not announced")
        );
        assert_eq!(
            good.check("MCP-C007").map(|c| c.detail.as_str()),
            Some("1 of 3 tools declare an output schema; 1 output schemas valid")
        );
    }

    #[test]
    fn per_tool_schemas_say_present_or_absent() {
        let mut r = benign();
        r.listing
            .output_schemas
            .insert("DATA-v2".to_owned(), json!({"type": "string"}));
        let judged = assess(&r);
        let state = |name: &str| {
            judged
                .tools
                .iter()
                .find(|t| t.tool == name)
                .map(|t| (t.input_schema, t.output_schema))
        };
        assert_eq!(
            state("get_user"),
            Some((SchemaState::Valid, SchemaState::Valid))
        );
        assert_eq!(
            state("admin.tools.list"),
            Some((SchemaState::Valid, SchemaState::Absent))
        );
        assert_eq!(
            state("DATA-v2"),
            Some((SchemaState::Valid, SchemaState::Invalid))
        );
    }

    #[test]
    fn details_are_escaped_and_bounded() {
        let names: Vec<McpTool> = (0..40)
            .map(|i| tool(&format!("bad name\u{200B}{i}{}", "x".repeat(60))))
            .collect();
        let judged = assess(&report(names.clone(), good_facts(&names)));
        let detail = &judged.check("MCP-C004").expect("check").detail;
        assert!(detail.contains("\\u{200B}"), "{detail}");
        assert!(!detail.contains('\u{200B}'));
        assert!(detail.chars().count() <= DETAIL_CHARS + 1, "{detail}");
        assert!(detail.contains("and 35 more"), "{detail}");
    }

    #[test]
    fn a_gated_listing_is_judged_on_the_handshake_only() {
        let mut r = benign();
        r.tools = ToolsOutcome::Gated {
            reason: "needs a key".to_owned(),
        };
        let judged = assess(&r);
        assert_eq!(outcome(&judged, "MCP-C001"), Outcome::Pass);
        for check in judged.checks.iter().skip(1) {
            assert_eq!(check.outcome, Outcome::Warn, "{check:?}");
            assert!(check.detail.starts_with("not checked"), "{check:?}");
        }
        assert!(judged.tools.is_empty());
    }

    #[test]
    fn unobserved_facts_warn_rather_than_pass() {
        let tools = vec![tool("ok")];
        let judged = assess(&report(tools, ListingFacts::default()));
        assert_eq!(outcome(&judged, "MCP-C002"), Outcome::Warn);
        assert_eq!(outcome(&judged, "MCP-C008"), Outcome::Warn);
        let mut failed = benign();
        failed.listing.second_listing = Some(SecondListing::Failed {
            reason: "timed out".to_owned(),
        });
        assert_eq!(outcome(&assess(&failed), "MCP-C002"), Outcome::Warn);
    }

    #[test]
    fn schemas_are_meta_validated() {
        assert_eq!(schema_problem(&json!({"type": "object"})), None);
        assert_eq!(
            schema_problem(&json!({"type": "object", "additionalProperties": false})),
            None
        );
        // Another draft, named by `$schema`, is validated against its own meta-schema.
        assert_eq!(
            schema_problem(&json!({
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {"a": {"type": "number"}}
            })),
            None
        );
        assert!(schema_problem(&Value::Null).is_some());
        assert!(schema_problem(&json!({"type": "string"})).is_some());
        assert!(
            schema_problem(&json!({"type": "object", "properties": {"a": {"type": "nope"}}}))
                .is_some_and(|p| p.contains("meta-schema"))
        );
        assert!(schema_problem(&json!({"type": "object", "required": "a"})).is_some());
    }

    #[test]
    fn every_rule_is_documented() {
        for rule in RULES {
            assert!(rule.id.starts_with("MCP-C"), "{rule:?}");
            assert!(!rule.rationale.is_empty() && !rule.name.is_empty());
            assert_eq!(super::rule(rule.id).map(|r| r.id), Some(rule.id));
        }
    }

    #[test]
    fn the_discover_era_is_judged_by_its_own_rules() {
        let mut modern = benign();
        modern.server.protocol_version = "2026-07-28".to_owned();
        modern.listing.era = ProtocolEra::Discover;
        modern.listing.supported_versions =
            Some(vec!["2025-11-25".to_owned(), "2026-07-28".to_owned()]);
        let judged = assess(&modern);
        assert_eq!(judged.overall(), Outcome::Pass, "{judged:#?}");
        assert_eq!(judged.era, ProtocolEra::Discover);
        assert_eq!(
            judged.check("MCP-C001").map(|c| c.detail.as_str()),
            Some("discover era; negotiated 2026-07-28; supports 2025-11-25, 2026-07-28")
        );
        let json = serde_json::to_value(&judged).expect("serialise");
        assert_eq!(json["era"], "discover");

        // A version of the other era, or one the server did not announce, fails.
        let mut mixed = modern.clone();
        mixed.listing.era = ProtocolEra::Initialize;
        assert_eq!(outcome(&assess(&mixed), "MCP-C001"), Outcome::Fail);
        let mut unannounced = modern.clone();
        unannounced.listing.supported_versions = Some(vec!["2025-11-25".to_owned()]);
        let judged = assess(&unannounced);
        assert_eq!(outcome(&judged, "MCP-C001"), Outcome::Fail);
        assert!(judged
            .check("MCP-C001")
            .is_some_and(|c| c.detail.contains("does not announce")));
    }

    #[test]
    fn reports_round_trip_through_json() {
        let judged = assess(&benign());
        let json = serde_json::to_value(&judged).expect("serialise");
        assert_eq!(json["checks"][0]["outcome"], "pass");
        assert_eq!(json["era"], "initialize");
        let back: ConformanceReport = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back, judged);
    }
}
