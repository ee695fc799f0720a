//! The constraints of the API's inputs, declared once: the OpenAPI document states them (see
//! `complete_document`) and the handlers check them with the same patterns, so a generated
//! client — or a fuzzer — that follows the document is accepted, and a request that does not is
//! refused with 400/422.
//!
//! Where the core accepts more than a pattern can state (URLs, git refs), the API accepts the
//! documented subset; the core's own checks still apply after it.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

use toolshed_core::domain::{
    BuildSpec, EnvName, GitRef, InstanceEnv, RepoUrl, RepoUrlPolicy, ServerId, ServerRegistration,
    SettingSpec, TaskResources, Transport, MAX_DESCRIPTION_LEN, MAX_ENV_VALUE_LEN, MAX_ENV_VARS,
    MAX_LANGUAGE_LEN, MAX_REPO_URL_LEN, MAX_SETTINGS, MAX_SETTING_DESCRIPTION_LEN,
};

use crate::dto::{BuildBody, RegisterRequest, SettingBody, TransportBody};
use crate::error::{ApiError, ApiResult};

/// Server ids (as `ServerId` checks them).
pub const SERVER_ID_PATTERN: &str = "^[a-z0-9][a-z0-9-]{0,62}$";
/// Session ids (as `SessionId` checks them).
pub const SESSION_ID_PATTERN: &str = "^[a-z0-9-]{8,64}$";
/// Branch and tag names the API accepts: `/`, `.` or `-` separated words, not ending in `.lock`.
/// (The document's form: the handlers check it without the look-ahead, the core the `.lock`
/// rule.)
pub const GIT_REF_PATTERN: &str = r"^(?!.*\.lock$)[A-Za-z0-9_]+(?:[./-][A-Za-z0-9_]+)*$";
/// [`GIT_REF_PATTERN`] without its look-ahead.
const GIT_REF_WORDS: &str = r"^[A-Za-z0-9_]+(?:[./-][A-Za-z0-9_]+)*$";
/// `https://` repository URLs the API accepts: a lowercase DNS name (its last label starting with
/// a letter), an optional port, and a path of one or more segments of URL-safe characters (never
/// `.` or `..`, which URL parsing would resolve away).
pub const HTTPS_REPO_PATTERN: &str = r"^https://(?:[a-z0-9]+(?:-[a-z0-9]+)*\.)*[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?::[1-9][0-9]{0,3})?(?:/\.{0,2}[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+/?$";
/// `file://` repository URLs (only where the deployment allows them).
pub const FILE_REPO_PATTERN: &str = r"^file://(?:/\.{0,2}[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+/?$";
/// Idempotency keys (as `IdempotencyKey` checks them).
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,128}$";
/// Tool names the API accepts.
pub const TOOL_NAME_PATTERN: &str = "^[!-~]{1,128}$";
/// Task handles (as `TaskHandle` checks them).
pub const TASK_HANDLE_PATTERN: &str = "^[!-~]{1,2048}$";
/// MCP paths (as the core checks them).
pub const MCP_PATH_PATTERN: &str = "^/[!-~]{0,255}$";
/// Arguments of a stdio command: no NUL.
const COMMAND_ARG_PATTERN: &str = "^[^\\u0000]*$";
/// The program of a stdio command: no NUL, and a visible character.
const COMMAND_PROGRAM_PATTERN: &str = "^[^\\u0000]*[!-~][^\\u0000]*$";
/// Longest stdio command argument, in characters (4096 bytes of UTF-8 at most).
const MAX_COMMAND_ARG_CHARS: usize = 1024;
/// Most stdio command arguments.
const MAX_COMMAND_ARGS: usize = 64;
/// Longest git ref.
const MAX_GIT_REF_LEN: usize = 255;
/// One character of a build path: no `/`, backslash or control character.
const PATH_CHAR: &str = r"[^/\\\u0000-\u001f\u007f-\u009f]";
/// Longest build context or Dockerfile path the API accepts, in characters (1024 bytes of
/// UTF-8 at most, the core's limit).
const MAX_BUILD_PATH_CHARS: usize = 256;
/// Longest build argument value, in characters (4096 bytes at most, the core's limit).
const MAX_BUILD_ARG_VALUE_CHARS: usize = 1024;
/// Build argument names (as the core checks them, at most 128 characters).
pub const BUILD_ARG_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]{0,127}$";
/// Build argument names the core reserves (`BUILDKIT_*`, any case).
pub const RESERVED_BUILD_ARG_PATTERN: &str = "^[Bb][Uu][Ii][Ll][Dd][Kk][Ii][Tt]_";
/// Build argument values: no NUL or line break.
const BUILD_ARG_VALUE_PATTERN: &str = "^[^\\u0000\\n\\r]*$";
/// Setting names (environment variables, as `EnvName` checks them).
pub const SETTING_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]{0,255}$";
/// Setting values: anything without NUL.
const SETTING_VALUE_PATTERN: &str = "^[^\\u0000]*$";
/// Longest setting value in characters the document promises: the core's limit is in bytes
/// (32 KiB of UTF-8), which any string of this many characters fits.
const MAX_SETTING_VALUE_CHARS: usize = MAX_ENV_VALUE_LEN / 4;

