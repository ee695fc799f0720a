//! The subcommands and what they do.

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use toolshed_core::adapters::docker::sanitize::sanitize_lines;
use toolshed_core::adapters::server_json_fetch::ServerJsonFetcher;
use toolshed_core::domain::conformance;
use toolshed_core::domain::poisoning::{escape, highest_severity, RULES};
use toolshed_core::domain::server_json::{PackageChoice, MAX_SERVER_JSON_BYTES};
use toolshed_core::domain::{
    BuildSpec, ChangeKind, GitRef, IdempotencyKey, PlaygroundSession, RepoUrl, RepoUrlPolicy,
    Server, ServerId, ServerRegistration, SessionId, SessionState, SettingSpec, ToolCall,
    ToolDrift, Transport,
};
use toolshed_core::local::{locate_stdio_bridge, LocalBackend, LocalConfig};
use toolshed_core::services::{
    ImportOptions, LaunchRequest, SweepLimits, VerifyOptions, VerifyOutcome,
};

use crate::instances;
use crate::output::{print, table, Format};
use crate::Cli;

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register, list, show and verify MCP servers.
    #[command(subcommand)]
    Servers(Servers),
    /// Short-lived playground sessions of verified servers.
    #[command(subcommand)]
    Playground(Playground),
    /// Long-running instances: start, stop, restart, status, logs.
    #[command(subcommand)]
    Instances(instances::Instances),
    /// Templates (verified servers) instances can be created from.
    #[command(subcommand)]
    Templates(instances::Templates),
    /// API keys of the playground API: create (the secret is shown once), list, revoke.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(crate::api_keys::ApiKeys),
    /// Stop expired sessions and orphaned containers.
    Sweep,
    /// Check the local set-up: Docker engine, data directory, registry, git, stdio bridge.
    Doctor,
}

/// `servers …`
// Parsed once per process: the size of the largest variant (`add`) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Servers {
    /// Register a server.
    Add {
        /// Server id (`a-z`, `0-9`, `-`).
        id: String,
        /// Git repository URL (https://, or file:// for local repositories).
        #[arg(long)]
        repo: String,
        /// Branch or tag to follow.
        #[arg(long = "ref", default_value = "main")]
        git_ref: String,
        /// Container port serving MCP (streamable HTTP).
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// MCP path.
        #[arg(long, default_value = "/mcp")]
        path: String,
        /// A description (never overwritten by generated metadata).
        #[arg(long)]
        description: Option<String>,
        /// The server speaks stdio only: give the command that starts it inside the image after
        /// `--` (e.g. `--stdio -- python -m mcp_server_time`); the verification build wraps it
        /// with the stdio bridge, which serves it on port 8000 at /mcp.
        #[arg(long, requires = "command", conflicts_with_all = ["port", "path"])]
        stdio: bool,
        /// The stdio command and its arguments (after `--`).
        #[arg(last = true, requires = "stdio")]
        command: Vec<String>,
        /// The build context: a folder of the repository (a server in a subfolder of a
        /// monorepo), relative to its root.
        #[arg(long, default_value = ".")]
        context: String,
        /// The Dockerfile, relative to the context.
        #[arg(long, default_value = "Dockerfile")]
        dockerfile: String,
        /// A build argument `NAME=VALUE` (repeatable). Visible in the image's history: never
        /// a secret.
        #[arg(long = "build-arg", value_name = "NAME=VALUE", value_parser = parse_build_arg)]
        build_arg: Vec<(String, String)>,
        /// A setting the server reads from its environment (repeatable):
        /// `NAME[:required][:secret][=DEFAULT]`, e.g. `API_KEY:required:secret` or
        /// `REGION=eu-west-1`. A secret has no default; launches give values with `--set`.
        #[arg(long = "setting", value_name = "SPEC", value_parser = crate::settings::parse_setting)]
        setting: Vec<SettingSpec>,
        /// A value the verification's check task runs with, `NAME=VALUE` (repeatable). Kept
        /// encrypted in the data directory, never in the server's record.
        #[arg(long = "test-value", value_name = "NAME=VALUE")]
        test_value: Vec<String>,
        /// A test value read from this process's environment, `NAME` or `NAME=VARIABLE`
        /// (repeatable): keeps a secret out of the shell's history.
        #[arg(long = "test-value-from-env", value_name = "NAME[=VARIABLE]")]
        test_value_from_env: Vec<String>,
    },
    /// Import a server from its MCP Registry description (`server.json`, a file or an https
    /// URL): a `pypi`/`npm` package is verified by building a generated Dockerfile that installs
    /// it at its exact version, an `oci` image by digest without a build. Registers it
    /// unverified; next: `toolshed servers verify ID`.
    Import {
        /// A `server.json` file, or an https URL of one.
        source: String,
        /// Which entry of `packages` to import (default: the first oci, else pypi, else npm;
        /// the first remote when there is no package).
        #[arg(long)]
        package: Option<usize>,
        /// Which entry of `remotes` to import instead of a package.
        #[arg(long, conflicts_with = "package")]
        remote: Option<usize>,
        /// The server id (default: from the registry name, `io.github.x/time` → `time`).
        #[arg(long)]
        id: Option<String>,
    },
    /// List servers.
    List,
    /// Show one server, with what the tool-poisoning scan of its last verification found.
    Show {
        /// Server id.
        id: String,
    },
    /// Show what the last verification changed in the tools, compared with the verified
    /// version before it (added/removed tools, changed descriptions, new required parameters).
    Diff {
        /// Server id.
        id: String,
    },
    /// Verify a server: build, store, check it speaks MCP (skipped when the commit is unchanged).
    Verify {
        /// Server id.
        id: String,
        /// Rebuild even when the commit is unchanged.
        #[arg(long)]
        force: bool,
    },
    /// Approve the verification the promotion policy held for review: its image becomes the one
    /// launches run. Name it by the digest `servers show` prints (or its full commit): a
    /// candidate replaced meanwhile is refused.
    Approve {
        /// Server id.
        id: String,
        /// The candidate's image digest (`sha256:…`) or full commit.
        #[arg(long)]
        digest: String,
    },
    /// Reject the verification held for review: it is dropped, the live image stays.
    Reject {
        /// Server id.
        id: String,
        /// The candidate's image digest (`sha256:…`) or full commit.
        #[arg(long)]
        digest: String,
    },
    /// Keep N ready sessions of the server's live image for launches to claim at once (size 0
    /// turns the pool off and retires its sessions). Warm sessions count against the caps.
    #[command(name = "warm-pool")]
    WarmPool {
        /// Server id.
        id: String,
        /// Ready sessions to keep.
        #[arg(long)]
        size: u32,
        /// How long a warm session may wait unclaimed: `90s`, `10m`, `2h` (default 10m).
        #[arg(long, value_parser = parse_duration)]
        idle_ttl: Option<Duration>,
    },
    /// Continue verifications whose process died (their lease expired without a heartbeat)
    /// from the step they reached, and wait for them to end.
    Resume {
        /// Most runs resumed at once.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
}

