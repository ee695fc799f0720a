//! How a server's image is built from its repository: the build context (a subfolder, so one
//! repository can hold several servers), the Dockerfile and build arguments.
//!
//! Every part is untrusted input (the registration body, the repository's own tree) and is
//! checked twice: lexically here, at registration, and against the checked-out tree by each
//! builder, which resolves symbolic links and refuses a context or Dockerfile that ends up
//! outside the repository ([`Error::BuildPathEscape`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The context of a server built from the repository's root.
pub const ROOT_CONTEXT: &str = ".";
/// The Dockerfile used when none is named.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";
/// Most build arguments one server may set.
pub const MAX_BUILD_ARGS: usize = 32;
/// Longest build argument name.
pub const MAX_BUILD_ARG_NAME_LEN: usize = 128;
/// Longest build argument value, in bytes.
pub const MAX_BUILD_ARG_VALUE_LEN: usize = 4096;
/// Longest context or Dockerfile path, in bytes.
pub const MAX_BUILD_PATH_LEN: usize = 1024;
/// Build argument names reserved by the engine's builder: `BUILDKIT_SYNTAX` alone would let a
/// registration choose the frontend image that parses the Dockerfile.
pub const RESERVED_BUILD_ARG_PREFIX: &str = "BUILDKIT_";

/// How to build a server's image.
///
/// Build arguments are **not for secrets**: their values are visible to anyone who can read the
/// image (`docker history` shows them) and in the server's record. Give secrets to instances as
/// environment variables instead.
///
/// ```
/// use toolshed_core::domain::BuildSpec;
/// let spec: BuildSpec = serde_json::from_str(r#"{"context": "./servers/a/", "args": {"VERSION": "1.2"}}"#).unwrap();
/// let spec = spec.checked().unwrap();
/// assert_eq!(spec.context, "servers/a");
/// assert_eq!(spec.dockerfile, "Dockerfile");
/// assert!(BuildSpec { context: "../other".into(), ..BuildSpec::default() }.checked().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    /// The build context: a folder of the repository, relative to its root (`.` for the root).
    #[serde(default = "root_context")]
    pub context: String,
    /// The Dockerfile, relative to the context.
    #[serde(default = "default_dockerfile")]
    pub dockerfile: String,
    /// Build arguments (`ARG` values), name → value. Visible in the image's history: never
    /// secrets.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

fn root_context() -> String {
    ROOT_CONTEXT.to_owned()
}

fn default_dockerfile() -> String {
    DEFAULT_DOCKERFILE.to_owned()
}

impl Default for BuildSpec {
    fn default() -> Self {
        Self {
            context: root_context(),
            dockerfile: default_dockerfile(),
            args: BTreeMap::new(),
        }
    }
}

