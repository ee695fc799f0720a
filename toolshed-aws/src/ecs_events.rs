//! ECS task state change events, as EventBridge delivers them, read into
//! [`TaskEvent`](toolshed_core::services::TaskEvent)s.
//!
//! Playground tasks are started with the ECS task `group` `toolshed-session:<session id>`
//! ([`session_group`]): ECS events carry the group and `startedBy` (the deployment id) but no
//! tags, so the group is how an event names its session. The event is untrusted input: fields
//! are checked, events of another cluster, deployment or kind of task are skipped (`Ok(None)`),
//! and the core use case applies an event only to a live session running the named task.

use serde::Deserialize;
use toolshed_core::domain::{DeploymentId, SessionId, TaskHandle, TaskPurpose, Timestamp};
use toolshed_core::ports::{TaskSpec, TaskState};
use toolshed_core::services::TaskEvent;
use toolshed_core::{Error, Result};

use crate::ecs::{stop_reason, EcsTaskRunner, CONTAINER_NAME};

/// The `group` prefix of playground tasks; the session id follows.
pub const SESSION_GROUP_PREFIX: &str = "toolshed-session:";

/// EventBridge `source` of ECS events.
pub const EVENT_SOURCE: &str = "aws.ecs";

/// EventBridge `detail-type` of task state changes.
pub const TASK_STATE_CHANGE: &str = "ECS Task State Change";

/// Largest event payload read (EventBridge's limit is 256 KB).
const MAX_EVENT_BYTES: usize = 256 * 1024;

