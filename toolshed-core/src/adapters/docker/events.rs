//! The engine's event stream kept watching so session status follows containers without polls:
//! a container of one of this deployment's sessions that starts, dies or is killed becomes a
//! [`TaskEvent`] applied by [`StatusRefresher::apply_task_events`].

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptionsBuilder;
use futures::StreamExt;
use tracing::{debug, warn};

use super::error::engine;
use super::DockerTaskRunner;
use crate::domain::{
    DeploymentId, SessionId, TaskHandle, LABEL_DEPLOYMENT, LABEL_MANAGED, LABEL_SESSION,
};
use crate::ports::{TaskRunner, TaskState, OUT_OF_MEMORY};
use crate::services::{StatusRefresher, TaskEvent};

/// Container actions that change a session's task state.
const WATCHED: [&str; 4] = ["start", "die", "kill", "oom"];

/// The session, task and action of an engine event about one of `deployment`'s session
/// containers; `None` for anything else (other containers, deployments, actions).
pub fn session_event(
    msg: &EventMessage,
    deployment: &DeploymentId,
) -> Option<(SessionId, TaskHandle, String)> {
    let action = msg.action.as_deref()?;
    // `kill` is sent for any signal; `die` follows when the container ends.
    if !WATCHED.contains(&action) || action == "kill" {
        return None;
    }
    let actor = msg.actor.as_ref()?;
    let attrs = actor.attributes.as_ref()?;
    let label = |k: &str| attrs.get(k).map(String::as_str);
    if label(LABEL_MANAGED) != Some("true") || label(LABEL_DEPLOYMENT) != Some(deployment.as_str())
    {
        return None;
    }
    let session = SessionId::new(label(LABEL_SESSION)?).ok()?;
    let task = TaskHandle::new(actor.id.clone()?).ok()?;
    Some((session, task, action.to_owned()))
}

fn event_time(msg: &EventMessage) -> crate::domain::Timestamp {
    msg.time_nano
        .map(chrono::DateTime::from_timestamp_nanos)
        .unwrap_or_else(chrono::Utc::now)
}

/// Watches the engine's container events of this deployment's sessions and applies them, until
/// the stream ends or fails; the caller restarts it (see [`DockerTaskRunner::spawn_status_watcher`]).
///
/// # Errors
/// `Backend` when the engine's event stream fails.
pub async fn watch_session_status(
    runner: &DockerTaskRunner,
    refresher: &StatusRefresher,
) -> crate::Result<()> {
    let filters = HashMap::from([
        ("type", vec!["container".to_owned()]),
        (
            "label",
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_DEPLOYMENT}={}", runner.config.deployment),
            ],
        ),
        ("event", WATCHED.iter().map(|s| (*s).to_owned()).collect()),
    ]);
    let opts = EventsOptionsBuilder::new().filters(&filters).build();
    let mut stream = runner.docker.events(Some(opts));
    while let Some(msg) = stream.next().await {
        let msg = engine(msg, "Events", "")?;
        let Some((session_id, task, action)) = session_event(&msg, &runner.config.deployment)
        else {
            continue;
        };
        // A start needs the published port: an inspect (local, costs no throttled quota).
        let (state, endpoint) = if action == "start" {
            match runner.describe(&task).await {
                Ok(status) => (status.state, status.endpoint),
                Err(e) => {
                    warn!(%task, error = %e, "inspect after a start event failed");
                    continue;
                }
            }
        } else {
            (
                TaskState::Stopped {
                    reason: Some(if action == "oom" {
                        OUT_OF_MEMORY.to_owned()
                    } else {
                        format!("container {action}")
                    }),
                    exit_code: msg
                        .actor
                        .as_ref()
                        .and_then(|a| a.attributes.as_ref())
                        .and_then(|a| a.get("exitCode"))
                        .and_then(|c| c.parse().ok()),
                },
                None,
            )
        };
        let event = TaskEvent {
            session_id,
            task,
            state,
            endpoint,
            address: None,
            observed_at: event_time(&msg),
        };
        match refresher
            .apply_task_events(std::slice::from_ref(&event))
            .await
        {
            Ok(report) => debug!(?report, "engine event applied"),
            Err(e) => warn!(session = %event.session_id, error = %e, "engine event not applied"),
        }
    }
    Ok(())
}

impl DockerTaskRunner {
    /// Spawns [`watch_session_status`] on the current runtime, restarting it (after `backoff`)
    /// whenever the engine's stream ends or fails, for as long as the returned handle lives.
    pub fn spawn_status_watcher(
        &self,
        refresher: StatusRefresher,
        backoff: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let runner = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = watch_session_status(&runner, &refresher).await {
                    warn!(error = %e, "engine event stream failed; watching again");
                }
                tokio::time::sleep(backoff).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    fn msg(action: &str, deployment: &str) -> EventMessage {
        EventMessage {
            action: Some(action.to_owned()),
            actor: Some(EventActor {
                id: Some("c0ffee".to_owned()),
                attributes: Some(HashMap::from([
                    (LABEL_MANAGED.to_owned(), "true".to_owned()),
                    (LABEL_DEPLOYMENT.to_owned(), deployment.to_owned()),
                    (LABEL_SESSION.to_owned(), "s-12345678".to_owned()),
                ])),
            }),
            time_nano: Some(1_900_000_000_000_000_000),
            ..Default::default()
        }
    }

    #[test]
    fn reads_only_this_deployments_session_containers() {
        let d = DeploymentId::new("local").unwrap();
        let (s, t, a) = session_event(&msg("die", "local"), &d).unwrap();
        assert_eq!(
            (s.as_str(), t.as_str(), a.as_str()),
            ("s-12345678", "c0ffee", "die")
        );
        assert!(session_event(&msg("die", "other"), &d).is_none());
        assert!(session_event(&msg("kill", "local"), &d).is_none());
        assert!(session_event(&msg("exec_start", "local"), &d).is_none());
        assert_eq!(event_time(&msg("die", "local")).timestamp(), 1_900_000_000);
    }
}