/// One resumed run, as `servers resume -o json` prints it.
#[derive(Debug, serde::Serialize)]
struct ResumedRow {
    server_id: String,
    /// `verified`, `up_to_date` or `failed`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `servers diff -o json`: the same fields as the API's drift route.
#[derive(Debug, serde::Serialize)]
struct DriftOutput {
    server_id: String,
    commit: Option<String>,
    digest: Option<String>,
    drift: Option<ToolDrift>,
}

/// The candidate held for review, if any: digest, commit, why, and the commands that decide.
fn pending_text(s: &Server) -> String {
    let Some(p) = &s.pending_review else {
        return String::new();
    };
    let digest = p.image.image.digest();
    let mut out = format!(
        "
pending review: {digest} (commit {}), held at {}; launches keep running {}",
        p.image.commit,
        p.held_at.to_rfc3339(),
        s.image.as_ref().map_or_else(
            || "nothing (never approved)".to_owned(),
            |i| i.image.pinned()
        )
    );
    for reason in &p.reasons {
        out.push_str(&format!(
            "
  held: {}",
            escape(&reason.to_string())
        ));
    }
    out.push_str(&format!(
        "
  decide: toolshed servers approve {id} --digest {digest} | toolshed servers reject {id} --digest {digest}",
        id = s.id
    ));
    out
}

/// The findings of the last verification, one line each, after a summary line.
fn findings_text(s: &Server) -> String {
    let findings = &s.tools.findings;
    if s.image.is_none() {
        return String::new();
    }
    let Some(highest) = highest_severity(findings) else {
        return "\nfindings: none".to_owned();
    };
    let mut out = format!("\nfindings: {} (highest: {highest})", findings.len());
    for finding in findings {
        let name = RULES
            .iter()
            .find(|r| r.id == finding.rule)
            .map_or("", |r| r.name);
        out.push_str(&format!(
            "\n  {} {} {name} in {}: {}",
            finding.rule, finding.severity, finding.location, finding.excerpt
        ));
    }
    out
}

/// How long the last completed verification took: the total, then one line per phase in the
/// order the phases ran.
fn timings_text(s: &Server) -> String {
    let Some(t) = &s.last_timings else {
        return String::new();
    };
    let mut out = format!("\nlast verification took {}", seconds(t.total_millis()));
    for p in &t.phases {
        out.push_str(&format!("\n  {:<16} {:>9}", p.phase, seconds(p.millis)));
    }
    out
}

/// Milliseconds as seconds with three decimals.
fn seconds(millis: u64) -> String {
    format!("{}.{:03} s", millis / 1000, millis % 1000)
}

/// The conformance report of the last verification: a summary line, then one line per check.
fn conformance_text(s: &Server) -> String {
    let Some(report) = s.tools.conformance.as_ref().filter(|_| s.image.is_some()) else {
        return String::new();
    };
    let mut out = format!(
        "\nconformance: {} ({} era, protocol {}{})",
        report.overall(),
        report.era,
        report.protocol_version,
        report
            .supported_versions
            .as_ref()
            .map_or_else(String::new, |v| format!("; supports {}", v.join(", ")))
    );
    for check in &report.checks {
        let name = conformance::rule(&check.id).map_or("", |r| r.name);
        // Details are escaped by the domain already.
        out.push_str(&format!(
            "\n  {} {:<4} {name}: {}",
            check.id, check.outcome, check.detail
        ));
    }
    out
}

/// The drift of the last verification, one line per change.
fn drift_text(s: &Server) -> String {
    let Some(commit) = s.last_verified_commit() else {
        return format!("{}: not verified yet", s.id);
    };
    let Some(drift) = &s.tools.drift else {
        return format!(
            "{}: no change in the tools at {} (first verification, same tools, or a gated listing)",
            s.id,
            commit.short()
        );
    };
    let previous = drift
        .previous_commit
        .as_ref()
        .map_or("the previous version", |c| c.short());
    let mut out = format!(
        "{}: {} change(s) from {previous} to {}",
        s.id,
        drift.changes.len(),
        commit.short()
    );
    for c in &drift.changes {
        let line = match c.kind {
            ChangeKind::Added => format!("+ tool {}", c.tool),
            ChangeKind::Removed => format!("- tool {}", c.tool),
            ChangeKind::DescriptionChanged => format!(
                "~ tool {}: description changed\n      before: {}\n      after:  {}",
                c.tool,
                c.before.as_deref().unwrap_or("(none)"),
                c.after.as_deref().unwrap_or("(none)")
            ),
            ChangeKind::RequiredParameterAdded => format!(
                "~ tool {}: parameter {} is now required",
                c.tool,
                c.parameter.as_deref().unwrap_or("?")
            ),
            ChangeKind::InputSchemaChanged => format!("~ tool {}: input schema changed", c.tool),
        };
        out.push_str(&format!("\n  {line}"));
    }
    out
}

/// `playground …`
#[derive(Debug, Subcommand)]
pub enum Playground {
    /// Start a session of a verified server.
    Start {
        /// Server id.
        server: String,
        /// Time to live in seconds.
        #[arg(long)]
        ttl: Option<u64>,
        /// Makes a retried start return the same session.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// A value of one of the server's declared settings, `NAME=VALUE` (repeatable).
        /// Missing required settings are refused before anything starts.
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// A setting value read from this process's environment, `NAME` or `NAME=VARIABLE`
        /// (repeatable): keeps a secret out of the shell's history.
        #[arg(long = "set-from-env", value_name = "NAME[=VARIABLE]")]
        set_from_env: Vec<String>,
        /// Wait until the session is running (its MCP server answered), at most
        /// `--wait-timeout` seconds; without it, the session is printed `starting`.
        #[arg(long)]
        wait: bool,
        /// Longest wait of `--wait`, in seconds.
        #[arg(long, default_value_t = 120, requires = "wait")]
        wait_timeout: u64,
    },
    /// List sessions (live ones unless `--all`), newest first per server.
    List {
        /// Only this server's sessions (default: every server's).
        server: Option<String>,
        /// Include sessions that have ended.
        #[arg(long)]
        all: bool,
    },
    /// A session's state and endpoint (`starting` until its MCP server answers).
    Status {
        /// Session id.
        session: String,
        /// Wait until the session is running, at most `--wait-timeout` seconds.
        #[arg(long)]
        wait: bool,
        /// Longest wait of `--wait`, in seconds.
        #[arg(long, default_value_t = 120, requires = "wait")]
        wait_timeout: u64,
    },
    /// Call a tool on a running session.
    Exec {
        /// Session id.
        session: String,
        /// Tool name.
        tool: String,
        /// Arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
    },
    /// Stop a session.
    Stop {
        /// Session id.
        session: String,
    },
}

/// Runs the command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = LocalConfig::from_env()?;
    if let Some(d) = cli.data_dir {
        config.data_dir = d;
    }
    if cli.registry.is_some() {
        config.registry = cli.registry;
    }
    let f = cli.output;
    if let Command::Doctor = cli.command {
        return doctor(config, f).await;
    }
    let backend = LocalBackend::connect(config).await?;
    match cli.command {
        Command::Doctor => Ok(()),
        Command::Servers(c) => servers(&backend, f, c).await,
        Command::Playground(c) => playground(&backend, f, c).await,
        Command::Instances(c) => instances::run(&backend, f, c).await,
        Command::Templates(c) => instances::templates(&backend, f, c).await,
        Command::ApiKeys(c) => crate::api_keys::run(&backend, f, c).await,
        Command::Sweep => {
            let r = backend
                .toolshed
                .sweep_expired_sessions(SweepLimits::default())
                .await;
            let v = serde_json::json!({
                "expired_stopped": r.expired_stopped, "orphans_stopped": r.orphans_stopped,
                "exited_marked": r.exited_marked, "tasks_seen": r.tasks_seen,
                "young_tasks_skipped": r.young_tasks_skipped, "errors": r.errors,
            });
            print(f, &v, || {
                format!(
                    "sweep: {} expired sessions stopped, {} orphaned containers stopped, {} exited sessions marked ({} containers seen, {} errors)",
                    r.expired_stopped, r.orphans_stopped, r.exited_marked, r.tasks_seen, r.errors.len()
                )
            });
            Ok(())
        }
    }
}

