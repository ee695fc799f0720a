//! Instances: long-running containers of a verified server's image, as opposed to short-lived
//! playground sessions. An instance keeps the digest-pinned image it was created from, its
//! environment and its lifecycle:
//!
//! ```text
//! requested ──► creating ──► starting ──► created (running: MCP answered)
//!                   │            │             │
//!                   ▼            ▼             ▼
//!                 failed ◄───────┴─────────────┘        any state ──► stopped
//!    starting / created / failed / stopped ──restart──► creating
//! ```
//!
//! `starting` means the task runs but its MCP endpoint has not answered a handshake yet (a
//! Python server takes seconds to import): only an answered handshake makes it `created`.
//!
//! Every transition is a method of [`Instance`], so the rules are written once; repositories
//! only persist the result with a version check.
//!
//! Environment values may be secrets: [`InstanceEnv`] never prints or serialises them. Output
//! goes through [`Instance::view`], which shows variable names only.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Endpoint, ImageRef, PrincipalId, Server, ServerId, TaskHandle, Timestamp};
use crate::error::{EntityKind, Error, Result};

/// What [`InstanceView`] shows in place of an environment value.
pub const REDACTED: &str = "<redacted>";

/// Most environment variables an instance may carry.
pub const MAX_ENV_VARS: usize = 100;

/// Longest environment value, in bytes.
pub const MAX_ENV_VALUE_LEN: usize = 32 * 1024;

/// Longest failure reason kept on an instance, in characters.
pub const MAX_FAILURE_LEN: usize = 2000;

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

macro_rules! instance_string {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The validated string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(v: String) -> Result<Self> {
                Self::new(v)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }
    };
}

instance_string!(
    /// An instance's id: `[a-z0-9-]{8,64}`, generated (`i-` and 32 hex digits). It also names
    /// the runner's idempotency tokens.
    ///
    /// ```
    /// use toolshed_core::domain::InstanceId;
    /// assert!(InstanceId::new(InstanceId::random().as_str()).is_ok());
    /// assert!(InstanceId::new("short").is_err());
    /// ```
    InstanceId
);

impl InstanceId {
    /// Validates an instance id.
    pub fn new(raw: impl Into<String>) -> Result<Self> {
        let raw = raw.into();
        if (8..=64).contains(&raw.len()) && raw.chars().all(|c| is_lower_alnum(c) || c == '-') {
            Ok(Self(raw))
        } else {
            Err(Error::invalid(
                "instance_id",
                format!("{raw:?} must be 8-64 characters of a-z, 0-9 and '-'"),
            ))
        }
    }

    /// A fresh random id.
    pub fn random() -> Self {
        Self(format!("i-{}", uuid::Uuid::new_v4().simple()))
    }
}

instance_string!(
    /// An instance's name, chosen by its owner and unique among instances:
    /// `[a-z0-9][a-z0-9-]{0,62}` (it becomes part of container names and labels).
    ///
    /// ```
    /// use toolshed_core::domain::InstanceName;
    /// assert!(InstanceName::new("time-prod").is_ok());
    /// assert!(InstanceName::new("-x").is_err());
    /// ```
    InstanceName
);

impl InstanceName {
    /// Validates an instance name.
    pub fn new(raw: impl Into<String>) -> Result<Self> {
        let raw = raw.into();
        let mut chars = raw.chars();
        let ok = match chars.next() {
            Some(first) => {
                is_lower_alnum(first)
                    && raw.len() <= 63
                    && chars.all(|c| is_lower_alnum(c) || c == '-')
            }
            None => false,
        };
        if ok {
            Ok(Self(raw))
        } else {
            Err(Error::invalid(
                "name",
                format!(
                    "{raw:?} must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit"
                ),
            ))
        }
    }
}

instance_string!(
    /// An environment variable name: `[A-Za-z_][A-Za-z0-9_]{0,255}`.
    EnvName
);

