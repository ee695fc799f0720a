//! Where built images live: an OCI distribution registry, or the engine's own store.

use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;

use super::error::DockerError;
use crate::domain::{validate_repository, ImageDigest, ImageRef, ImageTag};
use crate::error::{EntityKind, Error, Result};
use crate::ports::ImageStore;

/// Media types a manifest HEAD accepts: Docker v2 and OCI, single manifests and indexes, so the
/// digest returned is the one the engine records when it pushes.
const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json";

/// An [`ImageStore`] on an OCI distribution registry (Debian's `docker-registry`, any
/// distribution-compatible registry without authentication).
#[derive(Debug, Clone)]
pub struct RegistryImageStore {
    /// `host:port`.
    registry: String,
    /// Repository name inside the registry, e.g. `toolshed`.
    name: String,
    base_url: String,
    http: reqwest::Client,
}

impl RegistryImageStore {
    /// A store for `host:port/name`. Loopback registries are spoken to over plain HTTP (as the
    /// engine does for 127.0.0.0/8), others over HTTPS.
    ///
    /// # Errors
    /// `InvalidInput` for a bad repository name; `Backend` if the HTTP client cannot be built.
    pub fn new(registry: impl Into<String>, name: impl Into<String>) -> Result<Self> {
        let registry = registry.into();
        let name = name.into();
        validate_repository(&format!("{registry}/{name}"))?;
        let host = registry.split(':').next().unwrap_or_default();
        let scheme = if host == "localhost" || host.starts_with("127.") {
            "http"
        } else {
            "https"
        };
        if scheme == "https" && !cfg!(feature = "tls") {
            return Err(Error::invalid(
                "registry",
                format!(
                    "{registry} is reached over HTTPS, which needs toolshed-core's `tls` feature \
                     (only 127.0.0.1 and localhost registries are spoken to in plain HTTP)"
                ),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| Error::backend("registry", "client", None, false, e))?;
        Ok(Self {
            base_url: format!("{scheme}://{registry}"),
            registry,
            name,
            http,
        })
    }

    async fn head_manifest(&self, reference: &str) -> Result<Option<String>> {
        let url = format!("{}/v2/{}/manifests/{reference}", self.base_url, self.name);
        self.head_manifest_at(url, reference).await
    }

    async fn head_manifest_at(&self, url: String, reference: &str) -> Result<Option<String>> {
        let resp = self
            .http
            .head(&url)
            .header("Accept", MANIFEST_ACCEPT)
            .send()
            .await
            .map_err(|e| {
                Error::backend(
                    "registry",
                    "HeadManifest",
                    Some(reference.to_owned()),
                    true,
                    DockerError::Registry(e.to_string()),
                )
            })?;
        let status = resp.status().as_u16();
        match status {
            200 => Ok(Some(
                resp.headers()
                    .get("Docker-Content-Digest")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
            )),
            404 => Ok(None),
            401 | 403 => Err(Error::PermissionDenied {
                backend: "registry",
                operation: "HeadManifest",
                detail: format!("{url} answered {status}"),
            }),
            s => Err(Error::backend(
                "registry",
                "HeadManifest",
                Some(reference.to_owned()),
                s >= 500 || s == 429,
                DockerError::Registry(format!("{url} answered {s}")),
            )),
        }
    }
}

#[async_trait]
impl ImageStore for RegistryImageStore {
    fn repository(&self) -> String {
        format!("{}/{}", self.registry, self.name)
    }

    async fn resolve_tag(&self, tag: &ImageTag) -> Result<Option<ImageRef>> {
        match self.head_manifest(tag.as_str()).await? {
            None => Ok(None),
            Some(digest) => {
                let digest = ImageDigest::new(digest).map_err(|e| {
                    Error::backend(
                        "registry",
                        "HeadManifest",
                        Some(tag.to_string()),
                        false,
                        DockerError::Registry(format!("bad Docker-Content-Digest: {e}")),
                    )
                })?;
                Ok(Some(ImageRef::new(self.repository(), tag.clone(), digest)?))
            }
        }
    }

    async fn contains(&self, image: &ImageRef) -> Result<bool> {
        Ok(self.head_manifest(image.digest().as_str()).await?.is_some())
    }

    /// A HEAD of the manifest at the image's own registry (without credentials: public images
    /// only), over HTTPS except for a loopback registry, like this store's own. The registry's
    /// answer is untrusted: a digest that is not `sha256:<64 hex>` is an error.
    async fn resolve_published(&self, repository: &str, tag: &str) -> Result<Option<ImageDigest>> {
        validate_repository(repository)?;
        ImageTag::new(tag)?;
        let (host, path) = match repository.split_once('/') {
            Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => (host, path),
            _ => ("registry-1.docker.io", repository),
        };
        let bare = host.split(':').next().unwrap_or_default();
        let scheme = if bare == "localhost" || bare.starts_with("127.") {
            "http"
        } else {
            "https"
        };
        let url = format!("{scheme}://{host}/v2/{path}/manifests/{tag}");
        match self.head_manifest_at(url, tag).await? {
            None => Ok(None),
            Some(digest) => ImageDigest::new(digest).map(Some).map_err(|e| {
                Error::backend(
                    "registry",
                    "HeadManifest",
                    Some(format!("{repository}:{tag}")),
                    false,
                    DockerError::Registry(format!("bad Docker-Content-Digest: {e}")),
                )
            }),
        }
    }

    /// Puts the candidate's manifest again under the verified tag (the distribution API cannot
    /// drop a single tag, so the candidate tag stays; a local registry has no lifecycle rules).
    async fn promote(&self, candidate: &ImageRef, verified: &ImageTag) -> Result<ImageRef> {
        let err = |op: &'static str, retryable: bool, msg: String| {
            Error::backend(
                "registry",
                op,
                Some(verified.to_string()),
                retryable,
                DockerError::Registry(msg),
            )
        };
        if let Some(existing) = self.head_manifest(verified.as_str()).await? {
            if existing == candidate.digest().as_str() {
                return ImageRef::new(
                    self.repository(),
                    verified.clone(),
                    candidate.digest().clone(),
                );
            }
            return Err(Error::AlreadyExists {
                kind: EntityKind::Image,
                id: format!("{verified} (names {existing})"),
            });
        }
        let digest = candidate.digest().as_str();
        let url = format!("{}/v2/{}/manifests/{digest}", self.base_url, self.name);
        let resp = self
            .http
            .get(&url)
            .header("Accept", MANIFEST_ACCEPT)
            .send()
            .await
            .map_err(|e| err("GetManifest", true, e.to_string()))?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Err(Error::not_found(EntityKind::Image, candidate)),
            s => return Err(err("GetManifest", s >= 500, format!("{url} answered {s}"))),
        }
        let media_type = resp
            .headers()
            .get("Content-Type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/vnd.docker.distribution.manifest.v2+json")
            .to_owned();
        let manifest = resp
            .bytes()
            .await
            .map_err(|e| err("GetManifest", true, e.to_string()))?;
        let url = format!("{}/v2/{}/manifests/{verified}", self.base_url, self.name);
        let resp = self
            .http
            .put(&url)
            .header("Content-Type", media_type)
            .body(manifest)
            .send()
            .await
            .map_err(|e| err("PutManifest", true, e.to_string()))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(err(
                "PutManifest",
                status >= 500,
                format!("{url} answered {status}"),
            ));
        }
        ImageRef::new(
            self.repository(),
            verified.clone(),
            candidate.digest().clone(),
        )
    }
}