/// A path component: anything but `..`, not starting with `-`.
fn path_component(allow_dot: bool) -> String {
    let c = PATH_CHAR;
    let first = c.replace("]", ".-]");
    let after_dot = c.replace("]", ".]");
    let dot = if allow_dot {
        format!(r"\.(?:{after_dot}{c}*)?")
    } else {
        format!(r"\.{after_dot}{c}*")
    };
    format!(r"(?:{first}{c}*|{dot}|\.\.{c}+)")
}

/// Build contexts: a relative path (empty for the root), no `..` component, no component
/// starting with `-`, no backslash or control character.
pub static BUILD_CONTEXT_PATTERN: LazyLock<String> = LazyLock::new(|| {
    let comp = path_component(true);
    format!("^(?:{comp}(?:/+{comp})*/*)?$")
});
/// Dockerfiles: as [`BUILD_CONTEXT_PATTERN`], naming a file (the last component is not `.`).
pub static DOCKERFILE_PATTERN: LazyLock<String> = LazyLock::new(|| {
    let comp = path_component(true);
    let name = path_component(false);
    format!("^(?:{comp}/+)*{name}/*$")
});
static BUILD_CONTEXT_RE: LazyLock<Regex> = LazyLock::new(|| compiled(&BUILD_CONTEXT_PATTERN));
static DOCKERFILE_RE: LazyLock<Regex> = LazyLock::new(|| compiled(&DOCKERFILE_PATTERN));
static BUILD_ARG_NAME_RE: LazyLock<Regex> = LazyLock::new(|| compiled(BUILD_ARG_NAME_PATTERN));
static RESERVED_BUILD_ARG_RE: LazyLock<Regex> =
    LazyLock::new(|| compiled(RESERVED_BUILD_ARG_PATTERN));
static BUILD_ARG_VALUE_RE: LazyLock<Regex> = LazyLock::new(|| compiled(BUILD_ARG_VALUE_PATTERN));

/// The build spec of a registration, checked against the document's constraints (the core
/// checks it again when the server is registered).
fn build_spec(body: Option<BuildBody>) -> ApiResult<BuildSpec> {
    let Some(body) = body else {
        return Ok(BuildSpec::default());
    };
    let mut spec = BuildSpec::default();
    for (field, value, re, slot) in [
        (
            "build.context",
            body.context,
            &*BUILD_CONTEXT_RE,
            &mut spec.context,
        ),
        (
            "build.dockerfile",
            body.dockerfile,
            &*DOCKERFILE_RE,
            &mut spec.dockerfile,
        ),
    ] {
        if let Some(value) = value {
            if value.chars().count() > MAX_BUILD_PATH_CHARS || !re.is_match(&value) {
                return Err(ApiError::invalid(
                    field,
                    format!("a relative path of at most {MAX_BUILD_PATH_CHARS} characters, without '..', backslashes, control characters or components starting with '-'"),
                ));
            }
            *slot = value;
        }
    }
    let args = body.args.unwrap_or_default();
    if args.len() > toolshed_core::domain::MAX_BUILD_ARGS {
        return Err(ApiError::invalid(
            "build.args",
            format!(
                "at most {} build arguments",
                toolshed_core::domain::MAX_BUILD_ARGS
            ),
        ));
    }
    for (name, value) in &args {
        if !BUILD_ARG_NAME_RE.is_match(name) || RESERVED_BUILD_ARG_RE.is_match(name) {
            return Err(ApiError::invalid(
                "build.args",
                "names match [A-Za-z_][A-Za-z0-9_]* (at most 128 characters) and do not start with BUILDKIT_",
            ));
        }
        if value.chars().count() > MAX_BUILD_ARG_VALUE_CHARS || !BUILD_ARG_VALUE_RE.is_match(value)
        {
            return Err(ApiError::invalid(
                "build.args",
                format!("values have at most {MAX_BUILD_ARG_VALUE_CHARS} characters, without NUL or line breaks"),
            ));
        }
    }
    spec.args = args;
    Ok(spec)
}

/// What an approval or rejection names: an image digest or a full commit.
pub const CANDIDATE_PATTERN: &str = "^(?:sha256:[0-9a-f]{64}|[0-9a-f]{40})$";
/// Largest `limit` of a server listing.
pub const MAX_PAGE: usize = 1000;