impl EnvName {
    /// Validates a variable name.
    pub fn new(raw: impl Into<String>) -> Result<Self> {
        let raw = raw.into();
        let mut chars = raw.chars();
        let ok = match chars.next() {
            Some(first) => {
                (first.is_ascii_alphabetic() || first == '_')
                    && raw.len() <= 256
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            None => false,
        };
        if ok {
            Ok(Self(raw))
        } else {
            Err(Error::invalid(
                "env",
                format!("{raw:?} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"),
            ))
        }
    }
}

/// An environment value. It may be a secret: it has no `Display` and no `Serialize`, and its
/// `Debug` prints [`REDACTED`]. Only [`SecretValue::expose`] gives the value, for the runner
/// and the repository.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value (at most [`MAX_ENV_VALUE_LEN`] bytes, no NUL).
    ///
    /// # Errors
    /// `InvalidInput { field: "env" }`; the message never contains the value.
    pub fn new(raw: impl Into<String>) -> Result<Self> {
        let raw = raw.into();
        if raw.len() > MAX_ENV_VALUE_LEN || raw.contains('\0') {
            return Err(Error::invalid(
                "env",
                format!("a value must be at most {MAX_ENV_VALUE_LEN} bytes without NUL"),
            ));
        }
        Ok(Self(raw))
    }

    /// The value itself: only for handing it to the runner or storing it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// The environment given to an instance, by variable name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceEnv(BTreeMap<EnvName, SecretValue>);

impl InstanceEnv {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a variable (replacing an earlier value).
    ///
    /// # Errors
    /// `InvalidInput` beyond [`MAX_ENV_VARS`] variables.
    pub fn insert(&mut self, name: EnvName, value: SecretValue) -> Result<()> {
        if !self.0.contains_key(&name) && self.0.len() >= MAX_ENV_VARS {
            return Err(Error::invalid(
                "env",
                format!("at most {MAX_ENV_VARS} variables"),
            ));
        }
        self.0.insert(name, value);
        Ok(())
    }

    /// Parses `KEY=value` assignments (the value may contain `=`).
    ///
    /// ```
    /// use toolshed_core::domain::InstanceEnv;
    /// let env = InstanceEnv::parse_assignments(["TOKEN=s3cr=t", "MODE=x"]).unwrap();
    /// assert_eq!(env.names().collect::<Vec<_>>(), ["MODE", "TOKEN"]);
    /// assert!(!format!("{env:?}").contains("s3cr"));
    /// assert!(InstanceEnv::parse_assignments(["NOVALUE"]).is_err());
    /// ```
    ///
    /// # Errors
    /// `InvalidInput { field: "env" }` naming the variable, never its value.
    pub fn parse_assignments<I, S>(assignments: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut env = Self::new();
        for a in assignments {
            let a = a.as_ref();
            let Some((name, value)) = a.split_once('=') else {
                let shown: String = a.chars().take(64).collect();
                return Err(Error::invalid("env", format!("{shown:?} is not KEY=value")));
            };
            env.insert(EnvName::new(name)?, SecretValue::new(value)?)?;
        }
        Ok(env)
    }

    /// Builds an environment from exposed pairs (what a repository stored).
    ///
    /// # Errors
    /// `InvalidInput` for a bad name or value.
    pub fn from_exposed<I, K, V>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut env = Self::new();
        for (k, v) in pairs {
            env.insert(EnvName::new(k)?, SecretValue::new(v)?)?;
        }
        Ok(env)
    }

    /// The value of a variable, if set.
    pub fn get(&self, name: &str) -> Option<&SecretValue> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| v)
    }

    /// Variable names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(EnvName::as_str)
    }

    /// Names and values: only for the runner and the repository.
    pub fn exposed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.expose()))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Names mapped to [`REDACTED`]: what output shows.
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.0
            .keys()
            .map(|k| (k.to_string(), REDACTED.to_owned()))
            .collect()
    }
}

/// Lifecycle of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Recorded; nothing started yet.
    Requested,
    /// Its task is being started.
    Creating,
    /// Its task was started; its MCP endpoint has not answered yet.
    Starting,
    /// Its task runs and its MCP endpoint answered a handshake.
    Created,
    /// Its task could not be started, or ended by itself (see the failure).
    Failed,
    /// Stopped on request. A restart starts it again.
    Stopped,
}

impl InstanceState {
    /// The stored / printed name.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Requested => "requested",
            InstanceState::Creating => "creating",
            InstanceState::Starting => "starting",
            InstanceState::Created => "created",
            InstanceState::Failed => "failed",
            InstanceState::Stopped => "stopped",
        }
    }

    /// Whether a task may run for an instance in this state (so a runner task labelled with it
    /// is not an orphan).
    pub fn holds_task(self) -> bool {
        matches!(
            self,
            InstanceState::Creating | InstanceState::Starting | InstanceState::Created
        )
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InstanceState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "requested" => InstanceState::Requested,
            "creating" => InstanceState::Creating,
            "starting" => InstanceState::Starting,
            "created" => InstanceState::Created,
            "failed" => InstanceState::Failed,
            "stopped" => InstanceState::Stopped,
            other => {
                return Err(Error::invalid(
                    "state",
                    format!("{other:?} is not an instance state"),
                ))
            }
        })
    }
}