/// One line per check; fails (exit code 1) when something the whole local flow needs is missing.
async fn doctor(config: LocalConfig, f: Format) -> anyhow::Result<()> {
    let engine = match toolshed_core::adapters::docker::connect().await {
        Ok(_) => Ok("reachable".to_owned()),
        Err(e) => Err(format!("not reachable ({e}); start it or set DOCKER_HOST")),
    };
    let git = match std::process::Command::new("git").arg("--version").output() {
        Ok(out) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        _ => Err("git not found on PATH: repositories cannot be read".to_owned()),
    };
    let bridge = locate_stdio_bridge(config.stdio_bridge.as_deref());
    let stdio = match &bridge.path {
        Some(path) => Ok(format!(
            "stdio servers can be verified: bridge {} (found by {}){}",
            path.display(),
            bridge.found_by.map_or_else(String::new, |b| b.to_string()),
            bridge
                .problem
                .as_deref()
                .map_or_else(String::new, |p| format!("; warning: {p}"))
        )),
        None => Err(bridge.problem.clone().unwrap_or_default()),
    };
    let checks = [
        ("docker engine", engine.clone()),
        ("git", git.clone()),
        ("stdio bridge", stdio.clone()),
    ];
    let healthy = engine.is_ok() && git.is_ok();
    let v = serde_json::json!({
        "data_dir": config.data_dir,
        "registry": config.registry,
        "checks": checks.iter().map(|(name, r)| serde_json::json!({
            "check": name, "ok": r.is_ok(), "detail": r.as_ref().unwrap_or_else(|e| e),
        })).collect::<Vec<_>>(),
        "stdio_servers": bridge.available(),
    });
    print(f, &v, || {
        let mut out = format!(
            "data dir      {}\nimages        {}\n",
            config.data_dir.display(),
            config
                .registry
                .as_deref()
                .unwrap_or("the engine's image store")
        );
        for (name, r) in &checks {
            let (mark, detail) = match r {
                Ok(d) => ("ok  ", d),
                Err(d) => ("FAIL", d),
            };
            out.push_str(&format!("{mark} {name:<13} {detail}\n"));
        }
        out.trim_end().to_owned()
    });
    if healthy {
        Ok(())
    } else {
        anyhow::bail!("the local backend cannot run: see the failed checks above")
    }
}

