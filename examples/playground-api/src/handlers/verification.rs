//! Re-verification (the stepwise form: start, answer 202, drive in a spawned task) and its status.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use toolshed_core::domain::ServerId;
use toolshed_core::services::{BackgroundStart, VerifyOptions};

use crate::auth::Authenticated;
use crate::dto::{ReverifyRequest, ReverifyResponse, VerificationStatus};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiOptionalJson, ApiPath, ApiQuery};
use crate::AppState;

fn status_url(id: &ServerId) -> String {
    format!("/api/servers/{id}/verification")
}

/// Starts a verification of the server's current commit. Answers 202 with a status URL while the
/// run continues in the background; 200 `up_to_date` when the commit is unchanged and its image
/// still exists (unless `force`); 409 while another run holds the lease.
#[utoipa::path(post, path = "/api/servers/{id}/reverify", tag = "verification",
    params(("id" = String, Path, description = "Server id"), ReverifyRequest),
    request_body(content = Option<ReverifyRequest>, content_type = "application/json", description = "Optional; `force` may also be a query parameter"),
    responses(
        (status = 202, description = "Started", body = ReverifyResponse),
        (status = 200, description = "Up to date: nothing to do", body = ReverifyResponse),
        (status = 404, description = "No such server", body = ErrorBody),
        (status = 409, description = "A verification is already running", body = ErrorBody),
        (status = 409, description = "The registered repository or ref does not resolve (`verification_failed`)", body = ErrorBody),
        (status = 503, description = "Backend unavailable", body = ErrorBody),
    ))]
pub async fn reverify(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<ServerId>,
    ApiQuery(query): ApiQuery<ReverifyRequest>,
    ApiOptionalJson(body): ApiOptionalJson<ReverifyRequest>,
) -> ApiResult<Response> {
    let force = body.force.or(query.force).unwrap_or(false);
    let url = status_url(&id);
    match state
        .toolshed
        .start_verification_in_background_as(&caller, &id, VerifyOptions { force })
        .await?
    {
        BackgroundStart::UpToDate(server) => Ok(Json(ReverifyResponse {
            status: "up_to_date".to_owned(),
            server_id: id.to_string(),
            commit: server.last_verified_commit().map(ToString::to_string),
            run_id: None,
            status_url: url,
        })
        .into_response()),
        // The run continues in the background (the handle is dropped, the run is not); if this
        // process stops, the lease expires and the resume worker continues it.
        BackgroundStart::Started(run) => {
            let response = ReverifyResponse {
                status: "started".to_owned(),
                server_id: id.to_string(),
                commit: Some(run.commit().to_string()),
                run_id: Some(run.run_id().to_owned()),
                status_url: url.clone(),
            };
            Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, url)],
                Json(response),
            )
                .into_response())
        }
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
    let status = state.toolshed.verification_status(&id).await?;
    let in_progress = status.in_progress();
    let server = status.server;
    Ok(Json(VerificationStatus {
        server_id: id.to_string(),
        state: server.state.into(),
        in_progress,
        run: status.run.as_ref().map(Into::into),
        image: server.image.as_ref().map(Into::into),
        last_failure: server.last_failure.as_ref().map(Into::into),
        verification_count: server.verification_count,
        last_timings: server.last_timings.as_ref().map(Into::into),
    }))
}