/// A long-running instance of a verified server.
///
/// Has no `Serialize`: its environment may hold secrets. Print [`Instance::view`].
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Id.
    pub id: InstanceId,
    /// Unique name.
    pub name: InstanceName,
    /// The server it was created from.
    pub server_id: ServerId,
    /// The server's verified image at creation, pinned by digest; restarts run the same image.
    pub image: ImageRef,
    /// Lifecycle state.
    pub state: InstanceState,
    /// The principal that owns it; `None` for instances created by the machine's operator
    /// before owners were recorded (only admins reach those).
    pub owner: Option<PrincipalId>,
    /// Environment given to its task.
    pub env: InstanceEnv,
    /// How many times it was restarted.
    pub restart_count: u32,
    /// Its current task, once started.
    pub task: Option<TaskHandle>,
    /// Where MCP answers, once known.
    pub endpoint: Option<Endpoint>,
    /// Why it failed (state `Failed`).
    pub failure: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// When it was stopped (state `Stopped`).
    pub stopped_at: Option<Timestamp>,
    /// Optimistic-concurrency version (1 once stored).
    pub version: u64,
}

/// What a new instance is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRequest {
    /// Unique name.
    pub name: InstanceName,
    /// Environment.
    pub env: InstanceEnv,
    /// The owning principal, when known.
    pub owner: Option<PrincipalId>,
}

impl Instance {
    /// A new instance of `server` in state `Requested`, pinned to the server's verified image.
    ///
    /// # Errors
    /// `NotVerified` when the server has no verified image.
    pub fn request(
        id: InstanceId,
        server: &Server,
        request: InstanceRequest,
        now: Timestamp,
    ) -> Result<Self> {
        let image = server.launchable_image()?.image.clone();
        Ok(Self {
            id,
            name: request.name,
            server_id: server.id.clone(),
            image,
            state: InstanceState::Requested,
            owner: request.owner,
            env: request.env,
            restart_count: 0,
            task: None,
            endpoint: None,
            failure: None,
            created_at: now,
            updated_at: now,
            stopped_at: None,
            version: 0,
        })
    }

    fn refuse(&self, action: &'static str) -> Error {
        Error::InvalidState {
            kind: EntityKind::Instance,
            id: self.id.to_string(),
            state: self.state.to_string(),
            action,
        }
    }

    /// `Requested` → `Creating`: its task is about to be started.
    ///
    /// # Errors
    /// `InvalidState` from any other state.
    pub fn begin_creating(&mut self, now: Timestamp) -> Result<()> {
        if self.state != InstanceState::Requested {
            return Err(self.refuse("create"));
        }
        self.state = InstanceState::Creating;
        self.updated_at = now;
        Ok(())
    }

    /// `Starting` / `Created` / `Failed` / `Stopped` → `Creating` for a restart: counts the restart and forgets
    /// the previous task, endpoint and failure (the caller stops the previous task first).
    ///
    /// # Errors
    /// `InvalidState` while `Requested` or `Creating`.
    pub fn begin_restart(&mut self, now: Timestamp) -> Result<()> {
        if !matches!(
            self.state,
            InstanceState::Starting
                | InstanceState::Created
                | InstanceState::Failed
                | InstanceState::Stopped
        ) {
            return Err(self.refuse("restart"));
        }
        self.state = InstanceState::Creating;
        self.restart_count = self.restart_count.saturating_add(1);
        self.task = None;
        self.endpoint = None;
        self.failure = None;
        self.stopped_at = None;
        self.updated_at = now;
        Ok(())
    }

    /// `Creating` → `Starting`: the task was started; it is `Created` only once its MCP
    /// endpoint answers ([`Instance::mark_ready`]).
    ///
    /// # Errors
    /// `InvalidState` from any other state.
    pub fn mark_created(
        &mut self,
        task: TaskHandle,
        endpoint: Option<Endpoint>,
        now: Timestamp,
    ) -> Result<()> {
        if self.state != InstanceState::Creating {
            return Err(self.refuse("record a started task"));
        }
        self.state = InstanceState::Starting;
        self.task = Some(task);
        self.endpoint = endpoint;
        self.updated_at = now;
        Ok(())
    }