fn compiled(pattern: &str) -> Regex {
    // The patterns are the constants above, compiled by the tests.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("constant pattern")
}

static GIT_REF_RE: LazyLock<Regex> = LazyLock::new(|| compiled(GIT_REF_WORDS));
static HTTPS_REPO_RE: LazyLock<Regex> = LazyLock::new(|| compiled(HTTPS_REPO_PATTERN));
static FILE_REPO_RE: LazyLock<Regex> = LazyLock::new(|| compiled(FILE_REPO_PATTERN));
static TOOL_NAME_RE: LazyLock<Regex> = LazyLock::new(|| compiled(TOOL_NAME_PATTERN));
static CANDIDATE_RE: LazyLock<Regex> = LazyLock::new(|| compiled(CANDIDATE_PATTERN));

impl crate::dto::ReviewRequest {
    /// The named candidate, checked against [`CANDIDATE_PATTERN`].
    ///
    /// # Errors
    /// 422 `invalid_input` on `digest`.
    pub fn candidate(&self) -> ApiResult<&str> {
        if CANDIDATE_RE.is_match(&self.digest) {
            Ok(&self.digest)
        } else {
            Err(ApiError::invalid(
                "digest",
                "must be sha256:<64 lowercase hex digits> or a full 40-digit lowercase commit",
            ))
        }
    }
}
static PROGRAM_RE: LazyLock<Regex> =
    LazyLock::new(|| compiled(&COMMAND_PROGRAM_PATTERN.replace("\\u0000", "\\x00")));

impl RegisterRequest {
    /// The registration, checked against the document's constraints, then the core's.
    ///
    /// # Errors
    /// 422 `invalid_input` naming the field.
    pub fn into_registration(self, allow_file: bool) -> ApiResult<ServerRegistration> {
        let id = ServerId::new(self.id)?;
        let https = HTTPS_REPO_RE.is_match(&self.repo);
        let file = allow_file && FILE_REPO_RE.is_match(&self.repo);
        if self.repo.len() > MAX_REPO_URL_LEN || !(https || file) {
            let reason = if self.repo.starts_with("file:") && !allow_file {
                "file:// repositories are not accepted by this deployment; use an https URL"
            } else {
                "must be an https:// URL of a repository (lowercase host name, a path of letters, digits and ._~-), without credentials, query or fragment"
            };
            return Err(ApiError::invalid("repo", reason));
        }
        let policy = if allow_file {
            RepoUrlPolicy::LOCAL
        } else {
            RepoUrlPolicy::HTTPS_ONLY
        };
        let repo = RepoUrl::parse(&self.repo, policy)?;
        if self.git_ref.len() > MAX_GIT_REF_LEN || !GIT_REF_RE.is_match(&self.git_ref) {
            return Err(ApiError::invalid(
                "git_ref",
                "must be a branch or tag name of letters, digits and _, separated by single '/', '.' or '-'",
            ));
        }
        let git_ref = GitRef::new(self.git_ref)?;
        let transport = match self.transport {
            None => Transport::default(),
            Some(TransportBody::Http { port, path }) => Transport::Http { port, path },
            Some(TransportBody::Stdio { command }) => {
                let too_long = command.len() > MAX_COMMAND_ARGS
                    || command
                        .iter()
                        .any(|a| a.chars().count() > MAX_COMMAND_ARG_CHARS || a.contains('\0'));
                if too_long || !command.first().is_some_and(|p| PROGRAM_RE.is_match(p)) {
                    return Err(ApiError::invalid(
                        "command",
                        format!("a program with a visible character, then at most {} arguments in all, each at most {MAX_COMMAND_ARG_CHARS} characters without NUL", MAX_COMMAND_ARGS - 1),
                    ));
                }
                Transport::Stdio { command }
            }
        };
        let resources = self
            .resources
            .map_or_else(TaskResources::default, |r| TaskResources {
                cpu_units: r.cpu_units,
                memory_mib: r.memory_mib,
                ..TaskResources::default()
            });
        for (field, value, max) in [
            ("description", &self.description, MAX_DESCRIPTION_LEN),
            ("language", &self.language, MAX_LANGUAGE_LEN),
        ] {
            if value.as_ref().is_some_and(|v| v.chars().count() > max) {
                return Err(ApiError::invalid(
                    field,
                    format!("at most {max} characters"),
                ));
            }
        }
        let build = build_spec(self.build)?;
        let settings = setting_specs(self.settings.unwrap_or_default())?;
        Ok(ServerRegistration {
            origin: Default::default(),
            id,
            repo,
            git_ref,
            transport,
            resources,
            description: self.description,
            language: self.language,
            build,
            settings,
        })
    }
}