/// An [`ImageStore`] on the engine's own image store, for a machine without a registry.
///
/// The digest is the image id (the digest of its configuration), which pins content exactly as a
/// manifest digest does; [`super::DockerTaskRunner`] runs such images by id.
#[derive(Debug, Clone)]
pub struct EngineImageStore {
    docker: Docker,
    repository: String,
}

impl EngineImageStore {
    /// A store for images tagged `repository:<tag>` in the engine (e.g. `toolshed/servers`).
    ///
    /// # Errors
    /// `InvalidInput` for a bad repository name.
    pub fn new(docker: Docker, repository: impl Into<String>) -> Result<Self> {
        let repository = repository.into();
        validate_repository(&repository)?;
        Ok(Self { docker, repository })
    }
}

#[async_trait]
impl ImageStore for EngineImageStore {
    fn repository(&self) -> String {
        self.repository.clone()
    }

    async fn resolve_tag(&self, tag: &ImageTag) -> Result<Option<ImageRef>> {
        let name = format!("{}:{}", self.repository, tag);
        match self.docker.inspect_image(&name).await {
            Ok(img) => {
                let id = img.id.unwrap_or_default();
                let digest = ImageDigest::new(id)?;
                Ok(Some(ImageRef::new(&self.repository, tag.clone(), digest)?))
            }
            Err(e) => {
                let e = DockerError::from(e);
                if e.status() == Some(404) {
                    Ok(None)
                } else {
                    Err(e.into_error("InspectImage", Some(name)))
                }
            }
        }
    }

    /// Tags the image (by id) `repository:verified`; the candidate tag stays (the engine's
    /// store has no lifecycle rules).
    async fn promote(&self, candidate: &ImageRef, verified: &ImageTag) -> Result<ImageRef> {
        if let Some(existing) = self.resolve_tag(verified).await? {
            if existing.digest() == candidate.digest() {
                return Ok(existing);
            }
            return Err(Error::AlreadyExists {
                kind: EntityKind::Image,
                id: format!("{verified} (names {})", existing.digest()),
            });
        }
        let opts = bollard::query_parameters::TagImageOptionsBuilder::new()
            .repo(&self.repository)
            .tag(verified.as_str())
            .build();
        match self
            .docker
            .tag_image(candidate.digest().as_str(), Some(opts))
            .await
        {
            Ok(()) => ImageRef::new(
                &self.repository,
                verified.clone(),
                candidate.digest().clone(),
            ),
            Err(e) => {
                let e = DockerError::from(e);
                if e.status() == Some(404) {
                    Err(Error::not_found(EntityKind::Image, candidate))
                } else {
                    Err(e.into_error("TagImage", Some(verified.to_string())))
                }
            }
        }
    }

    async fn contains(&self, image: &ImageRef) -> Result<bool> {
        match self.docker.inspect_image(image.digest().as_str()).await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = DockerError::from(e);
                if e.status() == Some(404) {
                    Ok(false)
                } else {
                    Err(e.into_error("InspectImage", Some(image.to_string())))
                }
            }
        }
    }
}
