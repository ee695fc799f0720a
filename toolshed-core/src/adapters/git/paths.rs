//! Resolving a build spec's context and Dockerfile inside a fetched commit, following symbolic
//! links the way a checked-out tree would, and refusing any that lead outside the repository.
//!
//! The walk reads the commit's trees (`git ls-tree`), never a working tree: nothing of the
//! untrusted repository is written to disk, so a link cannot be followed by accident.

use std::collections::VecDeque;

use super::cli::Checkout;
use crate::domain::BuildSpec;
use crate::error::{Error, Result};

/// Most symbolic links followed while resolving one path (Linux's own limit).
const MAX_LINK_HOPS: usize = 40;
/// Longest symbolic link target read.
const MAX_LINK_TARGET: usize = 4096;

/// A build spec resolved inside a commit: no symbolic link left on either path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedBuild {
    /// The context folder from the repository root; `None` for the root.
    pub context: Option<String>,
    /// The Dockerfile, relative to the context (always inside it).
    pub dockerfile: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Folder,
    File,
}

impl Checkout {
    /// Resolves `spec`'s context (a folder) and Dockerfile (a file inside the context) in the
    /// commit, following symbolic links.
    ///
    /// # Errors
    /// [`Error::BuildPathEscape`] when a link leads outside the repository (an absolute target,
    /// or `..` above the root), or the Dockerfile resolves outside the context;
    /// `InvalidInput` (field `build.context` / `build.dockerfile`) for a path that does not
    /// exist, is not a folder / a file, is a submodule, or loops through more than 40 links;
    /// `Backend` when git fails.
    pub async fn resolve_build(&self, spec: &BuildSpec) -> Result<ResolvedBuild> {
        let context = self
            .resolve(
                "build.context",
                spec.context_dir().unwrap_or(""),
                Kind::Folder,
            )
            .await?;
        let registered = spec.dockerfile_in_repo();
        let dockerfile = self
            .resolve("build.dockerfile", &registered, Kind::File)
            .await?;
        let inside = if context.is_empty() {
            Some(dockerfile.as_str())
        } else {
            dockerfile.strip_prefix(&format!("{context}/"))
        };
        match inside {
            Some(rel) => Ok(ResolvedBuild {
                dockerfile: rel.to_owned(),
                context: (!context.is_empty()).then_some(context),
            }),
            None => Err(Error::BuildPathEscape {
                field: "build.dockerfile",
                path: registered,
                scope: "build context",
                target: dockerfile,
            }),
        }
    }

    /// Walks `path` from the root component by component; a link's target replaces it (from
    /// the link's folder). Returns the resolved path (`""` for the root).
    async fn resolve(&self, field: &'static str, path: &str, want: Kind) -> Result<String> {
        let invalid = |why: String| Err(Error::invalid(field, format!("{path:?} {why}")));
        let mut todo: VecDeque<String> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .map(str::to_owned)
            .collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut kind = Kind::Folder;
        let mut hops = 0;
        let mut last_link: Option<String> = None;
        while let Some(name) = todo.pop_front() {
            if kind == Kind::File {
                return invalid(format!("is not a folder at {}", resolved.join("/")));
            }
            if name == ".." {
                // Only link targets bring `..` (registered paths have none): one too many
                // leaves the repository.
                if resolved.pop().is_none() {
                    return Err(Error::BuildPathEscape {
                        field,
                        path: path.to_owned(),
                        scope: "repository",
                        target: last_link.unwrap_or_else(|| path.to_owned()),
                    });
                }
                continue;
            }
            let entries = self.tree_entries(&resolved.join("/")).await?;
            let Some((mode, object)) = entries.get(&name) else {
                return invalid(format!(
                    "does not exist at commit {} (no {name:?} in {:?})",
                    self.commit().short(),
                    if resolved.is_empty() {
                        ".".to_owned()
                    } else {
                        resolved.join("/")
                    }
                ));
            };
            match mode.as_str() {
                "040000" => {
                    resolved.push(name);
                    kind = Kind::Folder;
                }
                "100644" | "100755" => {
                    resolved.push(name);
                    kind = Kind::File;
                }
                "120000" => {
                    hops += 1;
                    if hops > MAX_LINK_HOPS {
                        return invalid(format!(
                            "goes through more than {MAX_LINK_HOPS} symbolic links"
                        ));
                    }
                    let target = self.blob(object, MAX_LINK_TARGET).await?;
                    let target = String::from_utf8_lossy(&target).into_owned();
                    if target.starts_with('/') {
                        return Err(Error::BuildPathEscape {
                            field,
                            path: path.to_owned(),
                            scope: "repository",
                            target,
                        });
                    }
                    for part in target.split('/').rev() {
                        if !part.is_empty() && part != "." {
                            todo.push_front(part.to_owned());
                        }
                    }
                    last_link = Some(target);
                }
                "160000" => return invalid(format!("crosses the submodule {name:?}")),
                other => return invalid(format!("has an entry of unknown mode {other}")),
            }
        }
        match (want, kind) {
            (Kind::Folder, Kind::File) => invalid("is a file, not a folder".to_owned()),
            (Kind::File, Kind::Folder) => invalid("is a folder, not a file".to_owned()),
            _ => Ok(resolved.join("/")),
        }
    }
}
