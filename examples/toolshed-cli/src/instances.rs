//! `toolshed instances …` and `toolshed templates …`: long-running instances of verified servers
//! (their templates), on the library's instance service. States: requested → creating → starting
//! (task runs, MCP not answering yet) → created (MCP answered) / failed, and stopped.
//!
//! Output never shows environment values: instances are printed through their redacted view.

use std::time::Duration;

use anyhow::bail;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use futures::StreamExt;
use toolshed_core::adapters::docker::{HealthTracker, Liveness, LogQuery};
use toolshed_core::domain::{
    Instance, InstanceId, InstanceName, InstanceRequest, ServerId, VerificationState,
};
use toolshed_core::error::EntityKind;
use toolshed_core::local::LocalBackend;
use toolshed_core::ports::MAX_LOG_TAIL;
use toolshed_core::Error;

use crate::output::{print, table, Format, Unhealthy};

/// `instances …`
#[derive(Debug, Subcommand)]
pub enum Instances {
    /// Create and start an instance of a verified server (its template).
    Start {
        /// Template: a verified server id (see `toolshed templates list`).
        template: String,
        /// Instance name (`a-z`, `0-9`, `-`), unique; default `<template>-<random>`.
        #[arg(long)]
        name: Option<String>,
        /// Environment variable `KEY=value` (repeatable): values of the server's declared
        /// settings (a server without declarations takes any). Values are never printed;
        /// secret ones are kept encrypted in the data directory.
        #[arg(long = "env")]
        env: Vec<String>,
        /// Wait until the instance answers MCP (state `created`), at most `--wait-timeout`
        /// seconds; without it, the instance is printed `starting`.
        #[arg(long)]
        wait: bool,
        /// Longest wait of `--wait`, in seconds.
        #[arg(long, default_value_t = 120, requires = "wait")]
        wait_timeout: u64,
        /// A value read from this process's environment, `NAME` or `NAME=VARIABLE`
        /// (repeatable): keeps a secret out of the shell's history.
        #[arg(long = "env-from-env", value_name = "NAME[=VARIABLE]")]
        env_from_env: Vec<String>,
    },
    /// Stop an instance: SIGTERM, then SIGKILL after the drain timeout.
    Stop {
        /// Instance name or id.
        id: String,
        /// Seconds between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 10)]
        drain_timeout: u64,
    },
    /// Restart an instance with the same image and environment.
    Restart {
        /// Instance name or id.
        id: String,
        /// Seconds between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 10)]
        drain_timeout: u64,
    },
    /// State and health (liveness, readiness = MCP handshake, consecutive failures).
    Status {
        /// Instance name or id.
        id: String,
        /// Checks to run (one per second).
        #[arg(long, default_value_t = 1)]
        checks: u32,
        /// Consecutive failed checks that make the instance unhealthy (exit code 8).
        #[arg(long, default_value_t = 3)]
        threshold: u32,
    },
    /// Logs (ANSI escapes and control characters stripped).
    Logs {
        /// Instance name or id.
        id: String,
        /// Keep streaming.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
        /// Only lines since T: RFC 3339, or an age like `30s`, `10m`, `2h`.
        #[arg(long)]
        since: Option<String>,
    },
    /// List instances.
    List,
    /// Stop an instance and delete it, freeing its name.
    Rm {
        /// Instance name or id.
        id: String,
        /// Seconds between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 10)]
        drain_timeout: u64,
    },
}

/// `templates …`
#[derive(Debug, Subcommand)]
pub enum Templates {
    /// Verified servers instances can be created from.
    List,
}

