//! The use cases on behalf of a caller: scope checks, ownership and per-principal quotas.
//!
//! Every `*_as` method checks the scope the operation needs ([`Principal::require`]) and, for a
//! record with an owner, [`Principal::may_access`]: a session of another principal is reported
//! as `NotFound`, exactly like a missing one, so its id discloses nothing. Admins reach every
//! session. Future owned records (instances) follow the same rule through [`Toolshed::owned`].
//!
//! The methods without `_as` remain for operator tools on their own state (the CLI, the sweep):
//! they act as the machine's operator.

use sha2::{Digest, Sha256};

use super::{BackgroundStart, LaunchRequest, StartOutcome, Toolshed, VerifyOptions};
use crate::domain::{
    IdempotencyKey, PlaygroundSession, Principal, PrincipalId, PrincipalQuotas, QuotaKind, Scope,
    Server, ServerId, ServerRegistration, SessionId, ToolCall, ToolCallOutput,
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
}