/// A relative path of a repository, normalised: `.` components and repeated or trailing `/`
/// dropped; `None` for the root. Refuses what could leave the repository or confuse a shell or
/// a command line: absolute paths, `..` components, backslashes, control characters, a
/// component starting with `-`.
fn normalise(field: &'static str, raw: &str) -> Result<Option<String>> {
    let invalid = |why: &str| Err(Error::invalid(field, format!("{raw:?} {why}")));
    if raw.len() > MAX_BUILD_PATH_LEN {
        return invalid(&format!("is longer than {MAX_BUILD_PATH_LEN} bytes"));
    }
    if raw.starts_with('/') {
        return invalid("must be relative to the repository, not absolute");
    }
    if raw.chars().any(|c| c.is_control()) {
        return invalid("must not contain control characters");
    }
    if raw.contains('\\') {
        return invalid("must use '/' as separator, without backslashes");
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return invalid("must not contain '..' (it stays inside the repository)"),
            p if p.starts_with('-') => {
                return invalid("must not have a component starting with '-'")
            }
            p => parts.push(p),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

/// Validates a build argument name and value.
fn check_arg(name: &str, value: &str) -> Result<()> {
    let mut chars = name.chars();
    let name_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_BUILD_ARG_NAME_LEN;
    if !name_ok {
        return Err(Error::invalid(
            "build.args",
            format!(
                "name {name:?} must match [A-Za-z_][A-Za-z0-9_]* and be at most {MAX_BUILD_ARG_NAME_LEN} characters"
            ),
        ));
    }
    if name
        .to_ascii_uppercase()
        .starts_with(RESERVED_BUILD_ARG_PREFIX)
    {
        return Err(Error::invalid(
            "build.args",
            format!("name {name:?} is reserved by the builder ({RESERVED_BUILD_ARG_PREFIX}*)"),
        ));
    }
    if value.len() > MAX_BUILD_ARG_VALUE_LEN || value.contains(['\0', '\n', '\r']) {
        return Err(Error::invalid(
            "build.args",
            format!(
                "value of {name} must be at most {MAX_BUILD_ARG_VALUE_LEN} bytes, without NUL or line breaks"
            ),
        ));
    }
    Ok(())
}

impl BuildSpec {
    /// The spec validated and normalised (`./servers/a/` → `servers/a`, an empty context → `.`).
    ///
    /// # Errors
    /// `InvalidInput` with field `build.context`, `build.dockerfile` or `build.args`: an
    /// absolute path, a `..` component, a control character or backslash, a component starting
    /// with `-`, an empty Dockerfile, more than [`MAX_BUILD_ARGS`] arguments, a bad argument
    /// name (or a reserved `BUILDKIT_*` one), a value with NUL or line breaks or too long.
    pub fn checked(self) -> Result<Self> {
        let context = normalise("build.context", &self.context)?.unwrap_or_else(root_context);
        let dockerfile = normalise("build.dockerfile", &self.dockerfile)?.ok_or_else(|| {
            Error::invalid("build.dockerfile", "must name a file inside the context")
        })?;
        if self.args.len() > MAX_BUILD_ARGS {
            return Err(Error::invalid(
                "build.args",
                format!("at most {MAX_BUILD_ARGS} build arguments"),
            ));
        }
        for (name, value) in &self.args {
            check_arg(name, value)?;
        }
        Ok(Self {
            context,
            dockerfile,
            args: self.args,
        })
    }

    /// Whether this is the default build (repository root, `Dockerfile`, no arguments).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The context as a path inside the repository: `None` for the root.
    pub fn context_dir(&self) -> Option<&str> {
        (self.context != ROOT_CONTEXT).then_some(self.context.as_str())
    }

    /// The Dockerfile's path from the repository root (`servers/a/Dockerfile`).
    pub fn dockerfile_in_repo(&self) -> String {
        match self.context_dir() {
            Some(dir) => format!("{dir}/{}", self.dockerfile),
            None => self.dockerfile.clone(),
        }
    }

    /// A short, stable fingerprint of a non-default spec (10 hex digits of a SHA-256 over its
    /// canonical JSON; arguments are sorted by name), `None` for the default one. It goes into
    /// candidate image tags, so builds of one commit with different specs never share a tag
    /// (see [`ImageTag::for_build_spec`](super::ImageTag::for_build_spec)).
    pub fn fingerprint(&self) -> Option<String> {
        if self.is_default() {
            return None;
        }
        // A struct of strings and a BTreeMap: serialisation cannot fail and is deterministic.
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        let digest = hex::encode(Sha256::digest(&canonical));
        Some(digest[..10].to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(context: &str, dockerfile: &str) -> BuildSpec {
        BuildSpec {
            context: context.into(),
            dockerfile: dockerfile.into(),
            args: BTreeMap::new(),
        }
    }

    fn field(err: Error) -> &'static str {
        match err {
            Error::InvalidInput { field, .. } => field,
            other => panic!("expected InvalidInput, got {other}"),
        }
    }

    #[test]
    fn paths_are_normalised() {
        for (raw, want) in [
            (".", "."),
            ("", "."),
            ("./", "."),
            ("servers/a", "servers/a"),
            ("./servers//a/", "servers/a"),
            ("servers/./a", "servers/a"),
            ("src/my server", "src/my server"),
            ("a..b/c", "a..b/c"),
        ] {
            assert_eq!(
                spec(raw, "Dockerfile").checked().unwrap().context,
                want,
                "{raw}"
            );
        }
        let s = spec("servers/a", "./docker/Dockerfile.prod")
            .checked()
            .unwrap();
        assert_eq!(s.dockerfile, "docker/Dockerfile.prod");
        assert_eq!(s.dockerfile_in_repo(), "servers/a/docker/Dockerfile.prod");
        assert_eq!(
            spec(".", "Dockerfile").checked().unwrap().context_dir(),
            None
        );
    }

    #[test]
    fn hostile_paths_are_refused() {
        for bad in [
            "/",
            "/etc",
            "..",
            "../other",
            "servers/../../x",
            "servers/a/..",
            "./..",
            "a/../b",
            "servers\\a",
            "..\\..",
            "a\0b",
            "a\nb",
            "a\rb",
            "\u{1b}[31m",
            "-rf",
            "servers/--file=x",
            &"a/".repeat(600),
        ] {
            assert_eq!(
                field(spec(bad, "Dockerfile").checked().unwrap_err()),
                "build.context",
                "{bad:?}"
            );
            assert_eq!(
                field(spec(".", bad).checked().unwrap_err()),
                "build.dockerfile",
                "{bad:?}"
            );
        }
        // A Dockerfile must name a file.
        for empty in ["", ".", "./", "//"] {
            assert_eq!(
                field(spec(".", empty).checked().unwrap_err()),
                "build.dockerfile"
            );
        }
    }

    #[test]
    fn build_args_are_bounded() {
        let with = |name: &str, value: &str| BuildSpec {
            args: BTreeMap::from([(name.to_owned(), value.to_owned())]),
            ..BuildSpec::default()
        };
        for ok in [
            "VERSION",
            "_x",
            "a1_B2",
            &"A".repeat(MAX_BUILD_ARG_NAME_LEN),
        ] {
            assert!(
                with(ok, "$(touch /tmp/x); `id` 'q' \"d\"")
                    .checked()
                    .is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "",
            "1X",
            "A-B",
            "A B",
            "A=B",
            "$(x)",
            "É",
            "BUILDKIT_SYNTAX",
            "buildkit_inline_cache",
            &"A".repeat(MAX_BUILD_ARG_NAME_LEN + 1),
        ] {
            assert_eq!(
                field(with(bad, "v").checked().unwrap_err()),
                "build.args",
                "{bad:?}"
            );
        }
        for bad in [
            "a\0b",
            "a\nb",
            "a\rb",
            &"v".repeat(MAX_BUILD_ARG_VALUE_LEN + 1),
        ] {
            assert_eq!(field(with("V", bad).checked().unwrap_err()), "build.args");
        }
        assert!(with("V", "").checked().is_ok());
        let many = BuildSpec {
            args: (0..=MAX_BUILD_ARGS)
                .map(|i| (format!("A{i}"), "v".into()))
                .collect(),
            ..BuildSpec::default()
        };
        assert_eq!(field(many.checked().unwrap_err()), "build.args");
    }

    #[test]
    fn stored_records_without_a_spec_load_with_the_default() {
        let spec: BuildSpec = serde_json::from_str("{}").unwrap();
        assert!(spec.is_default());
        assert!(serde_json::from_str::<BuildSpec>(r#"{"contxt": "a"}"#).is_err());
    }

    #[test]
    fn fingerprints_tell_specs_apart() {
        assert_eq!(BuildSpec::default().fingerprint(), None);
        let a = spec("servers/a", "Dockerfile").checked().unwrap();
        let b = spec("servers/b", "Dockerfile").checked().unwrap();
        let fa = a.fingerprint().unwrap();
        assert_eq!(fa.len(), 10);
        assert!(fa.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(Some(fa.clone()), b.fingerprint());
        // Stable: the same spec, however written, gives the same fingerprint.
        assert_eq!(
            spec("./servers/a/", "./Dockerfile")
                .checked()
                .unwrap()
                .fingerprint(),
            Some(fa)
        );
        let mut with_arg = a.clone();
        with_arg.args.insert("V".into(), "1".into());
        assert_ne!(with_arg.fingerprint(), a.fingerprint());
    }
}
