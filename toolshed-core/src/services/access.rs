//! The use cases on behalf of a caller: scope checks, ownership and per-principal quotas.
//!
//! Every `*_as` method checks the scope the operation needs ([`Principal::require`]) and, for a
//! record with an owner, [`Principal::may_access`]: a session of another principal is reported
//! as `NotFound`, exactly like a missing one, so its id discloses nothing. Admins reach every
//! session. Instances follow the same rule through [`Toolshed::owned`]: they need scope
//! `sessions`, record their creator as owner, and their creation is charged to the caller's
//! launches per minute.
//!
//! The methods without `_as` remain for operator tools on their own state (the CLI, the sweep):
//! they act as the machine's operator.

use sha2::{Digest, Sha256};

use std::time::Duration;

use super::{
    BackgroundStart, InstanceStatus, LaunchRequest, StartOutcome, Toolshed, VerifyOptions,
};
use crate::domain::{
    IdempotencyKey, Instance, InstanceId, InstanceName, InstanceRequest, PlaygroundSession,
    Principal, PrincipalId, PrincipalQuotas, QuotaKind, Scope, Server, ServerId,
    ServerRegistration, SessionId, ToolCall, ToolCallOutput,
};
use crate::error::{EntityKind, Error, Result};

/// Who calls a use case, and the quotas that apply to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The authenticated principal.
    pub principal: Principal,
    /// Its quotas.
    pub quotas: PrincipalQuotas,
}

impl Caller {
    /// A caller with `quotas`.
    pub fn new(principal: Principal, quotas: PrincipalQuotas) -> Self {
        Self { principal, quotas }
    }

    /// The machine's operator ([`Principal::local_operator`]) with the default quotas.
    pub fn local_operator() -> Self {
        Self::new(Principal::local_operator(), PrincipalQuotas::default())
    }
}

/// The session id of an idempotent launch by `owner`: the key is the caller's own, so two
/// principals using the same key never meet.
pub(super) fn owned_session_id(
    owner: &PrincipalId,
    server: &ServerId,
    key: &IdempotencyKey,
) -> SessionId {
    let mut h = Sha256::new();
    for part in [owner.as_str(), server.as_str(), key.as_str()] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = hex::encode(h.finalize());
    // 32 lowercase hex characters after `o-`: always a valid session id.
    SessionId::new(format!("o-{}", &digest[..32])).unwrap_or_else(|_| SessionId::random())
}

