//! Container image references. A runner only ever receives an [`ImageRef`], which cannot exist
//! without a digest, and runs its [`ImageRef::pinned`] form: a task running a placeholder image
//! instead of the built one cannot be expressed.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::build::BuildSpec;
use super::ids::{CommitSha, ServerId};
use crate::error::{Error, Result};

/// A content digest, `sha256:` and 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ImageDigest(String);

impl ImageDigest {
    /// Validates a digest.
    ///
    /// ```
    /// use toolshed_core::domain::ImageDigest;
    /// let d = ImageDigest::new(format!("sha256:{}", "ab".repeat(32))).unwrap();
    /// assert_eq!(d.hex().len(), 64);
    /// assert!(ImageDigest::new("sha256:abc").is_err());
    /// ```
    pub fn new(raw: impl Into<String>) -> Result<Self> {
        let raw = raw.into();
        match raw.strip_prefix("sha256:") {
            Some(hex)
                if hex.len() == 64
                    && hex
                        .chars()
                        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) =>
            {
                Ok(Self(raw))
            }
            _ => Err(Error::invalid(
                "digest",
                format!("{raw:?} is not of the form sha256:<64 lowercase hex digits>"),
            )),
        }
    }

    /// `sha256:…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The first 12 hex digits (for names that must stay short).
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }
}

impl fmt::Display for ImageDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ImageDigest> for String {
    fn from(v: ImageDigest) -> String {
        v.0
    }
}

impl TryFrom<String> for ImageDigest {
    type Error = Error;
    fn try_from(v: String) -> Result<Self> {
        Self::new(v)
    }
}

/// Prefix of the tags verification builds push (candidates; see [`ImageTag::for_build`]).
pub const CANDIDATE_TAG_PREFIX: &str = "build-";
/// Prefix of the tags of verified images (never expired; see [`ImageTag::verified`]).
pub const VERIFIED_TAG_PREFIX: &str = "verified-";

/// An image tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}` (the OCI distribution rule).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ImageTag(String);

impl ImageTag {
    /// Validates a tag.
    pub fn new(raw: impl Into<String>) -> Result<Self> {
        let raw = raw.into();
        let mut chars = raw.chars();
        let ok = match chars.next() {
            Some(c) => {
                (c.is_ascii_alphanumeric() || c == '_')
                    && raw.len() <= 128
                    && chars.all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            }
            None => false,
        };
        if ok {
            Ok(Self(raw))
        } else {
            Err(Error::invalid(
                "image_tag",
                format!("{raw:?} is not a valid image tag"),
            ))
        }
    }

    /// The tag a verification build of `server` at `commit` pushes: `build-<serverId>-<sha12>`,
    /// a *candidate* until its verification passes. Tags are immutable in the registry, so a tag
    /// names exactly one build. Candidates expire in the registry after some days (ECR lifecycle
    /// rule on [`CANDIDATE_TAG_PREFIX`]); a failed re-verification therefore never counts against
    /// a server's good images.
    ///
    /// ```
    /// use toolshed_core::domain::{CommitSha, ImageTag, ServerId};
    /// let tag = ImageTag::for_build(&ServerId::new("time").unwrap(), &CommitSha::new("a".repeat(40)).unwrap());
    /// assert_eq!(tag.as_str(), "build-time-aaaaaaaaaaaa");
    /// ```
    pub fn for_build(server: &ServerId, commit: &CommitSha) -> Self {
        // ServerId is at most 63 characters of [a-z0-9-] and starts alphanumeric: always valid
        // (6 + 63 + 1 + 12 = 82 characters at most).
        Self(format!(
            "{CANDIDATE_TAG_PREFIX}{}-{}",
            server.as_str(),
            commit.short()
        ))
    }

    /// The candidate tag of a build of `server` at `commit` with the build spec `build`: the
    /// [`Self::for_build`] tag for the default spec (the repository root's `Dockerfile`, no
    /// arguments), `build-<serverId>_<spec10>-<sha12>` otherwise, where `spec10` is the spec's
    /// [`fingerprint`](BuildSpec::fingerprint). Server ids never contain `_`, so a spec tag
    /// cannot equal another server's tag; and a server re-registered with another context or
    /// arguments never reuses a candidate built from the old ones. The tag still ends with the
    /// commit, which the CodeBuild buildspec checks against the checked-out tree.
    ///
    /// ```
    /// use toolshed_core::domain::{BuildSpec, CommitSha, ImageTag, ServerId};
    /// let (id, sha) = (ServerId::new("time").unwrap(), CommitSha::new("a".repeat(40)).unwrap());
    /// assert_eq!(ImageTag::for_build_spec(&id, &sha, &BuildSpec::default()), ImageTag::for_build(&id, &sha));
    /// let sub = BuildSpec { context: "servers/time".into(), ..BuildSpec::default() };
    /// let tag = ImageTag::for_build_spec(&id, &sha, &sub);
    /// assert!(tag.as_str().starts_with("build-time_") && tag.as_str().ends_with("-aaaaaaaaaaaa"));
    /// ```
    pub fn for_build_spec(server: &ServerId, commit: &CommitSha, build: &BuildSpec) -> Self {
        match build.fingerprint() {
            None => Self::for_build(server, commit),
            // 6 + 63 + 1 + 10 + 1 + 12 = 93 characters at most: always valid.
            Some(spec) => Self(format!(
                "{CANDIDATE_TAG_PREFIX}{}_{spec}-{}",
                server.as_str(),
                commit.short()
            )),
        }
    }

