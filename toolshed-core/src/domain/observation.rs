//! What was last seen of a session's task, so a status poll can answer from the record instead of
//! asking the runner (whose describe calls are throttled per account).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Endpoint, Timestamp};

/// A task's state as last observed (by a describe, an event, or the batched refresher).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservedTaskState {
    /// Accepted, not running yet.
    Pending,
    /// Running.
    Running,
    /// Stopped or stopping.
    Stopped,
    /// The runner did not know the task.
    Missing,
}

impl ObservedTaskState {
    /// Whether the task had ended (stopped, or unknown to the runner).
    pub fn is_ended(self) -> bool {
        matches!(self, Self::Stopped | Self::Missing)
    }
}

/// How a task ended, as far as its runner said: kept with the last observation, so a session that
/// ended by itself can say why (the runner's own wording is not kept: on AWS it may name
/// internal addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskExit {
    /// The server container's exit code, when the runner knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Whether it was killed for using more memory than its limit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub out_of_memory: bool,
}

impl fmt::Display for TaskExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.out_of_memory, self.exit_code) {
            (true, _) => f.write_str("killed for using more memory than its limit"),
            (false, Some(code)) => write!(f, "exited with status {code}"),
            (false, None) => f.write_str("exited (status unknown)"),
        }
    }
}

/// The last observation of a session's task, kept on the session record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskObservation {
    /// State seen.
    pub state: ObservedTaskState,
    /// Where MCP answered, when the observation said (only while running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    /// When the runner reported it (an event's time, or the describe's).
    pub observed_at: Timestamp,
    /// How it ended, when it was seen stopped and the runner said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<TaskExit>,
}

impl TaskObservation {
    /// Whether a status poll at `now` may answer from this observation without the runner: it
    /// is younger than `freshness` and complete (a running task without a known endpoint needs a
    /// describe to learn it). An observation from the future (clock skew) counts as fresh.
    pub fn is_fresh(&self, now: Timestamp, freshness: Duration) -> bool {
        let age = (now - self.observed_at).to_std().unwrap_or(Duration::ZERO);
        age < freshness && !(self.state == ObservedTaskState::Running && self.endpoint.is_none())
    }

    /// Whether this observation is newer than `other` (none counts as older than anything).
    pub fn supersedes(&self, other: Option<&TaskObservation>) -> bool {
        other.is_none_or(|o| self.observed_at > o.observed_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_900_000_000 + s, 0).unwrap()
    }

    #[test]
    fn freshness_and_order() {
        let ep = Endpoint::new("10.0.0.1", 8000, "/mcp").unwrap();
        let o = TaskObservation {
            state: ObservedTaskState::Running,
            endpoint: Some(ep),
            observed_at: at(0),
            exit: None,
        };
        let fresh = Duration::from_secs(15);
        assert!(o.is_fresh(at(14), fresh));
        assert!(!o.is_fresh(at(15), fresh));
        assert!(o.is_fresh(at(-5), fresh), "future observations are fresh");
        let no_ep = TaskObservation {
            endpoint: None,
            ..o.clone()
        };
        assert!(!no_ep.is_fresh(at(1), fresh), "running without endpoint");
        let pending = TaskObservation {
            state: ObservedTaskState::Pending,
            ..no_ep
        };
        assert!(pending.is_fresh(at(1), fresh));
        assert!(o.supersedes(None));
        assert!(!o.supersedes(Some(&o)));
        let later = TaskObservation {
            observed_at: at(1),
            ..o.clone()
        };
        assert!(later.supersedes(Some(&o)) && !o.supersedes(Some(&later)));
    }

    #[test]
    fn an_exit_says_what_happened() {
        let exit = |exit_code, out_of_memory| TaskExit {
            exit_code,
            out_of_memory,
        };
        assert_eq!(exit(Some(3), false).to_string(), "exited with status 3");
        assert_eq!(
            exit(Some(137), true).to_string(),
            "killed for using more memory than its limit"
        );
        assert_eq!(exit(None, false).to_string(), "exited (status unknown)");
        // Records written before exits were kept still load.
        let old: TaskObservation =
            serde_json::from_str(r#"{"state":"stopped","observed_at":"2030-03-17T17:46:40Z"}"#)
                .unwrap();
        assert_eq!(old.exit, None);
    }
}
