//! Fixtures of the workspace's own tests and examples: the static MCP binaries built from this
//! workspace, and a git repository holding the example server with a `FROM scratch` Dockerfile.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::domain::{RepoUrl, RepoUrlPolicy};
use crate::error::{Error, Result};

/// The target triple the static binaries are built for (`--target` keeps `+crt-static` off
/// proc-macros and build scripts).
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The Dockerfile of the example server image.
pub const EXAMPLE_DOCKERFILE: &str = "FROM scratch\nCOPY server /server\nEXPOSE 8000\n\
    ENTRYPOINT [\"/server\", \"--port\", \"8000\"]\n";

/// The workspace root (the parent of this package's manifest directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Where the static build of the workspace binary `package` lands
/// (`<target>/x86_64-unknown-linux-gnu/release/<package>`).
pub fn static_binary_path(package: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    target.join(STATIC_TARGET).join("release").join(package)
}

/// The static build of the workspace binary `package` (`mcp-example-server`,
/// `mcp-stdio-bridge`), built with cargo when missing. The test command builds both before the
/// tests, so this is a no-op there. A build found on disk is used as it is, even if older than
/// the sources: tests of the binary's own behaviour use [`build_static_binary`].
///
/// # Errors
/// `Backend` when cargo fails.
pub fn ensure_static_binary(package: &str) -> Result<PathBuf> {
    let path = static_binary_path(package);
    if path.exists() {
        return Ok(path);
    }
    build_static_binary(package)
}

/// The static build of the workspace binary `package`, brought up to date with cargo first (a
/// no-op of about a second when nothing changed). Unlike [`ensure_static_binary`], never an older
/// build of another checkout sharing the target directory: tests that assert what the binary
/// itself does use this one.
///
/// # Errors
/// `Backend` when cargo fails.
pub fn build_static_binary(package: &str) -> Result<PathBuf> {
    let path = static_binary_path(package);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let fail = |reason: String| {
        Error::backend(
            "cargo",
            "build_static_binary",
            Some(package.to_owned()),
            false,
            reason,
        )
    };
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .args([
            "build",
            "--release",
            "-p",
            package,
            "--target",
            STATIC_TARGET,
        ])
        .status()
        .map_err(|e| fail(format!("cannot run cargo: {e}")))?;
    if !status.success() || !path.exists() {
        return Err(fail(format!(
            "cargo build failed ({status}); see its output above"
        )));
    }
    Ok(path)
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let fail = |reason: String| Error::backend("git", "fixture_repository", None, false, reason);
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Toolshed",
            "-c",
            "user.email=toolshed@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        // Fixed dates: the same content gives the same commit, so a second run can skip.
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .map_err(|e| fail(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Creates (or updates) a git repository at `dir` holding `binary` as `server` and `dockerfile`,
/// and returns its `file://` URL. Same binary, same commit.
///
/// # Errors
/// `Backend` when files cannot be written or git fails.
pub fn write_server_repo(dir: &Path, binary: &Path, dockerfile: &str) -> Result<RepoUrl> {
    write_server_repo_with_runtime(dir, binary, &[], dockerfile)
}

/// The Dockerfile of an image made from a dynamically linked executable that serves the example
/// server with `serve-example` (the quickstart), and the files [`dynamic_runtime_files`] lists,
/// which [`write_server_repo_with_runtime`] puts under `rootfs/`.
pub const DYNAMIC_EXAMPLE_DOCKERFILE: &str = "FROM scratch\nCOPY rootfs/ /\nCOPY server /server\n\
    EXPOSE 8000\nENTRYPOINT [\"/server\", \"serve-example\", \"--port\", \"8000\"]\n";

/// The shared libraries and the program loader a dynamically linked executable needs, as `ldd`
/// lists them (absolute paths on this machine); empty for a static executable. Copied to the same
/// paths in a `FROM scratch` image, they let the executable run there without a second,
/// statically linked build.
///
/// # Errors
/// `Backend` when `ldd` cannot be run.
pub fn dynamic_runtime_files(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output().map_err(|e| {
        Error::backend(
            "ldd",
            "runtime_files",
            None,
            false,
            format!("cannot run ldd: {e}"),
        )
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)`;
    // `linux-vdso.so.1 (0x…)` is the kernel's and has no file.
    let mut files: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, target)) => target.split_whitespace().next(),
                None => line.split_whitespace().next(),
            }?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// As [`write_server_repo`], plus each of `runtime_files` under `rootfs/` at its absolute path
/// (see [`dynamic_runtime_files`]).
///
/// # Errors
/// `Backend` when files cannot be written or git fails.
pub fn write_server_repo_with_runtime(
    dir: &Path,
    binary: &Path,
    runtime_files: &[PathBuf],
    dockerfile: &str,
) -> Result<RepoUrl> {
    let io = |what: &str, e: std::io::Error| {
        Error::backend(
            "fs",
            "fixture_repository",
            None,
            false,
            format!("{what}: {e}"),
        )
    };
    std::fs::create_dir_all(dir).map_err(|e| io("create the directory", e))?;
    if !dir.join(".git").exists() {
        git(dir, &["init", "-q", "-b", "main"])?;
    }
    for file in runtime_files {
        let relative = file.strip_prefix("/").unwrap_or(file);
        let target = dir.join("rootfs").join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("create rootfs/", e))?;
        }
        // Follows symlinks: the image gets the library itself at the path the loader looks at.
        std::fs::copy(file, &target).map_err(|e| io("copy a runtime library", e))?;
    }
    let server = dir.join("server");
    std::fs::copy(binary, &server).map_err(|e| io("copy the server binary", e))?;
    // Debug info makes the image ~10x larger; strip when the tool is there (deterministic).
    if let Err(e) = Command::new("strip").arg(&server).status() {
        tracing::debug!(error = %e, "strip unavailable; keeping the unstripped binary");
    }
    std::fs::write(dir.join("Dockerfile"), dockerfile)
        .map_err(|e| io("write the Dockerfile", e))?;
    std::fs::write(
        dir.join("README.md"),
        "# Example MCP server\n\nA small MCP server with deterministic demo tools: echo, add \
         and word_count. Built from scratch with a static binary.\n",
    )
    .map_err(|e| io("write the README", e))?;
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"mcp-example-server\"\nversion = \"0.1.0\"\n",
    )
    .map_err(|e| io("write the manifest", e))?;
    git(dir, &["add", "-A"])?;
    if !git(dir, &["status", "--porcelain"])?.is_empty()
        || git(dir, &["rev-parse", "--verify", "-q", "HEAD"]).is_err()
    {
        git(dir, &["commit", "-q", "-m", "example MCP server"])?;
    }
    let canonical = dir
        .canonicalize()
        .map_err(|e| io("resolve the directory", e))?;
    RepoUrl::parse(
        &format!("file://{}", canonical.display()),
        RepoUrlPolicy::ALLOW_FILE,
    )
}
