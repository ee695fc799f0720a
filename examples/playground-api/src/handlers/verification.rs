//! Re-verification (the stepwise form: start, answer 202, drive in a spawned task) and its status.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use toolshed_core::domain::ServerId;
use toolshed_core::services::{StartOutcome, Toolshed, VerifyOptions};
use tracing::{info, warn, Instrument};

use crate::auth::Authenticated;
use crate::dto::{ReverifyRequest, ReverifyResponse, VerificationStatus};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{optional_json, ApiPath, ApiQuery};
use crate::AppState;

fn status_url(id: &ServerId) -> String {
    format!("/api/servers/{id}/verification")
}

/// Starts a verification of the server's current commit. Answers 202 with a status URL while the
/// run continues in the background; 200 `up_to_date` when the commit is unchanged and its image
/// still exists (unless `force`); 409 while another run holds the lease.
#[utoipa::path(post, path = "/api/servers/{id}/reverify", tag = "verification",
    params(("id" = String, Path, description = "Server id"), ReverifyRequest),
    request_body(content = Option<ReverifyRequest>, description = "Optional; `force` may also be a query parameter"),
    responses(
        (status = 202, description = "Started", body = ReverifyResponse),
        (status = 200, description = "Up to date: nothing to do", body = ReverifyResponse),
        (status = 404, description = "No such server", body = ErrorBody),
        (status = 409, description = "A verification is already running", body = ErrorBody),
        (status = 422, description = "The ref does not resolve", body = ErrorBody),
        (status = 503, description = "Backend unavailable", body = ErrorBody),
    ))]
pub async fn reverify(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<ServerId>,
    ApiQuery(query): ApiQuery<ReverifyRequest>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: ReverifyRequest = optional_json(&body)?;
    let force = body.force.or(query.force).unwrap_or(false);
    let url = status_url(&id);
    match state
        .toolshed
        .start_verification_as(&caller, &id, VerifyOptions { force })
        .await?
    {
        StartOutcome::UpToDate(server) => Ok(Json(ReverifyResponse {
            status: "up_to_date".to_owned(),
            server_id: id.to_string(),
            commit: server.last_verified_commit().map(ToString::to_string),
            run_id: None,
            status_url: url,
        })
        .into_response()),
        StartOutcome::Started(lease) => {
            let response = ReverifyResponse {
                status: "started".to_owned(),
                server_id: id.to_string(),
                commit: Some(lease.run.commit.to_string()),
                run_id: Some(lease.run.run_id.clone()),
                status_url: url.clone(),
            };
            let span = tracing::info_span!("verification", server = %id, run = %lease.run.run_id);
            tokio::spawn(drive(state.toolshed.clone(), id, lease).instrument(span));
            Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, url)],
                Json(response),
            )
                .into_response())
        }
    }
}

/// Runs the remaining steps, then the metadata step. If the process stops meanwhile, the lease
/// expires and `resume_verification` (CLI or another worker) continues from the stored step.
async fn drive(toolshed: Toolshed, id: ServerId, lease: toolshed_core::domain::VerificationLease) {
    match toolshed.drive_verification(lease).await {
        Ok(server) => {
            info!(state = ?server.state, "verification recorded");
            if let Err(e) = toolshed.fill_missing_metadata(&id).await {
                warn!(error = %e, "metadata step failed");
            }
        }
        Err(e) => warn!(error = %e, "verification failed"),
    }
}

/// The verification state of a server and the run in progress, if any.
#[utoipa::path(get, path = "/api/servers/{id}/verification", tag = "verification",
    params(("id" = String, Path, description = "Server id")),
    responses(
        (status = 200, description = "Verification state", body = VerificationStatus),
        (status = 404, description = "No such server", body = ErrorBody),
    ))]
pub async fn verification_status(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ServerId>,
) -> ApiResult<Json<VerificationStatus>> {
    let server = state.toolshed.get_server(&id).await?;
    let lease = state.toolshed.ports().repository.get_lease(&id).await?;
    let now = state.toolshed.ports().clock.now();
    let live = lease.filter(|l| !l.is_expired(now));
    let to_value = |v: serde_json::Result<serde_json::Value>| v.ok();
    Ok(Json(VerificationStatus {
        server_id: id.to_string(),
        state: to_value(serde_json::to_value(server.state))
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        in_progress: live.is_some(),
        run: live.map(|l| {
            json!({
                "run_id": l.run.run_id,
                "commit": l.run.commit,
                "step": l.run.progress.step().to_string(),
                "forced": l.run.forced,
                "started_at": l.run.started_at,
                "holder": l.holder,
                "lease_expires_at": l.expires_at,
            })
        }),
        image: server
            .image
            .as_ref()
            .and_then(|i| to_value(serde_json::to_value(i))),
        last_failure: server
            .last_failure
            .as_ref()
            .and_then(|f| to_value(serde_json::to_value(f))),
        verification_count: server.verification_count,
    }))
}