/// The declarations of a registration's `settings`.
fn setting_specs(bodies: Vec<SettingBody>) -> ApiResult<Vec<SettingSpec>> {
    if bodies.len() > MAX_SETTINGS {
        return Err(ApiError::invalid(
            "settings",
            format!("at most {MAX_SETTINGS} settings"),
        ));
    }
    bodies
        .into_iter()
        .map(|b| {
            let name = EnvName::new(b.name).map_err(|e| as_field("settings", e))?;
            Ok(SettingSpec::new(
                name,
                b.description,
                b.required,
                b.secret,
                b.default,
            )?)
        })
        .collect()
}

/// Setting values of a request (`test_values`, a launch's `settings`): names and values
/// checked, errors naming `field` and never a value.
///
/// # Errors
/// 422 `invalid_input` on `field`.
pub fn setting_values(
    field: &'static str,
    values: Option<BTreeMap<String, String>>,
) -> ApiResult<InstanceEnv> {
    InstanceEnv::from_exposed(values.unwrap_or_default()).map_err(|e| as_field(field, e))
}

/// A core `InvalidInput` moved onto the request's field.
fn as_field(field: &'static str, e: toolshed_core::Error) -> ApiError {
    match e {
        toolshed_core::Error::InvalidInput { reason, .. } => ApiError::invalid(field, reason),
        other => other.into(),
    }
}

/// Checks a tool name against [`TOOL_NAME_PATTERN`].
///
/// # Errors
/// 422 `invalid_input` for `tool`.
pub fn check_tool_name(name: &str) -> ApiResult<()> {
    if TOOL_NAME_RE.is_match(name) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "tool",
            "must be 1-128 visible ASCII characters",
        ))
    }
}

/// What the document depends on besides the handlers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DocSettings {
    /// Whether `file://` repositories are accepted.
    pub allow_file_repos: bool,
    /// Shortest and longest session TTL, in seconds.
    pub ttl_seconds: (u64, u64),
    /// Whether requests without credentials are served (no authentication configured).
    pub anonymous: bool,
    /// Largest request body, in bytes.
    pub body_limit: usize,
}

/// Routes that never need credentials.
const PUBLIC_PATHS: [&str; 2] = ["/healthz", "/openapi.json"];

fn error_response(description: &str, retry_after: bool) -> Value {
    let mut r = json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    });
    if retry_after {
        r["headers"] = json!({"Retry-After": {
            "description": "Seconds to wait before retrying",
            "schema": {"type": "integer", "minimum": 1},
        }});
    }
    r
}

/// Sets `key` of `object` when absent (a handler's own description wins).
fn add_response(responses: &mut Map<String, Value>, status: &str, response: Value) {
    responses.entry(status.to_owned()).or_insert(response);
}

