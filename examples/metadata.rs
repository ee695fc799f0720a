//! Generates metadata (description, language, tool docs) for a local repository directory and
//! prints it as JSON. No git needed: README, files, manifests and the Dockerfile are read from
//! the directory.
//!
//! ```text
//! cargo run --example metadata -- [DIR]          # DIR defaults to the current directory
//! ```
//!
//! Environment:
//! - `OPENAI_API_KEY`: when set, metadata comes from the OpenAI API; when unset, from the
//!   offline heuristic of `toolshed-core`.
//! - `TOOLSHED_OPENAI_MODEL` (default `gpt-4o-mini`), `TOOLSHED_OPENAI_BASE_URL` (default
//!   `https://api.openai.com/v1`, e.g. `http://127.0.0.1:11434/v1` for Ollama), `OPENAI_ORG_ID`,
//!   `OPENAI_PROJECT_ID`: see `toolshed-openai`.
//! - `TOOLSHED_TOOLS_JSON`: optional path to a JSON array of MCP tools
//!   (`[{"name": …, "description": …, "input_schema": {…}}]`) to document, e.g. from a probe.
//! - `RUST_LOG`: log filter; `toolshed_openai=debug` also prints the prompt.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use toolshed_core::adapters::heuristic::HeuristicMetadataGenerator;
use toolshed_core::domain::{CommitSha, McpTool, RepoSnapshot, RepoUrl, RepoUrlPolicy, ServerId};
use toolshed_core::ports::{MetadataGenerator, MetadataRequest};
use toolshed_openai::OpenAiMetadataGenerator;

const MAX_FILES: usize = 2_000;
const MAX_README_BYTES: usize = 64 * 1024;
const MAX_MANIFEST_BYTES: usize = 16 * 1024;
const SKIPPED_DIRS: [&str; 8] = [
    "target",
    "node_modules",
    "venv",
    "__pycache__",
    "dist",
    "build",
    "vendor",
    "site-packages",
];
const MANIFESTS: [&str; 14] = [
    "Cargo.toml",
    "package.json",
    "tsconfig.json",
    "pyproject.toml",
    "requirements.txt",
    "setup.py",
    "go.mod",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "Gemfile",
    "composer.json",
    "deno.json",
    "mix.exs",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let dir = dir
        .canonicalize()
        .with_context(|| format!("reading {}", dir.display()))?;
    let request = request_from_dir(&dir)?;

    let metadata = if std::env::var_os("OPENAI_API_KEY").is_some() {
        let generator = OpenAiMetadataGenerator::from_env()?;
        eprintln!("generating with {} …", generator.model());
        let generation = generator.generate_detailed(&request).await?;
        eprintln!(
            "outcome: {:?}; ~{} input tokens counted locally; prompt cut to fit: {}",
            generation.outcome, generation.estimated_input_tokens, generation.prompt_truncated
        );
        generation.metadata
    } else {
        eprintln!("OPENAI_API_KEY is not set: offline heuristic metadata");
        HeuristicMetadataGenerator::default()
            .generate(&request)
            .await?
    };
    println!("{}", serde_json::to_string_pretty(&metadata)?);
    Ok(())
}

/// What the core's source adapter would gather, read from a plain directory.
fn request_from_dir(dir: &Path) -> anyhow::Result<MetadataRequest> {
    let mut files = Vec::new();
    let mut truncated = collect_files(dir, dir, 0, &mut files);
    files.sort();
    let read = |rel: &str, max: usize, truncated: &mut bool| -> Option<String> {
        let bytes = std::fs::read(dir.join(rel)).ok()?;
        *truncated |= bytes.len() > max;
        Some(String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned())
    };
    let readme = files
        .iter()
        .find(|f| !f.contains('/') && f.to_ascii_lowercase().starts_with("readme"))
        .and_then(|f| read(f, MAX_README_BYTES, &mut truncated));
    let manifests = files
        .iter()
        .filter(|f| f.matches('/').count() <= 1)
        .filter(|f| MANIFESTS.contains(&f.rsplit('/').next().unwrap_or(f)))
        .take(10)
        .filter_map(|f| Some((f.clone(), read(f, MAX_MANIFEST_BYTES, &mut truncated)?)))
        .collect();
    let dockerfile = read("Dockerfile", MAX_MANIFEST_BYTES, &mut truncated);
    let tools: Vec<McpTool> = match std::env::var("TOOLSHED_TOOLS_JSON") {
        Ok(path) => serde_json::from_slice(&std::fs::read(&path).with_context(|| path.clone())?)
            .with_context(|| format!("{path} is not a JSON array of tools"))?,
        Err(_) => Vec::new(),
    };
    Ok(MetadataRequest {
        server_id: server_id(dir)?,
        repo: RepoUrl::parse(
            &format!("file://{}", dir.display()),
            RepoUrlPolicy::ALLOW_FILE,
        )?,
        commit: head_commit(dir)?,
        snapshot: RepoSnapshot {
            readme,
            files,
            manifests,
            dockerfile,
            truncated,
        },
        // Scanned like a verification would, so flagged descriptions are marked in the output.
        findings: toolshed_core::domain::poisoning::scan(
            toolshed_core::domain::poisoning::ScanInput {
                tools: &tools,
                instructions: None,
                prompts: &[],
                other_servers_tools: &[],
            },
        ),
        tools,
    })
}

/// Relative paths of regular files, hidden and build directories skipped. Returns whether the
/// list was cut at [`MAX_FILES`].
fn collect_files(root: &Path, dir: &Path, depth: usize, out: &mut Vec<String>) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            let skip = name.starts_with('.') || SKIPPED_DIRS.contains(&name.as_str()) || depth >= 8;
            if !skip && collect_files(root, &entry.path(), depth + 1, out) {
                return true;
            }
        } else if kind.is_file() {
            if out.len() >= MAX_FILES {
                return true;
            }
            if let Ok(rel) = entry.path().strip_prefix(root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    false
}

/// A server id from the directory name (`My_Repo` → `my-repo`).
fn server_id(dir: &Path) -> toolshed_core::Result<ServerId> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let id = id.trim_matches('-').chars().take(63).collect::<String>();
    ServerId::new(id).or_else(|_| ServerId::new("local-repo"))
}

/// The checked-out commit read from `.git` when there is one, else all zeros.
fn head_commit(dir: &Path) -> toolshed_core::Result<CommitSha> {
    let git = dir.join(".git");
    let head = std::fs::read_to_string(git.join("HEAD")).unwrap_or_default();
    let sha = match head.trim().strip_prefix("ref: ") {
        Some(r) => std::fs::read_to_string(git.join(r)).unwrap_or_default(),
        None => head,
    };
    CommitSha::new(sha.trim()).or_else(|_| CommitSha::new("0".repeat(40)))
}