impl Toolshed {
    /// Takes one unit of a windowed quota of the caller, with the window's end as retry hint.
    pub(super) async fn charge(&self, caller: &Caller, kind: QuotaKind, limit: u32) -> Result<()> {
        let now = self.ports.clock.now();
        let start = kind.window_start(now);
        match self
            .ports
            .repository
            .take_quota(&caller.principal.id, kind, start, limit)
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::QuotaExceeded {
                principal,
                quota,
                limit,
                ..
            }) => Err(Error::QuotaExceeded {
                principal,
                quota,
                limit,
                retry_after_secs: Some(
                    u64::try_from(
                        kind.window_end(now)
                            .signed_duration_since(now)
                            .num_seconds()
                            .max(1),
                    )
                    .unwrap_or(1),
                ),
            }),
            Err(e) => Err(e),
        }
    }

    /// A record owned by `owner` as `caller` sees it: `NotFound` (of `kind`, `id`) unless the
    /// caller may access it. The one ownership check of every owned record.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn owned<T>(
        caller: &Caller,
        record: T,
        owner: Option<&PrincipalId>,
        kind: EntityKind,
        id: &str,
    ) -> Result<T> {
        if caller.principal.may_access(owner) {
            Ok(record)
        } else {
            Err(Error::not_found(kind, id))
        }
    }

    /// A session the caller may access.
    async fn session_for(&self, caller: &Caller, id: &SessionId) -> Result<PlaygroundSession> {
        let session = self.ports.repository.get_session(id).await?;
        let owner = session.owner.clone();
        Self::owned(
            caller,
            session,
            owner.as_ref(),
            EntityKind::Session,
            id.as_str(),
        )
    }

    /// Registers a server (scope `servers:write`).
    ///
    /// # Errors
    /// `Forbidden`; see [`Toolshed::register_server`].
    pub async fn register_server_as(
        &self,
        caller: &Caller,
        registration: ServerRegistration,
    ) -> Result<Server> {
        caller.principal.require(Scope::ServersWrite)?;
        self.register_server(registration).await
    }

    /// Imports a server from a `server.json` (scope `servers:write`, like a registration).
    ///
    /// # Errors
    /// `Forbidden`; see [`Toolshed::import_server`].
    pub async fn import_server_as(
        &self,
        caller: &Caller,
        document: &[u8],
        options: super::ImportOptions,
    ) -> Result<super::Imported> {
        caller.principal.require(Scope::ServersWrite)?;
        self.import_server(document, options).await
    }

    /// Starts a verification (scope `servers:write`), charged to the caller's verifications
    /// per hour.
    ///
    /// # Errors
    /// `Forbidden`; `QuotaExceeded`; see [`Toolshed::start_verification`].
    pub async fn start_verification_as(
        &self,
        caller: &Caller,
        server_id: &ServerId,
        options: VerifyOptions,
    ) -> Result<StartOutcome> {
        caller.principal.require(Scope::ServersWrite)?;
        // A missing server is not charged.
        self.ports.repository.get_server(server_id).await?;
        self.charge(
            caller,
            QuotaKind::Verifications,
            caller.quotas.verifications_per_hour,
        )
        .await?;
        self.start_verification(server_id, options).await
    }

    /// Starts a verification (scope `servers:write`, charged to the caller's verifications per
    /// hour like [`Self::start_verification_as`]) and drives the run in a background task.
    ///
    /// # Errors
    /// `Forbidden`; `QuotaExceeded`; see [`Toolshed::start_verification_in_background`].
    pub async fn start_verification_in_background_as(
        &self,
        caller: &Caller,
        server_id: &ServerId,
        options: VerifyOptions,
    ) -> Result<BackgroundStart> {
        caller.principal.require(Scope::ServersWrite)?;
        // A missing server is not charged.
        self.ports.repository.get_server(server_id).await?;
        self.charge(
            caller,
            QuotaKind::Verifications,
            caller.quotas.verifications_per_hour,
        )
        .await?;
        self.start_verification_in_background(server_id, options)
            .await
    }

    /// Launches a session owned by the caller (scope `sessions`), within its quotas: live
    /// sessions (atomically with the insert) and launches per minute.
    ///
    /// # Errors
    /// `Forbidden`; `QuotaExceeded`; see [`Toolshed::launch_session`].
    pub async fn launch_session_as(
        &self,
        caller: &Caller,
        server_id: &ServerId,
        request: LaunchRequest,
    ) -> Result<PlaygroundSession> {
        caller.principal.require(Scope::Sessions)?;
        self.launch(server_id, request, Some(caller)).await
    }

    /// Reads a session of the caller's (scope `sessions`).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound` (also for another principal's session).
    pub async fn get_session_as(
        &self,
        caller: &Caller,
        id: &SessionId,
    ) -> Result<PlaygroundSession> {
        caller.principal.require(Scope::Sessions)?;
        self.session_for(caller, id).await
    }

    /// A session's status refreshed from the runner (scope `sessions`, own sessions only).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; see [`Toolshed::session_status`].
    pub async fn session_status_as(
        &self,
        caller: &Caller,
        id: &SessionId,
    ) -> Result<PlaygroundSession> {
        self.get_session_as(caller, id).await?;
        self.session_status(id).await
    }

    /// Stops a session (scope `sessions`, own sessions only).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; see [`Toolshed::stop_session`].
    pub async fn stop_session_as(
        &self,
        caller: &Caller,
        id: &SessionId,
    ) -> Result<PlaygroundSession> {
        self.get_session_as(caller, id).await?;
        self.stop_session(id).await
    }

    /// Calls a tool on a session (scope `sessions`, own sessions only).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; see [`Toolshed::execute_tool`].
    pub async fn execute_tool_as(
        &self,
        caller: &Caller,
        id: &SessionId,
        call: ToolCall,
    ) -> Result<ToolCallOutput> {
        self.get_session_as(caller, id).await?;
        self.execute_tool(id, call).await
    }

    /// The caller's sessions of a server, newest first (scope `sessions`); admins see all.
    ///
    /// # Errors
    /// `Forbidden`; repository errors.
    pub async fn list_sessions_as(
        &self,
        caller: &Caller,
        server_id: &ServerId,
        live_only: bool,
        limit: usize,
    ) -> Result<Vec<PlaygroundSession>> {
        caller.principal.require(Scope::Sessions)?;
        let all = self.list_sessions(server_id, live_only, 1000).await?;
        Ok(all
            .into_iter()
            .filter(|s| caller.principal.may_access(s.owner.as_ref()))
            .take(limit)
            .collect())
    }

    /// An instance the caller may access (scope `sessions`).
    async fn instance_for(&self, caller: &Caller, id: &InstanceId) -> Result<Instance> {
        caller.principal.require(Scope::Sessions)?;
        let instance = self.ports.repository.get_instance(id).await?;
        let owner = instance.owner.clone();
        Self::owned(
            caller,
            instance,
            owner.as_ref(),
            EntityKind::Instance,
            id.as_str(),
        )
    }

    /// Creates an instance owned by the caller (scope `sessions`), charged to its launches per
    /// minute. Whatever owner the request names is replaced by the caller.
    ///
    /// # Errors
    /// `Forbidden`; `QuotaExceeded`; see [`Toolshed::create_instance`].
    pub async fn create_instance_as(
        &self,
        caller: &Caller,
        server_id: &ServerId,
        mut request: InstanceRequest,
    ) -> Result<Instance> {
        caller.principal.require(Scope::Sessions)?;
        // A missing server is not charged.
        self.ports.repository.get_server(server_id).await?;
        self.charge(
            caller,
            QuotaKind::Launches,
            caller.quotas.launches_per_minute,
        )
        .await?;
        request.owner = Some(caller.principal.id.clone());
        self.create_instance(server_id, request).await
    }

    /// Reads an instance of the caller's (scope `sessions`).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound` (also for another principal's instance).
    pub async fn get_instance_as(&self, caller: &Caller, id: &InstanceId) -> Result<Instance> {
        self.instance_for(caller, id).await
    }

    /// The caller's instances ordered by name after `after`, at most `limit`; admins see all.
    /// Reads at most [`OWNED_SCAN_PAGES`] repository pages per call: `next` continues the scan
    /// when it stopped early.
    ///
    /// # Errors
    /// `Forbidden`; repository errors.
    pub async fn list_instances_as(
        &self,
        caller: &Caller,
        after: Option<InstanceName>,
        limit: usize,
    ) -> Result<InstanceListing> {
        caller.principal.require(Scope::Sessions)?;
        let mut items = Vec::new();
        let mut cursor = after;
        for _ in 0..OWNED_SCAN_PAGES {
            let page = self.list_instances(cursor.clone(), limit).await?;
            let full = page.len() == limit;
            for instance in page {
                cursor = Some(instance.name.clone());
                if caller.principal.may_access(instance.owner.as_ref()) {
                    items.push(instance);
                    if items.len() == limit {
                        return Ok(InstanceListing {
                            instances: items,
                            next: cursor,
                        });
                    }
                }
            }
            if !full {
                return Ok(InstanceListing {
                    instances: items,
                    next: None,
                });
            }
        }
        Ok(InstanceListing {
            instances: items,
            next: cursor,
        })
    }

    /// An instance's status with health (scope `sessions`, own instances only).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; see [`Toolshed::instance_status`].
    pub async fn instance_status_as(
        &self,
        caller: &Caller,
        id: &InstanceId,
    ) -> Result<InstanceStatus> {
        self.instance_for(caller, id).await?;
        self.instance_status(id).await
    }

    /// Stops an instance with a drain (scope `sessions`, own instances only).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; see [`Toolshed::stop_instance`].
    pub async fn stop_instance_as(
        &self,
        caller: &Caller,
        id: &InstanceId,
        drain: Option<Duration>,
    ) -> Result<Instance> {
        self.instance_for(caller, id).await?;
        self.stop_instance(id, drain).await
    }

    /// Restarts an instance (scope `sessions`, own instances only).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; see [`Toolshed::restart_instance`].
    pub async fn restart_instance_as(
        &self,
        caller: &Caller,
        id: &InstanceId,
        drain: Option<Duration>,
    ) -> Result<Instance> {
        self.instance_for(caller, id).await?;
        self.restart_instance(id, drain).await
    }

    /// The log tail of an instance (scope `sessions`, own instances only).
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; see [`Toolshed::instance_logs`].
    pub async fn instance_logs_as(
        &self,
        caller: &Caller,
        id: &InstanceId,
        tail: usize,
    ) -> Result<Vec<String>> {
        self.instance_for(caller, id).await?;
        self.instance_logs(id, tail).await
    }

    /// Stops and deletes an instance (scope `sessions`, own instances only); whether it
    /// existed. Another principal's instance is reported as not existing.
    ///
    /// # Errors
    /// `Forbidden`; see [`Toolshed::remove_instance`].
    pub async fn remove_instance_as(
        &self,
        caller: &Caller,
        id: &InstanceId,
        drain: Option<Duration>,
    ) -> Result<bool> {
        match self.instance_for(caller, id).await {
            Ok(_) => self.remove_instance(id, drain).await,
            Err(Error::NotFound {
                kind: EntityKind::Instance,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Repository pages an owner-filtered listing reads per call at most.
pub const OWNED_SCAN_PAGES: usize = 10;

/// A page of the instances a caller may access.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceListing {
    /// The instances, ordered by name.
    pub instances: Vec<Instance>,
    /// Where the next call continues (`after`), when there may be more.
    pub next: Option<InstanceName>,
}