/// The constraints of a parameter, by location and name.
fn parameter_schema(location: &str, name: &str) -> Option<Value> {
    Some(match (location, name) {
        ("path", "id") | ("query", "after" | "id") => {
            json!({"type": "string", "pattern": SERVER_ID_PATTERN, "minLength": 1, "maxLength": 63})
        }
        ("path" | "query", "session_id") => {
            json!({"type": "string", "pattern": SESSION_ID_PATTERN, "minLength": 8, "maxLength": 64})
        }
        ("query", "task_arn") => {
            json!({"type": "string", "pattern": TASK_HANDLE_PATTERN, "minLength": 1, "maxLength": 2048})
        }
        ("query", "limit") => {
            json!({"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100})
        }
        ("path", "instance_id") => {
            json!({"type": "string", "pattern": SESSION_ID_PATTERN, "minLength": 8, "maxLength": 64})
        }
        ("query", "tail") => json!({
            "type": "integer", "minimum": 0, "maximum": toolshed_core::ports::MAX_LOG_TAIL, "default": 100
        }),
        ("query", "force") => json!({"type": "boolean"}),
        ("query", "package") => json!({"type": "integer", "minimum": 0}),
        ("path", "key_id") => json!({"type": "string", "pattern": "^[0-9a-f]{16}$"}),
        ("query", "owner") => json!({"type": "string", "pattern": "^[!-~]{1,256}$"}),
        ("header", "Idempotency-Key") => {
            json!({"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN, "minLength": 1, "maxLength": 128})
        }
        _ => return None,
    })
}

fn set(schema: &mut Value, pointer: &str, value: Value) {
    if let Some(slot) = schema.pointer_mut(pointer) {
        if let (Some(slot), Value::Object(add)) = (slot.as_object_mut(), value) {
            slot.extend(add);
        }
    }
}

/// The component schemas' constraints.
fn constrain_schemas(schemas: &mut Value, s: &DocSettings) {
    let repo_pattern = if s.allow_file_repos {
        format!(
            "^(?:{}|{})$",
            HTTPS_REPO_PATTERN
                .trim_start_matches('^')
                .trim_end_matches('$'),
            FILE_REPO_PATTERN
                .trim_start_matches('^')
                .trim_end_matches('$')
        )
    } else {
        HTTPS_REPO_PATTERN.to_owned()
    };
    set(
        schemas,
        "/ReviewRequest/properties/digest",
        json!({"pattern": CANDIDATE_PATTERN, "minLength": 40, "maxLength": 71}),
    );
    let reg = "/RegisterRequest/properties";
    set(
        schemas,
        &format!("{reg}/id"),
        json!({"pattern": SERVER_ID_PATTERN, "minLength": 1, "maxLength": 63}),
    );
    set(
        schemas,
        &format!("{reg}/repo"),
        json!({"pattern": repo_pattern, "maxLength": MAX_REPO_URL_LEN}),
    );
    set(
        schemas,
        &format!("{reg}/git_ref"),
        json!({"pattern": GIT_REF_PATTERN, "minLength": 1, "maxLength": MAX_GIT_REF_LEN}),
    );
    set(
        schemas,
        &format!("{reg}/description"),
        json!({"maxLength": MAX_DESCRIPTION_LEN}),
    );
    set(
        schemas,
        &format!("{reg}/language"),
        json!({"maxLength": MAX_LANGUAGE_LEN}),
    );
    set(
        schemas,
        "/BuildBody/properties/context",
        json!({"pattern": *BUILD_CONTEXT_PATTERN, "maxLength": MAX_BUILD_PATH_CHARS}),
    );
    set(
        schemas,
        "/BuildBody/properties/dockerfile",
        json!({"pattern": *DOCKERFILE_PATTERN, "minLength": 1, "maxLength": MAX_BUILD_PATH_CHARS}),
    );
    set(
        schemas,
        "/BuildBody/properties/args",
        json!({
            "maxProperties": toolshed_core::domain::MAX_BUILD_ARGS,
            "propertyNames": {
                "pattern": BUILD_ARG_NAME_PATTERN,
                "not": {"pattern": RESERVED_BUILD_ARG_PATTERN},
            },
            "additionalProperties": {
                "type": "string",
                "pattern": BUILD_ARG_VALUE_PATTERN,
                "maxLength": MAX_BUILD_ARG_VALUE_CHARS,
            },
        }),
    );
    let setting_value = json!({
        "type": "string",
        "pattern": SETTING_VALUE_PATTERN,
        "maxLength": MAX_SETTING_VALUE_CHARS,
    });
    let setting_map = json!({
        "maxProperties": MAX_ENV_VARS,
        "propertyNames": {"pattern": SETTING_NAME_PATTERN},
        "additionalProperties": setting_value,
    });
    set(
        schemas,
        &format!("{reg}/settings"),
        json!({"maxItems": MAX_SETTINGS}),
    );
    set(schemas, &format!("{reg}/test_values"), setting_map.clone());
    set(schemas, "/LaunchBody/properties/settings", setting_map);
    set(
        schemas,
        "/SettingBody/properties/name",
        json!({"pattern": SETTING_NAME_PATTERN}),
    );
    set(
        schemas,
        "/SettingBody/properties/description",
        json!({"maxLength": MAX_SETTING_DESCRIPTION_LEN}),
    );
    set(schemas, "/SettingBody/properties/default", setting_value);
    if let Some(setting) = schemas
        .get_mut("SettingBody")
        .and_then(Value::as_object_mut)
    {
        // A secret has no default (it would be stored in plain text).
        setting.insert(
            "not".to_owned(),
            json!({
                "required": ["secret", "default"],
                "properties": {"secret": {"const": true}, "default": {"type": "string"}},
            }),
        );
    }
    set(
        schemas,
        "/ResourcesBody/properties/cpu_units",
        json!({"minimum": 256, "maximum": 16384}),
    );
    set(
        schemas,
        "/ResourcesBody/properties/memory_mib",
        json!({"minimum": 512, "maximum": 122_880}),
    );
    if let Some(variants) = schemas
        .pointer_mut("/TransportBody/oneOf")
        .and_then(Value::as_array_mut)
    {
        for variant in variants {
            if variant.pointer("/properties/port").is_some() {
                set(
                    variant,
                    "/properties/port",
                    json!({"minimum": 1, "maximum": 65535}),
                );
                set(
                    variant,
                    "/properties/path",
                    json!({"pattern": MCP_PATH_PATTERN, "minLength": 1, "maxLength": 256}),
                );
            }
            if variant.pointer("/properties/command").is_some() {
                set(
                    variant,
                    "/properties/command",
                    json!({
                        "minItems": 1,
                        "maxItems": MAX_COMMAND_ARGS,
                        "prefixItems": [{"type": "string", "pattern": COMMAND_PROGRAM_PATTERN, "maxLength": MAX_COMMAND_ARG_CHARS}],
                        "items": {"type": "string", "pattern": COMMAND_ARG_PATTERN, "maxLength": MAX_COMMAND_ARG_CHARS},
                    }),
                );
            }
        }
    }
    let (min, max) = s.ttl_seconds;
    set(
        schemas,
        "/LaunchBody/properties/ttl_seconds",
        json!({"minimum": min, "maximum": max}),
    );
    set(
        schemas,
        "/LaunchBody/properties/idempotency_key",
        json!({"pattern": IDEMPOTENCY_KEY_PATTERN, "minLength": 1, "maxLength": 128}),
    );
    for body in ["ExecuteRequest", "StopRequest", "SessionSelector"] {
        set(
            schemas,
            &format!("/{body}/properties/session_id"),
            json!({"pattern": SESSION_ID_PATTERN, "minLength": 8, "maxLength": 64}),
        );
        set(
            schemas,
            &format!("/{body}/properties/task_arn"),
            json!({"pattern": TASK_HANDLE_PATTERN, "minLength": 1, "maxLength": 2048}),
        );
    }
    set(
        schemas,
        "/ExecuteRequest/properties/tool",
        json!({"pattern": TOOL_NAME_PATTERN, "minLength": 1, "maxLength": 128}),
    );
    set(schemas, "/ExecuteRequest", json!({"required": ["tool"]}));
    // A stop names its session: by id or by task.
    set(
        schemas,
        "/StopRequest",
        json!({"anyOf": [
            {"required": ["session_id"], "properties": {"session_id": {"type": "string"}}},
            {"required": ["task_arn"], "properties": {"task_arn": {"type": "string"}}},
        ]}),
    );
    // Instances: a verified server, a unique name, an environment of variable names.
    let create = "/CreateInstanceBody/properties";
    set(
        schemas,
        &format!("{create}/server_id"),
        json!({"pattern": SERVER_ID_PATTERN, "minLength": 1, "maxLength": 63}),
    );
    set(
        schemas,
        &format!("{create}/name"),
        json!({"pattern": SERVER_ID_PATTERN, "minLength": 1, "maxLength": 63}),
    );
    set(
        schemas,
        &format!("{create}/env"),
        json!({
            "maxProperties": toolshed_core::domain::MAX_ENV_VARS,
            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]{0,255}$"},
            "additionalProperties": {
                "type": "string",
                "pattern": "^[^\\u0000]*$",
                "maxLength": toolshed_core::domain::MAX_ENV_VALUE_LEN,
            },
        }),
    );
    set(
        schemas,
        "/DrainBody/properties/drain_timeout_seconds",
        json!({"minimum": 0, "maximum": 300}),
    );
    // API keys: a name with a visible character and no control characters, a principal of
    // visible ASCII, at least one scope (repeats are harmless: scopes are a set).
    let key = "/CreateApiKeyBody/properties";
    set(
        schemas,
        &format!("{key}/name"),
        json!({
            "minLength": 1,
            "maxLength": 64,
            "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        }),
    );
    set(
        schemas,
        &format!("{key}/owner"),
        json!({"pattern": "^[!-~]{1,256}$", "minLength": 1, "maxLength": 256}),
    );
    set(schemas, &format!("{key}/scopes"), json!({"minItems": 1}));
}

/// The generated document, completed: constraints of every body and parameter, the answers of
/// the edge layers (400/413/415 on bodies, 421, 429, 500, 503, and 401/403 with the security
/// schemes on every route but `/healthz` and `/openapi.json`).
pub(crate) fn complete_document(doc: &utoipa::openapi::OpenApi, s: &DocSettings) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_else(|_| json!({}));
    if let Some(schemas) = doc.pointer_mut("/components/schemas") {
        constrain_schemas(schemas, s);
    }
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        components.insert(
            "securitySchemes".to_owned(),
            json!({
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A JWT from the embedding application's identity provider (issuer, audience, expiry and signature checked against its JWKS).",
                },
                "api_key": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Api-Key",
                    "description": "An API key (`tsk_…`), in `X-Api-Key` or as `Authorization: Bearer tsk_…`.",
                },
            }),
        );
    }
    add_links(&mut doc);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        let protected = !PUBLIC_PATHS.contains(&path.as_str());
        for (method, op) in item.iter_mut() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            complete_operation(op, protected, s);
        }
    }
    doc
}

