//! Tasks with an environment: values reach the container through a per-task Secrets Manager
//! secret, never through RunTask overrides (which ECS echoes in the RunTask request and in
//! every DescribeTasks answer).
//!
//! For a task whose [`TaskSpec::env`] is not empty, [`EcsTaskRunner::start`] (this module's
//! `start_with_env`):
//! 1. creates (or, on a retried start, overwrites) the secret `<prefix>/tasks/<key>` holding the
//!    JSON object name → value, tagged with the deployment;
//! 2. registers a revision of the task's own family `<family prefix>_task_<key>`: the server's
//!    container and hardening, plus container `secrets` whose `valueFrom` is
//!    `<secret arn>:<NAME>::`, so the task execution role reads each value when the task starts
//!    and DescribeTaskDefinition shows only the reference;
//! 3. runs that exact revision, without overrides.
//!
//! `<key>` is the start's idempotency token when it is made of `[A-Za-z0-9-]` (every token the
//! services make), otherwise `_` and the token's hex: distinct tokens never share a key.
//!
//! Stopping the task deregisters and deletes the family's revisions, then deletes the secret.
//! What a failed clean-up leaves (and the resources of tasks that ended by themselves) is removed
//! by [`TaskRunner::remove_leftovers`], which the sweep calls: every secret `<prefix>/tasks/*`
//! tagged with this deployment, older than the sweep's grace, whose family has no live task. The
//! secret is deleted last, so it marks leftovers until everything is gone.
//!
//! Tasks without an environment keep the shared per-(server, digest) family and register nothing
//! per launch: RegisterTaskDefinition is throttled at 1 call/s per account, so only tasks with
//! an environment pay for it.

use std::time::{Duration, SystemTime};

use aws_sdk_ecs::types::{DesiredStatus, Secret, Tag, TaskDefinitionStatus};
use toolshed_core::domain::{TaskHandle, LABEL_DEPLOYMENT, LABEL_MANAGED, LABEL_SERVER};
use toolshed_core::ports::TaskSpec;
use toolshed_core::{Error, Result};

use super::{map_run_error, EcsTaskRunner, RunError};
use crate::error::sdk_error;
use crate::secret_store::{delete_secret, put_secret, secrets_error};

/// What the family of a task with an environment has after the family prefix.
pub const TASK_FAMILY_INFIX: &str = "_task_";
/// The path below the secrets prefix that holds per-task secrets.
pub const TASK_SECRETS_PATH: &str = "tasks";
/// Most ListSecrets pages one leftover sweep reads.
const MAX_LEFTOVER_PAGES: usize = 10;
/// DeleteTaskDefinitions takes at most this many revisions per call.
const DELETE_BATCH: usize = 10;

/// The Secrets Manager side of an [`EcsTaskRunner`]: the client and the name prefix of per-task
/// secrets (`<prefix>/tasks/<key>`).
#[derive(Debug, Clone)]
pub struct TaskSecrets {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
}

impl TaskSecrets {
    /// Per-task secrets named `<prefix>/tasks/<key>` on `client`.
    pub fn new(client: aws_sdk_secretsmanager::Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    /// The secret name of a task's key.
    pub fn secret_name(&self, key: &str) -> String {
        format!("{}/{TASK_SECRETS_PATH}/{key}", self.prefix)
    }
}

/// The key of an idempotency token: the token itself when it is made of `[A-Za-z0-9-]`,
/// otherwise `_` followed by its bytes in hex (valid in family and secret names, and injective).
pub fn token_key(token: &str) -> String {
    if !token.is_empty() && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        token.to_owned()
    } else {
        let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
        format!("_{hex}")
    }
}

/// The family named in a task definition ARN (`…:task-definition/<family>:<revision>`).
pub(crate) fn family_of_arn(arn: &str) -> Option<&str> {
    let tail = arn.rsplit_once('/').map_or(arn, |(_, t)| t);
    tail.rsplit_once(':').map(|(family, _)| family)
}

impl EcsTaskRunner {
    /// The family of the task started with `spec` when it has an environment:
    /// `<family prefix>_task_<key>`.
    pub fn task_family(&self, spec: &TaskSpec) -> String {
        self.task_family_of_key(&token_key(&spec.idempotency_token))
    }

    fn task_family_of_key(&self, key: &str) -> String {
        format!("{}{TASK_FAMILY_INFIX}{key}", self.settings.family_prefix)
    }

