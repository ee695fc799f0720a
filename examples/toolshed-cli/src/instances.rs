//! Instances of verified servers (seed 003) created from templates (seed 004): a record per
//! instance in SQLite with the states requested → creating → created / failed (then stopped),
//! and the container lifecycle on the Docker runner.

use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use toolshed_core::adapters::docker::{HealthTracker, InstanceSpec, Liveness, LogQuery};
use toolshed_core::domain::{ServerId, TaskHandle, VerificationState};
use toolshed_core::error::EntityKind;
use toolshed_core::local::LocalBackend;
use toolshed_core::Error;

use crate::output::{print, Format, Unhealthy};

/// `instances …`
#[derive(Debug, Subcommand)]
pub enum Instances {
    /// Create and start an instance of a verified server (its template).
    Start {
        /// Template: a verified server id (see `toolshed templates list`).
        template: String,
        /// Instance id (`a-z`, `0-9`, `-`); default `<template>-<random>`.
        #[arg(long)]
        name: Option<String>,
        /// Environment variable `KEY=value` (repeatable).
        #[arg(long = "env")]
        env: Vec<String>,
    },
    /// Stop an instance: SIGTERM, then SIGKILL after the drain timeout.
    Stop {
        /// Instance id.
        id: String,
        /// Seconds between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 10)]
        drain_timeout: u64,
    },
    /// Restart an instance with the same configuration.
    Restart {
        /// Instance id.
        id: String,
        /// Seconds between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 10)]
        drain_timeout: u64,
    },
    /// State and health (liveness, readiness = MCP handshake, consecutive failures).
    Status {
        /// Instance id.
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
        /// Instance id.
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
}

/// `templates …`
#[derive(Debug, Subcommand)]
pub enum Templates {
    /// Verified servers instances can be created from.
    List,
}

/// Where an instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    /// Recorded, nothing started.
    Requested,
    /// The container is being created.
    Creating,
    /// Running.
    Created,
    /// Creation failed (see `error`).
    Failed,
    /// Stopped on request.
    Stopped,
}

/// The stored instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Id.
    pub id: String,
    /// The template (server).
    pub template: String,
    /// Status.
    pub status: InstanceStatus,
    /// The container, once created.
    pub container: Option<String>,
    /// The MCP endpoint, once running.
    pub endpoint: Option<String>,
    /// Why creation failed.
    pub error: Option<String>,
    /// What it runs (kept for restarts).
    pub spec: Option<InstanceSpec>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

async fn load(b: &LocalBackend, id: &str) -> anyhow::Result<InstanceRecord> {
    b.repository
        .get_instance(id)
        .await?
        .ok_or_else(|| Error::not_found(EntityKind::Task, format!("instance {id}")).into())
}

async fn save(
    b: &LocalBackend,
    rec: &mut InstanceRecord,
    status: InstanceStatus,
) -> anyhow::Result<()> {
    rec.status = status;
    rec.updated_at = Utc::now();
    b.repository.put_instance(&rec.id, rec).await?;
    Ok(())
}