/// The instance a name or an id designates (names first: they are what people type).
async fn resolve(b: &LocalBackend, raw: &str) -> anyhow::Result<Instance> {
    if let Ok(name) = InstanceName::new(raw) {
        match b.toolshed.get_instance_by_name(&name).await {
            Ok(i) => return Ok(i),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    match InstanceId::new(raw) {
        Ok(id) => Ok(b.toolshed.get_instance(&id).await?),
        Err(_) => Err(Error::not_found(EntityKind::Instance, raw).into()),
    }
}

fn parse_since(raw: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let (num, unit) = raw.split_at(
        raw.trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .len(),
    );
    let n: i64 = num.parse().map_err(|_| {
        Error::invalid(
            "since",
            format!("{raw:?} is neither RFC 3339 nor an age like 10m"),
        )
    })?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!(Error::invalid(
            "since",
            format!("unknown unit {unit:?}; use s, m, h or d")
        )),
    };
    Ok(Utc::now() - chrono::Duration::seconds(secs))
}

fn summary(i: &Instance) -> String {
    format!(
        "instance {} ({}) of {}: {}{}",
        i.name,
        i.id,
        i.server_id,
        i.state,
        i.endpoint
            .as_ref()
            .map(|e| format!(" at {}", e.url()))
            .or_else(|| i.failure.as_ref().map(|f| format!(" ({f})")))
            .unwrap_or_default()
    )
}

/// Runs an `instances` command.
pub async fn run(b: &LocalBackend, f: Format, c: Instances) -> anyhow::Result<()> {
    let t = &b.toolshed;
    match c {
        Instances::Start {
            template,
            name,
            env,
            wait,
            wait_timeout,
            env_from_env,
        } => {
            let server_id = ServerId::new(&template)?;
            let name = match name {
                Some(n) => InstanceName::new(n)?,
                None => InstanceName::new(format!(
                    "{template}-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..6]
                ))?,
            };
            let request = InstanceRequest {
                name,
                env: crate::settings::values(&env, &env_from_env)?,
                owner: None,
            };
            let i = t.create_instance(&server_id, request).await?;
            let i = if wait {
                t.wait_instance_ready(&i.id, Duration::from_secs(wait_timeout))
                    .await?
                    .instance
            } else {
                i
            };
            print(f, &i.view(), || summary(&i));
        }
        Instances::Stop { id, drain_timeout } => {
            let i = resolve(b, &id).await?;
            let i = t
                .stop_instance(&i.id, Some(Duration::from_secs(drain_timeout)))
                .await?;
            print(f, &i.view(), || format!("instance {} stopped", i.name));
        }
        Instances::Restart { id, drain_timeout } => {
            let i = resolve(b, &id).await?;
            let i = t
                .restart_instance(&i.id, Some(Duration::from_secs(drain_timeout)))
                .await?;
            print(f, &i.view(), || {
                format!(
                    "instance {} restarted (restart {}): task {}",
                    i.name,
                    i.restart_count,
                    i.task.as_ref().map_or("-", |t| t.as_str())
                )
            });
        }
        Instances::Status {
            id,
            checks,
            threshold,
        } => {
            let i = resolve(b, &id).await?;
            let mut tracker = HealthTracker::new(threshold);
            let mut last = t.instance_status(&i.id).await?;
            let mut verdict = last
                .health
                .as_ref()
                .map(|h| tracker.record(h.live && h.ready));
            for _ in 1..checks.max(1) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                last = t.instance_status(&i.id).await?;
                verdict = last
                    .health
                    .as_ref()
                    .map(|h| tracker.record(h.live && h.ready));
            }
            let v = serde_json::json!({
                "instance": last.instance.view(),
                "health": last.health,
                "verdict": verdict,
                "consecutive_failures": tracker.consecutive_failures(),
                "threshold": tracker.threshold(),
            });
            print(f, &v, || match &last.health {
                Some(h) => format!(
                    "{}; live={} ready={} failures={}/{}{}",
                    summary(&last.instance),
                    h.live,
                    h.ready,
                    tracker.consecutive_failures(),
                    tracker.threshold(),
                    h.detail
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ),
                None => summary(&last.instance),
            });
            if verdict == Some(Liveness::Unhealthy) {
                return Err(Unhealthy(last.instance.name.to_string()).into());
            }
        }
        Instances::Logs {
            id,
            follow,
            tail,
            since,
        } => {
            let i = resolve(b, &id).await?;
            let stdout_json = f == Format::Json;
            let emit = |line: &str| {
                if stdout_json {
                    println!(
                        "{}",
                        serde_json::json!({ "instance": i.name, "line": line })
                    );
                } else {
                    println!("{line}");
                }
            };
            if !follow && since.is_none() {
                for line in t.instance_logs(&i.id, tail.unwrap_or(MAX_LOG_TAIL)).await? {
                    emit(&line);
                }
                return Ok(());
            }
            // Following and `--since` are what the Docker engine offers beyond the port.
            let Some(task) = i.task.clone() else {
                return Err(Error::InvalidState {
                    kind: EntityKind::Instance,
                    id: i.id.to_string(),
                    state: i.state.to_string(),
                    action: "read logs before a task was started",
                }
                .into());
            };
            let query = LogQuery {
                tail,
                since: since.as_deref().map(parse_since).transpose()?,
                follow,
            };
            let mut lines = b.runner.logs(&task, query).await?;
            loop {
                tokio::select! {
                    line = lines.next() => match line {
                        Some(line) => emit(&line?),
                        None => break,
                    },
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
        }
        Instances::List => {
            let mut all = Vec::new();
            let mut after = None;
            loop {
                let page = t.list_instances(after.clone(), 100).await?;
                let done = page.len() < 100;
                after = page.last().map(|i| i.name.clone());
                all.extend(page);
                if done {
                    break;
                }
            }
            let views: Vec<_> = all.iter().map(Instance::view).collect();
            print(f, &views, || {
                let rows: Vec<[String; 6]> = all
                    .iter()
                    .map(|i| {
                        [
                            i.name.to_string(),
                            i.server_id.to_string(),
                            i.state.to_string(),
                            i.restart_count.to_string(),
                            i.endpoint.as_ref().map_or("-".to_owned(), |e| e.url()),
                            i.id.to_string(),
                        ]
                    })
                    .collect();
                table(
                    ["NAME", "TEMPLATE", "STATE", "RESTARTS", "ENDPOINT", "ID"],
                    &rows,
                )
            });
        }
        Instances::Rm { id, drain_timeout } => {
            let i = resolve(b, &id).await?;
            let removed = t
                .remove_instance(&i.id, Some(Duration::from_secs(drain_timeout)))
                .await?;
            let v = serde_json::json!({ "instance": i.name, "id": i.id, "removed": removed });
            print(f, &v, || format!("instance {} removed", i.name));
        }
    }
    Ok(())
}

/// Runs a `templates` command.
pub async fn templates(b: &LocalBackend, f: Format, c: Templates) -> anyhow::Result<()> {
    match c {
        Templates::List => {
            let servers = b.toolshed.list_servers(None, 1000).await?;
            let templates: Vec<serde_json::Value> = servers
                .iter()
                .filter(|s| s.image.is_some())
                .map(|s| {
                    serde_json::json!({
                        "name": s.id, "image": s.image.as_ref().map(|i| i.image.pinned()),
                        "verified": s.state == VerificationState::Verified,
                        "tools": s.tools.tools.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            print(f, &templates, || {
                let rows: Vec<[String; 2]> = servers
                    .iter()
                    .filter(|s| s.image.is_some())
                    .map(|s| {
                        [
                            s.id.to_string(),
                            s.tools
                                .tools
                                .iter()
                                .map(|t| t.name.clone())
                                .collect::<Vec<_>>()
                                .join(", "),
                        ]
                    })
                    .collect();
                let mut out = table(["TEMPLATE", "TOOLS"], &rows);
                out.push_str("\nnext: toolshed instances start <template> --name <name>");
                out
            });
        }
    }
    Ok(())
}