/// Links from what creates a server or a session to what uses it, so clients (and stateful
/// fuzzers) know where the ids come from.
fn add_links(doc: &mut Value) {
    let server = "$response.body#/server/id";
    let server_links = json!({
        "GetServer": {"operationId": "get_server", "parameters": {"id": server}},
        "GetDocs": {"operationId": "get_docs", "parameters": {"id": server}},
        "Reverify": {"operationId": "reverify", "parameters": {"id": server}},
        "VerificationStatus": {"operationId": "verification_status", "parameters": {"id": server}},
        "Launch": {"operationId": "launch", "parameters": {"id": server}},
        "SessionStatus": {"operationId": "status", "parameters": {"id": server}},
    });
    let session_links = json!({
        "SessionStatus": {"operationId": "status", "parameters": {
            "id": "$response.body#/session/server_id",
            "session_id": "$response.body#/session/id",
        }},
        "DeleteSession": {"operationId": "delete_session", "parameters": {
            "session_id": "$response.body#/session/id",
        }},
    });
    for (pointer, links) in [
        (
            "/paths/~1api~1servers/post/responses/201",
            server_links.clone(),
        ),
        ("/paths/~1api~1import/post/responses/201", server_links),
        (
            "/paths/~1api~1servers~1{id}~1playground/post/responses/202",
            session_links,
        ),
    ] {
        if let Some(response) = doc.pointer_mut(pointer).and_then(Value::as_object_mut) {
            response.insert("links".to_owned(), links);
        }
    }
}