    /// The key of a per-task family, `None` for any other family.
    pub(crate) fn key_of_family<'a>(&self, family: &'a str) -> Option<&'a str> {
        family
            .strip_prefix(self.settings.family_prefix.as_str())?
            .strip_prefix(TASK_FAMILY_INFIX)
            .filter(|k| !k.is_empty())
    }

    fn task_secrets(&self) -> Result<&TaskSecrets> {
        self.task_secrets.as_ref().ok_or_else(|| {
            Error::invalid(
                "env",
                "this task runner has no Secrets Manager client, so it cannot start a task \
                 with environment variables",
            )
        })
    }

    /// Starts a task whose values come from its own secret (see the module documentation).
    pub(crate) async fn start_with_env(&self, spec: &TaskSpec) -> Result<TaskHandle> {
        let secrets = self.task_secrets()?;
        // Fail before creating anything when the network settings forbid a launch.
        self.network(spec.resources.egress)?;
        let key = token_key(&spec.idempotency_token);
        let name = secrets.secret_name(&key);
        let id = format!("{TASK_SECRETS_PATH}/{key}");
        let tags = [
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (
                LABEL_DEPLOYMENT.to_owned(),
                self.settings.deployment.as_str().to_owned(),
            ),
            (LABEL_SERVER.to_owned(), spec.server_id.as_str().to_owned()),
        ];
        let arn = put_secret(&secrets.client, &name, &id, &spec.env, &tags).await?;
        let refs: Vec<Secret> = spec
            .env
            .names()
            .map(|n| {
                Secret::builder()
                    .name(n)
                    .value_from(format!("{arn}:{n}::"))
                    .build()
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| {
                crate::error::unexpected("ecs", "RegisterTaskDefinition", None, e.to_string())
            })?;
        let family = self.task_family_of_key(&key);
        let registered = self
            .register_definition(
                spec,
                &family,
                Some(refs),
                Some(
                    Tag::builder()
                        .key(LABEL_DEPLOYMENT)
                        .value(self.settings.deployment.as_str())
                        .build(),
                ),
            )
            .await;
        let registered = registered.and_then(|arn| {
            arn.ok_or_else(|| {
                crate::error::unexpected(
                    "ecs",
                    "RegisterTaskDefinition",
                    Some(family.clone()),
                    "no task definition ARN in the answer",
                )
            })
        });
        let revision = match registered {
            Ok(revision) => revision,
            Err(e) => {
                self.clean_up_after_failed_start(&key).await;
                return Err(e);
            }
        };
        match self.run(spec, revision).await {
            Ok(handle) => Ok(handle),
            Err(e) => {
                self.clean_up_after_failed_start(&key).await;
                Err(match e {
                    RunError::Sdk(e) => map_run_error(*e),
                    RunError::Core(e) => e,
                })
            }
        }
    }

    async fn clean_up_after_failed_start(&self, key: &str) {
        if let Err(e) = self.remove_task_resources(key).await {
            tracing::warn!(key, error = %e, "could not remove the secret and task definition of a failed start; the sweep will");
        }
    }

    /// After a task of a per-task family was stopped: removes its family and secret. A failure is
    /// logged and left to the sweep (the task is stopped either way).
    pub(crate) async fn clean_up_after_stop(&self, task_definition_arn: Option<&str>) {
        let Some(key) = task_definition_arn
            .and_then(family_of_arn)
            .and_then(|f| self.key_of_family(f))
        else {
            return;
        };
        if self.task_secrets.is_none() {
            return;
        }
        if let Err(e) = self.remove_task_resources(key).await {
            tracing::warn!(key, error = %e, "could not remove a stopped task's secret and task definition; the sweep will");
        }
    }

    /// Deregisters and deletes every revision of the key's family, then deletes its secret.
    async fn remove_task_resources(&self, key: &str) -> Result<()> {
        let secrets = self.task_secrets()?;
        let family = self.task_family_of_key(key);
        let active = self
            .revisions(&family, TaskDefinitionStatus::Active)
            .await?;
        for arn in &active {
            self.client
                .deregister_task_definition()
                .task_definition(arn)
                .send()
                .await
                .map_err(|e| {
                    sdk_error("ecs", "DeregisterTaskDefinition", Some(family.clone()), e)
                })?;
        }
        let inactive = self
            .revisions(&family, TaskDefinitionStatus::Inactive)
            .await?;
        for chunk in inactive.chunks(DELETE_BATCH) {
            let out = self
                .client
                .delete_task_definitions()
                .set_task_definitions(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| sdk_error("ecs", "DeleteTaskDefinitions", Some(family.clone()), e))?;
            for f in out.failures() {
                // A revision still referenced by a stopping task is deleted by ECS once it ends.
                tracing::debug!(family, reason = ?f.reason(), "task definition not deleted");
            }
        }
        delete_secret(
            &secrets.client,
            &secrets.secret_name(key),
            &format!("{TASK_SECRETS_PATH}/{key}"),
        )
        .await?;
        tracing::info!(family, "removed a task's secret and task definition");
        Ok(())
    }

    /// The revisions of exactly `family` in `status` (ListTaskDefinitions matches a prefix).
    async fn revisions(&self, family: &str, status: TaskDefinitionStatus) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut next = None;
        loop {
            let page = self
                .client
                .list_task_definitions()
                .family_prefix(family)
                .status(status.clone())
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| sdk_error("ecs", "ListTaskDefinitions", Some(family.to_owned()), e))?;
            out.extend(
                page.task_definition_arns()
                    .iter()
                    .filter(|a| family_of_arn(a) == Some(family))
                    .cloned(),
            );
            match page.next_token() {
                Some(t) => next = Some(t.to_owned()),
                None => return Ok(out),
            }
        }
    }

    /// Removes the secrets and task definitions of this deployment's tasks that no longer run,
    /// created more than `grace` ago; at most `limit`. Returns how many tasks' resources were
    /// removed.
    pub(crate) async fn remove_leftover_task_secrets(
        &self,
        grace: Duration,
        limit: usize,
    ) -> Result<u32> {
        let Some(secrets) = &self.task_secrets else {
            return Ok(0);
        };
        let prefix = format!("{}/{TASK_SECRETS_PATH}/", secrets.prefix);
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut removed = 0u32;
        let mut seen = 0usize;
        let mut next = None;
        for _ in 0..MAX_LEFTOVER_PAGES {
            let page = secrets
                .client
                .list_secrets()
                .filters(
                    aws_sdk_secretsmanager::types::Filter::builder()
                        .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
                        .values(&prefix)
                        .build(),
                )
                .max_results(100)
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| secrets_error("ListSecrets", TASK_SECRETS_PATH, e))?;
            for s in page.secret_list() {
                let Some(key) = s.name().and_then(|n| n.strip_prefix(prefix.as_str())) else {
                    continue;
                };
                let ours = s.tags().iter().any(|t| {
                    t.key() == Some(LABEL_DEPLOYMENT)
                        && t.value() == Some(self.settings.deployment.as_str())
                });
                let old = s
                    .created_date()
                    .and_then(|d| SystemTime::try_from(*d).ok())
                    .is_some_and(|created| created < cutoff);
                if !ours || !old {
                    continue;
                }
                if seen >= limit {
                    return Ok(removed);
                }
                seen += 1;
                if self
                    .family_has_live_task(&self.task_family_of_key(key))
                    .await?
                {
                    continue;
                }
                self.remove_task_resources(key).await?;
                removed += 1;
            }
            match page.next_token() {
                Some(t) => next = Some(t.to_owned()),
                None => break,
            }
        }
        Ok(removed)
    }

    async fn family_has_live_task(&self, family: &str) -> Result<bool> {
        let out = self
            .client
            .list_tasks()
            .cluster(&self.settings.cluster)
            .family(family)
            .desired_status(DesiredStatus::Running)
            .max_results(1)
            .send()
            .await
            .map_err(|e| sdk_error("ecs", "ListTasks", Some(family.to_owned()), e))?;
        Ok(!out.task_arns().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_token_or_its_hex_and_never_collide() {
        assert_eq!(token_key("s-0123abcd"), "s-0123abcd");
        assert_eq!(token_key("check-ab-3"), "check-ab-3");
        assert_eq!(token_key("a/b"), "_612f62");
        assert_eq!(token_key(""), "_");
        // A token that looks like an encoded one cannot be one: '_' is never kept as is.
        assert_eq!(token_key("_612f62"), "_5f363132663632");
    }

    #[test]
    fn the_family_of_a_task_definition_arn() {
        assert_eq!(
            family_of_arn("arn:aws:ecs:us-east-1:123456789012:task-definition/toolshed-task-s-1:3"),
            Some("toolshed-task-s-1")
        );
        assert_eq!(family_of_arn("toolshed-x:1"), Some("toolshed-x"));
        assert_eq!(family_of_arn("no-revision"), None);
    }
}