/// A server's cells under `SERVER_COLUMNS`.
fn server_row(s: &Server) -> [String; 4] {
    let state = serde_json::to_value(s.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    [
        s.id.to_string(),
        state,
        s.last_verified_commit()
            .map_or("-", |c| c.short())
            .to_owned(),
        s.repo.to_string(),
    ]
}

const SERVER_COLUMNS: [&str; 4] = ["ID", "STATE", "COMMIT", "REPOSITORY"];

/// The document at `source`: an https URL is fetched (bounded, https only), anything else is
/// read as a file of at most the document size limit.
async fn read_server_json(source: &str) -> anyhow::Result<Vec<u8>> {
    if source.contains("://") {
        let fetcher = ServerJsonFetcher::new()?;
        return Ok(fetcher.fetch(source).await?);
    }
    let meta = tokio::fs::metadata(source)
        .await
        .with_context(|| format!("cannot read {source}"))?;
    if meta.len() > MAX_SERVER_JSON_BYTES as u64 {
        anyhow::bail!("{source} is over the {MAX_SERVER_JSON_BYTES}-byte limit of a server.json");
    }
    tokio::fs::read(source)
        .await
        .with_context(|| format!("cannot read {source}"))
}

/// A session's cells under `SESSION_COLUMNS`.
fn session_row(s: &PlaygroundSession) -> [String; 5] {
    [
        s.id.to_string(),
        s.server_id.to_string(),
        s.state.to_string(),
        s.endpoint
            .as_ref()
            .map_or_else(|| "-".to_owned(), ToString::to_string),
        s.expires_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    ]
}

/// `session <id> <state> at <endpoint>; expires <time>`, with how long a starting session has
/// been starting, or why an ended one ended.
fn session_line(s: &PlaygroundSession, now: chrono::DateTime<chrono::Utc>) -> String {
    let state = match (s.starting_for(now), s.stop_reason, s.task_exit()) {
        (Some(d), _, _) => format!("{} (for {} s)", s.state, d.as_secs()),
        (None, Some(reason), Some(exit)) => format!("{} ({reason}: {exit})", s.state),
        (None, Some(reason), None) => format!("{} ({reason})", s.state),
        (None, None, _) => s.state.to_string(),
    };
    format!(
        "session {} {state} at {}; expires {}",
        s.id,
        s.endpoint.as_ref().map_or("-".into(), ToString::to_string),
        s.expires_at
    )
}

const SESSION_COLUMNS: [&str; 5] = ["SESSION", "SERVER", "STATE", "ENDPOINT", "EXPIRES"];

async fn servers(b: &LocalBackend, f: Format, c: Servers) -> anyhow::Result<()> {
    let ts = &b.toolshed;
    match c {
        Servers::Add {
            id,
            repo,
            git_ref,
            port,
            path,
            description,
            stdio,
            command,
            context,
            dockerfile,
            build_arg,
            setting,
            test_value,
            test_value_from_env,
        } => {
            let test_values = crate::settings::values(&test_value, &test_value_from_env)?;
            let build = BuildSpec {
                context,
                dockerfile,
                args: build_arg.into_iter().collect(),
            };
            let transport = if stdio {
                Transport::Stdio { command }
            } else {
                Transport::Http { port, path }
            };
            let server = ts
                .register_server_with_test_values(
                    ServerRegistration {
                        origin: Default::default(),
                        build,
                        settings: setting,
                        id: ServerId::new(id)?,
                        // The local CLI reads the user's own disk, so file:// is allowed here.
                        repo: RepoUrl::parse(&repo, RepoUrlPolicy::LOCAL)?,
                        git_ref: GitRef::new(git_ref)?,
                        transport,
                        resources: Default::default(),
                        description,
                        language: None,
                    },
                    test_values,
                )
                .await?;
            print(f, &server, || {
                format!(
                    "registered {}; next: toolshed servers verify {}",
                    server.id, server.id
                )
            });
        }
        Servers::Import {
            source,
            package,
            remote,
            id,
        } => {
            let document = read_server_json(&source).await?;
            let choice = match (package, remote) {
                (Some(i), _) => PackageChoice::Package(i),
                (None, Some(i)) => PackageChoice::Remote(i),
                (None, None) => PackageChoice::Preferred,
            };
            let options = ImportOptions {
                choice,
                id: id.map(ServerId::new).transpose()?,
            };
            let imported = ts.import_server(&document, options).await?;
            let server = &imported.server;
            print(f, server, || {
                let mut out = format!(
                    "imported {} from {}; next: toolshed servers verify {}",
                    server.id, source, server.id
                );
                for note in &imported.notes {
                    out.push_str(&format!("\nnote: {}", escape(note)));
                }
                out
            });
        }
        Servers::List => {
            let list = ts.list_servers(None, 1000).await?;
            print(f, &list, || {
                let rows: Vec<_> = list.iter().map(server_row).collect();
                table(SERVER_COLUMNS, &rows)
            });
        }
        Servers::Show { id } => {
            let s = ts.get_server(&ServerId::new(id)?).await?;
            print(f, &s, || {
                let mut out = table(SERVER_COLUMNS, &[server_row(&s)]);
                if let Some(img) = &s.image {
                    out.push_str(&format!("\nimage: {}", img.image.pinned()));
                }
                for setting in &s.settings {
                    let flags = [(setting.required, " required"), (setting.secret, " secret")]
                        .iter()
                        .filter(|(on, _)| *on)
                        .map(|(_, f)| *f)
                        .collect::<String>();
                    let default = setting
                        .default
                        .as_deref()
                        .map(|d| format!(" (default {})", escape(d)))
                        .unwrap_or_default();
                    out.push_str(&format!("\nsetting {}:{flags}{default}", setting.name));
                }
                for t in &s.tools.tools {
                    // Escaped: a description may hide characters a terminal would not show.
                    out.push_str(&format!(
                        "\ntool {}: {}",
                        escape(&t.name),
                        escape(t.description.as_deref().unwrap_or(""))
                    ));
                }
                out.push_str(&findings_text(&s));
                out.push_str(&pending_text(&s));
                out.push_str(&conformance_text(&s));
                out.push_str(&timings_text(&s));
                if let Some(d) = &s.metadata.description {
                    out.push_str(&format!("\ndescription: {}", d.value));
                }
                if let Some(l) = &s.metadata.language {
                    out.push_str(&format!("\nlanguage: {}", l.value));
                }
                if let Some(fail) = &s.last_failure {
                    out.push_str(&format!("\nlast failure at {}: {}", fail.step, fail.reason));
                }
                out
            });
        }
        Servers::Diff { id } => {
            let s = ts.get_server(&ServerId::new(id)?).await?;
            let view = DriftOutput {
                server_id: s.id.to_string(),
                commit: s.last_verified_commit().map(ToString::to_string),
                digest: s.tools.digest.clone(),
                drift: s.tools.drift.clone(),
            };
            print(f, &view, || drift_text(&s));
        }
        Servers::Verify { id, force } => {
            let id = ServerId::new(id)?;
            if f == Format::Human {
                eprintln!("verifying {id} (build → store → MCP check)…");
            }
            let outcome = ts.verify_server(&id, VerifyOptions { force }).await?;
            let (verb, s) = match &outcome {
                VerifyOutcome::UpToDate(s) => {
                    ("up to date (commit unchanged, image stored): skipped", s)
                }
                VerifyOutcome::Verified { server, .. } => ("verified", server),
            };
            print(f, s, || {
                let tools: Vec<String> = s.tools.tools.iter().map(|t| escape(&t.name)).collect();
                let mut out = format!("{id}: {verb}; tools: {}", tools.join(", "));
                if let Some(highest) = highest_severity(&s.tools.findings) {
                    out.push_str(&format!(
                        "\n{} finding(s), highest {highest}: see toolshed servers show {id}",
                        s.tools.findings.len()
                    ));
                }
                if let Some(drift) = &s.tools.drift {
                    out.push_str(&format!(
                        "\n{} change(s) in the tools since the previous verified version: see toolshed servers diff {id}",
                        drift.changes.len()
                    ));
                }
                if s.pending_review.is_some() {
                    out.push_str(&format!(
                        "\nheld for review by the promotion policy (the live image is unchanged):{}",
                        pending_text(s)
                    ));
                }
                // A skipped verification measured nothing: the timings shown would be those of
                // an earlier run.
                if matches!(outcome, VerifyOutcome::Verified { .. }) {
                    out.push_str(&timings_text(s));
                }
                out
            });
        }
        Servers::Approve { id, digest } => {
            let id = ServerId::new(id)?;
            let s = ts.approve_verification(&id, digest.trim()).await?;
            print(f, &s, || {
                format!(
                    "{id}: approved; launches now run {}",
                    s.image
                        .as_ref()
                        .map_or_else(String::new, |i| i.image.pinned())
                )
            });
        }
        Servers::Reject { id, digest } => {
            let id = ServerId::new(id)?;
            let s = ts.reject_verification(&id, digest.trim()).await?;
            print(f, &s, || {
                format!(
                    "{id}: candidate rejected; launches keep running {}",
                    s.image.as_ref().map_or_else(
                        || "nothing (never approved)".to_owned(),
                        |i| i.image.pinned()
                    )
                )
            });
        }
        Servers::WarmPool { id, size, idle_ttl } => {
            let id = ServerId::new(id)?;
            let pool = toolshed_core::domain::WarmPool {
                size,
                idle_ttl: idle_ttl.unwrap_or(toolshed_core::domain::DEFAULT_WARM_IDLE_TTL),
            };
            let s = ts.set_warm_pool(&id, pool).await?;
            // The pool fills in the background of this process: fill it before exiting.
            let report = ts.top_up_warm_pool(&id).await?;
            print(f, &s, || {
                format!(
                    "{id}: warm pool of {size}, idle TTL {} s ({} starting, {} retired)",
                    pool.idle_ttl.as_secs(),
                    report.started,
                    report.retired
                )
            });
        }
        Servers::Resume { limit } => {
            let resumed = ts.resume_stale_verifications(limit).await?;
            let rows: Vec<ResumedRow> = resumed
                .iter()
                .map(|r| match &r.outcome {
                    Ok(outcome) => {
                        let s = outcome.server();
                        ResumedRow {
                            server_id: r.server_id.to_string(),
                            status: match outcome {
                                VerifyOutcome::UpToDate(_) => "up_to_date",
                                VerifyOutcome::Verified { .. } => "verified",
                            },
                            commit: s.last_verified_commit().map(ToString::to_string),
                            image: s.image.as_ref().map(|i| i.image.pinned()),
                            error: None,
                        }
                    }
                    Err(e) => ResumedRow {
                        server_id: r.server_id.to_string(),
                        status: "failed",
                        commit: None,
                        image: None,
                        error: Some(e.to_string()),
                    },
                })
                .collect();
            print(f, &rows, || {
                if rows.is_empty() {
                    return "nothing to resume: no verification has an expired lease".to_owned();
                }
                rows.iter()
                    .map(|r| match (&r.error, &r.image) {
                        (Some(e), _) => format!("{}: resume failed: {e}", r.server_id),
                        (None, Some(image)) => format!("{}: {} ({image})", r.server_id, r.status),
                        (None, None) => format!("{}: {}", r.server_id, r.status),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            if let Some(e) = resumed.into_iter().find_map(|r| r.outcome.err()) {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

async fn playground(b: &LocalBackend, f: Format, c: Playground) -> anyhow::Result<()> {
    let ts = &b.toolshed;
    match c {
        Playground::Start {
            server,
            ttl,
            idempotency_key,
            set,
            set_from_env,
            wait,
            wait_timeout,
        } => {
            let req = LaunchRequest {
                ttl: ttl.map(Duration::from_secs),
                idempotency_key: idempotency_key.map(IdempotencyKey::new).transpose()?,
                settings: crate::settings::values(&set, &set_from_env)?,
            };
            let s = ts.launch_session(&ServerId::new(server)?, req).await?;
            let s = if wait {
                ts.wait_session_ready(&s.id, Duration::from_secs(wait_timeout))
                    .await?
            } else {
                ts.session_status(&s.id).await?
            };
            print(f, &s, || {
                let next = if s.state == SessionState::Starting {
                    format!("toolshed playground status {} --wait", s.id)
                } else {
                    format!("toolshed playground exec {} <tool> --args '{{}}'", s.id)
                };
                format!("{}\nnext: {next}", session_line(&s, ts.now()))
            });
        }
        Playground::List { server, all } => {
            let servers = match server {
                Some(id) => vec![ServerId::new(id)?],
                None => ts
                    .list_servers(None, 1000)
                    .await?
                    .into_iter()
                    .map(|s| s.id)
                    .collect(),
            };
            let mut sessions = Vec::new();
            for id in &servers {
                sessions.extend(ts.list_sessions(id, !all, 1000).await?);
            }
            print(f, &sessions, || {
                if sessions.is_empty() {
                    let which = if all {
                        "no sessions"
                    } else {
                        "no live sessions"
                    };
                    return format!("{which}; start one with `toolshed playground start <server>`");
                }
                let rows: Vec<_> = sessions.iter().map(session_row).collect();
                table(SESSION_COLUMNS, &rows)
            });
        }
        Playground::Status {
            session,
            wait,
            wait_timeout,
        } => {
            let id = SessionId::new(session)?;
            let s = if wait {
                ts.wait_session_ready(&id, Duration::from_secs(wait_timeout))
                    .await?
            } else {
                ts.session_status(&id).await?
            };
            print(f, &s, || session_line(&s, ts.now()));
        }
        Playground::Exec {
            session,
            tool,
            args,
        } => {
            let args: serde_json::Value = serde_json::from_str(&args)
                .map_err(|e| toolshed_core::Error::invalid("args", format!("not JSON: {e}")))?;
            let serde_json::Value::Object(args) = args else {
                return Err(toolshed_core::Error::invalid("args", "must be a JSON object").into());
            };
            let out = ts
                .execute_tool(&SessionId::new(session)?, ToolCall::new(tool, args)?)
                .await?;
            print(f, &out, || {
                let texts: Vec<String> = out
                    .content
                    .iter()
                    .map(|c| {
                        c.get("text")
                            .and_then(|t| t.as_str())
                            .map_or_else(|| c.to_string(), str::to_owned)
                    })
                    // Tool output is the server's text: never let it drive the terminal.
                    .flat_map(|t| sanitize_lines(&t))
                    .collect();
                let mut s = texts.join("\n");
                if out.is_error {
                    s = format!("tool error: {s}");
                }
                s
            });
            if out.is_error {
                anyhow::bail!("the tool reported an error");
            }
        }
        Playground::Stop { session } => {
            let s = ts
                .stop_session(&SessionId::new(session)?)
                .await
                .context("stopping the session")?;
            print(f, &s, || format!("session {} {}", s.id, s.state));
        }
    }
    Ok(())
}

/// Parses `NAME=VALUE` (the value may contain `=`; the core checks the name and value).
/// A duration as `N`, `Ns`, `Nm` or `Nh`.
fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (digits, unit) = match raw.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&raw[..i], c),
        _ => (raw, 's'),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration like 90s, 10m or 2h"))?;
    let secs = match unit {
        's' => n,
        'm' => n.saturating_mul(60),
        'h' => n.saturating_mul(3600),
        _ => return Err(format!("{raw:?}: the unit is s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

fn parse_build_arg(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{raw:?} is not NAME=VALUE"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The command line alone, as `toolshed` parses it.
    #[derive(Debug, Parser)]
    struct Line {
        #[command(subcommand)]
        command: Command,
    }

    fn add(args: &[&str]) -> Result<Servers, clap::Error> {
        let line = Line::try_parse_from(["toolshed", "servers", "add"].iter().chain(args))?;
        match line.command {
            Command::Servers(s) => Ok(s),
            other => panic!("not a servers command: {other:?}"),
        }
    }

    #[tokio::test]
    async fn servers_import_takes_a_file_or_an_https_url() {
        let line = Line::try_parse_from([
            "toolshed",
            "servers",
            "import",
            "server.json",
            "--package",
            "1",
            "--id",
            "time",
        ])
        .unwrap();
        let Command::Servers(Servers::Import {
            source,
            package,
            remote,
            id,
        }) = line.command
        else {
            panic!("not an import");
        };
        assert_eq!(
            (source.as_str(), package, remote, id.as_deref()),
            ("server.json", Some(1), None, Some("time"))
        );
        let line = Line::try_parse_from([
            "toolshed",
            "servers",
            "import",
            "server.json",
            "--remote",
            "1",
        ])
        .unwrap();
        assert!(matches!(
            line.command,
            Command::Servers(Servers::Import {
                package: None,
                remote: Some(1),
                ..
            })
        ));
        let both = Line::try_parse_from([
            "toolshed",
            "servers",
            "import",
            "server.json",
            "--package",
            "0",
            "--remote",
            "0",
        ]);
        assert!(both.is_err(), "a package and a remote at once are refused");
        // Only https is fetched; a large file is refused before it is read.
        let err = read_server_json("http://example.com/server.json")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("https"), "{err}");
        let dir = std::env::temp_dir().join(format!("toolshed-import-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("server.json");
        std::fs::write(&big, vec![b' '; MAX_SERVER_JSON_BYTES + 1]).unwrap();
        let err = read_server_json(big.to_str().unwrap()).await.unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
        std::fs::write(&big, b"{}").unwrap();
        assert_eq!(
            read_server_json(big.to_str().unwrap()).await.unwrap(),
            b"{}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn servers_add_takes_a_build_spec() {
        let Servers::Add {
            context,
            dockerfile,
            build_arg,
            ..
        } = add(&[
            "a",
            "--repo",
            "https://github.com/example/mono",
            "--context",
            "servers/a",
            "--dockerfile",
            "docker/Dockerfile",
            "--build-arg",
            "VERSION=1.2=3",
            "--build-arg",
            "EMPTY=",
        ])
        .unwrap()
        else {
            panic!("not add")
        };
        assert_eq!(
            (context.as_str(), dockerfile.as_str()),
            ("servers/a", "docker/Dockerfile")
        );
        assert_eq!(
            build_arg,
            [
                ("VERSION".into(), "1.2=3".into()),
                ("EMPTY".into(), String::new())
            ]
        );
        let Servers::Add {
            context,
            dockerfile,
            build_arg,
            ..
        } = add(&["t", "--repo", "https://github.com/example/t"]).unwrap()
        else {
            panic!("not add")
        };
        assert_eq!((context.as_str(), dockerfile.as_str()), (".", "Dockerfile"));
        assert!(build_arg.is_empty());
        assert!(add(&[
            "t",
            "--repo",
            "https://x.example/t",
            "--build-arg",
            "NOEQUALS"
        ])
        .is_err());
    }

    #[test]
    fn servers_add_takes_a_stdio_command_after_the_separator() {
        let Servers::Add { stdio, command, .. } = add(&[
            "fetch",
            "--repo",
            "https://github.com/example/fetch",
            "--stdio",
            "--",
            "python",
            "-m",
            "mcp_server_fetch",
            "--ignore-robots-txt",
        ])
        .unwrap() else {
            panic!("not add")
        };
        assert!(stdio);
        assert_eq!(
            command,
            ["python", "-m", "mcp_server_fetch", "--ignore-robots-txt"]
        );
        // HTTP stays the default; a stdio server needs its command, and has no port or path.
        let Servers::Add { stdio, port, .. } =
            add(&["t", "--repo", "https://github.com/example/t"]).unwrap()
        else {
            panic!("not add")
        };
        assert!(!stdio);
        assert_eq!(port, 8000);
        assert!(add(&["t", "--repo", "https://x.example/t", "--stdio"]).is_err());
        assert!(add(&[
            "t",
            "--repo",
            "https://x.example/t",
            "--stdio",
            "--port",
            "9",
            "--",
            "srv"
        ])
        .is_err());
        assert!(add(&["t", "--repo", "https://x.example/t", "--", "srv"]).is_err());
    }

    fn playground(args: &[&str]) -> Result<Playground, clap::Error> {
        let line = Line::try_parse_from(["toolshed", "playground"].iter().chain(args))?;
        match line.command {
            Command::Playground(p) => Ok(p),
            other => panic!("not a playground command: {other:?}"),
        }
    }

    #[test]
    fn start_and_status_wait_only_when_asked() {
        let Playground::Start {
            wait, wait_timeout, ..
        } = playground(&["start", "time"]).unwrap()
        else {
            panic!("not start")
        };
        assert!(!wait, "start answers at once, `starting`, by default");
        assert_eq!(wait_timeout, 120);
        let Playground::Start {
            wait, wait_timeout, ..
        } = playground(&["start", "time", "--wait", "--wait-timeout", "30"]).unwrap()
        else {
            panic!("not start")
        };
        assert!(wait);
        assert_eq!(wait_timeout, 30);
        // A timeout without a wait is a mistake, not silently ignored.
        assert!(playground(&["start", "time", "--wait-timeout", "30"]).is_err());
        let Playground::Status { wait, .. } =
            playground(&["status", "s-12345678", "--wait"]).unwrap()
        else {
            panic!("not status")
        };
        assert!(wait);
    }
    use toolshed_core::domain::poisoning::{Finding, Location, Severity};
    use toolshed_core::domain::{
        CommitSha, ImageDigest, ImageRef, ImageTag, ToolChange, VerifiedImage,
    };

    fn verified_server() -> Server {
        let now = chrono::Utc::now();
        let id = ServerId::new("notes").unwrap();
        let mut s = Server::register(
            ServerRegistration {
                origin: Default::default(),
                build: Default::default(),
                settings: Vec::new(),
                id: id.clone(),
                repo: RepoUrl::new("https://github.com/example/notes").unwrap(),
                git_ref: GitRef::main(),
                transport: Transport::default(),
                resources: Default::default(),
                description: None,
                language: None,
            },
            now,
        )
        .unwrap();
        let commit = CommitSha::new("b".repeat(40)).unwrap();
        let digest = ImageDigest::new(format!("sha256:{}", "0".repeat(64))).unwrap();
        s.image = Some(VerifiedImage {
            image: ImageRef::new(
                "registry.test/toolshed",
                ImageTag::verified(&id, &commit, &digest),
                digest,
            )
            .unwrap(),
            commit,
            verified_at: now,
        });
        s
    }

    #[test]
    fn show_lists_findings_with_rule_name_location_and_escaped_excerpt() {
        let mut s = verified_server();
        assert_eq!(findings_text(&s), "\nfindings: none");
        s.tools.findings.push(Finding {
            rule: "TP001".into(),
            severity: Severity::High,
            location: Location::ToolDescription { tool: "add".into() },
            excerpt: "Adds.\\u{E0041}".into(),
        });
        assert_eq!(
            findings_text(&s),
            "\nfindings: 1 (highest: high)\n  TP001 high hidden-unicode in description of tool \"add\": Adds.\\u{E0041}"
        );
    }

    #[test]
    fn show_lists_the_phase_timings_in_order_with_the_total() {
        use toolshed_core::domain::{PhaseTimings, VerificationPhase};
        let mut s = verified_server();
        assert_eq!(timings_text(&s), "");
        let start = s.created_at;
        let mut t = PhaseTimings::start(start);
        t.end(
            VerificationPhase::ResolveCommit,
            start + chrono::Duration::milliseconds(250),
        );
        t.end(
            VerificationPhase::Build,
            start + chrono::Duration::milliseconds(61_250),
        );
        t.end(
            VerificationPhase::McpHandshake,
            start + chrono::Duration::milliseconds(62_257),
        );
        s.last_timings = Some(t);
        assert_eq!(
            timings_text(&s),
            "\nlast verification took 62.257 s\n  resolve-commit     0.250 s\n  build             61.000 s\n  mcp-handshake      1.007 s"
        );
    }

    #[test]
    fn show_lists_the_conformance_checks_with_rule_names() {
        let mut s = verified_server();
        assert_eq!(conformance_text(&s), "");
        let tools = vec![toolshed_core::domain::McpTool {
            name: "read file".into(),
            description: Some("Reads.".into()),
            input_schema: serde_json::json!({"type": "object"}),
        }];
        s.tools.conformance = Some(conformance::assess(&toolshed_core::domain::ProbeReport {
            server: toolshed_core::domain::McpServerInfo {
                protocol_version: "2025-06-18".into(),
                name: None,
                version: None,
                capabilities: serde_json::json!({"tools": {}}),
                instructions: None,
            },
            listing: toolshed_core::domain::ListingFacts::one_stable_page(&tools),
            tools: toolshed_core::domain::ToolsOutcome::Listed { tools },
        }));
        let text = conformance_text(&s);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "conformance: warn (initialize era, protocol 2025-06-18)"
        );
        assert_eq!(
            lines[2],
            "  MCP-C001 pass protocol-version: initialize era; negotiated 2025-06-18; supported versions not announced"
        );
        assert_eq!(
            lines[5],
            "  MCP-C004 warn tool-name-characters: 1 names with characters outside A-Z a-z 0-9 _ - .: \"read file\""
        );
        assert_eq!(lines.len(), 2 + conformance::RULES.len());
    }

    #[test]
    fn diff_shows_each_change_or_says_there_is_none() {
        let mut s = verified_server();
        assert!(
            drift_text(&s).contains("no change in the tools at bbbbbbbbbbbb"),
            "{}",
            drift_text(&s)
        );
        s.tools.drift = Some(ToolDrift {
            previous_commit: Some(CommitSha::new("a".repeat(40)).unwrap()),
            previous_digest: "sha256:00".into(),
            changes: vec![
                ToolChange {
                    kind: ChangeKind::DescriptionChanged,
                    tool: "write_note".into(),
                    parameter: None,
                    before: Some("Writes.".into()),
                    after: Some("Writes and mails.".into()),
                },
                ToolChange {
                    kind: ChangeKind::RequiredParameterAdded,
                    tool: "write_note".into(),
                    parameter: Some("recipient".into()),
                    before: None,
                    after: None,
                },
            ],
        });
        let text = drift_text(&s);
        assert!(
            text.starts_with("notes: 2 change(s) from aaaaaaaaaaaa to bbbbbbbbbbbb"),
            "{text}"
        );
        assert!(text.contains("~ tool write_note: description changed\n      before: Writes.\n      after:  Writes and mails."), "{text}");
        assert!(
            text.contains("~ tool write_note: parameter recipient is now required"),
            "{text}"
        );
    }
}