    /// `Starting` → `Created`: its MCP endpoint answered a handshake. Returns whether anything
    /// changed (`false` when it was already `Created` or is in a state a handshake cannot move:
    /// a stop or a failure recorded meanwhile wins).
    pub fn mark_ready(&mut self, now: Timestamp) -> bool {
        if self.state != InstanceState::Starting {
            return false;
        }
        self.state = InstanceState::Created;
        self.updated_at = now;
        true
    }

    /// Whether its task was started but has not answered MCP yet.
    pub fn is_starting(&self) -> bool {
        self.state == InstanceState::Starting
    }

    /// Records the endpoint of a `Starting` or `Created` instance learnt later (a task that was
    /// pending). Returns whether anything changed.
    pub fn record_endpoint(&mut self, endpoint: Endpoint, now: Timestamp) -> bool {
        if !matches!(self.state, InstanceState::Starting | InstanceState::Created)
            || self.endpoint.as_ref() == Some(&endpoint)
        {
            return false;
        }
        self.endpoint = Some(endpoint);
        self.updated_at = now;
        true
    }

    /// `Requested` / `Creating` / `Starting` / `Created` → `Failed` with a reason (cut to
    /// [`MAX_FAILURE_LEN`] characters). The task, if any, is kept so it can still be stopped.
    ///
    /// # Errors
    /// `InvalidState` when already `Failed` or `Stopped`.
    pub fn mark_failed(&mut self, reason: impl Into<String>, now: Timestamp) -> Result<()> {
        if matches!(self.state, InstanceState::Failed | InstanceState::Stopped) {
            return Err(self.refuse("mark failed"));
        }
        self.state = InstanceState::Failed;
        self.failure = Some(reason.into().chars().take(MAX_FAILURE_LEN).collect());
        self.endpoint = None;
        self.updated_at = now;
        Ok(())
    }

    /// Any state → `Stopped` (the caller stopped the task). Returns `false`, changing nothing,
    /// when it was already stopped.
    pub fn mark_stopped(&mut self, now: Timestamp) -> bool {
        if self.state == InstanceState::Stopped {
            return false;
        }
        self.state = InstanceState::Stopped;
        self.endpoint = None;
        self.stopped_at = Some(now);
        self.updated_at = now;
        true
    }

    /// The runner's idempotency token of the current start: one per instance and restart, so a
    /// retried start never runs a second task and a restart always runs a new one (≤ 64
    /// characters, as ECS `clientToken` requires).
    pub fn start_token(&self) -> String {
        let suffix = format!("-{}", self.restart_count);
        let id: String = self.id.as_str().chars().take(64 - suffix.len()).collect();
        format!("{id}{suffix}")
    }

    /// The printable view: environment names only, values [`REDACTED`].
    pub fn view(&self) -> InstanceView {
        InstanceView {
            id: self.id.clone(),
            name: self.name.clone(),
            server_id: self.server_id.clone(),
            image: self.image.pinned(),
            state: self.state,
            owner: self.owner.clone(),
            env: self.env.redacted(),
            restart_count: self.restart_count,
            task: self.task.as_ref().map(ToString::to_string),
            endpoint: self.endpoint.as_ref().map(Endpoint::url),
            failure: self.failure.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            stopped_at: self.stopped_at,
            version: self.version,
        }
    }
}

