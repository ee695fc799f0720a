//! Importing a server from its MCP Registry description (`server.json`).
//!
//! The document is untrusted: [`ServerManifest`] checks every field before anything is stored.
//! What an import registers depends on the package type (see [`ServerOrigin`]):
//! - `pypi` / `npm`: a server whose verification builds a generated Dockerfile that installs the
//!   package at its exact version (no repository is read);
//! - `oci`: a server whose verification runs the published image by digest, without a build (a
//!   reference with only a tag is resolved to its digest here, once, and recorded pinned);
//! - remote: a server someone else runs, registered with no build and no image; verification
//!   is one MCP handshake at its https URL through the deployment's egress policy (see
//!   [`McpProbe::probe_remote`](crate::ports::McpProbe::probe_remote)), and it is never
//!   launched here (`NotLaunchable`). Its declared headers are its settings.

use tracing::info;

use super::Toolshed;
use crate::domain::server_json::{PackageChoice, PackageSource, ServerManifest};
use crate::domain::{
    check_remote_url, GitRef, ImageTag, OciReference, RepoUrl, RepoUrlPolicy, Server, ServerId,
    ServerOrigin, ServerRegistration,
};
use crate::error::{Error, Result};

/// Where an imported server's `repo` points when its `server.json` names no repository this
/// deployment accepts: the registry's page of the server (never cloned: imported servers are
/// not built from a repository).
pub const REGISTRY_SITE: &str = "https://registry.modelcontextprotocol.io/";

/// What to import from a `server.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Which package or remote (the preferred package by default).
    pub choice: PackageChoice,
    /// The server id (by default made from the registry name).
    pub id: Option<ServerId>,
}

/// What an import registered.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The new, unverified server.
    pub server: Server,
    /// What the import left out (e.g. runtime arguments this host decides itself).
    pub notes: Vec<String>,
}

impl Toolshed {
    /// Registers the server a `server.json` describes (unverified, like
    /// [`Self::register_server`]); verify it as any other server.
    ///
    /// # Errors
    /// `InvalidInput { field: "server_json" }` for a document or entry this host does not read
    /// or run (a schema version outside the supported ones is named);
    /// `InvalidInput { field: "url" }` for a remote URL that is not https without credentials;
    /// `InvalidInput { field: "image" }` for an `oci` tag that does not exist or cannot be
    /// resolved here; `AlreadyExists` if the id is taken.
    pub async fn import_server(&self, document: &[u8], options: ImportOptions) -> Result<Imported> {
        let manifest = ServerManifest::parse(document)?;
        let plan = manifest.plan(options.choice)?;
        let source = match plan.source.clone() {
            PackageSource::Remote { url } => {
                let parsed = url::Url::parse(&url)
                    .map_err(|_| Error::invalid("url", "the remote URL does not parse"))?;
                check_remote_url(&parsed)?;
                PackageSource::Remote { url }
            }
            PackageSource::Oci { reference } => PackageSource::Oci {
                reference: self.pin_image(&reference).await?,
            },
            other => other,
        };
        // The repository the document names, when this deployment accepts it (shown to
        // people, never cloned); else the registry's page of the server.
        let named = manifest
            .repository
            .as_ref()
            .and_then(|(url, _)| RepoUrl::parse(url.as_str(), self.config.repo_policy).ok());
        let repo = match named {
            Some(repo) => repo,
            None => RepoUrl::parse(
                &format!("{REGISTRY_SITE}{}", plan.registry_name),
                RepoUrlPolicy::HTTPS_ONLY,
            )?,
        };
        let registration = ServerRegistration {
            id: options.id.unwrap_or(plan.server_id),
            repo,
            // The version, for people reading the record; never resolved (the origin's
            // fingerprint stands for the commit).
            git_ref: GitRef::new(&plan.version).unwrap_or_else(|_| GitRef::main()),
            transport: plan.transport,
            resources: Default::default(),
            description: Some(plan.description),
            language: None,
            build: Default::default(),
            settings: plan.settings,
            origin: ServerOrigin::Imported {
                registry_name: plan.registry_name,
                source,
            },
        };
        let server = self.register_server(registration).await?;
        info!(server = %server.id, origin = ?server.origin, "server imported from server.json");
        Ok(Imported {
            server,
            notes: plan.notes,
        })
    }

    /// The reference pinned by digest: as given when it has one, else its tag resolved once.
    async fn pin_image(&self, reference: &str) -> Result<String> {
        let parsed = OciReference::parse(reference)?;
        if parsed.digest.is_some() {
            return Ok(reference.to_owned());
        }
        let tag = parsed.tag.clone().unwrap_or_else(|| "latest".to_owned());
        ImageTag::new(tag.as_str())?;
        let digest = self
            .ports
            .images
            .resolve_published(&parsed.repository, &tag)
            .await?
            .ok_or_else(|| {
                Error::invalid(
                    "image",
                    format!("{}:{tag} does not exist in its registry", parsed.repository),
                )
            })?;
        Ok(parsed.pinned_text(&digest))
    }
}