    /// The tag a verified image carries once its verification passed:
    /// `verified-<serverId>-<sha12>-<digest12>`. Verified tags never expire by count or age; the
    /// digest in the tag keeps it immutable-safe when the same commit is rebuilt into different
    /// bytes.
    ///
    /// ```
    /// use toolshed_core::domain::{CommitSha, ImageDigest, ImageTag, ServerId};
    /// let tag = ImageTag::verified(
    ///     &ServerId::new("time").unwrap(),
    ///     &CommitSha::new("a".repeat(40)).unwrap(),
    ///     &ImageDigest::new(format!("sha256:{}", "b".repeat(64))).unwrap(),
    /// );
    /// assert_eq!(tag.as_str(), "verified-time-aaaaaaaaaaaa-bbbbbbbbbbbb");
    /// assert!(tag.is_verified());
    /// ```
    pub fn verified(server: &ServerId, commit: &CommitSha, digest: &ImageDigest) -> Self {
        // 9 + 63 + 1 + 12 + 1 + 12 = 98 characters at most: always valid.
        Self(format!(
            "{VERIFIED_TAG_PREFIX}{}-{}-{}",
            server.as_str(),
            commit.short(),
            digest.short()
        ))
    }

    /// Whether this is a verified image's tag (see [`Self::verified`]).
    pub fn is_verified(&self) -> bool {
        self.0.starts_with(VERIFIED_TAG_PREFIX)
    }

    /// The tag string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ImageTag> for String {
    fn from(v: ImageTag) -> String {
        v.0
    }
}

impl TryFrom<String> for ImageTag {
    type Error = Error;
    fn try_from(v: String) -> Result<Self> {
        Self::new(v)
    }
}

/// Validates an image repository name: an optional registry host (with port) and lowercase
/// path components, no tag and no digest, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com/toolshed/mcp-servers`
/// or `127.0.0.1:5000/toolshed`.
pub fn validate_repository(raw: &str) -> Result<()> {
    let invalid = |why: &str| Err(Error::invalid("image_repository", format!("{raw:?} {why}")));
    if raw.is_empty() || raw.len() > 255 {
        return invalid("must be 1-255 characters");
    }
    if raw.contains('@') {
        return invalid("must not contain a digest");
    }
    let mut parts = raw.split('/').collect::<Vec<_>>();
    // A first component with '.' or ':' or equal to "localhost" is a registry host.
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
        {
            return invalid("has an invalid registry host");
        }
    }
    for p in parts {
        let ok = !p.is_empty()
            && p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        if !ok {
            return invalid("must be lowercase path components without a tag");
        }
    }
    Ok(())
}

/// A built image: repository, the tag it was pushed with, and the digest that tag resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageRef {
    repository: String,
    tag: ImageTag,
    digest: ImageDigest,
}

impl ImageRef {
    /// Builds a reference; the repository is validated.
    pub fn new(repository: impl Into<String>, tag: ImageTag, digest: ImageDigest) -> Result<Self> {
        let repository = repository.into();
        validate_repository(&repository)?;
        Ok(Self {
            repository,
            tag,
            digest,
        })
    }

    /// The repository, e.g. `…amazonaws.com/toolshed/mcp-servers`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag it was pushed with.
    pub fn tag(&self) -> &ImageTag {
        &self.tag
    }

    /// The digest.
    pub fn digest(&self) -> &ImageDigest {
        &self.digest
    }

    /// `repository:tag` — for humans and for the registry's tag listing; never what a runner runs.
    pub fn tagged(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }

    /// `repository@sha256:…` — the only form runners run: immune to tag moves.
    ///
    /// ```
    /// use toolshed_core::domain::{ImageDigest, ImageRef, ImageTag};
    /// let img = ImageRef::new(
    ///     "127.0.0.1:5000/toolshed",
    ///     ImageTag::new("time-aaaaaaaaaaaa").unwrap(),
    ///     ImageDigest::new(format!("sha256:{}", "0".repeat(64))).unwrap(),
    /// ).unwrap();
    /// assert_eq!(img.pinned(), format!("127.0.0.1:5000/toolshed@sha256:{}", "0".repeat(64)));
    /// ```
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pinned())
    }
}