/// An instance as shown to people and API clients: environment values are never included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceView {
    /// Id.
    pub id: InstanceId,
    /// Unique name.
    pub name: InstanceName,
    /// The server it was created from.
    pub server_id: ServerId,
    /// The image it runs, `repository@sha256:…`.
    pub image: String,
    /// Lifecycle state.
    pub state: InstanceState,
    /// Owner principal.
    pub owner: Option<PrincipalId>,
    /// Environment variable names, each mapped to `"<redacted>"`.
    pub env: BTreeMap<String, String>,
    /// Restarts so far.
    pub restart_count: u32,
    /// The runner's task handle.
    pub task: Option<String>,
    /// MCP endpoint URL.
    pub endpoint: Option<String>,
    /// Why it failed.
    pub failure: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// When it was stopped.
    pub stopped_at: Option<Timestamp>,
    /// Optimistic-concurrency version.
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        CommitSha, ImageDigest, ImageTag, RepoUrl, ServerRegistration, VerifiedImage,
    };

    fn now() -> Timestamp {
        chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap()
    }

    fn server(verified: bool) -> Server {
        let id = ServerId::new("time").unwrap();
        let mut s = Server::register(
            ServerRegistration::new(id, RepoUrl::new("https://github.com/o/r").unwrap()),
            now(),
        )
        .unwrap();
        if verified {
            s.image = Some(VerifiedImage {
                image: ImageRef::new(
                    "reg/x",
                    ImageTag::new("t").unwrap(),
                    ImageDigest::new(format!("sha256:{}", "a".repeat(64))).unwrap(),
                )
                .unwrap(),
                commit: CommitSha::new("b".repeat(40)).unwrap(),
                verified_at: now(),
            });
            s.state = crate::domain::VerificationState::Verified;
        }
        s
    }

    fn request(env: &[&str]) -> InstanceRequest {
        InstanceRequest {
            name: InstanceName::new("time-1").unwrap(),
            env: InstanceEnv::parse_assignments(env).unwrap(),
            owner: None,
        }
    }

    #[test]
    fn needs_a_verified_server() {
        let err = Instance::request(InstanceId::random(), &server(false), request(&[]), now())
            .unwrap_err();
        assert!(matches!(err, Error::NotVerified { .. }), "{err}");
    }

    #[test]
    fn lifecycle_and_refused_transitions() {
        let mut i =
            Instance::request(InstanceId::random(), &server(true), request(&[]), now()).unwrap();
        assert_eq!(i.state, InstanceState::Requested);
        assert!(i.image.pinned().contains("@sha256:"));
        let t = TaskHandle::new("c1").unwrap();
        assert!(matches!(
            i.mark_created(t.clone(), None, now()),
            Err(Error::InvalidState { .. })
        ));
        i.begin_creating(now()).unwrap();
        assert!(i.begin_creating(now()).is_err());
        assert!(i.begin_restart(now()).is_err());
        let first_token = i.start_token();
        i.mark_created(t.clone(), None, now()).unwrap();
        assert_eq!(
            (i.state, i.task.clone()),
            (InstanceState::Starting, Some(t))
        );
        assert!(i.mark_ready(now()));
        assert_eq!(i.state, InstanceState::Created);
        assert!(!i.mark_ready(now()), "ready once");
        i.begin_restart(now()).unwrap();
        assert_eq!(
            (i.state, i.restart_count, i.task.clone()),
            (InstanceState::Creating, 1, None)
        );
        assert_ne!(i.start_token(), first_token);
        assert!(i.start_token().len() <= 64);
        i.mark_failed("boom", now()).unwrap();
        assert!(i.mark_failed("again", now()).is_err());
        assert!(i.mark_stopped(now()));
        assert!(!i.mark_stopped(now()));
        assert!(i.mark_failed("late", now()).is_err());
        i.begin_restart(now()).unwrap();
        assert_eq!(i.stopped_at, None);
    }

    #[test]
    fn values_never_printed() {
        let i = Instance::request(
            InstanceId::random(),
            &server(true),
            request(&["API_KEY=hunter2-secret"]),
            now(),
        )
        .unwrap();
        let debug = format!("{i:?}");
        let json = serde_json::to_string(&i.view()).unwrap();
        for out in [&debug, &json] {
            assert!(!out.contains("hunter2"), "{out}");
            assert!(out.contains("API_KEY"), "{out}");
        }
        assert_eq!(
            i.env.exposed().collect::<Vec<_>>(),
            [("API_KEY", "hunter2-secret")]
        );
        let err = InstanceEnv::parse_assignments(["1BAD=hunter2"]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn names_and_ids() {
        for bad in ["", "-a", "A", "a b", &"a".repeat(64)] {
            assert!(InstanceName::new(bad).is_err(), "{bad}");
        }
        assert!(InstanceName::new("a").is_ok());
        assert!(InstanceState::from_str("created").is_ok());
        assert_eq!(
            InstanceState::from_str("starting").unwrap(),
            InstanceState::Starting
        );
        assert!(InstanceState::from_str("running").is_err());
        assert!(EnvName::new("_A1").is_ok());
        assert!(EnvName::new("A-B").is_err());
    }
}