/// The ECS task group of a spec: `toolshed-session:<id>` for playground sessions, `None` (ECS's
/// default, the family) for other tasks.
pub fn session_group(spec: &TaskSpec) -> Option<String> {
    match &spec.labels.purpose {
        TaskPurpose::Playground { session_id } => {
            Some(format!("{SESSION_GROUP_PREFIX}{session_id}"))
        }
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    time: Option<String>,
    detail: Detail,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    cluster_arn: String,
    task_arn: String,
    group: Option<String>,
    started_by: Option<String>,
    last_status: String,
    desired_status: Option<String>,
    stopped_reason: Option<String>,
    updated_at: Option<String>,
    #[serde(default)]
    containers: Vec<Container>,
    #[serde(default)]
    attachments: Vec<Attachment>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container {
    name: Option<String>,
    exit_code: Option<i64>,
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Attachment {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    details: Vec<KeyValue>,
}

#[derive(Debug, Deserialize)]
struct KeyValue {
    name: Option<String>,
    value: Option<String>,
}

fn invalid(detail: impl Into<String>) -> Error {
    Error::invalid("event", detail.into())
}

fn timestamp(raw: &str) -> Result<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| invalid(format!("{raw:?} is not an RFC 3339 time")))
}

/// Whether `cluster_arn` names `cluster` (a name or an ARN).
fn same_cluster(cluster_arn: &str, cluster: &str) -> bool {
    cluster_arn == cluster
        || cluster_arn
            .rsplit_once('/')
            .is_some_and(|(_, n)| n == cluster)
}

/// Reads one EventBridge event of an ECS task state change of `cluster` and `deployment`.
///
/// Returns `Ok(None)` for events this deployment has no business with (another source or
/// detail type, cluster, `startedBy`, or a task that is not a playground session's).
///
/// # Errors
/// `InvalidInput` (field `event`) for a payload that is not a well-formed task state change.
pub fn parse_task_state_change(
    payload: &serde_json::Value,
    cluster: &str,
    deployment: &DeploymentId,
) -> Result<Option<TaskEvent>> {
    let size = payload.to_string().len();
    if size > MAX_EVENT_BYTES {
        return Err(invalid(format!("{size} bytes is larger than an event")));
    }
    let e: Envelope = serde_json::from_value(payload.clone())
        .map_err(|err| invalid(format!("not an ECS task state change: {err}")))?;
    if e.source != EVENT_SOURCE || e.detail_type != TASK_STATE_CHANGE {
        return Ok(None);
    }
    let d = e.detail;
    if !same_cluster(&d.cluster_arn, cluster)
        || d.started_by.as_deref() != Some(deployment.as_str())
    {
        return Ok(None);
    }
    let Some(session) = d
        .group
        .as_deref()
        .and_then(|g| g.strip_prefix(SESSION_GROUP_PREFIX))
    else {
        return Ok(None);
    };
    let session_id =
        SessionId::new(session).map_err(|_| invalid("the task group names no valid session id"))?;
    let task = TaskHandle::new(d.task_arn).map_err(|_| invalid("taskArn is not a task handle"))?;
    let observed_at = match d.updated_at.as_deref().or(e.time.as_deref()) {
        Some(raw) => timestamp(raw)?,
        None => return Err(invalid("neither detail.updatedAt nor time is given")),
    };
    let desired_stop = d.desired_status.as_deref() == Some("STOPPED");
    let state = match d.last_status.as_str() {
        "STOPPED" | "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" => None,
        _ if desired_stop => None,
        "RUNNING" => Some(TaskState::Running),
        "PROVISIONING" | "PENDING" | "ACTIVATING" => Some(TaskState::Pending),
        other => return Err(invalid(format!("unknown lastStatus {other:?}"))),
    }
    .unwrap_or_else(|| {
        let server = d
            .containers
            .iter()
            .find(|c| c.name.as_deref() == Some(CONTAINER_NAME));
        let task_reason: Option<String> = d.stopped_reason.map(|r| r.chars().take(255).collect());
        TaskState::Stopped {
            reason: stop_reason(
                task_reason.as_deref(),
                server.and_then(|c| c.reason.as_deref()),
            ),
            exit_code: server.and_then(|c| c.exit_code),
        }
    });
    let address = (state == TaskState::Running)
        .then(|| {
            d.attachments
                .iter()
                // Events say `eni`; DescribeTasks says `ElasticNetworkInterface`.
                .filter(|a| matches!(a.kind.as_deref(), Some("eni" | "ElasticNetworkInterface")))
                .flat_map(|a| &a.details)
                .find(|kv| kv.name.as_deref() == Some("privateIPv4Address"))
                .and_then(|kv| kv.value.clone())
        })
        .flatten();
    Ok(Some(TaskEvent {
        session_id,
        task,
        state,
        endpoint: None,
        address,
        observed_at,
    }))
}

impl EcsTaskRunner {
    /// [`parse_task_state_change`] for this runner's cluster and deployment.
    ///
    /// # Errors
    /// As [`parse_task_state_change`].
    pub fn task_event(&self, payload: &serde_json::Value) -> Result<Option<TaskEvent>> {
        parse_task_state_change(payload, self.cluster(), self.deployment())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(last: &str, group: &str) -> serde_json::Value {
        serde_json::json!({
            "version": "0",
            "id": "3317b2af-7005-947d-b652-f55e762e571a",
            "detail-type": "ECS Task State Change",
            "source": "aws.ecs",
            "account": "111122223333",
            "time": "2026-11-30T02:00:00Z",
            "region": "eu-west-1",
            "resources": ["arn:aws:ecs:eu-west-1:111122223333:task/play/abc"],
            "detail": {
                "clusterArn": "arn:aws:ecs:eu-west-1:111122223333:cluster/play",
                "taskArn": "arn:aws:ecs:eu-west-1:111122223333:task/play/abc",
                "group": group,
                "startedBy": "prod",
                "lastStatus": last,
                "desiredStatus": if last == "STOPPED" { "STOPPED" } else { "RUNNING" },
                "stoppedReason": "Essential container in task exited",
                "updatedAt": "2026-11-30T02:00:01.5Z",
                "version": 3,
                "containers": [{"name": "mcp", "exitCode": 137, "lastStatus": last}],
                "attachments": [{
                    "id": "a1", "type": "eni", "status": "ATTACHED",
                    "details": [{"name": "privateIPv4Address", "value": "10.0.1.7"}]
                }]
            }
        })
    }

    fn dep() -> DeploymentId {
        DeploymentId::new("prod").unwrap()
    }

    #[test]
    fn reads_running_and_stopped_events_of_our_sessions() {
        let ev = parse_task_state_change(
            &event("RUNNING", "toolshed-session:s-12345678"),
            "play",
            &dep(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(ev.session_id.as_str(), "s-12345678");
        assert_eq!(ev.state, TaskState::Running);
        assert_eq!(ev.address.as_deref(), Some("10.0.1.7"));
        assert_eq!(ev.observed_at.timestamp_millis() % 1000, 500);
        let ev = parse_task_state_change(
            &event("STOPPED", "toolshed-session:s-12345678"),
            "play",
            &dep(),
        )
        .unwrap()
        .unwrap();
        assert!(matches!(
            ev.state,
            TaskState::Stopped {
                exit_code: Some(137),
                ..
            }
        ));
        assert_eq!(ev.address, None);
    }

    #[test]
    fn a_server_killed_for_its_memory_is_told_apart() {
        let mut stopped = event("STOPPED", "toolshed-session:s-12345678");
        stopped["detail"]["containers"][0]["reason"] =
            "OutOfMemoryError: Container killed due to memory usage".into();
        let ev = parse_task_state_change(&stopped, "play", &dep())
            .unwrap()
            .unwrap();
        let exit = ev.state.exit().expect("stopped");
        assert!(exit.out_of_memory, "{:?}", ev.state);
        assert_eq!(exit.exit_code, Some(137));
    }

    #[test]
    fn skips_what_is_not_ours_and_rejects_malformed_events() {
        let other_group = event("RUNNING", "family:x");
        assert_eq!(
            parse_task_state_change(&other_group, "play", &dep()).unwrap(),
            None
        );
        let ours = event("RUNNING", "toolshed-session:s-12345678");
        assert_eq!(
            parse_task_state_change(&ours, "other", &dep()).unwrap(),
            None
        );
        let staging = DeploymentId::new("staging").unwrap();
        assert_eq!(
            parse_task_state_change(&ours, "play", &staging).unwrap(),
            None
        );
        let mut bad = ours.clone();
        bad["detail"]["lastStatus"] = "EXPLODED".into();
        assert!(parse_task_state_change(&bad, "play", &dep()).is_err());
        let mut bad = ours.clone();
        bad["detail"]["group"] = "toolshed-session:../../x y".into();
        assert!(parse_task_state_change(&bad, "play", &dep()).is_err());
        let mut bad = ours;
        bad["detail"]["updatedAt"] = "yesterday".into();
        assert!(parse_task_state_change(&bad, "play", &dep()).is_err());
        assert!(parse_task_state_change(&serde_json::json!({"x": 1}), "play", &dep()).is_err());
    }
}