/// The image a server was last verified with, and the commit it was built from. Only a completed
/// verification (build, digest, MCP check) produces one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedImage {
    /// The image.
    pub image: ImageRef,
    /// The commit it was built from.
    pub commit: CommitSha,
    /// When verification completed.
    pub verified_at: super::Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> ImageDigest {
        ImageDigest::new(format!("sha256:{}", "0123456789abcdef".repeat(4))).unwrap()
    }

    #[test]
    fn digests() {
        assert_eq!(digest().short(), "0123456789ab");
        for bad in [
            "",
            "sha256:",
            "sha512:0000",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "0".repeat(63)),
            &"0".repeat(64),
        ] {
            let err = ImageDigest::new(bad).unwrap_err().to_string();
            assert!(err.contains("sha256:<64"), "{bad}: {err}");
        }
    }

    #[test]
    fn tags() {
        assert!(ImageTag::new("v1.0_x-y").is_ok());
        assert!(ImageTag::new(".x").is_err());
        assert!(ImageTag::new("a:b").is_err());
        assert!(ImageTag::new("a".repeat(129)).is_err());
    }

    #[test]
    fn candidate_and_verified_tags_never_share_a_prefix() {
        let commit = CommitSha::new("c".repeat(40)).unwrap();
        let longest = ServerId::new("s".repeat(63)).unwrap();
        for server in [
            ServerId::new("time").unwrap(),
            ServerId::new("verified-x").unwrap(),
            longest,
        ] {
            let build = ImageTag::for_build(&server, &commit);
            let good = ImageTag::verified(&server, &commit, &digest());
            // Valid tags (at most 128 characters) for every server id.
            assert!(ImageTag::new(build.as_str()).is_ok(), "{build}");
            assert!(ImageTag::new(good.as_str()).is_ok(), "{good}");
            // A candidate rule (`build-`) never selects a verified tag and vice versa, whatever
            // the server id: the lifecycle rules cannot confuse them.
            assert!(build.as_str().starts_with(CANDIDATE_TAG_PREFIX));
            assert!(!build.as_str().starts_with(VERIFIED_TAG_PREFIX), "{build}");
            assert!(!build.is_verified());
            assert!(good.as_str().starts_with(VERIFIED_TAG_PREFIX));
            assert!(!good.as_str().starts_with(CANDIDATE_TAG_PREFIX), "{good}");
            assert!(good.is_verified());
            assert!(good.as_str().ends_with(digest().short()));
        }
    }

    #[test]
    fn spec_tags_are_distinct_and_valid() {
        let commit = CommitSha::new("c".repeat(40)).unwrap();
        let spec = |ctx: &str| {
            BuildSpec {
                context: ctx.into(),
                ..BuildSpec::default()
            }
            .checked()
            .unwrap()
        };
        let longest = ServerId::new("s".repeat(63)).unwrap();
        let a = ImageTag::for_build_spec(&longest, &commit, &spec("servers/a"));
        let b = ImageTag::for_build_spec(&longest, &commit, &spec("servers/b"));
        assert_ne!(a, b);
        for tag in [&a, &b] {
            assert!(ImageTag::new(tag.as_str()).is_ok(), "{tag}");
            assert!(tag.as_str().starts_with(CANDIDATE_TAG_PREFIX) && !tag.is_verified());
            assert!(tag.as_str().ends_with(commit.short()));
        }
        // Never another server's default tag, whatever its id.
        let id = ServerId::new("time").unwrap();
        let sub = ImageTag::for_build_spec(&id, &commit, &spec("servers/a"));
        let fp = spec("servers/a").fingerprint().unwrap();
        let lookalike = ServerId::new(format!("time-{fp}")).unwrap();
        assert_ne!(sub, ImageTag::for_build(&lookalike, &commit));
        assert_eq!(
            ImageTag::for_build_spec(&id, &commit, &spec(".")),
            ImageTag::for_build(&id, &commit)
        );
    }

    #[test]
    fn repositories() {
        for ok in [
            "toolshed",
            "toolshed/mcp-servers",
            "127.0.0.1:5000/toolshed",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/toolshed/mcp-servers",
            "localhost/x",
        ] {
            assert!(validate_repository(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Toolshed", "x:tag", "x@sha256:00", "a//b", "/a"] {
            assert!(validate_repository(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pinned_form() {
        let img = ImageRef::new("r/x", ImageTag::new("t").unwrap(), digest()).unwrap();
        assert_eq!(img.pinned(), format!("r/x@{}", digest()));
        assert_eq!(img.tagged(), "r/x:t");
    }
}
