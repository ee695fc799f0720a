//! Where a server's code comes from: a git repository (registered servers) or a published
//! package, image or remote endpoint (servers imported from a `server.json`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::server_json::{ImportPlan, PackageBuildSettings, PackageSource};
use super::{CommitSha, ImageDigest, Server};
use crate::error::{Error, Result};

/// Where a server's code comes from. Records written before imports existed load [`Self::Git`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerOrigin {
    /// The server's `repo` at its `git_ref`, built from its Dockerfile (the default).
    #[default]
    Git,
    /// Imported from a `server.json`: the registry name and the package, image or remote.
    Imported {
        /// The MCP Registry name (`io.github.owner/server`).
        registry_name: String,
        /// What was imported (for `oci`, the reference pinned by digest).
        source: PackageSource,
    },
}

impl ServerOrigin {
    /// Whether this is a git repository's server.
    pub fn is_git(&self) -> bool {
        matches!(self, ServerOrigin::Git)
    }

    /// The URL of an imported remote (a server someone else runs), if this is one.
    pub fn remote_url(&self) -> Option<&str> {
        match self.package() {
            Some(PackageSource::Remote { url }) => Some(url),
            _ => None,
        }
    }

    /// The imported source, if any.
    pub fn package(&self) -> Option<&PackageSource> {
        match self {
            ServerOrigin::Git => None,
            ServerOrigin::Imported { source, .. } => Some(source),
        }
    }

    /// What stands for a commit for an imported server: the first 40 hex digits of the SHA-256
    /// of `registryType NUL identifier NUL version` (or of the pinned image reference, or of
    /// the remote URL). The same package at the same version always has the same fingerprint,
    /// so a re-verification of an unchanged package is skipped exactly like an unchanged
    /// commit, and a new version is a new "commit" with its own image tag. `None` for git.
    pub fn fingerprint(&self) -> Option<CommitSha> {
        let source = self.package()?;
        let text = match source {
            PackageSource::Pypi { package, version } | PackageSource::Npm { package, version } => {
                format!("{}\0{package}\0{version}", source.registry_type())
            }
            PackageSource::Oci { reference } => format!("oci\0{reference}"),
            PackageSource::Remote { url } => format!("remote\0{url}"),
        };
        let hex = hex::encode(Sha256::digest(text.as_bytes()));
        CommitSha::new(&hex[..40]).ok()
    }
}

/// The generated Dockerfile of an imported `pypi` or `npm` server (see
/// [`ImportPlan::dockerfile`]); `None` for git servers, images and remotes.
pub fn package_dockerfile(server: &Server, build: &PackageBuildSettings) -> Option<String> {
    let ServerOrigin::Imported {
        registry_name,
        source,
    } = &server.origin
    else {
        return None;
    };
    let plan = ImportPlan {
        server_id: server.id.clone(),
        registry_name: registry_name.clone(),
        version: String::new(),
        description: String::new(),
        source: source.clone(),
        transport: server.transport.clone(),
        settings: Vec::new(),
        notes: Vec::new(),
    };
    plan.dockerfile(build)
}

/// An `oci` reference split into its repository, optional tag and digest:
/// `registry/repo[:tag]@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciReference {
    /// `registry/repository`.
    pub repository: String,
    /// The tag, when the reference carries one.
    pub tag: Option<String>,
    /// The digest, when the reference is pinned.
    pub digest: Option<ImageDigest>,
}

impl OciReference {
    /// Splits a reference already checked by [`ServerManifest::plan`](super::server_json::ServerManifest::plan).
    ///
    /// # Errors
    /// `InvalidInput { field: "image" }` for a reference that does not split.
    pub fn parse(reference: &str) -> Result<Self> {
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => (name, Some(ImageDigest::new(digest)?)),
            None => (reference, None),
        };
        // A tag is after the last ':' of the last path component (a registry port is not).
        let last_slash = name.rfind('/').unwrap_or(0);
        let (repository, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (
                &name[..last_slash + i],
                Some(name[last_slash + i + 1..].to_owned()),
            ),
            None => (name, None),
        };
        super::validate_repository(repository).map_err(|_| {
            Error::invalid("image", format!("{reference:?} has no valid repository"))
        })?;
        Ok(Self {
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// `repository[:tag]@digest`: the reference recorded once the digest is known.
    pub fn pinned_text(&self, digest: &ImageDigest) -> String {
        match &self.tag {
            Some(tag) => format!("{}:{tag}@{digest}", self.repository),
            None => format!("{}@{digest}", self.repository),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pypi(version: &str) -> ServerOrigin {
        ServerOrigin::Imported {
            registry_name: "io.github.x/time".into(),
            source: PackageSource::Pypi {
                package: "mcp-server-time".into(),
                version: version.into(),
            },
        }
    }

    #[test]
    fn the_fingerprint_is_the_package_pin() {
        assert_eq!(ServerOrigin::Git.fingerprint(), None);
        let a = pypi("2026.10.19").fingerprint().unwrap();
        assert_eq!(a, pypi("2026.10.19").fingerprint().unwrap());
        assert_ne!(a, pypi("2026.10.20").fingerprint().unwrap());
        assert_eq!(a.as_str().len(), 40);
    }

    #[test]
    fn old_records_are_git() {
        let origin: ServerOrigin = serde_json::from_str(r#"{"kind":"git"}"#).unwrap();
        assert!(origin.is_git());
        let round: ServerOrigin =
            serde_json::from_str(&serde_json::to_string(&pypi("1.0")).unwrap()).unwrap();
        assert_eq!(round, pypi("1.0"));
    }

    #[test]
    fn references_split_with_ports_tags_and_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = OciReference::parse(&format!("127.0.0.1:5000/x/time:1.0@{d}")).unwrap();
        assert_eq!(r.repository, "127.0.0.1:5000/x/time");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.digest.as_ref().unwrap().as_str(), d);
        let r = OciReference::parse("127.0.0.1:5000/x/time:2").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000/x/time", Some("2"))
        );
        assert_eq!(r.digest, None);
        let r = OciReference::parse(&format!("ghcr.io/x/y@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(
            r.pinned_text(r.digest.as_ref().unwrap()),
            format!("ghcr.io/x/y@{d}")
        );
    }
}