fn handle(rec: &InstanceRecord) -> anyhow::Result<TaskHandle> {
    let c = rec
        .container
        .clone()
        .with_context(|| format!("instance {} has no container", rec.id))?;
    Ok(TaskHandle::new(c)?)
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

/// Runs an `instances` command.
pub async fn run(b: &LocalBackend, f: Format, c: Instances) -> anyhow::Result<()> {
    match c {
        Instances::Start {
            template,
            name,
            env,
        } => {
            for e in &env {
                if !e.contains('=') {
                    return Err(Error::invalid("env", format!("{e:?} is not KEY=value")).into());
                }
            }
            let id = name.unwrap_or_else(|| {
                format!(
                    "{template}-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..6]
                )
            });
            if b.repository
                .get_instance::<InstanceRecord>(&id)
                .await?
                .is_some_and(|r| {
                    r.status != InstanceStatus::Stopped && r.status != InstanceStatus::Failed
                })
            {
                return Err(Error::AlreadyExists {
                    kind: EntityKind::Task,
                    id: format!("instance {id}"),
                }
                .into());
            }
            let now = Utc::now();
            let mut rec = InstanceRecord {
                id: id.clone(),
                template: template.clone(),
                status: InstanceStatus::Requested,
                container: None,
                endpoint: None,
                error: None,
                spec: None,
                created_at: now,
                updated_at: now,
            };
            save(b, &mut rec, InstanceStatus::Requested).await?;
            save(b, &mut rec, InstanceStatus::Creating).await?;
            let result = async {
                let server = b.toolshed.get_server(&ServerId::new(&template)?).await?;
                let image = server.launchable_image()?.image.clone();
                let spec = InstanceSpec {
                    instance_id: id.clone(),
                    server_id: server.id.clone(),
                    image,
                    container_port: server.transport.container_port(),
                    mcp_path: server.transport.path().to_owned(),
                    resources: server.resources,
                    env,
                    args: vec![],
                };
                let task = b.runner.start_instance(&spec).await?;
                anyhow::Ok((spec, task))
            }
            .await;
            match result {
                Ok((spec, task)) => {
                    rec.spec = Some(spec);
                    rec.container = Some(task.to_string());
                    rec.endpoint = b
                        .runner
                        .inspect(&task)
                        .await?
                        .and_then(|(_, s)| s.endpoint)
                        .map(|e| e.to_string());
                    save(b, &mut rec, InstanceStatus::Created).await?;
                    print(f, &rec, || {
                        format!(
                            "instance {} created from {} at {}",
                            rec.id,
                            rec.template,
                            rec.endpoint.as_deref().unwrap_or("-")
                        )
                    });
                }
                Err(e) => {
                    rec.error = Some(format!("{e:#}"));
                    save(b, &mut rec, InstanceStatus::Failed).await?;
                    return Err(e.context(format!("instance {id} failed")));
                }
            }
        }
        Instances::Stop { id, drain_timeout } => {
            let mut rec = load(b, &id).await?;
            if let Ok(task) = handle(&rec) {
                b.runner
                    .stop_with_drain(&task, Duration::from_secs(drain_timeout))
                    .await?;
            }
            rec.endpoint = None;
            save(b, &mut rec, InstanceStatus::Stopped).await?;
            print(f, &rec, || format!("instance {id} stopped"));
        }
        Instances::Restart { id, drain_timeout } => {
            let mut rec = load(b, &id).await?;
            let drain = Duration::from_secs(drain_timeout);
            let task = match handle(&rec) {
                Ok(old) if b.runner.inspect(&old).await?.is_some() => {
                    b.runner.restart_instance(&old, drain).await?
                }
                // The container is gone: recreate it from the stored spec (same configuration).
                _ => {
                    let spec = rec
                        .spec
                        .clone()
                        .with_context(|| format!("instance {id} was never created"))?;
                    b.runner.start_instance(&spec).await?
                }
            };
            rec.container = Some(task.to_string());
            rec.endpoint = b
                .runner
                .inspect(&task)
                .await?
                .and_then(|(_, s)| s.endpoint)
                .map(|e| e.to_string());
            save(b, &mut rec, InstanceStatus::Created).await?;
            print(f, &rec, || {
                format!("instance {id} restarted: container {task}")
            });
        }
        Instances::Status {
            id,
            checks,
            threshold,
        } => {
            let rec = load(b, &id).await?;
            let mut tracker = HealthTracker::new(threshold);
            let mut last = None;
            if let Ok(task) = handle(&rec) {
                for i in 0..checks.max(1) {
                    if i > 0 {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    last = Some(
                        b.runner
                            .check_health(&task, b.probe.as_ref(), &mut tracker, Utc::now())
                            .await?,
                    );
                }
            }
            let v = serde_json::json!({ "instance": rec, "health": last });
            print(f, &v, || match &last {
                Some(h) => format!(
                    "instance {id}: {:?}; live={} ready={} failures={}/{}",
                    rec.status, h.live, h.ready, h.consecutive_failures, h.threshold
                ),
                None => format!(
                    "instance {id}: {:?}{}",
                    rec.status,
                    rec.error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
            });
            if last.is_some_and(|h| h.status == Liveness::Unhealthy) {
                return Err(Unhealthy(id).into());
            }
        }
        Instances::Logs {
            id,
            follow,
            tail,
            since,
        } => {
            let rec = load(b, &id).await?;
            let task = handle(&rec)?;
            let query = LogQuery {
                tail,
                since: since.as_deref().map(parse_since).transpose()?,
                follow,
            };
            let mut lines = b.runner.logs(&task, query).await?;
            let stdout_json = f == Format::Json;
            loop {
                tokio::select! {
                    line = lines.next() => match line {
                        Some(line) => {
                            let line = line?;
                            if stdout_json {
                                println!("{}", serde_json::json!({ "instance": id, "line": line }));
                            } else {
                                println!("{line}");
                            }
                        }
                        None => break,
                    },
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
        }
        Instances::List => {
            let list: Vec<InstanceRecord> = b.repository.list_instances().await?;
            print(f, &list, || {
                let mut out = format!("{:<28} {:<20} {:<10} ENDPOINT", "ID", "TEMPLATE", "STATUS");
                for r in &list {
                    out.push_str(&format!(
                        "\n{:<28} {:<20} {:<10} {}",
                        r.id,
                        r.template,
                        format!("{:?}", r.status).to_lowercase(),
                        r.endpoint.as_deref().unwrap_or("-")
                    ));
                }
                out
            });
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
                let mut out = String::from("TEMPLATE                 TOOLS");
                for t in &templates {
                    out.push_str(&format!(
                        "\n{:<24} {}",
                        t["name"].as_str().unwrap_or(""),
                        t["tools"]
                    ));
                }
                out.push_str("\nnext: toolshed instances start <template> --name <id>");
                out
            });
        }
    }
    Ok(())
}