fn complete_operation(op: &mut Value, protected: bool, s: &DocSettings) {
    let mut has_path_params = false;
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in params {
            let location = p["in"].as_str().unwrap_or_default().to_owned();
            let name = p["name"].as_str().unwrap_or_default().to_owned();
            has_path_params |= location == "path";
            if let Some(schema) = parameter_schema(&location, &name) {
                p["schema"] = schema;
            }
        }
    }
    let has_body = op.get("requestBody").is_some();
    let Some(responses) = op
        .as_object_mut()
        .map(|o| o.entry("responses").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if has_body || has_path_params {
        add_response(
            responses,
            "400",
            error_response(
                "Malformed JSON, or an invalid path or query parameter",
                false,
            ),
        );
    }
    if has_body {
        add_response(
            responses,
            "413",
            error_response(&format!("The body exceeds {} bytes", s.body_limit), false),
        );
        add_response(
            responses,
            "415",
            error_response("The body is not declared `application/json`", false),
        );
        add_response(
            responses,
            "422",
            error_response("The body does not fit its schema", false),
        );
    }
    add_response(
        responses,
        "421",
        error_response(
            "The request's Host is not served by this API (DNS rebinding protection)",
            false,
        ),
    );
    add_response(
        responses,
        "429",
        error_response(
            "Too many requests from this client, or a cap is reached",
            true,
        ),
    );
    add_response(
        responses,
        "503",
        error_response("A backend is unavailable or the request timed out", true),
    );
    if protected {
        add_response(
            responses,
            "401",
            error_response("Missing, invalid or expired credentials", false),
        );
        add_response(
            responses,
            "403",
            error_response("The credentials lack the scope this route needs", false),
        );
        add_response(
            responses,
            "500",
            error_response(
                "A backend failed; the request id identifies the details in the logs",
                false,
            ),
        );
        let mut security = vec![json!({"bearer": []}), json!({"api_key": []})];
        if s.anonymous {
            // Without authentication configured, requests without credentials are served too.
            security.push(json!({}));
        }
        op["security"] = Value::Array(security);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(repo: &str, git_ref: &str) -> RegisterRequest {
        RegisterRequest {
            id: "time".to_owned(),
            repo: repo.to_owned(),
            git_ref: git_ref.to_owned(),
            transport: None,
            resources: None,
            description: None,
            language: None,
            build: None,
            settings: None,
            test_values: None,
        }
    }

    #[test]
    fn documented_build_specs_are_what_the_core_accepts() {
        let with = |context: Option<&str>, dockerfile: Option<&str>, args: &[(&str, &str)]| {
            let mut r = registration("https://github.com/example/mono", "main");
            r.build = Some(BuildBody {
                context: context.map(str::to_owned),
                dockerfile: dockerfile.map(str::to_owned),
                args: Some(
                    args.iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
            });
            r.into_registration(false)
        };
        let ok = with(
            Some("./servers/a/"),
            Some("docker/Dockerfile.prod"),
            &[("V", "$(touch /tmp/x); a; rm -rf /")],
        )
        .unwrap();
        assert_eq!(ok.build.context, "./servers/a/");
        let spec = ok.build.checked().unwrap();
        assert_eq!(
            (spec.context.as_str(), spec.dockerfile.as_str()),
            ("servers/a", "docker/Dockerfile.prod")
        );
        for (context, dockerfile) in [
            (Some(""), None),
            (Some("."), Some("./Dockerfile")),
            (Some("a..b/.c/..d"), Some("...")),
            (Some("src/my server"), Some("Dockerfile-x")),
        ] {
            let reg =
                with(context, dockerfile, &[]).unwrap_or_else(|e| panic!("{context:?}: {e:?}"));
            assert!(reg.build.checked().is_ok(), "{context:?} {dockerfile:?}");
        }
        for (context, dockerfile) in [
            (Some(".."), None),
            (Some("a/../b"), None),
            (Some("/etc"), None),
            (Some("-x"), None),
            (Some("a\\b"), None),
            (Some("a\nb"), None),
            (None, Some("")),
            (None, Some(".")),
            (None, Some("a/..")),
            (None, Some("../Dockerfile")),
        ] {
            let err = with(context, dockerfile, &[]).unwrap_err();
            assert_eq!(
                err.status,
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "{context:?} {dockerfile:?}"
            );
            // And the core refuses them too.
            let spec = BuildSpec {
                context: context.unwrap_or(".").to_owned(),
                dockerfile: dockerfile.unwrap_or("Dockerfile").to_owned(),
                ..BuildSpec::default()
            };
            assert!(spec.checked().is_err(), "{context:?} {dockerfile:?}");
        }
        for (k, v) in [
            ("A B", "x"),
            ("BUILDKIT_SYNTAX", "x"),
            ("buildkit_x", "x"),
            ("A", "x\ny"),
            ("A", "x\u{0}"),
        ] {
            assert!(with(None, None, &[(k, v)]).is_err(), "{k:?}={v:?}");
        }
        let many: Vec<(String, String)> =
            (0..33).map(|i| (format!("A{i}"), String::new())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert!(with(None, None, &many).is_err());
    }

    #[test]
    fn documented_repos_and_refs_are_what_the_core_accepts() {
        for (repo, git_ref) in [
            ("https://github.com/a/b", "main"),
            (
                "https://git.example.co.uk:8443/group/sub/b.git/",
                "release/1.x",
            ),
            ("https://a/b", "v1.2.3"),
            ("https://x1.y-z.io/~u/_r", "feature-x_y"),
        ] {
            let r = registration(repo, git_ref).into_registration(false);
            assert!(r.is_ok(), "{repo} {git_ref}: {r:?}");
        }
        for (repo, git_ref, field) in [
            ("http://github.com/a/b", "main", "repo"),
            ("https://GitHub.com/a/b", "main", "repo"),
            ("https://tok@github.com/a/b", "main", "repo"),
            ("https://github.com/", "main", "repo"),
            ("https://github.com/a/..", "main", "repo"),
            ("https://1.2.3.4/a", "main", "repo"),
            ("https://xn--a.com/a", "main", "repo"),
            ("file:///etc", "main", "repo"),
            ("https://github.com/a/b", "x.lock", "git_ref"),
            ("https://github.com/a/b", "a..b", "git_ref"),
            ("https://github.com/a/b", "a b", "git_ref"),
        ] {
            let e = registration(repo, git_ref)
                .into_registration(false)
                .unwrap_err();
            assert_eq!(e.body.code, "invalid_input", "{repo} {git_ref}");
            assert_eq!(e.body.details["field"], field, "{repo} {git_ref}: {e:?}");
        }
        for file in [
            "file:///srv/repos/time",
            "file:///tmp/.tmpAb12/repo",
            "file:///x/..y",
        ] {
            assert!(
                registration(file, "main").into_registration(true).is_ok(),
                "{file}"
            );
        }
        for file in ["file:///tmp/../etc", "file:///tmp/./x", "file:///"] {
            assert!(
                registration(file, "main").into_registration(true).is_err(),
                "{file}"
            );
        }
    }

    #[test]
    fn stdio_commands_and_tool_names() {
        let mut r = registration("https://github.com/a/b", "main");
        r.transport = Some(TransportBody::Stdio {
            command: vec!["uvx".into(), "mcp-server-time".into()],
        });
        assert!(r.clone().into_registration(false).is_ok());
        for command in [vec![], vec![" ".to_owned()], vec!["a\0".to_owned()]] {
            r.transport = Some(TransportBody::Stdio { command });
            assert!(r.clone().into_registration(false).is_err());
        }
        assert!(check_tool_name("get_current_time").is_ok());
        assert!(check_tool_name("has space").is_err());
        assert!(check_tool_name("é").is_err());
        assert!(check_tool_name("").is_err());
    }

    #[test]
    fn every_pattern_compiles() {
        for p in [
            SERVER_ID_PATTERN,
            SESSION_ID_PATTERN,
            GIT_REF_WORDS,
            HTTPS_REPO_PATTERN,
            FILE_REPO_PATTERN,
            IDEMPOTENCY_KEY_PATTERN,
            TOOL_NAME_PATTERN,
            TASK_HANDLE_PATTERN,
            MCP_PATH_PATTERN,
        ] {
            compiled(p);
        }
        assert!(PROGRAM_RE.is_match("python3"));
        assert!(!PROGRAM_RE.is_match("\u{1c}"));
    }
}
