//! The labels (Docker) / tags (ECS) that mark a task as ours. One definition for every runner, so
//! the sweep recognises tasks the same way on every backend.

use serde::{Deserialize, Serialize};

use super::{InstanceId, ServerId, SessionId, Timestamp};

/// Present with value `true` on every task we start. Runners list, stop and remove only tasks
/// carrying it.
pub const LABEL_MANAGED: &str = "toolshed.managed";
/// The server id.
pub const LABEL_SERVER: &str = "toolshed.server";
/// `playground`, `verification` or `instance`.
pub const LABEL_PURPOSE: &str = "toolshed.purpose";
/// The session id (playground tasks).
pub const LABEL_SESSION: &str = "toolshed.session";
/// The verification run id (check tasks).
pub const LABEL_RUN: &str = "toolshed.run";
/// The instance id (instance tasks).
pub const LABEL_INSTANCE: &str = "toolshed.instance";
/// Expiry, Unix seconds.
pub const LABEL_EXPIRES_AT: &str = "toolshed.expires-at";
/// The [`DeploymentId`] of the deployment that started the task. Runners list, describe, stop
/// and remove only tasks carrying their own: two deployments sharing one Docker engine or one ECS
/// cluster never touch each other's tasks.
pub const LABEL_DEPLOYMENT: &str = "toolshed.deployment";

/// Who owns a task: one id per deployment (per database of the local backend, per Terraform
/// deployment on AWS). 1-64 ASCII letters, digits, `-` and `_`, starting with a letter or digit,
/// so it fits a Docker label, an ECS tag and ECS `startedBy` (which ListTasks filters on).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct DeploymentId(String);

impl DeploymentId {
    /// Validates a deployment id.
    ///
    /// ```
    /// use toolshed_core::domain::DeploymentId;
    /// assert!(DeploymentId::new("prod-eu_1").is_ok());
    /// assert!(DeploymentId::new("").is_err());
    /// assert!(DeploymentId::new("-x").is_err());
    /// assert!(DeploymentId::new("a b").is_err());
    /// ```
    ///
    /// # Errors
    /// `InvalidInput { field: "deployment_id" }`.
    pub fn new(raw: impl Into<String>) -> crate::error::Result<Self> {
        let raw = raw.into();
        let ok = (1..=64).contains(&raw.len())
            && raw.starts_with(|c: char| c.is_ascii_alphanumeric())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(raw))
        } else {
            Err(crate::error::Error::invalid(
                "deployment_id",
                format!("{raw:?} must be 1-64 letters, digits, '-' or '_', starting with a letter or digit"),
            ))
        }
    }

    /// A fresh random id (`d-` and 32 hex digits), for a deployment that has none yet.
    pub fn random() -> Self {
        Self(format!("d-{}", uuid::Uuid::new_v4().simple()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<DeploymentId> for String {
    fn from(v: DeploymentId) -> String {
        v.0
    }
}

impl TryFrom<String> for DeploymentId {
    type Error = crate::error::Error;
    fn try_from(v: String) -> crate::error::Result<Self> {
        Self::new(v)
    }
}

/// Why a task runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskPurpose {
    /// A playground session.
    Playground {
        /// The session.
        session_id: SessionId,
    },
    /// The MCP check of a verification run.
    Verification {
        /// The run.
        run_id: String,
    },
    /// A long-running instance. It runs until stopped: its label expiry is
    /// [`TaskLabels::never`].
    Instance {
        /// The instance.
        instance_id: InstanceId,
    },
}

/// Parsed labels of one of our tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLabels {
    /// The server.
    pub server_id: ServerId,
    /// Why it runs.
    pub purpose: TaskPurpose,
    /// When it must be gone.
    pub expires_at: Timestamp,
}

impl TaskLabels {
    /// The expiry of tasks that run until stopped (instances): 9999-12-31T23:59:59Z.
    pub const NEVER_SECS: i64 = 253_402_300_799;

    /// [`Self::NEVER_SECS`] as a timestamp.
    pub fn never() -> Timestamp {
        chrono::DateTime::from_timestamp(Self::NEVER_SECS, 0)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
    }

    /// Key/value pairs to attach (ECS tags, Docker labels).
    ///
    /// ```
    /// use toolshed_core::domain::{ServerId, SessionId, TaskLabels, TaskPurpose};
    /// let labels = TaskLabels {
    ///     server_id: ServerId::new("time").unwrap(),
    ///     purpose: TaskPurpose::Playground { session_id: SessionId::new("s-00000001").unwrap() },
    ///     expires_at: chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap(),
    /// };
    /// let pairs = labels.to_pairs();
    /// assert_eq!(TaskLabels::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))), Some(labels));
    /// ```
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = vec![
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_SERVER.to_owned(), self.server_id.to_string()),
            (
                LABEL_EXPIRES_AT.to_owned(),
                self.expires_at.timestamp().to_string(),
            ),
        ];
        match &self.purpose {
            TaskPurpose::Playground { session_id } => {
                pairs.push((LABEL_PURPOSE.to_owned(), "playground".to_owned()));
                pairs.push((LABEL_SESSION.to_owned(), session_id.to_string()));
            }
            TaskPurpose::Verification { run_id } => {
                pairs.push((LABEL_PURPOSE.to_owned(), "verification".to_owned()));
                pairs.push((LABEL_RUN.to_owned(), run_id.clone()));
            }
            TaskPurpose::Instance { instance_id } => {
                pairs.push((LABEL_PURPOSE.to_owned(), "instance".to_owned()));
                pairs.push((LABEL_INSTANCE.to_owned(), instance_id.to_string()));
            }
        }
        pairs
    }

    /// Parses labels; `None` unless the task is marked managed and every label is well formed.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        let mut managed = false;
        let (mut server, mut purpose, mut session, mut run, mut expires) =
            (None, None, None, None, None);
        let mut instance = None;
        for (k, v) in pairs {
            match k {
                LABEL_MANAGED => managed = v == "true",
                LABEL_SERVER => server = ServerId::new(v).ok(),
                LABEL_PURPOSE => purpose = Some(v.to_owned()),
                LABEL_SESSION => session = SessionId::new(v).ok(),
                LABEL_RUN => run = Some(v.to_owned()),
                LABEL_INSTANCE => instance = InstanceId::new(v).ok(),
                LABEL_EXPIRES_AT => {
                    expires = v
                        .parse::<i64>()
                        .ok()
                        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                }
                _ => {}
            }
        }
        if !managed {
            return None;
        }
        let purpose = match purpose.as_deref() {
            Some("playground") => TaskPurpose::Playground {
                session_id: session?,
            },
            Some("verification") => TaskPurpose::Verification { run_id: run? },
            Some("instance") => TaskPurpose::Instance {
                instance_id: instance?,
            },
            _ => return None,
        };
        Some(Self {
            server_id: server?,
            purpose,
            expires_at: expires?,
        })
    }
}
